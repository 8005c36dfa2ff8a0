"""Whether peers can dial this node at the addresses it announces: AutoNAT v1 dial-backs.

The node asks connected peers to dial it back (``/libp2p/autonat/1.0.0``, with libp2p's standard
``autonat.pb.Message`` so other libp2p stacks can ask and answer) and turns their answers into a
verdict, "public", "private" or "unknown", that ``meshcrew status`` shows as one sentence.

py-libp2p 0.8.1's own ``AutoNATService`` cannot be used (LIBP2P.md, AutoNAT): its server dials
back with ``host.connect``, which returns at once because the asker is always connected already,
so every probe "succeeds"; and its client wants four agreeing servers, which a crew of three to
eight with one public member never has.

**Server** (:class:`DialBackServer`). On a DIAL request it dials back only TCP addresses whose IP
is the IP the request's own connection comes from (never a third party: no amplification), at
most ``max_addresses`` of them, each on a *fresh* TCP connection from an ephemeral port, under a
deadline. The dial-back runs multistream-select for ``/noise`` and a Noise handshake as
initiator that must authenticate the asker's peer id, then closes the connection without
handing it to the swarm. A listener that merely accepts TCP, or a different peer at that
address, is a failure. Requests over relayed (or unidentifiable) connections are refused.
Rate limits: one dial-back per peer per ``per_peer_interval_s``, ``global_per_minute`` in all,
``max_concurrent`` at once; beyond them the answer is E_DIAL_REFUSED. A malformed request is
answered E_BAD_REQUEST and costs the sender :data:`~meshcrew.net.scores.PROTOCOL_VIOLATION`.
(The asker's libp2p logs "fail to upgrade mux" at ERROR after each dial-back: its swarm expected
a muxer to follow the handshake. Harmless; completing the muxer instead would register a second
connection there and announce the server as newly connected.)

Statuses the server sends:

- OK, with the address it reached;
- E_DIAL_ERROR: it dialled and failed, *or* none of the offered addresses is at the IP the
  request came from (rust-libp2p answers the same; go-libp2p since v0.20 says E_DIAL_REFUSED).
  For meshcrew this is a real finding: behind a NAT, the node's announced interface addresses
  are not where its peers see it, so they cannot dial it. The status text then ends with
  ``seen from <ip>``, which the client reads as the address peers observe;
- E_DIAL_REFUSED: relayed connection, rate limit, busy. Says nothing about reachability;
- E_BAD_REQUEST: the request was malformed or asked to dial another peer.

**Verdict** (:func:`judge`), over the answers of the last ``memory_s`` seconds, where an answer
is *conclusive* if it is OK (reachable) or E_DIAL_ERROR (unreachable); refusals, timeouts and
peers that do not speak the protocol count for nothing:

- **private** at the first failure whose answer says peers see this node at an IP it does not
  offer (it is behind a NAT, and asking again would only repeat it: a forwarded port is what
  ``--reachability public`` is for), when no peer ever dialled back;
- **private** once two conclusive failures have come since the last success, from two
  different peers, or from the only peer that gave conclusive answers at all (a crew with a
  single public member asks it twice);
- otherwise **public** if any peer dialled back (one success is strong evidence: a real dial
  authenticated this node's key; a single failure after it does not flip the verdict);
- otherwise **unknown**.

"Public" means "the peers that asked could reach this node at an announced address": a peer on
the same LAN or the same machine dialling back a private or loopback address counts too (crews
on one network, and the tests, need it). The reason sentence says when the address reached is
on this machine or not a global internet address (Python's ``ipaddress``: RFC 1918, ULA and the
TEST-NET documentation ranges are "private"), so a person can tell.

Modes "public" and "private" force the verdict ("set by --reachability") and ask nobody; the
server keeps answering others in every mode.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

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
from multiaddr import Multiaddr

from meshcrew.errors import InputError, NetError, RemoteProtocolError
from meshcrew.net.host import Host, PeerConnected, PeerEvent
from meshcrew.net.scores import PROTOCOL_VIOLATION
from meshcrew.net.seam import log
from meshcrew.net.stream import Stream

if TYPE_CHECKING:
    from trio_typing import TaskStatus

AUTONAT_PROTOCOL = "/libp2p/autonat/1.0.0"
"""AutoNAT v1, as every libp2p implementation names it."""

ReachabilityMode = Literal["auto", "public", "private"]
ReachabilityVerdict = Literal["public", "private", "unknown"]
ProbeOutcome = Literal["reachable", "unreachable", "inconclusive"]
"""What one peer's answer says: it dialled back (reachable), it tried and could not
(unreachable), or nothing about reachability (refused, timed out, no AutoNAT, garbled)."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

