"""A test-only raw libp2p peer (no meshcrew code on its side): Noise, yamux and GossipSub, and
nothing that validates, paces or refuses what it sends. Hostile-peer tests drive it."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trio
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.x25519 import create_new_key_pair as create_noise_key_pair
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11, PROTOCOL_ID_V12, GossipSub
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub
from libp2p.pubsub.validators import PUBSUB_SIGNING_PREFIX
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux
from libp2p.tools.anyio_service import background_trio_service
from multiaddr import Multiaddr
from nacl.signing import SigningKey


@dataclass
class RawPeer:
    """A running raw peer."""

    host: Any
    pubsub: Any
    router: Any
    key: SigningKey

    @property
    def peer_id(self) -> str:
        return str(self.host.get_id())

    async def connect(self, addr: str) -> None:
        await self.host.connect(info_from_p2p_addr(Multiaddr(addr)))

    def record_inbound(self, protocols: list[str]) -> Inbound:
        """From now on, keep every byte peers send this peer on its inbound pubsub streams, and
        note every stream a peer opens on ``protocols`` (answered by a reset)."""
        inbound = Inbound()

        async def tee_pubsub(stream: Any) -> None:
            await self.pubsub.stream_handler(_Tee(stream, inbound.pubsub))

        async def note(stream: Any) -> None:
            inbound.opened.append(str(stream.get_protocol()))
            await stream.reset()

        for protocol in self.pubsub.protocols:
            self.host.set_stream_handler(protocol, tee_pubsub)
        for protocol in protocols:
            self.host.set_stream_handler(TProtocol(protocol), note)
        return inbound

    def connected_to(self, peer_id: str) -> bool:
        return peer_id in {str(p) for p in self.host.get_connected_peers()}

    def in_mesh(self, topic: str, peer_id: str) -> bool:
        return peer_id in {str(p) for p in self.router.mesh.get(topic, ())}

    def message(self, topic: str, data: bytes) -> Any:
        """A GossipSub message published by this peer (signed as libp2p's ``publish`` signs)."""
        msg = rpc_pb2.Message(data=data, topicIDs=[topic], from_id=self.host.get_id().to_bytes(),
                              seqno=self.pubsub._next_seqno())
        msg.signature = self.pubsub.sign_key.sign(
            PUBSUB_SIGNING_PREFIX.encode() + msg.SerializeToString())
        msg.key = self.host.get_public_key().serialize()
        return msg

    async def flood(self, peer_id: str, topic: str, datas: list[bytes], batch: int = 64) -> int:
        """Write the messages ``batch`` per RPC, each RPC as soon as the stream takes the last;
        stop when the peer closes the stream (a ban). Returns how many were written."""
        written = 0
        for start in range(0, len(datas), batch):
            try:
                await self.send_together(peer_id, topic, datas[start:start + batch])
            except Exception:  # the peer reset the stream, or the connection is gone
                break
            written += len(datas[start:start + batch])
        return written

    async def send_together(self, peer_id: str, topic: str, datas: list[bytes]) -> None:
        """Send messages to one peer in a single RPC, through the peer's outbound queue (libp2p's
        one writer of the stream), waiting for room rather than dropping: libp2p's ``publish``
        sends one message per RPC and drops what its queue does not take, so it neither delivers
        a real flood nor puts two messages in front of the receiver's validator at once."""
        rpc = rpc_pb2.RPC(publish=[self.message(topic, data) for data in datas])
        while True:
            queue = self.pubsub.peer_queues.get(ID.from_base58(peer_id))
            if queue is None or queue.closed:
                raise ConnectionError(f"no pubsub stream to {peer_id}")
            if queue.push(rpc):
                return
            await trio.sleep(0.001)  # full: the writer is busy with what came before


@dataclass
class Inbound:
    """What peers sent a raw peer (:meth:`RawPeer.record_inbound`)."""

    pubsub: bytearray = field(default_factory=bytearray)
    """Every byte read from inbound pubsub streams."""
    opened: list[str] = field(default_factory=list)
    """The protocols of other streams peers opened to it."""


class _Tee:
    """A stream whose reads are also appended to ``into``."""

    def __init__(self, stream: Any, into: bytearray) -> None:
        self._stream = stream
        self._into = into

    async def read(self, n: int | None = None) -> bytes:
        data: bytes = await self._stream.read(n)
        self._into.extend(data)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@asynccontextmanager
async def open_raw_peer(name: str, seed: bytes | None = None) -> AsyncIterator[RawPeer]:
    """A raw libp2p peer on 127.0.0.1 whose ed25519 key is made from ``seed`` (a member's, for a
    member's runaway node), else derived from ``name``."""
    seed = seed or hashlib.sha256(f"raw peer {name}".encode()).digest()
    key_pair = create_new_key_pair(seed)
    security = {NOISE_PROTOCOL_ID: NoiseTransport(
        key_pair, noise_privkey=create_noise_key_pair().private_key)}
    host = new_host(key_pair=key_pair, sec_opt=security,
                    muxer_opt={TProtocol(YAMUX_PROTOCOL_ID): Yamux})
    router = GossipSub(protocols=[PROTOCOL_ID_V12, PROTOCOL_ID_V11], degree=8, degree_low=4,
                       degree_high=64, heartbeat_interval=1)
    pubsub = Pubsub(host, router)
    try:
        async with host.run([Multiaddr("/ip4/127.0.0.1/tcp/0")]), \
                background_trio_service(pubsub), background_trio_service(router):
            await pubsub.wait_until_ready()
            try:
                yield RawPeer(host, pubsub, router, SigningKey(seed))
            finally:  # leaving host.run() leaves live connections' sockets open
                with trio.CancelScope(shield=True), trio.move_on_after(2):
                    for peer in list(host.get_connected_peers()):
                        await host.disconnect(peer)
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(2):
            await host.close()
