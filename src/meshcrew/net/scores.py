"""Penalty points for peers that send invalid data, and the ban list they lead to.

Each offence adds points; points drain away linearly with time; a peer whose points reach the
threshold is banned: disconnected, refused, and remembered until forgiven. The host applies the
ban; this module only counts. Pure: time is passed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

INVALID_GOSSIP = 25.0
"""A gossip message that failed validation (bad signature, wrong space, over a limit): four in a
row ban the sender."""

INVALID_RECORD = 10.0
"""A record received by sync that the replica refused."""

PROTOCOL_VIOLATION = 50.0
"""A sync stream that broke the protocol (malformed, oversize, out of turn)."""

STRANGER_STREAM = 1.0
"""A sync stream from a peer that shares no space with this node (refused at once): one now and
then is a node that does not know yet; a hundred in a row, a peer trying to hold the node's
session slots, are banned."""
STALLED = 10.0
"""A sync stream that missed its deadline: often an honest slow link, so it counts little."""


@dataclass(slots=True)
class _Tally:
    points: float
    at: float


class PeerScores:
    """Penalty points per peer id, with linear decay and a ban threshold.

    Args:
        threshold: points at which a peer is banned.
        decay_per_s: points forgiven per second.
        banned: peers banned earlier (the node keeps the list across restarts).
    """

    def __init__(self, threshold: float, decay_per_s: float, banned: Iterable[str] = ()) -> None:
        if threshold <= 0 or decay_per_s < 0:
            raise ValueError("threshold must be positive and decay non-negative")
        self._threshold = threshold
        self._decay = decay_per_s
        self._tallies: dict[str, _Tally] = {}
        self._banned: set[str] = set(banned)

    def points(self, peer_id: str, now: float) -> float:
        """The peer's current penalty points."""
        tally = self._tallies.get(peer_id)
        if tally is None:
            return 0.0
        return max(0.0, tally.points - (now - tally.at) * self._decay)

    def penalize(self, peer_id: str, points: float, now: float) -> bool:
        """Add penalty points; return True if this penalty bans the peer (only the first time)."""
        if peer_id in self._banned:
            return False
        total = self.points(peer_id, now) + points
        if total >= self._threshold:
            self._tallies.pop(peer_id, None)
            self._banned.add(peer_id)
            return True
        self._tallies[peer_id] = _Tally(total, now)
        return False

    def is_banned(self, peer_id: str) -> bool:
        """Whether the peer is on the ban list."""
        return peer_id in self._banned

    @property
    def banned(self) -> frozenset[str]:
        """Every banned peer id (to persist across restarts)."""
        return frozenset(self._banned)

    def forgive(self, peer_id: str) -> None:
        """Lift a ban and clear the peer's points."""
        self._banned.discard(peer_id)
        self._tallies.pop(peer_id, None)

    def forget_idle(self, now: float) -> None:
        """Drop tallies that have drained to zero, so memory follows active offenders only."""
        for peer_id in [p for p in self._tallies if self.points(p, now) == 0.0]:
            del self._tallies[peer_id]
