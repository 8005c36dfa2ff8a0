"""The demo crew while the demo runs: now and then a demo member checks in, and when you check
in, one of them says "heard you" a few seconds later.

Everything goes through the demo nodes' control sockets, exactly as ``meshcrew --home H checkin
...`` does while a node runs, so each record is signed by that member's node and reaches you by
gossip and sync: what you see arrive is live sync between separate processes. The crew runs on a
thread of the demo process (its calls are blocking socket calls); :meth:`LiveCrew.stop` ends it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from meshcrew.demo.cast import HEARD, LIVE_ARRIVALS, Lines
from meshcrew.demo.processes import NodeProcess
from meshcrew.errors import MeshcrewError
from meshcrew.service import PostEntry

log = logging.getLogger("meshcrew.demo")

LOOK_EVERY_S = 1.0
"""How often the crew looks for your new check-ins (and for its own next turn)."""


@dataclass
class LiveReport:
    """What the crew did while it ran.

    Attributes:
        checkins: ids of the check-ins the demo members posted, in order.
        heard: your check-ins a demo member has said "heard you" to, and by whom.
        errors: calls that failed (a node busy or stopping), as sentences.
    """

    checkins: list[bytes] = field(default_factory=list)
    heard: dict[bytes, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


class LiveCrew:
    """Demo members who keep checking in, on a thread.

    Args:
        members: the demo members' running nodes.
        space_id: the crew.
        you: your member key (your check-ins get a "heard you").
        rng: picks who checks in, what they say and when.
        every_s: the mean time between two demo check-ins (each wait is 0.66 to 1.33 times it).
        first_after_s: when the first demo check-in comes.
    """

    def __init__(self, members: Sequence[NodeProcess], space_id: bytes, you: bytes, *,
                 rng: random.Random, every_s: float, first_after_s: float) -> None:
        self.members = list(members)
        self.space_id = space_id
        self.you = you
        self.report = LiveReport()
        self._rng = rng
        self._lines = Lines(rng, LIVE_ARRIVALS, ask_chance=0.1)
        self._every_s = every_s
        self._first_after_s = first_after_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: set[bytes] = set()
        self._answer_at: dict[bytes, tuple[float, NodeProcess]] = {}

    def start(self) -> None:
        """Start the crew's thread."""
        self._thread = threading.Thread(target=self._run, name="meshcrew-demo-crew", daemon=True)
        self._thread.start()

    def stop(self, within: float = 5.0) -> LiveReport:
        """Stop the thread (a call in flight finishes first); return what the crew did."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(within)
        return self.report

    def _run(self) -> None:
        start = time.monotonic()
        next_checkin = start + self._first_after_s
        # Whoever has not checked in this cycle goes first, as in a real crew.
        order = self._due_first()
        while not self._stop.wait(LOOK_EVERY_S):
            now = time.monotonic()
            if now >= next_checkin:
                who = order.pop(0) if order else self._rng.choice(self.members)
                self._check_in(who)
                next_checkin = now + self._every_s * self._rng.uniform(0.66, 1.33)
            self._answer_you(now)

    def _due_first(self) -> list[NodeProcess]:
        try:
            cycle = self.members[0].call("cycle", self.space_id)
        except MeshcrewError as exc:
            self.report.errors.append(str(exc))
            return []
        due = {m.name for m in cycle.missing}
        return [node for node in self.members if node.name in due]

    def _check_in(self, who: NodeProcess) -> None:
        said = self._lines.check_in()
        try:
            record_id: bytes = who.call("checkin", self.space_id, text=said.text,
                                        energy=said.energy, compass=said.compass, ask=said.ask)
        except MeshcrewError as exc:
            self.report.errors.append(f"{who.name}: {exc}")
            log.warning("demo check-in by %s failed: %s", who.name, exc)
            return
        self.report.checkins.append(record_id)

    def _answer_you(self, now: float) -> None:
        """Find your new check-ins; say "heard you" to each a few seconds after it arrived."""
        try:
            entries: list[PostEntry] = self.members[0].call("log", self.space_id)
        except MeshcrewError as exc:
            self.report.errors.append(str(exc))
            return
        for entry in entries:
            if entry.kind == "checkin" and entry.author == self.you and entry.id not in self._seen:
                self._seen.add(entry.id)
                who = self._rng.choice(self.members)
                self._answer_at[entry.id] = (now + self._rng.uniform(2.0, 4.0), who)
        for record_id, (when, who) in list(self._answer_at.items()):
            if now < when:
                continue
            try:
                who.call("react", record_id, emoji=HEARD)
            except MeshcrewError as exc:  # e.g. not synced to this member yet: try again soon
                self.report.errors.append(f"{who.name}: {exc}")
                self._answer_at[record_id] = (now + 1.0, who)
                continue
            del self._answer_at[record_id]
            self.report.heard[record_id] = who.name
