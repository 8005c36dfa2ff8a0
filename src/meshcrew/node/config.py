"""Settings of a node, in one typed declaration with defaults for a member's laptop."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from meshcrew.service import PREPARE_ABOVE

if TYPE_CHECKING:  # only the type: importing meshcrew.net loads libp2p, which the CLI avoids
    from meshcrew.net import NetConfig


MIB = 1024 * 1024
DEFAULT_SPACE_QUOTA = 256 * MIB
"""A congregation of 200 writes a few MiB a month (docs/performance.md): years of it."""
DEFAULT_TOTAL_QUOTA = 4096 * MIB
DEFAULT_DROP_GRACE_MS = 7 * 24 * 3_600_000
"""How long a carrier keeps a space that dropped it (a member may name it again by mistake
undone) before deleting its records."""


@dataclass(frozen=True, slots=True)
class CarrierConfig:
    """A carrier's settings (``meshcrew node --carrier``)."""

    enabled: bool = False
    space_quota_bytes: int = DEFAULT_SPACE_QUOTA
    total_quota_bytes: int = DEFAULT_TOTAL_QUOTA
    drop_grace_ms: int = DEFAULT_DROP_GRACE_MS


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Everything :func:`meshcrew.node.open_node` needs besides the home folder and identity.

    Attributes:
        listen_addrs: multiaddrs to listen on; empty means every IPv4 interface at the port the
            node used last time (else one the system picks).
        mdns: announce the node on the LAN and dial members found there.
        mdns_on_demand: with ``mdns`` off, still start LAN discovery when a join finds no
            member at the invite code's addresses (the node a CLI ``join`` starts does this).
        bootstrap: multiaddrs (ending in ``/p2p/<peer id>``) to dial at start and keep dialling.
        sync_period_s: how often connected peers are synced again (they also sync on every
            connection, and after new records arrive).
        propagate_delay_s: how long new records are gathered before the node syncs them on to
            its other peers (a burst of records then costs one session per peer).
        redial_min_s: first wait before redialling a member that could not be reached.
        redial_max_s: longest wait between redials (the wait doubles after each failure).
        max_dials: most dials at once.
        join_timeout_s: how long ``join`` keeps trying to reach a member of the space.
        keys_timeout_s: after joining, how long ``join`` waits for the keys to arrive.
        net: the libp2p adapter's settings (deadlines, gossip); its listen addresses are
            replaced by ``listen_addrs``. None: the defaults, with a 1 s shutdown deadline.
        reachability: ``auto`` (learn by dial-backs from peers), ``public`` or ``private``.
        relay_strangers: as a relay, give peers that share no space the spec's limited relay.
        relays: multiaddrs of relays to keep reservations on when not publicly reachable
            (``--bootstrap`` peers are tried too).
        carrier: carry the spaces that name this node (``--carrier``), with these quotas.
        prepare_above: from how many records in the replica the node folds and decrypts every
            space in a worker thread before it starts (so that the first reads do not hold up
            the trio loop).
    """

    listen_addrs: tuple[str, ...] = ()
    mdns: bool = True
    mdns_on_demand: bool = False
    bootstrap: tuple[str, ...] = ()
    sync_period_s: float = 60.0
    propagate_delay_s: float = 2.0
    redial_min_s: float = 1.0
    redial_max_s: float = 300.0
    max_dials: int = 4
    join_timeout_s: float = 60.0
    keys_timeout_s: float = 30.0
    net: NetConfig | None = None
    prepare_above: int = PREPARE_ABOVE
    reachability: str = "auto"
    relay_strangers: bool = True
    relays: tuple[str, ...] = ()
    carrier: CarrierConfig = field(default_factory=CarrierConfig)
