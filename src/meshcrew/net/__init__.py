"""The libp2p adapter: the only package that imports libp2p.

``open_host`` runs a member's host (Noise-only, yamux, TCP); ``host.gossip`` carries live
gossip on one topic per space; :class:`SyncService` runs the catch-up sync protocol on
``/meshcrew/sync/2.0.0`` (``1.0.0`` with older nodes). Everything raises meshcrew errors
(``NetError`` and its kinds, ``RemoteProtocolError``), never libp2p's or trio's.
"""

from meshcrew.net.config import GossipConfig, NetConfig, default_listen_addrs
from meshcrew.net.gossip import (
    Gossip,
    GossipMessage,
    GossipStats,
    GossipValidator,
    Verdict,
    topic_name,
)
from meshcrew.net.host import (
    Host,
    PeerConnected,
    PeerDisconnected,
    PeerEvent,
    StreamHandler,
    open_host,
)
from meshcrew.net.scores import (
    INVALID_GOSSIP,
    INVALID_RECORD,
    PROTOCOL_VIOLATION,
    STALLED,
    PeerScores,
)
from meshcrew.net.stream import Stream
from meshcrew.net.sync_pump import RecordsVerified, SessionEvent, SyncEventHandler, run_session
from meshcrew.net.syncing import SyncService, starts_sessions
from meshcrew.net.verifying import PoolVerifier, Verifier

__all__ = [
    "INVALID_GOSSIP",
    "INVALID_RECORD",
    "PROTOCOL_VIOLATION",
    "STALLED",
    "Gossip",
    "GossipConfig",
    "GossipMessage",
    "GossipStats",
    "GossipValidator",
    "Host",
    "NetConfig",
    "PeerConnected",
    "PeerDisconnected",
    "PeerEvent",
    "PeerScores",
    "PoolVerifier",
    "RecordsVerified",
    "SessionEvent",
    "Stream",
    "StreamHandler",
    "SyncEventHandler",
    "SyncService",
    "Verdict",
    "Verifier",
    "default_listen_addrs",
    "open_host",
    "run_session",
    "starts_sessions",
    "topic_name",
]
