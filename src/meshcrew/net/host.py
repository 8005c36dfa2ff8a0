"""The member's libp2p host: identity, Noise-only security, yamux, listening, peers and bans.

:func:`open_host` is the only way in. The host's key is the member key, so a peer id *is* a
member's public key and Noise authenticates it. Plaintext is never offered or accepted
(LIBP2P.md trap 1). Stream handlers always end by closing or resetting their stream (trap 7).
"""

from __future__ import annotations

import errno
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio
from libp2p import new_host
from libp2p.abc import INotifee
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.x25519 import create_new_key_pair as create_noise_key_pair
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11, PROTOCOL_ID_V12
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux
from libp2p.tools.anyio_service import background_trio_service
from multiaddr import Multiaddr

from meshcrew.errors import DialError, IdentityError, ListenError, NetError, PeerBanned
from meshcrew.identity import Identity
from meshcrew.net import internals
from meshcrew.net.addresses import expand_wildcards
from meshcrew.net.config import NetConfig
from meshcrew.net.gossip import Gossip, GossipValidator, message_id
from meshcrew.net.pubsub_gate import GatedGossipSub, GatedPubsub
from meshcrew.net.reach import PeerLink, Reach
from meshcrew.net.relay import RelayServiceConfig, dial_through, split_circuit
from meshcrew.net.scores import PeerScores
from meshcrew.net.seam import log, quiet_stream_failures, translated
from meshcrew.net.stream import Stream, abort

if TYPE_CHECKING:
    from trio_typing import TaskStatus

StreamHandler = Callable[[Stream], Awaitable[None]]
"""Serves one inbound stream; the host closes or resets the stream after it returns or raises."""


@dataclass(frozen=True, slots=True)
class PeerConnected:
    """A connection to a peer opened (either side dialled)."""

    peer_id: str


@dataclass(frozen=True, slots=True)
class PeerDisconnected:
    """The last connection to a peer closed."""

    peer_id: str


PeerEvent = PeerConnected | PeerDisconnected


