"""Benchmark: floods against a real ``meshcrew node`` process, the node's counters proving arrival.

Run with ``scripts/bench-flood`` (it uses the project's .venv). One ``meshcrew node`` process
(Ada) on 127.0.0.1 is flooded by a raw libp2p peer: Noise, yamux and GossipSub from py-libp2p,
no meshcrew code on its side. The peer queues GossipSub RPCs of ``--batch`` messages for the
node's stream, each as soon as its outbound queue has room: libp2p's own ``publish`` sends one
message per RPC and drops what that queue does not take, so a flood through it delivered a
handful of messages (issue 19, hole 1). In one run:

1. **junk** from a stranger: ``--junk`` messages that are not records. Target: banned after at
   most 8 judged (4 reach the ban at 25 points each), then disconnected.
2. **runaway member**: Bo's key floods ``--records`` valid signed check-ins (a chain, as a
   runaway node would publish them). Target: every one judged, accepted and stored once (the
   node's own counters: ``gossip.judged``, ``accepted``, ``stored`` in ``status --json``).
3. **the same record** ``--copies`` times (each a new GossipSub message with the same data).
   Target: stored once.

Throughout, a thread asks the node for its status over the control socket, one call after the
other, and samples its RSS. Targets: status p99 <= 250 ms and max < 2 s while flooded; RSS
growth <= 64 MB over the three floods. The figures of one run go to docs/performance.md.

This is a benchmark, not a test. It exits 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
from bench_fleet import BenchTimeout, Fleet, NodeProcess, wall_ms
from bench_nodes import two_member_crew
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.x25519 import create_new_key_pair as create_noise_key_pair
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11, PROTOCOL_ID_V12, GossipSub
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub
from libp2p.pubsub.validators import PUBSUB_SIGNING_PREFIX
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux
from libp2p.tools.anyio_service import background_trio_service
from multiaddr import Multiaddr

from meshcrew import identity
from meshcrew.net import topic_name
from meshcrew.node import NodeStatus
from meshcrew.records import sign_record
from meshcrew.service import Member
from meshcrew.spaces import CheckIn, seal_post
from meshcrew.store import Replica

STATUS_P99_S = 0.25
STATUS_MAX_S = 2.0
RSS_GROWTH_MB = 64.0
JUNK_JUDGED_MAX = 8


# --- the raw flooding peer -----------------------------------------------------------------------


@dataclass
class Flooder:
    """A raw libp2p peer that writes GossipSub RPCs straight to a peer's pubsub stream."""

    host: Any
    pubsub: Any
    router: Any

    def connected_to(self, peer_id: str) -> bool:
        return peer_id in {str(p) for p in self.host.get_connected_peers()}

    def message(self, topic: str, data: bytes) -> Any:
        """A message published by this peer, signed as libp2p's ``publish`` signs it."""
        msg = rpc_pb2.Message(data=data, topicIDs=[topic], from_id=self.host.get_id().to_bytes(),
                              seqno=self.pubsub._next_seqno())
        msg.signature = self.pubsub.sign_key.sign(
            PUBSUB_SIGNING_PREFIX.encode() + msg.SerializeToString())
        msg.key = self.host.get_public_key().serialize()
        return msg

    async def flood(self, peer_id: str, topic: str, datas: list[bytes], batch: int) -> int:
        """Send the messages, ``batch`` per RPC, through the peer's outbound queue (libp2p's one
        writer of the stream), each RPC as soon as there is room; stop when the stream is gone
        (a ban). Returns how many were queued."""
        peer = ID.from_base58(peer_id)
        written = 0
        for start in range(0, len(datas), batch):
            chunk = datas[start:start + batch]
            rpc = rpc_pb2.RPC(publish=[self.message(topic, data) for data in chunk])
            while True:
                queue = self.pubsub.peer_queues.get(peer)
                if queue is None or queue.closed:
                    return written
                if queue.push(rpc):
                    break
                await trio.sleep(0.001)  # full: the writer is busy with what came before
            written += len(chunk)
        return written


