"""Records off their author's chain: the pure fold agrees with a replica and then the fold.

A replica takes an author's record at seq ``k`` only after their record at ``k - 1``, named by
its ``prev`` (``store/ingest.py``): a record naming another one proves a fork at ``k - 1``, and
the chain keeps only what lies below it; a record after a gap waits, with everything built on
it; a record dated before its predecessor is refused (``time_travel``), proves no fork, and
what builds on it waits. Such records never reach the fold there, and what names them waits.
The pure fold is handed them directly (a caller's set, a test's): it refuses them (``fork``,
``chain_broken``, ``time_travel``) and leaves them out of the order as if absent (rule 1), so
that they leave the state as the replica's records alone leave it. In particular they do not
move their author's position, the seq a removal reads to tell whether the target's later
records overtook it.

Compared over random membership histories (the property world of
``test_spaces_properties.py``, forks and late rotations included) with stray records signed
right after a member's head (naming another record, or dated before the head) or after a gap,
some with a record built on them or a good one beside them: the fold of every record against
the fold of what a real replica holds of them. Pure but for that replica (SQLite in a
temporary folder).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

import test_spaces_properties as members_world
from hypothesis_profiles import examples
from meshcrew import spaces
from meshcrew.home import Home
from meshcrew.reasons import Reason
from meshcrew.records import Record, sign_record
from meshcrew.spaces import CheckIn, MemberStatus, SpaceState
from meshcrew.spaces.bodies import LeaveBody, draft
from meshcrew.spaces.state import Outcome, Status
from meshcrew.store import Replica
from spaces_world import World, person, pk

ADA, BO = person("ada"), person("bo")
LEAVE = draft(LeaveBody()).body

_COMPARED = ("kind", "founder", "history", "members", "epochs", "current_epoch_id", "invites",
             "removals", "changes", "carriers", "pending", "devices", "floors", "stalled",
             "recipients", "order")


def as_a_replica_holds(space_id: bytes, records: Iterable[Record]) -> list[Record]:
    """The records of ``space_id`` a fresh replica accepts of these (its chain rules)."""
    records = list(records)
    now = max(r.ts for r in records)
    with (tempfile.TemporaryDirectory(prefix="meshcrew-fold-chains-") as tmp,
          Replica.open(Home(Path(tmp) / "home")) as replica):
        replica.append([r.raw for r in records], sender="test", now_ms=now)
        return list(replica.each_space_record(space_id))


def assert_as_after_a_replica(space_id: bytes, records: list[Record]) -> SpaceState:
    """The fold of ``records`` equals the fold of what a replica holds of them, in every field
    of the state and every status of a record the replica holds; returns the former."""
    held = as_a_replica_holds(space_id, records)
    whole, replicated = spaces.fold(space_id, records), spaces.fold(space_id, held)
    for name in _COMPARED:
        assert getattr(whole, name) == getattr(replicated, name), name
    for record in held:
        assert whole.statuses[record.id] == replicated.statuses[record.id]
    return whole


def stray(key: SigningKey, space_id: bytes, seq: int, prev: bytes, ts: int) -> Record:
    """A leave signed by ``key`` at ``seq`` naming ``prev``: off their chain if ``prev`` is
    not their record at ``seq - 1``."""
    return sign_record(key, kind="leave", space=space_id, seq=seq, prev=prev, ts=ts, body=LEAVE)


def test_a_record_after_a_gap_does_not_overtake_a_removal() -> None:
    """Bo signs a record two places past his head (a gap below it, so ``chain_broken``); Ada,
    alone in the electorate, proposes removing Bo as of his head. The stray must not count as
    Bo's record after the named one, or the removal is overtaken and Bo stays, where a replica
    (which never holds the stray) removes him. (A stray with a smaller id than the proposal:
    when refused strays were ordered, it came first.)"""
    w = World()
    space = w.found(ADA)
    w.admit(ADA, BO, space)
    head = w.heads[(pk(BO), space)]
    proposal = w.propose(ADA, space, BO)
    off = next(o for o in (stray(BO, space, head.seq + 2, head.id, w.now + n)
                           for n in range(200)) if o.id < proposal.id)
    state = assert_as_after_a_replica(space, [*w.of(space), off])
    assert state.status(off.id) == Status(Outcome.REJECTED, Reason.CHAIN_BROKEN)
    assert off.id not in state.sequence
    assert state.members[pk(BO)].status is MemberStatus.REMOVED
    assert state.removals[proposal.id].effective_by == proposal.id


def test_a_record_built_on_a_broken_link_is_refused_with_it() -> None:
    """Bo's stray after a gap, and a leave that names the stray as its ``prev`` (its own link
    is whole): both are off Bo's chain, so Bo has not left, as on a replica, where both wait."""
    w = World()
    space = w.found(ADA)
    w.admit(ADA, BO, space)
    w.post(BO, space, CheckIn("here", 3))  # let in: his records after it count
    head = w.heads[(pk(BO), space)]
    off = stray(BO, space, head.seq + 2, head.id, w.tick())
    built = stray(BO, space, off.seq + 1, off.id, w.tick())
    state = assert_as_after_a_replica(space, [*w.of(space), off, built])
    assert state.status(off.id) == Status(Outcome.REJECTED, Reason.CHAIN_BROKEN)
    assert state.status(built.id) == Status(Outcome.REJECTED, Reason.CHAIN_BROKEN,
                                            f"the author's chain broke at seq {off.seq}")
    assert state.members[pk(BO)].status is MemberStatus.ACTIVE
    assert built.id not in state.order


