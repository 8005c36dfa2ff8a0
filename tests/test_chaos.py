"""Real-network chaos (issue 6): ``meshcrew node`` processes on loopback, killed, restarted and
partitioned at random (seeded) while check-ins are posted through the CLI; after the heal every
replica of a space holds the same records and no acknowledged check-in is missing.

Eight nodes by default (``scripts/chaos --nodes`` takes 4-8): a congregation of all of them
with two crews, its first half and its second. Two cores run eight nodes plus the CLI commands
the controller starts (each a Python process) with the two CI seeds at 20 steps in about 70 s
(load 5). Most of it is the set-up: eight nodes starting at once, then the joins, which ask the
nodes over their control sockets (a CLI command per join made seed 2's set-up 127 s of 190 at
load 20; 81 s of 144 since, 36 s of it the starts).

A partition cuts the running nodes into two sides: every node of each side asks its node, over
the control socket, to cut off the other side's peers (``partition``, ``node/partition.py``: it
disconnects them, refuses them and does not dial them); ``heal`` lifts the cut. A freeze stops a
random minority of the running nodes with SIGSTOP: they neither dial nor answer, and their
connections stay open but silent (as behind a dropped link), until SIGCONT. Nothing is posted to
a frozen node (its control socket would not answer either). SIGKILL kills a node outright; a
dead node's check-ins still go through the CLI, which then writes to the replica directly (no
node runs), and the node carries them out when it restarts on the same home.

``scripts/chaos`` runs :func:`run_chaos` for many seeds and prints a table.
"""

from __future__ import annotations

import hashlib
import json
import random
import signal
import subprocess
import time
from dataclasses import dataclass, field
from functools import partial

import pytest

from node_processes import MESHCREW, POLL_S, Fleet, NodeProcess, fleet, start_all, wait_for

__all__ = ["fleet"]  # the fixture

NAMES = ("Ada", "Bo", "Cy", "Dee", "Eli", "Fay", "Gus", "Hal")
SIZE = 8


