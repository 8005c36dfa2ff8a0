"""A GossipSub model with meshcrew's mesh parameters: one topic per space, a mesh per topic.

What it follows (GossipSub v1.1 as py-libp2p runs it, with ``GossipParams``):

* A node publishes to its mesh peers of the space's topic and forwards each new, valid message
  to its other mesh peers. Messages are content-addressed (the record id), and a message seen
  in the last ``seen_ttl_s`` is dropped as a duplicate before validation.
* Every message is validated before it is delivered or forwarded, by the node's own validator
  (:meth:`SimNode.judge`: the record's signature and the author's membership).
* Each heartbeat: a mesh below ``degree_low`` grafts peers up to ``degree``; one above
  ``degree_high`` prunes down to ``degree``; the ids of the last ``gossip_window`` heartbeats
  go as IHAVE to ``max(degree_lazy, gossip_factor × others)`` subscribed peers outside the mesh,
  who ask with IWANT for what they lack and get it from the cache of ``history`` heartbeats.
* A GRAFT is accepted unless the mesh is already at ``degree_high`` (then PRUNE).

Heartbeats run only when they have work (ids to gossip, a mesh to repair after a connection
came or went); a skipped heartbeat would have done nothing but age the caches, which is done
when the node next gossips. Peer scoring, back-off after PRUNE, flood publishing and IDONTWANT
are not modelled.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from meshcrew.records import Record
from meshcrew.sim.events import EventLoop
from meshcrew.sim.network import Conn, Network, Traffic
from meshcrew.sim.node import SimNode, Verdict
from meshcrew.sim.params import GossipParams
from meshcrew.sim.population import T0_MS

MESSAGE_OVERHEAD = 214
"""Bytes around a record in a GossipSub RPC: sender peer id (38), seqno (8), topic (51),
signature (64), public key (36), field tags and lengths."""
CONTROL_OVERHEAD = 60
"""An RPC with one control message for one topic."""
ID_BYTES = 22
"""One 20-byte message id with its tag and length."""
SUBSCRIPTION_BYTES = 56
"""One topic subscription announced to a new peer."""


@dataclass(slots=True)
class GossipState:
    """One node's GossipSub state."""

    phase: float
    mesh: dict[bytes, dict[int, None]] = field(default_factory=dict)
    seen: set[bytes] = field(default_factory=set)
    seen_order: deque[tuple[float, bytes]] = field(default_factory=deque)
    window: deque[dict[bytes, list[bytes]]] = field(default_factory=lambda: deque([{}]))
    """Message ids per heartbeat, newest first (slot 0 fills until the next heartbeat)."""
    cache: dict[bytes, tuple[bytes, bytes]] = field(default_factory=dict)
    """Message id → (space, record) for the last ``history`` heartbeats (answers IWANT)."""
    last_tick: int = -1
    pending: int | None = None
    """The tick of the heartbeat scheduled next, if any."""


@dataclass(slots=True)
class GossipStats:
    """Counters over the whole run."""

    published: int = 0
    delivered: int = 0
    duplicates: int = 0
    ignored: int = 0
    rejected: int = 0
    ihave: int = 0
    iwant: int = 0
    served: int = 0
    grafts: int = 0
    prunes: int = 0
    heartbeats: int = 0
    peak_seen: int = 0
    """Most ids one node held in its seen-cache at once."""


Deliver = Callable[[int, bytes], None]
"""``deliver(node, raw)``: a validated message for the node to append."""


