"""``meshcrew node`` processes for multi-process tests: start, wait for readiness, drive, stop.

Every wait has a deadline and polls a condition, never a fixed sleep: a running node is asked
over its control socket (a CLI command would start a Python per poll). Every process is stopped
by its pid at teardown (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from meshcrew import identity
from meshcrew.home import Home
from meshcrew.node import ControlClient, NodeStatus, control_types
from meshcrew.node.peerbook import PeerBook
from meshcrew.node.stopping import OwnClock
from meshcrew.service import Member
from meshcrew.store import Replica

MESHCREW = str(Path(sys.executable).with_name("meshcrew"))
LOOPBACK = "/ip4/127.0.0.1/tcp/0"
CLI_TIMEOUT_S = 60.0
POLL_S = 0.05
_TYPES = control_types()


def wait_for(condition: Callable[[], bool], within: float = 20.0, what: str = "") -> None:
    """Return once ``condition()`` holds; fail the test after ``within`` seconds.

    Between checks it rests ``POLL_S``, or as long as the check took if longer: a costly
    check (long logs of several nodes) runs at most half the time, the nodes under test the
    rest.
    """
    deadline = time.monotonic() + within
    while True:
        started = time.monotonic()
        if condition():
            return
        now = time.monotonic()
        if now > deadline:
            pytest.fail(f"gave up after {within:.0f} s waiting for {what or condition}")
        time.sleep(max(POLL_S, now - started))


def wait_while_growing(count: Callable[[], int], target: int, *, quiet_s: float = 20.0,
                       what: str = "") -> None:
    """Return once ``count()`` is ``target``; fail the test once it has not changed for
    ``quiet_s`` seconds. For work that takes CPU (a catch-up verifying and storing thousands
    of records): on a loaded machine it is slow, not stuck, so it fails when progress stops,
    not at a fixed total (docs/testing.md)."""
    last, moved = count(), time.monotonic()
    while last != target:
        if time.monotonic() - moved > quiet_s:
            pytest.fail(f"{what or 'the count'} stayed at {last} (of {target}) for "
                        f"{quiet_s:.0f} s")
        time.sleep(POLL_S)
        now = count()
        if now != last:
            last, moved = now, time.monotonic()


class NodeProcess:
    """One member's home folder and (while it runs) its ``meshcrew node`` process."""

    def __init__(self, root: Path, name: str, *, wrap: Sequence[str] = ()) -> None:
        self.name = name
        self.home = Home(root / name.lower())
        self.wrap = list(wrap)
        """A command the node runs under (e.g. ``ip netns exec NS``)."""
        self.process: subprocess.Popen[bytes] | None = None
        # What `meshcrew init` does, without starting a Python for it (the CLI's own tests
        # cover init): a home folder and a new identity in its key file.
        self.home.ensure()
        identity.save(identity.Identity.generate(name), self.home.key_file)
        self.key = identity.load(self.home.key_file).public_key
        """The member's public key."""

    # --- the CLI -------------------------------------------------------------------------------

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``meshcrew --home HOME ARGS``."""
        done = subprocess.run([MESHCREW, "--home", str(self.home.path), *args],
                              capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False)
        if check and done.returncode != 0:
            pytest.fail(f"meshcrew {' '.join(args)} failed for {self.name}: {done.stderr}")
        return done

    def cli(self, *args: str) -> Any:
        """Run a command with ``--json`` and return its object."""
        return json.loads(self.run(*args, "--json").stdout)

    def cli_log(self, space: str) -> list[dict[str, Any]]:
        """``log --json`` of a space through the CLI: every record, membership events
        included, oldest first."""
        return list(self.cli("log", space)["records"])

    def log(self, space: str) -> list[dict[str, Any]]:
        """What ``log --json`` lists of a space (:meth:`cli_log`), asked of the running node
        over its control socket as the CLI asks it, without a Python per poll (one costs a
        few tenths of a second of CPU, taken from the nodes under test); through the CLI when
        no node runs."""
        client = ControlClient.if_running(self.home, _TYPES)
        if client is None:
            return self.cli_log(space)
        entries = client.call("log", client.call("resolve_space", space), events=True)
        # the values as the CLI prints them (tuples become lists)
        return list(json.loads(json.dumps([e.to_json() for e in entries])))

    def texts(self, space: str) -> set[str]:
        """The texts of the space's posts (:meth:`log`)."""
        return {str(p["text"]) for p in self.log(space) if "text" in p}

    # --- the node ------------------------------------------------------------------------------

    def start(self, *args: str, listen: str | None = LOOPBACK) -> None:
        """Start ``meshcrew node`` (no mDNS unless given) and wait until it answers."""
        self.launch(*args, listen=listen)
        self.wait_ready()

    def wait_ready(self, within: float = 30.0) -> None:
        """Wait until the launched node answers on its control socket, for ``within`` seconds
        of the node's own time: its waits for a CPU on a loaded machine are not counted (at
        load 7 a start ran 1.5 s and waited 12.8 s for a CPU; chaos runs at load 8 gave up)."""
        clock = OwnClock(self.pid)
        while not self._answers():
            if clock.seconds() > within:
                pytest.fail(f"gave up after {within:.0f} s of its own waiting for "
                            f"{self.name}'s node to start")
            time.sleep(POLL_S)

    def launch(self, *args: str, listen: str | None = LOOPBACK) -> None:
        """Start ``meshcrew node`` (no mDNS unless ``--mdns`` is given) without waiting."""
        assert self.process is None or self.process.poll() is not None
        extra = ["--listen", listen] if listen else []
        if "--mdns" in args:
            args = tuple(a for a in args if a != "--mdns")
        else:
            extra.append("--no-mdns")
        out = open(self.home.path / "node.out", "ab")  # noqa: SIM115 (the process owns it)
        self.process = subprocess.Popen(
            [*self.wrap, MESHCREW, "--home", str(self.home.path), "node", *extra, *args],
            stdout=out, stderr=subprocess.STDOUT)
        out.close()

    def _answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            output = (self.home.path / "node.out").read_text(errors="replace")
            pytest.fail(f"{self.name}'s node exited ({self.process.returncode}): {output}")
        return ControlClient.if_running(self.home, _TYPES) is not None

    def call(self, op: str, *args: Any, **kwargs: Any) -> Any:
        """Ask the running node directly over its control socket."""
        client = ControlClient.if_running(self.home, _TYPES)
        assert client is not None, f"{self.name}'s node is not running"
        return client.call(op, *args, **kwargs)

    def status(self) -> NodeStatus:
        """The running node's status."""
        status: NodeStatus = self.call("status")
        return status

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self, *, within: float = 5.0, signum: int = signal.SIGTERM) -> float:
        """Send ``signum`` and wait for the exit (SIGKILL after ``within`` seconds of the node's
        own time); return the node's own time to stop (see :func:`stop_all`)."""
        return stop_all(self, within=within, signum=signum)[0]

    def kill(self) -> None:
        """SIGKILL the node: no chance to clean up."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def rss_mb(self) -> float:
        """The node process's resident memory."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0


