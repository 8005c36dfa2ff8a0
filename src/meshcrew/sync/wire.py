"""The bytes of the catch-up sync protocol: frames, messages, frontiers and their limits.

Every frame is an unsigned LEB128 varint length followed by that many bytes of msgpack: an array
whose first element names the message. ``docs/sync.md`` gives the layout byte by byte; this module
is its executable form. Decoding never trusts the peer: every shape, length and count is checked,
and a violation raises :class:`~meshcrew.errors.RemoteProtocolError`.

Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import msgpack

from meshcrew.errors import LocalProtocolError, RemoteProtocolError
from meshcrew.records import (
    FIELD_COUNT,
    ID_BYTES,
    KEY_BYTES,
    MAX_RECORD_BYTES,
    MAX_SEQ,
    NEW_SPACE,
    Head,
    record_id,
)

SYNC_VERSION = 2
"""The message-set version this code speaks by default, carried in ``hello``; the stream
protocol id names it too. Version 2 reconciles frontiers (:mod:`meshcrew.sync.reconcile`);
version 1 sends them whole."""

SYNC_VERSIONS = (2, 1)
"""Every version this code speaks, the preferred first."""

MAX_FRAME_BYTES = 1 << 20
"""Largest frame payload accepted; the length prefix is checked before any payload is buffered."""

MAX_BATCH_RECORDS = 256
"""Most records in one ``records`` message."""

MAX_BATCH_BYTES = 512 * 1024
"""A sender stops filling a batch before it passes this many bytes of records (one record always
fits: a record is at most ``MAX_RECORD_BYTES``)."""

MAX_RECORDS_PER_SPACE = 20_000
"""Most records one side sends for one space in one session; the rest waits for the next session
(the ``done`` message then says ``more``)."""

MAX_OFFERS = 1024
"""Most spaces one ``hello`` may offer."""

MAX_FRONTIER_ENTRIES = 8192
"""Most authors in one frontier message."""

TOKEN_BYTES = 16
DIGEST_BYTES = 16
OFFER_BYTES = TOKEN_BYTES + DIGEST_BYTES
ENTRY_BYTES = KEY_BYTES + 8 + ID_BYTES
"""A frontier entry: author key, seq as a big-endian u64, head record id."""

_MAX_VARINT_BYTES = 4  # 2**28 > MAX_FRAME_BYTES
_TOKEN_PERSON = b"meshcrew.sync.tk"
_DIGEST_PERSON = b"meshcrew.sync.fd"


class MsgType(IntEnum):
    """The first element of every message array."""

    HELLO = 0
    FRONTIER = 1
    RECORDS = 2
    DONE = 3
    RECONCILE = 4


@dataclass(frozen=True, slots=True)
class Offer:
    """One space offered in ``hello``: its pair token and the digest of the sender's frontier."""

    token: bytes
    digest: bytes


@dataclass(frozen=True, slots=True)
class Hello:
    """The first message each side sends: version and offered spaces."""

    version: int
    offers: tuple[Offer, ...]


@dataclass(frozen=True, slots=True)
class FrontierMsg:
    """The sender's full frontier of one space, encoded by :func:`encode_frontier`."""

    token: bytes
    blob: bytes


@dataclass(frozen=True, slots=True)
class RecordsMsg:
    """A batch of encoded records of one space, in chain order per author."""

    token: bytes
    raws: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class DoneMsg:
    """The sender has sent everything it will send for this space in this session."""

    token: bytes
    more: bool


@dataclass(frozen=True, slots=True)
class ReconcileMsg:
    """A step of the reconciliation of one space's frontiers (version 2 only); the payload's
    layout is :mod:`meshcrew.sync.reconcile`'s."""

    token: bytes
    payload: bytes


Message = Hello | FrontierMsg | RecordsMsg | DoneMsg | ReconcileMsg


def space_token(space_id: bytes, key_a: bytes, key_b: bytes) -> bytes:
    """The name of a space between two members: a hash keyed by both keys, order-free.

    A peer that does not know ``space_id`` learns nothing from it, and the same space has a
    different token with every peer, so tokens cannot be linked across pairs.
    """
    pair = min(key_a, key_b) + max(key_a, key_b)
    return hashlib.blake2b(space_id, key=pair, digest_size=TOKEN_BYTES,
                           person=_TOKEN_PERSON).digest()


def encode_frontier(frontier: Mapping[bytes, Head]) -> bytes:
    """The canonical bytes of a frontier: fixed-width entries sorted by author key.

    Raises:
        LocalProtocolError: if an author key or head id has the wrong length, or a seq is out of
            range (the local record source is broken).
    """
    parts = []
    for author in sorted(frontier):
        head = frontier[author]
        if len(author) != KEY_BYTES or len(head.id) != ID_BYTES or not 1 <= head.seq < MAX_SEQ:
            raise LocalProtocolError("the record source returned a malformed frontier entry")
        parts.append(author + head.seq.to_bytes(8, "big") + head.id)
    return b"".join(parts)


