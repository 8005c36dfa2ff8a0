"""What a simulated run is made of: one typed declaration per part, with documented defaults.

A :class:`Scenario` names a congregation (members, crews), how members behave (when they are
online, how often they post), the network (latency, bandwidth, loss, address reachability,
how many peers each node keeps), the gossip mesh parameters and faults (a partition). Times
are simulated seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

MINUTE = 60.0
HOUR = 3600.0
DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class NetParams:
    """The network between nodes.

    A link's one-way latency is the sum of both ends' access latencies (plus the relay's, when
    relayed). Each node sends through one uplink of its own bandwidth, first come first served,
    so a big catch-up delays the node's gossip. Receivers' downlinks are not modelled.
    """

    access_latency_ms: tuple[float, float] = (5.0, 60.0)
    """Each node's one-way latency to the internet's core, drawn uniformly from this range."""
    uplink_kbit_s: tuple[float, float] = (1_000.0, 20_000.0)
    """Each node's uplink bandwidth, drawn log-uniformly from this range."""
    loss: float = 0.01
    """Chance that a message vanishes: a gossip message (or control message) is lost; a lost
    flight of a sync stream resets that stream (what the peer already got is kept)."""
    reachable: float = 0.3
    """Share of nodes with a public address; the others are behind NAT and can only dial out."""
    hole_punch: float = 0.7
    """Chance that two NATed nodes punch a direct connection; otherwise they talk via a relay."""
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
    """How long a peer takes to notice a crashed process (the kernel resets its sockets)."""
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
    sample_s: float = 10 * MINUTE
    """How often the convergence curve is sampled."""

    def __post_init__(self) -> None:
        if self.members < 3 or not 1 <= self.crews <= self.members // 3:
            raise ValueError("a scenario needs at least 3 members per crew")
        if not 0.0 <= self.net.loss < 1.0:
            raise ValueError("loss is a probability below 1")

    @property
    def end_s(self) -> float:
        """The latest simulated time the run may reach."""
        return (self.behaviour.days + self.behaviour.drain_days) * DAY
