"""Serving AutoNAT v1 dial-backs for other peers, on a fresh connection each time.

py-libp2p 0.8.1's own ``AutoNATService`` cannot be used (LIBP2P.md, AutoNAT): its server dials
back with ``host.connect``, which returns at once because the asker is always connected already,
so every probe "succeeds". :class:`DialBackServer` does it right.

On a DIAL request it dials back only TCP addresses whose IP is the IP the request's own
connection comes from (never a third party: no amplification), at most ``max_addresses`` of
them, each on a *fresh* TCP connection from an ephemeral port, under a deadline. The dial-back
runs multistream-select for ``/noise`` and a Noise handshake as initiator that must authenticate
the asker's peer id, then closes the connection without handing it to the swarm. A listener that
merely accepts TCP, or a different peer at that address, is a failure. Requests over relayed (or
unidentifiable) connections are refused. Rate limits: one dial-back per peer per
``per_peer_interval_s``, ``global_per_minute`` in all, ``max_concurrent`` at once; beyond them
the answer is E_DIAL_REFUSED. A malformed request is answered E_BAD_REQUEST and costs the sender
:data:`~meshcrew.net.scores.PROTOCOL_VIOLATION`. (The asker's libp2p logs "fail to upgrade mux"
at ERROR after each dial-back: its swarm expected a muxer to follow the handshake. Harmless;
completing the muxer instead would register a second connection there and announce the server as
newly connected.)

Statuses the server sends:

- OK, with the address it reached;
- E_DIAL_ERROR: it dialled and failed, *or* none of the offered addresses is at the IP the
  request came from (rust-libp2p answers the same; go-libp2p since v0.20 says E_DIAL_REFUSED).
  For meshcrew this is a real finding: behind a NAT, the node's announced interface addresses
  are not where its peers see it, so they cannot dial it. The status text then ends with
  ``seen from <ip>``, which the client reads as the address peers observe;
- E_DIAL_REFUSED: relayed connection, rate limit, busy. Says nothing about reachability;
- E_BAD_REQUEST: the request was malformed or asked to dial another peer.
"""

from __future__ import annotations

import math
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import trio
from libp2p.connection_types import ConnectionType
from libp2p.host.autonat.pb.autonat_pb2 import Message
from libp2p.io.trio import TrioTCPStream
from libp2p.network.connection.raw_connection import RawConnection
from libp2p.peer.id import ID
from libp2p.protocol_muxer.multiselect_client import MultiselectClient
from libp2p.protocol_muxer.multiselect_communicator import MultiselectCommunicator
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport

from meshcrew.errors import NetError, RemoteProtocolError
from meshcrew.net.autonat_wire import (
    AUTONAT_PROTOCOL,
    IPAddress,
    TcpAddress,
    decode_dial_request,
    encode_dial_response,
    parse_ip,
    printable,
    read_frame,
    tcp_address,
)
from meshcrew.net.host import Host
from meshcrew.net.scores import PROTOCOL_VIOLATION
from meshcrew.net.seam import log
from meshcrew.net.stream import Stream


@dataclass(frozen=True, slots=True)
class DialBackPolicy:
    """How much dialling the server does for others."""

    per_peer_interval_s: float = 30.0
    """A peer gets one dial-back per this many seconds; sooner requests are refused."""
    global_per_minute: int = 30
    """Dial-backs per minute for all peers together."""
    max_concurrent: int = 4
    """Dial-backs running at once; more are refused, not queued."""
    dial_timeout_s: float = 5.0
    """Longest one dial (TCP connect, multistream-select and the Noise handshake) may take."""
    budget_s: float = 10.0
    """Longest all the dials of one request may take together."""
    max_addresses: int = 4
    """Most addresses dialled for one request."""
    max_message_bytes: int = 4096
    """Largest AutoNAT message read (requests on the server, responses on the client)."""



@dataclass(frozen=True, slots=True)
class DialBackStatistics:
    """What a :class:`DialBackServer` has done since it started."""

    requests: int = 0
    bad_requests: int = 0
    refused: int = 0
    dials: int = 0
    """TCP connections attempted (each a fresh one)."""
    successes: int = 0
    """Requests answered OK."""


def dial_back_candidates(addrs: Iterable[str], asker: str, observed: IPAddress,
                         limit: int) -> list[TcpAddress]:
    """The offered addresses the server may dial: plain TCP at the observed IP, at most
    ``limit``, no duplicates. Every other IP is dropped (dialling a third party on a peer's
    word would make the server an amplifier)."""
    found: dict[TcpAddress, None] = {}
    for text in addrs:
        addr = tcp_address(text, asker)
        if addr is not None and addr.ip == observed:
            found[addr] = None
            if len(found) >= limit:
                break
    return list(found)


