"""``meshcrew node`` processes and crews for the node benchmarks, without the test tools.

The benchmarks must run after either of the README's set-up commands, and ``scripts/demo``
installs no pytest: so nothing here imports the test package. The processes are the demo's
(:mod:`meshcrew.demo.processes`: on loopback, stopped by pid, never outliving this process);
crews are made with the CLI or in-process, and long histories with :func:`mint_checkins`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from meshcrew import identity
from meshcrew.demo.processes import NodeProcess as DemoNode
from meshcrew.demo.processes import stop_all, wait_all_ready
from meshcrew.home import Home
from meshcrew.identity import Identity
from meshcrew.node import NodeStatus
from meshcrew.records import sign_record
from meshcrew.service import Member
from meshcrew.spaces import CheckIn, seal_post
from meshcrew.store import Replica

MESHCREW = str(Path(sys.executable).with_name("meshcrew"))
POLL_S = 0.05


class BenchTimeout(RuntimeError):
    """A benchmark waited longer than its deadline for something to happen."""


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def wait_for(condition: Callable[[], bool], within: float = 20.0, what: str = "",
             every: float = POLL_S) -> None:
    """Return once ``condition()`` holds (asked every ``every`` s); raise
    :class:`BenchTimeout` after ``within`` s."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise BenchTimeout(f"gave up after {within:.0f} s waiting for {what or condition}")
        time.sleep(every)


class NodeProcess(DemoNode):
    """One member's home folder (with an identity) and its ``meshcrew node`` process."""

    def __init__(self, root: Path, name: str) -> None:
        home = Home(root / name.lower())
        home.ensure()
        seed = hashlib.sha256(f"meshcrew bench {name}".encode()).digest()
        identity.save(Identity.from_seed(seed, name), home.key_file)
        super().__init__(name, home)

    def start(self) -> None:
        """Launch the node and wait until it answers on its control socket."""
        self.launch()
        wait_all_ready([self])

    def status(self) -> NodeStatus:
        status: NodeStatus = self.call("status")
        return status

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self, within: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``within`` seconds of the node's own time (the demo's
        stop)."""
        stop_all([self], within=within)

    def cli(self, *args: str) -> Any:
        """``meshcrew --home HOME ARGS --json``, parsed."""
        done = subprocess.run([MESHCREW, "--home", str(self.home.path), *args, "--json"],
                              capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"meshcrew {' '.join(args)} failed for {self.name}: "
                               f"{done.stderr.strip()}")
        return json.loads(done.stdout) if done.stdout.strip() else None


class Fleet:
    """Node processes in short temporary home paths (Unix socket paths are limited to 108
    bytes); :meth:`close` kills what still runs, by pid, and removes the homes."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="mc-"))
        self.nodes: list[NodeProcess] = []

    def make(self, *names: str) -> list[NodeProcess]:
        made = [NodeProcess(self.root, name) for name in names]
        self.nodes += made
        return made

    def close(self) -> None:
        for node in self.nodes:
            if node.running():
                node.stop(within=2.0)
        shutil.rmtree(self.root, ignore_errors=True)


def crew_of(founder: NodeProcess, *joiners: NodeProcess, name: str = "Crew") -> str:
    """A crew created on the founder's running node and joined by each joiner (CLI); its id."""
    space = str(founder.cli("crew", "create", name)["id"])
    for joiner in joiners:
        code = str(founder.cli("invite", space)["code"])
        joiner.cli("join", code)
    return space


def mint_checkins(home: Home, author: Identity, space: bytes, count: int, *,
                  batch: int = 2000) -> list[bytes]:
    """Append ``count`` real check-ins by ``author`` (signed, sealed under the crew's current
    key) in a few large appends, where the member service would refold the space for each."""
    ids: list[bytes] = []
    with Replica.open(home) as replica:
        state = Member(replica, author, clock=wall_ms).view(space).state
        head = replica.frontier(space)[author.public_key]
        prev, seq, ts = head.id, head.seq, wall_ms()
        pending: list[bytes] = []
        for n in range(count):
            made = seal_post(state, author.signing_key,
                             CheckIn(text=f"check-in {n}", energy=1 + n % 5), os.urandom)
            seq += 1
            record = sign_record(author.signing_key, kind=made.kind, space=space, seq=seq,
                                 prev=prev, ts=ts, body=made.body)
            prev = record.id
            ids.append(record.id)
            pending.append(record.raw)
            if len(pending) == batch or n == count - 1:
                report = replica.append(pending, sender="local", now_ms=wall_ms())
                if len(report.accepted) != len(pending):
                    raise RuntimeError(f"minting refused: {report.rejected[:3]}")
                pending = []
    return ids
