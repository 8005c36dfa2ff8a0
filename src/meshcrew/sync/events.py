"""What a sync session reports to the code that drives it: events and the final statistics."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from meshcrew.records import Head


@dataclass(frozen=True, slots=True)
class PeerFrontier:
    """The peer's frontier of a space (which records it holds), as it stood when the session began.

    Sent for every space both sides synced, including those already in sync, so the node can show
    who has received what.
    """

    space_id: bytes
    frontier: Mapping[bytes, Head]


@dataclass(frozen=True, slots=True)
class RecordsReceived:
    """A batch of encoded records of ``space_id`` from the peer, in chain order per author.

    The records are not verified yet: hand them to the replica, which verifies and keeps them.
    """

    space_id: bytes
    raws: tuple[bytes, ...]


SyncEvent = PeerFrontier | RecordsReceived


@dataclass(frozen=True, slots=True)
class SyncStats:
    """What one session did, for logs, the sync-health view and benchmarks."""

    spaces_offered: int
    spaces_in_common: int
    spaces_in_sync: int
    records_sent: int
    records_received: int
    bytes_sent: int
    bytes_received: int
    more_from_peer: frozenset[bytes] = field(default_factory=frozenset)
    """Spaces where the peer stopped at the per-session cap; sync again to get the rest."""
    spaces_synced: frozenset[bytes] = field(default_factory=frozenset)
    """Spaces both sides offered that the session brought level (as of its start): in sync at
    ``hello``, or exchanged to ``done`` with neither side stopping at the per-session cap.
    Final once the session is complete."""
    version: int = 2
    """The protocol version the session spoke."""
    frontiers_sent: int = 0
    """Whole frontiers this side sent: one per active space in version 1; in version 2 only
    when a reconciliation disagreed with the peer's digest (a collision, or a lying peer)."""