def test_a_record_naming_another_prev_forks_the_chain_below_it() -> None:
    """Bo's stray right after his head names Ada's record as its prev: it vouches for a second
    record of Bo's at his head's seq, a fork there, so his head (a post) is refused with it,
    as a replica keeps only what lies below a fork."""
    w = World()
    space = w.found(ADA)
    w.admit(ADA, BO, space)
    head = w.post(BO, space, CheckIn("here", 3))
    off = stray(BO, space, head.seq + 1, w.heads[(pk(ADA), space)].id, w.tick())
    state = assert_as_after_a_replica(space, [*w.of(space), off])
    forked = Status(Outcome.REJECTED, Reason.FORK, f"the author forked at seq {head.seq}")
    assert state.status(head.id) == state.status(off.id) == forked
    assert head.id not in state.sequence


def test_a_record_that_names_a_forked_record_waits() -> None:
    """Ada proposes removing Bo as of his head, then Bo signs a twin of his head: his head is
    refused (a fork), and the proposal that names it waits for it, as on a replica, which never
    holds it: Bo is not removed as of a record that does not count."""
    w = World()
    space = w.found(ADA)
    w.admit(ADA, BO, space)
    head = w.post(BO, space, CheckIn("here", 3))
    proposal = w.propose(ADA, space, BO)
    twin = sign_record(BO, kind="leave", space=space, seq=head.seq, prev=head.prev,
                       ts=w.tick(), body=LEAVE)
    state = assert_as_after_a_replica(space, [*w.of(space), twin])
    assert state.status(head.id).reason is Reason.FORK
    assert state.status(proposal.id) == Status(Outcome.WAITING, missing=frozenset({head.id}))
    assert state.members[pk(BO)].status is MemberStatus.ACTIVE
    assert proposal.id not in state.removals


def let_in_bo() -> tuple[World, bytes, Record]:
    """Ada's crew, with Bo let in (his records after his post count); and Bo's post."""
    w = World()
    space = w.found(ADA)
    w.admit(ADA, BO, space)
    return w, space, w.post(BO, space, CheckIn("here", 3))


def travelled(record: Record, before: Record) -> Status:
    """The refusal of ``record``, dated before ``before``, its predecessor."""
    return Status(Outcome.REJECTED, Reason.TIME_TRAVEL,
                  f"seq {record.seq} at {record.ts} ms, seq {before.seq} at {before.ts} ms")


