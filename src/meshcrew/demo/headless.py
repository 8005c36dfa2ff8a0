"""``meshcrew demo --headless``: the demo without a screen, and what it proves.

Your node runs as a ``meshcrew node`` process beside the three demo members'. You check in
once; for the given number of seconds the demo members check in now and then; then the crew's
thread stops, the replicas get a few seconds to converge, and :class:`DemoSummary` reports the
members, how many of the live check-ins reached your node, who holds your check-in, and each
replica's record count and digest: equal digests mean the four replicas hold the same records.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from meshcrew.demo.crew import DemoCrew
from meshcrew.demo.processes import NodeProcess
from meshcrew.errors import MeshcrewError
from meshcrew.records import record_id
from meshcrew.service import MemberEntry

SETTLE_WITHIN_S = 15.0
"""After the live check-ins stop, how long the replicas may take to agree."""

YOUR_CHECKIN = "Checking in from the headless demo: steady, and curious to see this sync."

_POLL_S = 0.1


@dataclass(frozen=True, slots=True)
class ReplicaReport:
    """One node's replica of the crew: its owner, how many records, and their digest."""

    name: str
    records: int
    digest: str

    def to_json(self) -> dict[str, Any]:
        """The ``replicas`` entries of ``demo --headless --json``."""
        return {"name": self.name, "records": self.records, "digest": self.digest}


@dataclass(frozen=True, slots=True)
class DemoSummary:
    """What a headless demo run showed.

    Attributes:
        folder: the demo folder (removed by now unless kept).
        space: the crew's id.
        crew: the crew's name.
        seconds: how long the live part ran.
        members: the names of the crew's current members.
        live_checkins: check-ins the demo members posted while it ran.
        live_received: how many of those your node holds.
        your_checkin: the id of the check-in you posted.
        seen_by: the names of the members known to hold it (you included).
        heard_by: the demo member who said "heard you" to it, if one did.
        replicas: every node's replica of the crew, yours last.
    """

    folder: str
    space: bytes
    crew: str
    seconds: float
    members: tuple[str, ...]
    live_checkins: int
    live_received: int
    your_checkin: bytes
    seen_by: tuple[str, ...]
    heard_by: str | None
    replicas: tuple[ReplicaReport, ...]

    @property
    def agree(self) -> bool:
        """Whether every replica holds the same records."""
        return len({r.digest for r in self.replicas}) == 1

    def to_json(self) -> dict[str, Any]:
        """The ``demo --headless --json`` object (keys in docs/cli.md)."""
        return {"folder": self.folder, "space": self.space.hex(), "crew": self.crew,
                "seconds": self.seconds, "members": list(self.members),
                "live_checkins": self.live_checkins, "live_received": self.live_received,
                "your_checkin": self.your_checkin.hex(), "seen_by": list(self.seen_by),
                "heard_by": self.heard_by, "agree": self.agree,
                "replicas": [r.to_json() for r in self.replicas]}

    def lines(self) -> list[str]:
        """The summary for a person."""
        replicas = ", ".join(f"{r.name} {r.records}" for r in self.replicas)
        verdict = (f"all agree (digest {self.replicas[0].digest[:16]})" if self.agree
                   else "they DIFFER")
        heard = f"; {self.heard_by} said \"heard you\"" if self.heard_by else ""
        return [
            f"meshcrew demo: {self.seconds:g} s of {self.crew} on loopback",
            f"  members        {len(self.members)}: {', '.join(self.members)}",
            f"  live           {self.live_checkins} check-ins by the demo members while it "
            f"ran; {self.live_received} reached your node",
            f"  your check-in  held by {', '.join(self.seen_by) or 'no one yet'}{heard}",
            f"  replicas       records: {replicas}; {verdict}",
        ]


def replica_report(node: NodeProcess, space: bytes) -> ReplicaReport:
    """``node``'s records of the crew (through its control socket) and their digest."""
    raws: list[bytes] = node.call("export", space)
    ids = sorted(record_id(raw) for raw in raws)
    return ReplicaReport(node.name, len(ids), hashlib.sha256(b"".join(ids)).hexdigest())


def run_headless(demo: DemoCrew, seconds: float) -> DemoSummary:
    """Set the demo up with your node as a process, run it ``seconds``, and sum it up.

    The caller owns ``demo`` (leaving its block stops everything).
    """
    demo.set_up(your_node_process=True)
    you, space = demo.your_node, demo.space_id
    assert you is not None
    assert demo.live is not None
    assert demo.root is not None
    demo.progress(f"Running for {seconds:g} s: you check in, the demo members check in "
                  "now and then")
    mine: bytes = you.call("checkin", space, text=YOUR_CHECKIN, energy=4,
                           compass={"belonging": 4, "connection": 5})
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(min(_POLL_S, max(0.0, end - time.monotonic())))
    live = demo.live.stop()
    demo.progress("Waiting for the replicas to agree")
    replicas = _settled(demo.nodes, space)
    held = {record_id(raw) for raw in you.call("export", space)}
    members: list[MemberEntry] = you.call("members", space)
    names = {m.key: m.name for m in members}
    seen: list[bytes] = you.call("seen_by", mine)
    return DemoSummary(
        folder=str(demo.root), space=space, crew=you.call("summary", space).name or "",
        seconds=seconds,
        members=tuple(m.name for m in members if m.status == "active"),
        live_checkins=len(live.checkins),
        live_received=sum(1 for rid in live.checkins if rid in held),
        your_checkin=mine, seen_by=tuple(sorted(names.get(k, k.hex()[:8]) for k in seen)),
        heard_by=live.heard.get(mine), replicas=replicas)


def _settled(nodes: list[NodeProcess], space: bytes) -> tuple[ReplicaReport, ...]:
    """Every node's report once all digests are equal, or as they are at the deadline."""
    deadline = time.monotonic() + SETTLE_WITHIN_S
    while True:
        try:
            reports = tuple(replica_report(node, space) for node in nodes)
        except MeshcrewError:
            if time.monotonic() > deadline:
                raise
            reports = ()
        if reports and len({r.digest for r in reports}) == 1:
            return reports
        if time.monotonic() > deadline:
            return reports
        time.sleep(_POLL_S * 5)