@asynccontextmanager
async def open_flooder(seed: bytes, addr: str, topic: str) -> AsyncIterator[Flooder]:
    """A flooder with the ed25519 key of ``seed``, connected to ``addr``, subscribed to
    ``topic`` and ready to write to the peer's pubsub stream."""
    key_pair = create_new_key_pair(seed)
    security = {NOISE_PROTOCOL_ID: NoiseTransport(
        key_pair, noise_privkey=create_noise_key_pair().private_key)}
    host = new_host(key_pair=key_pair, sec_opt=security,
                    muxer_opt={TProtocol(YAMUX_PROTOCOL_ID): Yamux})
    router = GossipSub(protocols=[PROTOCOL_ID_V12, PROTOCOL_ID_V11], degree=8, degree_low=4,
                       degree_high=64, heartbeat_interval=1)
    pubsub = Pubsub(host, router)
    try:
        async with host.run([Multiaddr("/ip4/127.0.0.1/tcp/0")]), \
                background_trio_service(pubsub), background_trio_service(router):
            await pubsub.wait_until_ready()
            info = info_from_p2p_addr(Multiaddr(addr))
            try:
                await host.connect(info)
                await pubsub.subscribe(topic)
                with trio.fail_after(20):
                    while info.peer_id not in pubsub.peers:  # noqa: ASYNC110 (libp2p's state)
                        await trio.sleep(0.01)
                yield Flooder(host, pubsub, router)
            finally:  # leaving host.run() leaves live connections' sockets open
                with trio.CancelScope(shield=True), trio.move_on_after(2):
                    for peer in list(host.get_connected_peers()):
                        await host.disconnect(peer)
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(2):
            await host.close()


# --- watching the node ---------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Watch:
    """Status calls one after the other, and RSS samples, while a flood runs."""

    node: NodeProcess
    latencies: list[float] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Watch:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            self.node.status()
            self.latencies.append(time.perf_counter() - started)
            self.rss.append(rss_mb(self.node.pid))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


# --- the floods ----------------------------------------------------------------------------------


def runaway_records(bo: NodeProcess, space: bytes, count: int) -> list[bytes]:
    """``count + 1`` check-ins by Bo following his head (sealed once, each signed: as fast as
    a runaway node could write them), not stored anywhere."""
    with Replica.open(bo.home, read_only=True) as replica:
        me = identity.load(bo.home.key_file)
        state = Member(replica, me, clock=wall_ms).view(space).state
        head = replica.frontier(space)[me.public_key]
    made = seal_post(state, me.signing_key, CheckIn(text="again and again", energy=5),
                     os.urandom)
    raws, prev, seq, ts = [], head.id, head.seq, wall_ms()
    for _ in range(count + 1):
        seq += 1
        record = sign_record(me.signing_key, kind=made.kind, space=space, seq=seq, prev=prev,
                             ts=ts, body=made.body)
        raws.append(record.raw)
        prev = record.id
    return raws


def settle(ada: NodeProcess, done: Any, quiet_s: float = 3.0, within: float = 120.0
           ) -> NodeStatus:
    """Ada's status once ``done(status)`` holds, or once her gossip counters have not moved
    for ``quiet_s`` (what was lost stays lost: the caller compares the counts)."""
    deadline = time.monotonic() + within
    status = ada.status()
    moved = time.monotonic()
    while not done(status) and time.monotonic() - moved < quiet_s:
        if time.monotonic() > deadline:
            raise BenchTimeout(f"the node was still taking the flood after {within:.0f} s")
        time.sleep(0.05)
        now = ada.status()
        if (now.gossip_judged, now.gossip_stored, now.records) != \
                (status.gossip_judged, status.gossip_stored, status.records):
            moved = time.monotonic()
        status = now
    return status


