"""Checking encoded records apart from storing them, so the checks can run on every core.

Verifying a record (decoding it, its limits, its canonical form, its id and above all its
ed25519 signature) is most of what a record costs the replica, and it needs nothing but the
record's bytes and a clock. :func:`verify_batch` does it for a batch, in any thread: pynacl
releases the GIL while it checks a signature, so batches verified in several threads at once
use several cores. :meth:`Replica.append_verified <meshcrew.store.Replica.append_verified>`
then applies the chain rules to a verified batch in one transaction, in the order given: the
replica's order and chain rules are the same as :meth:`~meshcrew.store.Replica.append`'s, which
is exactly ``append_verified(verify_batch(raws))``.

:func:`append_in_parallel` is that pipeline for plain threads (files, benchmarks); the node runs
the same two steps under trio (``meshcrew.net.syncing``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from meshcrew.records import Record, RecordError, decode_and_verify
from meshcrew.store.ingest import AppendReport

if TYPE_CHECKING:
    from meshcrew.store.replica import Replica

CHUNK_RECORDS = 256
"""Records verified by one worker at a time in :func:`append_in_parallel`."""


@dataclass(slots=True)
class VerifiedBatch:
    """Encoded records after :func:`verify_batch`: those that passed, in their order, and those
    refused with why.

    Attributes:
        records: the records that passed every check a record can pass alone.
        refused: ``(raw, error)`` for each that did not (kept for the reject log).
    """

    records: list[Record] = field(default_factory=list)
    refused: list[tuple[bytes, RecordError]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records) + len(self.refused)

    @property
    def raws(self) -> list[bytes]:
        """The encoded records, those that passed first."""
        return [r.raw for r in self.records] + [raw for raw, _ in self.refused]

    def extend(self, other: VerifiedBatch) -> None:
        """Add another batch's records after this one's."""
        self.records += other.records
        self.refused += other.refused


def verify_batch(raws: Iterable[bytes], *, now_ms: int) -> VerifiedBatch:
    """Decode and verify encoded records (:func:`meshcrew.records.decode_and_verify`).

    Pure, and safe to call from several threads at once.

    Args:
        raws: encoded records, in the order they are to be applied.
        now_ms: the receiver's clock, for ``Reason.FROM_FUTURE``.
    """
    batch = VerifiedBatch()
    for raw in raws:
        try:
            batch.records.append(decode_and_verify(raw, now_ms=now_ms))
        except RecordError as exc:
            batch.refused.append((raw, exc))
    return batch


def append_in_parallel(replica: Replica, raws: Sequence[bytes], *, now_ms: int, workers: int,
                       sender: str = "local", transaction_records: int = 4096,
                       chunk_records: int = CHUNK_RECORDS,
                       in_flight_chunks: int | None = None) -> AppendReport:
    """Append encoded records with their checks spread over ``workers`` threads.

    Chunks of ``chunk_records`` are verified by the workers while this thread applies the
    chunks already verified, in their order, in transactions of about ``transaction_records``.
    At most ``in_flight_chunks`` chunks (default: twice the workers) are verified ahead of the
    one being applied, which bounds the memory held whatever the input's size. The outcome is
    the same as ``replica.append(raws)``'s (the reports of the transactions joined).

    Raises:
        ReplicaError: as :meth:`Replica.append_verified`; what was applied before stays.
    """
    from meshcrew.store.replica import RecordState  # replica.py imports this module

    ahead = in_flight_chunks or 2 * workers
    chunks = (raws[i : i + chunk_records] for i in range(0, len(raws), chunk_records))
    report = AppendReport()
    gathered = VerifiedBatch()

    def apply(batch: VerifiedBatch) -> None:
        done = replica.append_verified(batch, sender=sender, now_ms=now_ms)
        report.accepted += done.accepted
        report.pending += done.pending
        report.duplicates += done.duplicates
        report.forks += done.forks
        report.rejected += done.rejected

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="verify") as pool:
        queue: deque[Future[VerifiedBatch]] = deque()
        try:
            for chunk in chunks:
                queue.append(pool.submit(verify_batch, chunk, now_ms=now_ms))
                if len(queue) > ahead:
                    gathered.extend(queue.popleft().result())
                    if len(gathered) >= transaction_records:
                        apply(gathered)
                        gathered = VerifiedBatch()
            while queue:
                gathered.extend(queue.popleft().result())
            if len(gathered):
                apply(gathered)
        finally:
            for future in queue:
                future.cancel()
    if report.forks:  # a fork found by a later transaction may have overtaken earlier records
        report.accepted = [rid for rid in report.accepted
                           if replica.state_of(rid) is RecordState.ACCEPTED]
    # A record left waiting by one transaction may have been applied by a later one.
    report.pending = [rid for rid in report.pending
                      if replica.state_of(rid) is RecordState.PENDING]
    return report
