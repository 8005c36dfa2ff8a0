"""The local replica: an SQLite file (WAL) in the home folder holding every record this node has.

Only the node writes it, under the home folder's single-writer lock (:mod:`.lock`); the TUI and
the CLI read it with ``Replica.open(home, read_only=True)`` while the node runs.
:meth:`Replica.append` verifies records (or :func:`verify_batch` does, anywhere, or a
:class:`VerifyPool` of worker processes, and :meth:`Replica.append_verified` takes the result)
and applies the chain rules documented in
:mod:`meshcrew.store.ingest` (pending records, forks kept as evidence, the reject log); the
result does not depend on the order records arrive in. The file layout and its migrations are
in :mod:`.schema`.
"""

from __future__ import annotations

from meshcrew.store.health import check_replica
from meshcrew.store.ingest import AppendReport, RejectEntry
from meshcrew.store.lock import WriterLock
from meshcrew.store.parallel import append_in_parallel
from meshcrew.store.replica import PENDING_CAP, REJECT_LOG_SIZE, RecordState, Replica
from meshcrew.store.schema import SCHEMA_VERSION
from meshcrew.store.verify import VerifiedBatch, VerifyPool, verify_batch

__all__ = [
    "PENDING_CAP",
    "REJECT_LOG_SIZE",
    "SCHEMA_VERSION",
    "AppendReport",
    "RecordState",
    "RejectEntry",
    "Replica",
    "VerifiedBatch",
    "VerifyPool",
    "WriterLock",
    "append_in_parallel",
    "check_replica",
    "verify_batch",
]
