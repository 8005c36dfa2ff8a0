"""How the screens write times, energies, ids and names for a person.

Times are shown in the app's time zone (the machine's by default; tests fix UTC so snapshots do
not depend on where they run). Relative times ("5 min ago") are measured from the backend's
clock, never the wall clock, for the same reason.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

from meshcrew.errors import InputError
from meshcrew.identity import fingerprint
from meshcrew.service.rhythm_text import parse_rhythm
from meshcrew.spaces import Period

SPARK_BLOCKS = "▁▂▄▆█"
"""Energy 1 to 5 as a bar of rising height."""

ENERGY_MAX = 5


def when(ts_ms: int, tz: tzinfo | None) -> str:
    """A short absolute time, e.g. ``Mon 5 Jan 09:30``."""
    moment = datetime.fromtimestamp(ts_ms / 1000, tz or UTC)
    return f"{moment:%a} {moment.day} {moment:%b %H:%M}"


def day(ts_ms: int, tz: tzinfo | None) -> str:
    """A date, e.g. ``Mon 5 Jan``."""
    moment = datetime.fromtimestamp(ts_ms / 1000, tz or UTC)
    return f"{moment:%a} {moment.day} {moment:%b}"


def ago(ts_ms: int | None, now_ms: int) -> str:
    """How long ago, coarsely: ``just now``, ``5 min ago``, ``3 h ago``, ``2 days ago``."""
    if ts_ms is None:
        return "never"
    seconds = max(0, now_ms - ts_ms) // 1000
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    days = seconds // 86400
    return "1 day ago" if days == 1 else f"{days} days ago"


def energy_text(energy: int) -> str:
    """Energy 1 to 5 as ``3/5`` (digits: every terminal font draws them one cell wide)."""
    return f"{max(0, min(ENERGY_MAX, energy))}/{ENERGY_MAX}"


def sparkline(energies: list[int], width: int) -> str:
    """The last ``width`` energies (1 to 5) as a text sparkline, e.g. ``▂▄█▆``."""
    shown = energies[-width:] if width > 0 else []
    return "".join(SPARK_BLOCKS[max(1, min(5, value)) - 1] for value in shown)


def short_id(value: bytes) -> str:
    """The first 8 hex digits of an id (what the CLI accepts as a prefix)."""
    return value.hex()[:8]


def member_label(name: str, key: bytes, *, show_fingerprint: bool) -> str:
    """A member's name, with their fingerprint when asked for."""
    return f"{name} ({fingerprint(key)})" if show_fingerprint else name


def one_line(text: str) -> str:
    """Text with its line breaks and runs of space folded to single spaces."""
    return " ".join(text.split())


def plural(count: int, noun: str) -> str:
    """``1 member``, ``3 members``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def rhythm_label(text: str) -> str:
    """A rhythm in words: ``weekly:mon+00:00`` → ``weekly on Mondays (UTC+00:00)``."""
    try:
        rhythm = parse_rhythm(text)
    except InputError:
        return text
    offset = text[-6:] if text[-6] in "+-" else "+00:00"
    when = "" if rhythm.period is Period.DAILY else f" on {_DAY_NAMES[rhythm.weekday]}s"
    return f"{rhythm.period.value}{when} (UTC{offset})"
