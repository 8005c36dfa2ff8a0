"""Benchmark: a node's memory through a long day (issue 15, item 4). Not a test.

Run with ``scripts/bench-soak`` (it uses the project's .venv and installs matplotlib). Two real
``meshcrew node`` processes on 127.0.0.1, a crew of two made in-process (invite, join, key
rotation), as ``scripts/bench-sync``'s catch-up makes it:

1. **catch-up**: the founder's replica gets ``--records`` real check-ins (signed, sealed under
   the crew's key) that the member lacks; both nodes start and the member dials the founder;
   the member's node receives them all by sync.
2. **gossip**: then an hour of gossip, compressed in time: the founder checks in ``--posts``
   times (over its control socket, as the CLI does) at ``--rate`` a second, each gossiped to
   the member's node, which validates and stores it; the default is 720 posts, one every five
   seconds for an hour (far more than a crew writes), sent twenty times as fast (the
   founder's node takes about 0.2 s of CPU per check-in of its own in a space this big).
3. **idle**: ``--idle`` seconds with nothing sent.

All along, the member node's memory is sampled every ``--every`` seconds, with the records its
replica holds: the proportional set size (PSS) of its process and its children (the verify
workers, which share much of their memory with each other), and the RSS of the node process
alone. Targets, on the PSS: **at most 150 MB** at any time, and **flat after warm-up**: over
the second half of the gossip and the idle wait it grows by at most ``--flat-mb`` MB (5 by
default: a leak of 1.5 kB per gossiped record would break it). It writes the curve to
``--png`` (and the samples beside it as JSON) and exits 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench_fleet import BenchTimeout, Fleet, NodeProcess, mint_checkins, wait_for
from bench_nodes import share_priority, two_member_crew

from meshcrew import identity
from meshcrew.store import Replica

RSS_TARGET_MB = 150.0


def tree_of(pid: int) -> list[int]:
    """A process and its descendants (Linux /proc)."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(c) for c in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue  # it ended meanwhile
    return found


def memory_of(pid: int, field: str) -> float:
    """One line of a process's memory accounts in MB: ``Pss`` (its private pages and its share
    of the ones it shares, from smaps_rollup) or ``VmRSS`` (every page it maps, from status)."""
    source = "smaps_rollup" if field == "Pss" else "status"
    try:
        for line in Path(f"/proc/{pid}/{source}").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass  # it ended meanwhile
    return 0.0


class Sampler(threading.Thread):
    """Samples a node's RSS and its replica's record count until told to stop."""

    def __init__(self, node: NodeProcess, every_s: float) -> None:
        super().__init__(daemon=True, name="rss-sampler")
        self.node = node
        self.every_s = every_s
        self.samples: list[dict[str, Any]] = []
        self.phase = "start"
        self.done = threading.Event()
        self.t0 = time.perf_counter()

    def run(self) -> None:
        with Replica.open(self.node.home, read_only=True) as replica:
            while not self.done.is_set():
                self.samples.append({
                    "t": round(time.perf_counter() - self.t0, 2), "phase": self.phase,
                    "rss_mb": round(sum(memory_of(p, "Pss") for p in tree_of(self.node.pid)),
                                    1),
                    "main_mb": round(memory_of(self.node.pid, "VmRSS"), 1),
                    "records": replica.record_count()})
                self.done.wait(self.every_s)


