"""Keeping Python's cycle collector from rescanning a big space while it is built or used.

A crew with 100,000 posts is about a million long-lived objects (records, parsed bodies,
decrypted posts, log entries, cards). While they are made, CPython's collector runs full
collections that rescan all of them and find nothing to free (plain data is freed by reference
counting): measured on that crew, 13 full collections added 1.7-1.9 s to the 2.3 s of folding
and decrypting it. Three tools, one owner of the collector's switch:

* :func:`paused` builds with the collector off (above :data:`FREEZE_ABOVE` entries);
* :func:`long_lived` also *freezes* what exists afterwards, so later collections skip it (for
  the space screen, where a full collection mid-scroll is a visible stall). Frozen objects are
  never collected, cyclic garbage included, until :func:`thaw`: the screen thaws when it
  closes, so a closed screen's widgets are collected again;
* :func:`pause` / :func:`resume` count who wants the collector off (threads and the app's key
  bursts alike), so it comes back on when the last one is done, never earlier or never.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

FREEZE_ABOVE = 20_000
"""Entries (records, posts, cards) from which a build is done with the collector paused."""

class _Switch:
    """The collector's off switch, counted: the process has one (:data:`_SWITCH`)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pausers = 0
        self.resume_after = False


_SWITCH = _Switch()


def pause() -> None:
    """Turn the collector off until the matching :func:`resume` (calls nest, across threads)."""
    with _SWITCH.lock:
        if _SWITCH.pausers == 0:
            _SWITCH.resume_after = gc.isenabled()
            gc.disable()
        _SWITCH.pausers += 1


def resume() -> None:
    """End one :func:`pause`; the last one turns the collector back on if it was on."""
    with _SWITCH.lock:
        _SWITCH.pausers -= 1
        if _SWITCH.pausers == 0 and _SWITCH.resume_after:
            gc.enable()


@contextmanager
def paused(size: int) -> Iterator[None]:
    """Build ``size`` entries' worth of data with the collector off (below
    :data:`FREEZE_ABOVE`, with it on)."""
    if size < FREEZE_ABOVE:
        yield
        return
    pause()
    try:
        yield
    finally:
        resume()


@contextmanager
def long_lived(size: int) -> Iterator[None]:
    """Like :func:`paused`, then freeze what exists (see the module doc; :func:`thaw` undoes)."""
    with paused(size):
        yield
        if size >= FREEZE_ABOVE:
            gc.freeze()


def thaw() -> None:
    """Let the collector see frozen objects again (a big screen closed)."""
    gc.unfreeze()