class Fleet:
    """Nodes of one test, in short home paths (Unix socket paths are limited to 108 bytes)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="mc-"))
        self.nodes: list[NodeProcess] = []

    def make(self, *names: str, wrap: Sequence[str] = ()) -> list[NodeProcess]:
        """Initialised homes (nodes not started)."""
        made = [NodeProcess(self.root, name, wrap=wrap) for name in names]
        self.nodes += made
        return made

    def close(self) -> None:
        """Stop every node still running and remove the homes."""
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.kill()
                node.process.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    """Node processes that are all stopped when the test ends, however it ends."""
    made = Fleet()
    try:
        yield made
    finally:
        made.close()


def start_all(*nodes: NodeProcess) -> None:
    """Start several nodes at once and wait until each answers."""
    for node in nodes:
        node.launch()
    for node in nodes:
        node.wait_ready()


def stop_all(*nodes: NodeProcess, within: float = 5.0,
             signum: int = signal.SIGTERM) -> list[float]:
    """Send ``signum`` to several nodes at once and wait until each has exited (SIGKILL after
    ``within`` seconds of its own time); return each one's own time to stop, from the signal to
    its exit (:class:`OwnClock`; 0.0 for a node not running).

    Its own, as for its start (:meth:`NodeProcess.wait_ready`): at load 7, three nodes stopping
    at once took up to 6.1 s of wall time, and one stopping mid-sync 3.3 s.
    """
    clocks = {node: OwnClock(node.pid) for node in nodes
              if node.process is not None and node.process.poll() is None}
    for node in clocks:
        node.process.send_signal(signum)  # type: ignore[union-attr]
    took: dict[NodeProcess, float] = {}
    while len(took) < len(clocks):
        for node, clock in clocks.items():
            if node in took:
                continue
            if _exited(node.pid):  # its run-queue wait is still readable until it is reaped
                took[node] = clock.seconds()
            elif clock.seconds() > within:
                node.process.kill()  # type: ignore[union-attr]
        time.sleep(POLL_S / 5)  # the stop's measure is this fine
    for node in clocks:
        node.process.wait(timeout=10)  # type: ignore[union-attr]
    return [took.get(node, 0.0) for node in nodes]


def _exited(pid: int) -> bool:
    """Whether the child ``pid`` has exited, without reaping it (its ``/proc`` entry stays);
    True for one already reaped (``Popen.send_signal`` and ``kill`` reap a child that exited)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def crew_of(founder: NodeProcess, *joiners: NodeProcess, name: str = "Crew") -> str:
    """A crew created on the founder's running node, joined by each joiner through the CLI
    (their nodes running or not); returns the space id (hex)."""
    space = str(founder.cli("crew", "create", name)["id"])
    for joiner in joiners:
        code = str(founder.cli("invite", space)["code"])
        joiner.run("join", code)
    return space


