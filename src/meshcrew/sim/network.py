"""The simulated internet: connections, latency, bandwidth, loss, NAT, relays and partitions.

Each node has an access latency, an uplink bandwidth and a :class:`~meshcrew.sim.params.Nat`:
a public address, or a cone or symmetric NAT. The rules are the node's (``meshcrew.net.reach``,
``meshcrew.net.relay``) as the NAT lab measured them:

* a public node is dialled straight, and only public nodes relay;
* a node behind NAT holds reservations on up to two public peers it is connected to (taking
  another when one goes away) and is reached only through a circuit of one of them. The callee
  then tries a hole punch: with a public dialler it always works (the callee dials it back),
  between two cone NATs with ``punch_cone_cone``, with a symmetric NAT at either end with
  ``punch_with_symmetric``. A punched connection is direct; otherwise it stays on the circuit;
* a relay refuses reservations and circuits beyond its caps, and cuts a circuit at its data or
  time limit (member limits when both ends are members of a space the relay serves: one it
  is a member of or, on a carrier, one it carries; stranger limits otherwise); both ends see
  the reset at once and may dial again;
* with no reservation (no public peer up), a node behind NAT cannot be reached at all: its
  peers wait, or records reach it through others it can dial.

Relayed bytes cross the relay's uplink too and are counted against it.

A connection is a TCP-like stream between two nodes: what one side sends arrives in order,
after the sender's uplink has pushed it out and the link's latency has passed. A message can be
lost (``NetParams.loss``); :meth:`Network.send` says so and the caller decides what loss means
(a dropped gossip message; a reset sync stream). Nothing arrives on a connection that has died.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from meshcrew.sim.events import EventLoop
from meshcrew.sim.params import DAY, Nat, NetParams


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
    punched: bool = False
    """Direct after a hole punch that a relay coordinated."""
    budget: int = 0
    """Bytes the relay still carries on this circuit, both directions together."""
    drained_at: float = 0.0
    """When the last bytes the relay forwarded on this circuit arrive."""
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
    punched: int = 0
    """Connections made direct by a hole punch between two nodes behind NAT."""
    reversed: int = 0
    """Connections from a public node to a NATed one, made direct by the callee dialling back."""
    punches_failed: int = 0
    """Dials whose hole punch failed, so the connection stayed on the relay's circuit."""
    no_relay: int = 0
    """Dials of a NATed node that held no reservation on a reachable relay."""
    circuits_refused: int = 0
    """Dials of a NATed node all of whose relays refused a circuit (caps, strangers)."""
    reservations_refused: int = 0
    cut_at_data_limit: int = 0
    cut_at_time_limit: int = 0
    peak_circuits: int = 0
    """Most circuits one relay carried at once."""
    peak_reservations: int = 0
    """Most reservations one relay held at once."""
    lost_messages: int = 0
    dead_letters: int = 0
    """Messages that reached a connection which had died meanwhile."""
    sent: list[list[int]] = field(default_factory=list)
    """Per node, per :class:`Traffic`, bytes sent."""


def draw_links(params: NetParams, size: int,
               seed: int | str) -> tuple[list[float], list[float], list[Nat]]:
    """Each node's one-way access latency (s), uplink (bits per second) and NAT type, as the
    scenario's seed gives them."""
    draw = random.Random(f"meshcrew-sim network {seed}")
    latency = [draw.uniform(*params.access_latency_ms) / 1000 for _ in range(size)]
    low, high = (math.log(v * 1000) for v in params.uplink_kbit_s)
    uplink = [math.exp(draw.uniform(low, high)) for _ in range(size)]
    nat = [_nat_of(params, draw.random()) for _ in range(size)]
    if params.public > 0 and Nat.PUBLIC not in nat:
        nat[0] = Nat.PUBLIC  # a congregation drawn without any relay would be degenerate
    return latency, uplink, nat