def test_a_record_dated_before_its_predecessor_is_no_fork() -> None:
    """Bo signs a record after his head dated before it, then a leave at the same place: a
    replica refuses the first (``time_travel``), holds no fork and takes the leave, so Bo has
    left, where a fold that took both for a fork kept Bo and his leave refused."""
    w, space, head = let_in_bo()
    back = stray(BO, space, head.seq + 1, head.id, head.ts - 1)
    leave = stray(BO, space, head.seq + 1, head.id, w.tick())
    state = assert_as_after_a_replica(space, [*w.of(space), back, leave])
    assert state.status(back.id) == travelled(back, head)
    assert state.status(leave.id).accepted
    assert state.members[pk(BO)].status is MemberStatus.LEFT
    assert back.id not in state.sequence


def test_a_record_naming_a_time_traveller_waits() -> None:
    """Bo's leave names his record dated before his head: a replica never holds its
    predecessor, so it waits there, and Bo has not left."""
    w, space, head = let_in_bo()
    back = stray(BO, space, head.seq + 1, head.id, head.ts - 1)
    leave = stray(BO, space, back.seq + 1, back.id, w.tick())
    state = assert_as_after_a_replica(space, [*w.of(space), back, leave])
    assert state.status(back.id) == travelled(back, head)
    assert state.status(leave.id) == Status(Outcome.WAITING, missing=frozenset({back.id}))
    assert state.members[pk(BO)].status is MemberStatus.ACTIVE


def test_a_record_naming_a_time_traveller_beside_a_good_one_proves_a_fork() -> None:
    """Bo's record dated before his head, a leave at its place, and a record naming the first:
    with the leave held, that record vouches for a second record of Bo's at its place, a fork
    (a replica keeps both as evidence), so Bo's leave does not count."""
    w, space, head = let_in_bo()
    back = stray(BO, space, head.seq + 1, head.id, head.ts - 1)
    leave = stray(BO, space, head.seq + 1, head.id, w.tick())
    built = stray(BO, space, back.seq + 1, back.id, w.tick())
    state = assert_as_after_a_replica(space, [*w.of(space), back, leave, built])
    assert state.status(back.id) == travelled(back, head)
    forked = Status(Outcome.REJECTED, Reason.FORK, f"the author forked at seq {leave.seq}")
    assert state.status(leave.id) == state.status(built.id) == forked
    assert state.status(head.id).accepted
    assert state.members[pk(BO)].status is MemberStatus.ACTIVE


def test_a_record_after_a_time_traveller_is_not_judged_against_it() -> None:
    """Bo's record dated before his head, then one naming it and dated before it too: a
    replica never holds the first, so the second waits for it, unjudged. Beside a leave at the
    first one's place, the replica judges the second against the leave and finds a fork (its
    ``prev`` is not the leave), not time travel: Bo's leave does not count."""
    w, space, head = let_in_bo()
    back = stray(BO, space, head.seq + 1, head.id, head.ts - 2)
    further = stray(BO, space, back.seq + 1, back.id, head.ts - 3)
    state = assert_as_after_a_replica(space, [*w.of(space), back, further])
    assert state.status(back.id) == travelled(back, head)
    assert state.status(further.id) == Status(Outcome.WAITING, missing=frozenset({back.id}))
    leave = stray(BO, space, head.seq + 1, head.id, w.tick())
    state = assert_as_after_a_replica(space, [*w.of(space), back, further, leave])
    assert state.status(back.id) == travelled(back, head)
    assert state.status(further.id).reason is Reason.FORK
    assert state.status(leave.id).reason is Reason.FORK
    assert state.members[pk(BO)].status is MemberStatus.ACTIVE


def test_time_travel_after_a_fork() -> None:
    """Bo signs two leaves after his head, a fork, and a third record there dated before his
    head: a replica judges that one before the fork (``time_travel``) and holds none of them.
    A record dated before one of the leaves, above the fork, is refused as forked (the replica
    refuses it ``author_forked`` without judging its time)."""
    w, space, head = let_in_bo()
    leaves = [stray(BO, space, head.seq + 1, head.id, w.tick()) for _ in range(2)]
    back = stray(BO, space, head.seq + 1, head.id, head.ts - 1)
    above = stray(BO, space, head.seq + 2, leaves[0].id, leaves[0].ts - 1)
    state = assert_as_after_a_replica(space, [*w.of(space), *leaves, back, above])
    forked = Status(Outcome.REJECTED, Reason.FORK, f"the author forked at seq {head.seq + 1}")
    assert state.status(leaves[0].id) == state.status(leaves[1].id) == forked
    assert state.status(above.id) == forked
    assert state.status(back.id) == travelled(back, head)
    assert state.status(head.id).accepted
    assert state.members[pk(BO)].status is MemberStatus.ACTIVE


