"""Live gossip: one GossipSub topic per space, every message validated, publishing paced.

Gossip is an announcement, not the source of truth: a message can be dropped (a full queue, a
peer pruned from the mesh) and catch-up sync delivers it later. So :meth:`Gossip.publish` never
blocks; it queues, and a paced task publishes (LIBP2P.md trap 2), each message once the
peers' outbound queues have room (for at most a second: a stalled peer's never do).

Every message, including this node's own, passes the node's validator before libp2p accepts or
forwards it. A message the validator rejects costs the peer that forwarded it penalty points.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

import libp2p.pubsub.pubsub as libp2p_pubsub
import trio
from libp2p.peer.id import ID
from libp2p.pubsub.rpc_queue import OutBoundQueueSize

from meshcrew.net.config import GossipConfig
from meshcrew.net.scores import INVALID_GOSSIP
from meshcrew.net.seam import log

if TYPE_CHECKING:
    from trio_typing import TaskStatus

_TOPIC_PERSON = b"meshcrew.topic"
_MSG_ID_PERSON = b"meshcrew.gossip"


class Verdict(Enum):
    """What the node's validator says about one gossip message."""

    ACCEPT = "accept"
    """Valid: deliver it and forward it."""
    IGNORE = "ignore"
    """Not usable now (e.g. the author is not yet known to be a member): drop it, no penalty."""
    REJECT = "reject"
    """Provably invalid (bad signature, wrong space, over a limit): drop it, penalize the sender."""


GossipValidator = Callable[[bytes, bytes, str], Verdict]
"""``validate(space_id, data, origin)``: decode and verify a message published on a space's topic.

``origin`` is the peer id of the node that published it (authenticated: GossipSub messages are
signed by their publisher), which is not necessarily the record's author."""


@dataclass(frozen=True, slots=True)
class GossipMessage:
    """A validated message from another node."""

    space_id: bytes
    data: bytes
    origin: str
    """Peer id of the node that published it (not necessarily the record's author)."""


@dataclass(frozen=True, slots=True)
class GossipStats:
    """Counters since the host started."""

    published: int
    publish_dropped: int
    received: int
    receive_dropped: int
    rejected: int


def topic_name(space_id: bytes) -> str:
    """The topic of a space: a hash, so the topic does not reveal the space id."""
    digest = hashlib.blake2b(space_id, digest_size=16, person=_TOPIC_PERSON).hexdigest()
    return f"/meshcrew/space/2/{digest}"  # 2: records sealed in transit (1: bare)


def message_id(msg: Any) -> bytes:
    """Content-addressed message id (libp2p's ``msg_id_constructor``).

    The default id is (origin, seqno), and the seqno restarts from the wall clock's seconds, so a
    node that restarts within the seen-cache window reuses ids and loses messages (trap 5).
    """
    return hashlib.blake2b(msg.data, digest_size=20, person=_MSG_ID_PERSON).digest()