def _nat_of(params: NetParams, u: float) -> Nat:
    # The public share is drawn as it always was, so a seed keeps its public nodes.
    if u < params.public:
        return Nat.PUBLIC
    return Nat.SYMMETRIC if u < params.public + params.symmetric else Nat.CONE


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
        shares_space: whether a relay (first argument) gives a peer (second) the member
            limits: the peer is a member of a space the relay serves; None: every pair.
        public_extra: always-on nodes with a public address after the ``size`` others
            (carriers); their links are drawn apart, so the others' do not change.
    """

    def __init__(self, loop: EventLoop, params: NetParams, size: int, seed: int,
                 is_online: Callable[[int], bool],
                 shares_space: Callable[[int, int], bool] | None = None, *,
                 public_extra: int = 0) -> None:
        self.loop = loop
        self.params = params
        self._online = is_online
        self._shares = shares_space or (lambda a, b: True)
        self.rng = random.Random(f"meshcrew-sim loss {seed}")
        self._punch_rng = random.Random(f"meshcrew-sim punch {seed}")
        self.latency, self.uplink, nat = draw_links(params, size, seed)
        """Per node: one-way access latency (s) and uplink (bits per second)."""
        if public_extra:
            # Always-on nodes (carriers) after the members, from their own stream: each
            # member keeps the latency, uplink and NAT type the seed gives it without them.
            extra_latency, extra_uplink, _ = draw_links(params, public_extra,
                                                        f"{seed} always-on")
            self.latency += extra_latency
            self.uplink += extra_uplink
            nat += [Nat.PUBLIC] * public_extra
            size += public_extra
        self.nat: list[Nat] = []
        self.reachable: list[bool] = []
        """Per node, whether it has a public address (its dial-backs say "public")."""
        self.set_nat(nat)
        self.relays_of: list[list[int]] = [[] for _ in range(size)]
        """Per node behind NAT, the relays it holds a reservation on (oldest first)."""
        self._reserved: list[set[int]] = [set() for _ in range(size)]
        """Per relay, the nodes holding a reservation on it."""
        self.group = [0] * size
        """Partition group: nodes in different groups cannot reach each other."""
        self.conns: list[dict[int, Conn]] = [{} for _ in range(size)]
        self._via: list[dict[Conn, None]] = [{} for _ in range(size)]
        """Per relay, the live circuits it carries."""
        self._circuits_of: list[dict[int, int]] = [{} for _ in range(size)]
        """Per relay, per peer, the live circuits the peer is an end of."""
        self._relayed_today: list[tuple[int, int]] = [(0, 0)] * size
        """Per relay, (day, bytes relayed that day)."""
        self._uplink_free = [0.0] * size
        self._dialing: set[tuple[int, int]] = set()
        self.stats = NetStats(sent=[[0] * len(Traffic) for _ in range(size)])
        self.on_open: list[OnOpen] = []
        self.on_close: list[OnClose] = []

    def set_nat(self, nat: list[Nat]) -> None:
        """Give every node its NAT type (before any connection is made)."""
        self.nat = list(nat)
        self.reachable = [n is Nat.PUBLIC for n in nat]

    # -- reachability --------------------------------------------------------------------------

    def route(self, a: int, b: int) -> tuple[bool, int | None]:
        """Whether ``a`` can reach ``b`` now, and the relay whose circuit it goes through (None:
        ``b`` is public and dialled straight)."""
        ok, relay, _ = self._route(a, b)
        return ok, relay

    def _route(self, a: int, b: int) -> tuple[bool, int | None, str]:
        if self.group[a] != self.group[b] or not self._online(b):
            return False, None, "unreachable"
        if self.reachable[b]:
            return True, None, ""
        why = "no relay"
        for relay in self.relays_of[b]:
            if relay == a or not self.connected(b, relay) or self.group[relay] != self.group[a]:
                continue
            if self._circuit_allowed(relay, a, b):
                return True, relay, ""
            why = "refused"
        return False, None, why

    def _circuit_allowed(self, relay: int, source: int, target: int) -> bool:
        limits = self.params.relay
        if not limits.strangers and not self._member(relay, source, target):
            return False
        if len(self._via[relay]) >= limits.max_circuits:
            return False
        ends = self._circuits_of[relay]
        if max(ends.get(source, 0), ends.get(target, 0)) >= limits.max_circuits_per_peer:
            return False
        return self._bytes_today(relay) < limits.bytes_per_day

    def _member(self, relay: int, source: int, target: int) -> bool:
        return self._shares(relay, source) and self._shares(relay, target)

    def _punches(self, a: int, b: int) -> bool:
        """Whether the hole punch that ``b`` starts over a circuit from ``a`` works."""
        if self.reachable[a]:
            return True  # no punch needed: b dials a's public address back
        p = self.params
        both_cone = self.nat[a] is Nat.CONE and self.nat[b] is Nat.CONE
        chance = p.punch_cone_cone if both_cone else p.punch_with_symmetric
        if chance >= 1.0 or chance <= 0.0:
            return chance >= 1.0
        return self._punch_rng.random() < chance

    def connected(self, a: int, b: int) -> bool:
        """Whether a live connection joins ``a`` and ``b``."""
        conn = self.conns[a].get(b)
        return conn is not None and conn.alive

    def _reserve(self, node: int) -> None:
        """Hold reservations on up to ``reservations_per_node`` public peers connected directly,
        as ``meshcrew.net.reach.Reservations`` does for a node that is not publicly reachable."""
        limits = self.params.relay
        mine = self.relays_of[node]
        if self.reachable[node] or len(mine) >= limits.reservations_per_node:
            return
        for peer, conn in self.conns[node].items():
            if len(mine) >= limits.reservations_per_node:
                return
            if (not conn.alive or conn.relay is not None or not self.reachable[peer]
                    or peer in mine):
                continue
            held = self._reserved[peer]
            if len(held) >= limits.max_reservations or (
                    not limits.strangers and not self._shares(peer, node)):
                self.stats.reservations_refused += 1
                continue
            held.add(node)
            mine.append(peer)
            self.stats.peak_reservations = max(self.stats.peak_reservations, len(held))

    # -- connections ---------------------------------------------------------------------------

    def dial(self, a: int, b: int) -> None:
        """Start connecting ``a`` to ``b``; the connection opens after the handshake (and the
        hole punch, when ``b`` is behind NAT), if it can."""
        if a == b or b in self.conns[a] or (min(a, b), max(a, b)) in self._dialing:
            return
        self.stats.dials += 1
        ok, relay, why = self._route(a, b)
        if not ok or len(self.conns[b]) >= self.params.max_connections:
            self._failed(why)
            return
        pair = (min(a, b), max(a, b))
        self._dialing.add(pair)
        rtts = self.params.handshake_rtts
        setup = 2 * self._one_way(a, b, relay) * rtts
        punched = relay is not None and self._punches(a, b)
        if relay is not None:
            # The handshake on the circuit, then DCUtR's exchange on it; a punch adds the
            # direct connection's own handshake.
            setup += 2 * self._one_way(a, b, relay)
            if punched:
                setup += 2 * self._one_way(a, b, None) * rtts
                self._count_relayed(relay, 2 * self.params.connect_bytes)
                self.charge(relay, 2 * self.params.connect_bytes, Traffic.RELAY)
            else:
                self.stats.punches_failed += 1
        self.loop.after(setup, self._open, a, b, pair, punched)

    def _failed(self, why: str) -> None:
        self.stats.dials_failed += 1
        if why == "no relay":
            self.stats.no_relay += 1
        elif why == "refused":
            self.stats.circuits_refused += 1

    def _one_way(self, a: int, b: int, relay: int | None) -> float:
        if relay is None:
            return self.latency[a] + self.latency[b]
        return self.latency[a] + 2 * self.latency[relay] + self.latency[b]

    def _open(self, a: int, b: int, pair: tuple[int, int], punched: bool) -> None:
        self._dialing.discard(pair)
        if punched:  # the relay has done its part; only the ends matter now
            ok, relay, why = self.group[a] == self.group[b] and self._online(b), None, ""
        else:
            ok, relay, why = self._route(a, b)  # a relay may have filled up meanwhile
        if not ok or not self._online(a) or b in self.conns[a] or a in self.conns[b]:
            self._failed(why)
            return
        conn = Conn(a, b, self._one_way(a, b, relay), relay, punched=punched)
        self.conns[a][b] = conn
        self.conns[b][a] = conn
        self.stats.connections += 1
        if punched:
            if self.reachable[a]:
                self.stats.reversed += 1
            else:
                self.stats.punched += 1
        if relay is not None:
            self._open_circuit(conn, relay)
        for node in (a, b):
            self.stats.sent[node][Traffic.CONNECT] += self.params.connect_bytes
            self._reserve(node)
        for callback in self.on_open:
            callback(conn)

    def _open_circuit(self, conn: Conn, relay: int) -> None:
        limits = self.params.relay
        member = self._member(relay, conn.a, conn.b)
        conn.budget = limits.member_data_bytes if member else limits.stranger_data_bytes
        self.stats.relayed_connections += 1
        self._via[relay][conn] = None
        ends = self._circuits_of[relay]
        for node in (conn.a, conn.b):
            ends[node] = ends.get(node, 0) + 1
        self.stats.peak_circuits = max(self.stats.peak_circuits, len(self._via[relay]))
        if self.carry(conn, 2 * self.params.connect_bytes):
            self.charge(relay, 2 * self.params.connect_bytes, Traffic.RELAY)
        duration = limits.member_duration_s if member else limits.stranger_duration_s
        self.loop.after(duration, self._time_limit, conn)

    def _close_circuit(self, conn: Conn) -> None:
        relay = conn.relay
        if relay is None or conn not in self._via[relay]:
            return
        del self._via[relay][conn]
        ends = self._circuits_of[relay]
        for node in (conn.a, conn.b):
            ends[node] -= 1
            if not ends[node]:
                del ends[node]

    def _time_limit(self, conn: Conn) -> None:
        if conn.alive:
            self.stats.cut_at_time_limit += 1
            self._cut(conn)

    def _cut(self, conn: Conn) -> None:
        """The relay resets the circuit: both ends see it at once."""
        notice = self.params.reset_notice_s
        self.close(conn, notice, notice)

    def close(self, conn: Conn, notice_a: float, notice_b: float) -> None:
        """Kill a connection; each side forgets it after its own notice delay."""
        if not conn.alive:
            return
        conn.alive = False
        self._close_circuit(conn)
        if conn.relay is None:  # a reservation lives on the connection to its relay
            for node, peer in ((conn.a, conn.b), (conn.b, conn.a)):
                self._reserved[peer].discard(node)
        self.loop.after(notice_a, self._forget, conn.a, conn)
        self.loop.after(notice_b, self._forget, conn.b, conn)

    def _forget(self, node: int, conn: Conn) -> None:
        peer = conn.other(node)
        if self.conns[node].get(peer) is conn:
            del self.conns[node][peer]
            if peer in self.relays_of[node]:
                self.relays_of[node].remove(peer)
                self._reserve(node)
            for callback in self.on_close:
                callback(node, peer)

    def drop_node(self, node: int, notice: float) -> None:
        """The node went away: its connections, and the circuits it relayed, die now; peers
        notice after ``notice`` seconds, the node itself at once."""
        for conn in list(self.conns[node].values()):
            first = notice if conn.a != node else 0.0
            self.close(conn, first, notice if conn.a == node else 0.0)
        for conn in list(self._via[node]):
            self.close(conn, notice, notice)
        self.relays_of[node].clear()

    def split(self, groups: list[int], notice: float) -> None:
        """Put nodes in partition groups; connections across groups die (noticed late)."""
        self.group = list(groups)
        for node, conns in enumerate(self.conns):
            for conn in list(conns.values()):
                relay_ok = conn.relay is None or self.group[conn.relay] == self.group[node]
                if conn.alive and (self.group[conn.other(node)] != self.group[node]
                                   or not relay_ok):
                    self.close(conn, notice, notice)

    # -- relays --------------------------------------------------------------------------------

    def circuits(self, relay: int) -> int:
        """Live circuits through ``relay``."""
        return len(self._via[relay])

    def reservations(self, relay: int) -> int:
        """Reservations ``relay`` holds for others."""
        return len(self._reserved[relay])

    def _bytes_today(self, relay: int) -> int:
        day, count = self._relayed_today[relay]
        return count if day == int(self.loop.now // DAY) else 0

    def _count_relayed(self, relay: int, size: int) -> None:
        """Count bytes against the relay's daily budget (its uplink is charged separately)."""
        self._relayed_today[relay] = (int(self.loop.now // DAY), self._bytes_today(relay) + size)

    def carry(self, conn: Conn, size: int) -> bool:
        """Count ``size`` bytes the relay forwards on ``conn`` (its uplink is charged by the
        caller); False if they pass the circuit's data limit, which cuts it."""
        relay = conn.relay
        if relay is None:
            return True
        if conn.budget < 0:
            return False  # already over its limit: the cut is on its way
        self._count_relayed(relay, size)
        conn.budget -= size
        if conn.budget < 0:
            # The relay forwards nothing more and resets both ends once what it forwarded
            # has arrived.
            self.stats.cut_at_data_limit += 1
            self.loop.at(conn.drained_at, self._cut, conn)
            return False
        return True

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

    def charge_conn(self, conn: Conn, sender: int, size: int, kind: Traffic) -> None:
        """Count bytes a node sends on ``conn`` whose arrival nothing waits for (and the
        relay's share, which may cut the circuit)."""
        self._push(sender, size, kind, self.loop.now)
        if conn.relay is not None and self.carry(conn, size):
            self._push(conn.relay, size, Traffic.RELAY, self.loop.now)

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
            if not self.carry(conn, size):
                return False
            receiver = conn.other(sender)
            hop = self.latency[sender] + self.latency[conn.relay]
            done = self._push(conn.relay, size, Traffic.RELAY, done + hop)
            done += self.latency[conn.relay] + self.latency[receiver]
            conn.drained_at = max(conn.drained_at, done)
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
