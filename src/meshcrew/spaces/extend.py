"""Extending a fold by new posts, without folding the whole space again.

A crew that has written for years holds tens of thousands of records, and almost every record
that arrives is one more post by a current member under the current keys. :func:`extend` gives
``fold(space_id, old + new)`` from the old state for such records, without ordering, parsing
or applying the old records again (it still copies the state's mappings and looks over them
once: linear, but a small constant next to a fold). When any new record is of another sort,
:func:`extend` returns None and the caller folds from scratch: the fast path is an
optimisation, never a second set of rules.

Why the result equals the fold. A new ``sealed`` record ``r`` qualifies when its author is a
current member whose join has been admitted, ``r`` follows the author's newest record (which
was accepted) and is not dated before it, names an accepted epoch sealed to the author no older
than the author's floor, no removal proposal or key rotation orders ``r`` behind itself (a
removal naming the author with ``r``'s seq as the first after the named one, a rotation naming
the join just before ``r`` in the author's chain), every record of the old state was applied
(none waits), and the old canonical order never had to break a cycle. Then:

* no old record depends on ``r`` (nothing waits), and ``r`` has no soft dependencies;
* ``r`` does not touch membership, epochs, invites or removals, so every old record keeps its
  outcome, and ``r`` passes the same checks (rules 5 and 8) wherever it stands in the order
  (a removal's "overtaken" test looks at the target's records up to the one after the named
  seq, which is not ``r`` and is ordered by its own soft dependencies);
* in the canonical order (Kahn's sort taking the smallest ready id), a record without
  dependents that becomes ready after position ``p`` is taken at the first later step whose
  record has a larger id: the other steps are unchanged, because the old sort always had a
  ready record to take (it never stalled on a cycle).

The tests check ``extend(fold(A), B) == fold(A + B)`` over generated spaces.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, replace

from meshcrew.records import Record, RecordError
from meshcrew.spaces.bodies import (
    Body,
    KeysBody,
    LeaveBody,
    RemoveBody,
    SealedBody,
    UnlinkBody,
    parse_body,
)
from meshcrew.spaces.kinds import RecordKind
from meshcrew.spaces.state import ACCEPTED, Outcome, SpaceState


def extend(state: SpaceState, records: Iterable[Record]) -> SpaceState | None:
    """``fold(state.space_id, state.records + records)``, or None if it takes a full fold.

    Args:
        state: a state the fold computed (or this function extended).
        records: verified records of the same space that the state does not hold.
    """
    new = sorted(records, key=lambda r: (r.author, r.seq))
    if not new:
        return state
    if state.kind is None or state.stalled or len(state.sequence) != len(state.records):
        return None  # no genesis, a broken cycle, or records that wait (refused early or not)
    places = _places(state)
    behind, rotations = places.behind, places.rotations
    heads = {r.author: places.heads[r.author] for r in new if r.author in places.heads}
    floors = dict(state.floors)
    deps_of: dict[bytes, list[bytes]] = {}
    bodies: dict[bytes, Body | None] = dict(state.bodies)
    for record in new:
        body = _qualifies(state, record, heads.get(record.author), floors, behind)
        if body is None:
            return None
        heads[record.author] = record
        # A joiner's first record after their join comes after every rotation naming the
        # join (a soft rule of the fold): old records, so only more of what it is placed after.
        deps_of[record.id] = [body.epoch, *rotations.get((record.author, record.seq), ())]
        bodies[record.id] = body
        floors[record.author] = max(state.epochs[body.epoch].number,
                                    floors.get(record.author, 0))
    sequence = _merge(state.sequence, new, deps_of)
    records_by_id = dict(state.records)
    statuses = dict(state.statuses)
    for record in new:
        records_by_id[record.id] = record
        statuses[record.id] = ACCEPTED
    if len(state.order) == len(state.sequence):
        order = sequence  # nothing refused before, and every new record is accepted
    else:
        order = tuple(rid for rid in sequence if statuses[rid].accepted)
    # Posts change none of the places, only the heads of their authors.
    kept = _Places(behind, rotations, {**places.heads, **heads})
    return replace(state, statuses=statuses, order=order, sequence=sequence, floors=floors,
                   records=records_by_id, bodies=bodies, memo={_PLACES: kept})


_FEW = 16
"""Up to how many records the new ones come after :func:`_merge` finds one by one."""
_PLACES = "extend.places"
"""The key of :class:`_Places` in a state's memo."""


@dataclass(frozen=True, slots=True)
class _Places:
    """What :func:`extend` needs of the whole state, worked out once per fold and kept in
    the states it extends, so a new post costs no pass over every record."""

    behind: set[tuple[bytes, int]]
    rotations: dict[tuple[bytes, int], list[bytes]]
    """See :func:`_ordered_behind`."""
    heads: dict[bytes, Record]
    """Every author's record with the highest seq, whatever its status (see
    :func:`_author_heads`)."""


def _places(state: SpaceState) -> _Places:
    """The state's :class:`_Places`, from its memo or worked out (and kept there)."""
    kept = state.memo.get(_PLACES)
    if isinstance(kept, _Places):
        return kept
    behind, rotations = _ordered_behind(state)
    made = _Places(behind, rotations, _author_heads(state))
    state.memo[_PLACES] = made  # a cache of a function of the records: harmless if raced
    return made


