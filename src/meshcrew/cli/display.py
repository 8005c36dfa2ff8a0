"""How the space commands show things to a person: times, short ids, log lines, sparklines.

Text output is for people and may change; scripts use ``--json`` (see docs/cli.md).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from meshcrew.service import MemberEntry, PostEntry, ProposalEntry, SpaceSummary

SHORT_ID = 8
"""Hex digits shown for an id (any unique prefix of 4 or more is accepted back)."""

_SPARKS = "▁▂▃▄▅"


def short(value: bytes) -> str:
    """The first hex digits of an id or key."""
    return value.hex()[:SHORT_ID]


def local_time(ms: int) -> str:
    """A UTC millisecond time as local ``YYYY-MM-DD HH:MM``."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone().strftime("%Y-%m-%d %H:%M")


def one_line(text: str, limit: int = 100) -> str:
    """Text squeezed onto one line, cut at ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def sparkline(energies: list[int]) -> str:
    """Energy scores 1-5 as a row of bars."""
    return "".join(_SPARKS[min(max(e, 1), 5) - 1] for e in energies)


def space_line(space: SpaceSummary) -> str:
    """One line of ``meshcrew spaces``."""
    name = space.name if space.name is not None else f"(locked: {space.locked_because})"
    flags = []
    if space.my_status != "active":
        flags.append(space.my_status)
    if space.waiting_for_keys:
        flags.append("waiting for the keys")
    if space.needs_checkin:
        flags.append("your check-in is due")
    members = f"{space.members} member{'s' if space.members != 1 else ''}"
    rhythm = space.rhythm or ""
    tail = f"  ({', '.join(flags)})" if flags else ""
    return f"{short(space.id)}  {name:<24} {space.kind:<12} {members:<11} {rhythm:<17}{tail}"


def member_line(member: MemberEntry) -> str:
    """One line of ``meshcrew members``."""
    marks = [m for m, on in (("you", member.is_me), ("founder", member.is_founder)) if on]
    status = "" if member.status == "active" else f"  {member.status}"
    mark = f"  ({', '.join(marks)})" if marks else ""
    return (f"{member.fingerprint}  {member.name:<24} joined {local_time(member.joined_ts)}"
            f"{status}{mark}")


def _describe(entry: PostEntry) -> str:
    f: dict[str, Any] = dict(entry.fields)
    match entry.kind:
        case "checkin":
            compass = " ".join(f"{k} {v}" for k, v in f["compass"].items())
            ask = f"  ask: {one_line(f['ask'], 60)}" if f.get("ask") else ""
            parts = [f"check-in, energy {f['energy']}", compass]
            return f"{', '.join(p for p in parts if p)}: {one_line(f['text'])}{ask}"
        case "reply":
            return f"reply to {f['to'].hex()[:SHORT_ID]}: {one_line(f['text'])}"
        case "reaction":
            return f"reacted {f['text']} to {f['to'].hex()[:SHORT_ID]}"
        case "followup":
            closes = " (closes it)" if f.get("closes") else ""
            return f"follow-up on {f['to'].hex()[:SHORT_ID]}{closes}: {one_line(f['text'])}"
        case "ask" | "offer":
            text = f": {one_line(f['text'])}" if f.get("text") else ""
            return f"{entry.kind} {one_line(f['title'], 60)!r}{text}"
        case "gathering":
            return (f"gathering {one_line(f['title'], 60)!r} on {local_time(f['when_ms'])} at "
                    f"{one_line(f['where'], 60)}")
        case "profile":
            return f"profile: {f['name']}" + (f" — {one_line(f['bio'], 60)}" if f["bio"] else "")
        case "looking_for_crew":
            return "is looking for a crew" if f["looking"] else "is no longer looking for a crew"
        case "crew_card":
            state = "open to new crewmates" if f["open"] else "not taking new crewmates"
            return f"crew card of {f['name']}: {state}"
        case "proposal":
            return (f"proposed {one_line(f['title'], 60)!r} (until "
                    f"{local_time(f['deadline_ms'])})")
        case "answer":
            reason = f": {one_line(f['reason'], 60)}" if f.get("reason") else ""
            return (f"answered {f['to'].hex()[:SHORT_ID]} "
                    f"{str(f['position']).replace('_', ' ')}{reason}")
        case "amend":
            return f"amended {f['to'].hex()[:SHORT_ID]}: {one_line(f['title'], 60)!r}"
        case "withdraw":
            return f"withdrew {f['to'].hex()[:SHORT_ID]}"
        case "settings":
            what = ", ".join(f"{k} = {v}" for k, v in f["change"].items())
            return f"changed the settings: {what}"
    return _describe_event(entry, f)


def _describe_event(entry: PostEntry, f: dict[str, Any]) -> str:
    match entry.kind:
        case "genesis":
            return f"founded the {f['space_kind']}"
        case "invite":
            uses = f"{f['uses']} use{'s' if f['uses'] != 1 else ''}"
            return f"made an invite ({uses}, until {local_time(f['expires_ms'])})"
        case "join":
            return f"joined (invited by {f['invited_by_name']})"
        case "leave":
            return "left"
        case "remove":
            done = ", in effect" if f["effective"] else ""
            return f"proposed removing {f['member_name']}{done}"
        case "consent":
            return f"consented to removing {f['member_name']}"
        case "keys":
            return f"rotated the keys (now {f['recipients']} members hold them)"
        case "revoke":
            return f"revoked the invite {f['invite'].hex()[:SHORT_ID]}"
        case "locked":
            return "a post you hold no key for"
    return f"something this version of meshcrew does not show yet ({entry.kind})"


def log_line(entry: PostEntry) -> str:
    """One line of ``meshcrew log``."""
    return (f"{local_time(entry.ts)}  {short(entry.id)}  {one_line(entry.author_name, 20):<20}"
            f"  {_describe(entry)}")


_STATUS_WORDS = {"open": "open", "blocked": "blocked", "passed": "passed",
                 "expired": "expired (too few answers by the deadline)",
                 "withdrawn": "withdrawn"}


def proposal_lines(entry: ProposalEntry) -> list[str]:
    """A proposal in ``meshcrew proposals``: its head line, who answered what, who is awaited."""
    if entry.decided_ms is not None:
        when = f"since {local_time(entry.decided_ms)}"
    else:
        when = f"until {local_time(entry.deadline_ms)}"
    quorum = "everyone" if entry.quorum == 100 else f"{entry.quorum}% ({entry.needed})"
    lines = [f"{short(entry.id)}  {one_line(entry.title, 60)!r} by {entry.proposer_name}: "
             f"{_STATUS_WORDS.get(entry.status, entry.status)} {when}; quorum {quorum}"]
    if entry.text:
        lines.append(f"    {one_line(entry.text)}")
    if entry.change is not None:
        what = ", ".join(f"{k} = {v}" for k, v in entry.change.items())
        done = " (made)" if entry.carried_out else ""
        lines.append(f"    changes the settings: {what}{done}")
    if entry.amendments:
        lines.append(f"    amended {entry.amendments} time{'s' if entry.amendments > 1 else ''}")
    for answer in entry.answers:
        reason = f": {one_line(answer.reason, 70)}" if answer.reason else ""
        earlier = " (to an earlier version)" if answer.before_amendment else ""
        lines.append(f"    {answer.name}: {answer.position.replace('_', ' ')}{reason}{earlier}")
    if entry.waiting:
        lines.append(f"    waiting for: {', '.join(k.name for k in entry.waiting)}")
    return lines