class Host:
    """A running member host. Made by :func:`open_host`; valid until its context exits."""

    def __init__(self, lp_host: Any, pubsub: Any, router: Any, identity: Identity, *,
                 config: NetConfig, validator: GossipValidator | None,
                 banned: Iterable[str], noise: Any = None) -> None:
        self._lp = lp_host
        self._noise = noise
        """The Noise security transport (for fresh, unregistered handshakes: dial-backs)."""
        self.config = config
        """The settings the host was opened with."""
        self.peer_id: str = identity.peer_id
        """This node's libp2p peer id (derived from the member key)."""
        self.public_key: bytes = identity.public_key
        self.scores = PeerScores(config.ban_threshold, config.penalty_decay_per_s, banned)
        """Penalty points and the ban list."""
        self._pubsub = pubsub
        self.gossip = Gossip(pubsub, router, config.gossip, validator, self.penalize)
        pubsub.penalize = self.penalize  # the gate charges outsiders' gossip (pubsub_gate.py)
        """Live gossip on space topics."""
        self.is_member: Callable[[str], bool] = lambda peer_id: False
        """Whether a peer shares a space with this node (the node sets it; relay limits)."""
        self.reach = Reach(lp_host, self.peer_id, self.connect,
                           self._shares_a_space, self.penalize,
                           RelayServiceConfig(strangers=config.relay_strangers))
        """Relay service, reservations, circuits and hole punching."""
        self._watchers: list[trio.MemorySendChannel[PeerEvent]] = []
        self._evict_send, self._evict_receive = trio.open_memory_channel[str](256)
        for peer_id in self.scores.banned:
            pubsub.add_to_blacklist(ID.from_base58(peer_id))

    # --- addresses and peers -------------------------------------------------------------------

    def listen_addrs(self) -> list[str]:
        """The addresses peers can dial this host at, each ending in ``/p2p/<peer id>``.

        A wildcard listen address (``0.0.0.0``) is given as one address per interface.
        """
        return [str(addr) for addr in self._lp.get_addrs()]

    def peer_addrs(self, peer_id: str) -> list[str]:
        """The addresses libp2p knows for a peer (from dialling it and from identify), each
        ending in ``/p2p/<peer id>``; [] if none."""
        try:
            known = self._lp.get_peerstore().addrs(ID.from_base58(peer_id))
        except Exception:  # unknown peer, or a malformed id
            return []
        suffix = f"/p2p/{peer_id}"
        texts = (str(addr) for addr in known)
        return list(dict.fromkeys(t if t.endswith(suffix) else t + suffix for t in texts))

    def listen_port(self) -> int | None:
        """The TCP port bound (remember it and ask for it next time), or None."""
        for addr in self._lp.get_transport_addrs():
            port = addr.value_for_protocol("tcp")
            if port:
                return int(port)
        return None

    async def connect(self, addr: str) -> str:
        """Dial a peer at a multiaddr ending in ``/p2p/<peer id>``; return its peer id.

        Raises:
            DialError: the address is malformed or no connection could be made in time.
            PeerBanned: the peer is banned.
        """
        try:
            info = info_from_p2p_addr(Multiaddr(addr))
        except Exception:  # multiaddr raises several unrelated types for bad text
            raise DialError(f"{addr!r} is not a multiaddr ending in /p2p/<peer id>.") from None
        peer_id = str(info.peer_id)
        self._refuse_banned(peer_id)
        circuit = split_circuit(addr)
        if circuit is not None:
            await self._connect_through(*circuit)
            return peer_id
        # Dial exactly this address: libp2p dials only one known address per transport (the
        # first, often a stale one), and refuses for a minute a peer whose addresses all failed.
        # The node keeps its own addresses and backoff per peer (a restarted peer's new address
        # must be tried at once).
        self._lp.get_network().unblock_peer(info.peer_id)
        if info.peer_id not in self._lp.get_network().connections:
            self._lp.get_peerstore().clear_addrs(info.peer_id)
        try:
            with translated(f"dialling {peer_id}", dialling=True), \
                    trio.fail_after(self.config.dial_timeout_s):
                await self._lp.connect(info)
        except DialError as exc:  # libp2p's words (SwarmDialAllFailedError: ...) go to the log
            log.debug("%s", exc)
            raise DialError(f"No node at {addr} answered as that peer: check that its node is "
                            "running and that the address is current (meshcrew status there "
                            "lists its addresses).") from None
        return peer_id

    async def _connect_through(self, relay_addr: str, relay_id: str, target: str) -> None:
        """Dial ``target`` through a relay (dialling the relay first if need be)."""
        if target in self.connected_peers():
            return
        if self.peer_id in (relay_id, target):
            raise DialError(f"{target}: a circuit through or to this node itself.")
        if relay_id not in self.connected_peers():
            try:
                await self.connect(relay_addr)
            except DialError as exc:
                raise DialError(f"No relay reachable for {target}: {exc}") from None
        try:  # the relay's answer and the handshake through it, each bounded, and both
            with trio.fail_after(self.config.dial_timeout_s):
                await dial_through(self._lp, relay_id, target)
        except trio.TooSlowError:  # (untranslated, it ended the node's dialer)
            raise DialError(f"No circuit to {target} through relay {relay_id} within "
                            f"{self.config.dial_timeout_s:g} s.") from None

    def _shares_a_space(self, peer_id: str) -> bool:
        return self.is_member(peer_id)  # looked up at each call: the node sets is_member later

    def link(self, peer_id: str) -> PeerLink:
        """How a peer is connected now: direct, relayed (via whom) or hole-punched."""
        return self.reach.link(peer_id)

    async def disconnect(self, peer_id: str) -> None:
        """Close every connection to a peer (no error if there is none)."""
        with translated(f"disconnecting {peer_id}"), trio.move_on_after(self.config.dial_timeout_s):
            await self._lp.disconnect(ID.from_base58(peer_id))

    def protocols_of(self, peer_id: str) -> frozenset[str]:
        """The protocols a peer said it speaks (identify); empty if it has not said yet."""
        return frozenset(internals.peer_protocols(self._lp, peer_id))

    def connected_peers(self) -> list[str]:
        """Peer ids with an open connection."""
        return [str(p) for p in self._lp.get_connected_peers()]

    def watch_connections(self, buffer: int = 256) -> trio.MemoryReceiveChannel[PeerEvent]:
        """A channel of connection events from now on (events beyond ``buffer`` are dropped).

        Close the channel when done watching (``with host.watch_connections() as events:``).
        """
        send, receive = trio.open_memory_channel[PeerEvent](buffer)
        self._watchers.append(send)
        return receive

    # --- penalties -----------------------------------------------------------------------------

    def penalize(self, peer_id: str, points: float, why: str) -> None:
        """Add penalty points; at the threshold the peer is banned and disconnected."""
        if self.scores.penalize(peer_id, points, time.monotonic()):
            log.warning("banning peer %s: %s", peer_id, why)
            self._pubsub.add_to_blacklist(ID.from_base58(peer_id))
            self._evict(peer_id)
        else:
            log.info("peer %s penalized %.0f points: %s", peer_id, points, why)

    def forgive(self, peer_id: str) -> None:
        """Lift a ban."""
        self.scores.forgive(peer_id)
        self._pubsub.remove_from_blacklist(ID.from_base58(peer_id))

    def _refuse_banned(self, peer_id: str) -> None:
        if self.scores.is_banned(peer_id):
            raise PeerBanned(f"Peer {peer_id} is banned for sending invalid data.")

    def _evict(self, peer_id: str) -> None:
        try:
            self._evict_send.send_nowait(peer_id)
        except trio.WouldBlock:
            log.warning("too many evictions queued; %s stays connected for now", peer_id)

    # --- streams -------------------------------------------------------------------------------

    def set_stream_handler(self, protocol: str, handler: StreamHandler) -> None:
        """Serve inbound streams of ``protocol``; banned peers' streams are reset unread."""

        async def serve(raw: Any) -> None:
            try:
                stream = Stream(raw, read_timeout_s=self.config.read_timeout_s,
                                write_timeout_s=self.config.write_timeout_s)
            except IdentityError:
                await abort(raw)
                return
            try:
                if self.scores.is_banned(stream.peer_id):
                    return
                await handler(stream)
            except NetError as exc:  # the peer left or stalled mid-protocol: no fault here
                log.info("a %s stream with %s ended: %s", protocol, stream.peer_id, exc)
            except Exception:  # libp2p would swallow it and leave the peer hanging (trap 7)
                log.exception("a %s handler failed for %s", protocol, stream.peer_id)
            finally:
                if not stream.finished:
                    await stream.reset()

        self._lp.set_stream_handler(TProtocol(protocol), serve)

    async def open_stream(self, peer_id: str, protocol: str) -> Stream:
        """Open a stream of ``protocol`` to a connected (or known) peer.

        Raises:
            DialError: no connection, or the peer does not serve the protocol.
            PeerTimeout: no answer within the dial deadline.
            PeerBanned: the peer is banned.
        """
        self._refuse_banned(peer_id)
        with translated(f"opening {protocol} to {peer_id}", dialling=True), \
                trio.fail_after(self.config.dial_timeout_s):
            raw = await self._lp.new_stream(ID.from_base58(peer_id), [TProtocol(protocol)])
        try:
            return Stream(raw, read_timeout_s=self.config.read_timeout_s,
                          write_timeout_s=self.config.write_timeout_s)
        except IdentityError:
            await abort(raw)
            raise DialError(f"Peer {peer_id} is not a meshcrew member key.") from None

    # --- background ----------------------------------------------------------------------------

    async def _run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(self.gossip.run)
            self.reach.install()
            await nursery.start(self.reach.run)
            task_status.started()
            async for peer_id in self._evict_receive:
                try:
                    await self.disconnect(peer_id)
                except Exception:  # the peer may be gone already
                    log.debug("evicting %s failed", peer_id, exc_info=True)

    def _notify(self, event: PeerEvent) -> None:
        if isinstance(event, PeerConnected) and self.scores.is_banned(event.peer_id):
            self._evict(event.peer_id)
            return
        for watcher in list(self._watchers):
            try:
                watcher.send_nowait(event)
            except trio.WouldBlock:
                log.warning("a connection watcher is full; dropped %s", event)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._watchers.remove(watcher)  # its receiver is gone


