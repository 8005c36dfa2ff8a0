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


def run_queue_wait_s(thread_id: int) -> float:
    """Seconds the thread ``thread_id`` of this process has spent ready to run but waiting for
    a CPU (0.0 where the kernel keeps no ``schedstat``)."""
    try:
        fields = Path(f"/proc/self/task/{thread_id}/schedstat").read_text().split()
    except OSError:
        return 0.0
    return int(fields[1]) / 1e9


def exit_if_stuck(seconds: float) -> threading.Thread:
    """Make sure the process ends once it has spent ``seconds`` of the calling thread's own
    time (see :func:`own_clock`) from now, even if a library hangs while closing; exit status 0.

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
