"""The plaintext bodies of membership records, their wire form and their checks.

Every body is a msgpack map with short keys. These bodies are readable by anyone who holds the
record, so they carry only what the membership rules need: public keys, record ids, numbers and
sealed or encrypted blobs. Names, purposes, rhythms and every post are inside blobs.

=========  ==============================================================================
kind       body
=========  ==============================================================================
genesis    ``{kind, hist, s: {founder: sealed epoch-0 key}, mk: blob, m: blob, ck: card key
           (a crew or dyad)}``
invite     ``{pk: invite public key, exp: expiry (ms, compared with the join's ts), uses}``
join       ``{i: invite record id, who: joiner key, proof: invite-key signature}``
leave      ``{}``, or ``{x: true}`` when the leaver's past posts expire now; and ``d: [[key, seq,
           id], ...]``: the last counting record of each other current device of the member
           (the member key included when a device leaves), when they have one
remove     ``{m: member key, s: seq of their last counting record, r: its id, a: [joins (or
           genesis) of the other members it was proposed among: the electorate], d: [[device
           key, seq, id] of each of the member's other devices' last counting record]
           (optional: absent when the member has no other device)}``
consent    ``{p: removal proposal id}``
keys       ``{n: epoch number, p: previous epoch id, s: {member: sealed key}, a: [ids of the
           membership changes it answers], h: blob of older keys (only if the space allows
           history), mk: blob, ss: blob of the settings as its author knew them (optional),
           tc: {carrier: the epoch's transit key sealed to it} (optional; a malformed one
           reads as none, as releases before it ignore it)}``
sealed     ``{e: epoch id, c: blob of the post}``
carrier    ``{c: carrier key, a: true to add, false to drop, r: the carrier record about that
           key it follows (optional; the record waits for it, so a drop is ordered after
           the naming it ends and a new naming after the drop)}``
revoke     ``{i: invite id, u: [the joins with it its author had seen: they stand]}``
device     ``{m: member key, s: the member key's signature over the device key, a: the newest
           epoch sealed to the member that its author had seen (it waits for it)}`` (the
           device's first record; see :mod:`meshcrew.spaces.devices`)
unlink     ``{m: member key, d: device key, s: the member key's signature revoking it, n: seq
           of the device's last counting record, r: its id}``
=========  ==============================================================================

A *blob* is ``nonce || XChaCha20-Poly1305 ciphertext`` (see :mod:`meshcrew.crypto`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import msgpack

from meshcrew.crypto import BLOB_OVERHEAD, SEALED_KEY_BYTES
from meshcrew.reasons import Reason
from meshcrew.records import ID_BYTES, KEY_BYTES, MAX_BODY_BYTES, MAX_TS_MS, RecordError
from meshcrew.spaces.kinds import MAX_CARRIERS, MAX_MEMBERS_ANY, RecordKind, SpaceKind

MAX_INVITE_USES = 500
MAX_META_BLOB_BYTES = 4096
MAX_HISTORY_BLOB_BYTES = 8192
MAX_SETTINGS_BLOB_BYTES = 4096 + 128
"""A rotation's settings snapshot: the settings (at most about 4 KiB) and where they stand."""
PROOF_BYTES = 64
META_KEY_BLOB_BYTES = 32 + BLOB_OVERHEAD


class Draft(NamedTuple):
    """A record ready to sign: give ``kind`` and ``body`` to ``records.sign_record``."""

    kind: str
    body: bytes


@dataclass(frozen=True, slots=True)
class GenesisBody:
    """Creates a space; its own record is epoch 0."""

    space_kind: SpaceKind
    history: bool
    shares: Mapping[bytes, bytes]
    meta_key: bytes
    meta: bytes
    card_key: bytes | None = None
    """A crew's or dyad's *card key*: the public half of an ed25519 key derived from the meta
    key, so that only its members can sign its card in a congregation (see
    :mod:`meshcrew.spaces.cards`). None for a congregation, and in spaces made before it."""


@dataclass(frozen=True, slots=True)
class InviteBody:
    """An invitation: the public half of a one-time key, an expiry and a use count."""

    public_key: bytes
    expires_ms: int
    uses: int


