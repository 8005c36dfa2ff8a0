"""Scenarios of issue 11, each with a real ``meshcrew node`` process per host of the NAT lab.

- ``cone``: both routers masquerade the Linux way. Ana (behind r1) founds a crew and invites;
  Bo (behind r2) joins with the code alone (it holds Ana's address through the relay); both
  check in and each sees the other's check-in; the link between them ends up direct by hole
  punching.
- ``symmetric``: r2 masquerades with a random port per connection, so punching fails; the crew
  still works through the relay and both say "relayed".
- ``relay-gone``: two public members (Rhea, the founder, on ``relay``; Remy on ``relay2``) relay
  for Ana and Bo behind a symmetric NAT; the relay carrying them dies mid-run, the other takes
  over, and nothing written meanwhile is lost.
- ``laptop-sleeps``: after a cone run, Bo's node stops, Bo and Ana both write while it sleeps,
  and it comes back on another port (a new NAT mapping); the crew converges without a new
  invite.

Nodes learn their reachability by dial-backs (``--reachability auto``): relays must conclude
public and laptops private, or the scenario fails. Every wait has a deadline; the lab's
``open_lab`` stops every process and removes every namespace however the run ends. Members act
through the CLI (but the timed join, which asks the node directly: ``LabNode.join_timed``); the
lab reads each node's status, peers and log over its control socket (a
Unix socket in the home folder, which network namespaces do not separate) with the requests
the CLI sends, without a Python process per poll.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from meshcrew.errors import LocalError, MeshcrewError
from meshcrew.home import Home
from meshcrew.netlab.topology import Lab, open_lab
from meshcrew.node.control_client import ControlClient, control_types
from meshcrew.store import Replica

MESHCREW = str(Path(sys.executable).with_name("meshcrew"))
SCENARIOS = ("cone", "symmetric", "relay-gone", "laptop-sleeps", "carrier")
PORTS = {"relay": 4001, "relay2": 4002, "ana": 4010, "bo": 4020}
CLI_TIMEOUT_S = 90.0
POLL_S = 0.05

T = TypeVar("T")


class ScenarioFailed(LocalError):
    """A scenario did not reach the state it waits for in time (the sentence says which)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What ``scripts/netlab --json`` prints for one scenario."""

    scenario: str
    ok: bool
    connection: str
    """How Ana and Bo are linked at the end: ``direct`` or ``relayed`` (``none`` if not)."""
    hole_punch: str
    """``succeeded``, ``failed`` or ``not tried``, as Ana's and Bo's nodes report it."""
    first_record_s: float | None
    """From Bo's node start to Ana's first check-in in Bo's replica."""
    records_agree: bool
    reachability: dict[str, str]
    """Each node's verdict."""
    detail: str = ""
    connect_record_s: float | None = None
    """From Bo's node answering (ready to dial) to Ana's first check-in in Bo's replica."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def wait(condition: Callable[[], T | None], within: float, what: str) -> T:
    """Poll ``condition`` until it returns something true; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        try:
            value = condition()
        except (RuntimeError, ValueError, KeyError):  # a node still starting, a half-written log
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise ScenarioFailed(f"gave up after {within:.0f} s waiting for {what}")
        time.sleep(POLL_S)