class _ConnectionNotifee(INotifee):
    """libp2p's network callbacks, turned into :class:`PeerEvent` for the host."""

    def __init__(self, host: Host, lp_host: Any) -> None:
        self._host = host
        self._lp = lp_host

    async def connected(self, network: Any, conn: Any) -> None:
        self._host._notify(PeerConnected(str(conn.muxed_conn.peer_id)))

    async def disconnected(self, network: Any, conn: Any) -> None:
        peer = conn.muxed_conn.peer_id
        if not network.get_connections(peer):
            self._host._notify(PeerDisconnected(str(peer)))

    async def opened_stream(self, network: Any, stream: Any) -> None:
        return None

    async def closed_stream(self, network: Any, stream: Any) -> None:
        return None

    async def listen(self, network: Any, multiaddr: Any) -> None:
        return None

    async def listen_close(self, network: Any, multiaddr: Any) -> None:
        return None


class _Announce:
    """The host's ``addrs_factory``: its listen addresses (wildcards expanded), not what peers
    observed. Circuits are added after libp2p's suffixing (:func:`internals.announce_also`)."""

    def __init__(self) -> None:
        self.host: Host | None = None

    def __call__(self, candidates: list[Multiaddr]) -> list[Multiaddr]:
        host = self.host
        if host is None:
            return expand_wildcards(candidates)
        listening = {str(a) for a in host._lp.get_transport_addrs()}
        return expand_wildcards([a for a in candidates if str(a) in listening])

    def circuits(self) -> list[Multiaddr]:
        host = self.host
        if host is None:
            return []
        return [Multiaddr(a) for a in host.reach.reservations.circuit_addrs(host.peer_id)]