@dataclass(frozen=True, slots=True)
class JoinBody:
    """A join: names the invite and proves its secret over (space, joiner)."""

    invite: bytes
    joiner: bytes
    proof: bytes


@dataclass(frozen=True, slots=True)
class LeaveBody:
    """Leaving: always allowed, and the member's last counting record."""

    expire_posts: bool = False
    """The leaver's choice that their past check-ins and conversation posts expire now (see
    :mod:`meshcrew.spaces.retention`); by default they stay, under the space's retention."""
    devices: tuple[tuple[bytes, int, bytes], ...] = ()
    """The member's other current devices (the member key too, when a device leaves), each
    with its last counting record (key, seq, id): their later records come after the leave
    (fold rule 12). The leave waits for those records."""


@dataclass(frozen=True, slots=True)
class RemoveBody:
    """A proposal to remove ``member``; ``last_seq``/``last_id`` is their last counting record."""

    member: bytes
    last_seq: int
    last_id: bytes
    after: tuple[bytes, ...] = ()
    """The joins (or the genesis, for the founder) of the other current members as the proposer
    saw them: the electorate. The proposal waits for them."""
    devices: tuple[tuple[bytes, int, bytes], ...] = ()
    """The member's other current devices as the proposer saw them, each with its last
    counting record (key, seq, id): a removal cuts every device of the member (fold rule 13).
    The proposal waits for those records."""


@dataclass(frozen=True, slots=True)
class ConsentBody:
    """Consent to a removal proposal."""

    proposal: bytes


@dataclass(frozen=True, slots=True)
class KeysBody:
    """A key rotation: a new epoch key sealed to each recipient."""

    number: int
    prev: bytes
    shares: Mapping[bytes, bytes]
    after: tuple[bytes, ...]
    """The membership changes this rotation answers: the joins of recipients who are new since
    ``prev``, and the latest change its author had applied. The rotation waits for them."""
    history: bytes | None
    meta_key: bytes
    settings: bytes | None = None
    """Blob of the space's settings as its author knew them, under the new key: what a joiner
    who cannot read the space's history starts from (see :mod:`meshcrew.spaces.editing`)."""
    carriers: Mapping[bytes, bytes] = field(default_factory=dict)
    """Carrier key → the new epoch's transit key sealed to it (:mod:`meshcrew.spaces.transit`):
    carriers open gossip, never posts."""


@dataclass(frozen=True, slots=True)
class SealedBody:
    """A post encrypted under an epoch key."""

    epoch: bytes
    blob: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class RevokeBody:
    """Revokes an invite: every join with it that this record does not name is refused."""

    invite: bytes
    used: tuple[bytes, ...] = ()
    """The joins with the invite its author had seen: they stand (the record waits for them)."""


@dataclass(frozen=True, slots=True)
class DeviceBody:
    """A device's certificate: its member's key and that key's signature over the device."""

    member: bytes
    signature: bytes = field(repr=False)
    after: bytes = b""
    """The newest epoch sealed to the member that the device had seen: the certificate is
    ordered after it, so after the member was let in."""


@dataclass(frozen=True, slots=True)
class UnlinkBody:
    """A device's revocation, signed by its member key; ``last_seq``/``last_id`` is the
    device's last record that still counts."""

    member: bytes
    device: bytes
    signature: bytes = field(repr=False)
    last_seq: int = 1
    last_id: bytes = b""


@dataclass(frozen=True, slots=True)
class CarrierBody:
    """Names a carrier of the space (``add``) or drops one."""

    carrier: bytes
    add: bool
    after: bytes | None = None
    """The carrier record about the same key that this one follows (ordering only)."""


Body = (GenesisBody | InviteBody | JoinBody | LeaveBody | RemoveBody | ConsentBody | KeysBody
        | RevokeBody | DeviceBody | UnlinkBody
        | SealedBody | CarrierBody)


def _pack(value: dict[str, Any]) -> bytes:
    data: bytes = msgpack.packb(value, use_bin_type=True)
    if len(data) > MAX_BODY_BYTES:
        raise RecordError(Reason.BODY_TOO_LARGE, f"{len(data)} > {MAX_BODY_BYTES} bytes")
    return data