def frontier_digest(blob: bytes) -> bytes:
    """The digest of a canonically encoded frontier (two frontiers are equal iff digests are)."""
    return hashlib.blake2b(blob, digest_size=DIGEST_BYTES, person=_DIGEST_PERSON).digest()


def decode_frontier(blob: bytes) -> dict[bytes, Head]:
    """Parse a peer's frontier blob, insisting on the canonical form.

    Raises:
        RemoteProtocolError: on a bad length, unsorted or repeated authors, or a seq out of range.
    """
    if len(blob) % ENTRY_BYTES:
        raise RemoteProtocolError("A frontier is not a whole number of entries.")
    if len(blob) // ENTRY_BYTES > MAX_FRONTIER_ENTRIES:
        raise RemoteProtocolError(f"A frontier has more than {MAX_FRONTIER_ENTRIES} authors.")
    frontier: dict[bytes, Head] = {}
    previous = b""
    for at in range(0, len(blob), ENTRY_BYTES):
        author = blob[at : at + KEY_BYTES]
        seq = int.from_bytes(blob[at + KEY_BYTES : at + KEY_BYTES + 8], "big")
        head_id = blob[at + KEY_BYTES + 8 : at + ENTRY_BYTES]
        if author <= previous:
            raise RemoteProtocolError("A frontier's authors are not sorted and distinct.")
        if not 1 <= seq < MAX_SEQ:
            raise RemoteProtocolError("A frontier entry has a seq out of range.")
        frontier[author] = Head(seq, head_id)
        previous = author
    return frontier


def record_space(raw: bytes) -> bytes | None:
    """The space id an encoded record claims, read without verifying it; None if unreadable.

    The replica verifies every record it keeps; this cheap look lets the session refuse records
    smuggled into a space the peers did not agree to sync.
    """
    # Fast path for the canonical layout (the only one the replica accepts): a 9-array, a
    # positive fixint version, a fixstr kind, then the space as a 32-byte bin 8. A batch of
    # records is checked without unpacking each record; anything else takes the slow path.
    if len(raw) > 40 and raw[0] == 0x99 and raw[1] < 0x80 and raw[2] & 0xE0 == 0xA0:
        at = 3 + (raw[2] & 0x1F)
        if raw[at : at + 2] == b"\xc4\x20":
            space = raw[at + 2 : at + 2 + KEY_BYTES]
            if len(space) == KEY_BYTES:
                return record_id(raw) if space == NEW_SPACE else space
    try:
        fields = msgpack.unpackb(raw, use_list=True, raw=False)
    except (ValueError, TypeError, OverflowError, msgpack.UnpackException):
        return None
    if not isinstance(fields, list) or len(fields) != FIELD_COUNT:
        return None
    space = fields[2]
    if not isinstance(space, bytes) or len(space) != KEY_BYTES:
        return None
    return record_id(raw) if space == NEW_SPACE else space


# --- framing ---------------------------------------------------------------------------------


def varint(value: int) -> bytes:
    """An unsigned LEB128 varint (the frame length prefix, and counts inside messages)."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_message(msg: Message) -> bytes:
    """One framed message: varint length, then the msgpack array."""
    body: list[Any]
    match msg:
        case Hello(version, offers):
            body = [MsgType.HELLO, version, b"".join(o.token + o.digest for o in offers)]
        case FrontierMsg(token, blob):
            body = [MsgType.FRONTIER, token, blob]
        case RecordsMsg(token, raws):
            body = [MsgType.RECORDS, token, list(raws)]
        case DoneMsg(token, more):
            body = [MsgType.DONE, token, more]
        case ReconcileMsg(token, steps):
            body = [MsgType.RECONCILE, token, steps]
    payload: bytes = msgpack.packb(body, use_bin_type=True)
    if len(payload) > MAX_FRAME_BYTES:
        raise LocalProtocolError(f"a sync frame of {len(payload)} bytes is over the limit")
    return varint(len(payload)) + payload


def read_varint(data: bytes, at: int) -> tuple[int, int]:
    """A minimally encoded varint of at most 4 bytes at ``data[at:]``: its value and the offset
    after it.

    Raises:
        RemoteProtocolError: if it is cut short, too long or not minimal.
    """
    value = 0
    for index in range(_MAX_VARINT_BYTES):
        if at + index >= len(data):
            raise RemoteProtocolError("A sync message ends inside a number.")
        byte = data[at + index]
        value |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            if byte == 0 and index > 0:
                raise RemoteProtocolError("A number in a sync message is not minimally encoded.")
            return value, at + index + 1
    raise RemoteProtocolError("A number in a sync message is too long.")


class FrameBuffer:
    """Collects received bytes and cuts them into frame payloads.

    The length prefix is checked as soon as it is complete, so an oversized frame is refused
    before its payload is buffered.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._at = 0

    def __len__(self) -> int:
        return len(self._buf) - self._at

    def feed(self, data: bytes) -> None:
        """Add received bytes."""
        if self._at > 65536 and self._at * 2 > len(self._buf):
            del self._buf[: self._at]
            self._at = 0
        self._buf += data

    def next_frame(self) -> bytes | None:
        """The next complete frame payload, or None until more bytes arrive.

        Raises:
            RemoteProtocolError: if the length prefix is malformed, zero or over the limit.
        """
        length = 0
        shift = 0
        at = self._at
        for index in range(_MAX_VARINT_BYTES):
            if at + index >= len(self._buf):
                return None
            byte = self._buf[at + index]
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                if byte == 0 and index > 0:
                    raise RemoteProtocolError("A frame length is not minimally encoded.")
                start = at + index + 1
                break
        else:
            raise RemoteProtocolError("A frame length prefix is too long.")
        if length == 0 or length > MAX_FRAME_BYTES:
            raise RemoteProtocolError(
                f"A frame of {length} bytes is outside 1..{MAX_FRAME_BYTES} bytes.")
        if start + length > len(self._buf):
            return None
        self._at = start + length
        return bytes(self._buf[start : self._at])