def _parse_listen_addrs(texts: Iterable[str]) -> list[Multiaddr]:
    addrs = []
    for text in texts:
        try:
            addr = Multiaddr(text)
            port = addr.value_for_protocol("tcp")
        except Exception:  # multiaddr raises several unrelated types for bad text
            raise ListenError(f"{text!r} is not a multiaddr like /ip4/0.0.0.0/tcp/0.") from None
        if not port:
            raise ListenError(f"{text!r} is not a TCP address; meshcrew listens on TCP.")
        addrs.append(addr)
    if not addrs:
        raise ListenError("No listen address given.")
    return addrs


def _check_can_listen(addr: Multiaddr) -> None:
    """Refuse a fixed port another socket holds, or an IP address this machine does not have.

    libp2p listens with SO_REUSEPORT, so a second node on the same port would silently share
    incoming connections with the first instead of failing; and it only logs an address it
    cannot bind, so the node would run listening nowhere. A plain bind finds out first.
    """
    port = int(addr.value_for_protocol("tcp"))
    protocols = {p.name for p in addr.protocols()}
    if not protocols & {"ip4", "ip6"}:
        return
    family = socket.AF_INET if "ip4" in protocols else socket.AF_INET6
    ip = addr.value_for_protocol("ip4" if "ip4" in protocols else "ip6")
    probe = socket.socket(family, socket.SOCK_STREAM)
    # SO_REUSEADDR, as the listener itself will: connections of the last run lingering in
    # TIME_WAIT must not count as "in use" (a restarted node would lose its port for a minute),
    # while a socket listening there still does.
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind((ip, port))
    except OSError as exc:
        if exc.errno == errno.EADDRNOTAVAIL:
            raise ListenError(f"Cannot listen on {addr}: this machine has no address {ip}; give "
                              "--listen one of its own, or 0.0.0.0 for all of them.") from None
        raise ListenError(f"Cannot listen on {addr}: {exc.strerror}.") from None
    finally:
        probe.close()


LATE_ARRIVAL = "Nursery is closed to new arrivals"
"""trio's message when libp2p starts a task in a nursery that has stopped."""


def late_arrivals_only(group: BaseExceptionGroup[BaseException]) -> bool:
    """Whether every error in ``group``, however deeply nested (libp2p nests it in groups of
    its own), is trio's :data:`LATE_ARRIVAL` ``RuntimeError``."""
    others = group.subgroup(lambda exc: not isinstance(exc, BaseExceptionGroup)
                            and not (isinstance(exc, RuntimeError) and LATE_ARRIVAL in str(exc)))
    return others is None


