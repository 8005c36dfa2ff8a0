"""Node-level benchmarks: real ``meshcrew node`` processes on 127.0.0.1 (used by bench-sync).

1. **catch-up**: a crew whose founder holds N check-ins (made in-process, real signed and sealed
   records) and a member who holds only the crew's first records; both nodes start, the member
   dials the founder, and the clock runs until the member's replica holds every record. The
   receiving node's rate per second of CPU it used is compared with the raw pynacl verify rate of
   the same records in this process per second of CPU, measured just before and just after
   (issue 4's target: the catch-up runs at >= 70% of it). Per CPU second, because on a shared
   machine the wall-clock rates of two processes and of one swing with everything else running;
   the wall-clock figures are printed too (on an idle machine the two agree).
2. **latency**: a crew of K node processes; members take turns checking in (over the control
   socket, as the CLI does); every node streams the records its replica takes (the ``watch``
   control operation) with its clock; the latency of a record on a node is the time it reached
   that replica minus the time it reached its author's (issue 4's targets: p50 <= 50 ms, p99 <=
   250 ms).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from bench_fleet import Fleet, NodeProcess, crew_of, mint_checkins, wait_for, wall_ms
from nacl.signing import VerifyKey

from meshcrew import identity
from meshcrew.home import Home
from meshcrew.node import ControlClient, RecordsChanged, control_types
from meshcrew.records import SIG_BYTES, SIGN_DOMAIN
from meshcrew.service import Member
from meshcrew.store import Replica


def _member(home: Home) -> tuple[Replica, Member]:
    replica = Replica.open(home)
    return replica, Member(replica, identity.load(home.key_file), clock=wall_ms)


def two_member_crew(founder: NodeProcess, member: NodeProcess) -> bytes:
    """A crew of two made in-process (invite, join, key rotation), no node running."""
    f_replica, f_member = _member(founder.home)
    m_replica, m_member = _member(member.home)
    try:
        space = f_member.create_space("Bench crew")
        code = f_member.invite(space, expires_ms=wall_ms() + 3_600_000)
        m_member.ingest(f_member.export(space), sender="file:founder")
        m_member.join(code)
        f_member.ingest(m_member.export(space), sender="file:member")  # rotates the keys
        m_member.ingest(f_member.export(space), sender="file:founder")
        assert not m_member.summary(space).waiting_for_keys
    finally:
        f_replica.close()
        m_replica.close()
    return space


def record_ids(home: Home, space: bytes) -> set[bytes]:
    """The ids of a space's records in a home's replica."""
    with Replica.open(home, read_only=True) as replica:
        return {r.id for r in replica.records_after(space, {}, limit=2**62)}


def raw_verify_rate(home: Home, space: bytes) -> float:
    """Records per second pynacl verifies: the records' own signed messages, one core."""
    with Replica.open(home, read_only=True) as replica:
        records = replica.records_after(space, {}, limit=2**62)
    keys = {r.author: VerifyKey(r.author) for r in records}
    signed = [(keys[r.author], SIGN_DOMAIN + b"\x98" + r.raw[1: len(r.raw) - SIG_BYTES - 2],
               r.sig) for r in records]
    started = time.process_time()
    for key, message, sig in signed:
        key.verify(message, sig)
    return len(signed) / (time.process_time() - started)


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def catch_up(fleet: Fleet, count: int) -> dict[str, Any]:
    """Benchmark 1; see the module docstring."""
    founder, member = fleet.make("Founder", "Member")
    space = two_member_crew(founder, member)
    made = time.perf_counter()
    mint_checkins(founder.home, identity.load(founder.home.key_file), space, count)
    mint_s = time.perf_counter() - made
    raw_before = raw_verify_rate(founder.home, space)
    lacking = len(record_ids(founder.home, space) - record_ids(member.home, space))
    founder.start()
    member.start()
    held = member.status().records
    cpu_before = cpu_seconds(member.pid)
    started = time.perf_counter()
    member.call("connect", founder.status().addrs[0])
    wait_for(lambda: member.status().records >= held + lacking, within=600,
             what="the catch-up")
    took = time.perf_counter() - started
    cpu = cpu_seconds(member.pid) - cpu_before
    founder.stop()
    member.stop()
    # Measured before and after, so a change in the machine's load hits both sides alike.
    raw = (raw_before + raw_verify_rate(founder.home, space)) / 2
    per_core = lacking / cpu
    return {"records": lacking, "seconds": round(took, 2), "records_per_s": round(lacking / took),
            "receiver_cpu_seconds": round(cpu, 2), "records_per_cpu_s": round(per_core),
            "raw_verify_per_cpu_s": round(raw), "ratio": round(per_core / raw, 3),
            "wall_ratio": round(lacking / took / raw, 3), "target_ratio": 0.70,
            "ok": per_core >= 0.70 * raw, "mint_seconds": round(mint_s, 1)}