def encode_body(body: Body) -> bytes:
    """The wire bytes of a body (the inverse of :func:`parse_body`)."""
    match body:
        case GenesisBody():
            genesis: dict[str, Any] = {"kind": body.space_kind.value, "hist": body.history,
                                       "s": dict(body.shares), "mk": body.meta_key,
                                       "m": body.meta}
            if body.card_key is not None:
                genesis["ck"] = body.card_key
            return _pack(genesis)
        case InviteBody():
            return _pack({"pk": body.public_key, "exp": body.expires_ms, "uses": body.uses})
        case JoinBody():
            return _pack({"i": body.invite, "who": body.joiner, "proof": body.proof})
        case LeaveBody():
            leave: dict[str, Any] = {"x": True} if body.expire_posts else {}
            if body.devices:
                leave["d"] = [list(device) for device in body.devices]
            return _pack(leave)
        case RemoveBody():
            remove: dict[str, Any] = {"m": body.member, "s": body.last_seq, "r": body.last_id,
                                      "a": list(body.after)}
            if body.devices:
                remove["d"] = [list(device) for device in body.devices]
            return _pack(remove)
        case ConsentBody():
            return _pack({"p": body.proposal})
        case KeysBody():
            wire: dict[str, Any] = {"n": body.number, "p": body.prev, "s": dict(body.shares),
                                    "a": list(body.after), "mk": body.meta_key}
            if body.history is not None:
                wire["h"] = body.history
            if body.settings is not None:
                wire["ss"] = body.settings
            if body.carriers:
                wire["tc"] = dict(body.carriers)
            return _pack(wire)
        case SealedBody():
            return _pack({"e": body.epoch, "c": body.blob})
        case CarrierBody():
            wire = {"c": body.carrier, "a": body.add}
            if body.after is not None:
                wire["r"] = body.after
            return _pack(wire)
        case RevokeBody():
            return _pack({"i": body.invite, "u": list(body.used)})
        case DeviceBody():
            return _pack({"m": body.member, "s": body.signature, "a": body.after})
        case UnlinkBody():
            return _pack({"m": body.member, "d": body.device, "s": body.signature,
                          "n": body.last_seq, "r": body.last_id})
    raise TypeError(f"not a body: {body!r}")


def kind_of(body: Body) -> RecordKind:
    """The record kind that carries ``body``."""
    return _KIND_OF[type(body)]


def draft(body: Body) -> Draft:
    """The kind and bytes to sign for ``body``."""
    return Draft(kind_of(body).value, encode_body(body))


_KIND_OF: dict[type[Any], RecordKind] = {
    GenesisBody: RecordKind.GENESIS, InviteBody: RecordKind.INVITE, JoinBody: RecordKind.JOIN,
    LeaveBody: RecordKind.LEAVE, RemoveBody: RecordKind.REMOVE, ConsentBody: RecordKind.CONSENT,
    KeysBody: RecordKind.KEYS, SealedBody: RecordKind.SEALED, CarrierBody: RecordKind.CARRIER,
    RevokeBody: RecordKind.REVOKE, DeviceBody: RecordKind.DEVICE, UnlinkBody: RecordKind.UNLINK,
}


def _bad(detail: str) -> RecordError:
    return RecordError(Reason.BAD_BODY, detail)


def _bytes(wire: Mapping[str, Any], name: str, length: int | None = None,
           max_length: int | None = None) -> bytes:
    value = wire.get(name)
    if not isinstance(value, bytes):
        raise _bad(f"{name} is not bytes")
    if length is not None and len(value) != length:
        raise _bad(f"{name} is not {length} bytes")
    if max_length is not None and len(value) > max_length:
        raise _bad(f"{name} is longer than {max_length} bytes")
    return value


def _int(wire: Mapping[str, Any], name: str, low: int, high: int) -> int:
    value = wire.get(name)
    if type(value) is not int or not low <= value <= high:
        raise _bad(f"{name} is not an integer in {low}..{high}")
    return value


def _ids(wire: Mapping[str, Any], name: str) -> tuple[bytes, ...]:
    ids = wire.get(name)
    if not isinstance(ids, list) or len(ids) > MAX_MEMBERS_ANY or not all(
            isinstance(i, bytes) and len(i) == ID_BYTES for i in ids):
        raise _bad(f"{name} is not a list of at most {MAX_MEMBERS_ANY} record ids")
    return tuple(ids)


