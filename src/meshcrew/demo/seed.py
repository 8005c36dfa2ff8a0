"""A few weeks of a crew's life, written in-process before any node starts.

Each demo member gets a home folder and an identity; the founder starts a weekly crew and
invites the others; then, week by week, they check in (energy, compass, sometimes an ask),
reply and say "heard you". Every record is signed by its author's own member service with a
shared fake clock set back in time, so the history carries real, backdated timestamps, and
records move between the three replicas by :meth:`~meshcrew.service.Member.ingest` exactly as
they would from a file (the inviter rotates the keys when a joiner arrives, a member posts its
profile when it first holds a key). When the nodes start, sync carries this history to anyone
who joins.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from meshcrew import identity
from meshcrew.demo.cast import ARRIVALS, CREW_NAME, CREW_PURPOSE, HEARD, CheckInLines, Lines
from meshcrew.home import Home
from meshcrew.records import Record
from meshcrew.service import Member
from meshcrew.spaces import Rhythm
from meshcrew.store import Replica

DAY_MS = 24 * 60 * 60 * 1000
WEEK_MS = 7 * DAY_MS


def make_home(path: Path, name: str) -> Home:
    """A new home folder (mode 0700) holding a new identity called ``name``."""
    home = Home(path)
    home.ensure()
    identity.save(identity.Identity.generate(name), home.key_file)
    return home


@dataclass(frozen=True, slots=True)
class SeededCrew:
    """What :func:`seed_crew` made.

    Attributes:
        space_id: the crew.
        homes: the demo members' home folders, the founder's first.
        names: their display names, in the same order.
        records: how many records the crew holds.
    """

    space_id: bytes
    homes: tuple[Home, ...]
    names: tuple[str, ...]
    records: int


@dataclass
class _SeedClock:
    """The one clock the demo members share while the history is written."""

    ms: int

    def __call__(self) -> int:
        return self.ms

    def move_to(self, ms: int) -> None:
        # Chains need each author's records in time order; the schedule is sorted, so this
        # only catches a mistake in it.
        assert ms >= self.ms, "the seeded history must be written in time order"
        self.ms = ms


class _Writer:
    """A demo member's member service, and the records it signed that the others lack yet."""

    def __init__(self, replica: Replica, person: identity.Identity, clock: _SeedClock) -> None:
        self.outbox: list[bytes] = []
        self.member = Member(replica, person, clock=clock, on_records=self._collect)
        self._key = person.public_key

    def _collect(self, records: list[Record]) -> None:
        self.outbox += [r.raw for r in records if r.author == self._key]


class _Crew:
    """The demo members' replicas, open for writing while the history is written."""

    def __init__(self, homes: Sequence[Home], clock: _SeedClock) -> None:
        self.writers: list[_Writer] = []
        self.replicas: list[Replica] = []
        for home in homes:
            replica = Replica.open(home)
            self.replicas.append(replica)
            self.writers.append(_Writer(replica, identity.load(home.key_file), clock))

    def spread(self) -> None:
        """Give every member what the others signed (their housekeeping may sign more)."""
        while any(w.outbox for w in self.writers):
            for writer in self.writers:
                sent, writer.outbox = writer.outbox, []
                if not sent:
                    continue
                for other in self.writers:
                    if other is not writer:
                        other.member.ingest(sent, sender="local")

    def close(self) -> None:
        for replica in self.replicas:
            replica.close()


@dataclass(order=True, frozen=True)
class _Event:
    """One thing a demo member does at ``ts``: check in, or answer a check-in."""

    ts: int
    order: int
    who: int = field(compare=False)
    checkin: CheckInLines = field(compare=False)
    answer: str | None = field(compare=False, default=None)
    """None: ``who`` posts ``checkin``; else ``who`` replies this text (or HEARD: reacts)."""
    about: tuple[int, int] = field(compare=False, default=(0, 0))
    """The (week, author) of the check-in answered."""


def _week_events(lines: Lines, week: int, start: int, span: int, people: int,
                 checkins: int) -> list[_Event]:
    """A week's check-ins (the first ``checkins`` members, at shuffled times) and answers: a
    check-in with an ask always gets its answer, others a reply or "heard you" or nothing."""
    rng = lines.rng
    events: list[_Event] = []
    for who in range(checkins):
        at = start + int(span * rng.uniform(0.05, 0.6))
        said = lines.check_in()
        events.append(_Event(at, 0, who, said))
        others = [p for p in range(people) if p != who]
        for n, other in enumerate(rng.sample(others, rng.randint(1 if said.ask else 0, 2))):
            later = at + int((start + span - at) * rng.uniform(0.1, 0.9))
            reply = (said.ask and n == 0) or rng.random() < 0.4
            answer = lines.reply_to(said.energy, said.ask) if reply else HEARD
            events.append(_Event(later, 0, other, said, answer, (week, who)))
    return events


def seed_crew(root: Path, rng: random.Random, now_ms: int, *, names: Sequence[str],
              weeks: int = 4) -> SeededCrew:
    """Make the demo members' homes under ``root`` and write ``weeks`` weeks of their crew.

    The crew checks in weekly on Mondays (UTC). In the current week only the founder and the
    second member have checked in yet, so the others (and whoever joins) are due.

    Args:
        root: where the home folders go (``root/<name in lower case>``).
        rng: picks times and lines (seed it for a repeatable history).
        now_ms: the present; every record is dated before it.
        names: the members' display names, the founder first (at least two).
        weeks: how many weekly cycles have check-ins, the current one included.
    """
    homes = [make_home(root / name.lower(), name) for name in names]
    rhythm = Rhythm()
    current = rhythm.cycle_at(now_ms).start_ms
    first = current - (weeks - 1) * WEEK_MS
    clock = _SeedClock(first - 3 * DAY_MS)
    crew = _Crew(homes, clock)
    try:
        founder = crew.writers[0].member
        space = founder.create_space(CREW_NAME, purpose=CREW_PURPOSE, rhythm=rhythm)
        codes = [founder.invite(space, expires_ms=clock.ms + WEEK_MS) for _ in homes[1:]]
        crew.spread()
        for writer, code in zip(crew.writers[1:], codes, strict=True):
            clock.move_to(clock.ms + 60 * 60 * 1000)
            writer.member.join(code)
            crew.spread()
        lines = Lines(rng, ARRIVALS)
        events: list[_Event] = []
        for week in range(weeks):
            start = first + week * WEEK_MS
            span = min(WEEK_MS, now_ms - start)
            checkins = len(homes) if week < weeks - 1 else min(2, len(homes))
            events += [replace(e, order=len(events) + n) for n, e in enumerate(
                _week_events(lines, week, start, span, len(homes), checkins))]
        posted: dict[tuple[int, int], bytes] = {}
        for event in sorted(events):
            clock.move_to(event.ts)
            member = crew.writers[event.who].member
            said = event.checkin
            if event.answer is None:
                week = (event.ts - first) // WEEK_MS
                posted[(week, event.who)] = member.checkin(
                    space, text=said.text, energy=said.energy, compass=said.compass,
                    ask=said.ask)
            elif event.answer == HEARD:
                member.react(posted[event.about], emoji=HEARD)
            else:
                member.reply(posted[event.about], text=event.answer)
            crew.spread()
        records = len(founder.export(space))
    finally:
        crew.close()
    return SeededCrew(space, tuple(homes), tuple(names), records)

