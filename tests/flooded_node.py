"""A flooded ``meshcrew node`` process: how long it takes to answer, counted as its own, and
how long to wait for it to take the flood.

A flood test asks the node for its status one call after the other and bounds the slowest
call. Two things that are not the node's own time made such a bound fail on a loaded machine:

- the test's trio loop: asked through ``trio.to_thread``, a call is over only once the test's
  loop takes its result back, and that loop is busy flooding and polling (its polls are
  blocking status calls): up to 7 s were spent there with the node's answer already in;
- the scheduler: on two cores shared with other work, the node's main thread waited up to
  3.8 s for a CPU while it had the request, having run 0.1 s of it (its ``schedstat``).

So :class:`StatusWatch` asks from a plain thread of its own, and counts a call's wall time less
the time the node's main thread spent waiting for a CPU meanwhile. What remains is the time
the node ran or blocked: a node that holds its trio thread (a long computation, a blocking
call) shows it whatever the load.

:func:`wait_while_taking` waits for the node to have taken the flood as long as it keeps
taking it: on that machine a 4,002-message flood took from 5 s to 43 s to be stored.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType

import pytest

from meshcrew.node import NodeStatus
from meshcrew.node.stopping import run_queue_wait_s
from node_processes import POLL_S, NodeProcess


class StatusWatch:
    """Asks ``node`` for its status, one call after the other on a thread of its own, from
    ``with`` until its end; ``took`` holds each call's time, counted as the node's own (the
    module docstring). A failed call (the node gone) is raised again at the end."""

    def __init__(self, node: NodeProcess) -> None:
        self.node = node
        self.took: list[float] = []
        self._stop = threading.Event()
        self._failed: BaseException | None = None
        self._thread = threading.Thread(target=self._ask, name="status watch", daemon=True)

    def __enter__(self) -> StatusWatch:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        if self._failed is not None and error is None:
            raise self._failed

    def _ask(self) -> None:
        pid = self.node.pid
        try:
            while not self._stop.is_set():
                waited, started = run_queue_wait_s(pid, pid), time.monotonic()
                self.node.status()
                wall = time.monotonic() - started
                self.took.append(max(0.0, wall - (run_queue_wait_s(pid, pid) - waited)))
        except BaseException as exc:  # the test reads it at the end of the watch
            self._failed = exc


def wait_while_taking(node: NodeProcess, done: Callable[[NodeStatus], bool], *,
                      quiet_s: float = 20.0, what: str = "") -> NodeStatus:
    """The node's status once ``done(status)`` holds; fail the test once the node's gossip
    counters (judged, stored) have not moved for ``quiet_s`` (it stopped taking the flood)."""
    status = node.status()
    moved = time.monotonic()
    while not done(status):
        if time.monotonic() - moved > quiet_s:
            pytest.fail(f"the node took nothing for {quiet_s:.0f} s before {what or done} "
                        f"(judged {status.gossip_judged}, stored {status.gossip_stored})")
        time.sleep(POLL_S)
        now = node.status()
        if (now.gossip_judged, now.gossip_stored) != (status.gossip_judged,
                                                      status.gossip_stored):
            moved = time.monotonic()
        status = now
    return status