def run(args: argparse.Namespace) -> dict[str, Any]:
    fleet = Fleet()
    try:
        ada, bo = fleet.make("Ada", "Bo")
        space = two_member_crew(ada, bo)
        with Replica.open(ada.home) as replica, Replica.open(bo.home, read_only=True) as bos:
            # Bo's profile, written when his key arrived: his flood follows it
            replica.append([r.raw for r in bos.records_after(space, replica.frontier(space),
                                                               limit=2**62)],
                           sender="file:Bo", now_ms=wall_ms())
        records = runaway_records(bo, space, args.records)
        flood, repeated = records[:-1], records[-1]
        ada.start()
        status = ada.status()
        addr, peer = status.addrs[0], status.peer_id
        topic = topic_name(space)
        bo_seed = bytes(identity.load(bo.home.key_file).signing_key)
        stranger_seed = hashlib.sha256(b"bench flood stranger").digest()
        result: dict[str, Any] = {"records": args.records, "batch": args.batch,
                                  "junk": args.junk, "copies": args.copies}
        rss_start = rss_mb(ada.pid)

        async def junk() -> dict[str, Any]:
            before = await trio.to_thread.run_sync(ada.status)
            async with open_flooder(stranger_seed, addr, topic) as stranger:
                datas = [b"junk %d " % n + bytes(400) for n in range(args.junk)]
                started = time.perf_counter()
                written = await stranger.flood(peer, topic, datas, args.batch)
                with trio.fail_after(20):
                    while stranger.connected_to(peer):  # noqa: ASYNC110 (libp2p's state)
                        await trio.sleep(0.01)
                cut = time.perf_counter() - started
            after = await trio.to_thread.run_sync(ada.status)
            return {"written": written, "judged": after.gossip_judged - before.gossip_judged,
                    "rejected": after.gossip_rejected - before.gossip_rejected,
                    "stored": after.records - before.records,
                    "banned": str(ID.from_pubkey(create_new_key_pair(stranger_seed).public_key))
                    in after.banned, "disconnected_s": cut}

        async def member_flood(datas: list[bytes], done: Any, quiet_s: float
                               ) -> tuple[int, float, NodeStatus, float]:
            """Flood, then stay connected until the node has taken it (closing at once would
            throw away what is still in its receive buffers). Returns how many messages were
            written, in how long, the node's status after, and how long until ``done``."""
            async with open_flooder(bo_seed, addr, topic) as runaway:
                started = time.perf_counter()
                written = await runaway.flood(peer, topic, datas, args.batch)
                sent_s = time.perf_counter() - started
                after = await trio.to_thread.run_sync(lambda: settle(ada, done, quiet_s))
                return written, sent_s, after, time.perf_counter() - started

        with Watch(ada) as watch:
            result["junk_flood"] = trio.run(junk)
            result["junk_flood"]["status_calls"] = len(watch.latencies)
        with Watch(ada) as watch:
            before = ada.status()
            written, sent_s, after, stored_s = trio.run(
                member_flood, flood,
                lambda s: s.gossip_stored - before.gossip_stored >= len(flood), 3.0)
        result["member_flood"] = {
            "written": written, "write_s": sent_s, "stored_s": stored_s,
            "judged": after.gossip_judged - before.gossip_judged,
            "accepted": after.gossip_accepted - before.gossip_accepted,
            "received": after.gossip_received - before.gossip_received,
            "stored": after.gossip_stored - before.gossip_stored,
            "replica_records": after.records - before.records,
            "dropped": after.gossip_dropped - before.gossip_dropped,
            "records_per_s": len(flood) / stored_s,
            "status_calls": len(watch.latencies),
            "status_p50_ms": 1000 * statistics.median(watch.latencies),
            "status_p99_ms": 1000 * percentile(watch.latencies, 0.99),
            "status_max_ms": 1000 * max(watch.latencies),
            "rss_peak_mb": max(watch.rss)}
        with Watch(ada) as watch:
            before = ada.status()
            written, sent_s, after, _ = trio.run(  # every copy has its chance to be stored
                member_flood, [repeated] * args.copies, lambda s: False, 1.0)
        result["same_record"] = {
            "written": written, "write_s": sent_s,
            "judged": after.gossip_judged - before.gossip_judged,
            "stored": after.gossip_stored - before.gossip_stored,
            "replica_records": after.records - before.records,
            "status_max_ms": 1000 * max(watch.latencies)}
        result["rss_mb"] = {"start": rss_start, "end": rss_mb(ada.pid),
                            "growth": rss_mb(ada.pid) - rss_start}
        return result
    finally:
        fleet.close()