class LabNode:
    """One member's home folder and its ``meshcrew node`` inside a host of the lab."""

    def __init__(self, lab: Lab, root: Path, name: str, host: str) -> None:
        self.lab = lab
        self.name = name
        self.host = host
        self.home = root / name.lower()
        self.port = PORTS[host]
        self.process: subprocess.Popen[bytes] | None = None
        self.run("init", "--name", name)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([MESHCREW, "--home", str(self.home), *args], capture_output=True,
                              text=True, timeout=CLI_TIMEOUT_S, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"meshcrew {' '.join(args)} ({self.name}): {done.stderr.strip()}")
        return done

    def cli(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json").stdout)

    def ask(self, op: str, *args: Any, **kwargs: Any) -> Any:
        """Ask the running node over its control socket, as the CLI does; a RuntimeError if
        no node answers (as :meth:`run` when a command fails)."""
        client = ControlClient.if_running(Home(self.home), control_types())
        if client is None:
            raise RuntimeError(f"{self.name}'s node does not answer")
        try:
            return client.call(op, *args, **kwargs)
        except MeshcrewError as exc:
            raise RuntimeError(f"{op} ({self.name}): {exc}") from None

    def log(self, space: str) -> list[dict[str, Any]]:
        """``log --json``'s records of the space (membership events included)."""
        found = self.ask("log", self.ask("resolve_space", space), events=True)
        return [entry.to_json() for entry in found]

    def start(self, *args: str, port: int | None = None) -> float:
        """Start the node and wait until it answers; return the time it was started."""
        if port is not None:
            self.port = port
        out = (self.home / "node.out").open("ab")
        started = time.monotonic()
        self.process = self.lab.popen(self.host, [
            MESHCREW, "--home", str(self.home), "node", "--no-mdns",
            "--listen", f"/ip4/0.0.0.0/tcp/{self.port}", *args], stdout=out,
            stderr=subprocess.STDOUT)
        out.close()
        wait(self._answers, 30, f"{self.name}'s node to start")
        return started

    def _answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise ScenarioFailed(f"{self.name}'s node exited: "
                                 f"{(self.home / 'node.out').read_text(errors='replace')[-800:]}")
        return bool(self.status())

    def stop(self) -> None:
        """SIGTERM by pid; SIGKILL past the deadline."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)

    def status(self) -> dict[str, Any]:
        """What ``status --json`` prints."""
        return dict(json.loads(json.dumps(self.ask("status").to_json())))

    def addr(self) -> str:
        return f"/ip4/{self.lab.addr(self.host)}/tcp/{self.port}/p2p/{self.status()['peer_id']}"

    def peer(self, other: LabNode) -> dict[str, Any] | None:
        want = other.status()["peer_id"] if other.process else None
        for peer in self.ask("peers"):  # the peers of ``peers --json``
            if peer.peer_id == want:
                return dict(json.loads(json.dumps(peer.to_json())))
        return None

    def record_ids(self, space: str) -> set[str]:
        return {str(r["id"]) for r in self.log(space) if "id" in r}

    def has_text(self, space: str, text: str) -> bool:
        return any(r.get("text") == text for r in self.log(space))

    def checkin(self, space: str, text: str) -> bytes:
        """Check in; the record's id."""
        return bytes.fromhex(str(self.cli("checkin", space, "--text", text, "--energy", "3")
                                 ["id"]))

    def holds(self, record_id: bytes) -> bool:
        """Whether the record is in this member's replica (read directly, no CLI process)."""
        if not Home(self.home).replica_file.exists():
            return False
        with Replica.open(Home(self.home), read_only=True) as replica:
            return replica.get(record_id) is not None

    def replica_ids(self, space: str) -> set[bytes]:
        """Ids of every record of the space in this node's replica (members and carriers)."""
        with Replica.open(Home(self.home), read_only=True) as replica:
            return {r.id for r in replica.space_records(bytes.fromhex(space))}

    def join_timed(self, code: str, record_id: bytes, started: float) -> tuple[float, float]:
        """Join with ``code`` through the running node (the call ``meshcrew join`` makes to it)
        while watching the replica; the seconds from ``started``, and from the node being up
        and asked to join, until ``record_id`` was in it.

        The join goes over the control socket, not through a CLI process: a Python's start
        (a second of CPU, several of wall time on a loaded machine) is no part of connecting.
        """
        refused: list[str] = []

        def join() -> None:
            try:
                self.ask("join", code)
            except RuntimeError as exc:
                refused.append(str(exc))

        def arrived() -> float | None:
            if refused:
                raise ScenarioFailed(f"{self.name}'s join failed: {refused[0]}")
            return self.holds(record_id) and time.monotonic()

        joining = threading.Thread(target=join, name=f"{self.name}'s join", daemon=True)
        ready = time.monotonic()
        joining.start()
        at = wait(arrived, 60, f"the record {record_id.hex()[:8]} at {self.name}")
        joining.join(timeout=CLI_TIMEOUT_S)
        if joining.is_alive() or refused:
            raise ScenarioFailed(f"{self.name}'s join did not end: {refused or 'no answer'}")
        return at - started, at - ready

    def verdict(self) -> str:
        return str(self.status()["reachability"]["verdict"])


@contextmanager
def _world(nat_r2: str) -> Iterator[tuple[Lab, Path]]:
    root = Path(tempfile.mkdtemp(prefix="mcl-"))  # short: Unix socket paths are limited
    try:
        with open_lab("cone") as lab:
            if nat_r2 != "cone":
                lab.set_nat("r2", "symmetric")
            yield lab, root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _link(a: LabNode, b: LabNode) -> tuple[str, str]:
    """(``direct``/``relayed``/``none``, hole punch outcome) of a's connection to b."""
    peer = a.peer(b)
    if peer is None or not peer["connected"]:
        return "none", "not tried"
    link = "direct" if peer["link"] in ("direct", "hole-punched") else peer["link"]
    return link, str(peer["hole_punch"])


def _agree(space: str, *nodes: LabNode) -> bool:
    ids = [n.record_ids(space) for n in nodes]
    return all(i == ids[0] for i in ids)


def _crew_behind_nats(lab: Lab, root: Path) -> tuple[LabNode, LabNode, LabNode, str, float,
                                                     float, float]:
    """A public relay (a stranger to the crew), Ana who founds a crew and invites, Bo who joins
    with the code alone; both check in. Returns the nodes, the crew, Bo's start time and the
    seconds until Ana's check-in was in Bo's replica (from Bo's start, and from its node being
    up)."""
    relay = LabNode(lab, root, "Rhea", "relay")
    ana = LabNode(lab, root, "Ana", "ana")
    bo = LabNode(lab, root, "Bo", "bo")
    relay.start()
    ana.start("--bootstrap", relay.addr())
    wait(lambda: relay.verdict() == "public", 30, "the relay to learn it is public")
    wait(lambda: ana.status()["reservations"], 45, "Ana's reservation on the relay")
    space = str(ana.cli("crew", "create", "Crew")["id"])
    first_id = ana.checkin(space, "Ana arriving")
    code = str(ana.cli("invite", space)["code"])
    started = bo.start("--bootstrap", relay.addr())
    first, after_connect = bo.join_timed(code, first_id, started)
    wait(lambda: bo.has_text(space, "Ana arriving"), 30, "Ana's check-in readable at Bo")
    bo.checkin(space, "Bo arriving")
    wait(lambda: ana.has_text(space, "Bo arriving"), 30, "Bo's check-in at Ana")
    return relay, ana, bo, space, first, after_connect, started


def _settled_link(ana: LabNode, bo: LabNode, within: float) -> tuple[str, str]:
    """Wait until the hole punch has an outcome on either side; return the link and outcome."""
    def decided() -> tuple[str, str] | None:
        (link_a, punch_a), (link_b, punch_b) = _link(ana, bo), _link(bo, ana)
        if "succeeded" in (punch_a, punch_b) and link_a == link_b == "direct":
            return "direct", "succeeded"
        if "failed" in (punch_a, punch_b) and link_a == link_b == "relayed":
            return "relayed", "failed"
        return None

    return wait(decided, within, "the hole punch between Ana and Bo to end")


def cone() -> Outcome:
    with _world("cone") as (lab, root):
        relay, ana, bo, space, first, connect, _ = _crew_behind_nats(lab, root)
        link, punch = _settled_link(ana, bo, 45)
        verdicts = _verdicts(relay, ana, bo)
        agree = wait(lambda: _agree(space, ana, bo), 30, "Ana's and Bo's records to agree")
        ok = link == "direct" and punch == "succeeded" and _private(verdicts, relay.name)
        return Outcome("cone", ok, link, punch, round(first, 2), agree, verdicts,
                       connect_record_s=round(connect, 2))


def symmetric() -> Outcome:
    with _world("symmetric") as (lab, root):
        relay, ana, bo, space, first, connect, _ = _crew_behind_nats(lab, root)
        link, punch = _settled_link(ana, bo, 60)
        verdicts = _verdicts(relay, ana, bo)
        agree = wait(lambda: _agree(space, ana, bo), 30, "Ana's and Bo's records to agree")
        ok = link == "relayed" and _private(verdicts, relay.name)
        return Outcome("symmetric", ok, link, punch, round(first, 2), agree, verdicts,
                       connect_record_s=round(connect, 2))


def relay_gone() -> Outcome:
    with _world("symmetric") as (lab, root):
        rhea = LabNode(lab, root, "Rhea", "relay")
        remy = LabNode(lab, root, "Remy", "relay2")
        ana = LabNode(lab, root, "Ana", "ana")
        bo = LabNode(lab, root, "Bo", "bo")
        rhea.start()
        remy.start("--bootstrap", rhea.addr())
        space = str(rhea.cli("crew", "create", "Crew")["id"])
        remy.run("join", str(rhea.cli("invite", space)["code"]))
        relays = ("--relay", rhea.addr(), "--relay", remy.addr())
        ana.start(*relays)
        ana.run("join", str(rhea.cli("invite", space)["code"]))
        wait(lambda: len(ana.status()["reservations"]) == 2, 60, "Ana's reservations on both")
        code = str(ana.cli("invite", space)["code"])
        started = bo.start(*relays)
        bo.run("join", code)
        ana.checkin(space, "Ana before")
        wait(lambda: bo.has_text(space, "Ana before"), 30, "Ana's check-in at Bo")
        first = time.monotonic() - started
        wait(lambda: _link(bo, ana)[0] == "relayed", 60, "Bo relayed to Ana")
        via = str((bo.peer(ana) or {}).get("via"))
        dead, other = (rhea, remy) if via == rhea.status()["peer_id"] else (remy, rhea)
        dead.stop()
        ana.checkin(space, "Ana after")
        bo.checkin(space, "Bo after")
        wait(lambda: bo.has_text(space, "Ana after") and ana.has_text(space, "Bo after"), 60,
             "check-ins written after the relay died to cross")
        link, punch = _link(bo, ana)
        agree = wait(lambda: _agree(space, ana, bo, other), 60, "records to agree")
        verdicts = _verdicts(other, ana, bo)
        ok = agree and link == "relayed" and _private(verdicts, other.name)
        return Outcome("relay-gone", ok, link, punch, round(first, 2), agree, verdicts,
                       f"{dead.name}'s relay died; {other.name} took over")


def laptop_sleeps() -> Outcome:
    with _world("cone") as (lab, root):
        relay, ana, bo, space, first, _, _ = _crew_behind_nats(lab, root)
        _settled_link(ana, bo, 45)
        bo.stop()
        ana.checkin(space, "Ana while Bo slept")
        bo.checkin(space, "Bo offline")  # written to Bo's replica with no node running
        bo.start("--bootstrap", relay.addr(), port=PORTS["bo"] + 1)  # a new NAT mapping
        wait(lambda: bo.has_text(space, "Ana while Bo slept")
             and ana.has_text(space, "Bo offline"), 60, "the crew to converge after sleep")
        link, punch = _settled_link(ana, bo, 45)  # through the relay, then punched again
        agree = wait(lambda: _agree(space, ana, bo), 30, "records to agree")
        verdicts = _verdicts(relay, ana, bo)
        ok = agree and link == "direct" and punch == "succeeded"
        return Outcome("laptop-sleeps", ok, link, punch, round(first, 2), agree, verdicts,
                       "Bo came back on another port")


def carrier() -> Outcome:
    """Ana and Bo, both behind NATs, are never online together; the only node up in between is
    a carrier on the internet (which also relays). Bo gets Ana's check-in through it."""
    with _world("cone") as (lab, root):
        pi = LabNode(lab, root, "Pi", "relay")
        ana = LabNode(lab, root, "Ana", "ana")
        bo = LabNode(lab, root, "Bo", "bo")
        pi.start("--carrier")
        ana.start("--bootstrap", pi.addr())
        wait(lambda: ana.status()["reservations"], 45, "Ana's reservation on the carrier")
        space = str(ana.cli("crew", "create", "Crew")["id"])
        code = str(ana.cli("invite", space)["code"])
        bo.start("--bootstrap", pi.addr())
        bo.run("join", code)
        ana.run("carrier", "add", space, str(pi.cli("carrier", "offer")["code"]))
        bo.stop()
        record = ana.checkin(space, "Ana, while Bo sleeps")
        wait(lambda: pi.holds(record), 30, "the carrier to hold Ana's check-in")
        ana.stop()
        started = bo.start("--bootstrap", pi.addr())
        arrived = wait(lambda: bo.holds(record) and time.monotonic(), 60,
                       "Ana's check-in at Bo through the carrier")
        readable = wait(lambda: bo.has_text(space, "Ana, while Bo sleeps"), 30,
                        "Bo to read Ana's check-in")
        link, punch = _link(bo, pi)
        verdicts = {**_verdicts(pi), bo.name: bo.verdict()}  # Bo's may wait on a rate limit
        agree = wait(lambda: pi.replica_ids(space) == bo.replica_ids(space), 30,
                     "the carrier's and Bo's records to agree")
        ok = readable and agree and verdicts["Pi"] == "public" and verdicts["Bo"] != "public"
        return Outcome("carrier", ok, link, punch, round(arrived - started, 2), agree, verdicts,
                       "Ana and Bo never online together")


def _verdicts(*nodes: LabNode) -> dict[str, str]:
    """Each node's reachability verdict, once none is unknown (dial-backs take a moment after a
    node starts), or as it stands after 30 s."""
    deadline = time.monotonic() + 30
    while True:
        verdicts = {n.name: n.verdict() for n in nodes}
        if "unknown" not in verdicts.values() or time.monotonic() > deadline:
            return verdicts
        time.sleep(0.2)


def _private(verdicts: dict[str, str], public: str) -> bool:
    """The relay concluded public and every laptop private."""
    return all((v == "public") == (name == public) for name, v in verdicts.items())


RUNNERS: dict[str, Callable[[], Outcome]] = {
    "cone": cone, "symmetric": symmetric, "relay-gone": relay_gone,
    "laptop-sleeps": laptop_sleeps, "carrier": carrier}


def run(name: str) -> Outcome:
    """Run one scenario; a scenario that fails says why in ``detail`` instead of raising."""
    try:
        return RUNNERS[name]()
    except ScenarioFailed as exc:
        return Outcome(name, False, "none", "not tried", None, False, {}, str(exc))
