"""The summary of a run: its figures, a final check of every replica, a table and JSON.

Everything in :class:`Summary` except the ``measured`` part is a function of the scenario and
its seed: the same seed gives the same summary (tested). ``measured`` holds wall-clock time and
the process's memory, which depend on the machine.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from meshcrew.records import Record
from meshcrew.sim.events import EventLoop
from meshcrew.sim.gossip import GossipRouter
from meshcrew.sim.metrics import Metrics, quantile
from meshcrew.sim.network import Network, Traffic
from meshcrew.sim.node import SimNode, ViewCache
from meshcrew.sim.params import DAY, Nat, Scenario
from meshcrew.sim.population import Population
from meshcrew.sim.schedule import Intent
from meshcrew.sim.syncing import SyncDriver
from meshcrew.spaces import RecordKind, fold, open_posts, unlock


class FinishedRun(Protocol):
    """What :func:`summarize` reads of a finished run (``meshcrew.sim.run.Simulation``; a
    protocol, so that this module does not import the one that imports it)."""

    @property
    def scenario(self) -> Scenario: ...
    @property
    def population(self) -> Population: ...
    @property
    def nodes(self) -> Sequence[SimNode]: ...
    @property
    def catalog(self) -> Mapping[bytes, Record]: ...
    @property
    def intent_of(self) -> Mapping[bytes, Intent]: ...
    @property
    def metrics(self) -> Metrics: ...
    @property
    def net(self) -> Network: ...
    @property
    def gossip(self) -> GossipRouter: ...
    @property
    def sync(self) -> SyncDriver: ...
    @property
    def views(self) -> ViewCache: ...
    @property
    def loop(self) -> EventLoop: ...
    @property
    def crashes(self) -> int: ...
    @property
    def refused_locally(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Measured:
    """Figures that depend on the machine the run used."""

    setup_s: float
    run_s: float
    peak_rss_mib: float
    """The process's peak resident memory (all nodes, SQLite caches included)."""
    rss_per_node_kib: float


