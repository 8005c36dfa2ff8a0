"""Every py-libp2p 0.8.1 internal that reach (relay, hole punching) relies on, in one place.

py-libp2p's relay and hole-punching pieces are not wired into ``new_host``, so meshcrew drives
them through parts of libp2p that are not its documented API. Each is named here with why it is
needed, and ``tests/test_net_internals.py`` pins each one, so an upgrade that moves one fails
loudly instead of quietly breaking reach.

- ``relay.circuit_v2.pb.circuit_pb2`` (``HopMessage``, ``StopMessage``, ``Limit``,
  ``Reservation``, ``PeerId``) and ``relay.circuit_v2.utils`` (``read_delimited_msg``,
  ``write_delimited_msg``): the circuit relay v2 wire messages, so meshcrew speaks the standard
  protocol (any libp2p relay or client interoperates) while choosing its own limits.
- ``relay.circuit_v2.protocol_buffer.StatusCode``: the spec's status numbers.
- ``network.connection.raw_connection.RawConnection`` with ``ConnectionType.RELAYED``: wraps a
  circuit (a hop or stop stream) as a raw connection for libp2p's upgrader.
- ``host.upgrade_outbound_connection`` / ``host.upgrade_inbound_connection``: Noise and yamux
  over the circuit, end to end, and registration with the swarm, so ``new_stream`` uses it.
- ``SwarmConn.set_transport_info`` / ``get_connection_type`` / ``_actual_transport_addresses``:
  the swarm cannot tell a relayed connection from a direct one unless told; meshcrew tags
  circuits and reads the tag back (``peers`` says direct / relayed / hole-punched).
- ``stream.muxed_conn.peer_id`` and the muxed connection's ``get_transport_addresses``: who is at
  the other end of a raw stream, and whether it came over a relay (a relay must not hop twice).
- ``Swarm.unblock_peer``: libp2p refuses for 60 s a peer whose dial failed; the reservation loop
  redials a relay that came back at once.
- ``BasicHost.get_addrs`` replaced on the instance: it strips everything from the first ``/p2p/``
  of each address and appends the host's own id, which turns a circuit address
  (``.../p2p/<relay>/p2p-circuit/p2p/<self>``) into a wrong direct one; identify, the reservation
  answer and invite codes all read ``get_addrs``, so circuits are appended after that step.
- ``peer.envelope`` (``make_unsigned``, ``Envelope``): the relay's signed reservation voucher.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.message import DecodeError
from libp2p.connection_types import ConnectionType
from libp2p.custom_types import TProtocol
from libp2p.exceptions import ParseError
from libp2p.io.exceptions import MessageTooLarge
from libp2p.network.connection.raw_connection import RawConnection
from libp2p.network.stream.exceptions import StreamEOF
from libp2p.peer.envelope import Envelope, make_unsigned
from libp2p.peer.id import ID
from libp2p.relay.circuit_v2.pb.circuit_pb2 import (
    HopMessage,
    Limit,
    PeerId,
    Reservation,
    StopMessage,
)
from libp2p.relay.circuit_v2.protocol_buffer import StatusCode, to_proto_status
from libp2p.relay.circuit_v2.utils import read_delimited_msg, write_delimited_msg
from libp2p.stream_muxer.exceptions import MuxedStreamEOF
from multiaddr import Multiaddr

Status = StatusCode
HOP_RESERVE = HopMessage.RESERVE
HOP_CONNECT = HopMessage.CONNECT
STOP_CONNECT = StopMessage.CONNECT

MALFORMED: tuple[type[BaseException], ...] = (ParseError, MessageTooLarge, DecodeError,
                                              ValueError)
"""What reading a relay message raises when the peer sent garbage (a message that is not one,
or one over libp2p's 64 KiB cap for relay messages)."""

_VOUCHER_DOMAIN = "libp2p-relay-rsvp"
_VOUCHER_TYPE = bytes([0x03, 0x02])


def set_raw_handler(lp_host: Any, protocol: str, handler: Any) -> None:
    """Serve ``protocol`` with a handler that takes libp2p's own stream."""
    lp_host.set_stream_handler(TProtocol(protocol), handler)


async def open_stream(lp_host: Any, peer_id: str, protocol: str) -> Any:
    """A raw libp2p stream of ``protocol`` to a connected peer."""
    return await lp_host.new_stream(ID.from_base58(peer_id), [TProtocol(protocol)])


def stream_peer(raw: Any) -> str:
    """The peer id at the other end of a raw stream."""
    return str(raw.muxed_conn.peer_id)


def is_relayed(raw: Any) -> bool:
    """Whether a raw stream runs over a relayed connection."""
    conn = getattr(raw, "muxed_conn", None)
    get = getattr(conn, "get_transport_addresses", None)
    try:
        addrs = get() if callable(get) else []
    except Exception:
        return False
    return any("/p2p-circuit" in str(a) for a in addrs or [])


async def read_some(raw: Any, n: int) -> bytes:
    """Up to ``n`` bytes, or b"" at the end of the stream."""
    try:
        data: bytes = await raw.read(n)
    except (StreamEOF, MuxedStreamEOF):
        return b""
    return data


async def write(raw: Any, data: bytes) -> None:
    await raw.write(data)


async def reset(raw: Any) -> None:
    """Reset a raw stream, ignoring a stream already gone."""
    try:
        await raw.reset()
    except Exception:  # already closed or reset
        return


async def close(raw: Any) -> None:
    """Close a raw stream, resetting it if closing fails."""
    try:
        await raw.close()
    except Exception:
        await reset(raw)


# --- hop messages -------------------------------------------------------------------------------


async def read_hop(raw: Any) -> Any:
    return await read_delimited_msg(raw, HopMessage)


async def read_stop(raw: Any) -> Any:
    return await read_delimited_msg(raw, StopMessage)


async def write_hop_reserve(raw: Any) -> None:
    await write_delimited_msg(raw, HopMessage(type=HopMessage.RESERVE))


async def write_hop_connect(raw: Any, target: str) -> None:
    await write_delimited_msg(raw, HopMessage(
        type=HopMessage.CONNECT, peer=PeerId(id=ID.from_base58(target).to_bytes())))


async def write_hop_status(raw: Any, status: StatusCode) -> None:
    await write_delimited_msg(raw, HopMessage(type=HopMessage.STATUS,
                                              status=to_proto_status(status)))


async def write_hop_ok(raw: Any, duration_s: int, data_bytes: int) -> bool:
    """Answer a CONNECT with OK; False (the stream reset) if the asker is gone."""
    return await _answered(raw, HopMessage(
        type=HopMessage.STATUS, status=to_proto_status(StatusCode.OK),
        limit=Limit(duration=duration_s, data=data_bytes)))


async def write_stop_status(raw: Any, status: StatusCode) -> None:
    try:
        await write_delimited_msg(raw, StopMessage(type=StopMessage.STATUS,
                                                   status=to_proto_status(status)))
    except Exception:  # the relay is gone
        return


async def write_reservation(raw: Any, lp_host: Any, peer_id: str, expire_unix: int,
                            duration_s: int, data_bytes: int) -> bool:
    """Answer a RESERVE with OK, the relay's addresses, a signed voucher and the limits; False
    (the stream reset) if the asker is gone."""
    relay = lp_host.get_id()
    addrs = [a.to_bytes() for a in lp_host.get_addrs() if "/p2p-circuit" not in str(a)]
    return await _answered(raw, HopMessage(
        type=HopMessage.STATUS, status=to_proto_status(StatusCode.OK),
        reservation=Reservation(expire=expire_unix, addrs=addrs,
                                voucher=_voucher(lp_host, relay, peer_id, expire_unix)),
        limit=Limit(duration=duration_s, data=data_bytes)))


async def _answered(raw: Any, message: Any) -> bool:
    """Write a relay's answer. A handler's error reaches libp2p, which then serves no further
    stream of that connection (or, for an error it does not expect, stops the host): a write
    to an asker that reset its stream (it gave up while the relay waited for the target) must
    not raise."""
    try:
        await write_delimited_msg(raw, message)
    except Exception:
        await reset(raw)
        return False
    return True


def _voucher(lp_host: Any, relay: ID, peer_id: str, expire_unix: int) -> bytes:
    from libp2p.relay.circuit_v2.pb.circuit_pb2 import Voucher

    payload = Voucher(relay=relay.to_bytes(), peer=ID.from_base58(peer_id).to_bytes(),
                      expiration=expire_unix).SerializeToString()
    key = lp_host.get_private_key()
    signature = key.sign(make_unsigned(_VOUCHER_DOMAIN, _VOUCHER_TYPE, payload))
    return bytes(Envelope(public_key=key.get_public_key(), payload_type=_VOUCHER_TYPE,
                          raw_payload=payload, signature=signature).marshal_envelope())


def status_of(msg: Any) -> StatusCode:
    """The status of a hop or stop message (UNUSED if it has none or an unknown one)."""
    if not msg.HasField("status"):
        return StatusCode.UNUSED
    try:
        return StatusCode(msg.status)
    except ValueError:
        return StatusCode.UNUSED


def peer_of_message(msg: Any) -> str | None:
    """The peer id a hop CONNECT names (the target) or a stop CONNECT names (the source)."""
    if not msg.HasField("peer") or not msg.peer.id:
        return None
    try:
        return ID(msg.peer.id).to_base58()
    except Exception:
        return None


def reservation_terms(msg: Any) -> tuple[int, int | None, int | None]:
    """``(expire unix s, limit duration, limit data)`` of a reservation answer.

    The duration is as the relay sent it: seconds from py-libp2p and go relays, milliseconds
    from js-libp2p's (LIBP2P.md); meshcrew reports it and acts on neither.
    """
    expire = int(msg.reservation.expire) if msg.HasField("reservation") else 0
    if not msg.HasField("limit"):
        return expire, None, None
    limit = msg.limit
    return (expire, int(limit.duration) if limit.HasField("duration") else None,
            int(limit.data) if limit.HasField("data") else None)


async def open_stop(lp_host: Any, target: str, source: str, duration_s: int,
                    data_bytes: int) -> Any:
    """Open a stop stream to ``target`` announcing a circuit from ``source``; the stream once
    the target said OK.

    Raises:
        ConnectionError: the target refused.
    """
    dst = await lp_host.new_stream(ID.from_base58(target), [TProtocol(
        "/libp2p/circuit/relay/0.2.0/stop")])
    try:
        await write_delimited_msg(dst, StopMessage(
            type=StopMessage.CONNECT, peer=PeerId(id=ID.from_base58(source).to_bytes()),
            limit=Limit(duration=duration_s, data=data_bytes)))
        resp = await read_delimited_msg(dst, StopMessage)
    except BaseException:
        await reset(dst)
        raise
    if status_of(resp) != StatusCode.OK:
        await reset(dst)
        raise ConnectionError(f"the target refused the circuit ({status_of(resp).name})")
    return dst


# --- circuits as connections --------------------------------------------------------------------


async def upgrade_outbound(lp_host: Any, raw: Any, target: str, addr: Multiaddr) -> None:
    """Secure and multiplex a circuit we dialled; register it, tagged as relayed."""
    conn = RawConnection(stream=raw, initiator=True, connection_type=ConnectionType.RELAYED,
                         addresses=[addr])
    swarm_conn = await lp_host.upgrade_outbound_connection(conn, ID.from_base58(target))
    swarm_conn.set_transport_info([addr], ConnectionType.RELAYED)


async def upgrade_inbound(lp_host: Any, raw: Any, source: str, addr: Multiaddr) -> None:
    """Secure and multiplex a circuit a relay brought us; register it, tagged as relayed."""
    conn = RawConnection(stream=raw, initiator=False, connection_type=ConnectionType.RELAYED,
                         addresses=[addr])
    muxed = await lp_host.upgrade_inbound_connection(conn, addr)
    for swarm_conn in _connections(lp_host, ID.from_base58(source)):
        if getattr(swarm_conn, "muxed_conn", None) is muxed:
            swarm_conn.set_transport_info([addr], ConnectionType.RELAYED)


def _connections(lp_host: Any, peer: ID) -> list[Any]:
    conns = lp_host.get_network().connections.get(peer, [])
    return list(conns) if isinstance(conns, list | tuple) else [conns]


def connection_kinds(lp_host: Any, peer_id: str) -> list[tuple[bool, str | None]]:
    """Per open connection to a peer: ``(relayed, relay id or None)``."""
    try:
        peer = ID.from_base58(peer_id)
    except Exception:
        return []
    kinds = []
    for conn in _connections(lp_host, peer):
        actual = getattr(conn, "_actual_transport_addresses", None) or []
        circuit = next((str(a) for a in actual if "/p2p-circuit" in str(a)), None)
        relayed = circuit is not None or conn.get_connection_type() == ConnectionType.RELAYED
        relay = None
        if circuit is not None:
            head = circuit.split("/p2p-circuit")[0]
            relay = head.rpartition("/p2p/")[2] or None
        kinds.append((relayed, relay))
    return kinds


def unblock(lp_host: Any, peer_id: str) -> None:
    """Lift libp2p's one-minute refusal of a peer whose dial failed."""
    lp_host.get_network().unblock_peer(ID.from_base58(peer_id))


def peer_protocols(lp_host: Any, peer_id: str) -> list[str]:
    """The protocols a peer said it speaks (identify), or []."""
    try:
        return [str(p) for p in lp_host.get_peerstore().get_protocols(ID.from_base58(peer_id))]
    except Exception:
        return []


def announce_also(lp_host: Any, extra: Any) -> None:
    """Make ``lp_host.get_addrs()`` (what identify announces) end with ``extra()``, whole."""
    own = lp_host.get_addrs

    def get_addrs() -> list[Multiaddr]:
        addrs: list[Multiaddr] = list(own())
        return [*addrs, *extra()]

    lp_host.get_addrs = get_addrs
