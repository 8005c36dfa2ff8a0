"""Keeping Python's cycle collector from pausing the app while a big space is read.

A crew with 100,000 posts leaves about a million long-lived objects (decrypted posts, cards).
CPython's collector rescans every tracked object in a full collection, which then takes a few
hundred milliseconds: a visible stall in the middle of scrolling. Two measures:

* :func:`~meshcrew.collector.long_lived` builds a big space's cards with the collector paused
  and then *freezes* what exists, so later collections skip it; the space screen thaws
  (:func:`~meshcrew.collector.thaw`) when it closes, so nothing stays frozen for good (the
  member service only pauses the collector while it folds a big space).
* :class:`CollectorHold` pauses the collector during a burst of key presses (as Textual does
  during smooth scrolling) and lets it run once the keys stop, so the full collections that
  drawing new lines eventually triggers happen between bursts, not between a key and its frame.
"""

from __future__ import annotations

from meshcrew.collector import FREEZE_ABOVE, long_lived, pause, resume, thaw

__all__ = ["FREEZE_ABOVE", "HOLD_S", "CollectorHold", "long_lived", "thaw"]

HOLD_S = 0.5
"""How long after the last key press the collector stays paused."""


class CollectorHold:
    """Pauses the cycle collector while interaction lasts; the owner releases it after."""

    def __init__(self) -> None:
        self._held = False

    @property
    def held(self) -> bool:
        """Whether this hold has paused the collector."""
        return self._held

    def hold(self) -> None:
        """Pause the collector (once per hold; see :func:`meshcrew.collector.pause`)."""
        if not self._held:
            pause()
            self._held = True

    def release(self) -> None:
        """End this hold's pause."""
        if self._held:
            self._held = False
            resume()
