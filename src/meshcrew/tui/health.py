"""What the node reports about sync health, as plain data the screens show.

These types import no Textual (and no trio), so the node can build them. Without a node the app
shows :data:`OFFLINE`: an honest "not connected", never made-up peers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType


class Route(StrEnum):
    """How a peer is reached."""

    LAN = "lan"
    INTERNET = "internet"
    RELAY = "relay"
    HOLE_PUNCHED = "hole-punched"
    """Direct across two NATs, made by hole punching over a relayed connection."""


@dataclass(frozen=True, slots=True)
class PeerStatus:
    """One peer the node knows (connected now or seen before).

    Attributes:
        member: the peer's member key (its libp2p identity is the same ed25519 key).
        addresses: the peer's last known multiaddrs.
        connected: whether a connection is open now.
        route: how the open connection (or the last one) reaches it.
        via: the relay's peer id, when the route is a relay.
        last_seen_ms: when the peer last spoke to this node, None if never.
        last_sync_ms: when a sync session with the peer last ran to the end, None if never.
    """

    member: bytes
    addresses: tuple[str, ...] = ()
    connected: bool = False
    route: Route = Route.INTERNET
    last_seen_ms: int | None = None
    last_sync_ms: int | None = None
    via: str | None = None
    role: str = "member"
    """``member``, ``device`` (a member's linked laptop: a peer of its own), ``carrier`` (an
    always-on node that holds a space's sealed records) or ``other``."""
    of_member: bytes | None = None
    """For a device, its member's key."""


@dataclass(frozen=True, slots=True)
class SyncStatus:
    """The node's view of the network, for the home screen and the sync-health screen.

    Attributes:
        running: whether a node runs (in this process or attached); False means offline.
        detail: one sentence for the person, e.g. why the app is not connected.
        listen_addrs: where this node listens.
        peers: every peer known, connected ones first.
        last_received_ms: when records last arrived from a peer, None if not since the node
            started.
    """

    running: bool
    detail: str
    listen_addrs: tuple[str, ...] = ()
    peers: tuple[PeerStatus, ...] = ()
    last_received_ms: int | None = None

    @property
    def connected(self) -> tuple[PeerStatus, ...]:
        """The peers with an open connection."""
        return tuple(peer for peer in self.peers if peer.connected)

    @property
    def synced(self) -> tuple[PeerStatus, ...]:
        """The peers a sync session has ever run to the end with."""
        return tuple(peer for peer in self.peers if peer.last_sync_ms is not None)

    @property
    def last_sync_ms(self) -> int | None:
        """When a sync with any peer last ran to the end, None if never."""
        return max((peer.last_sync_ms for peer in self.synced if peer.last_sync_ms is not None),
                   default=None)

    def peer(self, member: bytes) -> PeerStatus | None:
        """The status of one member's node, if the node knows it."""
        return next((peer for peer in self.peers if peer.member == member), None)


OFFLINE = SyncStatus(
    running=False,
    detail="Not connected: no node runs in this app, so nothing is sent or received. "
    "Your replica works offline; what you write is sent when a node runs.",
)
"""The status of an app that works on the local replica alone."""


Holdings = Mapping[bytes, Mapping[bytes, int]]
"""Per member key: per author key, the highest seq of that author's chain the member holds."""

NO_HOLDINGS: Holdings = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Receipt:
    """Who holds one record, among a space's current members."""

    holders: frozenset[bytes]
    members: frozenset[bytes] = field(default_factory=frozenset)

    @property
    def text(self) -> str:
        """E.g. ``seen by 4 of 5``."""
        return f"seen by {len(self.holders & self.members)} of {len(self.members)}"


def member_holdings(frontiers: Mapping[bytes, Mapping[bytes, int]],
                    member_of: Mapping[bytes, bytes]) -> dict[bytes, dict[bytes, int]]:
    """Per-peer frontiers (author → seq) as per member: a device's count for its member
    (``member_of``: each current device's member key), the furthest of them per author. Keys
    ``member_of`` does not name stay as they are (a member key, or a revoked device, which then
    counts for no member)."""
    found: dict[bytes, dict[bytes, int]] = {}
    for key, heads in frontiers.items():
        merged = found.setdefault(member_of.get(key, key), {})
        for author, seq in heads.items():
            if seq > merged.get(author, 0):
                merged[author] = seq
    return found


def receipt(author: bytes, seq: int, members: frozenset[bytes], holdings: Holdings,
            chain: bytes | None = None) -> Receipt:
    """Who among ``members`` is known to hold the record ``seq`` of ``chain`` (the key that
    signed it: ``author``, or one of the author's devices).

    The author holds their own records; anyone else counts once their known frontier reaches it.
    """
    signer = author if chain is None else chain
    holders = {author} if author in members else set()
    holders.update(member for member, heads in holdings.items()
                   if member in members and heads.get(signer, 0) >= seq)
    return Receipt(frozenset(holders), members)


def lacking(mine: Mapping[bytes, int], theirs: Mapping[bytes, int]) -> int:
    """How many records of ``mine`` (author → head seq) a peer with ``theirs`` does not hold."""
    return sum(max(0, seq - theirs.get(author, 0)) for author, seq in mine.items())