# The property world's moves, its late rotation among them: signed ahead of its author's clock,
# so their next record goes back in time, which a replica refuses (and what builds on it waits).
MOVES = members_world.HONEST * 3 + members_world.DISHONEST
moves = st.lists(st.tuples(st.sampled_from(MOVES), st.integers(0, members_world.N - 1),
                           st.integers(0, members_world.N - 1), st.integers(0, 7)),
                 min_size=4, max_size=30)
# (author, places past their head, what it names as prev, what else is signed): a stray names
# one of its author's records not right below it, another's, an absent one, or ("back") their
# head, right after it but dated before it; a record may be built on it ("on"), and a good
# record signed beside it, at its place with its prev ("beside").
strays = st.lists(st.tuples(st.integers(0, members_world.N - 1), st.integers(1, 3),
                            st.sampled_from(["own", "other", "absent", "back"]),
                            st.sampled_from(["", "on", "beside", "on beside"])),
                  min_size=1, max_size=3)


@settings(max_examples=examples(30), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(moves=moves, off=strays)
# The founder's stray after a gap and a leave built on it (found when only the stray was refused).
@example(moves=[("sync", 0, 0, 0)] * 4, off=[(0, 2, "own", "on")])
# Another member's proposal names the founder's head, which the founder then forks.
@example(moves=[("sync", 0, 0, 0)] * 2 + [("propose", 1, 0, 0), ("fork", 0, 0, 0)],
         off=[(0, 2, "own", "")])
# A record dated before a member's head and a good leave beside it (no fork: the leave counts);
# with one built on the first too (a fork).
@example(moves=[("sync", 0, 0, 0)] * 2, off=[(1, 1, "back", "beside")])
@example(moves=[("sync", 0, 0, 0)] * 2, off=[(1, 1, "back", "on beside")])
# A late rotation, then the rotator's records go back in time.
@example(moves=[("late_rotate", 1, 0, 0), ("post", 1, 0, 0), ("invite", 1, 0, 0)],
         off=[(1, 1, "back", "beside")])
def test_records_off_their_chain_change_nothing_a_replica_would_not(
        moves: list[tuple[str, int, int, int]],
        off: list[tuple[int, int, str, str]]) -> None:
    sim = members_world.Sim()
    for move in moves:
        members_world.run(sim, move)
    w, records = sim.w, list(sim.by_id.values())
    made: list[Record] = []
    for n, (who, past, names, also) in enumerate(off):
        start = len(made)
        key = members_world.PEOPLE[who]
        head = w.heads.get((pk(key), sim.space))
        seq = (head.seq if head else 1) + past  # past a seq 1 they never signed: a gap
        mine = sorted(r.id for r in records if r.author == pk(key) and r.seq != seq - 1)
        others = sorted(r.id for r in records if r.author != pk(key))
        ts = w.tick()
        if names == "back" and head:
            seq, prev, ts = head.seq + 1, head.id, head.ts - 1 - n
        elif names == "own" and mine:
            prev = mine[n % len(mine)]
        elif names == "absent":
            prev = bytes([n + 1]) * 32
        else:
            prev = others[n % len(others)]
        record = stray(key, sim.space, seq, prev, ts)
        made.append(record)
        if "on" in also:
            made.append(stray(key, sim.space, record.seq + 1, record.id, w.tick()))
        if "beside" in also:  # not a stray itself: it may count
            records.append(stray(key, sim.space, record.seq, prev, w.tick()))
        records += made[start:]
    state = assert_as_after_a_replica(sim.space, records)
    assert not {r.id for r in made} & set(state.order)
