"""Keeping Python's cycle collector from rescanning a big space while it is built.

A crew with 100,000 posts is about a million long-lived objects (records, parsed bodies,
decrypted posts, log entries). While they are made, CPython's collector runs full collections
that rescan all of them and find nothing to free (plain data is freed by reference counting):
measured on that crew, 13 full collections added 1.7-1.9 s to the 2.3 s of folding and
decrypting it. :func:`long_lived` pauses the collector while such data is built and then
*freezes* what exists, so later collections skip it. The price: cyclic garbage that exists at
that moment is never reclaimed, so it is only done above :data:`FREEZE_ABOVE` entries.

The collector is process-wide: pausing it in a worker thread pauses it for every thread, for
the seconds the work takes.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

FREEZE_ABOVE = 20_000
"""Entries (records, posts, cards) from which a build is done with the collector paused."""


@contextmanager
def long_lived(size: int) -> Iterator[None]:
    """Build ``size`` entries' worth of long-lived data without collector pauses.

    Below :data:`FREEZE_ABOVE` this does nothing.
    """
    if size < FREEZE_ABOVE:
        yield
        return
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()
