"""Catch-up sync: a sans-IO protocol that brings two replicas of the same spaces level.

Bytes in, events and bytes out; no I/O, no clock. Version 2 reconciles frontiers
(:mod:`meshcrew.sync.reconcile`) where version 1 exchanged them whole. ``meshcrew.net`` runs a
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
    SYNC_VERSIONS,
    space_token,
)

PROTOCOL_IDS = {2: "/meshcrew/sync/2.0.0", 1: "/meshcrew/sync/1.0.0"}
"""The libp2p stream protocol of each sync version."""

PROTOCOL_ID = PROTOCOL_IDS[SYNC_VERSION]
"""The libp2p stream protocol of the version this code prefers."""

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_BATCH_RECORDS",
    "MAX_FRAME_BYTES",
    "MAX_OFFERS",
    "MAX_RECORDS_PER_SPACE",
    "PROTOCOL_ID",
    "PROTOCOL_IDS",
    "SYNC_VERSION",
    "SYNC_VERSIONS",
    "PeerFrontier",
    "RecordSource",
    "RecordsReceived",
    "SyncEvent",
    "SyncSession",
    "SyncStats",
    "space_token",
]