FORCED_REASON = "set by --reachability"

_MAX_ADDRS_READ = 64
"""Most addresses of one request even looked at (the message size limit bounds it too)."""
_MAX_ADDRS_SENT = 16
_MAX_TEXT = 160
"""Longest status text kept from a peer (it is shown to a person)."""
_MAX_RESULTS = 32
"""Probe results remembered for the verdict (besides the age limit)."""
_SEEN_FROM = re.compile(r"seen from ([0-9A-Fa-f:.]+)$")


# --- settings ----------------------------------------------------------------------------------


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
class ReachabilitySettings:
    """How often and how widely the node asks (defaults for crews of 3-8)."""

    peers_per_round: int = 3
    """Peers asked at once."""
    retry_s: float = 35.0
    """Least time before the same peer is asked again (above the server's per-peer window of
    30 s, so the second request is not refused). Doubles per peer while its answers say
    nothing, up to ``max_backoff_s``."""
    settled_s: float = 600.0
    """Time between rounds once the verdict is public or private (to notice a change)."""
    max_backoff_s: float = 1800.0
    probe_timeout_s: float = 20.0
    """Longest one probe may take (above the server's dial budget); the stream's own read
    deadline applies to each read as well."""
    memory_s: float = 3600.0
    """Answers older than this no longer count for the verdict."""


# --- results and reports -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One peer's answer to "dial me back"."""

    peer_id: str
    outcome: ProbeOutcome
    at: float
    """When the answer came (the Reachability's clock: wall-clock seconds by default)."""
    detail: str
    """The status and the peer's text, or what went wrong asking ("E_DIAL_ERROR: ...")."""
    address: str | None = None
    """The multiaddr the peer reached (reachable only)."""
    observed_ip: str | None = None
    """The IP the peer sees this node at, when its answer says."""
    asked: tuple[str, ...] = ()
    """The addresses offered for dialling."""


@dataclass(frozen=True, slots=True)
class ProbeSummary:
    """Counts of every probe since the node started."""

    successes: int = 0
    failures: int = 0
    inconclusive: int = 0
    last_probe_at: float | None = None


@dataclass(frozen=True, slots=True)
class ReachabilityReport:
    """What the node knows about its reachability, for ``meshcrew status`` and for reacting."""

    verdict: ReachabilityVerdict
    forced: bool
    """The verdict was set by the person (``--reachability``), not measured."""
    reason: str
    """One sentence for a person: "3 of 3 peers dialled back 198.51.100.2:4001"."""
    probes: ProbeSummary
    observed: tuple[str, ...] = ()
    """IPs peers saw this node's connections come from, newest first."""
    reachable_at: tuple[str, ...] = ()
    """Addresses (``ip:port``) peers reached this node at, newest first."""


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


# --- pure parts: addresses, messages, limits, the verdict --------------------------------------


def parse_ip(text: str) -> IPAddress | None:
    """An IP address, IPv4-mapped IPv6 (``::ffff:a.b.c.d``) as IPv4; None if not one."""
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


