"""What a simulated run is made of: one typed declaration per part, with documented defaults.

A :class:`Scenario` names a congregation (members, crews), how members behave (when they are
online, how often they post), the network (latency, bandwidth, loss, NAT types and relays,
how many peers each node keeps), the gossip mesh parameters and faults (a partition). Times
are simulated seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

MINUTE = 60.0
HOUR = 3600.0
DAY = 86_400.0


class Nat(StrEnum):
    """How a node meets the internet: the three cases the NAT lab builds (docs/netlab.md)."""

    PUBLIC = "public"
    """A public address: anyone can dial it. Its dial-backs say "public", so it relays."""
    CONE = "cone"
    """Behind a port-preserving NAT (Linux's default masquerade, most home routers): it keeps
    one outside port for every destination, so a hole punch with another cone NAT works."""
    SYMMETRIC = "symmetric"
    """Behind a NAT that picks a new port per destination (``masquerade random``; many mobile
    and carrier-grade NATs): the port one peer observes is useless to another, so hole punching
    fails."""


@dataclass(frozen=True, slots=True)
class RelayParams:
    """Circuit relay v2 as the node runs it: ``meshcrew.net.relay`` (``RelayServiceConfig``,
    ``MEMBER_LIMITS``, ``STRANGER_LIMITS``) and ``meshcrew.net.reach`` (``Reservations``); a test
    checks they match.

    Only publicly reachable nodes relay. A node behind NAT holds reservations on up to
    ``reservations_per_node`` of the public peers it is connected to, and takes another when one
    goes away. A circuit to a peer whose relay and dialler both share a space with the relay gets
    the member limits, otherwise the stranger limits; the relay cuts it at whichever limit comes
    first (data counts both directions together).
    """

    reservations_per_node: int = 2
    member_duration_s: float = 3600.0
    member_data_bytes: int = 64 * 1024 * 1024
    stranger_duration_s: float = 120.0
    stranger_data_bytes: int = 128 * 1024
    strangers: bool = True
    """Relay peers that share no space with the relay (with the stranger limits), or refuse."""
    max_reservations: int = 128
    max_circuits: int = 64
    max_circuits_per_peer: int = 4
    """Circuits one peer may have through the relay at once, as either end."""
    bytes_per_day: int = 2 * 1024 * 1024 * 1024
    """Relayed bytes per day after which the relay opens no new circuit."""


@dataclass(frozen=True, slots=True)
class NetParams:
    """The network between nodes.

    A link's one-way latency is the sum of both ends' access latencies (plus twice the relay's,
    when relayed). Each node sends through one uplink of its own bandwidth, first come first
    served, so a big catch-up delays the node's gossip. Receivers' downlinks are not modelled.

    NAT: a node with a public address is dialled straight. A node behind NAT can only be reached
    through a relay it holds a reservation on; over that circuit it starts a hole punch (DCUtR),
    and if the punch works the connection becomes direct, otherwise it stays on the relay's
    circuit, with its limits. With no relay, nobody can open a connection to it (it can still
    dial out).
    """

    access_latency_ms: tuple[float, float] = (5.0, 60.0)
    """Each node's one-way latency to the internet's core, drawn uniformly from this range."""
    uplink_kbit_s: tuple[float, float] = (1_000.0, 20_000.0)
    """Each node's uplink bandwidth, drawn log-uniformly from this range."""
    loss: float = 0.01
    """Chance that a message vanishes: a gossip message (or control message) is lost; a lost
    flight of a sync stream resets that stream (what the peer already got is kept)."""
    public: float = 0.3
    """Share of nodes with a public address (laptops on university or office networks, IPv6
    without an inbound firewall, routers with a forwarded port); they relay for the others."""
    symmetric: float = 0.12
    """Share of nodes behind a symmetric NAT (phone tethering, carrier-grade NAT); the rest,
    ``1 - public - symmetric``, are behind cone NATs (home routers). With the defaults, 69% of
    the pairs of NATed nodes are cone-cone, about the 70% ± 7% hole-punch success the libp2p
    measurement campaign found in the IPFS network (arXiv 2510.27500): the field's rate, now
    carried by the nodes' NAT types, so the same symmetric node fails with everyone."""
    punch_cone_cone: float = 1.0
    """Chance that a hole punch between two cone NATs works: measured in the NAT lab (DCUtR over
    TCP, py-libp2p 0.8.1; docs/netlab.md), where it succeeded in 10 of 10 runs
    (docs/performance.md, "Reach across NATs")."""
    punch_with_symmetric: float = 0.0
    """Chance that a hole punch works with a symmetric NAT at either end: measured in the NAT
    lab, where it failed in 10 of 10 runs. (A public dialler needs no punch: the NATed callee
    dials it back.)"""
    relay: RelayParams = field(default_factory=RelayParams)
    congregation_peers: int = 4
    """Publicly reachable congregation members each node keeps connections to, besides its
    crewmates ("peers that connect only to a few others")."""
    max_connections: int = 96
    """Connections a node accepts; more are refused."""
    handshake_rtts: float = 2.0
    """Round trips to set up a connection (TCP, Noise, yamux, multistream)."""
    connect_bytes: int = 3_000
    """Bytes each side sends to set a connection up (Noise handshake, identify)."""
    keepalive_s: float = 30.0
    """How long a peer takes to notice that a connection died silently (sleep, partition)."""
    reset_notice_s: float = 0.6
    """How long a peer takes to notice a crashed process or a circuit its relay cut (the
    streams are reset)."""
    redial_s: tuple[float, float] = (60.0, 1_800.0)
    """Back-off between failed dials of the same peer: first, and the cap (it doubles)."""


@dataclass(frozen=True, slots=True)
class GossipParams:
    """GossipSub as meshcrew configures it (``meshcrew.net.config.GossipConfig``) and py-libp2p's
    defaults for the rest; a test checks they match."""

    degree: int = 8
    degree_low: int = 4
    degree_high: int = 64
    degree_lazy: int = 6
    """Least number of non-mesh peers that get IHAVE gossip each heartbeat (py-libp2p: 6, or a
    quarter of the non-mesh peers if more)."""
    gossip_factor: float = 0.25
    heartbeat_s: float = 1.0
    gossip_window: int = 3
    """Heartbeats a message id stays in IHAVE gossip."""
    history: int = 5
    """Heartbeats a message stays in the cache that answers IWANT."""
    seen_ttl_s: float = 120.0
    """How long a message id is remembered as seen (duplicates are dropped)."""
    enabled: bool = True
    """False: no live gossip at all, catch-up sync only."""


@dataclass(frozen=True, slots=True)
class NodeParams:
    """What each node does besides gossip."""

    sync_period_s: float = 60.0
    """Catch-up sync with every connected peer this often (``SyncService`` default), besides the
    session every new connection starts."""
    sync_jitter: tuple[float, float] = (0.8, 1.2)
    propagate_delay_s: float = 2.0
    """New records (written or received) of a space with carriers are synced on to the
    connected carriers of that space this long after (``NodeConfig.propagate_delay_s``), in
    case gossip missed them. (The node syncs its connected members then too; the simulator
    leaves that out, as gossip has brought them the records.)"""
    ingest_delay_s: float = 0.05
    """Records received (gossip or sync) wait this long in memory before one replica append
    commits them; a crash loses them (peers still have them)."""
    fast_path: bool = True
    """Count, rather than re-run, a sync session whose spaces are all in sync on both sides (its
    outcome is fixed by the protocol: hello crosses hello). Off: every session runs for real."""


class Online(StrEnum):
    """When nodes are up."""

    ALWAYS = "always"
    DAILY = "daily"
    """One window a day: ``hours_per_day`` long, starting in the ``start_hour`` band."""


@dataclass(frozen=True, slots=True)
class Behaviour:
    """When members are online and what they post."""

    days: float = 7.0
    """Days of posting; the run then goes on (posting nothing) until every member holds every
    record of their spaces, or ``drain_days`` pass."""
    drain_days: float = 3.0
    online: Online = Online.DAILY
    hours_per_day: float = 10.0
    start_hour: tuple[float, float] = (6.0, 12.0)
    """The usual start of a member's day (UTC hours), drawn per member."""
    start_jitter_h: float = 1.0
    """Each day starts this many hours earlier or later than usual, at most."""
    crash_per_day: float = 0.05
    """Chance per online day that the node crashes (then restarts after ``restart_s``)."""
    restart_s: tuple[float, float] = (10.0, 600.0)
    checkins_per_day: int = 1
    reaction: float = 0.5
    """Chance that a crewmate who has received a check-in answers it (a reaction)."""
    congregation_posts_per_day: float = 0.3
    """Per member: asks, offers and gatherings posted to the congregation per day."""
    replies_per_ask: float = 2.0
    """Mean replies an ask or offer in the congregation gets."""
    answer_delay_s: float = 20 * MINUTE
    """Mean time a member takes to answer what they received."""


class CarrierKind(StrEnum):
    """Who carries a crew's sealed records besides its members (issue 12)."""

    ALWAYS_ON = "always-on"
    """One always-on node per crew that is no member of anything (a home server, a Pi, a small
    VPS) with a public address. It never dials: members dial it, as their node dials the
    carriers their spaces name."""
    PUBLIC_MEMBERS = "public-members"
    """Members of the congregation with a public address, outside the crew, on their laptops
    (online like any member): each runs its node with ``--carrier``."""


@dataclass(frozen=True, slots=True)
class Carriers:
    """Carriers of the crews, as ``meshcrew.node.carrying`` runs them; a test checks the quotas
    against ``meshcrew.node.config``.

    Each crew's founder names the crew's carriers with a real ``carrier`` record in the setup
    (fold rule 10), and each carrier's replica starts with the crew's setup records (as if a
    member had brought the crew to it before the week). From then on the carrier takes the
    crew's records by gossip and catch-up sync, verifies and keeps them in its replica within
    its quotas, and serves them to the crew's members. It has no epoch key and is not a member:
    it never counts as a member holding a record. Congregations have no carriers here.
    """

    kind: CarrierKind = CarrierKind.ALWAYS_ON
    per_crew: int = 1
    """Carriers each crew names (always-on: one new node each; public members: drawn from the
    congregation's public members outside the crew, as many as there are up to this)."""
    space_quota_bytes: int = 256 * 1024 * 1024
    """Bytes of one space's records a carrier holds; past it, it refuses them."""
    total_quota_bytes: int = 4096 * 1024 * 1024
    """Bytes of records a carrier holds in all."""


@dataclass(frozen=True, slots=True)
class Partition:
    """A share of the nodes cut off from the rest for a while."""

    start_day: float
    days: float
    fraction: float = 0.5


@dataclass(frozen=True, slots=True)
class Scenario:
    """A named, seeded run."""

    name: str
    description: str
    members: int
    crews: int
    seed: int = 1
    behaviour: Behaviour = field(default_factory=Behaviour)
    net: NetParams = field(default_factory=NetParams)
    gossip: GossipParams = field(default_factory=GossipParams)
    node: NodeParams = field(default_factory=NodeParams)
    partition: Partition | None = None
    carriers: Carriers | None = None
    """Who carries the crews' records besides their members (None: nobody)."""
    sample_s: float = 10 * MINUTE
    """How often the convergence curve is sampled."""

    def __post_init__(self) -> None:
        if self.members < 3 or not 1 <= self.crews <= self.members // 3:
            raise ValueError("a scenario needs at least 3 members per crew")
        if not 0.0 <= self.net.loss < 1.0:
            raise ValueError("loss is a probability below 1")
        if min(self.net.public, self.net.symmetric) < 0 or \
                self.net.public + self.net.symmetric > 1.0:
            raise ValueError("the public and symmetric shares must add up to at most 1")
        if self.carriers is not None and not 1 <= self.carriers.per_crew <= 8:
            raise ValueError("a crew names 1 to 8 carriers")

    @property
    def end_s(self) -> float:
        """The latest simulated time the run may reach."""
        return (self.behaviour.days + self.behaviour.drain_days) * DAY
