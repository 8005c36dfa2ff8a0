"""Catch-up sync: a sans-IO protocol that brings two replicas of the same spaces level.

Bytes in, events and bytes out; no I/O, no clock. ``meshcrew.net`` runs a
:class:`SyncSession` on a libp2p stream named :data:`PROTOCOL_ID`; tests pair two sessions
with in-memory buffers. The wire format is documented in ``docs/sync.md``.
"""

from meshcrew.sync.events import PeerFrontier, RecordsReceived, SyncEvent, SyncStats
from meshcrew.sync.session import RecordSource, SyncSession
from meshcrew.sync.wire import (
    MAX_BATCH_BYTES,
    MAX_BATCH_RECORDS,
    MAX_FRAME_BYTES,
    MAX_OFFERS,
    MAX_RECORDS_PER_SPACE,
    SYNC_VERSION,
    space_token,
)

PROTOCOL_ID = "/meshcrew/sync/1.0.0"
"""The libp2p stream protocol that carries a sync session."""

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_BATCH_RECORDS",
    "MAX_FRAME_BYTES",
    "MAX_OFFERS",
    "MAX_RECORDS_PER_SPACE",
    "PROTOCOL_ID",
    "SYNC_VERSION",
    "PeerFrontier",
    "RecordSource",
    "RecordsReceived",
    "SyncEvent",
    "SyncSession",
    "SyncStats",
    "space_token",
]
