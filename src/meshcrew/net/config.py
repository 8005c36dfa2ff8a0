"""Settings of the libp2p adapter, in one typed declaration with defaults for small groups."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_PORT = 0
"""Port 0 lets the system choose; the node remembers the chosen port and asks for it next time."""


def default_listen_addrs(port: int = DEFAULT_PORT) -> tuple[str, ...]:
    """TCP on every IPv4 interface at ``port``."""
    return (f"/ip4/0.0.0.0/tcp/{port}",)


@dataclass(frozen=True, slots=True)
class GossipConfig:
    """GossipSub settings chosen for crews (3-8) and congregations (up to ~200).

    See ``/work/shared/LIBP2P.md`` traps 2-6 for why each default is what it is.
    """

    degree: int = 8
    degree_low: int = 4
    degree_high: int = 64
    """A hub with more mesh peers than this prunes them for 60 s and there is no flood publish,
    so it must be at least the number of peers a node of a crew or a small congregation has."""
    heartbeat_s: int = 1
    max_messages_per_topic_per_second: float = 500.0
    """libp2p's spam protection drops a forwarder's messages above this rate (default 10/s, far
    below a burst of check-in replies relayed by one member)."""
    publish_interval_s: float = 0.005
    """Least time between two publishes: unpaced publishing overflows libp2p's 32-message queues."""
    publish_room_wait_s: float = 1.0
    """Longest a publish waits for room in the topic's peers' outbound queues (a writer slowed
    by a loaded machine drains them slower than the pace; a stalled peer's never drains)."""
    publish_queue: int = 1024
    """Records waiting to be published; beyond it publishes are dropped (sync delivers them)."""
    receive_queue: int = 1024
    """Validated messages waiting for the node; beyond it messages are dropped (sync again)."""


@dataclass(frozen=True, slots=True)
class NetConfig:
    """Everything :func:`meshcrew.net.open_host` needs besides the identity."""

    listen_addrs: tuple[str, ...] = field(default_factory=default_listen_addrs)
    read_timeout_s: float = 15.0
    """Longest wait for the next bytes of a stream before the peer counts as stalled."""
    write_timeout_s: float = 15.0
    session_timeout_s: float = 300.0
    """Longest a whole sync session may take."""
    dial_timeout_s: float = 15.0
    shutdown_timeout_s: float = 5.0
    ban_threshold: float = 100.0
    """Penalty points at which a peer is disconnected and banned (see ``net.scores``)."""
    penalty_decay_per_s: float = 1.0 / 60.0
    """Points forgiven per second, so rare honest mistakes never add up to a ban."""
    gossip: GossipConfig = field(default_factory=GossipConfig)
    relay_strangers: bool = True
    """As a relay, give peers that share no space the spec's limited relay (else nothing)."""
