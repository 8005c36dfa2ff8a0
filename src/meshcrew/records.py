"""The signed record: envelope, canonical encoding, ids, limits and verification.

A record is a msgpack array of nine fields (see ``docs/protocol.md`` for the exact bytes)::

    [version, kind, space, author, seq, prev, ts, body, sig]

``sig`` is an ed25519 signature by ``author`` over ``SIGN_DOMAIN`` followed by the msgpack
encoding of the first eight fields. The record id is a 32-byte BLAKE2b hash of the whole
encoding. A record whose ``space`` is 32 zero bytes creates a space: its space id is its own id.

Pure: no I/O, no clock (``now_ms`` is passed in), no randomness.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgpack
from nacl.bindings import crypto_sign_open
from nacl.exceptions import BadSignatureError, CryptoError
from nacl.signing import SigningKey

from meshcrew.errors import RemoteError
from meshcrew.reasons import Reason

PROTOCOL_VERSION = 1
"""The envelope version this code writes and reads."""

MAX_RECORD_BYTES = 64 * 1024
"""Largest encoded record accepted, signature included."""

MAX_BODY_BYTES = MAX_RECORD_BYTES - 512
"""Largest body: the record limit less room for the other fields."""

MAX_KIND_CHARS = 32
MAX_SEQ = 2**53
MAX_TS_MS = 2**53
MAX_CLOCK_SKEW_MS = 10 * 60 * 1000
"""How far in the future (by the receiver's clock) a record may be dated."""

KEY_BYTES = 32
ID_BYTES = 32
SIG_BYTES = 64
FIELD_COUNT = 9
NEW_SPACE = bytes(KEY_BYTES)
"""The ``space`` value of a record that creates a space."""

HUSK_VERSION = 0
"""The version field of a husk: what a replica keeps of a record whose post expired."""

HUSK_KIND = "sealed"
"""The only kind a husk may have: posts travel as ``sealed`` records (``spaces.RecordKind``),
and only posts expire."""

MAX_STUB_BYTES = 256
"""Largest ``stub`` a husk may carry in place of its body (an epoch id and a length)."""

SIGN_DOMAIN = b"meshcrew/record/v1\x00"
ID_PERSON = b"meshcrew.rec.v1"

_ARRAY8 = b"\x98"
_KIND_RE = re.compile(r"[a-z][a-z0-9_.-]*\Z")


class RecordError(RemoteError):
    """A record was refused; ``reason`` says why in a machine-readable way."""

    def __init__(self, reason: Reason, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        text = reason.sentence if not detail else f"{reason.sentence} ({detail})"
        super().__init__(text)


@dataclass(frozen=True, slots=True)
class Head:
    """The latest record of one author's chain in one space."""

    seq: int
    id: bytes


Frontier = Mapping[bytes, Head]
"""Per author key: the head of their chain in one space."""


@dataclass(frozen=True, slots=True)
class Record:
    """A verified record. Build with :func:`sign_record` or :func:`decode_and_verify`."""

    version: int
    kind: str
    space: bytes
    author: bytes
    seq: int
    prev: bytes | None
    ts: int
    body: bytes
    sig: bytes
    raw: bytes
    id: bytes

    @property
    def space_id(self) -> bytes:
        """The space this record belongs to (its own id if it creates a space)."""
        return self.id if self.space == NEW_SPACE else self.space

    @property
    def creates_space(self) -> bool:
        """Whether this record is a space's genesis."""
        return self.space == NEW_SPACE

    @property
    def expired(self) -> bool:
        """Whether this is the husk of an expired post (see :func:`encode_husk`)."""
        return self.version == HUSK_VERSION


def record_id(raw: bytes) -> bytes:
    """The 32-byte id of an encoded record."""
    return hashlib.blake2b(raw, digest_size=ID_BYTES, person=ID_PERSON).digest()


def _pack(fields: list[Any]) -> bytes:
    return msgpack.packb(fields, use_bin_type=True)  # type: ignore[no-any-return]


def _check_fields(
    kind: object,
    space: object,
    author: object,
    seq: object,
    prev: object,
    ts: object,
    body: object,
    sig: object,
) -> None:
    """Raise RecordError if any field has the wrong type, length or range."""
    if not isinstance(kind, str):
        raise RecordError(Reason.BAD_FIELD, "kind is not a string")
    if not 0 < len(kind) <= MAX_KIND_CHARS or not _KIND_RE.match(kind):
        raise RecordError(Reason.BAD_KIND, repr(kind[:MAX_KIND_CHARS]))
    for name, value in (("space", space), ("author", author)):
        if not isinstance(value, bytes) or len(value) != KEY_BYTES:
            raise RecordError(Reason.BAD_FIELD, f"{name} is not {KEY_BYTES} bytes")
    if not isinstance(sig, bytes) or len(sig) != SIG_BYTES:
        raise RecordError(Reason.BAD_FIELD, f"sig is not {SIG_BYTES} bytes")
    if not isinstance(body, bytes):
        raise RecordError(Reason.BAD_FIELD, "body is not bytes")
    if len(body) > MAX_BODY_BYTES:
        raise RecordError(Reason.BODY_TOO_LARGE, f"{len(body)} > {MAX_BODY_BYTES} bytes")
    if type(ts) is not int or not 0 <= ts < MAX_TS_MS:
        raise RecordError(Reason.BAD_FIELD, "ts is not a millisecond timestamp")
    if type(seq) is not int or not 1 <= seq < MAX_SEQ:
        raise RecordError(Reason.BAD_SEQ, "seq out of range")
    if prev is not None and (not isinstance(prev, bytes) or len(prev) != ID_BYTES):
        raise RecordError(Reason.BAD_FIELD, f"prev is neither nil nor {ID_BYTES} bytes")
    if (seq == 1) != (prev is None):
        raise RecordError(Reason.BAD_SEQ, "seq 1 has no prev and only seq 1 lacks one")
    if space == NEW_SPACE and seq != 1:
        raise RecordError(Reason.BAD_SEQ, "a space's genesis must be seq 1")


def sign_record(
    key: SigningKey,
    *,
    kind: str,
    space: bytes,
    seq: int,
    prev: bytes | None,
    ts: int,
    body: bytes,
) -> Record:
    """Sign and encode a new record by ``key``'s owner.

    Raises:
        RecordError: if the fields break a limit (the same check a receiver makes).
    """
    author = bytes(key.verify_key)
    _check_fields(kind, space, author, seq, prev, ts, body, bytes(SIG_BYTES))
    unsigned = [PROTOCOL_VERSION, kind, space, author, seq, prev, ts, body]
    sig = key.sign(SIGN_DOMAIN + _pack(unsigned)).signature
    raw = _pack([*unsigned, sig])
    if len(raw) > MAX_RECORD_BYTES:
        raise RecordError(Reason.TOO_LARGE, f"{len(raw)} > {MAX_RECORD_BYTES} bytes")
    return Record(PROTOCOL_VERSION, kind, space, author, seq, prev, ts, body, sig, raw,
                  record_id(raw))


def decode_and_verify(data: bytes, *, now_ms: int | None = None) -> Record:
    """Decode an encoded record and check everything a record can be checked for alone.

    Args:
        data: the encoded record.
        now_ms: the receiver's clock; when given, records dated more than
            ``MAX_CLOCK_SKEW_MS`` after it are refused with ``Reason.FROM_FUTURE``.

    Raises:
        RecordError: with the reason the record is refused.
    """
    version, kind, space, author, seq, prev, ts, body, sig = _checked_fields(data, now_ms)
    return Record(version, kind, space, author, seq, prev, ts, body, sig, data, record_id(data))


def check_record(data: bytes, *, now_ms: int | None = None) -> None:
    """The checks of :func:`decode_and_verify`, without building the record (for a process
    that only says which records pass).

    Raises:
        RecordError: with the reason the record is refused.
    """
    _checked_fields(data, now_ms)


def _checked_fields(data: bytes, now_ms: int | None) -> list[Any]:
    """The nine fields of an encoded record that passes every check; see decode_and_verify."""
    if len(data) > MAX_RECORD_BYTES:
        raise RecordError(Reason.TOO_LARGE, f"{len(data)} > {MAX_RECORD_BYTES} bytes")
    try:
        fields = msgpack.unpackb(data, use_list=True, raw=False, strict_map_key=True)
    except (ValueError, TypeError, OverflowError, msgpack.UnpackException) as exc:
        raise RecordError(Reason.MALFORMED, type(exc).__name__) from None
    if not isinstance(fields, list) or not fields:
        raise RecordError(Reason.MALFORMED, "not an array")
    version = fields[0]
    if type(version) is not int:
        raise RecordError(Reason.MALFORMED, "no version")
    if version != PROTOCOL_VERSION:
        raise RecordError(Reason.UNKNOWN_VERSION, f"version {version}")
    if len(fields) != FIELD_COUNT:
        raise RecordError(Reason.MALFORMED, f"{len(fields)} fields, not {FIELD_COUNT}")
    _, kind, space, author, seq, prev, ts, body, sig = fields
    _check_fields(kind, space, author, seq, prev, ts, body, sig)
    if _pack(fields) != data:
        raise RecordError(Reason.NOT_CANONICAL)
    # The canonical encoding is the 9-array header, eight fields, then the signature as a bin 8
    # (2 header bytes + 64); the signed bytes are the same eight fields under an 8-array header.
    signed = SIGN_DOMAIN + _ARRAY8 + data[1 : len(data) - SIG_BYTES - 2]
    try:
        crypto_sign_open(sig + signed, author)
    except (BadSignatureError, CryptoError):
        raise RecordError(Reason.BAD_SIGNATURE) from None
    if now_ms is not None and ts > now_ms + MAX_CLOCK_SKEW_MS:
        raise RecordError(Reason.FROM_FUTURE, f"{(ts - now_ms) // 1000} s ahead")
    return fields


def encode_husk(record: Record, stub: bytes) -> bytes:
    """What a replica keeps of ``record`` once its post expired: the envelope without its
    content and signature, and the record's id.

    A husk is a msgpack array of nine fields like a record, ``[0, kind, space, author, seq,
    prev, ts, stub, id]``: version 0 (:data:`HUSK_VERSION`), ``stub`` (what the space rules
    need of the body, without the post: the caller's choice) in place of the body, and the
    record's id in place of its signature. It cannot be verified alone (the signature needs
    the deleted body); a node of any version reads it as a record of an unknown version, which
    proves nothing against its sender. See docs/protocol.md "Husks".
    """
    return _pack([HUSK_VERSION, record.kind, record.space, record.author, record.seq,
                  record.prev, record.ts, stub, record.id])


def decode_and_check_husk(data: bytes, *, now_ms: int | None = None) -> Record:
    """Decode a husk sent by a peer and check what a husk can be checked for alone.

    A husk cannot be verified (its signature needs the deleted body): the chain rules take it
    only when the next record of its author's chain names its id (see
    :mod:`meshcrew.store.ingest`). Alone, it must be a canonical nine-field array of version
    :data:`HUSK_VERSION` whose fields have a record's types and limits, of kind
    :data:`HUSK_KIND`, with a ``stub`` of at most :data:`MAX_STUB_BYTES`, not a space's genesis
    nor an author's first record (neither is ever a post), and not from the future.

    Raises:
        RecordError: with the reason it is refused (``unknown_version`` if it is no husk).
    """
    if len(data) > MAX_RECORD_BYTES:
        raise RecordError(Reason.TOO_LARGE, f"{len(data)} > {MAX_RECORD_BYTES} bytes")
    try:
        fields = msgpack.unpackb(data, use_list=True, raw=False, strict_map_key=True)
    except (ValueError, TypeError, OverflowError, msgpack.UnpackException) as exc:
        raise RecordError(Reason.MALFORMED, type(exc).__name__) from None
    if not isinstance(fields, list) or not fields or type(fields[0]) is not int:
        raise RecordError(Reason.MALFORMED, "not an array with a version")
    if fields[0] != HUSK_VERSION:
        raise RecordError(Reason.UNKNOWN_VERSION, f"version {fields[0]}")
    if len(fields) != FIELD_COUNT:
        raise RecordError(Reason.MALFORMED, f"{len(fields)} fields, not {FIELD_COUNT}")
    version, kind, space, author, seq, prev, ts, stub, rid = fields
    if not isinstance(rid, bytes) or len(rid) != ID_BYTES:
        raise RecordError(Reason.BAD_FIELD, f"a husk's id is not {ID_BYTES} bytes")
    _check_fields(kind, space, author, seq, prev, ts, stub, bytes(SIG_BYTES))
    if kind != HUSK_KIND:
        raise RecordError(Reason.BAD_KIND, f"a husk of kind {kind!r}")
    if len(stub) > MAX_STUB_BYTES:
        raise RecordError(Reason.BODY_TOO_LARGE, f"a husk's stub of {len(stub)} bytes")
    if seq == 1:
        raise RecordError(Reason.BAD_SEQ, "a husk at seq 1")
    if _pack(fields) != data:
        raise RecordError(Reason.NOT_CANONICAL)
    if now_ms is not None and ts > now_ms + MAX_CLOCK_SKEW_MS:
        raise RecordError(Reason.FROM_FUTURE, f"{(ts - now_ms) // 1000} s ahead")
    return Record(version, kind, space, author, seq, prev, ts, stub, b"", data, rid)


def decode_record_or_husk(data: bytes, *, now_ms: int | None = None) -> Record:
    """:func:`decode_and_verify` for a record, :func:`decode_and_check_husk` for a husk (its
    version field, the second byte of a canonical encoding, is :data:`HUSK_VERSION`).

    Raises:
        RecordError: with the reason it is refused.
    """
    if len(data) > 1 and data[1] == HUSK_VERSION:
        return decode_and_check_husk(data, now_ms=now_ms)
    return decode_and_verify(data, now_ms=now_ms)


def check_record_or_husk(data: bytes, *, now_ms: int | None = None) -> None:
    """The checks of :func:`decode_record_or_husk`, without building a record's id.

    Raises:
        RecordError: with the reason it is refused.
    """
    if len(data) > 1 and data[1] == HUSK_VERSION:
        decode_and_check_husk(data, now_ms=now_ms)
    else:
        check_record(data, now_ms=now_ms)


def decode_husk(raw: bytes) -> Record:
    """The record a stored husk stands for: its id, its envelope fields, ``stub`` as its body
    and no signature (``expired`` is true)."""
    version, kind, space, author, seq, prev, ts, stub, rid = msgpack.unpackb(raw, raw=False)
    assert version == HUSK_VERSION
    return Record(version, kind, space, author, seq, prev, ts, stub, b"", raw, rid)