@dataclass(frozen=True, slots=True)
class TcpAddress:
    """A plain TCP address: ``/ip4|ip6/<ip>/tcp/<port>``."""

    ip: IPAddress
    port: int

    @property
    def multiaddr(self) -> str:
        return f"/ip{self.ip.version}/{self.ip}/tcp/{self.port}"

    @property
    def host_port(self) -> str:
        return f"[{self.ip}]:{self.port}" if self.ip.version == 6 else f"{self.ip}:{self.port}"


def tcp_address(text: str, peer_id: str | None = None) -> TcpAddress | None:
    """The TCP address a multiaddr names, or None unless it is exactly ``/ip4|ip6/<ip>/tcp/<port>``
    with an optional ``/p2p/<peer id>`` (that must be ``peer_id`` when given).

    Anything else (DNS, websockets, QUIC, ``/p2p-circuit``, zones) is not something to dial back.
    """
    parts = text.split("/")
    if len(parts) == 7 and parts[5] == "p2p":
        if peer_id is not None and parts[6] != peer_id:
            return None
        parts = parts[:5]
    if len(parts) != 5 or parts[0] or parts[1] not in ("ip4", "ip6") or parts[3] != "tcp":
        return None
    ip = parse_ip(parts[2])
    if ip is None or f"ip{ip.version}" != parts[1] or not parts[4].isdigit():
        return None
    port = int(parts[4])
    return TcpAddress(ip, port) if 0 < port < 65536 else None


def dialable_tcp_addrs(texts: Iterable[str]) -> list[str]:
    """This node's addresses worth offering for a dial-back: plain TCP ones, without the
    ``/p2p/<id>`` suffix (the request names the peer id), no relay circuits, no duplicates."""
    found = (tcp_address(text) for text in texts)
    return list(dict.fromkeys(a.multiaddr for a in found if a is not None))[:_MAX_ADDRS_SENT]


def frame(payload: bytes) -> bytes:
    """``payload`` behind its unsigned-varint length, as AutoNAT frames messages."""
    prefix = bytearray()
    length = len(payload)
    while True:
        byte = length & 0x7F
        length >>= 7
        if length:
            prefix.append(byte | 0x80)
        else:
            prefix.append(byte)
            return bytes(prefix) + payload


def frame_length(buffer: bytes | bytearray, limit: int) -> tuple[int, int] | None:
    """``(header length, payload length)`` of the frame at the start of ``buffer``, or None
    while the length prefix is incomplete.

    Raises:
        RemoteProtocolError: the prefix is malformed or announces more than ``limit`` bytes.
    """
    value = 0
    for i, byte in enumerate(buffer[:10]):
        value |= (byte & 0x7F) << (7 * i)
        if value > limit:
            raise RemoteProtocolError(f"an AutoNAT message over {limit} bytes")
        if not byte & 0x80:
            return i + 1, value
    if len(buffer) >= 10:
        raise RemoteProtocolError("a malformed AutoNAT length prefix")
    return None


async def read_frame(stream: Stream, limit: int) -> bytes:
    """One length-prefixed message from ``stream`` (reading nothing past it).

    Raises:
        RemoteProtocolError: malformed, over ``limit``, or cut short by end of stream.
        NetError: the stream timed out or broke.
    """
    buffer = bytearray()
    while True:
        found = frame_length(buffer, limit)
        if found is not None and len(buffer) >= sum(found):
            header, length = found
            return bytes(buffer[header:header + length])
        wanted = 1 if found is None else sum(found) - len(buffer)
        data = await stream.receive_some(wanted)
        if not data:
            raise RemoteProtocolError("the AutoNAT stream ended before a whole message")
        buffer += data


def encode_dial_request(peer_id: str, addrs: Iterable[str]) -> bytes:
    """A framed DIAL request asking to be dialled at ``addrs`` as ``peer_id``."""
    message = Message()
    message.type = Message.DIAL
    message.dial.peer.id = ID.from_base58(peer_id).to_bytes()
    message.dial.peer.addrs.extend(Multiaddr(a).to_bytes() for a in addrs)
    return frame(message.SerializeToString())