def _shares(wire: Mapping[str, Any], name: str = "s", *, low: int = 1,
            limit: int = MAX_MEMBERS_ANY) -> dict[bytes, bytes]:
    shares = wire.get(name)
    if not isinstance(shares, dict) or not low <= len(shares) <= limit:
        raise _bad(f"{name} is not a map of {low}..{limit} key shares")
    for member, sealed in shares.items():
        if not isinstance(member, bytes) or len(member) != KEY_BYTES:
            raise _bad("a key share is not addressed to a member key")
        if not isinstance(sealed, bytes) or len(sealed) != SEALED_KEY_BYTES:
            raise _bad(f"a key share is not {SEALED_KEY_BYTES} bytes")
    return shares


def _parse_genesis(wire: Mapping[str, Any]) -> Body:
    try:
        space_kind = SpaceKind(str(wire.get("kind")))
    except ValueError:
        raise _bad("kind is not crew, dyad or congregation") from None
    history = wire.get("hist")
    if not isinstance(history, bool):
        raise _bad("hist is not a boolean")
    return GenesisBody(space_kind, history, _shares(wire),
                       _bytes(wire, "mk", META_KEY_BLOB_BYTES),
                       _bytes(wire, "m", max_length=MAX_META_BLOB_BYTES),
                       _bytes(wire, "ck", KEY_BYTES) if "ck" in wire else None)


def _parse_invite(wire: Mapping[str, Any]) -> Body:
    return InviteBody(_bytes(wire, "pk", KEY_BYTES), _int(wire, "exp", 0, MAX_TS_MS),
                      _int(wire, "uses", 1, MAX_INVITE_USES))


def _parse_join(wire: Mapping[str, Any]) -> Body:
    return JoinBody(_bytes(wire, "i", ID_BYTES), _bytes(wire, "who", KEY_BYTES),
                    _bytes(wire, "proof", PROOF_BYTES))


def _parse_leave(wire: Mapping[str, Any]) -> Body:
    # Only true asks for the expiry: releases before it ignore the field, so any other value
    # must read as "stay" here too, or replicas of both would disagree on the leave.
    # The same for the devices: a release before devices ignores d, so a d that does not
    # parse reads as none here (a leave always counts, on every release).
    try:
        devices = _device_heads(wire["d"]) if "d" in wire else ()
    except RecordError:
        devices = ()
    return LeaveBody(wire.get("x") is True, devices)


def _parse_remove(wire: Mapping[str, Any]) -> Body:
    removal = RemoveBody(_bytes(wire, "m", KEY_BYTES), _int(wire, "s", 1, MAX_TS_MS),
                         _bytes(wire, "r", ID_BYTES), _ids(wire, "a"))
    try:  # as for a leave: a release before devices ignores d, so a bad one reads as none
        return replace(removal, devices=_device_heads(wire["d"])) if "d" in wire else removal
    except RecordError:
        return removal


def _device_heads(value: Any) -> tuple[tuple[bytes, int, bytes], ...]:
    if not isinstance(value, list) or len(value) > MAX_MEMBERS_ANY:
        raise _bad(f"d is not a list of at most {MAX_MEMBERS_ANY} devices")
    heads = []
    for item in value:
        if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], bytes)
                and len(item[0]) == KEY_BYTES and type(item[1]) is int
                and 1 <= item[1] <= MAX_TS_MS and isinstance(item[2], bytes)
                and len(item[2]) == ID_BYTES):
            raise _bad("a device of d is not [key, seq, record id]")
        heads.append((item[0], item[1], item[2]))
    return tuple(heads)


def _parse_consent(wire: Mapping[str, Any]) -> Body:
    return ConsentBody(_bytes(wire, "p", ID_BYTES))


