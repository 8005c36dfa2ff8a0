"""The simulated internet: connections, latency, bandwidth, loss, NAT, relays and partitions.

Each node has an access latency, an uplink bandwidth and either a public address or none (NAT).
Two nodes can connect directly if either has a public address, or if a hole punch between two
NATed nodes succeeds (decided once per pair); otherwise their connection runs through the
callee's relay, a publicly reachable peer it is connected to. Relayed bytes cross the relay's
uplink too and are counted against it.

A connection is a TCP-like stream between two nodes: what one side sends arrives in order,
after the sender's uplink has pushed it out and the link's latency has passed. A message can be
lost (``NetParams.loss``); :meth:`Network.send` says so and the caller decides what loss means
(a dropped gossip message; a reset sync stream). Nothing arrives on a connection that has died.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from meshcrew.sim.events import EventLoop
from meshcrew.sim.params import NetParams


class Traffic(IntEnum):
    """What bytes were for, to break ``bytes sent`` down."""

    GOSSIP = 0
    """Gossip messages (records) pushed to mesh peers or sent on IWANT."""
    CONTROL = 1
    """IHAVE, IWANT, GRAFT, PRUNE, subscriptions."""
    SYNC = 2
    """Catch-up sync sessions."""
    CONNECT = 3
    """Connection handshakes."""
    RELAY = 4
    """Bytes a relay forwarded for others."""


@dataclass(slots=True, eq=False)
class Conn:
    """A connection between nodes ``a`` and ``b`` (``relay`` is the relaying node, if any)."""

    a: int
    b: int
    latency: float
    relay: int | None
    alive: bool = True
    starter: int = -1
    """The side that starts the sync sessions (the lower public key), set by the sync driver."""
    session: Any = None
    """The sync session running on it (one at a time, as the node's ``_outbound_busy``)."""

    def other(self, node: int) -> int:
        """The node at the other end."""
        return self.b if node == self.a else self.a


@dataclass(slots=True)
class NetStats:
    """Counters over the whole run."""

    dials: int = 0
    dials_failed: int = 0
    connections: int = 0
    relayed_connections: int = 0
    lost_messages: int = 0
    dead_letters: int = 0
    """Messages that reached a connection which had died meanwhile."""
    sent: list[list[int]] = field(default_factory=list)
    """Per node, per :class:`Traffic`, bytes sent."""


OnOpen = Callable[[Conn], None]
OnClose = Callable[[int, int], None]


class Network:
    """Connections between nodes and the bytes they carry.

    Args:
        loop: the event loop.
        params: the network's parameters.
        size: how many nodes.
        seed: the scenario's seed.
        is_online: whether a node is up now.
    """

    def __init__(self, loop: EventLoop, params: NetParams, size: int, seed: int,
                 is_online: Callable[[int], bool]) -> None:
        self.loop = loop
        self.params = params
        self._online = is_online
        self._seed = seed
        draw = random.Random(f"meshcrew-sim network {seed}")
        self.rng = random.Random(f"meshcrew-sim loss {seed}")
        self.latency = [draw.uniform(*params.access_latency_ms) / 1000 for _ in range(size)]
        low, high = (math.log(v * 1000) for v in params.uplink_kbit_s)
        self.uplink = [math.exp(draw.uniform(low, high)) for _ in range(size)]
        """Uplink in bits per second."""
        self.reachable = [draw.random() < params.reachable for _ in range(size)]
        if not any(self.reachable):
            self.reachable[0] = True  # someone must be able to relay
        self.relay_of: list[int | None] = [None] * size
        self.group = [0] * size
        """Partition group: nodes in different groups cannot reach each other."""
        self.conns: list[dict[int, Conn]] = [{} for _ in range(size)]
        self._via: list[list[Conn]] = [[] for _ in range(size)]
        """Per relay, the connections it carries (closed ones are pruned when it drops)."""
        self._uplink_free = [0.0] * size
        self._dialing: set[tuple[int, int]] = set()
        self.stats = NetStats(sent=[[0] * len(Traffic) for _ in range(size)])
        self.on_open: list[OnOpen] = []
        self.on_close: list[OnClose] = []

    # -- reachability --------------------------------------------------------------------------

    def _punches(self, a: int, b: int) -> bool:
        low, high = min(a, b), max(a, b)
        digest = hashlib.blake2b(b"%d %d %d" % (self._seed, low, high), digest_size=8).digest()
        return int.from_bytes(digest) / 2**64 < self.params.hole_punch

    def route(self, a: int, b: int) -> tuple[bool, int | None]:
        """Whether ``a`` can reach ``b`` now, and through which relay (None: directly)."""
        if self.group[a] != self.group[b] or not self._online(b):
            return False, None
        if self.reachable[a] or self.reachable[b] or self._punches(a, b):
            return True, None
        relay = self.relay_of[b]
        if relay is None or relay == a or not self.connected(b, relay):
            return False, None
        return True, relay

    def connected(self, a: int, b: int) -> bool:
        """Whether a live connection joins ``a`` and ``b``."""
        conn = self.conns[a].get(b)
        return conn is not None and conn.alive

    def _pick_relay(self, node: int) -> None:
        if self.reachable[node]:
            return
        current = self.relay_of[node]
        if current is not None and self.connected(node, current):
            return
        self.relay_of[node] = next((p for p, c in self.conns[node].items()
                                    if c.alive and c.relay is None and self.reachable[p]), None)

    # -- connections ---------------------------------------------------------------------------

    def dial(self, a: int, b: int) -> None:
        """Start connecting ``a`` to ``b``; the connection opens after the handshake, if it can."""
        if a == b or b in self.conns[a] or (min(a, b), max(a, b)) in self._dialing:
            return
        self.stats.dials += 1
        ok, relay = self.route(a, b)
        if not ok or len(self.conns[b]) >= self.params.max_connections:
            self.stats.dials_failed += 1
            return
        pair = (min(a, b), max(a, b))
        self._dialing.add(pair)
        one_way = self._one_way(a, b, relay)
        self.loop.after(2 * one_way * self.params.handshake_rtts, self._open, a, b, pair)

    def _one_way(self, a: int, b: int, relay: int | None) -> float:
        if relay is None:
            return self.latency[a] + self.latency[b]
        return self.latency[a] + 2 * self.latency[relay] + self.latency[b]

    def _open(self, a: int, b: int, pair: tuple[int, int]) -> None:
        self._dialing.discard(pair)
        ok, relay = self.route(a, b)
        if not ok or not self._online(a) or b in self.conns[a] or a in self.conns[b]:
            self.stats.dials_failed += 1
            return
        conn = Conn(a, b, self._one_way(a, b, relay), relay)
        self.conns[a][b] = conn
        self.conns[b][a] = conn
        self.stats.connections += 1
        if relay is not None:
            self.stats.relayed_connections += 1
            self._via[relay].append(conn)
        for node in (a, b):
            self.stats.sent[node][Traffic.CONNECT] += self.params.connect_bytes
            self._pick_relay(node)
        for callback in self.on_open:
            callback(conn)

    def close(self, conn: Conn, notice_a: float, notice_b: float) -> None:
        """Kill a connection; each side forgets it after its own notice delay."""
        if not conn.alive:
            return
        conn.alive = False
        self.loop.after(notice_a, self._forget, conn.a, conn)
        self.loop.after(notice_b, self._forget, conn.b, conn)

    def _forget(self, node: int, conn: Conn) -> None:
        peer = conn.other(node)
        if self.conns[node].get(peer) is conn:
            del self.conns[node][peer]
            if self.relay_of[node] == peer:
                self.relay_of[node] = None
                self._pick_relay(node)
            for callback in self.on_close:
                callback(node, peer)

    def drop_node(self, node: int, notice: float) -> None:
        """The node went away: its connections, and those it relayed, die now; peers notice
        after ``notice`` seconds, the node itself at once."""
        for conn in list(self.conns[node].values()):
            first = notice if conn.a != node else 0.0
            self.close(conn, first, notice if conn.a == node else 0.0)
        via, self._via[node] = self._via[node], []
        for conn in via:
            self.close(conn, notice, notice)

    def split(self, groups: list[int], notice: float) -> None:
        """Put nodes in partition groups; connections across groups die (noticed late)."""
        self.group = list(groups)
        for node, conns in enumerate(self.conns):
            for conn in list(conns.values()):
                relay_ok = conn.relay is None or self.group[conn.relay] == self.group[node]
                if conn.alive and (self.group[conn.other(node)] != self.group[node]
                                   or not relay_ok):
                    self.close(conn, notice, notice)

    # -- bytes ---------------------------------------------------------------------------------

    def _push(self, node: int, size: int, kind: Traffic, start: float) -> float:
        begin = max(start, self._uplink_free[node])
        done = begin + size * 8 / self.uplink[node]
        self._uplink_free[node] = done
        self.stats.sent[node][kind] += size
        return done

    def charge(self, node: int, size: int, kind: Traffic) -> None:
        """Count bytes a node sends whose arrival nothing waits for."""
        self._push(node, size, kind, self.loop.now)

    def lost(self) -> bool:
        """Draw whether one message is lost."""
        if self.params.loss and self.rng.random() < self.params.loss:
            self.stats.lost_messages += 1
            return True
        return False

    def send(self, conn: Conn, sender: int, size: int, kind: Traffic,
             deliver: Callable[..., None], *args: Any) -> bool:
        """Send ``size`` bytes on ``conn``; ``deliver(*args)`` runs when they arrive.

        Returns False if the message was lost (or the connection is dead): it never arrives.
        """
        if not conn.alive:
            return False
        done = self._push(sender, size, kind, self.loop.now)
        if conn.relay is not None:
            receiver = conn.other(sender)
            hop = self.latency[sender] + self.latency[conn.relay]
            done = self._push(conn.relay, size, Traffic.RELAY, done + hop)
            done += self.latency[conn.relay] + self.latency[receiver]
        else:
            done += conn.latency
        if self.lost():
            return False
        self.loop.at(done, self._arrive, conn, deliver, args)
        return True

    def _arrive(self, conn: Conn, deliver: Callable[..., None], args: tuple[Any, ...]) -> None:
        if conn.alive:
            deliver(*args)
        else:
            self.stats.dead_letters += 1
