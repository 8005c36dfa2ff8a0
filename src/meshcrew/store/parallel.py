"""Appending encoded records with their checks spread over worker processes.

:func:`append_in_parallel` is the pipeline for plain threads (files, benchmarks): a
:class:`~meshcrew.store.verify.VerifyPool` checks chunks while this thread applies those already
checked with :meth:`Replica.append_verified <meshcrew.store.Replica.append_verified>`. The node
runs the same steps under trio (``meshcrew.net.sync_pump``). It is a module of its own because it
needs both the checks (:mod:`.verify`) and the replica, which imports the checks.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future

from meshcrew.store.ingest import AppendReport
from meshcrew.store.replica import RecordState, Replica
from meshcrew.store.verify import Refusals, VerifiedBatch, VerifyPool, rebuilt

CHUNK_RECORDS = 512
"""Records one worker checks at a time in :func:`append_in_parallel`."""


def append_in_parallel(replica: Replica, raws: Sequence[bytes], *, now_ms: int, pool: VerifyPool,
                       sender: str = "local", transaction_records: int = 4096,
                       chunk_records: int = CHUNK_RECORDS,
                       in_flight_chunks: int | None = None) -> AppendReport:
    """Append encoded records with their checks spread over ``pool``'s workers.

    Chunks of ``chunk_records`` are checked by the workers while this thread applies the chunks
    already checked, in their order, in transactions of about ``transaction_records``. At most
    ``in_flight_chunks`` chunks (default: twice the workers) are checked ahead of the one being
    applied, which bounds the memory held whatever the input's size. The outcome is the same as
    ``replica.append(raws)``'s (the reports of the transactions joined).

    Raises:
        ReplicaError: as :meth:`Replica.append_verified`, or the workers failed; what was
            applied before stays.
    """
    ahead = in_flight_chunks or 2 * pool.workers
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

    queue: deque[tuple[Sequence[bytes], Future[Refusals]]] = deque()
    try:
        for chunk in chunks:
            queue.append((chunk, pool.submit(chunk, now_ms=now_ms)))
            if len(queue) > ahead:
                first, future = queue.popleft()
                gathered.extend(rebuilt(first, pool.result(future)))
                if len(gathered) >= transaction_records:
                    apply(gathered)
                    gathered = VerifiedBatch()
        while queue:
            first, future = queue.popleft()
            gathered.extend(rebuilt(first, pool.result(future)))
        if len(gathered):
            apply(gathered)
    finally:
        for _, future in queue:
            future.cancel()
    if report.forks:  # a fork found by a later transaction may have overtaken earlier records
        report.accepted = [rid for rid in report.accepted
                           if replica.state_of(rid) is RecordState.ACCEPTED]
    # A record left waiting by one transaction may have been applied by a later one.
    report.pending = [rid for rid in report.pending
                      if replica.state_of(rid) is RecordState.PENDING]
    return report
