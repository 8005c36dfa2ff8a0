"""Records off their author's chain: what the fold refuses before ordering (its rule 1).

A replica (``meshcrew.store.ingest``) takes an author's record at ``seq = k`` only once it holds
their record at ``k - 1`` and that record is the one named in ``prev``, and judges it then, in
this order: a ``prev`` naming another record proves a fork at ``k - 1``; a record dated before
its predecessor is refused (``time_travel``) and not held; a second record at ``k`` is a fork at
``k``; everything at or above a fork is kept as evidence, never accepted. A record whose
predecessor is never held waits there forever. The fold is handed any set, so it finds the same
from the set alone, and leaves every record it refuses here out of the order as if absent, so
that the fold of a set gives what the fold of a replica's records of it gives:

* **time travel**: a record dated before the author's record at the seq below, which its
  ``prev`` names (and which is not itself refused for time travel: then it waits, as on the
  replica, where its predecessor is never held). It is no fork evidence: it takes no place
  in its author's chain, so a good record at its seq is taken; a record that names it waits
  for it, unless its author has a record at the seq below it (then, as any other ``prev``
  not among those, it vouches for a second record there: a fork);
* **fork**: two records at one place of an author's chain (time travellers aside), or a record
  whose ``prev`` is not among the author's records at the seq below: every record of the author
  from the lowest such place on;
* **chain broken**: a record whose ``prev`` is held but is not the author's record at the seq
  below (none is held there: a gap), and every later record of the author.

A time traveller at or below the fork's place keeps its own reason, as on the replica, which
judges it before the fork is found; above it, the chain is frozen, and it is refused as forked.
"""

from __future__ import annotations

from collections.abc import Mapping

from meshcrew.reasons import Reason
from meshcrew.records import Record
from meshcrew.spaces.rules import refused
from meshcrew.spaces.state import Status

OFF_CHAIN = frozenset({Reason.FORK, Reason.CHAIN_BROKEN, Reason.TIME_TRAVEL})
"""The refusals :func:`chain_refusals` gives: the fold leaves such records out of its order."""


def chain_refusals(by_id: Mapping[bytes, Record]) -> dict[bytes, Status]:
    """The records of ``by_id`` off their author's chain, each with its refusal."""
    travelled = _dated_back(by_id)
    slots: dict[tuple[bytes, int], list[bytes]] = {}
    for rid, record in by_id.items():
        if rid not in travelled:  # it takes no place in the chain
            slots.setdefault((record.author, record.seq), []).append(rid)
    fork_from: dict[bytes, int] = {}
    for (author, seq), ids in slots.items():
        if len(ids) > 1:
            fork_from[author] = min(seq, fork_from.get(author, seq))
    broken_from: dict[bytes, int] = {}
    for record in by_id.values():
        author, seq = record.author, record.seq
        below = slots.get((author, seq - 1))
        if below is not None and record.prev not in below:  # vouches for another one there
            fork_from[author] = min(seq - 1, fork_from.get(author, seq - 1))
        elif below is None and record.prev in by_id and record.prev not in travelled:
            # held, but not the author's at seq - 1 (a time traveller is: this waits for it)
            broken_from[author] = min(seq, broken_from.get(author, seq))
    refusals: dict[bytes, Status] = {}
    for rid, record in by_id.items():
        author, seq = record.author, record.seq
        forked = fork_from.get(author)
        if forked is not None and (seq > forked or (seq == forked and rid not in travelled)):
            refusals[rid] = refused(Reason.FORK, f"the author forked at seq {forked}")
        elif seq == broken_from.get(author):
            refusals[rid] = refused(Reason.CHAIN_BROKEN)
        elif seq > broken_from.get(author, seq):
            refusals[rid] = refused(Reason.CHAIN_BROKEN,
                                    f"the author's chain broke at seq {broken_from[author]}")
        elif rid in travelled:
            before = travelled[rid]
            refusals[rid] = refused(Reason.TIME_TRAVEL, f"seq {seq} at {record.ts} ms, "
                                    f"seq {before.seq} at {before.ts} ms")
    return refusals


def _dated_back(by_id: Mapping[bytes, Record]) -> dict[bytes, Record]:
    """The records dated before their predecessor (the author's record at the seq below, named
    by their ``prev``, and not one of them itself), each with that predecessor."""
    dated_back: list[tuple[Record, Record]] = []
    for record in by_id.values():
        before = by_id.get(record.prev) if record.prev is not None else None
        if (before is not None and record.ts < before.ts and before.author == record.author
                and before.seq == record.seq - 1):
            dated_back.append((record, before))
    travelled: dict[bytes, Record] = {}
    for record, before in sorted(dated_back, key=lambda pair: pair[0].seq):  # its turn first
        if before.id not in travelled:
            travelled[record.id] = before
    return travelled