def _ordered_behind(state: SpaceState
                    ) -> tuple[set[tuple[bytes, int]], dict[tuple[bytes, int], list[bytes]]]:
    """(author, seq) places the fold orders behind other records.

    Returns:
        The places a removal proposal orders behind itself and its consents (the target's
        first record after the one it names, and each named device's, fold rule 6), and a
        device's revocation or a leave behind itself (rules 12 and 13; the fast path declines
        them all), and
        for each joiner's first record after a join, the key rotations naming that join
        (rule 7; the fast path places the record after them).
    """
    places = set()
    rotations: dict[tuple[bytes, int], list[bytes]] = {}
    for rid in state.sequence:
        record = state.records[rid]
        body = state.bodies[rid]
        if record.kind == RecordKind.REMOVE and isinstance(body, RemoveBody):
            places.add((body.member, body.last_seq + 1))
            places.update((device, seq + 1) for device, seq, _ in body.devices)
        elif isinstance(body, UnlinkBody):  # fold rule 13: the device's next record waits
            places.add((body.device, body.last_seq + 1))
        elif isinstance(body, LeaveBody):  # rule 12: so do the leaver's other devices'
            places.update((device, seq + 1) for device, seq, _ in body.devices)
        elif record.kind == RecordKind.KEYS and isinstance(body, KeysBody):
            for named in body.after:
                join = state.records.get(named)
                if join is not None and join.kind == RecordKind.JOIN \
                        and join.author != record.author:
                    rotations.setdefault((join.author, join.seq + 1), []).append(rid)
    return places, rotations


def _author_heads(state: SpaceState) -> dict[bytes, Record]:
    """Each author's record with the highest seq in the state, whatever its status.

    (All records are looked at: a refused record off the author's chain may hold a higher seq,
    and then a new record at that seq is a fork, which the fold must judge.)
    """
    heads: dict[bytes, Record] = {}
    for record in state.records.values():
        best = heads.get(record.author)
        if best is None or record.seq > best.seq:
            heads[record.author] = record
    return heads


def _qualifies(state: SpaceState, record: Record, head: Record | None,
               floors: dict[bytes, int], behind: set[tuple[bytes, int]]
               ) -> SealedBody | None:
    """The body of ``record`` if the fast path may take it; else None."""
    if (record.kind != RecordKind.SEALED or record.space_id != state.space_id
            or record.id in state.records or record.creates_space
            or not state.is_admitted(record.author) or (record.author, record.seq) in behind):
        return None
    if (head is None or record.prev != head.id or record.seq != head.seq + 1
            or record.ts < head.ts):  # dated before its predecessor: fold rule 1 refuses it
        return None
    if head.id in state.records and state.statuses[head.id].outcome is not Outcome.ACCEPTED:
        return None
    try:
        body = parse_body(record.kind, record.body)
    except RecordError:
        return None
    assert isinstance(body, SealedBody)
    epoch = state.epochs.get(body.epoch)
    if (epoch is None or record.author not in epoch.shares
            or epoch.number < floors.get(record.author, 0)):
        return None
    return body


def _merge(sequence: tuple[bytes, ...], new: list[Record],
           deps_of: dict[bytes, list[bytes]]) -> tuple[bytes, ...]:
    """The canonical sequence of the old records and the new ones (see the module doc).

    ``deps_of`` gives each new record the old records it comes after besides its chain
    predecessor (its epoch, and any rotation the fold orders it behind). Replays the tail of
    Kahn's sort: at each step the old sequence's next record is the smallest ready old record,
    so a ready new record goes first exactly when its id is smaller. (The sequence holds
    refused records too: they take their turn in the sort like any other.)
    """
    new_ids = {r.id for r in new}
    wanted = ({r.prev for r in new if r.prev not in new_ids}
              | {dep for deps in deps_of.values() for dep in deps})
    if len(wanted) <= _FEW:  # each found at C speed, however far back (an epoch may be)
        position = {dep: sequence.index(dep) for dep in wanted if dep is not None}
    else:
        position = {}
        for index in range(len(sequence) - 1, -1, -1):
            if sequence[index] in wanted:
                position[sequence[index]] = index
                if len(position) == len(wanted):
                    break
    step_of: dict[bytes, int] = {}  # the step from which the old records it needs are taken
    ready_at: dict[int, list[bytes]] = {}
    successor: dict[bytes, bytes] = {}
    for record in new:
        old_deps = deps_of[record.id] + ([] if record.prev in new_ids else [record.prev])
        step_of[record.id] = max(position[dep] for dep in old_deps if dep is not None) + 1
        ready_at.setdefault(step_of[record.id], []).append(record.id)
        if record.prev in new_ids:
            assert record.prev is not None
            successor[record.prev] = record.id
    waiting_on_prev = set(successor.values())
    start = min(step for step, ids in ready_at.items()
                if any(rid not in waiting_on_prev for rid in ids))
    merged = list(sequence[:start])
    ready: list[bytes] = []
    released: set[bytes] = set()  # new records whose new predecessor has been taken
    for step in range(start, len(sequence) + 1):
        for rid in ready_at.get(step, ()):
            if rid not in waiting_on_prev or rid in released:
                heapq.heappush(ready, rid)
        while ready and (step == len(sequence) or ready[0] < sequence[step]):
            rid = heapq.heappop(ready)
            merged.append(rid)
            child = successor.get(rid)
            if child is not None:
                released.add(child)
                if step_of[child] <= step:
                    heapq.heappush(ready, child)
        if step < len(sequence):
            merged.append(sequence[step])
    return tuple(merged)

