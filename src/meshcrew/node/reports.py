"""What the node reports: its status, its peers, a join, a link; and the events it sends a TUI.

Plain frozen dataclasses with ``to_json()`` (the ``--json`` contract of ``meshcrew status``,
``peers`` and ``join``, documented in ``docs/cli.md``). They travel over the control socket, so
this module imports neither trio nor libp2p.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from meshcrew.identity import fingerprint


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """A running node at a glance."""

    peer_id: str
    key: bytes
    name: str
    fingerprint: str
    home: str
    addrs: tuple[str, ...]
    """Where peers can dial this node: full multiaddrs ending in ``/p2p/<peer id>``."""
    peers: tuple[str, ...]
    """Peer ids connected now."""
    spaces: tuple[bytes, ...]
    """The spaces this member is in (their topics are joined)."""
    records: int
    """Records accepted in the replica, all spaces."""
    mdns: bool
    started_ms: int
    banned: tuple[str, ...]
    gossip_published: int
    gossip_received: int
    gossip_rejected: int
    gossip_dropped: int
    last_sync_ms: int | None = None
    """When a sync session with any peer (sharing a space) last ran to the end; None: never."""
    synced_peers: int = 0
    """Peers a sync session has ever run to the end with (as the peer book remembers)."""
    reachability: str = "unknown"
    """``public``, ``private`` or ``unknown``: whether peers can dial this node directly."""
    reachability_reason: str = ""
    """Why the node concluded it (a sentence)."""
    reservations: tuple[str, ...] = ()
    """Relays holding a reservation for this node (its circuit addresses go through them)."""
    relay: RelayUse | None = None
    """This node's relay service: its caps and current use."""
    carrier: bool = False
    """Whether this node runs as a carrier (``--carrier``)."""
    carried: tuple[CarriedUse, ...] = ()
    """On a carrier: the spaces it holds."""
    carrier_refusals: tuple[tuple[str, str], ...] = ()
    """``(carrier peer id, why)``: carriers of this member's spaces that refused one."""
    gossip_judged: int = 0
    """Gossip messages the validator judged, the first time each was seen (this node's own
    included)..."""
    gossip_accepted: int = 0
    """...of which it accepted these (``gossip_rejected`` it refused; the rest it ignored)."""
    gossip_stored: int = 0
    """Records from gossip the replica stored (new to it)."""
    gossip_refused: int = 0
    """Subscriptions and messages from peers kept out of a topic (not members): never judged."""

    def to_json(self) -> dict[str, Any]:
        """The ``status --json`` object."""
        return {"peer_id": self.peer_id, "key": self.key.hex(), "name": self.name,
                "fingerprint": self.fingerprint, "home": self.home, "addrs": list(self.addrs),
                "peers": list(self.peers), "spaces": [s.hex() for s in self.spaces],
                "records": self.records, "mdns": self.mdns, "started_ms": self.started_ms,
                "banned": list(self.banned), "last_sync_ms": self.last_sync_ms,
                "synced_peers": self.synced_peers,
                "reachability": {"verdict": self.reachability,
                                 "reason": self.reachability_reason},
                "reservations": list(self.reservations),
                "relay": None if self.relay is None else self.relay.to_json(),
                "carrier": self.carrier, "carried": [c.to_json() for c in self.carried],
                "carrier_refusals": [{"carrier": p, "reason": r}
                                     for p, r in self.carrier_refusals],
                "gossip": {"published": self.gossip_published, "received": self.gossip_received,
                           "rejected": self.gossip_rejected, "dropped": self.gossip_dropped,
                           "judged": self.gossip_judged, "accepted": self.gossip_accepted,
                           "stored": self.gossip_stored, "refused": self.gossip_refused}}


@dataclass(frozen=True, slots=True)
class CarriedUse:
    """One space a carrier holds."""

    space: bytes
    records: int
    bytes: int
    named: bool
    """Still named by the space (else it waits out the grace period before deletion)."""

    def to_json(self) -> dict[str, Any]:
        """One item of ``status --json``'s ``carried``."""
        return {"space": self.space.hex(), "records": self.records, "bytes": self.bytes,
                "named": self.named}


@dataclass(frozen=True, slots=True)
class RelayUse:
    """A node's circuit relay service: whether it serves, its caps, what is in use."""

    serving: bool
    strangers: bool
    reservations: int
    max_reservations: int
    circuits: int
    max_circuits: int
    max_circuits_per_peer: int
    bytes_today: int
    bytes_per_day: int
    circuits_served: int
    refused: int

    def to_json(self) -> dict[str, Any]:
        """The ``relay`` object of ``status --json``."""
        return {"serving": self.serving, "strangers": self.strangers,
                "reservations": self.reservations, "max_reservations": self.max_reservations,
                "circuits": self.circuits, "max_circuits": self.max_circuits,
                "max_circuits_per_peer": self.max_circuits_per_peer,
                "bytes_today": self.bytes_today, "bytes_per_day": self.bytes_per_day,
                "circuits_served": self.circuits_served, "refused": self.refused}


