"""The canonical order: one total order of a set of records, the same on every replica.

Each record has *hard* dependencies (its chain predecessor, the space's genesis, and the ids its
body names: :func:`references`) and may have *soft* ones (ordering hints added by the fold, see
:mod:`meshcrew.spaces.fold`). The order is Kahn's topological sort that always takes the
ready record with the smallest id. A record with a hard dependency that is absent from the set,
directly or through another record, is *waiting*: it stays out of the order until the missing
record arrives. Soft dependencies can form a cycle (two members removing each other); then the
smallest-id record whose hard dependencies are met goes next, ignoring its soft ones.

Only the set matters: the input order, and how the set was received, never do.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping

from meshcrew.spaces.bodies import (
    Body,
    CarrierBody,
    ConsentBody,
    DeviceBody,
    JoinBody,
    KeysBody,
    LeaveBody,
    RemoveBody,
    RevokeBody,
    SealedBody,
    UnlinkBody,
)


def find_waiting(hard: Mapping[bytes, Iterable[bytes]]) -> dict[bytes, frozenset[bytes]]:
    """Records that cannot be ordered yet, each with the absent ids it waits for.

    Args:
        hard: every present record id mapped to its hard dependencies.
    """
    dependents: dict[bytes, list[bytes]] = {}
    missing: dict[bytes, set[bytes]] = {}
    for rid, deps in hard.items():
        for dep in deps:
            if dep in hard:
                dependents.setdefault(dep, []).append(rid)
            else:
                missing.setdefault(rid, set()).add(dep)
    # Spread each root's missing ids to everything that depends on it, breadth first.
    queue = sorted(missing)
    while queue:
        rid = queue.pop()
        for child in dependents.get(rid, ()):
            have = missing.setdefault(child, set())
            before = len(have)
            have |= missing[rid]
            if len(have) != before:
                queue.append(child)
    return {rid: frozenset(ids) for rid, ids in missing.items()}


def canonical_order(hard: Mapping[bytes, Iterable[bytes]],
                    soft: Mapping[bytes, Iterable[bytes]],
                    stalls: list[bytes] | None = None) -> list[bytes]:
    """The canonical order of the records whose hard dependencies are all present.

    Args:
        hard: every record id mapped to its hard dependencies (all present: waiting records
            removed beforehand with :func:`find_waiting`).
        soft: some record ids mapped to records that should come before them if present.
        stalls: if given, each record taken with its soft dependencies ignored (a cycle) is
            appended to it.
    """
    hard_left: dict[bytes, int] = {}
    soft_left: dict[bytes, int] = {}
    hard_children: dict[bytes, list[bytes]] = {}
    soft_children: dict[bytes, list[bytes]] = {}
    for rid, deps in hard.items():
        unique = {dep for dep in deps if dep in hard}
        hard_left[rid] = len(unique)
        for dep in unique:
            hard_children.setdefault(dep, []).append(rid)
        after = {dep for dep in soft.get(rid, ()) if dep in hard and dep != rid}
        soft_left[rid] = len(after)
        for dep in after:
            soft_children.setdefault(dep, []).append(rid)
    ready = [rid for rid in hard if hard_left[rid] == 0 and soft_left[rid] == 0]
    heapq.heapify(ready)
    done: set[bytes] = set()
    order: list[bytes] = []
    while len(order) < len(hard):
        if not ready:
            stalled = [rid for rid in hard if rid not in done and hard_left[rid] == 0
                       and soft_left[rid] > 0]
            if not stalled:  # pragma: no cover - hard dependencies are hash links: acyclic
                break
            rid = min(stalled)
            if stalls is not None:
                stalls.append(rid)
            soft_left[rid] = 0
            heapq.heappush(ready, rid)
        rid = heapq.heappop(ready)
        if rid in done:
            continue
        done.add(rid)
        order.append(rid)
        for child in hard_children.get(rid, ()):
            hard_left[child] -= 1
            if hard_left[child] == 0 and soft_left[child] == 0:
                heapq.heappush(ready, child)
        for child in soft_children.get(rid, ()):
            if soft_left[child] > 0:
                soft_left[child] -= 1
                if soft_left[child] == 0 and hard_left[child] == 0:
                    heapq.heappush(ready, child)
    return order


def references(body: Body) -> tuple[bytes, ...]:
    """The record ids a body names; the record waits until they are all present."""
    match body:
        case JoinBody():
            return (body.invite,)
        case RemoveBody():
            return (body.last_id, *body.after, *(last for _, _, last in body.devices))
        case LeaveBody():
            return tuple(last for _, _, last in body.devices)
        case ConsentBody():
            return (body.proposal,)
        case KeysBody():
            return (body.prev, *body.after)
        case SealedBody():
            return (body.epoch,)
        case CarrierBody():
            return () if body.after is None else (body.after,)
        case RevokeBody():
            return (body.invite, *body.used)
        case UnlinkBody():
            return (body.last_id,)
        case DeviceBody():
            return (body.after,)
    return ()