def decode_dial_request(payload: bytes, asker: str) -> list[str]:
    """The addresses (multiaddr text) a DIAL request from ``asker`` offers; unreadable
    addresses are skipped, as other implementations do.

    Raises:
        RemoteProtocolError: not a DIAL request, or one asking to dial another peer.
    """
    message = Message()
    try:
        message.ParseFromString(payload)
    except Exception:  # protobuf's DecodeError, or its C implementation's variants
        raise RemoteProtocolError("not an AutoNAT message") from None
    if not message.HasField("type") or message.type != Message.DIAL \
            or not message.HasField("dial"):
        raise RemoteProtocolError("an AutoNAT message that is not a DIAL request")
    if not message.dial.HasField("peer"):
        raise RemoteProtocolError("a DIAL request without peer information")
    peer = message.dial.peer
    if peer.HasField("id") and peer.id != ID.from_base58(asker).to_bytes():
        raise RemoteProtocolError("a DIAL request for another peer than the asker")
    addrs = []
    for raw in list(peer.addrs)[:_MAX_ADDRS_READ]:
        try:
            addrs.append(str(Multiaddr(raw)))
        except Exception:  # multiaddr raises several unrelated types for bad bytes
            continue
    return addrs


def encode_dial_response(status: int, text: str = "", addr: str | None = None) -> bytes:
    """A framed DIAL_RESPONSE."""
    message = Message()
    message.type = Message.DIAL_RESPONSE
    message.dialResponse.status = status  # type: ignore[assignment]  # the enum's NewType
    if text:
        message.dialResponse.statusText = text
    if addr is not None:
        message.dialResponse.addr = Multiaddr(addr).to_bytes()
    return frame(message.SerializeToString())


@dataclass(frozen=True, slots=True)
class DialResponse:
    """A decoded DIAL_RESPONSE."""

    status: int
    status_name: str
    text: str
    addr: str | None


def decode_dial_response(payload: bytes) -> DialResponse:
    """Raises: RemoteProtocolError: not a DIAL_RESPONSE."""
    message = Message()
    try:
        message.ParseFromString(payload)
    except Exception:  # protobuf's DecodeError, or its C implementation's variants
        raise RemoteProtocolError("not an AutoNAT message") from None
    if not message.HasField("type") or message.type != Message.DIAL_RESPONSE \
            or not message.HasField("dialResponse"):
        raise RemoteProtocolError("an AutoNAT answer that is not a DIAL_RESPONSE")
    response = message.dialResponse
    # proto2 keeps an unknown enum value out of the field, which then reads as its default, OK.
    if not response.HasField("status"):
        raise RemoteProtocolError("a DIAL_RESPONSE without a status this node knows")
    try:
        name = Message.ResponseStatus.Name(response.status)
    except ValueError:
        name = f"status {int(response.status)}"
    addr = None
    if response.HasField("addr"):
        try:
            addr = str(Multiaddr(response.addr))
        except Exception:  # multiaddr raises several unrelated types for bad bytes
            addr = None
    return DialResponse(int(response.status), name, printable(response.statusText, 512), addr)


def printable(text: str, limit: int = _MAX_TEXT) -> str:
    """A peer's text made safe to show: control characters replaced, length capped."""
    return "".join(ch if ch.isprintable() else "?" for ch in text[:limit])


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


def _scope_note(ip: IPAddress) -> str:
    if ip.is_loopback:
        return " (on this machine)"
    if not ip.is_global:
        return " (not a global internet address)"
    return ""


def _peers(n: int) -> str:
    return f"{n} peer" if n == 1 else f"{n} peers"


def _first_host_port(texts: Iterable[str]) -> str:
    for text in texts:
        addr = tcp_address(text)
        if addr is not None:
            return addr.host_port
    return "any announced address"