@dataclass(frozen=True, slots=True)
class Summary:
    """The figures of one run (times in simulated seconds, sizes in bytes)."""

    scenario: str
    seed: int
    members: int
    crews: int
    days: float
    setup_records: int
    posts: int
    posts_by_kind: dict[str, int]
    deliveries: int
    delivered: int
    converged: bool
    lost_records: int
    """Records that no replica holds at the end (must be 0)."""
    undelivered: dict[str, int]
    """Records some member of their space lacks at the end, by kind of space."""
    nodes_behind: int
    """Members whose replica lacks a record of one of their spaces at the end."""
    replica_mismatches: int
    """Nodes whose replica's frontier differs from what the run saw it accept (must be 0)."""
    refused_posts: int
    """Posts the space rules refuse when a member's replica is folded at the end (must be 0)."""
    leaks: int
    """Records accepted by a node neither a member nor a carrier of their space (must be 0)."""
    refused_locally: int
    """Posts a member could not write because their own view refused them (must be 0)."""
    full_p50_s: float
    """Per record: time from its commit by the author until every member holds it."""
    full_p95_s: float
    full_max_s: float
    bound_p50_s: float
    """Per record: the least ``full`` time possible, until its last member was first up after
    it was made (:meth:`Metrics.full_bounds`)."""
    delay_p50_s: float
    """Per delivery: simulated time from the author's commit to the member's."""
    delay_p95_s: float
    delay_max_s: float
    awake_p50_s: float
    """Per delivery: the part of the delay the member's node was up."""
    awake_p99_s: float
    awake_max_s: float
    ready_p50_s: float
    """Per delivery: the member's time up from when it and a holder were first up together."""
    ready_p99_s: float
    ready_max_s: float
    drain_s: float
    """From the last post until every member held every record."""
    end_s: float
    crashes: int
    lost_on_crash: int
    """Received records a crash lost before they were committed (fetched again later)."""
    bytes_per_node_day: dict[str, float]
    """Mean bytes sent per node per simulated day, by traffic kind, and ``total``."""
    bytes_per_node_day_p95: float
    bytes_per_node_day_max: float
    relay_bytes_per_day_max: float
    """The busiest relay's forwarded bytes per day."""
    received_twice: int
    """Records a node received (by sync or gossip) that it already held."""
    sync: dict[str, int]
    gossip: dict[str, int]
    net: dict[str, int]
    replica_bytes_mean: float
    """The replica per node at the end (SQLite pages in use)."""
    replica_bytes_max: int
    wal_bytes_max: int
    """The largest write-ahead log (SQLite checkpoints it at about 4 MiB)."""
    gossip_seen_peak: int
    """Most message ids one node remembered as seen at once."""
    folds: int
    events: int
    carriers: dict[str, float] = field(default_factory=dict)
    """What the carriers did (empty: the scenario has none): how many, the records they took
    and refused, what they lacked at the end, their bytes sent and replicas."""
    measured: Measured | None = field(default=None, compare=False)

    def deterministic(self) -> dict[str, Any]:
        """Every figure that the seed fixes."""
        data = dataclasses.asdict(self)
        data.pop("measured")
        return data

    def to_json(self) -> dict[str, Any]:
        """All figures, measured ones included."""
        return dataclasses.asdict(self)

    @property
    def _kind(self) -> str:
        return "always-on" if self.carriers.get("always_on") else "public members"

    def table(self) -> str:
        """The summary as an aligned text table."""
        rows = [
            ("scenario", f"{self.scenario} (seed {self.seed})"),
            ("members / crews / days", f"{self.members} / {self.crews} / {self.days:g}"),
            ("records: setup / posts", f"{self.setup_records:,} / {self.posts:,}"),
            ("posts by kind", ", ".join(f"{k} {v:,}" for k, v in self.posts_by_kind.items())),
            ("deliveries done", f"{self.delivered:,} of {self.deliveries:,}"),
            ("converged", "yes" if self.converged else "NO"),
            ("records lost (held by no replica)", f"{self.lost_records}"),
            ("records undelivered at the end", ", ".join(
                f"{k} {v}" for k, v in self.undelivered.items()) or "0"),
            ("replicas lacking a record", f"{self.nodes_behind}"),
            ("replicas unlike the run's account", f"{self.replica_mismatches}"),
            ("posts refused by space rules", f"{self.refused_posts}"),
            ("records leaked to non-members", f"{self.leaks}"),
            ("posts the author could not write", f"{self.refused_locally}"),
            ("record held by all: p50 / p95 / max", _times(self.full_p50_s, self.full_p95_s,
                                                             self.full_max_s)),
            ("  bound (last member first up): p50", _time(self.bound_p50_s)),
            ("delivery delay: p50 / p95 / max", _times(self.delay_p50_s, self.delay_p95_s,
                                                        self.delay_max_s)),
            ("awake delay: p50 / p99 / max", _times(self.awake_p50_s, self.awake_p99_s,
                                                     self.awake_max_s)),
            ("ready delay: p50 / p99 / max", _times(self.ready_p50_s, self.ready_p99_s,
                                                     self.ready_max_s)),
            ("last post to convergence", _time(self.drain_s)),
            ("crashes (records lost in memory)", f"{self.crashes} ({self.lost_on_crash})"),
            ("bytes sent / node / day: mean", _size(self.bytes_per_node_day["total"])),
            ("  gossip / control / sync / connect / relay",
             " / ".join(_size(self.bytes_per_node_day[t.name.lower()]) for t in Traffic)),
            ("bytes sent / node / day: p95 / max", f"{_size(self.bytes_per_node_day_p95)} / "
                                                   f"{_size(self.bytes_per_node_day_max)}"),
            ("busiest relay / day", _size(self.relay_bytes_per_day_max)),
            ("records received again", f"{self.received_twice:,}"),
            ("sync sessions", ", ".join(f"{k} {v:,}" for k, v in self.sync.items())),
            ("gossip", ", ".join(f"{k} {v:,}" for k, v in self.gossip.items())),
            ("network", ", ".join(f"{k} {v:,}" for k, v in self.net.items())),
            ("replica per node: mean / max", f"{_size(self.replica_bytes_mean)} / "
                                             f"{_size(self.replica_bytes_max)}"),
            ("write-ahead log: max", _size(self.wal_bytes_max)),
            ("gossip seen-cache peak", f"{self.gossip_seen_peak:,} ids"),
            ("simulated events", f"{self.events:,}"),
        ]
        if self.carriers:
            c = self.carriers
            rows[6:6] = [
                ("carriers (per crew)", f"{c['nodes']:.0f} ({c['per_crew']:.0f}, {self._kind})"),
                ("carriers: records taken / refused", f"{c['records_taken']:,.0f} / "
                                                      f"{c['refused_over_quota']:,.0f}"),
                ("carriers lacking a record at the end", f"{c['behind']:.0f}"),
                ("carrier sent / day: mean / max", f"{_size(c['sent_per_day_mean'])} / "
                                                   f"{_size(c['sent_per_day_max'])}"),
                ("carrier replica: max", _size(c["replica_bytes_max"])),
            ]
        if self.measured is not None:
            m = self.measured
            rows += [("wall time: setup / run", f"{m.setup_s:.1f} s / {m.run_s:.1f} s"),
                     ("peak RSS (per node)", f"{m.peak_rss_mib:.0f} MiB "
                                             f"({m.rss_per_node_kib:.0f} KiB)")]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def _time(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _times(*values: float) -> str:
    return " / ".join(_time(v) for v in values)


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


@dataclass(frozen=True, slots=True)
class _Check:
    behind: int
    """Members whose replica lacks a record of one of their spaces."""
    carriers_behind: int
    """Carriers whose replica lacks a record of a space they carry."""
    mismatches: int
    """Nodes whose replica's frontier differs from what the run saw it accept."""
    lost: int
    """Records no replica holds any more."""
    refused: int
    """Posts that the space rules refuse, or that a member cannot open."""


def _check_replicas(sim: FinishedRun) -> _Check:
    """Compare every replica with the truth and with the run's bookkeeping; fold and open one
    replica per space."""
    truth: dict[bytes, dict[bytes, bytes]] = {}
    best: dict[tuple[bytes, bytes], int] = {}
    for record in sim.catalog.values():
        key = (record.space_id, record.author)
        if record.seq > best.get(key, 0):
            best[key] = record.seq
            truth.setdefault(record.space_id, {})[record.author] = record.id
    behind = carriers_behind = mismatches = 0
    held: dict[tuple[bytes, bytes], int] = {}
    members = sim.population.size
    for node in sim.nodes:
        if node.replica is None:
            node.open()
        frontiers = {s: node.store.frontier(s) for s in node.space_ids}
        for space, frontier in frontiers.items():
            for author, head in frontier.items():
                held[(space, author)] = max(held.get((space, author), 0), head.seq)
        ids = {s: {a: h.id for a, h in f.items()} for s, f in frontiers.items()}
        own = [s for s in node.space_ids if s not in node.carried]
        behind += any(ids[s] != truth[s] for s in own) and node.index < members
        carriers_behind += any(ids[s] != truth[s] for s in node.carried)
        mismatches += any(ids[s] != node.heads[s] for s in node.space_ids)
    lost = sum(1 for r in sim.catalog.values() if held.get((r.space_id, r.author), 0) < r.seq)
    refused = 0
    population = sim.population
    for setup in (population.congregation, *population.crews):
        holder = sim.nodes[setup.members[0]]
        state = fold(setup.space_id, holder.store.space_records(setup.space_id))
        opened = open_posts(state, unlock(state, holder.key))
        sealed = [r for r in state.records.values() if r.kind == RecordKind.SEALED]
        refused += len(sealed) - len(opened.posts)
    return _Check(behind, carriers_behind, mismatches, lost, refused)


def _carriers(sim: FinishedRun, check: _Check, days: float) -> dict[str, float]:
    named = sim.population.carriers
    nodes = sorted({n for crew in named for n in crew})
    if not nodes:
        return {}
    sent = [sum(sim.net.stats.sent[n]) / days for n in nodes]
    return {
        "nodes": len(nodes), "per_crew": max(len(crew) for crew in named),
        "always_on": float(nodes[0] >= sim.population.size),
        "records_taken": sim.metrics.carried,
        "refused_over_quota": sum(sim.nodes[n].refused_over_quota for n in nodes),
        "behind": check.carriers_behind,
        "sent_per_day_mean": sum(sent) / len(sent), "sent_per_day_max": max(sent),
        "replica_bytes_max": max(sim.nodes[n].replica_bytes()[0] for n in nodes),
    }


def summarize(sim: FinishedRun, end: float, *, setup_s: float, run_s: float,
              peak_rss_kib: int) -> Summary:
    """The summary of a finished run."""
    metrics = sim.metrics
    scenario = sim.scenario
    members = sim.population.size  # per-node figures are the members' (carriers apart)
    days = max(end / DAY, 1e-9)
    check = _check_replicas(sim)
    congregation = sim.population.congregation.space_id
    undelivered = Counter("congregation" if metrics.made[rid].space == congregation else "crew"
                          for rid in metrics.incomplete())
    ready = metrics.ready_delays()
    sent = sim.net.stats.sent[:members]
    per_node_day = sorted(sum(row) / days for row in sent)
    by_kind = {t.name.lower(): sum(row[t] for row in sent) / members / days for t in Traffic}
    by_kind["total"] = sum(per_node_day) / members
    full = [metrics.complete_at[rid] - made.at for rid, made in metrics.made.items()
            if rid in metrics.complete_at]
    complete = len(metrics.complete_at) == len(metrics.made)
    converged_at = max(metrics.complete_at.values(), default=0.0)
    kinds = Counter(sim.intent_of[rid].value for rid in metrics.made)
    gossip, sync, net = sim.gossip.stats, sim.sync.stats, sim.net.stats
    sizes = [node.replica_bytes()[0] for node in sim.nodes[:members]]
    wal = max(node.replica_bytes()[1] for node in sim.nodes[:members])
    return Summary(
        scenario=scenario.name, seed=scenario.seed, members=members, crews=scenario.crews,
        days=scenario.behaviour.days,
        setup_records=len(sim.catalog) - len(metrics.made), posts=len(metrics.made),
        posts_by_kind=dict(sorted(kinds.items())),
        deliveries=metrics.expected, delivered=metrics.done,
        converged=complete and metrics.missing == 0,
        lost_records=check.lost, undelivered=dict(sorted(undelivered.items())),
        nodes_behind=check.behind, replica_mismatches=check.mismatches,
        refused_posts=check.refused, leaks=metrics.leaks, refused_locally=sim.refused_locally,
        full_p50_s=quantile(full, 0.5), full_p95_s=quantile(full, 0.95),
        full_max_s=max(full, default=0.0), bound_p50_s=quantile(metrics.full_bounds(), 0.5),
        delay_p50_s=quantile(metrics.delays, 0.5), delay_p95_s=quantile(metrics.delays, 0.95),
        delay_max_s=max(metrics.delays, default=0.0),
        awake_p50_s=quantile(metrics.awake, 0.5), awake_p99_s=quantile(metrics.awake, 0.99),
        awake_max_s=max(metrics.awake, default=0.0),
        ready_p50_s=quantile(ready, 0.5), ready_p99_s=quantile(ready, 0.99),
        ready_max_s=max(ready, default=0.0),
        drain_s=max(converged_at - metrics.last_made, 0.0) if complete else end - metrics.last_made,
        end_s=end, crashes=sim.crashes,
        lost_on_crash=sum(n.lost_on_crash for n in sim.nodes),
        bytes_per_node_day=by_kind,
        bytes_per_node_day_p95=quantile(per_node_day, 0.95),
        bytes_per_node_day_max=per_node_day[-1],
        relay_bytes_per_day_max=max(row[Traffic.RELAY] for row in sim.net.stats.sent) / days,
        received_twice=sum(n.duplicates for n in sim.nodes[:members]),
        sync={"started": sync.started, "counted in sync": sync.counted_in_sync,
              "run for real": sync.started - sync.counted_in_sync, "completed": sync.completed,
              "reset": sync.reset, "records sent": sync.records_sent},
        gossip={"published": gossip.published, "delivered": gossip.delivered,
                "duplicates": gossip.duplicates, "ignored": gossip.ignored,
                "IHAVE": gossip.ihave, "IWANT": gossip.iwant, "served": gossip.served,
                "grafts": gossip.grafts, "prunes": gossip.prunes},
        net={**{f"{kind.value} nodes": sim.net.nat[:members].count(kind) for kind in Nat},
             "connections": net.connections, "relayed": net.relayed_connections,
             "hole-punched": net.punched, "reversed": net.reversed,
             "punches failed": net.punches_failed, "dials failed": net.dials_failed,
             "callee without relay": net.no_relay, "circuits refused": net.circuits_refused,
             "reservations refused": net.reservations_refused,
             "cut at data limit": net.cut_at_data_limit,
             "cut at time limit": net.cut_at_time_limit,
             "relay peak circuits": net.peak_circuits,
             "relay peak reservations": net.peak_reservations,
             "messages lost": net.lost_messages, "dead letters": net.dead_letters},
        replica_bytes_mean=sum(sizes) / members, replica_bytes_max=max(sizes),
        wal_bytes_max=wal,
        gossip_seen_peak=sim.gossip.stats.peak_seen,
        folds=sim.views.folds, events=sim.loop.processed,
        carriers=_carriers(sim, check, days),
        measured=Measured(setup_s, run_s, peak_rss_kib / 1024, peak_rss_kib / members),
    )