@dataclass(frozen=True, slots=True)
class PeerSpace:
    """Where one peer stands in one space this member is in."""

    space: bytes
    name: str | None
    they_lack: int | None
    """Records this replica holds that the peer is not known to hold (None: never synced)."""
    we_lack: int | None
    """Records the peer held at the last sync that this replica does not hold."""
    synced: bool
    """Whether the peer's frontier of this space has been seen."""
    last_sync_ms: int | None = None
    """When a sync session last brought this space level with the peer; None: never."""

    def to_json(self) -> dict[str, Any]:
        """One item of a peer's ``spaces`` in ``peers --json``."""
        return {"space": self.space.hex(), "name": self.name, "they_lack": self.they_lack,
                "we_lack": self.we_lack, "synced": self.synced,
                "last_sync_ms": self.last_sync_ms}


@dataclass(frozen=True, slots=True)
class PeerReport:
    """A peer the node knows: a member of a shared space, or one it met on the network."""

    peer_id: str
    key: bytes | None
    """The peer's member key (None if its peer id is not an ed25519 member key)."""
    name: str | None
    """Its display name in a shared space, if it is a member of one."""
    connected: bool
    addrs: tuple[str, ...]
    last_seen_ms: int | None
    banned: bool
    source: str
    spaces: tuple[PeerSpace, ...]
    last_sync_ms: int | None = None
    """When a sync session with it (sharing a space) last ran to the end; None: never."""
    link: str = "none"
    """``direct``, ``relayed``, ``hole-punched`` (direct, made by hole punching) or ``none``."""
    via: str | None = None
    """The relay, when the link is relayed."""
    hole_punch: str = "not tried"
    """``succeeded``, ``failed`` or ``not tried``."""
    role: str = "member"
    """``member`` (of a space this member shares with it), ``device`` (a current device of
    such a member: ``name`` is the member's), ``carrier`` (of one of this member's spaces, or,
    on a carrier, ...) or ``other``."""
    member: bytes | None = None
    """For a device, its member's key."""

    def to_json(self) -> dict[str, Any]:
        """One item of ``peers --json`` (``member``: a device's member key, or null)."""
        return {"peer_id": self.peer_id, "key": None if self.key is None else self.key.hex(),
                "name": self.name, "connected": self.connected, "addrs": list(self.addrs),
                "last_seen_ms": self.last_seen_ms, "last_sync_ms": self.last_sync_ms,
                "banned": self.banned, "source": self.source,
                "link": self.link, "via": self.via, "hole_punch": self.hole_punch,
                "role": self.role,
                "member": None if self.member is None else self.member.hex(),
                "spaces": [s.to_json() for s in self.spaces]}


@dataclass(frozen=True, slots=True)
class JoinResult:
    """What joining over the network did."""

    space: bytes
    via: str
    """The peer id of the member whose node let this one in."""
    records: int
    """Records of the space received while joining."""
    has_keys: bool
    """Whether the keys arrived (else a member still has to rotate them)."""

    def to_json(self) -> dict[str, Any]:
        """The ``join --json`` object's network part."""
        return {"space": self.space.hex(), "via": self.via, "records": self.records,
                "has_keys": self.has_keys}


@dataclass(frozen=True, slots=True)
class JoinProgress:
    """A step of a network join, for a progress display."""

    stage: str
    """``dialling``, ``looking_on_lan``, ``asking``, ``history``, ``joined``, ``keys`` or
    ``waiting_for_keys``."""
    detail: str = ""
    done: int = 0
    total: int = 0

    def to_json(self) -> dict[str, Any]:
        """The progress step as JSON."""
        return {"stage": self.stage, "detail": self.detail, "done": self.done,
                "total": self.total}


@dataclass(frozen=True, slots=True)
class RecordsChanged:
    """Records were added to the replica (by this member, or from peers)."""

    spaces: frozenset[bytes]
    ids: tuple[bytes, ...]
    """The records' ids."""
    local: bool
    """Whether this member signed them."""
    at_ms: int
    """When the replica took them (the node's clock)."""


@dataclass(frozen=True, slots=True)
class PeersChanged:
    """A peer connected or disconnected."""

    connected: frozenset[str]


@dataclass(frozen=True, slots=True)
class PeerSynced:
    """A sync session with a peer, sharing at least one space, ran to the end."""

    peer_id: str
    spaces: frozenset[bytes]
    """The spaces it brought level."""
    at_ms: int
    """When (the node's clock)."""


NodeEvent = RecordsChanged | PeersChanged | PeerSynced


@dataclass(frozen=True, slots=True)
class LinkResult:
    """How a link went, on either side."""

    device: bytes
    member: bytes
    member_name: str
    spaces: int
    """In how many spaces the device posted its certificate."""

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` object."""
        return {"device": self.device.hex(), "device_fingerprint": fingerprint(self.device),
                "member": self.member.hex(), "member_fingerprint": fingerprint(self.member),
                "member_name": self.member_name, "spaces": self.spaces}
