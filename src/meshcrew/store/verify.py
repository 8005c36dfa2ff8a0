"""Checking encoded records apart from storing them, so the checks can run on every core.

Verifying a record (decoding it, its limits, its canonical form, its id and above all its
ed25519 signature) is most of what a record costs the replica, and it needs nothing but the
record's bytes and a clock. :func:`verify_batch` does it for a batch, anywhere.
:meth:`Replica.append_verified <meshcrew.store.Replica.append_verified>` then applies the chain
rules to a verified batch in one transaction, in the order given: the replica's order and chain
rules are those of :meth:`~meshcrew.store.Replica.append`, which is exactly
``append_verified(verify_batch(raws))``.

:class:`VerifyPool` runs the checks in worker processes, one per core. Threads would share one
interpreter: pynacl releases the GIL during the signature check itself, but the rest of a
record's checks hold it, and three threads handing the GIL back and forth twice per record cost
more CPU than they saved (measured in ``docs/performance.md``). A worker process answers a batch
with the positions and reasons of the records it refused, so only those few cross back; the
others are rebuilt here from the same bytes without checking them again.

:func:`~meshcrew.store.parallel.append_in_parallel` is the pipeline for plain threads (files,
benchmarks); the node runs the same steps under trio (``meshcrew.net.sync_pump`` and
``meshcrew.net.verifying``).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.machinery import ModuleSpec

import msgpack

from meshcrew.errors import ReplicaError
from meshcrew.reasons import Reason
from meshcrew.records import (
    HUSK_VERSION,
    Record,
    RecordError,
    check_record_or_husk,
    decode_husk,
    decode_record_or_husk,
    record_id,
)

IN_WORKERS_FROM = 64
"""Batches of fewer records are checked by :meth:`VerifyPool.verify` in the calling thread: a
few live records are not worth a process (or starting the workers)."""


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
    """Decode and verify encoded records (:func:`meshcrew.records.decode_and_verify`), and
    check husks of expired posts as far as they can be alone
    (:func:`meshcrew.records.decode_and_check_husk`; the chain rules decide on them).

    Pure, and safe to call from several threads at once.

    Args:
        raws: encoded records, in the order they are to be applied.
        now_ms: the receiver's clock, for ``Reason.FROM_FUTURE``.
    """
    batch = VerifiedBatch()
    for raw in raws:
        try:
            batch.records.append(decode_record_or_husk(raw, now_ms=now_ms))
        except RecordError as exc:
            batch.refused.append((raw, exc))
    return batch


Refusals = list[tuple[int, str, str]]
"""``(position, reason, detail)`` of each record of a batch that failed its checks."""


def refusals_of(raws: Sequence[bytes], now_ms: int) -> Refusals:
    """Check a batch (in a worker process); the positions and reasons of the records refused."""
    refused: Refusals = []
    for position, raw in enumerate(raws):
        try:
            check_record_or_husk(raw, now_ms=now_ms)
        except RecordError as exc:
            refused.append((position, exc.reason.value, exc.detail))
    return refused


def _exit_with(parent: int) -> None:
    """A worker's initializer: end the worker once its parent is gone (even SIGKILLed, when no
    shutdown message comes), polling once a second on a thread of its own."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_POLL_S)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


_PARENT_POLL_S = 1.0


@contextmanager
def _main_not_imported() -> Iterator[None]:
    """Spawn workers that do not import this process's main module.

    A spawned process first imports its parent's ``__main__`` (multiprocessing's rule, for
    functions defined there), unless that module is a package's ``__main__``. The checks need
    nothing from it, and under the ``meshcrew`` script it is the whole command line: about
    0.2 s of CPU per worker, at the start of every catch-up that starts them. So while a worker
    starts, the main module names itself as one (multiprocessing reads it only then, on this
    thread).
    """
    main = sys.modules["__main__"]
    spec = getattr(main, "__spec__", None)
    main.__spec__ = ModuleSpec(_NO_MAIN, None)
    try:
        yield
    finally:
        main.__spec__ = spec


_NO_MAIN = "meshcrew.__main__"
"""The name multiprocessing leaves alone in a spawned worker (it ends with ``.__main__``)."""


def rebuilt(raws: Sequence[bytes], refusals: Refusals) -> VerifiedBatch:
    """The batch :func:`verify_batch` would have made, from a worker's refusals: the records it
    passed are decoded again from the same bytes, without checking them again."""
    refused = {position: (reason, detail) for position, reason, detail in refusals}
    batch = VerifiedBatch()
    for position, raw in enumerate(raws):
        verdict = refused.get(position)
        if verdict is not None:
            batch.refused.append((raw, RecordError(Reason(verdict[0]), verdict[1])))
            continue
        if raw[1] == HUSK_VERSION:
            batch.records.append(decode_husk(raw))
            continue
        version, kind, space, author, seq, prev, ts, body, sig = msgpack.unpackb(raw, raw=False)
        batch.records.append(Record(version, kind, space, author, seq, prev, ts, body, sig, raw,
                                    record_id(raw)))
    return batch


class VerifyPool:
    """Worker processes (one per core by default) that check batches of encoded records.

    They start on first use (a node that never catches up on much never starts them) and stop
    with :meth:`close`, or within a second of this process's end however it ends; a worker that
    dies fails its batch, and the next batch gets new workers. Safe to use from several threads
    at once.

    Args:
        workers: processes; by default one per core.
    """

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.submitted = 0
        """Batches handed to the worker processes so far."""

    def submit(self, raws: Sequence[bytes], *, now_ms: int) -> Future[Refusals]:
        """Start checking a batch; the future gives :func:`refusals_of`'s answer.

        Raises:
            ReplicaError: the pool is closed.
        """
        with self._lock:
            if self._closed:
                raise ReplicaError("The record checks were stopped.")
            if self._pool is None:
                # spawn, not fork: the node has threads (trio's, SQLite's) a fork would copy
                # mid-flight; a spawned worker imports only what the checks need.
                self._pool = ProcessPoolExecutor(
                    self.workers, mp_context=multiprocessing.get_context("spawn"),
                    initializer=_exit_with, initargs=(os.getpid(),))
            pool = self._pool
            self.submitted += 1
        try:
            with _main_not_imported():  # a worker starts, if one is missing, in submit
                return pool.submit(refusals_of, list(raws), now_ms)
        except RuntimeError as exc:  # broken (a worker died): the next batch starts afresh
            self._forget(pool)
            raise ReplicaError(f"Checking records failed: {type(exc).__name__}.") from exc

    def verify(self, raws: Sequence[bytes], *, now_ms: int) -> VerifiedBatch:
        """Check a batch in a worker and wait (call it from a thread of its own); a batch of
        fewer than :data:`IN_WORKERS_FROM` records is checked in the calling thread.

        Raises:
            ReplicaError: the pool is closed, or its worker died while checking.
        """
        if len(raws) < IN_WORKERS_FROM:
            return verify_batch(raws, now_ms=now_ms)
        return rebuilt(raws, self.result(self.submit(raws, now_ms=now_ms)))

    def result(self, future: Future[Refusals]) -> Refusals:
        """Wait for a batch's answer.

        Raises:
            ReplicaError: its worker died (the next batch gets new workers).
        """
        try:
            return future.result()
        except Exception as exc:  # BrokenProcessPool, or the pool was closed meanwhile
            with self._lock:
                pool = self._pool
            if pool is not None:
                self._forget(pool)
            raise ReplicaError(f"Checking records failed: {type(exc).__name__}.") from exc

    def _forget(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Stop the workers (they finish the batch in hand); harmless to call twice."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> VerifyPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
