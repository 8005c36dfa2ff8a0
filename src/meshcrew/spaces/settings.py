"""A space's settings: name, purpose, parent congregation and check-in rhythm.

These travel encrypted (see :mod:`meshcrew.spaces.sealing`): a non-member learns none of them.

Rhythm cycles are computed on a fixed calendar, never from the time a space was made:

* ``daily``: each day from 00:00 to 24:00;
* ``weekly``: from 00:00 of the chosen weekday (Monday = 0) to the same time a week later;
* ``fortnightly``: like weekly, two weeks long, counted from the first such weekday on or after
  1970-01-01 (so every replica agrees which weeks start a cycle).

Days are in UTC shifted by ``utc_offset_min`` (a fixed offset: no daylight-saving rules), so a
crew in Wellington can set +720 and see cycles start at their own midnight.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from meshcrew.reasons import Reason
from meshcrew.records import ID_BYTES, RecordError

DAY_MS = 24 * 60 * 60 * 1000
WEEK_MS = 7 * DAY_MS
MAX_UTC_OFFSET_MIN = 14 * 60
MAX_SPACE_NAME_CHARS = 64
MAX_PURPOSE_CHARS = 500
QUORUM_ALL = 100
KEEP_FOREVER = 0
"""Retention of posts: never expire (the default; see :mod:`meshcrew.spaces.retention`)."""
MAX_KEEP_CYCLES = 10_000
"""The default quorum of proposals: everyone (see :mod:`meshcrew.spaces.proposals`)."""
_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Monday = 0)
# Newline and tab lay text out; the zero-width (non-)joiners build emoji and scripts. Other
# format characters (bidi overrides) and controls could disguise or redraw text.
_ALLOWED_CONTROLS = frozenset("\n\t\u200c\u200d")
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co"})


class Period(StrEnum):
    """How often a space checks in."""

    DAILY = "daily"
    WEEKLY = "weekly"
    FORTNIGHTLY = "fortnightly"


@dataclass(frozen=True, slots=True)
class Cycle:
    """One rhythm cycle: ``start_ms <= t < end_ms`` (UTC milliseconds)."""

    index: int
    start_ms: int
    end_ms: int

    def __contains__(self, ts_ms: object) -> bool:
        return isinstance(ts_ms, int) and self.start_ms <= ts_ms < self.end_ms


@dataclass(frozen=True, slots=True)
class Rhythm:
    """The check-in rhythm of a space, e.g. ``Rhythm(Period.WEEKLY, weekday=0)`` for Mondays."""

    period: Period = Period.WEEKLY
    weekday: int = 0
    utc_offset_min: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.period, Period):
            raise TypeError(f"unknown period {self.period!r}")
        if type(self.weekday) is not int or not 0 <= self.weekday <= 6:
            raise ValueError("weekday is 0 (Monday) to 6 (Sunday)")
        if type(self.utc_offset_min) is not int or abs(self.utc_offset_min) > MAX_UTC_OFFSET_MIN:
            raise ValueError(f"utc_offset_min is within ±{MAX_UTC_OFFSET_MIN}")

    @property
    def length_ms(self) -> int:
        """The length of one cycle."""
        return {Period.DAILY: DAY_MS, Period.WEEKLY: WEEK_MS,
                Period.FORTNIGHTLY: 2 * WEEK_MS}[self.period]

    def cycle_at(self, ts_ms: int) -> Cycle:
        """The cycle that contains the instant ``ts_ms``."""
        offset = self.utc_offset_min * 60_000
        anchor = 0 if self.period is Period.DAILY else (
            (self.weekday - _EPOCH_WEEKDAY) % 7) * DAY_MS
        index = (ts_ms + offset - anchor) // self.length_ms
        start = anchor + index * self.length_ms - offset
        return Cycle(index, start, start + self.length_ms)

    def to_wire(self) -> list[Any]:
        """The msgpack-ready form."""
        return [self.period.value, self.weekday, self.utc_offset_min]

    @classmethod
    def from_wire(cls, value: object) -> Rhythm:
        """Read the form made by :meth:`to_wire`; raise RecordError(BAD_BODY) if it is wrong."""
        if not isinstance(value, list) or len(value) != 3:
            raise RecordError(Reason.BAD_BODY, "rhythm is not a list of three")
        try:
            return cls(Period(value[0]), value[1], value[2])
        except (ValueError, TypeError) as exc:
            raise RecordError(Reason.BAD_BODY, f"rhythm: {exc}") from None


def check_text(value: object, field: str, max_chars: int, *, allow_empty: bool = True) -> str:
    """Return ``value`` if it is a string fit to show, or raise RecordError(BAD_BODY).

    Fit to show: NFC-normalised, at most ``max_chars`` characters, and no control or format
    characters other than newline, tab and the zero-width joiners (others could redraw a
    terminal or reverse text).
    """
    if not isinstance(value, str):
        raise RecordError(Reason.BAD_BODY, f"{field} is not text")
    if len(value) > max_chars:
        raise RecordError(Reason.BAD_BODY, f"{field} is longer than {max_chars} characters")
    if not allow_empty and not value.strip():
        raise RecordError(Reason.BAD_BODY, f"{field} is empty")
    # str.isprintable (C) settles almost every text at once; see _has_refused_characters.
    if not str.isprintable(value) and _has_refused_characters(value):
        raise RecordError(Reason.BAD_BODY, f"{field} contains control characters")
    if not unicodedata.is_normalized("NFC", value):
        raise RecordError(Reason.BAD_BODY, f"{field} is not NFC-normalised")
    return value


def _has_refused_characters(text: str) -> bool:
    """Whether ``text`` holds a control, format, surrogate or private-use character other than
    those in ``_ALLOWED_CONTROLS``."""
    # str.isprintable (C, same Unicode database as unicodedata) is False for every character of
    # the refused categories, and also for some that are fine here (Cn, Zs other than " ", Zl,
    # Zp) - so a printable text is clean, and only the rest needs the exact check. Most texts
    # are printable once newlines, tabs and joiners are taken out; each replace is a C scan.
    if str.isprintable(text):
        return False
    rest = text
    for allowed in _ALLOWED_CONTROLS:
        rest = str.replace(rest, allowed, "")
    if str.isprintable(rest):
        return False
    # Rare (a no-break space, an unassigned code point...): the exact check, once per distinct
    # character.
    return any(unicodedata.category(c) in _REFUSED_CATEGORIES for c in set(rest))


def clean_text(value: str) -> str:
    """Normalise text a person typed so it passes :func:`check_text` (NFC, outer space cut)."""
    return unicodedata.normalize("NFC", value).strip()


@dataclass(frozen=True, slots=True)
class SpaceMeta:
    """What a space is called and how it works; encrypted for members only."""

    name: str
    purpose: str = ""
    rhythm: Rhythm = Rhythm()
    parent: bytes | None = None
    """The congregation this crew or dyad belongs to (its space id), if any."""
    quorum: int = QUORUM_ALL
    """How much of the electorate must have answered a proposal at its deadline for it to
    pass without objection: a percentage, 100 (the default) meaning everyone."""
    edit_by_proposal: bool = False
    """In a congregation: whether its settings change only by a passed proposal (in a crew or
    dyad they always do; see :mod:`meshcrew.spaces.editing`)."""
    keep_checkins: int = KEEP_FOREVER
    """How many rhythm cycles check-ins are kept (0: forever); see
    :mod:`meshcrew.spaces.retention`."""
    keep_posts: int = KEEP_FOREVER
    """How many rhythm cycles other conversation posts are kept (0: forever)."""

    def __post_init__(self) -> None:
        check_text(self.name, "name", MAX_SPACE_NAME_CHARS, allow_empty=False)
        check_text(self.purpose, "purpose", MAX_PURPOSE_CHARS)
        if self.parent is not None and (
                not isinstance(self.parent, bytes) or len(self.parent) != ID_BYTES):
            raise RecordError(Reason.BAD_BODY, f"parent is not a {ID_BYTES}-byte space id")
        if type(self.quorum) is not int or not 1 <= self.quorum <= QUORUM_ALL:
            raise RecordError(Reason.BAD_BODY, "quorum is not a percentage from 1 to 100")
        if not isinstance(self.edit_by_proposal, bool):
            raise RecordError(Reason.BAD_BODY, "edit_by_proposal is not true or false")
        for name, cycles in (("keep_checkins", self.keep_checkins),
                             ("keep_posts", self.keep_posts)):
            if type(cycles) is not int or not 0 <= cycles <= MAX_KEEP_CYCLES:
                raise RecordError(Reason.BAD_BODY, f"{name} is not a number of cycles from 0 "
                                  f"(forever) to {MAX_KEEP_CYCLES}")

    def to_wire(self) -> dict[str, Any]:
        """The msgpack-ready form (the quorum only when it is not the default)."""
        wire: dict[str, Any] = {"name": self.name, "purpose": self.purpose,
                                "rhythm": self.rhythm.to_wire(), "parent": self.parent}
        if self.quorum != QUORUM_ALL:
            wire["quorum"] = self.quorum
        if self.edit_by_proposal:
            wire["ebp"] = True
        if self.keep_checkins != KEEP_FOREVER:
            wire["kc"] = self.keep_checkins
        if self.keep_posts != KEEP_FOREVER:
            wire["kp"] = self.keep_posts
        return wire

    @classmethod
    def from_wire(cls, value: object) -> SpaceMeta:
        """Read the form made by :meth:`to_wire`; raise RecordError(BAD_BODY) if it is wrong."""
        if not isinstance(value, dict):
            raise RecordError(Reason.BAD_BODY, "settings are not a map")
        return cls(value.get("name"), value.get("purpose", ""),  # type: ignore[arg-type]
                   Rhythm.from_wire(value.get("rhythm")), value.get("parent"),
                   value.get("quorum", QUORUM_ALL),
                   value.get("ebp", False), value.get("kc", KEEP_FOREVER),
                   value.get("kp", KEEP_FOREVER))


_WIRE_KEYS = {"name": "name", "purpose": "purpose", "rhythm": "rhythm", "quorum": "quorum",
              "edit_by_proposal": "ebp", "keep_checkins": "kc", "keep_posts": "kp"}
"""Each setting a change may make, and its key on the wire (as :meth:`SpaceMeta.to_wire`)."""
_CHANGE_KEYS = tuple(_WIRE_KEYS.values())


@dataclass(frozen=True, slots=True)
class SettingsChange:
    """A change of some of a space's settings (what is None stays as it is).

    The parent congregation never changes. On the wire: a map of the changed settings, with
    the keys of :meth:`SpaceMeta.to_wire` (``ebp`` for ``edit_by_proposal``).
    """

    name: str | None = None
    purpose: str | None = None
    rhythm: Rhythm | None = None
    quorum: int | None = None
    edit_by_proposal: bool | None = None
    keep_checkins: int | None = None
    keep_posts: int | None = None

    def __post_init__(self) -> None:
        # The same checks as the settings themselves: apply it to a stand-in.
        self.apply(SpaceMeta("x"))

    @property
    def empty(self) -> bool:
        """Whether it changes nothing."""
        return self == SettingsChange()

    def apply(self, meta: SpaceMeta) -> SpaceMeta:
        """``meta`` with this change made.

        Raises:
            RecordError: ``bad_body`` if a value is out of range.
        """
        changed = self.changed()
        if "rhythm" in changed and not isinstance(changed["rhythm"], Rhythm):
            raise RecordError(Reason.BAD_BODY, "rhythm is not a rhythm")
        return replace(meta, **changed)

    def changed(self) -> dict[str, Any]:
        """The settings it changes, by name, with their new values (in the fields' order)."""
        return {name: value for name in _WIRE_KEYS if (value := getattr(self, name)) is not None}

    def to_wire(self) -> dict[str, Any]:
        """The msgpack-ready map of what changes."""
        return {_WIRE_KEYS[name]: value.to_wire() if name == "rhythm" else value
                for name, value in self.changed().items()}

    @classmethod
    def from_wire(cls, value: object) -> SettingsChange:
        """Read the form made by :meth:`to_wire`; raise RecordError(BAD_BODY) if it is wrong."""
        if not isinstance(value, Mapping):
            raise RecordError(Reason.BAD_BODY, "the change is not a map")
        unknown = [str(k)[:16] for k in value if k not in _CHANGE_KEYS]
        if unknown:
            raise RecordError(Reason.BAD_BODY, f"the change has no setting {unknown[0]!r}")
        settings = {name: value.get(key) for name, key in _WIRE_KEYS.items()}
        if settings["rhythm"] is not None:
            settings["rhythm"] = Rhythm.from_wire(settings["rhythm"])
        return cls(**settings)


@dataclass(frozen=True, slots=True)
class SettingsSnapshot:
    """The settings as a rotation's author knew them: where a member who cannot read the
    space's history starts (see :mod:`meshcrew.spaces.editing`)."""

    meta: SpaceMeta
    ts: int = 0
    """The signed time of the latest change it includes (0: none)."""
    last: bytes | None = None
    """The ``settings`` post of that change."""

    def to_wire(self) -> dict[str, Any]:
        """The msgpack-ready form."""
        return {"m": self.meta.to_wire(), "t": self.ts, "i": self.last}

    @classmethod
    def from_wire(cls, value: object) -> SettingsSnapshot:
        """Read the form made by :meth:`to_wire`; raise RecordError(BAD_BODY) if it is wrong."""
        if not isinstance(value, Mapping):
            raise RecordError(Reason.BAD_BODY, "the snapshot is not a map")
        ts, last = value.get("t"), value.get("i")
        if type(ts) is not int or not (last is None or (isinstance(last, bytes)
                                                         and len(last) == ID_BYTES)):
            raise RecordError(Reason.BAD_BODY, "the snapshot's position is wrong")
        return cls(SpaceMeta.from_wire(value.get("m")), ts, last)