async def _close_quietly(lp_host: Any, timeout_s: float) -> None:
    with trio.CancelScope(shield=True), trio.move_on_after(timeout_s) as scope:
        try:
            await lp_host.close()
        except Exception:  # shutting down: a failure to close cleanly is only worth a log line
            log.warning("closing the libp2p host failed", exc_info=True)
    if scope.cancelled_caught:
        log.warning("closing the libp2p host took over %.0f s; moved on", timeout_s)


@asynccontextmanager
async def open_host(identity: Identity, config: NetConfig | None = None, *,
                    validator: GossipValidator | None = None,
                    banned: Iterable[str] = ()) -> AsyncIterator[Host]:
    """Run a libp2p host for ``identity`` until the block exits.

    Args:
        identity: the member; its key is the host key.
        config: addresses, deadlines and gossip settings (defaults: TCP on every interface).
        validator: judges every gossip message (None accepts all: for tests only).
        banned: peer ids banned earlier.

    Raises:
        ListenError: a listen address is malformed or cannot be bound.
    """
    config = config or NetConfig()
    quiet_stream_failures()
    addrs = _parse_listen_addrs(config.listen_addrs)
    for addr in addrs:
        _check_can_listen(addr)
    key_pair = create_new_key_pair(identity.seed)
    noise = NoiseTransport(key_pair, noise_privkey=create_noise_key_pair().private_key)
    security = {NOISE_PROTOCOL_ID: noise}
    # Announce real interface addresses instead of a wildcard, the circuits of the relays this
    # node holds reservations on, and nothing peers merely observed (an outbound connection's
    # ephemeral port is not an address anyone can dial back). libp2p still records what peers
    # observe, for hole punching (DCUtR predicts the NAT's address from it).
    announce = _Announce()
    lp_host = new_host(key_pair=key_pair, sec_opt=security,
                       muxer_opt={TProtocol(YAMUX_PROTOCOL_ID): Yamux}, listen_addrs=addrs,
                       addrs_factory=announce, disable_identify_address_discovery=False)
    g = config.gossip
    router = GatedGossipSub(
        protocols=[PROTOCOL_ID_V12, PROTOCOL_ID_V11],
        degree=g.degree, degree_low=g.degree_low, degree_high=g.degree_high,
        heartbeat_interval=g.heartbeat_s,
        adaptive_gossip_enabled=False,  # it slows the heartbeat to 30 s in small groups (trap 4)
        spam_protection_enabled=True,
        max_messages_per_topic_per_second=g.max_messages_per_topic_per_second,  # trap 3
    )
    pubsub = GatedPubsub(lp_host, router, msg_id_constructor=message_id)
    # The seqno counter starts at the wall clock's seconds; a restart within a second of the last
    # publish would reuse seqnos, which peers treat as duplicates or equivocation (trap 5).
    pubsub.counter = time.time_ns()
    closing = False
    try:
        async with AsyncExitStack() as stack:
            try:
                await stack.enter_async_context(lp_host.run(addrs))
            except Exception as exc:  # libp2p reports bind failures with assorted types
                raise ListenError(f"Cannot listen on {', '.join(map(str, addrs))}: {exc}") from None
            # Leaving host.run() stops the swarm's tasks but leaves the listening socket open, so
            # close the host explicitly (the port must be free for the next start).
            stack.push_async_callback(_close_quietly, lp_host, config.shutdown_timeout_s)
            await stack.enter_async_context(background_trio_service(pubsub))
            await stack.enter_async_context(background_trio_service(router))
            await pubsub.wait_until_ready()
            host = Host(lp_host, pubsub, router, identity, config=config, validator=validator,
                        banned=banned, noise=noise)
            announce.host = host
            internals.announce_also(lp_host, announce.circuits)
            lp_host.get_network().register_notifee(_ConnectionNotifee(host, lp_host))
            nursery = await stack.enter_async_context(trio.open_nursery())
            await nursery.start(host._run)
            try:
                yield host
            finally:
                closing = True
                nursery.cancel_scope.cancel()
    except* RuntimeError as group:
        # py-libp2p 0.8.1: a stream handler that starts while the host closes schedules a task in
        # a nursery that has already stopped. The host is closing anyway; nothing is lost.
        if not closing or not late_arrivals_only(group):
            raise
        log.warning("libp2p failed while closing the host (ignored): %s", group.exceptions[0])
