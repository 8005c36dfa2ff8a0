"""Checking the record batches a sync session receives away from trio's thread.

:class:`Verifier` runs a check function in threads, at most ``workers`` batches at once;
:class:`PoolVerifier`, the node's, hands large batches to a
:class:`~meshcrew.store.VerifyPool`'s worker processes and waits for them without a thread.
A session (``meshcrew.net.sync_pump``) holds at most ``ahead`` received batches before it stops
reading, so memory stays bounded whatever the peer sends.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future

import trio

from meshcrew.store.verify import (
    IN_WORKERS_FROM,
    Refusals,
    VerifiedBatch,
    VerifyPool,
    rebuilt,
    verify_batch,
)

VERIFY_AHEAD = 16
"""Received batches a session holds at most (verified or being verified) before it stops
reading: 16 x 256 records, a few MB at most."""


class Verifier:
    """Checks received record batches away from trio's thread, at most ``workers`` at once,
    shared by every session of a node.

    Args:
        verify: ``verify(raws)``: a batch's checks (e.g. ``verify_batch`` with the node's clock,
            or a :class:`~meshcrew.store.VerifyPool`'s); it runs in a thread of its own.
        workers: batches checked at once; by default one per core.
        ahead: per session, received batches held at most before the session stops reading.
        close: called when the sync service stops (e.g. the pool's ``close``).
    """

    def __init__(self, verify: Callable[[Sequence[bytes]], VerifiedBatch], *,
                 workers: int | None = None, ahead: int = VERIFY_AHEAD,
                 close: Callable[[], None] | None = None) -> None:
        self._verify = verify
        self.workers = workers or os.cpu_count() or 1
        self.ahead = ahead
        self._limiter = trio.CapacityLimiter(self.workers)
        self._close = close

    async def verify(self, raws: Sequence[bytes]) -> VerifiedBatch:
        """Check a batch in a thread (waiting for a free slot first)."""
        return await trio.to_thread.run_sync(self._verify, raws, limiter=self._limiter)

    def close(self) -> None:
        """Release what the checks hold (worker processes); harmless to call twice."""
        if self._close is not None:
            self._close()


class PoolVerifier(Verifier):
    """Checks received batches in a :class:`~meshcrew.store.VerifyPool`'s worker processes.

    No thread waits for a worker: trio's thread hands the batch over, is woken when the worker
    answers, and rebuilds the records that passed (decoding them again, no second check). Each
    waiting thread would take the GIL back and forth with trio's thread, whose SQLite appends
    release and retake it for every record: in a catch-up of 50,000 records between two node
    processes, the appends took about four times their CPU time alone (``docs/performance.md``).

    Args:
        pool: the worker processes (closed with the verifier).
        clock: UTC milliseconds, for ``Reason.FROM_FUTURE``.
        workers: batches in the workers at once; by default twice the pool's workers, so a
            worker never waits while a checked batch is handed back.
        ahead: per session, received batches held at most before the session stops reading.
    """

    def __init__(self, pool: VerifyPool, clock: Callable[[], int], *,
                 workers: int | None = None, ahead: int = VERIFY_AHEAD) -> None:
        super().__init__(lambda raws: verify_batch(raws, now_ms=clock()),
                         workers=workers or 2 * pool.workers, ahead=ahead, close=pool.close)
        self._pool = pool
        self._clock = clock

    async def verify(self, raws: Sequence[bytes]) -> VerifiedBatch:
        """Check a batch in a worker (waiting for a free slot first); a batch of fewer than
        :data:`~meshcrew.store.verify.IN_WORKERS_FROM` records is checked here at once (a few
        milliseconds at most: the live records of a periodic session start no thread)."""
        if len(raws) < IN_WORKERS_FROM:
            return self._verify(raws)
        async with self._limiter:
            future = self._pool.submit(raws, now_ms=self._clock())
            await _answered(future)
        return rebuilt(raws, self._pool.result(future))


async def _answered(future: Future[Refusals]) -> None:
    """Wait, without a thread, until a worker has answered ``future`` (cancelled: cancel it)."""
    token = trio.lowlevel.current_trio_token()
    done = trio.Event()

    def wake(_: Future[Refusals]) -> None:
        with contextlib.suppress(trio.RunFinishedError):  # nobody waits any more
            token.run_sync_soon(done.set)

    future.add_done_callback(wake)
    try:
        await done.wait()
    except BaseException:
        future.cancel()
        raise
