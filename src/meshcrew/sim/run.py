"""One simulated run: nodes waking, sleeping, crashing, writing, gossiping and syncing.

:class:`Simulation` wires the parts together and owns the member-level behaviour: each node's
periodic task (keep its peers connected, sync them), its life cycle from its plan, what its
member writes, and the commit of what it receives. Use :func:`run_scenario`.
"""

from __future__ import annotations

import bisect
import random
import resource
import tempfile
import time
from functools import partial
from pathlib import Path

from meshcrew.errors import SpaceError
from meshcrew.records import Record
from meshcrew.sim.events import EventLoop
from meshcrew.sim.gossip import GossipRouter
from meshcrew.sim.metrics import Metrics, OnlineLog
from meshcrew.sim.network import Conn, Network, draw_links
from meshcrew.sim.node import SimNode, VerifyCache, ViewCache
from meshcrew.sim.params import DAY, CarrierKind, Nat, Scenario
from meshcrew.sim.population import T0_MS, build_population, make_replicas
from meshcrew.sim.report import Summary, summarize
from meshcrew.sim.schedule import CREW_INTENTS, Intent, NodePlan, plan_nodes
from meshcrew.sim.syncing import SyncDriver
from meshcrew.sim.workload import make_post


class Simulation:
    """A scenario set up and ready to run in ``workdir`` (one home folder per member)."""

    def __init__(self, scenario: Scenario, workdir: Path) -> None:
        started = time.perf_counter()
        self.scenario = scenario
        self.behaviour = scenario.behaviour
        seed = scenario.seed
        self.population = population = build_population(
            scenario.members, scenario.crews, seed,
            carriers=partial(self._name_carriers, scenario) if scenario.carriers else None)
        homes = make_replicas(population, workdir)
        self.plans = plan_nodes(scenario.behaviour, scenario.members, seed)
        # An always-on carrier is up from the start to the end, and never crashes.
        self.plans += [NodePlan(online=[(0.0, scenario.end_s + DAY)])
                       for _ in range(population.nodes - population.size)]
        self.loop = EventLoop()
        self.catalog: dict[bytes, Record] = {
            r.id: r for space in (population.congregation, *population.crews)
            for r in space.records}
        self.intent_of: dict[bytes, Intent] = {}
        self.views = ViewCache()
        self.verifier = VerifyCache()
        quotas = ((scenario.carriers.space_quota_bytes, scenario.carriers.total_quota_bytes)
                  if scenario.carriers is not None else None)
        self.nodes = [SimNode(n, population.key_of(n), homes[n],
                              tuple(s.space_id for s in population.spaces_of(n)), self.views,
                              self.catalog, self.verifier,
                              carried=tuple(s.space_id for s in population.carried_by(n)),
                              quotas=quotas) for n in range(population.nodes)]
        # A relay gives member limits to a peer that is a member of a space the relay serves
        # (the node's _shares_a_space): its own spaces and, on a carrier, those it carries.
        spaces_of = [frozenset(s.space_id for s in population.spaces_of(n))
                     for n in range(population.nodes)]
        served = [spaces_of[n] | {s.space_id for s in population.carried_by(n)}
                  for n in range(population.nodes)]
        self.net = Network(self.loop, scenario.net, population.size, seed,
                           lambda m: self.nodes[m].online,
                           lambda relay, peer: not served[relay].isdisjoint(spaces_of[peer]),
                           public_extra=population.nodes - population.size)
        self.gossip = GossipRouter(self.loop, self.net, self.nodes, scenario.gossip, seed,
                                   self._on_gossip)
        self.sync = SyncDriver(self.net, self.nodes, scenario.node, self._on_sync)
        self.net.on_open.append(self._on_open)
        members = {s.space_id: frozenset(s.members)
                   for s in (population.congregation, *population.crews)}
        named = {crew.space_id: frozenset(c)
                 for crew, c in zip(population.crews, population.carriers, strict=True) if c}
        self.metrics = Metrics(members, [OnlineLog() for _ in self.nodes], named)
        self.rng = random.Random(f"meshcrew-sim members {seed}")
        self._commit_pending = [False] * population.nodes
        self._to_propagate: list[tuple[int, set[bytes]]] = [(-1, set())] * population.nodes
        """Per node, spaces with carriers that got new records since its last propagation (and
        the node's generation then)."""
        self._deferred: list[list[tuple[Intent, bytes | None]]] = [[] for _ in self.nodes]
        self._backoff: list[dict[int, tuple[float, float]]] = [{} for _ in self.nodes]
        self.crashes = 0
        self.refused_locally = 0
        """Posts the member could not write (their own view of the space refused them)."""
        self.outstanding = 0
        """Posts planned or promised (answers) and not yet written."""
        self._crewmates = [[m for m in population.crews[population.crew_of[n]].members
                            if m != n] for n in range(population.size)]
        self._public = [m for m in range(population.size) if self.net.reachable[m]]
        self._favorites = [self._pick_favorites(n) for n in range(population.size)]
        self._carriers = [population.carriers[population.crew_of[n]]
                          for n in range(population.size)]
        """Per member, the carriers their crew names (their node dials them, as it dials
        the members of its spaces)."""
        self._schedule_plans()
        self.setup_s = time.perf_counter() - started

    # -- setup ---------------------------------------------------------------------------------

    @staticmethod
    def _name_carriers(scenario: Scenario,
                       crew_of: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
        """Per crew, the nodes it names as carriers (see :class:`~meshcrew.sim.Carriers`)."""
        carriers = scenario.carriers
        if carriers is None:
            return ()
        members, crews = scenario.members, scenario.crews
        if carriers.kind is CarrierKind.ALWAYS_ON:
            return tuple(tuple(members + c * carriers.per_crew + i
                               for i in range(carriers.per_crew)) for c in range(crews))
        # Public members outside the crew, as the network will draw them.
        public = [m for m, nat in enumerate(draw_links(scenario.net, members, scenario.seed)[2])
                  if nat is Nat.PUBLIC]
        draw = random.Random(f"meshcrew-sim carriers {scenario.seed}")
        named = []
        for c in range(crews):
            pool = [m for m in public if crew_of[m] != c]
            named.append(tuple(sorted(draw.sample(pool, min(carriers.per_crew, len(pool))))))
        return tuple(named)

    def _pick_favorites(self, node: int) -> list[int]:
        crew = set(self._crewmates[node])
        pool = [m for m in range(self.population.size)
                if m != node and m not in crew and self.net.reachable[m]]
        return self.rng.sample(pool, min(self.scenario.net.congregation_peers, len(pool)))

    def _schedule_plans(self) -> None:
        at = self.loop.at
        for node, plan in enumerate(self.plans):
            for start, end in plan.online:
                at(start, self._wake, node)
                at(end, self._sleep, node)
            for crash_at, restart_at in plan.crashes:
                at(crash_at, self._crash, node, restart_at)
            for post_at, intent in plan.posts:
                self.outstanding += 1
                at(post_at, self._post, node, intent, None)
        partition = self.scenario.partition
        if partition is not None:
            draw = random.Random(f"meshcrew-sim partition {self.scenario.seed}")
            cut = set(draw.sample(range(len(self.nodes)),
                                  round(partition.fraction * len(self.nodes))))
            groups = [1 if n in cut else 0 for n in range(len(self.nodes))]
            keepalive = self.scenario.net.keepalive_s
            at(partition.start_day * DAY, self.net.split, groups, keepalive)
            at((partition.start_day + partition.days) * DAY, self.net.split,
               [0] * len(self.nodes), keepalive)
        step = self.scenario.sample_s
        for i in range(int(self.scenario.end_s / step) + 1):
            at(i * step, self._sample)

    def _now_ms(self) -> int:
        return T0_MS + int(self.loop.now * 1000)

    def _planned_online(self, node: int) -> bool:
        online = self.plans[node].online
        i = bisect.bisect_right(online, (self.loop.now, float("inf"))) - 1
        return i >= 0 and online[i][0] <= self.loop.now < online[i][1]

    # -- life cycle ----------------------------------------------------------------------------

    def _wake(self, node: int) -> None:
        target = self.nodes[node]
        if target.online:
            return
        if target.replica is None:
            target.open()
        target.online = True
        self.metrics.logs[node].up(self.loop.now)
        self._tick(node, target.generation)
        deferred, self._deferred[node] = self._deferred[node], []
        for intent, to in deferred:
            self.loop.after(self.rng.uniform(0, 60), self._post, node, intent, to)

    def _down(self, node: int, *, crashed: bool) -> None:
        target = self.nodes[node]
        self.sync.node_down(node)
        notice = self.scenario.net.reset_notice_s if crashed else self.scenario.net.keepalive_s
        self.net.drop_node(node, notice)
        self.gossip.node_down(node, crashed=crashed)
        self.metrics.logs[node].down(self.loop.now)
        self._commit_pending[node] = False
        if crashed:
            target.crash()
        else:
            self._commit(node, target.generation)  # a sleeping laptop keeps its memory
            target.online = False
            target.generation += 1

    def _sleep(self, node: int) -> None:
        if self.nodes[node].online:
            self._down(node, crashed=False)

    def _crash(self, node: int, restart_at: float) -> None:
        if not self.nodes[node].online:
            return
        self.crashes += 1
        self._down(node, crashed=True)
        self.loop.at(restart_at, self._restart, node)

    def _restart(self, node: int) -> None:
        if self._planned_online(node):
            self._wake(node)

    # -- the node's periodic task --------------------------------------------------------------

    def _tick(self, node: int, generation: int) -> None:
        target = self.nodes[node]
        if generation != target.generation or not target.online:
            return
        self._keep_peers(node)
        self.sync.sync_peers(node)
        low, high = self.scenario.node.sync_jitter
        self.loop.after(self.scenario.node.sync_period_s * self.rng.uniform(low, high),
                        self._tick, node, generation)

    def _dial(self, node: int, peer: int) -> bool:
        """Dial unless a recent dial of this peer failed; False if it was skipped."""
        if peer in self.net.conns[node]:
            return False
        backoff = self._backoff[node].get(peer)
        if backoff is not None and self.loop.now < backoff[0]:
            return False
        first, cap = self.scenario.net.redial_s
        delay = min(backoff[1] * 2, cap) if backoff is not None else first
        self._backoff[node][peer] = (self.loop.now + delay, delay)
        self.net.dial(node, peer)
        return True

    def _keep_peers(self, node: int) -> None:
        """Dial crewmates, favourite congregation peers and the crew's carriers; if too few
        congregation peers are connected, dial as many other public members (not recently
        failed) as are missing. An always-on carrier dials nobody: it is no member of
        anything, so its node wants no peer; members dial it."""
        if node >= self.population.size:
            return
        for peer in (*self._crewmates[node], *self._favorites[node], *self._carriers[node]):
            self._dial(node, peer)
        crew = self._crewmates[node]
        missing = self.scenario.net.congregation_peers - sum(
            1 for p in self.net.conns[node] if p not in crew)
        if missing <= 0:
            return
        now, backoff = self.loop.now, self._backoff[node]
        pool = [p for p in self._public if p != node and p not in self.net.conns[node]
                and now >= backoff.get(p, (0.0, 0.0))[0]]
        for peer in self.rng.sample(pool, min(missing, len(pool))):
            self._dial(node, peer)

    def _on_open(self, conn: Conn) -> None:
        self._backoff[conn.a].pop(conn.b, None)
        self._backoff[conn.b].pop(conn.a, None)

    # -- receiving -----------------------------------------------------------------------------

    def _on_gossip(self, node: int, raw: bytes) -> None:
        self.nodes[node].queue.append(raw)
        self._schedule_commit(node)

    def _on_sync(self, node: int, raws: tuple[bytes, ...]) -> None:
        self.nodes[node].queue.extend(raws)
        self._schedule_commit(node)

    def _schedule_commit(self, node: int) -> None:
        if not self._commit_pending[node]:
            self._commit_pending[node] = True
            self.loop.after(self.scenario.node.ingest_delay_s, self._commit, node,
                            self.nodes[node].generation)

    def _commit(self, node: int, generation: int) -> None:
        target = self.nodes[node]
        if generation != target.generation or target.replica is None:
            return
        self._commit_pending[node] = False
        now = self.loop.now
        for record_id in target.commit(self._now_ms()):
            self.metrics.on_held(node, record_id, now)
            self._answer(node, record_id)
            self._propagate_soon(node, self.catalog[record_id].space_id)

    def _propagate_soon(self, node: int, space: bytes) -> None:
        """As the node's ``_propagate``: new records are synced on to connected peers soon (a
        burst gathered into one session), here only to carriers (the node syncs its members
        too; the simulator leaves that to gossip and the periodic sessions)."""
        if space not in self.metrics.carriers or node in self.metrics.carriers[space]:
            return
        generation = self.nodes[node].generation
        pending, spaces = self._to_propagate[node]
        if pending != generation or not spaces:
            spaces = set()
            self._to_propagate[node] = (generation, spaces)
            self.loop.after(self.scenario.node.propagate_delay_s, self._propagate, node,
                            generation)
        spaces.add(space)

    def _propagate(self, node: int, generation: int) -> None:
        if generation != self.nodes[node].generation or not self.nodes[node].online:
            return
        spaces = self._to_propagate[node][1]
        self._to_propagate[node] = (generation, set())
        carriers = frozenset().union(*(self.metrics.carriers[s] for s in spaces))
        for peer, conn in list(self.net.conns[node].items()):
            if peer in carriers:
                self.sync.start(conn)

    # -- writing -------------------------------------------------------------------------------

    def _answer(self, node: int, record_id: bytes) -> None:
        """Maybe answer a post the member just received (reactions to check-ins, replies)."""
        intent = self.intent_of.get(record_id)
        if intent is None or node not in self.metrics.members[self.catalog[record_id].space_id]:
            return  # a carrier holds what it carries sealed, and answers nothing
        b = self.behaviour
        if intent is Intent.CHECKIN:
            chance, answer = b.reaction, Intent.REACTION
        elif intent in (Intent.ASK, Intent.OFFER):
            chance, answer = b.replies_per_ask / max(self.population.size - 1, 1), Intent.REPLY
        else:
            return
        if self.loop.now < b.days * DAY and self.rng.random() < chance:
            self.outstanding += 1
            self.loop.after(self.rng.expovariate(1 / b.answer_delay_s), self._post, node,
                            answer, record_id)

    def _post(self, node: int, intent: Intent, to: bytes | None) -> None:
        target = self.nodes[node]
        if not target.online:
            self._deferred[node].append((intent, to))
            return
        self.outstanding -= 1
        space = target.space_ids[1 if intent in CREW_INTENTS else 0]
        post = make_post(intent, node, self.rng, to=to, now_ms=self._now_ms())
        try:
            record = target.write(space, post, self._now_ms(), self.rng.randbytes)
        except SpaceError:
            self.refused_locally += 1  # the member's own view does not let them write here
            return
        self.catalog[record.id] = record
        self.intent_of[record.id] = intent
        target.accept_own(record)
        self.metrics.on_made(record, node, self.loop.now)
        self.gossip.publish(node, record)
        self._propagate_soon(node, space)

    # -- running -------------------------------------------------------------------------------

    def _sample(self) -> None:
        self.metrics.sample(self.loop.now)

    def finished(self) -> bool:
        """Whether every post is written and every member holds every record of their spaces."""
        return (self.loop.now >= self.behaviour.days * DAY and self.outstanding == 0
                and self.metrics.missing == 0)

    def run(self) -> Summary:
        """Run to convergence (or the scenario's end) and check every replica."""
        started = time.perf_counter()
        end = self.loop.run(self.scenario.end_s, stop=self.finished)
        self.metrics.sample(end)
        run_s = time.perf_counter() - started
        return summarize(self, end, setup_s=self.setup_s, run_s=run_s,
                         peak_rss_kib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)

    def close(self) -> None:
        """Close every replica."""
        for node in self.nodes:
            if node.replica is not None:
                node.replica.close()
                node.replica = None


def run_scenario(scenario: Scenario, workdir: Path | None = None) -> tuple[Summary, Simulation]:
    """Set up and run a scenario; replicas live in ``workdir`` (a temporary folder if None,
    removed afterwards)."""
    if workdir is not None:
        simulation = Simulation(scenario, workdir)
        try:
            return simulation.run(), simulation
        finally:
            simulation.close()
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(prefix="meshcrew-sim-",
                                     dir=shm if shm.is_dir() else None) as folder:
        simulation = Simulation(scenario, Path(folder))
        try:
            return simulation.run(), simulation
        finally:
            simulation.close()
