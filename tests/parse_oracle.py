"""Frozen copies of the parsing code as it was before it was made faster (commit 67ebff8).

``tests/test_parse_speed_equivalence.py`` checks the fast versions in ``meshcrew.spaces`` against
these: same result, or the same exception with the same reason and detail. Do not "improve" this
file; it is the reference. Body and post *classes* are copied too where the fast code changed
how they are checked (the posts); the body dataclasses carry no checks and are shared.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, ClassVar

import msgpack

from meshcrew.crypto import BLOB_OVERHEAD, SEALED_KEY_BYTES
from meshcrew.reasons import Reason
from meshcrew.records import ID_BYTES, KEY_BYTES, MAX_TS_MS, RecordError
from meshcrew.spaces.bodies import (
    MAX_HISTORY_BLOB_BYTES,
    MAX_INVITE_USES,
    MAX_META_BLOB_BYTES,
    MAX_SETTINGS_BLOB_BYTES,
    META_KEY_BLOB_BYTES,
    PROOF_BYTES,
    Body,
    CarrierBody,
    ConsentBody,
    GenesisBody,
    InviteBody,
    JoinBody,
    KeysBody,
    LeaveBody,
    RemoveBody,
    RevokeBody,
    SealedBody,
)
from meshcrew.spaces.kinds import MAX_MEMBERS_ANY, PostKind, RecordKind, SpaceKind
from meshcrew.spaces.posts import (
    COMPASS_KEYS,
    MAX_ASK_CHARS,
    MAX_BIO_CHARS,
    MAX_CARD_GENESIS_BYTES,
    MAX_NAME_CHARS,
    MAX_NOTE_CHARS,
    MAX_PLACE_CHARS,
    MAX_REACTION_CHARS,
    MAX_TEXT_CHARS,
    MAX_TITLE_CHARS,
    SCORE_MAX,
    SCORE_MIN,
    SIGNATURE_BYTES,
    Amend,
    Answer,
    Proposal,
    Settings,
    Withdraw,
)

# --- settings.check_text -------------------------------------------------------------------

_ALLOWED_CONTROLS = frozenset("\n\t\u200c\u200d")


def check_text(value: object, field: str, max_chars: int, *, allow_empty: bool = True) -> str:
    if not isinstance(value, str):
        raise RecordError(Reason.BAD_BODY, f"{field} is not text")
    if len(value) > max_chars:
        raise RecordError(Reason.BAD_BODY, f"{field} is longer than {max_chars} characters")
    if not allow_empty and not value.strip():
        raise RecordError(Reason.BAD_BODY, f"{field} is empty")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co") and c not in _ALLOWED_CONTROLS
           for c in value):
        raise RecordError(Reason.BAD_BODY, f"{field} contains control characters")
    if not unicodedata.is_normalized("NFC", value):
        raise RecordError(Reason.BAD_BODY, f"{field} is not NFC-normalised")
    return value


# --- posts ---------------------------------------------------------------------------------


def _post_bad(detail: str) -> RecordError:
    return RecordError(Reason.BAD_BODY, detail)


def _score(value: object, field: str) -> int:
    if type(value) is not int or not SCORE_MIN <= value <= SCORE_MAX:
        raise _post_bad(f"{field} is not a whole number from {SCORE_MIN} to {SCORE_MAX}")
    return value


def _record_id(value: object, field: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != ID_BYTES:
        raise _post_bad(f"{field} is not a record id")
    return value


def _flag(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise _post_bad(f"{field} is not true or false")
    return value


@dataclass(frozen=True, slots=True)
class Profile:
    kind: ClassVar[PostKind] = PostKind.PROFILE
    name: str
    bio: str = ""

    def __post_init__(self) -> None:
        check_text(self.name, "name", MAX_NAME_CHARS, allow_empty=False)
        check_text(self.bio, "bio", MAX_BIO_CHARS)


@dataclass(frozen=True, slots=True)
class CheckIn:
    kind: ClassVar[PostKind] = PostKind.CHECKIN
    text: str
    energy: int
    compass: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    ask: str | None = None

    def __post_init__(self) -> None:
        check_text(self.text, "text", MAX_TEXT_CHARS, allow_empty=False)
        _score(self.energy, "energy")
        if not isinstance(self.compass, Mapping):
            raise _post_bad("compass is not a map")
        for key, score in self.compass.items():
            if key not in COMPASS_KEYS:
                raise _post_bad(f"compass has no scale {str(key)[:32]!r}")
            _score(score, f"compass {key}")
        object.__setattr__(self, "compass", MappingProxyType(dict(sorted(self.compass.items()))))
        if self.ask is not None:
            check_text(self.ask, "ask", MAX_ASK_CHARS, allow_empty=False)


@dataclass(frozen=True, slots=True)
class Reply:
    kind: ClassVar[PostKind] = PostKind.REPLY
    to: bytes
    text: str

    def __post_init__(self) -> None:
        _record_id(self.to, "to")
        check_text(self.text, "text", MAX_TEXT_CHARS, allow_empty=False)


@dataclass(frozen=True, slots=True)
class Reaction:
    kind: ClassVar[PostKind] = PostKind.REACTION
    to: bytes
    text: str

    def __post_init__(self) -> None:
        _record_id(self.to, "to")
        check_text(self.text, "text", MAX_REACTION_CHARS, allow_empty=False)


@dataclass(frozen=True, slots=True)
class Ask:
    kind: ClassVar[PostKind] = PostKind.ASK
    title: str
    text: str = ""

    def __post_init__(self) -> None:
        check_text(self.title, "title", MAX_TITLE_CHARS, allow_empty=False)
        check_text(self.text, "text", MAX_TEXT_CHARS)


@dataclass(frozen=True, slots=True)
class Offer:
    kind: ClassVar[PostKind] = PostKind.OFFER
    title: str
    text: str = ""

    def __post_init__(self) -> None:
        check_text(self.title, "title", MAX_TITLE_CHARS, allow_empty=False)
        check_text(self.text, "text", MAX_TEXT_CHARS)


@dataclass(frozen=True, slots=True)
class Followup:
    kind: ClassVar[PostKind] = PostKind.FOLLOWUP
    to: bytes
    text: str
    closes: bool = False

    def __post_init__(self) -> None:
        _record_id(self.to, "to")
        check_text(self.text, "text", MAX_TEXT_CHARS)
        _flag(self.closes, "closes")


@dataclass(frozen=True, slots=True)
class Gathering:
    kind: ClassVar[PostKind] = PostKind.GATHERING
    title: str
    when_ms: int
    where: str

    def __post_init__(self) -> None:
        check_text(self.title, "title", MAX_TITLE_CHARS, allow_empty=False)
        if type(self.when_ms) is not int or not 0 <= self.when_ms < MAX_TS_MS:
            raise _post_bad("when_ms is not a millisecond timestamp")
        check_text(self.where, "where", MAX_PLACE_CHARS)


@dataclass(frozen=True, slots=True)
class LookingForCrew:
    kind: ClassVar[PostKind] = PostKind.LOOKING_FOR_CREW
    looking: bool
    note: str = ""

    def __post_init__(self) -> None:
        _flag(self.looking, "looking")
        check_text(self.note, "note", MAX_NOTE_CHARS)


@dataclass(frozen=True, slots=True)
class CrewCard:
    kind: ClassVar[PostKind] = PostKind.CREW_CARD
    crew: bytes
    name: str
    open: bool
    note: str = ""
    # The proof came later (issue 14), checked as the fast code does.
    genesis: bytes = field(default=b"", repr=False)
    proof: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        _record_id(self.crew, "crew")
        check_text(self.name, "name", MAX_NAME_CHARS, allow_empty=False)
        _flag(self.open, "open")
        check_text(self.note, "note", MAX_NOTE_CHARS)
        if not isinstance(self.genesis, bytes) or len(self.genesis) > MAX_CARD_GENESIS_BYTES:
            raise _post_bad(f"genesis is not a record of at most {MAX_CARD_GENESIS_BYTES} "
                            "bytes")
        if not isinstance(self.proof, bytes) or len(self.proof) not in (0, SIGNATURE_BYTES):
            raise _post_bad(f"proof is not a {SIGNATURE_BYTES}-byte signature")


_CLASSES: dict[PostKind, type[Any]] = {cls.kind: cls for cls in (
    Profile, CheckIn, Reply, Reaction, Ask, Offer, Followup, Gathering, LookingForCrew,
    CrewCard, Proposal, Answer, Amend, Withdraw, Settings)}
# Post kinds added after the parser was made faster are checked by their own classes alone
# (shared, as the bodies are): only the decoding around them is the reference here.


def decode_post(data: bytes) -> Any:
    try:
        wire = msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True)
    except (ValueError, TypeError, OverflowError, msgpack.UnpackException) as exc:
        raise _post_bad(f"post is not msgpack ({type(exc).__name__})") from None
    if not isinstance(wire, dict):
        raise _post_bad("post is not a map")
    try:
        cls = _CLASSES[PostKind(str(wire.get("k")))]
    except (ValueError, KeyError):
        raise _post_bad(f"unknown post kind {str(wire.get('k'))[:32]!r}") from None
    names = [item.name for item in fields(cls)]
    args = {name: wire[name] for name in names if name in wire}
    try:
        post = cls(**args)
    except TypeError:
        raise _post_bad(f"a {cls.kind.value} lacks a field") from None
    return post


# --- bodies --------------------------------------------------------------------------------


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


def _shares(wire: Mapping[str, Any]) -> dict[bytes, bytes]:
    shares = wire.get("s")
    if not isinstance(shares, dict) or not 0 < len(shares) <= MAX_MEMBERS_ANY:
        raise _bad(f"s is not a map of 1..{MAX_MEMBERS_ANY} key shares")
    for member, sealed in shares.items():
        if not isinstance(member, bytes) or len(member) != KEY_BYTES:
            raise _bad("a key share is not addressed to a member key")
        if not isinstance(sealed, bytes) or len(sealed) != SEALED_KEY_BYTES:
            raise _bad(f"a key share is not {SEALED_KEY_BYTES} bytes")
    return shares


def _parse(kind: RecordKind, wire: Mapping[str, Any]) -> Body:
    match kind:
        case RecordKind.GENESIS:
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
                               # the card key came later (issue 14): read as the fast code does
                               _bytes(wire, "ck", KEY_BYTES) if "ck" in wire else None)
        case RecordKind.INVITE:
            return InviteBody(_bytes(wire, "pk", KEY_BYTES), _int(wire, "exp", 0, MAX_TS_MS),
                              _int(wire, "uses", 1, MAX_INVITE_USES))
        case RecordKind.JOIN:
            return JoinBody(_bytes(wire, "i", ID_BYTES), _bytes(wire, "who", KEY_BYTES),
                            _bytes(wire, "proof", PROOF_BYTES))
        case RecordKind.LEAVE:
            return LeaveBody()
        case RecordKind.REMOVE:
            return RemoveBody(_bytes(wire, "m", KEY_BYTES), _int(wire, "s", 1, MAX_TS_MS),
                              _bytes(wire, "r", ID_BYTES), _ids(wire, "a"))
        case RecordKind.CONSENT:
            return ConsentBody(_bytes(wire, "p", ID_BYTES))
        case RecordKind.KEYS:
            history = (_bytes(wire, "h", max_length=MAX_HISTORY_BLOB_BYTES)
                       if "h" in wire else None)
            return KeysBody(_int(wire, "n", 1, MAX_TS_MS), _bytes(wire, "p", ID_BYTES),
                            _shares(wire), _ids(wire, "a"), history,
                            _bytes(wire, "mk", META_KEY_BLOB_BYTES),
                            # the settings snapshot came later (issue 14), read as the fast
                            # code does
                            _bytes(wire, "ss", max_length=MAX_SETTINGS_BLOB_BYTES)
                            if "ss" in wire else None)
        case RecordKind.SEALED:
            blob = _bytes(wire, "c")
            if len(blob) < BLOB_OVERHEAD:
                raise _bad("c is too short to be a ciphertext")
            return SealedBody(_bytes(wire, "e", ID_BYTES), blob)
        case RecordKind.CARRIER:
            add = wire.get("a")
            if not isinstance(add, bool):
                raise _bad("a is not a boolean")
            after = _bytes(wire, "r", ID_BYTES) if "r" in wire else None
            return CarrierBody(_bytes(wire, "c", KEY_BYTES), add, after)
        case RecordKind.REVOKE:  # came later (issue 14), read as the fast code does
            return RevokeBody(_bytes(wire, "i", ID_BYTES), _ids(wire, "u"))
    raise AssertionError(kind)  # pragma: no cover - every RecordKind is matched


def parse_body(kind: str, body: bytes) -> Body | None:
    try:
        record_kind = RecordKind(kind)
    except ValueError:
        return None
    try:
        wire = msgpack.unpackb(body, raw=False, strict_map_key=True, use_list=True)
    except (ValueError, TypeError, OverflowError, msgpack.UnpackException) as exc:
        raise _bad(f"not msgpack ({type(exc).__name__})") from None
    if not isinstance(wire, dict):
        raise _bad("not a map")
    return _parse(record_kind, wire)