class GossipRouter:
    """GossipSub for every node of a simulation."""

    def __init__(self, loop: EventLoop, net: Network, nodes: list[SimNode],
                 params: GossipParams, seed: int, deliver: Deliver) -> None:
        self.loop = loop
        self.net = net
        self.nodes = nodes
        self.params = params
        self.deliver = deliver
        self.rng = random.Random(f"meshcrew-sim gossip {seed}")
        self.states = [self._fresh(self.rng.random() * params.heartbeat_s) for _ in nodes]
        self.stats = GossipStats()
        net.on_open.append(self._on_open)
        net.on_close.append(self._on_close)

    def _fresh(self, phase: float) -> GossipState:
        return GossipState(phase)

    def node_down(self, node: int, *, crashed: bool) -> None:
        """The node went down: a crash forgets everything, a sleep only the mesh."""
        state = self.states[node]
        if crashed:
            self.states[node] = self._fresh(state.phase)
        else:
            state.pending = None
            state.mesh.clear()

    # -- time ----------------------------------------------------------------------------------

    def _tick_of(self, state: GossipState, when: float) -> int:
        return math.floor((when - state.phase) / self.params.heartbeat_s)

    def _shift(self, state: GossipState) -> None:
        state.window.appendleft({})
        while len(state.window) > self.params.history:
            for ids in state.window.pop().values():
                for message_id in ids:
                    state.cache.pop(message_id, None)

    def _catch_up(self, state: GossipState, upto: int) -> None:
        """Apply the heartbeats up to tick ``upto`` that did not run (they only aged caches)."""
        for _ in range(max(min(upto - state.last_tick, self.params.history + 1), 0)):
            self._shift(state)
        state.last_tick = max(state.last_tick, upto)

    def _age(self, state: GossipState) -> None:
        due = self._tick_of(state, self.loop.now)
        if state.pending is not None:
            due = min(due, state.pending - 1)
        self._catch_up(state, due)
        cutoff = self.loop.now - self.params.seen_ttl_s
        while state.seen_order and state.seen_order[0][0] < cutoff:
            state.seen.discard(state.seen_order.popleft()[1])

    def _schedule(self, node: int) -> None:
        state = self.states[node]
        if state.pending is not None:
            return
        tick = max(self._tick_of(state, self.loop.now) + 1, state.last_tick + 1)
        state.pending = tick
        when = state.phase + tick * self.params.heartbeat_s
        self.loop.at(when, self._heartbeat, node, self.nodes[node].generation, tick)

    # -- publishing and receiving --------------------------------------------------------------

    def _peers(self, node: int, space: bytes) -> list[int]:
        return [p for p in self.net.conns[node] if space in self.nodes[p].topics]

    def _remember(self, node: int, space: bytes, record_id: bytes, raw: bytes) -> None:
        state = self.states[node]
        self._age(state)
        state.seen.add(record_id)
        state.seen_order.append((self.loop.now, record_id))
        self.stats.peak_seen = max(self.stats.peak_seen, len(state.seen))
        state.cache[record_id] = (space, raw)
        state.window[0].setdefault(space, []).append(record_id)

    def _push(self, node: int, peer: int, space: bytes, record_id: bytes, raw: bytes) -> None:
        conn = self.net.conns[node].get(peer)
        if conn is not None:
            self.net.send(conn, node, len(raw) + MESSAGE_OVERHEAD, Traffic.GOSSIP,
                          self._on_message, peer, node, space, record_id, raw)

    def publish(self, node: int, record: Record) -> None:
        """The member wrote ``record``: send it to the node's mesh peers of its space."""
        if not self.params.enabled:
            return
        self.stats.published += 1
        space = record.space_id
        self._remember(node, space, record.id, record.raw)
        for peer in list(self.states[node].mesh.get(space, {})):
            self._push(node, peer, space, record.id, record.raw)
        self._schedule(node)

    def _on_message(self, node: int, sender: int, space: bytes, record_id: bytes,
                    raw: bytes) -> None:
        state = self.states[node]
        self._age(state)
        if record_id in state.seen:
            self.stats.duplicates += 1
            return
        target = self.nodes[node]
        verdict = target.judge(space, raw, T0_MS + int(self.loop.now * 1000))
        if verdict is not Verdict.ACCEPT:
            # libp2p remembers it as seen either way; only valid messages travel on.
            state.seen.add(record_id)
            state.seen_order.append((self.loop.now, record_id))
            if verdict is Verdict.IGNORE:
                self.stats.ignored += 1
            else:
                self.stats.rejected += 1
            return
        self.stats.delivered += 1
        self._remember(node, space, record_id, raw)
        self.deliver(node, raw)
        for peer in list(state.mesh.get(space, {})):
            if peer != sender:
                self._push(node, peer, space, record_id, raw)
        self._schedule(node)

    # -- heartbeat -----------------------------------------------------------------------------

    def _heartbeat(self, node: int, generation: int, tick: int) -> None:
        target = self.nodes[node]
        state = self.states[node]
        if generation != target.generation or state.pending != tick:
            return
        state.pending = None
        if not target.online:
            return
        self.stats.heartbeats += 1
        self._catch_up(state, tick - 1)
        for space in target.topics:
            self._maintain(node, state, space)
        self._shift(state)
        state.last_tick = tick
        if any(state.window[i] for i in range(1, min(self.params.gossip_window,
                                                     len(state.window)))):
            self._schedule(node)

    def _maintain(self, node: int, state: GossipState, space: bytes) -> None:
        p = self.params
        mesh = state.mesh.setdefault(space, {})  # closed connections already left it
        ids = [i for slot in list(state.window)[: p.gossip_window] for i in slot.get(space, ())]
        if len(mesh) >= p.degree_low and not ids and len(mesh) <= p.degree_high:
            return
        peers = self._peers(node, space)
        if len(mesh) < p.degree_low:
            candidates = [q for q in peers if q not in mesh]
            for peer in self.rng.sample(candidates, min(p.degree - len(mesh), len(candidates))):
                mesh[peer] = None
                self._control(node, peer, CONTROL_OVERHEAD, self._on_graft, peer, node, space)
                self.stats.grafts += 1
        if len(mesh) > p.degree_high:
            for peer in self.rng.sample(list(mesh), len(mesh) - p.degree):
                del mesh[peer]
                self._control(node, peer, CONTROL_OVERHEAD, self._on_prune, peer, node, space)
                self.stats.prunes += 1
        if not ids:
            return
        others = [q for q in peers if q not in mesh]
        count = max(p.degree_lazy, int(len(others) * p.gossip_factor))
        for peer in self.rng.sample(others, min(count, len(others))):
            self.stats.ihave += 1
            self._control(node, peer, CONTROL_OVERHEAD + ID_BYTES * len(ids), self._on_ihave,
                          peer, node, space, ids)

    def _control(self, node: int, peer: int, size: int, callback: Callable[..., None],
                 *args: object) -> None:
        conn = self.net.conns[node].get(peer)
        if conn is not None:
            self.net.send(conn, node, size, Traffic.CONTROL, callback, *args)

    def _on_graft(self, node: int, sender: int, space: bytes) -> None:
        if space not in self.nodes[node].topics or sender not in self.net.conns[node]:
            return
        mesh = self.states[node].mesh.setdefault(space, {})
        if len(mesh) >= self.params.degree_high:
            self._control(node, sender, CONTROL_OVERHEAD, self._on_prune, sender, node, space)
            self.stats.prunes += 1
        else:
            mesh[sender] = None

    def _on_prune(self, node: int, sender: int, space: bytes) -> None:
        self.states[node].mesh.get(space, {}).pop(sender, None)

    def _on_ihave(self, node: int, sender: int, space: bytes, ids: list[bytes]) -> None:
        state = self.states[node]
        self._age(state)
        wanted = [i for i in ids if i not in state.seen]
        if wanted:
            self.stats.iwant += 1
            self._control(node, sender, CONTROL_OVERHEAD + ID_BYTES * len(wanted),
                          self._on_iwant, sender, node, wanted)

    def _on_iwant(self, node: int, sender: int, ids: list[bytes]) -> None:
        state = self.states[node]
        self._age(state)
        for message_id in ids:
            cached = state.cache.get(message_id)
            if cached is not None:
                self.stats.served += 1
                self._push(node, sender, cached[0], message_id, cached[1])

    # -- connections ---------------------------------------------------------------------------

    def _on_open(self, conn: Conn) -> None:
        if not self.params.enabled:
            return
        for node in (conn.a, conn.b):
            self.net.charge(node, SUBSCRIPTION_BYTES * len(self.nodes[node].topics),
                            Traffic.CONTROL)
            self._schedule(node)

    def _on_close(self, node: int, peer: int) -> None:
        state = self.states[node]
        for mesh in state.mesh.values():
            mesh.pop(peer, None)
        if self.params.enabled and self.nodes[node].online:
            self._schedule(node)
