"""Keeping Python's cycle collector from pausing the app while a big space is read.

A crew with 100,000 posts leaves about a million long-lived objects (decrypted posts, cards).
CPython's collector rescans every tracked object in a full collection, which then takes a few
hundred milliseconds: a visible stall in the middle of scrolling. Two measures:

* :func:`long_lived` builds a big space's cards with the collector paused and then *freezes*
  what exists, so later collections skip it. The price: cyclic garbage that exists at that
  moment is never reclaimed (plain data like posts and cards is freed by reference counting
  all the same), so it is only done for spaces above :data:`FREEZE_ABOVE` entries.
* :class:`CollectorHold` pauses the collector during a burst of key presses (as Textual does
  during smooth scrolling) and lets it run once the keys stop, so the full collections that
  drawing new lines eventually triggers happen between bursts, not between a key and its frame.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

FREEZE_ABOVE = 20_000
"""Entries from which a loaded space is frozen out of the cycle collector's scans."""

HOLD_S = 0.5
"""How long after the last key press the collector stays paused."""


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


class CollectorHold:
    """Pauses the cycle collector while interaction lasts; the owner releases it after."""

    def __init__(self) -> None:
        self._held = False

    @property
    def held(self) -> bool:
        """Whether this hold has paused the collector."""
        return self._held

    def hold(self) -> None:
        """Pause the collector (if it runs and no one else paused it)."""
        if not self._held and gc.isenabled():
            gc.disable()
            self._held = True

    def release(self) -> None:
        """Let the collector run again (if this hold paused it)."""
        if self._held:
            self._held = False
            gc.enable()
