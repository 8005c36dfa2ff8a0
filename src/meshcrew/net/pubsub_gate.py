"""GossipSub that tells a peer about a topic only once the node lets that peer into it.

Plain GossipSub announces every subscription to every peer that connects (its "hello"), accepts
anyone's subscription and GRAFT, and then forwards the topic's messages and IHAVE gossip to
them: a stranger who only knows a node's address would learn which spaces it is in, and, given a
topic, every message on it. Here a *gate* — ``gate(peer, topic) -> bool``, the node's answer to
"is this peer a member of this topic's space?" — sits at the two places all of pubsub's traffic
passes:

- **Out:** every RPC to a peer goes through :meth:`GatedPubsub.write_msg`; what concerns a topic
  the peer may not see (a subscription, a message, IHAVE, GRAFT, PRUNE) is cut out of it, and an
  RPC left empty is not sent. The hello carries no subscriptions; the ones a peer may see are sent
  right after it, and again whenever the gate opens for more (:meth:`GatedPubsub.regate`).
- **In:** a peer's subscription to a topic it may not see is held back (at most
  :data:`MAX_HELD_PER_PEER`), not recorded, so it never enters the mesh or gossip; it takes
  effect if the gate opens for it later. Messages and control concerning such topics are
  dropped before libp2p handles them.

When the gate closes for a peer (a member removed), it is taken out of the topic's peers and
mesh, and told nothing more. The wire protocol is unchanged (plain GossipSub v1.1/v1.2 peers
interoperate): a peer simply sees a node that is not subscribed to anything it may not see.

Pinned by ``tests/test_net_internals.py`` (the py-libp2p 0.8.1 methods overridden here).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from libp2p.peer.id import ID
from libp2p.pubsub.gossipsub import GossipSub
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub

from meshcrew.net.seam import log

Gate = Callable[[ID, str], bool]
"""``gate(peer, topic)``: whether ``peer`` may see ``topic`` (its subscriptions, messages,
gossip)."""

MAX_HELD_PER_PEER = 64
"""Subscriptions held back per peer, waiting for the gate to open (a hostile peer sends more)."""

OUTSIDER_GOSSIP = 5.0
"""Penalty points for a message on a topic the sender was not let into: an honest node never
sends one (it sends only to peers that told it their subscription), so twenty ban the sender."""


class GatedPubsub(Pubsub):
    """libp2p's :class:`Pubsub` with a per-peer, per-topic gate (see the module docstring).

    With no gate set (``gate is None``) it behaves exactly as libp2p's.
    """

    gate: Gate | None = None
    penalize: Callable[[str, float, str], None] | None = None
    """Charges a peer penalty points (the host's scores)."""
    _held: dict[ID, set[str]]
    _told: dict[ID, set[str]]
    refused: int = 0
    """Messages and subscriptions from peers the gate kept out (``status``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._held = {}
        self._told = {}
        self._farewell: dict[ID, set[str]] = {}
        """Topics a peer was told and is now shut out of: it is told we left them."""
        self._cache: dict[tuple[ID, str], bool] = {}

    # --- the gate --------------------------------------------------------------------------

    def allowed(self, peer: ID, topic: str) -> bool:
        """Whether ``peer`` may see ``topic`` now (this node itself always may)."""
        if self.gate is None or peer == self.my_id:
            return True
        key = (peer, topic)
        verdict = self._cache.get(key)
        if verdict is None:
            try:
                verdict = bool(self.gate(peer, topic))
            except Exception:  # a failing gate keeps the peer out rather than crash pubsub
                log.exception("the pubsub gate raised; keeping %s out of a topic", peer)
                verdict = False
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[key] = verdict
        return verdict

    def _allowed_any(self, peer: ID) -> bool:
        return any(self.allowed(peer, topic) for topic in self.topic_ids)

    def regate(self) -> None:
        """Membership changed: ask the gate again for every connected peer and topic, tell peers
        the topics newly open to them, let in their held subscriptions, and take peers out of the
        topics now closed to them."""
        self._cache.clear()
        if self.gate is None:
            return
        for peer in list(self.peers):
            self._announce(peer)
            for topic in sorted(self._held.get(peer, set())):
                if self.allowed(peer, topic):
                    self._held[peer].discard(topic)
                    super().handle_subscription(
                        peer, rpc_pb2.RPC.SubOpts(subscribe=True, topicid=topic))
            told = self._told.get(peer, set())
            shut = {t for t, peers in self.peer_topics.items()
                    if peer in peers and not self.allowed(peer, t)}
            shut |= {t for t in told if not self.allowed(peer, t)}
            for topic in sorted(shut):
                self._shut_out(peer, topic)
            told -= shut

    def _shut_out(self, peer: ID, topic: str) -> None:
        if topic in self._told.get(peer, set()):
            # Say we left it, or its node (which may not know yet) keeps sending on it.
            self._farewell.setdefault(peer, set()).add(topic)
            queue = self.peer_queues.get(peer)
            if queue is not None:
                queue.push(rpc_pb2.RPC(subscriptions=[
                    rpc_pb2.RPC.SubOpts(subscribe=False, topicid=topic)]), priority=True)
        self._forget_subscription(peer, topic)
        router = self.router
        for table in (getattr(router, "mesh", {}), getattr(router, "fanout", {})):
            peers = table.get(topic)
            if peers is not None:
                peers.discard(peer)
        log.debug("pubsub: %s is no longer let into a topic", peer)

    def _announce(self, peer: ID) -> None:
        """Send ``peer`` the subscriptions it may see and has not been told yet."""
        told = self._told.setdefault(peer, set())
        topics = [t for t in self.topic_ids if t not in told and self.allowed(peer, t)]
        if not topics:
            return
        rpc = rpc_pb2.RPC(subscriptions=[rpc_pb2.RPC.SubOpts(subscribe=True, topicid=t)
                                         for t in topics])
        queue = self.peer_queues.get(peer)
        if queue is not None and queue.push(rpc, priority=True):
            told.update(topics)

    # --- out ---------------------------------------------------------------------------------

    def get_hello_packet(self) -> rpc_pb2.RPC:
        packet = super().get_hello_packet()
        if self.gate is not None:
            del packet.subscriptions[:]  # sent per peer, after the hello (_handle_new_peer)
        return packet

    async def _handle_new_peer(self, peer_id: ID) -> None:
        await super()._handle_new_peer(peer_id)
        if self.gate is not None and peer_id in self.peers:
            self._announce(peer_id)

    async def write_msg(self, stream: Any, rpc_msg: rpc_pb2.RPC) -> bool:
        if self.gate is not None:
            peer = stream.muxed_conn.peer_id
            kept = self._outgoing(peer, rpc_msg)
            if kept is None:
                return True
            rpc_msg = kept
        return await super().write_msg(stream, rpc_msg)

    def _outgoing(self, peer: ID, rpc: rpc_pb2.RPC) -> rpc_pb2.RPC | None:
        """What of ``rpc`` the peer may see; None if that is nothing."""
        out = rpc_pb2.RPC()
        out.CopyFrom(rpc)
        farewell = self._farewell.get(peer, set())
        subs = [s for s in out.subscriptions if self.allowed(peer, s.topicid)
                or (not s.subscribe and s.topicid in farewell)]
        farewell -= {s.topicid for s in subs if not s.subscribe}
        told = self._told.setdefault(peer, set())
        for sub in subs:
            (told.add if sub.subscribe else told.discard)(sub.topicid)
        _replace(out.subscriptions, subs)
        _replace(out.publish, [m for m in out.publish
                               if m.topicIDs and all(self.allowed(peer, t) for t in m.topicIDs)])
        if out.HasField("control"):
            _filter_control(out.control, lambda t: self.allowed(peer, t),
                            lambda: self._allowed_any(peer))
        had = rpc.subscriptions or rpc.publish or rpc.HasField("control")
        left = out.subscriptions or out.publish or (
            out.HasField("control") and out.control.ByteSize() > 0)
        if had and not left:
            return None
        if out.HasField("control") and out.control.ByteSize() == 0:
            out.ClearField("control")
        return out

    # --- in ----------------------------------------------------------------------------------

    def handle_subscription(self, origin_id: ID, sub_message: rpc_pb2.RPC.SubOpts) -> None:
        topic = sub_message.topicid
        if self.gate is not None:
            held = self._held.setdefault(origin_id, set())
            if not sub_message.subscribe:
                held.discard(topic)
            elif not self.allowed(origin_id, topic):
                if len(held) < MAX_HELD_PER_PEER:
                    held.add(topic)
                self.refused += 1
                return
        super().handle_subscription(origin_id, sub_message)

    async def push_msg(self, msg_forwarder: ID, msg: rpc_pb2.Message) -> None:
        if self.gate is not None and not all(self.allowed(msg_forwarder, t)
                                             for t in msg.topicIDs):
            self.refused += 1
            if self.penalize is not None:
                self.penalize(str(msg_forwarder), OUTSIDER_GOSSIP,
                              "gossip on a topic it was not let into")
            return
        await super().push_msg(msg_forwarder, msg)

    def _handle_dead_peer(self, peer_id: ID) -> None:
        self._held.pop(peer_id, None)
        self._told.pop(peer_id, None)
        self._farewell.pop(peer_id, None)
        super()._handle_dead_peer(peer_id)


class GatedGossipSub(GossipSub):
    """libp2p's :class:`GossipSub`, dropping a peer's control messages about topics the
    :class:`GatedPubsub` gate keeps it out of before handling them."""

    async def handle_rpc(self, rpc: rpc_pb2.RPC, sender_peer_id: ID) -> None:
        pubsub = self.pubsub
        if isinstance(pubsub, GatedPubsub) and pubsub.gate is not None and rpc.HasField(
                "control"):
            _filter_control(rpc.control, lambda t: pubsub.allowed(sender_peer_id, t),
                            lambda: pubsub._allowed_any(sender_peer_id))
        await super().handle_rpc(rpc, sender_peer_id)


def _replace(field: Any, items: Iterable[Any]) -> None:
    kept = list(items)
    if len(kept) != len(field):
        copies = [type(item)() for item in kept]
        for copy, item in zip(copies, kept, strict=True):
            copy.CopyFrom(item)
        del field[:]
        field.extend(copies)


def _filter_control(control: rpc_pb2.ControlMessage, allowed: Callable[[str], bool],
                    allowed_any: Callable[[], bool]) -> None:
    """Cut out of ``control`` (in place) what concerns topics that are not ``allowed``; message-id
    lists (IWANT, IDONTWANT), which name no topic, stay only for a peer allowed any topic."""
    for name in ("ihave", "graft", "prune", "observe", "unobserve"):
        entries = getattr(control, name)
        _replace(entries, [e for e in entries if allowed(e.topicID)])
    if not allowed_any():
        control.ClearField("iwant")
        control.ClearField("idontwant")
        control.ClearField("extensions")
