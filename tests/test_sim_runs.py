"""Whole simulated runs on small congregations: determinism, the real code, faults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace

import pytest

from meshcrew.sim import (
    Behaviour,
    GossipParams,
    NetParams,
    NodeParams,
    Online,
    Partition,
    RelayParams,
    Scenario,
    congregation,
    run_scenario,
)
from meshcrew.sim.params import DAY
from meshcrew.sim.population import member_key
from meshcrew.sim.schedule import Intent
from meshcrew.spaces import SpaceState
from meshcrew.sync import session as session_module


def small(members: int = 24, *, days: float = 0.5, drain_days: float = 1.0,
          **changes: object) -> Scenario:
    """A small congregation (crews of 6) over half a day, laptops as in the base scenario."""
    base = congregation(members, name=f"small-{members}", days=days)
    scenario = replace(base, behaviour=replace(base.behaviour, drain_days=drain_days))
    return replace(scenario, **changes)  # type: ignore[arg-type]


def assert_clean(summary: object) -> None:
    from meshcrew.sim import Summary

    assert isinstance(summary, Summary)
    assert summary.converged, summary.table()
    assert summary.lost_records == 0
    assert summary.undelivered == {}
    assert summary.nodes_behind == 0
    assert summary.replica_mismatches == 0
    assert summary.refused_posts == 0
    assert summary.refused_locally == 0
    assert summary.leaks == 0
    assert summary.delivered == summary.deliveries > 0


_RUN = ("import json, sys\n"
        "from dataclasses import replace\n"
        "from meshcrew.sim import congregation, run_scenario\n"
        "base = congregation(18, name='det', days=0.4, seed=int(sys.argv[1]))\n"
        "s = replace(base, behaviour=replace(base.behaviour, drain_days=1.0))\n"
        "print(json.dumps(run_scenario(s)[0].deterministic(), sort_keys=True))\n")


def _summary_in_subprocess(seed: int, hash_seed: str) -> dict[str, object]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    done = subprocess.run([sys.executable, "-c", _RUN, str(seed)], capture_output=True,
                          text=True, timeout=120, check=True, env=env)
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_the_same_seed_gives_the_same_summary() -> None:
    # Two processes with different hash seeds: no figure may depend on set or dict order.
    first = _summary_in_subprocess(3, "1")
    second = _summary_in_subprocess(3, "2")
    assert first == second
    assert first["posts"] > 0
    assert first["converged"]
    other = _summary_in_subprocess(4, "1")
    assert other != first


def test_a_small_congregation_converges_with_nothing_lost() -> None:
    summary, simulation = run_scenario(small())
    assert_clean(summary)
    planned = sum(intent is Intent.CHECKIN for plan in simulation.plans for _, intent in plan.posts)
    assert summary.posts_by_kind["checkin"] == planned > 12
    assert summary.sync["run for real"] > 0
    assert summary.gossip["delivered"] > 0
    # Cone crewmates punch through, crewmates behind a symmetric NAT stay on relays.
    assert summary.net["hole-punched"] > 0
    assert summary.net["relayed"] > 0


def test_always_online_without_loss_gossip_delivers_within_seconds() -> None:
    scenario = small(18, net=NetParams(loss=0.0),
                     behaviour=Behaviour(days=0.5, drain_days=0.5, online=Online.ALWAYS,
                                         crash_per_day=0.0))
    summary, _ = run_scenario(scenario)
    assert_clean(summary)
    assert summary.delay_max_s < 5.0
    assert summary.full_max_s < 5.0


def test_crashes_lose_only_what_other_nodes_still_hold() -> None:
    # Received records wait 20 s before they are committed, so crashes catch some in memory.
    scenario = small(18, net=NetParams(loss=0.05), node=NodeParams(ingest_delay_s=20.0),
                     behaviour=Behaviour(days=1.0, drain_days=1.0, online=Online.ALWAYS,
                                         crash_per_day=1.0, restart_s=(5.0, 60.0)))
    summary, _ = run_scenario(scenario)
    assert_clean(summary)
    assert summary.crashes >= 10
    assert summary.lost_on_crash > 0


def test_a_partition_heals_into_convergence() -> None:
    scenario = small(24, days=1.0, partition=Partition(start_day=0.25, days=0.5),
                     behaviour=Behaviour(days=1.0, drain_days=1.0, online=Online.ALWAYS,
                                         crash_per_day=0.0))
    summary, simulation = run_scenario(scenario)
    assert_clean(summary)
    cut = [p for p in simulation.metrics.curve if 0.3 * DAY <= p.at <= 0.75 * DAY]
    assert any(p.done < p.expected for p in cut)  # deliveries waited for the heal


def test_sync_alone_converges_and_a_broken_sync_rule_does_not(
        monkeypatch: pytest.MonkeyPatch) -> None:
    scenario = small(12, net=NetParams(loss=0.0), gossip=GossipParams(enabled=False),
                     behaviour=Behaviour(days=0.1, drain_days=0.05, online=Online.ALWAYS,
                                         crash_per_day=0.0))
    summary, _ = run_scenario(scenario)
    assert_clean(summary)
    assert summary.gossip["delivered"] == 0

    real_fetch = session_module.SyncSession._fetch

    def skips_second_records(self: session_module.SyncSession,
                             space: session_module._Space) -> bool:
        # The broken rule: never send anyone's second record in a space.
        real_fetch(self, space)
        kept = [r for r in space.pending if r.seq != 2]
        space.pending.clear()
        space.pending.extend(kept)
        return bool(kept)

    monkeypatch.setattr(session_module.SyncSession, "_fetch", skips_second_records)
    broken, _ = run_scenario(scenario)
    assert not broken.converged
    assert broken.undelivered["congregation"] > 0
    assert broken.lost_records == 0  # the authors still hold them


def test_a_broken_membership_rule_stops_convergence(monkeypatch: pytest.MonkeyPatch) -> None:
    scenario = small(18)
    summary, _ = run_scenario(scenario)
    assert_clean(summary)

    victim = bytes(member_key(scenario.seed, 5).verify_key)
    real_is_member = SpaceState.is_member

    def forgets_one_member(self: SpaceState, key: bytes) -> bool:
        return key != victim and real_is_member(self, key)

    monkeypatch.setattr(SpaceState, "is_member", forgets_one_member)
    broken, _ = run_scenario(scenario)
    assert not broken.converged
    assert sum(broken.undelivered.values()) > 0
    assert broken.nodes_behind > 0
    assert broken.refused_locally > 0  # the victim's own view will not let them write


def test_with_no_public_member_nobody_behind_nat_can_be_reached() -> None:
    # No public member, so no relay: no circuit to reach a NATed member through, and no
    # circuit to coordinate a hole punch over (even between two cone NATs). Members wait.
    summary, simulation = run_scenario(small(18, net=NetParams(public=0.0)))
    assert not any(simulation.net.reachable)
    assert summary.net["connections"] == summary.delivered == 0
    assert summary.net["callee without relay"] > 0
    assert summary.lost_records == 0


def test_circuits_cut_at_their_data_limit_are_dialled_again_until_records_arrive() -> None:
    # Mostly symmetric NATs, so crewmates talk through relays; circuits of 12 KiB (the node's
    # hold 64 MiB) are cut again and again, and each redial's session goes on from what arrived.
    relay = RelayParams(member_data_bytes=12 * 1024)
    summary, _ = run_scenario(small(18, net=NetParams(public=0.2, symmetric=0.8, relay=relay)))
    assert_clean(summary)
    assert summary.net["hole-punched"] == 0
    assert summary.net["cut at data limit"] > 50
    assert summary.net["relayed"] > summary.net["cut at data limit"]