# --- decoding --------------------------------------------------------------------------------


def _bin(value: object, size: int | None, what: str) -> bytes:
    if not isinstance(value, bytes) or (size is not None and len(value) != size):
        wanted = "bytes" if size is None else f"{size} bytes"
        raise RemoteProtocolError(f"The {what} of a sync message is not {wanted}.")
    return value


def _decode_hello(fields: list[Any]) -> Hello:
    if len(fields) != 3 or type(fields[1]) is not int:
        raise RemoteProtocolError("A hello message has the wrong shape.")
    blob = _bin(fields[2], None, "offer list")
    if len(blob) % OFFER_BYTES or len(blob) // OFFER_BYTES > MAX_OFFERS:
        raise RemoteProtocolError(f"A hello offers a bad number of spaces (max {MAX_OFFERS}).")
    offers = tuple(Offer(blob[at : at + TOKEN_BYTES], blob[at + TOKEN_BYTES : at + OFFER_BYTES])
                   for at in range(0, len(blob), OFFER_BYTES))
    if len({o.token for o in offers}) != len(offers):
        raise RemoteProtocolError("A hello offers the same space twice.")
    return Hello(fields[1], offers)


def _decode_records(fields: list[Any]) -> RecordsMsg:
    if len(fields) != 3 or not isinstance(fields[2], list):
        raise RemoteProtocolError("A records message has the wrong shape.")
    raws = fields[2]
    if not 1 <= len(raws) <= MAX_BATCH_RECORDS:
        raise RemoteProtocolError(f"A batch holds {len(raws)} records, not 1..{MAX_BATCH_RECORDS}.")
    for raw in raws:
        if not isinstance(raw, bytes) or len(raw) > MAX_RECORD_BYTES:
            raise RemoteProtocolError("A batch holds something that is not a record.")
    return RecordsMsg(_bin(fields[1], TOKEN_BYTES, "token"), tuple(raws))


def decode_message(payload: bytes) -> Message:
    """Parse one frame payload into a message, checking its shape.

    Raises:
        RemoteProtocolError: if the payload is not a well-formed message of this protocol.
    """
    try:
        fields = msgpack.unpackb(payload, use_list=True, raw=False, strict_map_key=True)
    except (ValueError, TypeError, OverflowError, msgpack.UnpackException):
        raise RemoteProtocolError("A sync frame is not valid msgpack.") from None
    if not isinstance(fields, list) or not fields or type(fields[0]) is not int:
        raise RemoteProtocolError("A sync frame is not a message array.")
    kind = fields[0]
    if kind == MsgType.HELLO:
        return _decode_hello(fields)
    if kind == MsgType.FRONTIER:
        if len(fields) != 3:
            raise RemoteProtocolError("A frontier message has the wrong shape.")
        return FrontierMsg(_bin(fields[1], TOKEN_BYTES, "token"), _bin(fields[2], None, "frontier"))
    if kind == MsgType.RECORDS:
        return _decode_records(fields)
    if kind == MsgType.DONE:
        if len(fields) != 3 or not isinstance(fields[2], bool):
            raise RemoteProtocolError("A done message has the wrong shape.")
        return DoneMsg(_bin(fields[1], TOKEN_BYTES, "token"), fields[2])
    if kind == MsgType.RECONCILE:
        if len(fields) != 3:
            raise RemoteProtocolError("A reconcile message has the wrong shape.")
        return ReconcileMsg(_bin(fields[1], TOKEN_BYTES, "token"),
                            _bin(fields[2], None, "reconciliation"))
    raise RemoteProtocolError(f"Unknown sync message type {kind}.")