def _unseen_ips(failures: Sequence[ProbeResult]) -> list[str]:
    """IPs peers see this node at that are none of the IPs it offered (the NAT's, usually)."""
    offered = {str(a.ip) for r in failures for a in map(tcp_address, r.asked) if a is not None}
    seen = [r.observed_ip for r in reversed(failures) if r.observed_ip]
    return [ip for ip in dict.fromkeys(seen) if ip not in offered]


def judge(results: Iterable[ProbeResult], now: float, *,
          memory_s: float) -> tuple[ReachabilityVerdict, str]:
    """The verdict and its reason from probe results (oldest first); see the module docstring."""
    recent = [r for r in results if now - r.at <= memory_s]
    conclusive = [r for r in recent if r.outcome != "inconclusive"]
    if not conclusive:
        if recent:
            return "unknown", f"no peer could answer yet (last: {recent[-1].detail})"
        return "unknown", "no peer has answered yet"
    successes = [i for i, r in enumerate(conclusive) if r.outcome == "reachable"]
    since = conclusive[successes[-1] + 1:] if successes else conclusive
    failing = {r.peer_id for r in since}
    answering = {r.peer_id for r in conclusive}
    nat = _unseen_ips(since)
    hint = f"; peers see this node at {', '.join(nat)}" if nat else ""
    if len(since) >= 2 and (len(failing) >= 2 or failing == answering):
        asked = _first_host_port(since[-1].asked)
        if len(failing) >= 2:
            return "private", f"{_peers(len(failing))} could not dial back {asked}{hint}"
        return "private", (f"the only peer that answered could not dial back {asked}, "
                           f"{len(since)} times{hint}")
    if nat and not successes:
        # Peers see this node at an IP it does not listen on: it is behind a NAT, and asking
        # again would give the same answer (a forwarded port is what --reachability is for).
        asked = _first_host_port(since[-1].asked)
        return "private", f"{_peers(len(failing))} could not dial back {asked}{hint}"
    if successes:
        last = conclusive[successes[-1]]
        latest: dict[str, ProbeResult] = {r.peer_id: r for r in conclusive}
        reached = sum(1 for r in latest.values() if r.outcome == "reachable")
        addr = tcp_address(last.address or "")
        where = f" {addr.host_port}{_scope_note(addr.ip)}" if addr else ""
        who = _peers(reached) if len(latest) == 1 else f"{reached} of {len(latest)} peers"
        after = f"; {len(since)} dial-back{'s' if len(since) > 1 else ''} failed since" \
            if since else ""
        return "public", f"{who} dialled back{where}{after}"
    asked = _first_host_port(since[-1].asked)
    return "unknown", (f"1 peer could not dial back {asked}{hint}; "
                       "waiting for a second answer")


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


# --- client ------------------------------------------------------------------------------------


def _result_of(peer_id: str, response: DialResponse, asked: tuple[str, ...],
               at: float) -> ProbeResult:
    detail = printable(f"{response.status_name}: {response.text}" if response.text
                       else response.status_name)
    if response.status == Message.OK:
        addr = tcp_address(response.addr or "")
        return ProbeResult(peer_id, "reachable", at, detail, address=response.addr,
                           observed_ip=str(addr.ip) if addr else None, asked=asked)
    if response.status == Message.E_DIAL_ERROR:
        seen = _SEEN_FROM.search(response.text)
        ip = parse_ip(seen.group(1)) if seen else None
        return ProbeResult(peer_id, "unreachable", at, detail,
                           observed_ip=str(ip) if ip else None, asked=asked)
    return ProbeResult(peer_id, "inconclusive", at, detail, asked=asked)