def crews(size: int) -> dict[str, tuple[int, ...]]:
    """The two crews of a congregation of ``size`` nodes: its first half and its second."""
    return {"A": tuple(range(size // 2)), "B": tuple(range(size // 2, size))}
CONVERGE_WITHIN_S = 90.0


@dataclass
class ChaosResult:
    """What one seeded run did and whether it converged."""

    seed: int
    steps: int = 0
    kills: int = 0
    restarts: int = 0
    partitions: int = 0
    freezes: int = 0
    posted: int = 0
    acknowledged: int = 0
    converge_s: float = 0.0
    penalty_bans: int = 0
    """Bans the nodes gave each other for misbehaving (stalls...), not asked by a partition."""
    ok: bool = False
    problem: str = ""
    log: list[str] = field(default_factory=list)


def _checkin(node: NodeProcess, space: str, text: str) -> str | None:
    """Post a check-in through the CLI; its id if the command returned success."""
    try:
        done = subprocess.run([MESHCREW, "--home", str(node.home.path), "checkin", space,
                               "--text", text, "--json"], capture_output=True, text=True,
                              timeout=30, check=False)
    except subprocess.TimeoutExpired:
        return None
    if done.returncode != 0:
        return None
    return str(json.loads(done.stdout)["id"])


def _ids(node: NodeProcess, space: str) -> frozenset[str]:
    """The ids ``log --json`` lists (membership events included), asked of the running node
    over its control socket as the CLI does, without a Python per member and poll."""
    return frozenset(entry.id.hex() for entry in node.call("log", bytes.fromhex(space),
                                                           events=True))


def _digest(ids: frozenset[str]) -> str:
    return hashlib.sha256("".join(sorted(ids)).encode()).hexdigest()[:16]


def set_up(fleet: Fleet, size: int = SIZE) -> tuple[list[NodeProcess], dict[str, str]]:
    """Running nodes; a congregation of all and two crews joined over the network.

    Each node is asked over its control socket, as the CLI asks a running node (the CLI's own
    path is ``test_node_processes.py``'s): a CLI command per join, a Python each, took most of
    a 127 s set-up at load 20.
    """
    nodes = fleet.make(*NAMES[:size])
    start_all(*nodes)
    founder = nodes[0]
    spaces = {"C": founder.call("create_space", "Congregation", kind="congregation").hex()}
    _all_join(founder, spaces["C"], nodes[1:])
    for crew, members in crews(size).items():
        lead = nodes[members[0]]
        spaces[crew] = lead.call("create_space", f"Crew {crew}",
                                 parent=bytes.fromhex(spaces["C"])).hex()
        _all_join(lead, spaces[crew], [nodes[n] for n in members[1:]])
    return nodes, spaces


def _all_join(inviter: NodeProcess, space: str, joiners: list[NodeProcess]) -> None:
    """One invite for every joiner (``invite --uses``), each joining through its node."""
    code = inviter.call("invite", bytes.fromhex(space), uses=len(joiners),
                        expires_ms=time.time_ns() // 1_000_000 + 3_600_000)
    for joiner in joiners:
        joiner.call("join", code)


def run_chaos(fleet: Fleet, seed: int, steps: int = 30, size: int = SIZE) -> ChaosResult:
    """Set up ``size`` nodes (4-8), run ``steps`` random actions, heal, check convergence."""
    rng = random.Random(seed)
    result = ChaosResult(seed=seed)
    nodes, spaces = set_up(fleet, size)
    dead: set[int] = set()
    frozen: set[int] = set()
    acked: dict[str, set[str]] = {"A": set(), "B": set()}
    peer_ids = [node.status().peer_id for node in nodes]
    cut: list[str] = []
    try:
        for step in range(steps):
            result.steps = step + 1
            running = [i for i in range(len(nodes)) if i not in dead and i not in frozen]
            choices = ["checkin"] * 4
            if len(dead) + len(frozen) < 2:
                choices += ["kill", "freeze"]
            if not cut and len(running) >= 2:
                choices.append("partition")
            if cut:
                choices.append("reconnect")
            if dead:
                choices.append("restart")
            if frozen:
                choices.append("heal")
            action = rng.choice(choices)
            if action == "checkin":
                i = rng.choice([i for i in range(len(nodes)) if i not in frozen])
                crew = "A" if i in crews(size)["A"] else "B"
                text = f"seed {seed} step {step} by {NAMES[i]}"
                result.posted += 1
                got = _checkin(nodes[i], spaces[crew], text)
                if got is not None:
                    acked[crew].add(got)
                    result.acknowledged += 1
                result.log.append(f"{step}: {NAMES[i]} checkin {'ok' if got else 'FAILED'}")
            elif action == "kill":
                i = rng.choice(running)
                nodes[i].kill()
                dead.add(i)
                result.kills += 1
                result.log.append(f"{step}: kill -9 {NAMES[i]}")
            elif action == "restart":
                i = rng.choice(sorted(dead))
                nodes[i].start()
                dead.discard(i)
                result.restarts += 1
                result.log.append(f"{step}: restart {NAMES[i]}")
            elif action == "partition":
                side = set(rng.sample(running, k=rng.randint(1, len(running) // 2)))
                other = set(running) - side
                for a, b in ((side, other), (other, side)):
                    for i in a:
                        nodes[i].call("partition", [peer_ids[j] for j in b])
                cut = [peer_ids[j] for j in running]
                wait_for(partial(_apart, nodes, peer_ids, side, other), within=15,
                         what="the two sides to disconnect")
                result.partitions += 1
                result.log.append(f"{step}: partition {[NAMES[i] for i in sorted(side)]} | "
                                  f"{[NAMES[i] for i in sorted(other)]}")
            elif action == "reconnect":
                for i in running:
                    nodes[i].call("heal", cut)
                result.log.append(f"{step}: heal the partition (on {len(running)} running)")
                cut = []
            elif action == "freeze":
                stopped = rng.sample(running, k=1 if len(running) < 4 or rng.random() < 0.5 else 2)
                for i in stopped:
                    nodes[i].process.send_signal(signal.SIGSTOP)  # type: ignore[union-attr]
                frozen |= set(stopped)
                result.freezes += 1
                result.log.append(f"{step}: freeze {[NAMES[i] for i in stopped]}")
            else:
                for i in frozen:
                    nodes[i].process.send_signal(signal.SIGCONT)  # type: ignore[union-attr]
                result.log.append(f"{step}: thaw {[NAMES[i] for i in sorted(frozen)]}")
                frozen.clear()
        # The heal: everyone thawed, running and reconnected, and told where node 0 is.
        for i in frozen:
            nodes[i].process.send_signal(signal.SIGCONT)  # type: ignore[union-attr]
        frozen.clear()
        for i in sorted(dead):
            nodes[i].launch()
            result.restarts += 1
        for i in sorted(dead):
            nodes[i].wait_ready()
        dead.clear()
        for node in nodes:
            node.call("heal", peer_ids)
        healed = time.monotonic()
        hub = nodes[0].status().addrs[0]
        for node in nodes[1:]:
            node.run("connect", hub, check=False)
        result.problem = _wait_converged(nodes, spaces, acked)
        result.converge_s = time.monotonic() - healed
        result.penalty_bans = sum(_penalty_bans(node) for node in nodes)
        result.ok = not result.problem
        return result
    finally:
        for i in frozen:
            process = nodes[i].process
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGCONT)


def _penalty_bans(node: NodeProcess) -> int:
    """How many peers the node banned for misbehaving (its log says why it banned each)."""
    lines = node.home.log_file.read_text(errors="replace").splitlines()
    return sum("banning peer" in line and "partitioned off" not in line for line in lines)


def _apart(nodes: list[NodeProcess], peer_ids: list[str], side: set[int], other: set[int]
           ) -> bool:
    """Whether no node of either side is connected to a node of the other."""
    return not any(set(nodes[i].status().peers) & {peer_ids[j] for j in b}
                   for a, b in ((side, other), (other, side)) for i in a)


def _members(space: str, size: int) -> tuple[int, ...]:
    return tuple(range(size)) if space == "C" else crews(size)[space]


def _wait_converged(nodes: list[NodeProcess], spaces: dict[str, str],
                    acked: dict[str, set[str]]) -> str:
    """Poll until every replica of each space has the same ids, holding every acknowledged
    check-in; the problem left at the deadline, or ``""``."""
    deadline = time.monotonic() + CONVERGE_WITHIN_S
    problem = "not checked"
    while time.monotonic() < deadline:
        problem = ""
        for name, space in spaces.items():
            held = {i: _ids(nodes[i], space) for i in _members(name, len(nodes))}
            digests = {_digest(ids) for ids in held.values()}
            if len(digests) != 1:
                problem = f"space {name}: {len(digests)} different digests"
                break
            missing = acked.get(name, set()) - next(iter(held.values()))
            if missing:
                problem = f"space {name}: {len(missing)} acknowledged check-ins missing"
                break
        if not problem:
            return ""
        time.sleep(CONVERGENCE_POLL_S)
    return problem


CONVERGENCE_POLL_S = 4 * POLL_S  # each poll asks every member's node


@pytest.mark.slow
# Only a guard against a hang: every wait inside has its own deadline (a node's start 30 s of
# its own, a partition 15 s, the convergence 90 s); the whole is CPU for eight nodes and the
# CLI, 144 s for seed 2 at load 15 (190 s before the set-up's joins went over the sockets)
@pytest.mark.timeout(300)
@pytest.mark.parametrize("seed", [1, 2])
def test_chaos_converges_and_loses_no_acknowledged_checkin(fleet: Fleet, seed: int) -> None:
    result = run_chaos(fleet, seed, steps=20)
    assert result.ok, f"{result.problem}\n" + "\n".join(result.log)
    assert result.acknowledged > 0