def crew_in_process(founder: NodeProcess, *joiners: NodeProcess, name: str = "Crew",
                    **settings: Any) -> str:
    """A crew made and joined offline, in this process, while none of the nodes runs (what
    ``join CODE --from FILE`` does, without a Python per command); every home ends with every
    record. Returns the space id (hex). The nodes know no addresses yet (see :func:`remember`).
    ``settings`` go to :meth:`Member.create_space` (``rhythm``, ``keep_checkins``, ...).
    """
    with ExitStack() as stack:
        members = [Member(stack.enter_context(Replica.open(n.home)), identity.load(n.home.key_file),
                          clock=lambda: time.time_ns() // 1_000_000)
                   for n in (founder, *joiners)]
        first = members[0]
        space = first.create_space(name, **settings)
        for joiner in members[1:]:
            code = first.invite(space, expires_ms=first.now() + 3_600_000)
            joiner.ingest(first.export(space), sender="file")
            joiner.join(code)
            first.ingest(joiner.export(space), sender="file")  # the inviter rotates the keys
        for _ in range(5):  # until every home has every record (profiles follow the keys)
            moved = sum(len(b.ingest(a.export(space), sender="file").accepted)
                        for a in members for b in members if a is not b)
            if not moved:
                break
    return space.hex()


def remember(node: NodeProcess, *others: NodeProcess) -> None:
    """Put the running ``others``' addresses in ``node``'s peer book (its node not running), as
    an invite code would."""
    book = PeerBook.load(node.home)
    for other in others:
        status = other.status()
        book.learn(status.peer_id, list(status.addrs), source="invite")
    book.save()


def environ_without_home() -> dict[str, str]:
    """The environment without MESHCREW_HOME (each command gets --home)."""
    return {k: v for k, v in os.environ.items() if k != "MESHCREW_HOME"}