class Watcher(threading.Thread):
    """Streams one node's RecordsChanged events: record id → when its replica took it."""

    def __init__(self, node: NodeProcess) -> None:
        super().__init__(daemon=True)
        self.node = node
        self.took: dict[bytes, int] = {}
        self.ready = threading.Event()

    def run(self) -> None:
        client = ControlClient.if_running(self.node.home, control_types())
        assert client is not None

        def seen(event: Any) -> None:
            if isinstance(event, RecordsChanged):
                for rid in event.ids:
                    self.took.setdefault(rid, event.at_ms)
            self.ready.set()

        try:
            client.call("watch", progress=seen)
        except Exception:  # the node stopped: the benchmark is over
            return


def latency(fleet: Fleet, size: int, posts: int, interval_s: float) -> dict[str, Any]:
    """Benchmark 2; see the module docstring."""
    nodes = fleet.make(*(f"M{n}" for n in range(size)))
    for node in nodes:
        node.start()
    space = bytes.fromhex(crew_of(nodes[0], *nodes[1:]))
    wait_for(lambda: all(len(n.status().peers) == size - 1 for n in nodes), within=60,
             what="a full mesh")
    watchers = [Watcher(node) for node in nodes]
    for watcher in watchers:
        watcher.start()
    # Posts not measured, until every watcher has seen one: then all of them are listening.
    deadline = time.monotonic() + 30
    while not all(w.ready.is_set() for w in watchers):
        assert time.monotonic() < deadline, "the watchers did not start"
        nodes[0].call("checkin", space, text="warming up", energy=3)
        time.sleep(0.2)
    authored: list[tuple[int, bytes]] = []
    for n in range(posts):
        author = n % size
        authored.append((author, nodes[author].call("checkin", space,
                                                    text=f"latency probe {n}", energy=3)))
        time.sleep(interval_s)
    ids = {rid for _, rid in authored}
    wait_for(lambda: all(ids <= set(w.took) for w in watchers), within=60,
             what="every probe on every node")
    samples = sorted(watchers[other].took[rid] - watchers[author].took[rid]
                     for author, rid in authored for other in range(size) if other != author)
    for node in nodes:
        node.stop()

    def pct(q: float) -> int:
        return samples[min(len(samples) - 1, int(q * len(samples)))]

    p50, p99 = pct(0.50), pct(0.99)
    return {"nodes": size, "posts": posts, "samples": len(samples), "p50_ms": p50,
            "p99_ms": p99, "max_ms": samples[-1], "target_p50_ms": 50, "target_p99_ms": 250,
            "ok": p50 <= 50 and p99 <= 250}


def run(records: int, crew: int, posts: int, interval_s: float) -> dict[str, Any]:
    """Both node benchmarks, each in its own temporary homes."""
    result: dict[str, Any] = {}
    fleet = Fleet()
    try:
        result["node_catch_up"] = catch_up(fleet, records)
    finally:
        fleet.close()
    fleet = Fleet()
    try:
        result["node_latency"] = latency(fleet, crew, posts, interval_s)
    finally:
        fleet.close()
    return result
