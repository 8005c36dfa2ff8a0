"""Typed Textual messages: what the backend and the node report, as the screens receive it.

The backend reports plain :mod:`meshcrew.tui.backend` events (it imports no Textual); the app
turns each into one of these messages and hands a copy to every screen on the stack, so a screen
refreshes only what changed. They do not bubble: each screen gets its own copy.
"""

from __future__ import annotations

from textual.message import Message


class RecordsChanged(Message, bubble=False):
    """Records were written or received in some spaces (their views may have changed)."""

    def __init__(self, space_ids: frozenset[bytes]) -> None:
        super().__init__()
        self.space_ids = space_ids

    def can_replace(self, message: Message) -> bool:
        # A burst of arrivals (catch-up sync) needs one refresh, not one per batch.
        return isinstance(message, RecordsChanged) and message.space_ids <= self.space_ids


class PeersChanged(Message, bubble=False):
    """The node's connections or peer book changed (the sync status may differ)."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, PeersChanged)


class JoinProgressed(Message, bubble=False):
    """A join is under way: ``received`` records of ``expected`` (None while unknown)."""

    def __init__(self, received: int, expected: int | None, stage: str) -> None:
        super().__init__()
        self.received = received
        self.expected = expected
        self.stage = stage

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, JoinProgressed)


class NodeStopped(Message, bubble=False):
    """The in-process node ended; ``error`` is what it raised (None when cancelled cleanly)."""

    def __init__(self, error: BaseException | None) -> None:
        super().__init__()
        self.error = error
