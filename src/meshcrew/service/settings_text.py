"""A change of a space's settings written as text: ``name=Moon``, ``rhythm=weekly:thu``,
``quorum=60``, ``purpose=...``, ``edits=proposal`` (or ``anyone``), ``keep_checkins=4`` (cycles,
or ``forever``), ``keep_posts=12``, as the CLI's ``--set`` and the app's proposal form take
them."""

from __future__ import annotations

from collections.abc import Iterable

from meshcrew.errors import InputError
from meshcrew.records import RecordError
from meshcrew.service.rhythm_text import parse_rhythm
from meshcrew.spaces.settings import KEEP_FOREVER, MAX_KEEP_CYCLES, SettingsChange, clean_text

SETTING_NAMES = ("name", "purpose", "rhythm", "quorum", "edits", "keep_checkins", "keep_posts")
_EDITS = {"proposal": True, "anyone": False}


def parse_change(pairs: Iterable[str], *, default_offset_min: int = 0) -> SettingsChange:
    """The change that ``NAME=VALUE`` pairs describe (empty if there are none).

    Raises:
        InputError: a pair is not ``NAME=VALUE``, names no setting, repeats one, or has a value
            out of range.
    """
    values: dict[str, object] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip().lower()
        if not sep or name not in SETTING_NAMES:
            raise InputError(f"{pair!r} is not a setting to change; write NAME=VALUE with NAME "
                             f"one of {', '.join(SETTING_NAMES)}.")
        if name in values:
            raise InputError(f"The setting {name!r} is given twice.")
        values[name] = _value(name, value, default_offset_min)
    try:
        return SettingsChange(
            name=values.get("name"), purpose=values.get("purpose"),  # type: ignore[arg-type]
            rhythm=values.get("rhythm"), quorum=values.get("quorum"),  # type: ignore[arg-type]
            edit_by_proposal=values.get("edits"),  # type: ignore[arg-type]
            keep_checkins=values.get("keep_checkins"),  # type: ignore[arg-type]
            keep_posts=values.get("keep_posts"))  # type: ignore[arg-type]
    except RecordError as exc:
        raise InputError(f"Cannot change the settings so: {exc.detail}.") from None


def parse_keep(value: str) -> int:
    """A retention as typed: a number of cycles, or ``forever`` (0).

    Raises:
        InputError: it is neither.
    """
    text = value.strip().lower()
    if text == "forever":
        return KEEP_FOREVER
    if not text.isdigit() or not 1 <= int(text) <= MAX_KEEP_CYCLES:
        raise InputError(f"Keep posts for a number of cycles from 1 to {MAX_KEEP_CYCLES}, or "
                         f"forever, not {value!r}.")
    return int(text)


def format_keep(cycles: int) -> str:
    """A retention as shown: ``forever`` or ``4 cycles``."""
    return "forever" if cycles == KEEP_FOREVER else \
        f"{cycles} cycle{'s' if cycles != 1 else ''}"


def _value(name: str, value: str, default_offset_min: int) -> object:
    if name == "rhythm":
        return parse_rhythm(value, default_offset_min=default_offset_min)
    if name == "quorum":
        text = value.strip().rstrip("%")
        if not text.isdigit() or not 1 <= int(text) <= 100:
            raise InputError(f"The quorum is a percentage from 1 to 100, not {value!r}.")
        return int(text)
    if name in ("keep_checkins", "keep_posts"):
        return parse_keep(value)
    if name == "edits":
        choice = _EDITS.get(value.strip().lower())
        if choice is None:
            raise InputError("edits is proposal (changes need a passed proposal) or anyone.")
        return choice
    return clean_text(value)