async def request_dial_back(host: Host, peer_id: str, addrs: Sequence[str], *,
                            timeout_s: float, max_message_bytes: int = 4096,
                            clock: Callable[[], float] = time.time) -> ProbeResult:
    """Ask a connected peer to dial this node back at ``addrs``; never raises for the peer's
    faults (a malformed answer costs the peer :data:`PROTOCOL_VIOLATION` points)."""
    asked = tuple(addrs)
    if not asked:
        return ProbeResult(peer_id, "inconclusive", clock(), "no TCP address to offer")
    stream: Stream | None = None
    try:
        with trio.fail_after(timeout_s):
            stream = await host.open_stream(peer_id, AUTONAT_PROTOCOL)
            await stream.send_all(encode_dial_request(host.peer_id, asked))
            response = decode_dial_response(await read_frame(stream, max_message_bytes))
            await stream.aclose()
    except RemoteProtocolError as exc:
        host.penalize(peer_id, PROTOCOL_VIOLATION, str(exc))
        return ProbeResult(peer_id, "inconclusive", clock(), f"a malformed answer: {exc}",
                           asked=asked)
    except NetError as exc:
        return ProbeResult(peer_id, "inconclusive", clock(), str(exc), asked=asked)
    except trio.TooSlowError:
        return ProbeResult(peer_id, "inconclusive", clock(),
                           f"no answer within {timeout_s:g} s", asked=asked)
    finally:
        if stream is not None:
            await stream.reset()  # a no-op once closed
    return _result_of(peer_id, response, asked, clock())


# --- the verdict service -----------------------------------------------------------------------