def targets(result: dict[str, Any], records: int) -> list[str]:
    """The targets missed (empty if none)."""
    junk, member, same = result["junk_flood"], result["member_flood"], result["same_record"]
    missed = []
    if not junk["banned"] or not 1 <= junk["judged"] <= JUNK_JUDGED_MAX:
        missed.append(f"junk: banned after {junk['judged']} judged (target <= "
                      f"{JUNK_JUDGED_MAX}, banned)")
    if not member["judged"] == member["accepted"] == member["stored"] == records:
        missed.append(f"member flood: {member['stored']} of {records} stored")
    if member["status_p99_ms"] > 1000 * STATUS_P99_S or member["status_max_ms"] >= \
            1000 * STATUS_MAX_S:
        missed.append(f"status while flooded: p99 {member['status_p99_ms']:.0f} ms, max "
                      f"{member['status_max_ms']:.0f} ms")
    if same["stored"] != 1 or same["replica_records"] != 1:
        missed.append(f"same record: stored {same['stored']} times")
    if result["rss_mb"]["growth"] > RSS_GROWTH_MB:
        missed.append(f"RSS grew {result['rss_mb']['growth']:.1f} MB")
    return missed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=5000,
                        help="valid records in the member's flood (default 5000)")
    parser.add_argument("--copies", type=int, default=3000,
                        help="copies of one record (default 3000)")
    parser.add_argument("--junk", type=int, default=3000,
                        help="junk messages from a stranger (default 3000)")
    parser.add_argument("--batch", type=int, default=64,
                        help="messages per GossipSub RPC (default 64)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    try:
        result = run(args)
    except BenchTimeout as exc:
        print(f"bench-flood: {exc}", file=sys.stderr)
        return 1
    missed = targets(result, args.records)
    result["targets_missed"] = missed
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        junk, member, same = result["junk_flood"], result["member_flood"], result["same_record"]
        print(f"junk from a stranger: {junk['written']} written, {junk['judged']} judged, "
              f"{junk['rejected']} rejected, banned {junk['banned']}, disconnected after "
              f"{junk['disconnected_s']:.2f} s, {junk['stored']} stored")
        print(f"runaway member: {member['written']} records written in {member['write_s']:.2f} "
              f"s; judged {member['judged']}, accepted {member['accepted']}, received "
              f"{member['received']}, stored {member['stored']} "
              f"({member['records_per_s']:.0f} records/s from the first write to the last stored), "
              f"dropped {member['dropped']}")
        print(f"  status while flooded: {member['status_calls']} calls, p50 "
              f"{member['status_p50_ms']:.1f} ms, p99 {member['status_p99_ms']:.1f} ms, max "
              f"{member['status_max_ms']:.1f} ms; RSS peak {member['rss_peak_mb']:.1f} MB")
        print(f"same record x{same['written']}: judged {same['judged']}, stored "
              f"{same['stored']}, status max {same['status_max_ms']:.1f} ms")
        rss = result["rss_mb"]
        print(f"RSS: {rss['start']:.1f} MB before, {rss['end']:.1f} MB after "
              f"(+{rss['growth']:.1f} MB)")
        for line in missed:
            print(f"target missed: {line}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
