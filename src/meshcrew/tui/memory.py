"""Keeping Python's cycle collector from pausing the app after a big space is loaded.

A crew with 100,000 posts leaves a few million long-lived objects (decrypted posts, cards).
CPython's collector rescans every tracked object in a full collection, which then takes a few
hundred milliseconds: a visible stall in the middle of scrolling. Loading such a space inside
:func:`long_lived` builds it with the collector paused and then *freezes* what exists, so later
collections skip it. The price: cyclic garbage that exists at that moment is never reclaimed
(plain data like posts and cards is freed by reference counting all the same), so it is only
done for spaces above :data:`FREEZE_ABOVE` entries.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

FREEZE_ABOVE = 20_000
"""Entries from which a loaded space is frozen out of the cycle collector's scans."""


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
