"""A stopping node's watchdog: the process ends if its stop hangs, counting the node's own time.

A node stops within two seconds of SIGINT or SIGTERM (docs/node.md); a library that hangs while
closing must not keep it running. On a busy machine, though, a stop can wait seconds for a CPU
without hanging at all: cutting it short then would skip what it does last (the views it keeps
for the next start). So the watchdog counts the node's own time: the wall time less the time its
main thread was ready to run but waited for a CPU (Linux's ``schedstat``; where the kernel keeps
none, the wall time).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from pathlib import Path

log = logging.getLogger("meshcrew.node")

POLL_S = 0.05
"""How often the watchdog looks at the time."""


def run_queue_wait_s(thread_id: int, pid: int | None = None) -> float:
    """Seconds the thread ``thread_id`` of the process ``pid`` (this one by default) has spent
    ready to run but waiting for a CPU (0.0 where the kernel keeps no ``schedstat``, or the
    process is gone)."""
    process = "self" if pid is None else str(pid)
    try:
        fields = Path(f"/proc/{process}/task/{thread_id}/schedstat").read_text().split()
    except OSError:
        return 0.0
    return int(fields[1]) / 1e9


class OwnClock:
    """Another process's own time from now, as its watchdog counts it: the wall time less its
    main thread's waits for a CPU (``meshcrew demo`` gives its nodes' stops their time so)."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self._started = time.monotonic()
        self._waited_before = self._waited = run_queue_wait_s(pid, pid)

    def seconds(self) -> float:
        """The process's own seconds since this clock was made (its wait last seen once it is
        gone)."""
        self._waited = max(self._waited, run_queue_wait_s(self._pid, self._pid))
        return time.monotonic() - self._started - (self._waited - self._waited_before)


def exit_if_stuck(seconds: float) -> threading.Thread:
    """Make sure the process ends once it has spent ``seconds`` of the calling thread's own
    time (the wall time less its waits for a CPU, as :class:`OwnClock` counts) from now, even
    if a library hangs while closing; exit status 0.

    Records are safe either way: every append is committed before it is acknowledged.
    """
    thread_id = threading.get_native_id()

    def own() -> float:
        return time.monotonic() - run_queue_wait_s(thread_id)

    deadline = own() + seconds

    def watch() -> None:
        while own() < deadline:
            time.sleep(POLL_S)
        log.warning("shutdown took over %.1f s of its own; exiting", seconds)
        sys.stdout.flush()
        os._exit(0)

    watchdog = threading.Thread(target=watch, name="stop watchdog", daemon=True)
    watchdog.start()
    return watchdog
