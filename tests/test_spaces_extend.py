"""Extending a fold by new posts gives exactly the fold of the larger set, or declines."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from hypothesis_profiles import examples
from meshcrew import spaces
from meshcrew.reasons import Reason
from meshcrew.records import Record, sign_record
from meshcrew.spaces import CheckIn, Profile, Reply
from meshcrew.spaces.extend import extend
from spaces_world import World, person, pk
from test_spaces_properties import Sim, ops, run


def crew_with_posts(posts: int, *, seed: int = 0) -> tuple[World, bytes, list[Record]]:
    """A crew of three, then ``posts`` posts in turn; returns the posts' records."""
    w = World(seed)
    a, b, c = person("a"), person("b"), person("c")
    space = w.found(a)
    w.admit(a, b, space)
    w.admit(a, c, space)
    made = []
    for n in range(posts):
        author = (a, b, c)[n % 3]
        made.append(w.post(author, space, CheckIn(f"check-in {n}", 1 + n % 5)))
    return w, space, made


def test_posts_arriving_one_by_one_extend_the_fold_exactly() -> None:
    w, space, posts = crew_with_posts(30)
    everything = w.of(space)
    state = spaces.fold(space, everything[:-len(posts)])
    for post in posts:
        extended = extend(state, [post])
        assert extended is not None, "a member's next post under the current keys"
        state = extended
        folded = spaces.fold(space, list(state.records.values()))
        assert state == folded
        assert state.bodies == folded.bodies  # not compared by ==: derived from the records
    assert state == spaces.fold(space, everything)


def test_a_batch_of_posts_from_several_authors_extends_in_one_go() -> None:
    w, space, _ = crew_with_posts(40, seed=3)
    everything = w.of(space)
    before = spaces.fold(space, everything[:-25])
    extended = extend(before, everything[-25:])
    assert extended is not None
    assert extended == spaces.fold(space, everything)
    assert set(extended.order) == set(before.order) | {r.id for r in everything[-25:]}


def test_what_the_fast_path_cannot_take_is_declined() -> None:
    w, space, _ = crew_with_posts(6)
    a, b, d = person("a"), person("b"), person("d")
    base = spaces.fold(space, w.of(space))
    # a membership change
    invite = w.invite(a, space)
    assert extend(base, [w.of(space)[-1]]) is None
    join = w.join(d, invite)
    assert extend(spaces.fold(space, w.of(space)[:-1]), [join]) is None
    # a post whose chain predecessor is missing: it would wait
    w2, space2, posts = crew_with_posts(9, seed=5)
    partial = spaces.fold(space2, [r for r in w2.of(space2) if r.id != posts[-4].id])
    assert extend(partial, [posts[-1]]) is None
    # nothing new is the same state
    assert extend(base, []) is base
    # an outsider's post: the fold refuses it, the fast path leaves that to the fold
    outsider = w.sign(person("stranger"), space,
                      spaces.bodies.draft(spaces.bodies.SealedBody(space, w.rng(40))))
    assert extend(base, [outsider]) is None
    assert pk(b) in base.active


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(moves=ops, seed=st.integers(0, 2**32 - 1), tail=st.integers(1, 12))
def test_extend_equals_the_fold_of_the_union(moves: list[tuple[str, int, int, int]], seed: int,
                                             tail: int) -> None:
    """Any history, honest or not, any split into what was held and what arrived."""
    sim = Sim()
    for move in moves:
        run(sim, move)
    shuffler = random.Random(seed)
    for author in sorted({pk(p) for p in (person("p0"), person("p1"), person("p2"))}):
        state = spaces.fold(sim.space, sim.w.of(sim.space))
        if state.is_member(author) and spaces.writable_epoch(state, author) is not None:
            key = next(p for p in (person(f"p{i}") for i in range(6)) if pk(p) == author)
            for n in range(shuffler.randint(0, 3)):
                sim.w.post(key, sim.space, Reply(sim.space, f"more {n}") if n % 2 else
                           Profile(f"name {n}"))
    records = sim.w.of(sim.space)
    for split in ("tail", "random"):
        if split == "tail":
            held, arrived = records[:-tail], records[-tail:]
        else:
            arrived = [r for r in records if r.id != sim.space and shuffler.random() < 0.2]
            held = [r for r in records if r not in arrived]
        if not held:
            continue
        extended = extend(spaces.fold(sim.space, held), arrived)
        event(f"{split}: {'extended' if extended is not None else 'declined'}")
        if extended is not None:
            assert extended == spaces.fold(sim.space, records)


def test_a_post_by_someone_a_proposal_names_goes_through_the_fold() -> None:
    """Their next record is ordered behind the proposal and its consents (a soft rule)."""
    w = World(7)
    a, b, c, d = (person(n) for n in "abcd")
    space = w.found(a)
    for joiner in (b, c, d):
        w.admit(a, joiner, space)
    w.post(b, space, CheckIn("before", 3))
    w.propose(a, space, b)  # needs a majority of the other three: not yet effective
    for n in range(12):
        w.post(c, space, CheckIn(f"meanwhile {n}", 2))
    held = w.of(space)
    later = w.post(b, space, CheckIn("after the proposal", 4))
    state = spaces.fold(space, held)
    assert not next(iter(state.removals.values())).effective
    assert extend(state, [later]) is None
    assert spaces.fold(space, [*held, later]).statuses[later.id].accepted