def _parse_keys(wire: Mapping[str, Any]) -> Body:
    history = _bytes(wire, "h", max_length=MAX_HISTORY_BLOB_BYTES) if "h" in wire else None
    settings = (_bytes(wire, "ss", max_length=MAX_SETTINGS_BLOB_BYTES) if "ss" in wire
                else None)
    # A release before carriers' transit keys ignores tc: a tc that does not parse reads as
    # none here, so that both accept the same rotations.
    try:
        carriers = _shares(wire, "tc", low=0, limit=MAX_CARRIERS) if "tc" in wire else {}
    except RecordError:
        carriers = {}
    return KeysBody(_int(wire, "n", 1, MAX_TS_MS), _bytes(wire, "p", ID_BYTES), _shares(wire),
                    _ids(wire, "a"), history, _bytes(wire, "mk", META_KEY_BLOB_BYTES),
                    settings, carriers)


def _parse_sealed(wire: Mapping[str, Any]) -> Body:
    # Most records are sealed posts, so the two field checks are written out here: the same
    # checks, in the same order, as _bytes(wire, "c") and _bytes(wire, "e", ID_BYTES).
    blob = wire.get("c")
    if not isinstance(blob, bytes):
        raise _bad("c is not bytes")
    if len(blob) < BLOB_OVERHEAD:
        raise _bad("c is too short to be a ciphertext")
    epoch = wire.get("e")
    if not isinstance(epoch, bytes):
        raise _bad("e is not bytes")
    if len(epoch) != ID_BYTES:
        raise _bad(f"e is not {ID_BYTES} bytes")
    return SealedBody(epoch, blob)


def _parse_carrier(wire: Mapping[str, Any]) -> Body:
    add = wire.get("a")
    if not isinstance(add, bool):
        raise _bad("a is not a boolean")
    after = _bytes(wire, "r", ID_BYTES) if "r" in wire else None
    return CarrierBody(_bytes(wire, "c", KEY_BYTES), add, after)


def _parse_revoke(wire: Mapping[str, Any]) -> Body:
    return RevokeBody(_bytes(wire, "i", ID_BYTES), _ids(wire, "u"))


def _parse_device(wire: Mapping[str, Any]) -> Body:
    return DeviceBody(_bytes(wire, "m", KEY_BYTES), _bytes(wire, "s", PROOF_BYTES),
                      _bytes(wire, "a", ID_BYTES))


def _parse_unlink(wire: Mapping[str, Any]) -> Body:
    return UnlinkBody(_bytes(wire, "m", KEY_BYTES), _bytes(wire, "d", KEY_BYTES),
                      _bytes(wire, "s", PROOF_BYTES), _int(wire, "n", 1, MAX_TS_MS),
                      _bytes(wire, "r", ID_BYTES))


_PARSERS: dict[str, Callable[[Mapping[str, Any]], Body]] = {
    RecordKind.GENESIS.value: _parse_genesis, RecordKind.INVITE.value: _parse_invite,
    RecordKind.JOIN.value: _parse_join, RecordKind.LEAVE.value: _parse_leave,
    RecordKind.REMOVE.value: _parse_remove, RecordKind.CONSENT.value: _parse_consent,
    RecordKind.KEYS.value: _parse_keys, RecordKind.SEALED.value: _parse_sealed,
    RecordKind.CARRIER.value: _parse_carrier, RecordKind.REVOKE.value: _parse_revoke,
    RecordKind.DEVICE.value: _parse_device, RecordKind.UNLINK.value: _parse_unlink,
}
"""The parser of each record kind's body map, by the kind's string (a dict lookup is much
cheaper than ``RecordKind(kind)``, which goes through ``Enum.__call__``)."""


def parse_body(kind: str, body: bytes) -> Body | None:
    """The body of a record of ``kind``, or None if this version does not know the kind.

    Unknown keys in the map are ignored, so a newer version may add fields.

    Raises:
        RecordError: ``Reason.BAD_BODY`` if the body does not fit its kind.
    """
    parser = _PARSERS.get(kind) if type(kind) is str else None
    if parser is None:
        # Not a plain string (a member, or something unhashable) or not a known kind: ask the
        # enum, as before, so exactly the same values are accepted.
        try:
            parser = _PARSERS[RecordKind(kind).value]
        except ValueError:
            return None
    try:
        wire = msgpack.unpackb(body, raw=False, strict_map_key=True, use_list=True)
    except (ValueError, TypeError, OverflowError, msgpack.UnpackException) as exc:
        raise _bad(f"not msgpack ({type(exc).__name__})") from None
    if not isinstance(wire, dict):
        raise _bad("not a map")
    return parser(wire)