def plot(samples: list[dict[str, Any]], path: Path, title: str) -> None:
    """The RSS curve with the records held, phases shaded."""
    import matplotlib  # only this bench needs it (scripts/bench-soak installs it)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s["t"] for s in samples]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.plot(t, [s["rss_mb"] for s in samples], label="node with its verify workers (PSS, MB)")
    ax.plot(t, [s["main_mb"] for s in samples], label="node process alone (RSS, MB)",
            linestyle="--")
    ax.axhline(RSS_TARGET_MB, color="red", linewidth=0.8, label="target 150 MB")
    colours = {"catch-up": "#e8f0ff", "gossip": "#eaffea", "idle": "#f4f4f4"}
    for phase, colour in colours.items():
        inside = [s["t"] for s in samples if s["phase"] == phase]
        if inside:
            ax.axvspan(min(inside), max(inside), color=colour, zorder=0, label=phase)
    ax.set_xlabel("seconds since the nodes started")
    ax.set_ylabel("MB")
    ax.set_ylim(0, max(RSS_TARGET_MB * 1.15, max(s["rss_mb"] for s in samples) * 1.1))
    records = ax.twinx()
    records.plot(t, [s["records"] / 1000 for s in samples], color="grey", linewidth=0.8)
    records.set_ylabel("records in the replica (thousands)", color="grey")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def soak(records: int, posts: int, rate: float, idle_s: float, every_s: float) -> dict[str, Any]:
    """Run the three phases; the samples and the figures."""
    fleet = Fleet()
    try:
        founder, member = fleet.make("Founder", "Member")
        space = two_member_crew(founder, member)
        began = time.perf_counter()
        mint_checkins(founder.home, identity.load(founder.home.key_file), space, records)
        print(f"minted {records:,} check-ins in {time.perf_counter() - began:.0f} s",
              file=sys.stderr)
        with Replica.open(member.home, read_only=True) as replica:
            held = replica.record_count()
        founder.start()
        member.start()
        for node in (founder, member):
            share_priority(node.pid)
        sampler = Sampler(member, every_s)
        sampler.start()
        try:
            sampler.phase = "catch-up"
            member.call("connect", founder.status().addrs[0])
            with Replica.open(member.home, read_only=True) as replica:
                wait_for(lambda: replica.record_count() >= held + records, within=1800,
                         what="the catch-up", every=0.2)
                caught_up = time.perf_counter() - sampler.t0
                sampler.phase = "gossip"
                gossip_from = time.perf_counter()
                for n in range(posts):
                    founder.call("checkin", space, text=f"soak {n}", energy=1 + n % 5)
                    pause = gossip_from + (n + 1) / rate - time.perf_counter()
                    if pause > 0:
                        time.sleep(pause)
                sent_s = time.perf_counter() - gossip_from
                with contextlib.suppress(BenchTimeout):  # reported below: what arrived
                    wait_for(lambda: replica.record_count() >= held + records + posts,
                             within=60, what="the last gossiped post", every=0.2)
                gossip_s = time.perf_counter() - gossip_from
                delivered = replica.record_count() - held - records
            sampler.phase = "idle"
            time.sleep(idle_s)
        finally:
            sampler.done.set()
            sampler.join()
        member_status = member.status()
        founder.stop()
        member.stop()
    finally:
        fleet.close()
    samples = sampler.samples
    gossip = [s for s in samples if s["phase"] == "gossip"]
    settled = gossip[len(gossip) // 2:] + [s for s in samples if s["phase"] == "idle"]
    growth = settled[-1]["rss_mb"] - settled[0]["rss_mb"] if settled else 0.0
    peak = max(s["rss_mb"] for s in samples)
    return {"records": records, "posts": posts, "rate": rate, "caught_up_s": round(caught_up, 1),
            "gossip_s": round(gossip_s, 1), "idle_s": idle_s, "peak_mb": peak,
            "peak_main_mb": max(s["main_mb"] for s in samples),
            "after_catch_up_mb": gossip[0]["rss_mb"] if gossip else None,
            "settled_from_mb": settled[0]["rss_mb"] if settled else None,
            "end_mb": samples[-1]["rss_mb"], "growth_after_warm_up_mb": round(growth, 1),
            "sent_s": round(sent_s, 1), "delivered": delivered,
            "member_gossip": {"judged": member_status.gossip_judged,
                              "accepted": member_status.gossip_accepted,
                              "received": member_status.gossip_received,
                              "rejected": member_status.gossip_rejected,
                              "dropped": member_status.gossip_dropped},
            "samples": samples}


def main(argv: list[str] | None = None) -> int:
    """Run the soak, print the figures, write the plot."""
    parser = argparse.ArgumentParser(prog="bench-soak", description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000, help="records caught up")
    parser.add_argument("--posts", type=int, default=720, help="posts gossiped after it")
    parser.add_argument("--rate", type=float, default=4.0, help="posts gossiped a second")
    parser.add_argument("--idle", type=float, default=60.0, help="idle seconds at the end")
    parser.add_argument("--every", type=float, default=1.0, help="seconds between samples")
    parser.add_argument("--flat-mb", type=float, default=5.0,
                        help="most RSS growth after warm-up")
    parser.add_argument("--png", type=Path, default=None,
                        help="where to write the curve (and .json beside it)")
    args = parser.parse_args(argv)
    result = soak(args.records, args.posts, args.rate, args.idle, args.every)
    print(f"member node through {result['records']:,} records caught up in "
          f"{result['caught_up_s']:.0f} s, then {result['posts']:,} posts sent in "
          f"{result['sent_s']:.0f} s (asked {args.rate:g}/s), {result['delivered']:,} of them "
          f"in its replica after {result['gossip_s']:.0f} s, then {args.idle:.0f} s idle")
    print(f"  the member node's gossip counters: {result['member_gossip']}")
    print(f"memory of the node and its verify workers (PSS): peak {result['peak_mb']:.1f} MB "
          f"(target <= {RSS_TARGET_MB:.0f}); the node process alone, RSS: peak "
          f"{result['peak_main_mb']:.1f} MB")
    print(f"  after the catch-up {result['after_catch_up_mb']} MB; from the middle of the "
          f"gossip {result['settled_from_mb']} MB to the end {result['end_mb']} MB: "
          f"{result['growth_after_warm_up_mb']:+.1f} MB (target <= +{args.flat_mb:g})")
    if args.png is not None:
        args.png.parent.mkdir(parents=True, exist_ok=True)
        plot(result["samples"], args.png,
             f"meshcrew node memory: {result['records']:,} records by sync, then "
             f"{result['posts']:,} gossiped posts ({args.rate:g}/s), then idle")
        args.png.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.png} and {args.png.with_suffix('.json')}")
    met = (result["peak_mb"] <= RSS_TARGET_MB
           and result["growth_after_warm_up_mb"] <= args.flat_mb
           and result["delivered"] == result["posts"])
    if result["delivered"] != result["posts"]:
        print(f"NOT DELIVERED: {result['posts'] - result['delivered']:,} posts never reached "
              "the member's replica")
    print("targets met" if met else "TARGET MISSED")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