class DialBackLimiter:
    """Whether a dial-back may start now: one per peer per interval, a cap per minute in all.

    Pure (time is passed in). A clock that goes backwards opens the windows instead of closing
    them for the length of the jump.
    """

    def __init__(self, policy: DialBackPolicy) -> None:
        self._policy = policy
        self._last: dict[str, float] = {}
        self._recent: deque[float] = deque()

    def admit(self, peer_id: str, now: float) -> str | None:
        """Record a dial-back for ``peer_id`` and return None, or say why it may not start."""
        interval = self._policy.per_peer_interval_s
        last = self._last.get(peer_id)
        if last is not None and 0 <= now - last < interval:
            return f"one dial-back per {interval:g} s per peer"
        while self._recent and not 0 <= now - self._recent[0] < 60.0:
            self._recent.popleft()
        if len(self._recent) >= self._policy.global_per_minute:
            return "too many dial-backs this minute"
        self._recent.append(now)
        self._last[peer_id] = now
        if len(self._last) > 4 * self._policy.global_per_minute + 64:
            self._last = {p: t for p, t in self._last.items() if 0 <= now - t < interval}
        return None


# --- libp2p internals (0.8.1), each pinned by tests/test_net_reachability.py -------------------


def observed_origin(stream: Stream) -> IPAddress | Literal["relayed", "unknown"]:
    """The IP the stream's connection comes from; "relayed" over a circuit (whose remote address
    is the relay's); "unknown" when libp2p cannot say (the request is refused: fail closed).

    meshcrew's :class:`Stream` does not expose its connection's remote endpoint, so this reads
    the libp2p ``NetStream`` it wraps (``Stream._raw``). libp2p internals relied on:
    ``NetStream.muxed_conn`` (the ``Yamux`` connection), its ``get_connection_type()``
    (``ConnectionType.DIRECT`` for TCP, ``RELAYED`` for circuits), ``get_transport_addresses()``
    (``/p2p-circuit`` for circuits) and ``get_remote_address()``, the TCP socket's ``(ip, port)``
    (``None`` for IPv6 peers in 0.8.1: ``TrioTCPStream`` only accepts 2-tuples, so IPv6 askers
    are refused).
    """
    try:
        muxed = stream._raw.muxed_conn
        kind = muxed.get_connection_type()
        circuit = any("/p2p-circuit" in str(a) for a in muxed.get_transport_addresses())
        remote = muxed.get_remote_address()
    except Exception:  # an upgraded libp2p without these: refuse rather than guess
        log.warning("cannot tell where an AutoNAT request comes from; refusing it", exc_info=True)
        return "unknown"
    if kind == ConnectionType.RELAYED or circuit:
        return "relayed"
    if kind != ConnectionType.DIRECT or not isinstance(remote, tuple) or len(remote) != 2:
        return "unknown"
    return parse_ip(str(remote[0])) or "unknown"


async def dial_back(noise: NoiseTransport, addr: TcpAddress, peer_id: str, *,
                    timeout_s: float) -> str | None:
    """Open a fresh TCP connection to ``addr`` and authenticate ``peer_id`` there with Noise;
    close it again. Return None on success, or why it failed.

    The connection is never given to the swarm: libp2p's ``host.connect`` would return the
    existing connection to the asker instead of dialling. Pieces of libp2p used, as its
    ``TransportUpgrader.upgrade_security`` uses them: ``RawConnection(TrioTCPStream(stream),
    initiator=True)``, ``MultiselectClient().select_one_of([/noise], MultiselectCommunicator(raw),
    timeout)`` and ``NoiseTransport.secure_outbound(raw, peer_id)``, whose XX handshake raises
    unless the remote static key signs for ``peer_id``.
    """
    failure: str | None = f"no answer within {timeout_s:g} s"
    with trio.move_on_after(timeout_s):
        failure = await _dial_and_authenticate(noise, addr, ID.from_base58(peer_id),
                                               max(1, math.ceil(timeout_s)))
    return failure


def _connect_error(exc: OSError) -> str:
    """Why a TCP connect failed ("Connection refused"): trio's "all attempts to connect ...
    failed" keeps the real errors in a group as its cause."""
    errors: list[BaseException] = [exc]
    if isinstance(exc.__cause__, BaseExceptionGroup):
        found = exc.__cause__.subgroup(lambda e: isinstance(e, OSError) and bool(e.errno))
        errors = list(found.exceptions) if found is not None else errors
    for error in errors:
        if isinstance(error, OSError) and error.errno:
            return os.strerror(error.errno)
    return str(exc) or type(exc).__name__


