"""Handing a batch of encoded records to the replica and saying which spaces gained what.

The replica verifies every record and reports ids; the member service also needs to know the
spaces those ids belong to (to refold only those and do their housekeeping). The space of a
record in the batch is read from its bytes without a second signature check: only ids the
replica accepted (after verifying them) are looked up, so an unverified field is never trusted.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgpack

from meshcrew.records import NEW_SPACE, record_id
from meshcrew.service.entries import RejectedEntry
from meshcrew.store import RejectEntry, Replica

_SPACE_FIELD = 2


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """What the replica did with a batch, with the spaces that gained records."""

    accepted: tuple[bytes, ...]
    pending: tuple[bytes, ...]
    duplicates: int
    rejected: tuple[RejectedEntry, ...]
    spaces: tuple[bytes, ...]
    """Spaces the replica holds that the batch has records of (new or already held)."""


def store_refusal(entry: RejectEntry) -> RejectedEntry:
    """A refusal from the replica's reject log, as ``rejects`` lists it (source ``store``)."""
    return RejectedEntry(entry.record_id, entry.space, "store", entry.reason.value,
                         entry.reason.sentence, entry.detail, entry.author, entry.sender,
                         entry.at_ms)


def space_of_raw(raw: bytes) -> bytes | None:
    """The space id an encoded record claims (None if it is not even shaped like a record)."""
    try:
        fields = msgpack.unpackb(raw, raw=False)
        space = fields[_SPACE_FIELD]
    except (ValueError, TypeError, IndexError, KeyError, msgpack.UnpackException):
        return None
    if not isinstance(space, bytes):
        return None
    return record_id(raw) if space == NEW_SPACE else space


def ingest_records(replica: Replica, raws: list[bytes], *, sender: str,
                   now_ms: int) -> StoredBatch:
    """Append ``raws`` to the replica in one transaction; report by id and by space."""
    report = replica.append(raws, sender=sender, now_ms=now_ms)
    claimed = {record_id(raw): raw for raw in raws}
    held = set(replica.spaces())
    spaces: dict[bytes, None] = {}
    for raw in raws:  # a claim is only used to pick among the spaces this replica holds
        space = space_of_raw(raw)
        if space in held:
            spaces.setdefault(space)
    for rid in report.accepted:
        space = space_of_raw(claimed[rid]) if rid in claimed else None
        if space is None:  # an earlier pending record this batch unblocked
            record = replica.get(rid)
            space = record.space_id if record is not None else None
        if space is not None:
            spaces.setdefault(space)
    rejected = tuple(store_refusal(e) for e in report.rejected)
    return StoredBatch(tuple(report.accepted), tuple(report.pending), report.duplicates,
                       rejected, tuple(spaces))