class Reachability:
    """Learns whether peers can dial this node, and keeps the verdict.

    Run it with ``await nursery.start(reachability.run)``: it serves dial-backs to others and,
    in mode "auto", asks a few connected peers at a time, rotating and backing off.

    Args:
        host: the running host.
        mode: "auto" measures; "public" or "private" forces the verdict and asks nobody.
        clock: seconds (wall-clock by default): time stamps in reports, the age of answers, the
            server's rate windows.
        settings: how often and how widely to ask.
        policy: the server's limits.
        addresses: the addresses to offer for dialling (default: the host's listen addresses).
        on_change: called with the new report whenever the verdict changes (from the task
            running :meth:`run` or :meth:`probe`; it must not block).
        serve: answer other peers' requests (``run`` registers the handler).

    Raises:
        InputError: ``mode`` is not one of auto, public, private.
    """

    def __init__(self, host: Host, mode: str = "auto", *,
                 clock: Callable[[], float] = time.time,
                 settings: ReachabilitySettings | None = None,
                 policy: DialBackPolicy | None = None,
                 addresses: Callable[[], Iterable[str]] | None = None,
                 on_change: Callable[[ReachabilityReport], None] | None = None,
                 serve: bool = True) -> None:
        if mode not in get_args(ReachabilityMode):
            raise InputError(f"Reachability must be auto, public or private, not {mode!r}.")
        self._host = host
        self._mode: ReachabilityMode = mode  # type: ignore[assignment]  # checked just above
        self._clock = clock
        self._settings = settings or ReachabilitySettings()
        self._policy = policy or DialBackPolicy()
        self._addresses = addresses
        self._on_change = on_change
        self.server: DialBackServer | None = (
            DialBackServer(host, self._policy, clock=clock) if serve else None)
        """The dial-back server (None when not serving)."""
        self._results: deque[ProbeResult] = deque(maxlen=_MAX_RESULTS)
        self._summary = ProbeSummary()
        self._verdict = self.report().verdict
        self._next_ask: dict[str, float] = {}
        self._backoff: dict[str, float] = {}

    @property
    def mode(self) -> ReachabilityMode:
        return self._mode

    def report(self) -> ReachabilityReport:
        """The verdict now, its reason, and what the probes found."""
        if self._mode != "auto":
            return ReachabilityReport(self._mode, True, FORCED_REASON, self._summary)
        now = self._clock()
        verdict, reason = judge(self._results, now, memory_s=self._settings.memory_s)
        recent = [r for r in reversed(self._results) if now - r.at <= self._settings.memory_s]
        if not recent and not self._host.connected_peers():
            reason = "no peer connected to ask yet"
        observed = tuple(dict.fromkeys(r.observed_ip for r in recent if r.observed_ip))
        reached = (tcp_address(r.address or "") for r in recent if r.outcome == "reachable")
        reachable_at = tuple(dict.fromkeys(a.host_port for a in reached if a is not None))
        return ReachabilityReport(verdict, False, reason, self._summary, observed, reachable_at)

    def own_addresses(self) -> list[str]:
        """The addresses offered to peers for dialling back."""
        texts = self._addresses() if self._addresses is not None else self._host.listen_addrs()
        return dialable_tcp_addrs(texts)

    async def probe(self, peer_id: str) -> ProbeResult:
        """Ask one connected peer to dial this node back now, and count its answer."""
        result = await request_dial_back(
            self._host, peer_id, self.own_addresses(), timeout_s=self._settings.probe_timeout_s,
            max_message_bytes=self._policy.max_message_bytes, clock=self._clock)
        self._record(result)
        return result

    def _record(self, result: ProbeResult) -> None:
        log.info("reachability probe via %s: %s (%s)", result.peer_id, result.outcome,
                 result.detail)
        self._results.append(result)
        s = self._summary
        self._summary = ProbeSummary(
            s.successes + (result.outcome == "reachable"),
            s.failures + (result.outcome == "unreachable"),
            s.inconclusive + (result.outcome == "inconclusive"), result.at)
        report = self.report()
        if report.verdict != self._verdict:
            log.info("reachability: %s (%s)", report.verdict, report.reason)
            self._verdict = report.verdict
            if self._on_change is not None:
                self._on_change(report)

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve dial-backs and, in mode "auto", ask peers, until cancelled."""
        if self.server is not None:
            self.server.register()
        if self._mode != "auto":
            task_status.started()
            await trio.sleep_forever()
        with self._host.watch_connections() as events:
            task_status.started()
            while True:
                await self._round()
                await self._wait(events, self._delay())

    async def _round(self) -> None:
        """Ask the peers that are due, longest-unasked first, a few at once."""
        now = trio.current_time()
        connected = self._host.connected_peers()
        for gone in set(self._next_ask) - set(connected):
            del self._next_ask[gone]
            self._backoff.pop(gone, None)
        due = sorted((p for p in connected if self._next_ask.get(p, -math.inf) <= now),
                     key=lambda p: self._next_ask.get(p, -math.inf))
        chosen = due[:self._settings.peers_per_round]
        async with trio.open_nursery() as nursery:
            for peer_id in chosen:
                nursery.start_soon(self._probe_and_schedule, peer_id)

    async def _probe_and_schedule(self, peer_id: str) -> None:
        result = await self.probe(peer_id)
        retry = self._settings.retry_s
        if result.outcome == "inconclusive":
            wait = self._backoff.get(peer_id, retry / 2) * 2
            self._backoff[peer_id] = min(wait, self._settings.max_backoff_s)
        else:
            self._backoff.pop(peer_id, None)
        self._next_ask[peer_id] = trio.current_time() + self._backoff.get(peer_id, retry)

    def _delay(self) -> float:
        """Seconds until the next round: long once settled, else until a peer is due."""
        if self.report().verdict != "unknown":
            return self._settings.settled_s
        connected = self._host.connected_peers()
        if not connected:
            return self._settings.settled_s  # a connection wakes the loop
        due = min(self._next_ask.get(p, -math.inf) for p in connected)
        return max(0.0, min(due - trio.current_time(), self._settings.settled_s))

    async def _wait(self, events: trio.MemoryReceiveChannel[PeerEvent], delay: float) -> None:
        """Sleep ``delay``, or less if a new peer connects while the verdict is unknown."""
        with trio.move_on_after(delay):
            async for event in events:
                if isinstance(event, PeerConnected) and self.report().verdict == "unknown" \
                        and event.peer_id not in self._next_ask:
                    return