def test_opening_only_the_new_posts_gives_what_opening_all_gives() -> None:
    w, space, posts = crew_with_posts(20, seed=9)
    everything = w.of(space)
    state = spaces.fold(space, everything[:-len(posts)])
    reader = person("b")
    keyring = spaces.unlock(state, reader)
    opened = spaces.open_posts(state, keyring)
    for post in posts:
        extended = extend(state, [post])
        assert extended is not None
        state = extended
        opened = spaces.open_more(opened, state, keyring)
        assert opened == spaces.open_posts(state, spaces.unlock(state, reader))
    assert len(opened.posts) >= len(posts)


def test_a_refused_record_off_the_chain_still_makes_the_next_post_a_fork() -> None:
    """A record at seq n+2 whose prev is not the author's record n+1 (none is held yet) is
    refused (chain_broken), but an honest record at n+1 then forks the chain (the stray
    vouches for another record there): the fold refuses both, and extend declines."""
    w, space, _ = crew_with_posts(6, seed=11)
    b = person("b")
    head = w.heads[(pk(b), space)]
    stray = sign_record(b, kind="sealed", space=space, seq=head.seq + 2, prev=space,
                        ts=w.now, body=head.body)
    state = spaces.fold(space, [*w.of(space), stray])
    assert state.statuses[stray.id].reason is Reason.CHAIN_BROKEN
    assert state.statuses[head.id].accepted
    honest = w.post(b, space, CheckIn("the real next one", 3))
    assert honest.seq == stray.seq - 1
    forked = spaces.fold(space, [*w.of(space), stray])
    assert forked.statuses[honest.id].reason is Reason.FORK
    assert forked.statuses[stray.id].reason is Reason.FORK
    assert extend(state, [honest]) is None


def test_a_post_dated_before_its_predecessor_is_left_to_the_fold() -> None:
    """A post that follows its author's newest record but is dated before it is refused by the
    fold (``time_travel``, rule 1), as by a replica: the fast path declines it, alone and when
    it comes after a good post of the same batch."""
    w, space, _ = crew_with_posts(6, seed=5)
    b = person("b")
    state = spaces.fold(space, w.of(space))
    good = w.post(b, space, CheckIn("on time", 3))
    back = sign_record(b, kind="sealed", space=space, seq=good.seq + 1, prev=good.id,
                       ts=good.ts - 1, body=good.body)
    folded = spaces.fold(space, [*w.of(space), back])
    assert folded.statuses[back.id].reason is Reason.TIME_TRAVEL
    after = extend(state, [good])
    assert after is not None, "a member's next post under the current keys"
    assert extend(after, [back]) is None
    assert extend(state, [good, back]) is None


def test_after_the_order_broke_a_cycle_the_fold_decides() -> None:
    """One removal can close a cycle: a proposal made without seeing a join with the target's
    invite orders that join behind it and its consents, while a consent follows a rotation
    that names the join. The sort breaks the cycle by taking the smallest stalled record, which
    a new post's place can change, so extend declines. (Found in review.)"""
    w = World(0)
    a, b, c, d, e = (person(n) for n in "abcde")
    space = w.found(a)
    for joiner in (b, c, d):
        w.admit(a, joiner, space)
    w.post(b, space, CheckIn("b", 1))
    older = w.state(space)
    d_head = w.heads[(pk(d), space)]
    made = spaces.seal_post(older, d, CheckIn("written before the removal was seen", 2), w.rng)
    proposal = w.propose(a, space, b)  # a has not seen the join below
    w.join(e, w.invite(b, space))  # b invites e meanwhile
    w.rotate(c, space)  # c sees the join and rotates, naming it
    w.consent(c, space, proposal)  # then consents
    held = w.of(space)
    state = spaces.fold(space, held)
    assert state.stalled
    late = sign_record(d, kind=made.kind, space=space, seq=d_head.seq + 1, prev=d_head.id,
                       ts=w.tick(), body=made.body)
    assert extend(state, [late]) is None
    assert spaces.fold(space, [*held, late]).statuses[late.id].accepted


def test_a_record_refused_early_that_waits_for_the_new_one_sends_it_to_the_fold() -> None:
    """A record can be both refused (its body) and waiting (its prev is absent); once the prev
    arrives it takes its turn in the order, so extend declines. (Found in review.)"""
    w = World(1)
    a, b = person("a"), person("b")
    space = w.found(a)
    w.admit(a, b, space)
    w.post(b, space, CheckIn("b", 1))
    missing = w.post(b, space, CheckIn("b", 2))
    bad = sign_record(b, kind="sealed", space=space, seq=missing.seq + 1, prev=missing.id,
                      ts=w.tick(), body=b"\xc1")
    held = [r for r in [*w.of(space), bad] if r.id != missing.id]
    state = spaces.fold(space, held)
    assert bad.id not in state.sequence
    assert extend(state, [missing]) is None
    assert bad.id in spaces.fold(space, [*held, missing]).sequence