async def _dial_and_authenticate(noise: NoiseTransport, addr: TcpAddress, expected: ID,
                                 negotiate_timeout: int) -> str | None:
    try:
        tcp = await trio.open_tcp_stream(str(addr.ip), addr.port)
    except OSError as exc:
        return _connect_error(exc)
    try:
        raw = RawConnection(TrioTCPStream(tcp), True)
        await MultiselectClient().select_one_of(
            [NOISE_PROTOCOL_ID], MultiselectCommunicator(raw), negotiate_timeout)
        secure = await noise.secure_outbound(raw, expected)
        if secure.get_remote_peer() != expected:
            return "a different peer answered"
        return None
    except Exception as exc:  # libp2p raises many unrelated types; each is a failed dial
        log.debug("dial-back to %s failed", addr.host_port, exc_info=True)
        return f"{type(exc).__name__} during the handshake"
    finally:
        with trio.CancelScope(shield=True):
            await tcp.aclose()


# --- server ------------------------------------------------------------------------------------


class DialBackServer:
    """Answers AutoNAT DIAL requests by dialling the asker back on a fresh connection.

    Args:
        host: the running host; it must keep its Noise transport (``open_host`` does).
        policy: limits (defaults: one dial-back per peer per 30 s, 30 a minute, 5 s a dial).
        clock: seconds, for the rate windows.

    Raises:
        TypeError: the host has no Noise transport to authenticate dial-backs with.
    """

    def __init__(self, host: Host, policy: DialBackPolicy | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        noise = host._noise
        if not isinstance(noise, NoiseTransport):
            raise TypeError("the host keeps no Noise transport (Host._noise); open it with "
                            "open_host to serve dial-backs")
        self._host = host
        self._noise: NoiseTransport = noise
        self._policy = policy or DialBackPolicy()
        self._clock = clock
        self._limiter = DialBackLimiter(self._policy)
        self._busy = trio.CapacityLimiter(self._policy.max_concurrent)
        self._requests = self._bad_requests = self._refused = self._dials = self._successes = 0

    @property
    def policy(self) -> DialBackPolicy:
        return self._policy

    def register(self) -> None:
        """Serve ``/libp2p/autonat/1.0.0`` on the host from now on."""
        # The host's own handler wrapper refuses banned peers and resets the stream on failure.
        self._host.set_stream_handler(AUTONAT_PROTOCOL, self.serve)

    def statistics(self) -> DialBackStatistics:
        return DialBackStatistics(self._requests, self._bad_requests, self._refused, self._dials,
                                  self._successes)

    async def serve(self, stream: Stream) -> None:
        """Answer one AutoNAT stream (the host resets it if this fails)."""
        self._requests += 1
        try:
            try:
                payload = await read_frame(stream, self._policy.max_message_bytes)
                addrs = decode_dial_request(payload, stream.peer_id)
            except RemoteProtocolError as exc:
                self._bad_requests += 1
                self._host.penalize(stream.peer_id, PROTOCOL_VIOLATION, str(exc))
                await stream.send_all(encode_dial_response(Message.E_BAD_REQUEST, str(exc)))
                await stream.aclose()
                return
            await stream.send_all(await self._answer(stream, addrs))
            await stream.aclose()
        except NetError as exc:  # the asker went away or stalled: nothing to answer
            log.debug("AutoNAT request from %s abandoned: %s", stream.peer_id, exc)

    async def _answer(self, stream: Stream, addrs: list[str]) -> bytes:
        asker = stream.peer_id
        observed = observed_origin(stream)
        if isinstance(observed, str):  # "relayed" or "unknown"
            self._refused += 1
            return encode_dial_response(Message.E_DIAL_REFUSED, (
                "dial-backs are refused over relayed connections" if observed == "relayed"
                else "cannot tell the IP this request came from"))
        refusal = self._limiter.admit(asker, self._clock())
        if refusal is not None:
            self._refused += 1
            return encode_dial_response(Message.E_DIAL_REFUSED, refusal)
        candidates = dial_back_candidates(addrs, asker, observed, self._policy.max_addresses)
        if not candidates:
            return encode_dial_response(
                Message.E_DIAL_ERROR,
                f"no TCP address offered is at the IP the request came from; seen from {observed}")
        try:
            self._busy.acquire_nowait()
        except trio.WouldBlock:
            self._refused += 1
            return encode_dial_response(Message.E_DIAL_REFUSED, "too many dial-backs at once")
        failures = []
        try:
            with trio.move_on_after(self._policy.budget_s):
                for addr in candidates:
                    self._dials += 1
                    failed = await dial_back(self._noise, addr, asker,
                                             timeout_s=self._policy.dial_timeout_s)
                    if failed is None:
                        log.info("dialled %s back at %s", asker, addr.host_port)
                        self._successes += 1
                        return encode_dial_response(Message.OK, addr=addr.multiaddr)
                    failures.append(f"{addr.host_port}: {failed}")
        finally:
            self._busy.release()
        text = printable("could not dial " + "; ".join(failures or ["in time"]), 300)
        return encode_dial_response(Message.E_DIAL_ERROR, f"{text}; seen from {observed}")
