"""Run a trio node inside the app's asyncio loop: trio in guest mode.

Textual runs on asyncio; the node runs on trio. Instead of a second thread, trio runs as a *guest*
of the asyncio loop (``trio.lowlevel.start_guest_run`` with
``run_sync_soon_threadsafe=loop.call_soon_threadsafe``): both share one thread, so the node may
call the backend and post Textual messages directly, and there is still one writer of the
replica. The app starts the guest when it mounts and cancels it when it exits; the node gets
:data:`SHUTDOWN_SECONDS` to finish (close connections, flush the replica).

This module imports no Textual.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import trio
import trio.lowlevel

NodeMain = Callable[[], Awaitable[None]]
"""A trio async function that runs the node until it is cancelled (it owns its nursery)."""

SHUTDOWN_SECONDS = 5.0
"""How long the app waits for the node to stop after cancelling it."""


class TrioGuest:
    """One guest run of a trio function on an asyncio loop.

    Args:
        main: the node, a trio async function that returns when it is cancelled.
        on_done: called in the host loop when ``main`` ends, with the error it raised or None.
    """

    def __init__(self, main: NodeMain,
                 on_done: Callable[[BaseException | None], None] | None = None) -> None:
        self._main = main
        self._on_done = on_done
        self._token: trio.lowlevel.TrioToken | None = None
        self._scope: trio.CancelScope | None = None
        self._cancel_requested = False
        self._finished: asyncio.Future[BaseException | None] | None = None

    @property
    def running(self) -> bool:
        """Whether the guest has started and not finished."""
        return self._finished is not None and not self._finished.done()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start ``main`` as a trio guest of ``loop`` (call from within the loop)."""
        if self._finished is not None:
            raise RuntimeError("this guest run has already started")
        self._finished = loop.create_future()
        def run_sync_soon_threadsafe(fn: Callable[[], object]) -> None:
            loop.call_soon_threadsafe(fn)

        trio.lowlevel.start_guest_run(
            self._guest_main,
            run_sync_soon_threadsafe=run_sync_soon_threadsafe,
            done_callback=self._done,
            # asyncio.run and Textual use signal.signal, never set_wakeup_fd: trio may own it.
            host_uses_signal_set_wakeup_fd=False,
        )

    async def _guest_main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        with trio.CancelScope() as scope:
            self._scope = scope
            if self._cancel_requested:
                scope.cancel()
            await self._main()

    def _done(self, result: Any) -> None:
        # ``result`` is an outcome.Outcome; unwrap() re-raises what main raised.
        error: BaseException | None = None
        try:
            result.unwrap()
        except BaseException as exc:  # reported to the app through on_done, not swallowed
            error = exc
        if self._finished is not None and not self._finished.done():
            self._finished.set_result(error)
        if self._on_done is not None:
            self._on_done(error)

    def cancel(self) -> None:
        """Ask the node to stop (from the host loop); harmless if it has stopped."""
        self._cancel_requested = True
        if self._token is None or self._scope is None:
            return  # _guest_main cancels itself as soon as it starts
        with contextlib.suppress(trio.RunFinishedError):  # it has finished already
            self._token.run_sync_soon(self._scope.cancel)

    async def stop(self, within: float = SHUTDOWN_SECONDS) -> BaseException | None:
        """Cancel the node and wait (at most ``within`` seconds) until it has stopped.

        Returns:
            What the node raised, if anything (a timeout is reported as TimeoutError).
        """
        if self._finished is None:
            return None
        self.cancel()
        try:
            return await asyncio.wait_for(asyncio.shield(self._finished), within)
        except TimeoutError as exc:
            return exc
