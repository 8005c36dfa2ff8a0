"""Reading typed values of the space commands: durations, compass scores, local times, files."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from meshcrew.errors import InputError
from meshcrew.records import MAX_TS_MS

_DURATION = re.compile(r"(\d+)\s*([mhdw])\Z")
_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 7 * 86_400_000}
MAX_INVITE_DAYS = 365


def duration_ms(text: str) -> int:
    """``30m``, ``12h``, ``7d`` or ``2w`` in milliseconds.

    Raises:
        InputError: if the text is not such a duration, is zero, or is over a year.
    """
    match = _DURATION.match(text.strip().lower())
    if match is None:
        raise InputError(f"{text!r} is not a duration; write it like 30m, 12h, 7d or 2w.")
    ms = int(match[1]) * _UNIT_MS[match[2]]
    if not 0 < ms <= MAX_INVITE_DAYS * _UNIT_MS["d"]:
        raise InputError(f"A duration is more than nothing and at most {MAX_INVITE_DAYS} days.")
    return ms


def compass_scores(pairs: list[str] | None) -> dict[str, int]:
    """``NAME=N`` pairs (``belonging=4``) as a dict; names are checked by the service.

    Raises:
        InputError: if a pair is not ``NAME=N`` with a whole number, or a name repeats.
    """
    scores: dict[str, int] = {}
    for pair in pairs or ():
        name, sep, value = pair.partition("=")
        name = name.strip().lower()
        if not sep or not name or not value.strip().lstrip("-").isdigit():
            raise InputError(f"{pair!r} is not a compass score; write it like belonging=4.")
        if name in scores:
            raise InputError(f"The compass scale {name!r} is given twice.")
        scores[name] = int(value)
    return scores


def time_ms(text: str) -> int:
    """A date and time (``2026-02-01 18:00``, local unless it names an offset) in UTC ms.

    Raises:
        InputError: if the text is not an ISO date and time, or is before 1970.
    """
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"{text!r} is not a date and time; write it like "
                         "2026-02-01 18:00 (local time) or 2026-02-01T18:00+02:00.") from None
    too_far = InputError(f"{text!r} is too far from today; give a date after 1970.")
    try:
        if when.tzinfo is None:
            when = when.astimezone()
        ms = int(when.timestamp() * 1000)
    except (ValueError, OverflowError, OSError):
        # A date at the edge of the calendar (year 1 or 9999) has no local time or timestamp.
        raise too_far from None
    if not 0 <= ms < MAX_TS_MS:
        raise too_far
    return ms


def file_path(text: str) -> Path:
    """An absolute path (the node, later, may run in another working folder)."""
    return Path(text).expanduser().absolute()
