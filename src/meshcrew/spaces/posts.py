"""Posts: the practice records members write, carried encrypted inside ``sealed`` records.

Each post is a frozen dataclass whose constructor checks it, so an invalid post cannot be built
and a received one that breaks a limit is refused with ``bad_body`` and a detail. On the wire a
post is a msgpack map ``{"k": kind, ...fields}``.

The compass
-----------
A check-in may carry a *compass reflection*: some of the scales in :data:`COMPASS_SCALES`, each
scored 1 to 5, where 1 is the "murky waters" end and 5 the "north star" end (after the Huddlecraft
compass of Enrol Yourself and Riane Eisler's partnership/domination spectrum). The set is fixed
so that every member's series can be compared over time; a new scale needs a new version.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from types import MappingProxyType
from typing import Any, ClassVar

import msgpack

from meshcrew.reasons import Reason
from meshcrew.records import ID_BYTES, MAX_TS_MS, RecordError
from meshcrew.spaces.kinds import PostKind
from meshcrew.spaces.settings import SettingsChange, check_text


@dataclass(frozen=True, slots=True)
class CompassScale:
    """One compass question, scored 1 (``low``) to 5 (``high``)."""

    key: str
    question: str
    low: str
    high: str


COMPASS_SCALES: tuple[CompassScale, ...] = (
    CompassScale("belonging", "Do I feel I belong, that people here have my back?",
                 "alone, distrustful", "belonging"),
    CompassScale("partnership", "Am I relating in partnership or in domination?",
                 "domination", "partnership"),
    CompassScale("time", "Do I have the time to do my work well?",
                 "rushed, stretched thin", "time to do it well"),
    CompassScale("gardeners", "Am I creating gardeners, not just gardens (sharing power)?",
                 "monopolising", "distributing"),
    CompassScale("connection", "Do my choices enhance connection or separation?",
                 "separation", "connection"),
    CompassScale("growth", "Am I learning and growing, or stuck?", "stagnating",
                 "learning and growing"),
)
"""The fixed, documented compass: every reflection uses only these keys."""

COMPASS_KEYS = frozenset(scale.key for scale in COMPASS_SCALES)
SCORE_MIN, SCORE_MAX = 1, 5
MAX_TEXT_CHARS = 2000
MAX_ASK_CHARS = 1000
MAX_TITLE_CHARS = 120
MAX_NAME_CHARS = 64
MAX_BIO_CHARS = 280
MAX_REACTION_CHARS = 16
MAX_PLACE_CHARS = 300
MAX_NOTE_CHARS = 500
MAX_CARD_GENESIS_BYTES = 8192
"""A crew's genesis record carried in its card (its settings blob is at most 4 KiB)."""
SIGNATURE_BYTES = 64


def _bad(detail: str) -> RecordError:
    return RecordError(Reason.BAD_BODY, detail)


def _score(value: object, field: str) -> int:
    if type(value) is not int or not SCORE_MIN <= value <= SCORE_MAX:
        raise _bad(f"{field} is not a whole number from {SCORE_MIN} to {SCORE_MAX}")
    return value


