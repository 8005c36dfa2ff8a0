"""AutoNAT v1's wire (``/libp2p/autonat/1.0.0``) and the TCP addresses it carries: pure parts.

Messages are libp2p's standard ``autonat.pb.Message`` behind an unsigned-varint length, so other
libp2p stacks can ask and answer. Used by the dial-back server (:mod:`.dial_back`) and the
client that turns answers into a verdict (:mod:`.reachability`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from libp2p.host.autonat.pb.autonat_pb2 import Message
from libp2p.peer.id import ID
from multiaddr import Multiaddr

from meshcrew.errors import ConnectionLost, RemoteProtocolError
from meshcrew.net.stream import Stream

AUTONAT_PROTOCOL = "/libp2p/autonat/1.0.0"
"""AutoNAT v1, as every libp2p implementation names it."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_MAX_ADDRS_READ = 64
"""Most addresses of one request even looked at (the message size limit bounds it too)."""
_MAX_ADDRS_SENT = 16
_MAX_TEXT = 160
"""Longest status text kept from a peer (it is shown to a person)."""


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
        RemoteProtocolError: malformed, over ``limit``, or cut short inside the message.
        NetError: the stream timed out or broke, or ended before the message began (the peer
            went away: its node stopped, or its probe was given up; libp2p reads a closed
            connection as the end of each of its streams).
    """
    buffer = bytearray()
    while True:
        found = frame_length(buffer, limit)
        if found is not None and len(buffer) >= sum(found):
            header, length = found
            return bytes(buffer[header:header + length])
        wanted = 1 if found is None else sum(found) - len(buffer)
        data = await stream.receive_some(wanted)
        if not data and not buffer:
            raise ConnectionLost(f"{stream.peer_id} ended the AutoNAT stream without a message")
        if not data:
            raise RemoteProtocolError("the AutoNAT stream ended inside a message")
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