class Gossip:
    """Topics, validation, paced publishing and delivery for one host.

    Made by :func:`meshcrew.net.open_host`; reach it as ``host.gossip``.
    """

    def __init__(self, pubsub: Any, router: Any, config: GossipConfig,
                 validator: GossipValidator | None,
                 penalize: Callable[[str, float, str], None]) -> None:
        self._pubsub = pubsub
        self._router = router
        self._config = config
        self._validator = validator
        self._penalize = penalize
        self._own_id: str = str(pubsub.my_id)
        self._topics: dict[bytes, str] = {}
        self._spaces: dict[str, bytes] = {}
        """Topic → space, of the topics joined (and one being left, until it is)."""
        self._publish_send, self._publish_receive = trio.open_memory_channel[tuple[bytes, bytes]](
            config.publish_queue)
        self._deliver_send, self.messages = trio.open_memory_channel[GossipMessage](
            config.receive_queue)
        """Validated messages from other nodes, oldest first."""
        self._nursery: trio.Nursery | None = None
        self._published = self._publish_dropped = 0
        self._received = self._receive_dropped = self._rejected = 0

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Publish queued messages at a paced rate and own the delivery tasks, until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            async for space_id, data in self._publish_receive:
                topic = self._topics.get(space_id) or topic_name(space_id)
                await self._wait_for_room(topic)
                try:
                    await self._pubsub.publish(topic, data)
                    self._published += 1
                except Exception:  # best effort: sync delivers what gossip drops
                    self._publish_dropped += 1
                    log.warning("publishing to %s failed", topic, exc_info=True)
                await trio.sleep(self._config.publish_interval_s)

    async def _wait_for_room(self, topic: str) -> None:
        """Wait until the outbound queue of each peer on the topic is at most half full, for at
        most ``publish_room_wait_s``. libp2p drops an RPC its peer's queue (32 RPCs) does not
        take, and the pace alone does not keep room there: on a loaded machine the writer
        drains it slower than one RPC per interval (a burst of 300 lost 11 to 83 messages).
        The bound limits how long a stalled peer holds up publishing for the others."""
        queues = self._pubsub.peer_queues
        with trio.move_on_after(self._config.publish_room_wait_s):
            # Polled: libp2p's queue signals nothing when it is popped.
            while any(len(queue) > OutBoundQueueSize // 2  # noqa: ASYNC110
                      for peer in self._pubsub.peer_topics.get(topic, ())
                      if (queue := queues.get(peer)) is not None):
                await trio.sleep(self._config.publish_interval_s)

    @property
    def joined(self) -> frozenset[bytes]:
        """The spaces whose topics this node is subscribed to."""
        return frozenset(self._topics)

    async def join(self, space_id: bytes) -> None:
        """Subscribe to a space's topic (idempotent) and validate its messages."""
        if space_id in self._topics:
            return
        if self._nursery is None:
            raise RuntimeError("the gossip service is not running")
        topic = topic_name(space_id)
        self._topics[space_id] = topic
        self._spaces[topic] = space_id
        self._pubsub.set_topic_validator(topic, self._topic_validator(space_id), False)
        # libp2p hands validated messages to a subscription through a channel of
        # SUBSCRIPTION_CHANNEL_SIZE (32), read at subscribe time, and drops what does not fit.
        # The messages of one RPC are validated in one go, before _deliver can move any, so a
        # peer sending many per RPC lost all but 32 of each (issue 19): size it like our queue.
        libp2p_pubsub.SUBSCRIPTION_CHANNEL_SIZE = max(libp2p_pubsub.SUBSCRIPTION_CHANNEL_SIZE,
                                                      self._config.receive_queue)
        subscription = await self._pubsub.subscribe(topic)
        self._nursery.start_soon(self._deliver, space_id, subscription)

    async def leave(self, space_id: bytes) -> None:
        """Unsubscribe from a space's topic (idempotent)."""
        topic = self._topics.pop(space_id, None)
        if topic is None:
            return
        try:
            await self._pubsub.unsubscribe(topic)  # told to those the gate lets in
        finally:
            self._spaces.pop(topic, None)
        self._pubsub.remove_topic_validator(topic)

    def set_gate(self, may_see: Callable[[str, bytes], bool] | None) -> None:
        """Tell a peer about a space's topic only if ``may_see(peer_id, space_id)``
        (:mod:`meshcrew.net.pubsub_gate`); None tells everyone (libp2p's behaviour)."""
        if may_see is None:
            self._pubsub.gate = None
            return

        def gate(peer: ID, topic: str) -> bool:
            space_id = self._spaces.get(topic)
            return space_id is not None and may_see(str(peer), space_id)

        self._pubsub.gate = gate
        self._pubsub.regate()

    def regate(self) -> None:
        """Who may see which space changed: ask the gate again for every connected peer."""
        self._pubsub.regate()

    @property
    def refused(self) -> int:
        """Subscriptions and messages from peers the gate kept out, since the host started."""
        return int(self._pubsub.refused)

    def publish(self, space_id: bytes, data: bytes) -> bool:
        """Queue a message for the space's topic; False if the queue was full and it was dropped."""
        try:
            self._publish_send.send_nowait((space_id, data))
        except trio.WouldBlock:
            self._publish_dropped += 1
            return False
        return True

    def mesh_peers(self, space_id: bytes) -> frozenset[str]:
        """Peer ids in this node's mesh for the space's topic."""
        return frozenset(str(p) for p in self._router.mesh.get(topic_name(space_id), ()))

    def topic_peers(self, space_id: bytes) -> frozenset[str]:
        """Peer ids known to be subscribed to the space's topic."""
        return frozenset(str(p) for p in self._pubsub.peer_topics.get(topic_name(space_id), ()))

    def statistics(self) -> GossipStats:
        """Counters since the host started."""
        return GossipStats(self._published, self._publish_dropped, self._received,
                           self._receive_dropped, self._rejected)

    def _topic_validator(self, space_id: bytes) -> Callable[[Any, Any], bool]:
        validator = self._validator

        def validate(forwarder: Any, msg: Any) -> bool:
            if validator is None:
                return True
            try:
                verdict = validator(space_id, bytes(msg.data), str(ID(msg.from_id)))
            except Exception:  # a crashing validator must not take libp2p's pubsub task down
                log.exception("the gossip validator raised; ignoring the message")
                verdict = Verdict.IGNORE
            if verdict is Verdict.REJECT:
                self._rejected += 1
                sender = str(forwarder)
                if sender != self._own_id:
                    self._penalize(sender, INVALID_GOSSIP, "sent an invalid gossip message")
            return verdict is Verdict.ACCEPT

        return validate

    async def _deliver(self, space_id: bytes, subscription: Any) -> None:
        # Move libp2p's messages to this node's queue at once, without waiting for the node to
        # take them (what does not fit there is counted as dropped; sync brings it later). All
        # that are waiting move in one go: a receive per message would take one per turn of
        # trio's scheduler while libp2p validates a whole RPC per turn.
        channel = subscription.receive_channel
        async for first in channel:
            msg = first
            while True:
                self._take_delivered(space_id, msg)
                try:
                    msg = channel.receive_nowait()
                except trio.WouldBlock:
                    break

    def _take_delivered(self, space_id: bytes, msg: Any) -> None:
        origin = str(ID(msg.from_id))
        if origin == self._own_id:
            return
        self._received += 1
        item = GossipMessage(space_id, bytes(msg.data), origin)
        try:
            self._deliver_send.send_nowait(item)
        except trio.WouldBlock:
            self._receive_dropped += 1
