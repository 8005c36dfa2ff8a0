"""Proposals by consent (``meshcrew.spaces.proposals``): each rule, then properties over
random histories: any delivery order and duplicates give the same outcome, and the outcome is
the one a step-by-step reading of the rules gives."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from hypothesis_profiles import examples
from meshcrew import spaces
from meshcrew.reasons import Reason
from meshcrew.records import Record, RecordError
from meshcrew.spaces import (
    Amend,
    Answer,
    CheckIn,
    Position,
    Post,
    Proposal,
    ProposalStatus,
    Withdraw,
    decide,
)
from meshcrew.spaces.posts import decode_post, encode_post
from meshcrew.spaces.proposals import Proposals
from spaces_world import DAY, HOUR, World, person, pk

CONSENT, ASIDE, OBJECT = Position.CONSENT, Position.STAND_ASIDE, Position.OBJECT


def crew(*names: str, seed: int = 0) -> tuple[World, bytes, list[SigningKey]]:
    """A crew founded by the first name, the others admitted, everyone holding the keys."""
    w = World(seed)
    people = [person(n) for n in names]
    space = w.found(people[0])
    for joiner in people[1:]:
        w.admit(people[0], joiner, space)
    for p in people:  # each posts once, so later posts need no rotation
        w.post(p, space, CheckIn("here", 3))
    return w, space, people


def outcome(w: World, space: bytes, now: int, reader: SigningKey | None = None, *,
            records: list[Record] | None = None, quorum: int = 100) -> Proposals:
    opened = w.opened(reader or person("a"), space, records)
    return decide(opened, now, lambda _post: quorum)


def propose(w: World, who: SigningKey, space: bytes, *, ttl: int = 7 * DAY,
            title: str = "Meet on Thursdays") -> Record:
    ts = w.tick()
    return w.post(who, space, Proposal(title, "instead of Tuesdays", ts + ttl), ts=ts)


def answer(w: World, who: SigningKey, space: bytes, proposal: Record, position: Position,
           reason: str = "", *, ts: int | None = None) -> Record:
    if position is not CONSENT and not reason:
        reason = "because"
    return w.post(who, space, Answer(proposal.id, position, reason), ts=ts)


def test_it_passes_when_everyone_has_consented_or_stood_aside() -> None:
    w, space, (a, b, c) = crew("a", "b", "c")
    p = propose(w, a, space)
    answer(w, b, space, p, CONSENT)
    view = outcome(w, space, w.now).get(p.id)
    assert view is not None
    assert view.status is ProposalStatus.OPEN
    assert view.waiting == (pk(c),)
    last = answer(w, c, space, p, ASIDE, "I will be away")
    view = outcome(w, space, w.now).get(p.id)
    assert view is not None
    assert view.status is ProposalStatus.PASSED
    assert view.decided_ms == last.ts  # the instant the last answer was signed
    assert view.answers[pk(c)].reason == "I will be away"
    assert view.waiting == ()
    assert view.electorate == {pk(a), pk(b), pk(c)}


def test_an_objection_blocks_until_it_is_changed() -> None:
    w, space, (a, b, c) = crew("a", "b", "c")
    p = propose(w, a, space)
    answer(w, b, space, p, OBJECT, "Thursdays I look after my kids")
    answer(w, c, space, p, CONSENT)
    view = outcome(w, space, w.now).get(p.id)
    assert view is not None
    assert view.status is ProposalStatus.BLOCKED
    assert not view.decided
    assert [o.member for o in view.objections] == [pk(b)]
    changed = answer(w, b, space, p, CONSENT)
    view = outcome(w, space, w.now).get(p.id)
    assert view is not None
    assert view.status is ProposalStatus.PASSED
    assert view.decided_ms == changed.ts


def test_at_the_deadline_an_objection_blocks_for_good() -> None:
    w, space, (a, b, c) = crew("a", "b", "c")
    p = propose(w, a, space, ttl=HOUR)
    answer(w, b, space, p, OBJECT, "not now")
    deadline = p.ts + HOUR
    view = outcome(w, space, deadline).get(p.id)
    assert view is not None
    assert view.status is ProposalStatus.BLOCKED
    assert view.decided_ms == deadline
    # c's consent a minute later is refused and changes nothing
    late = answer(w, c, space, p, CONSENT, ts=deadline + 60_000)
    after = outcome(w, space, deadline + DAY)
    assert after.refused[late.id].reason is Reason.PROPOSAL_CLOSED
    assert after.get(p.id) == view


def test_at_the_deadline_too_few_answers_expire_it_unless_the_quorum_is_met() -> None:
    w, space, (a, b, _c, _d, _e) = crew("a", "b", "c", "d", "e")
    p = propose(w, a, space, ttl=HOUR)
    answer(w, b, space, p, CONSENT)
    deadline = p.ts + HOUR
    before = outcome(w, space, deadline - 1).get(p.id)
    assert before is not None
    assert before.status is ProposalStatus.OPEN
    everyone = outcome(w, space, deadline).get(p.id)  # quorum: all five
    assert everyone is not None
    assert everyone.status is ProposalStatus.EXPIRED
    assert everyone.needed == 5
    two_fifths = outcome(w, space, deadline, quorum=40).get(p.id)  # a and b: 2 of 5
    assert two_fifths is not None
    assert two_fifths.status is ProposalStatus.PASSED
    assert two_fifths.decided_ms == deadline
    half = outcome(w, space, deadline, quorum=50).get(p.id)  # needs 3
    assert half is not None
    assert half.status is ProposalStatus.EXPIRED


def test_a_member_who_leaves_no_longer_counts_an_objection_included() -> None:
    w, space, (a, b, c) = crew("a", "b", "c")
    p = propose(w, a, space)
    answer(w, b, space, p, CONSENT)
    answer(w, c, space, p, OBJECT, "no")
    leave = w.leave(c, space)
    view = outcome(w, space, w.now).get(p.id)
    assert view is not None
    assert view.status is ProposalStatus.PASSED
    assert view.decided_ms == leave.ts
    assert view.electorate == {pk(a), pk(b)}


def test_a_joiner_is_not_waited_for_but_their_answer_counts() -> None:
    w, space, (a, b, c) = crew("a", "b", "c")
    p = propose(w, a, space)
    d = person("d")
    w.admit(a, d, space)
    answer(w, b, space, p, CONSENT)
    objection = answer(w, d, space, p, OBJECT, "I just arrived and this worries me")
    view = outcome(w, space, w.now).get(p.id)
    assert view is not None
    assert view.status is ProposalStatus.BLOCKED
    assert pk(d) in view.electorate
    answer(w, d, space, p, ASIDE, "fine, I trust you")
    answer(w, c, space, p, CONSENT)
    view = outcome(w, space, w.now).get(p.id)
    assert view is not None
    assert view.status is ProposalStatus.PASSED
    # Without d's answers, the proposal does not wait for d.
    quiet = [r for r in w.of(space) if r.author != pk(d) or r.ts < objection.ts]
    quiet = [r for r in quiet if r.id != objection.id]
    view = outcome(w, space, w.now, records=quiet).get(p.id)
    assert view is not None
    assert view.status is ProposalStatus.PASSED
    assert pk(d) not in view.electorate


def test_the_proposer_leaving_withdraws_it() -> None:
    w, space, (_a, b, _c) = crew("a", "b", "c")
    p = propose(w, b, space)
    gone = w.leave(b, space)
    view = outcome(w, space, w.now).get(p.id)
    assert view is not None
    assert view.status is ProposalStatus.WITHDRAWN
    assert view.decided_ms == gone.ts
    assert view.withdrawal is None


def test_amendments_and_withdrawal_are_the_proposers_alone() -> None:
    w, space, (a, b, c) = crew("a", "b", "c")
    p = propose(w, a, space)
    early = answer(w, b, space, p, CONSENT)
    foreign = w.post(b, space, Amend(p.id, "Meet on Fridays", "b's idea"))
    own = w.post(a, space, Amend(p.id, "Meet on Thursdays at 7", "an hour later"))
    answer(w, c, space, p, OBJECT, "7 is too late")
    result = outcome(w, space, w.now)
    view = result.get(p.id)
    assert view is not None
    assert result.refused[foreign.id].reason is Reason.NOT_PROPOSER
    assert view.title == "Meet on Thursdays at 7"
    assert [x.record_id for x in view.amendments] == [own.id]
    assert view.answers[pk(b)].before_amendment
    assert view.answers[pk(b)].post.record_id == early.id
    assert not view.answers[pk(c)].before_amendment
    not_mine = w.post(c, space, Withdraw(p.id))
    mine = w.post(a, space, Withdraw(p.id, "we will talk first"))
    late = answer(w, b, space, p, CONSENT)
    result = outcome(w, space, w.now)
    view = result.get(p.id)
    assert view is not None
    assert view.status is ProposalStatus.WITHDRAWN
    assert view.withdrawal is not None
    assert view.withdrawal.record_id == mine.id
    assert result.refused[not_mine.id].reason is Reason.NOT_PROPOSER
    assert result.refused[late.id].reason is Reason.PROPOSAL_CLOSED


def test_bad_answers_are_refused_with_their_reason_and_change_nothing() -> None:
    w, space, (a, b, c) = crew("a", "b", "c")
    p = propose(w, a, space, ttl=HOUR)
    answer(w, b, space, p, CONSENT)
    checkin = w.post(c, space, CheckIn("not a proposal", 2))
    clean = outcome(w, space, w.now)
    bad = [
        (w.post(c, space, Answer(checkin.id, OBJECT, "?")), Reason.PROPOSAL_UNKNOWN),
        (w.post(c, space, Answer(b"\x07" * 32, OBJECT, "?")), Reason.PROPOSAL_UNKNOWN),
        (w.post(a, space, Answer(p.id, OBJECT, "my own")), Reason.NOT_ALLOWED),
        (w.post(c, space, Withdraw(p.id)), Reason.NOT_PROPOSER),
        (w.post(b, space, Amend(b"\x08" * 32, "x", "y")), Reason.PROPOSAL_UNKNOWN),
        # c's last: a record dated before c's previous one would be refused (time_travel)
        (w.post(c, space, Answer(p.id, OBJECT, "late"), ts=p.ts + HOUR), Reason.PROPOSAL_CLOSED),
    ]
    result = outcome(w, space, w.now)
    for record, reason in bad:
        assert result.refused[record.id].reason is reason
    assert result.proposals == clean.proposals
    # A proposal whose deadline is not after its own time is refused as a bad body.
    stale = w.post(a, space, Proposal("Yesterday", "", w.now))
    assert outcome(w, space, w.now).refused[stale.id].reason is Reason.BAD_BODY


def test_an_answer_can_be_changed_until_it_is_decided_and_the_latest_by_chain_counts() -> None:
    w, space, (a, b, c) = crew("a", "b", "c")
    p = propose(w, a, space)
    answer(w, b, space, p, OBJECT, "first thought")
    answer(w, b, space, p, ASIDE, "second thought")
    view = outcome(w, space, w.now).get(p.id)
    assert view is not None
    assert view.answers[pk(b)].position is ASIDE
    assert view.status is ProposalStatus.OPEN
    last = answer(w, c, space, p, CONSENT)
    later = answer(w, b, space, p, OBJECT, "third thought", ts=last.ts + 1)  # just after
    result = outcome(w, space, w.now)
    assert result.refused[later.id].reason is Reason.PROPOSAL_CLOSED
    view = result.get(p.id)
    assert view is not None
    assert view.status is ProposalStatus.PASSED


def test_an_answer_dated_before_its_proposal_counts_from_the_proposal() -> None:
    """A clock running behind: the answer is taken as signed when the proposal was. (Dated no
    earlier than its author's previous record, which a replica would refuse: time_travel.)"""
    w, space, (a, b, c) = crew("a", "b", "c")
    p = propose(w, a, space)
    behind = {key: w.heads[(pk(key), space)].ts for key in (b, c)}
    assert behind[b] < behind[c] < p.ts
    answer(w, b, space, p, CONSENT, ts=behind[b])
    answer(w, c, space, p, ASIDE, "away", ts=behind[c])
    view = outcome(w, space, w.now).get(p.id)
    assert view is not None
    assert view.status is ProposalStatus.PASSED
    assert view.decided_ms == p.ts


def test_an_answer_signed_with_an_amendment_answers_the_new_version() -> None:
    w, space, (a, b, c) = crew("a", "b", "c")
    p = propose(w, a, space)
    amended = w.post(a, space, Amend(p.id, "Thursdays at 7", ""))
    answer(w, b, space, p, OBJECT, "too late in the day", ts=amended.ts)
    answer(w, c, space, p, OBJECT, "no", ts=amended.ts - 1)
    view = outcome(w, space, w.now).get(p.id)
    assert view is not None
    assert not view.answers[pk(b)].before_amendment
    assert view.answers[pk(c)].before_amendment


def test_every_member_reads_the_same_outcome() -> None:
    w, space, (a, b, c) = crew("a", "b", "c")
    p = propose(w, a, space)
    answer(w, b, space, p, CONSENT)
    answer(w, c, space, p, OBJECT, "no")
    views = {key: outcome(w, space, w.now, key).get(p.id) for key in (a, b, c)}
    assert len({(v.status, v.decided_ms, tuple(v.answers)) for v in views.values()
                if v is not None}) == 1


# -- properties -----------------------------------------------------------------------------

NAMES = ("a", "b", "c", "d", "e")
WINDOW = 24
"""Events happen at the instants base - 2 .. base + WINDOW - 1 (a few signed before the
proposal, as by a clock behind); the deadline is at base + WINDOW."""

event = st.tuples(st.sampled_from(["answer", "answer", "answer", "leave", "join", "amend",
                                   "withdraw", "foreign"]),
                  st.integers(0, len(NAMES) - 1), st.sampled_from(list(Position)),
                  st.integers(-2, WINDOW - 1))


@dataclass
class History:
    w: World
    space: bytes
    proposal: Record
    records: list[Record]
    base: int

    def readers(self) -> list[SigningKey]:
        """The current members (they read every post of a crew with history)."""
        state = self.w.state(self.space)
        return [person(n) for n in NAMES if state.is_member(pk(person(n)))]


def make_history(events: list[tuple[str, int, Position, int]], proposer: int) -> History:
    w, space, people = crew("a", "b", "c", "d", seed=proposer)
    e = person("e")  # a possible joiner
    base = w.now + 1000
    p = w.post(people[proposer], space, Proposal("P", "", base + WINDOW), ts=base)

    def signed_at(key: SigningKey, at: int) -> int:
        """When ``key`` signs at ``at``: as a real client, never before its previous record (a
        replica refuses one dated before it: time_travel)."""
        head = w.heads.get((pk(key), space))
        return at if head is None else max(at, head.ts)

    for name, who, position, offset in sorted(events, key=lambda item: item[3]):
        key = person(NAMES[who])
        at = base + offset
        state = w.state(space)
        if name == "join":
            if state.is_member(pk(e)) or pk(e) in state.members:
                continue
            inviter = next(k for k in people if state.is_member(pk(k)))
            code = w.invite(inviter, space, ts=signed_at(inviter, at))
            w.join(e, code, ts=at)
            w.rotate(inviter, space, ts=signed_at(inviter, at))
            continue
        if not state.is_member(pk(key)):
            continue
        if name == "leave":
            if len(state.active) == 1:
                continue  # someone stays to read what was decided
            w.sign(key, space, spaces.leave_space(state, pk(key)), ts=signed_at(key, at))
            continue
        reason = "" if position is CONSENT else f"{NAMES[who]} at {offset}"
        choices: dict[str, Post] = {"answer": Answer(p.id, position, reason),
                                    "amend": Amend(p.id, f"P{offset}", ""),
                                    "withdraw": Withdraw(p.id),
                                    "foreign": Answer(b"\x01" * 32, position, reason or "x")}
        post = choices[name]
        if spaces.writable_epoch(state, pk(key)) is None:  # w.post would rotate at its clock
            w.rotate(key, space, ts=signed_at(key, at))
        w.post(key, space, post, ts=signed_at(key, at))
    return History(w, space, p, w.of(space), base)


def reference(h: History, quorum: int) -> tuple[ProposalStatus, int | None]:
    """The rules read literally, one instant at a time (no shortcut over candidate times)."""
    state = h.w.state(h.space)
    opened = h.w.opened(h.readers()[0], h.space)
    events = []
    for change in state.changes:
        events.append((state.records[change.record_id].ts, state.changes.index(change),
                       change.member, change.change.value in ("founded", "joined")))

    def member(key: bytes, t: int) -> bool:
        now_in = False
        for at, _, who, joined in sorted(events):
            if who == key and at <= t:
                now_in = joined
        return now_in

    start, deadline, proposer = h.proposal.ts, h.base + WINDOW, h.proposal.author
    posts = [p for p in opened.posts if getattr(p.post, "to", None) == h.proposal.id]
    answers = [p for p in posts if isinstance(p.post, Answer) and p.author != proposer]
    withdrawals = sorted(max(p.ts, start) for p in posts
                         if isinstance(p.post, Withdraw) and p.author == proposer)
    base = {k for k in state.members if member(k, start)} | {proposer}

    def at(t: int) -> tuple[set[bytes], dict[bytes, Position]]:
        latest: dict[bytes, tuple[int, Position]] = {}
        for p in answers:
            if max(p.ts, start) <= t and (p.author not in latest or
                                          p.seq > latest[p.author][0]):
                assert isinstance(p.post, Answer)
                latest[p.author] = (p.seq, p.post.position)
        electorate = {k for k in base | set(latest) if member(k, t)}
        return electorate, {k: v[1] for k, v in latest.items() if k in electorate}

    for t in range(start, deadline):
        if (withdrawals and withdrawals[0] <= t) or not member(proposer, t):
            return ProposalStatus.WITHDRAWN, t
        electorate, held = at(t)
        if set(held) == electorate - {proposer} and OBJECT not in held.values():
            return ProposalStatus.PASSED, t
    electorate, held = at(deadline - 1)
    if OBJECT in held.values():
        return ProposalStatus.BLOCKED, deadline
    if len(held) + 1 >= -(-quorum * len(electorate) // 100):
        return ProposalStatus.PASSED, deadline
    return ProposalStatus.EXPIRED, deadline


@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(event, max_size=14), proposer=st.integers(0, 3),
       quorum=st.sampled_from([100, 75, 50, 1]), seed=st.integers(0, 2**32 - 1))
@example(events=[("withdraw", 0, CONSENT, 0)], proposer=1, quorum=100, seed=0)  # not theirs
def test_any_order_and_duplicates_give_the_outcome_the_rules_give(
        events: list[tuple[str, int, Position, int]], proposer: int, quorum: int,
        seed: int) -> None:
    h = make_history(events, proposer)
    after = h.base + WINDOW + 1
    readers = h.readers()
    expected = outcome(h.w, h.space, after, readers[0], records=h.records, quorum=quorum)
    shuffler = random.Random(seed)
    shuffled = h.records + shuffler.sample(h.records, k=len(h.records) // 3)
    shuffler.shuffle(shuffled)
    for reader in readers:  # every current member, whatever they received first
        assert outcome(h.w, h.space, after, reader, records=shuffled,
                       quorum=quorum) == expected
    view = expected.get(h.proposal.id)
    assert view is not None
    assert (view.status, view.decided_ms) == reference(h, quorum)
    # Invariants the rules promise.
    if view.status is ProposalStatus.PASSED and view.decided_ms != h.base + WINDOW:
        assert not view.objections
        assert not view.waiting
    for rid, status in expected.refused.items():
        assert status.reason in {Reason.PROPOSAL_CLOSED, Reason.PROPOSAL_UNKNOWN,
                                 Reason.NOT_PROPOSER, Reason.NOT_ALLOWED}
        assert rid not in {a.post.record_id for a in view.answers.values()}
    # Rule 7: what the proposer's fellow members signed after the decision is closed, and
    # only that.
    decided = view.decided_ms
    assert decided is not None
    for record in h.records:
        post = h.w.opened(readers[0], h.space).post(record.id)
        if post is None or getattr(post.post, "to", None) != h.proposal.id \
                or post.author == h.proposal.author or not isinstance(post.post, Answer):
            continue
        closed = expected.refused.get(record.id)
        late = max(record.ts, h.proposal.ts) > decided or record.ts >= h.base + WINDOW
        assert (closed is not None and closed.reason is Reason.PROPOSAL_CLOSED) == late


@settings(max_examples=examples(25), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(event, max_size=12), proposer=st.integers(0, 3))
def test_a_decided_outcome_never_changes_later(events: list[tuple[str, int, Position, int]],
                                               proposer: int) -> None:
    """Once decided, what is signed afterwards (answers, departures, time passing) changes
    nothing: the outcome at the deadline is the outcome a year later."""
    h = make_history(events, proposer)
    deadline = h.base + WINDOW
    reader = h.readers()[0]
    at_deadline = outcome(h.w, h.space, deadline, reader, records=h.records).get(h.proposal.id)
    w = h.w
    for name in ("b", "c", "d"):
        key = person(name)
        state = w.state(h.space)
        if state.is_member(pk(key)) and pk(key) != h.proposal.author:
            if spaces.writable_epoch(state, pk(key)) is None:  # not at w.post's clock, before
                w.rotate(key, h.space, ts=deadline + 5)  # the answers just signed
            w.post(key, h.space, Answer(h.proposal.id, OBJECT, "too late"), ts=deadline + 5)
    later = outcome(w, h.space, deadline + 365 * DAY, reader, records=w.of(h.space))
    assert later.get(h.proposal.id) == at_deadline


def test_a_stand_aside_or_an_objection_needs_a_reason_and_positions_are_three() -> None:
    target = b"\x05" * 32
    for position in (ASIDE, OBJECT):
        with pytest.raises(RecordError) as refused:
            Answer(target, position, "  ")
        assert refused.value.reason is Reason.BAD_BODY
    assert decode_post(encode_post(Answer(target, OBJECT, "why"))) == Answer(target, OBJECT,
                                                                            "why")
    wire = encode_post(Answer(target, CONSENT)).replace(b"consent", b"maybe!!")
    with pytest.raises(RecordError, match="position"):
        decode_post(wire)
