"""A check-in rhythm written as text: ``weekly:mon``, ``fortnightly:fri+13:00``, ``daily``.

The form is ``PERIOD[:DAY][±HH:MM]``:

* ``PERIOD`` is ``daily``, ``weekly`` or ``fortnightly``;
* ``DAY`` (weekly and fortnightly only) is a weekday, ``mon`` to ``sun`` or spelt out; weekly
  without a day means Monday;
* ``±HH:MM`` is the fixed offset from UTC at which days start (no daylight-saving rules); when
  left out, the caller's default applies (the CLI uses the machine's current offset).

:func:`format_rhythm` always writes the offset, e.g. ``weekly:mon+00:00``.
"""

from __future__ import annotations

import re

from meshcrew.errors import InputError
from meshcrew.spaces.settings import MAX_UTC_OFFSET_MIN, Period, Rhythm

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_FORM = re.compile(r"(?P<period>[a-z]+)(?::(?P<day>[a-z]+))?"
                   r"(?:(?P<sign>[+-])(?P<hours>\d{1,2})(?::?(?P<minutes>\d{2}))?)?\Z")
_HINT = "write it like weekly:mon, fortnightly:fri+13:00 or daily"


def parse_rhythm(text: str, *, default_offset_min: int = 0) -> Rhythm:
    """The rhythm written in ``text``.

    Raises:
        InputError: if the text is not a rhythm.
    """
    match = _FORM.match("".join(text.split()).lower())
    if match is None:
        raise InputError(f"{text!r} is not a rhythm; {_HINT}.")
    try:
        period = Period(match["period"])
    except ValueError:
        raise InputError(f"{text!r} is not a rhythm: {match['period']!r} is not daily, weekly "
                         f"or fortnightly; {_HINT}.") from None
    day = match["day"]
    if period is Period.DAILY and day is not None:
        raise InputError("A daily rhythm has no weekday; write daily (or daily+02:00).")
    weekday = 0
    if day is not None:
        if day[:3] not in WEEKDAYS or (len(day) > 3 and day not in _FULL_DAYS):
            raise InputError(f"{day!r} is not a weekday (mon, tue, wed, thu, fri, sat, sun).")
        weekday = WEEKDAYS.index(day[:3])
    offset = default_offset_min
    if match["sign"] is not None:
        hours, minutes = int(match["hours"]), int(match["minutes"] or 0)
        if minutes >= 60:
            raise InputError(f"{text!r} has an offset with {minutes} minutes.")
        offset = (hours * 60 + minutes) * (-1 if match["sign"] == "-" else 1)
    if abs(offset) > MAX_UTC_OFFSET_MIN:
        raise InputError(f"A UTC offset is at most ±{MAX_UTC_OFFSET_MIN // 60}:00.")
    return Rhythm(period, weekday, offset)


def format_rhythm(rhythm: Rhythm) -> str:
    """The text form of a rhythm (``weekly:mon+00:00``), which :func:`parse_rhythm` reads."""
    sign = "-" if rhythm.utc_offset_min < 0 else "+"
    hours, minutes = divmod(abs(rhythm.utc_offset_min), 60)
    day = "" if rhythm.period is Period.DAILY else f":{WEEKDAYS[rhythm.weekday]}"
    return f"{rhythm.period.value}{day}{sign}{hours:02d}:{minutes:02d}"