def _record_id(value: object, field: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != ID_BYTES:
        raise _bad(f"{field} is not a record id")
    return value


def _flag(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise _bad(f"{field} is not true or false")
    return value


@dataclass(frozen=True, slots=True)
class Profile:
    """A member's display name and short bio in one space (their latest one counts)."""

    kind: ClassVar[PostKind] = PostKind.PROFILE
    name: str
    bio: str = ""

    def __post_init__(self) -> None:
        check_text(self.name, "name", MAX_NAME_CHARS, allow_empty=False)
        check_text(self.bio, "bio", MAX_BIO_CHARS)


@dataclass(frozen=True, slots=True)
class CheckIn:
    """How a member is arriving this cycle."""

    kind: ClassVar[PostKind] = PostKind.CHECKIN
    text: str
    energy: int
    compass: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    """Scale key (from :data:`COMPASS_SCALES`) → score 1 to 5; any subset of the scales."""
    ask: str | None = None
    """An ask for support, if any (it stays open until a closing follow-up by the author)."""

    def __post_init__(self) -> None:
        check_text(self.text, "text", MAX_TEXT_CHARS, allow_empty=False)
        _score(self.energy, "energy")
        if not isinstance(self.compass, Mapping):
            raise _bad("compass is not a map")
        for key, score in self.compass.items():
            if key not in COMPASS_KEYS:
                raise _bad(f"compass has no scale {str(key)[:32]!r}")
            _score(score, f"compass {key}")
        object.__setattr__(self, "compass", MappingProxyType(dict(sorted(self.compass.items()))))
        if self.ask is not None:
            check_text(self.ask, "ask", MAX_ASK_CHARS, allow_empty=False)


@dataclass(frozen=True, slots=True)
class Reply:
    """A reply to a post."""

    kind: ClassVar[PostKind] = PostKind.REPLY
    to: bytes
    text: str

    def __post_init__(self) -> None:
        _record_id(self.to, "to")
        check_text(self.text, "text", MAX_TEXT_CHARS, allow_empty=False)


@dataclass(frozen=True, slots=True)
class Reaction:
    """A short reaction to a post ("heard you", an emoji)."""

    kind: ClassVar[PostKind] = PostKind.REACTION
    to: bytes
    text: str

    def __post_init__(self) -> None:
        _record_id(self.to, "to")
        check_text(self.text, "text", MAX_REACTION_CHARS, allow_empty=False)


@dataclass(frozen=True, slots=True)
class Ask:
    """An ask for support (a crew's or the congregation board's)."""

    kind: ClassVar[PostKind] = PostKind.ASK
    title: str
    text: str = ""

    def __post_init__(self) -> None:
        check_text(self.title, "title", MAX_TITLE_CHARS, allow_empty=False)
        check_text(self.text, "text", MAX_TEXT_CHARS)


@dataclass(frozen=True, slots=True)
class Offer:
    """An offer of help, skills or resources."""

    kind: ClassVar[PostKind] = PostKind.OFFER
    title: str
    text: str = ""

    def __post_init__(self) -> None:
        check_text(self.title, "title", MAX_TITLE_CHARS, allow_empty=False)
        check_text(self.text, "text", MAX_TEXT_CHARS)


@dataclass(frozen=True, slots=True)
class Followup:
    """A follow-up on an ask, offer or check-in ask; ``closes`` by its author closes it."""

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
    """A gathering of the congregation: when (UTC ms) and where (a place or a link)."""

    kind: ClassVar[PostKind] = PostKind.GATHERING
    title: str
    when_ms: int
    where: str

    def __post_init__(self) -> None:
        check_text(self.title, "title", MAX_TITLE_CHARS, allow_empty=False)
        if type(self.when_ms) is not int or not 0 <= self.when_ms < MAX_TS_MS:
            raise _bad("when_ms is not a millisecond timestamp")
        check_text(self.where, "where", MAX_PLACE_CHARS)


@dataclass(frozen=True, slots=True)
class LookingForCrew:
    """Whether the author is looking for a crew (their latest one counts)."""

    kind: ClassVar[PostKind] = PostKind.LOOKING_FOR_CREW
    looking: bool
    note: str = ""

    def __post_init__(self) -> None:
        _flag(self.looking, "looking")
        check_text(self.note, "note", MAX_NOTE_CHARS)


@dataclass(frozen=True, slots=True)
class CrewCard:
    """A crew's card in its congregation: whether it is open to new crewmates."""

    kind: ClassVar[PostKind] = PostKind.CREW_CARD
    crew: bytes
    """The crew's (or dyad's) space id."""
    name: str
    open: bool
    note: str = ""
    genesis: bytes = field(default=b"", repr=False)
    """The crew's genesis record, which holds its card key (see :mod:`meshcrew.spaces.cards`)."""
    proof: bytes = field(default=b"", repr=False)
    """The card key's signature over the card, its congregation and its author."""

    def __post_init__(self) -> None:
        _record_id(self.crew, "crew")
        check_text(self.name, "name", MAX_NAME_CHARS, allow_empty=False)
        _flag(self.open, "open")
        check_text(self.note, "note", MAX_NOTE_CHARS)
        if not isinstance(self.genesis, bytes) or len(self.genesis) > MAX_CARD_GENESIS_BYTES:
            raise _bad(f"genesis is not a record of at most {MAX_CARD_GENESIS_BYTES} bytes")
        if not isinstance(self.proof, bytes) or len(self.proof) not in (0, SIGNATURE_BYTES):
            raise _bad(f"proof is not a {SIGNATURE_BYTES}-byte signature")


class Position(StrEnum):
    """A member's answer to a proposal."""

    CONSENT = "consent"
    """I can live with it and support it going ahead."""
    STAND_ASIDE = "stand_aside"
    """I will not take part, but I do not block it (a reason is given)."""
    OBJECT = "object"
    """It would harm the crew or its purpose: it must not go ahead as it is (a reason is
    given). An objection blocks the proposal while it stands."""


@dataclass(frozen=True, slots=True)
class Proposal:
    """A decision put to the members, decided by consent before ``deadline_ms``.

    The outcome is worked out from the records by :mod:`meshcrew.spaces.proposals`.
    """

    kind: ClassVar[PostKind] = PostKind.PROPOSAL
    title: str
    text: str
    deadline_ms: int
    """When it closes (UTC ms): answers signed from then on do not count."""
    change: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    """A change of the space's settings it proposes (the wire map of a
    :class:`~meshcrew.spaces.settings.SettingsChange`; empty: none). Once it passes, a
    ``settings`` post naming it makes the change (see :mod:`meshcrew.spaces.editing`)."""

    def __post_init__(self) -> None:
        check_text(self.title, "title", MAX_TITLE_CHARS, allow_empty=False)
        check_text(self.text, "text", MAX_TEXT_CHARS)
        if type(self.deadline_ms) is not int or not 0 < self.deadline_ms < MAX_TS_MS:
            raise _bad("deadline_ms is not a millisecond timestamp")
        object.__setattr__(self, "change", _change_map(self.change))

    @property
    def settings_change(self) -> SettingsChange:
        """The change it proposes (empty for none)."""
        return SettingsChange.from_wire(self.change)


@dataclass(frozen=True, slots=True)
class Answer:
    """A member's answer to a proposal; their latest one (by their own chain) counts."""

    kind: ClassVar[PostKind] = PostKind.ANSWER
    to: bytes
    """The proposal answered."""
    position: Position
    reason: str = ""
    """Why (required to stand aside or object)."""

    def __post_init__(self) -> None:
        _record_id(self.to, "to")
        try:
            object.__setattr__(self, "position", Position(self.position))
        except ValueError:
            raise _bad(f"position {str(self.position)[:32]!r} is not consent, stand_aside or "
                       "object") from None
        check_text(self.reason, "reason", MAX_NOTE_CHARS,
                   allow_empty=self.position is Position.CONSENT)


@dataclass(frozen=True, slots=True)
class Amend:
    """The proposer's new title and text (answers given before it are shown as such)."""

    kind: ClassVar[PostKind] = PostKind.AMEND
    to: bytes
    title: str
    text: str

    def __post_init__(self) -> None:
        _record_id(self.to, "to")
        check_text(self.title, "title", MAX_TITLE_CHARS, allow_empty=False)
        check_text(self.text, "text", MAX_TEXT_CHARS)


@dataclass(frozen=True, slots=True)
class Withdraw:
    """The proposer withdraws their proposal before it is decided."""

    kind: ClassVar[PostKind] = PostKind.WITHDRAW
    to: bytes
    note: str = ""

    def __post_init__(self) -> None:
        _record_id(self.to, "to")
        check_text(self.note, "note", MAX_NOTE_CHARS)


@dataclass(frozen=True, slots=True)
class Settings:
    """A change of the space's settings: by a passed proposal it names (``by``), or, in a
    congregation that has not decided otherwise, by any member (see
    :mod:`meshcrew.spaces.editing`)."""

    kind: ClassVar[PostKind] = PostKind.SETTINGS
    change: Mapping[str, Any]
    """The wire map of a :class:`~meshcrew.spaces.settings.SettingsChange` (not empty)."""
    by: bytes = b""
    """The passed proposal it carries out (empty: none)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "change", _change_map(self.change))
        if not self.change:
            raise _bad("the change is empty")
        if self.by:
            _record_id(self.by, "by")
        elif not isinstance(self.by, bytes):
            raise _bad("by is not a record id")

    @property
    def settings_change(self) -> SettingsChange:
        """The change it makes."""
        return SettingsChange.from_wire(self.change)


def _change_map(value: object) -> Mapping[str, Any]:
    """A settings change's wire map, checked and in its one form (read-only)."""
    return MappingProxyType(SettingsChange.from_wire(value).to_wire())


Post = (Profile | CheckIn | Reply | Reaction | Ask | Offer | Followup | Gathering
        | LookingForCrew | CrewCard | Proposal | Answer | Amend | Withdraw | Settings)

_CLASSES: dict[PostKind, type[Any]] = {cls.kind: cls for cls in (
    Profile, CheckIn, Reply, Reaction, Ask, Offer, Followup, Gathering, LookingForCrew,
    CrewCard, Proposal, Answer, Amend, Withdraw, Settings)}
# Looked up once here rather than per decoded post: Enum.__call__ and dataclasses.fields are
# slow in bulk.
_CLASS_OF_VALUE: dict[str, type[Any]] = {kind.value: cls for kind, cls in _CLASSES.items()}
_FIELD_NAMES: dict[type[Any], tuple[str, ...]] = {
    cls: tuple(item.name for item in fields(cls)) for cls in _CLASSES.values()}


def encode_post(post: Post) -> bytes:
    """The plaintext bytes of a post (encrypted by :mod:`meshcrew.spaces.sealing`)."""
    wire: dict[str, Any] = {"k": post.kind.value}
    for item in fields(post):
        value = getattr(post, item.name)
        if isinstance(value, Mapping):
            value = dict(value)
        elif isinstance(value, StrEnum):
            value = value.value
        wire[item.name] = value
    data: bytes = msgpack.packb(wire, use_bin_type=True)
    return data


def decode_post(data: bytes) -> Post:
    """Read a post from its plaintext bytes.

    Unknown fields are ignored (a newer version may add some).

    Raises:
        RecordError: ``Reason.BAD_BODY`` if it is not a valid post of a known kind.
    """
    try:
        wire = msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True)
    except (ValueError, TypeError, OverflowError, msgpack.UnpackException) as exc:
        raise _bad(f"post is not msgpack ({type(exc).__name__})") from None
    if not isinstance(wire, dict):
        raise _bad("post is not a map")
    kind = str(wire.get("k"))
    cls = _CLASS_OF_VALUE.get(kind) if type(kind) is str else None
    if cls is None:
        try:
            cls = _CLASSES[PostKind(kind)]
        except (ValueError, KeyError):
            raise _bad(f"unknown post kind {str(wire.get('k'))[:32]!r}") from None
    args = {name: wire[name] for name in _FIELD_NAMES[cls] if name in wire}
    try:
        post: Post = cls(**args)
    except TypeError:
        raise _bad(f"a {cls.kind.value} lacks a field") from None
    return post
