"""Carriers in the simulator (issue 12): nodes a crew names to hold and serve its sealed records.

A small congregation whose laptops are up 2 hours a day, as in ``churn-2h``: without carriers
some crew posts never reach some crewmates in the run; with one always-on carrier per crew
every crew post reaches every crewmate, the carrier never counts as a member, cannot open what
it holds, and keeps to its quota.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import pytest

from meshcrew.sim import (
    Behaviour,
    CarrierKind,
    Carriers,
    NetParams,
    NodeParams,
    Online,
    RelayParams,
    Scenario,
    Simulation,
    Summary,
    congregation,
    run_scenario,
)
from meshcrew.sim.population import build_population
from meshcrew.spaces import RecordKind, SpaceKind, fold, open_posts, unlock

CHURN = Behaviour(days=1.0, hours_per_day=2.0, start_hour=(14.0, 20.0), drain_days=3.0)


def churn(carriers: Carriers | None = None) -> Scenario:
    """36 members in 5 crews, up 2 hours a day, a day of posting and 3 days to drain."""
    return replace(congregation(36, name="churn-36", days=1.0), behaviour=CHURN,
                   carriers=carriers)


_RUNS: dict[Carriers | None, tuple[Summary, Simulation]] = {}
_COUNT = itertools.count()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sim-carriers")


def _run(carriers: Carriers | None, workdir: Path) -> tuple[Summary, Simulation]:
    """One run per setting for the module; its replicas stay in ``workdir`` to be read."""
    if carriers not in _RUNS:
        _RUNS[carriers] = run_scenario(churn(carriers), workdir / f"run-{next(_COUNT)}")
    return _RUNS[carriers]


def test_without_carriers_some_crew_posts_never_reach_some_crewmates(workdir: Path) -> None:
    summary, _ = _run(None, workdir)
    assert summary.undelivered.get("crew", 0) > 0
    assert summary.lost_records == 0
    assert summary.carriers == {}


def test_an_always_on_carrier_per_crew_gets_every_crew_post_to_every_crewmate(
        workdir: Path) -> None:
    before, _ = _run(None, workdir)
    summary, simulation = _run(Carriers(CarrierKind.ALWAYS_ON), workdir)
    assert summary.undelivered.get("crew", 0) == 0
    assert summary.full_p50_s <= before.full_p50_s / 2
    # No network beats the members' own hours: every record was held by all no sooner than
    # its last member was first up after it was made.
    bounds = simulation.metrics.full_bounds()
    for made, bound in zip(simulation.metrics.made.values(), bounds, strict=True):
        done = [at for rid, at in simulation.metrics.complete_at.items()
                if simulation.metrics.made[rid] is made]
        assert all(at - made.at >= bound - 1e-6 for at in done)
    assert sum(1 for b in bounds if b > 6 * 3600) > len(bounds) / 2  # most wait for a member
    assert summary.lost_records == summary.leaks == summary.replica_mismatches == 0
    assert summary.refused_posts == summary.refused_locally == 0
    assert summary.carriers["nodes"] == simulation.scenario.crews == 5
    assert summary.carriers["behind"] == 0  # each holds every record of its crew
    crew_posts = sum(1 for rid, made in simulation.metrics.made.items()
                     if made.space != simulation.population.congregation.space_id)
    assert summary.carriers["records_taken"] == crew_posts > 0
    # Per-member figures leave the carriers out: a delivery is to a member only.
    members = simulation.population.size
    assert all(n < members for made in simulation.metrics.made.values() for n in made.holders)
    assert summary.net["public nodes"] + summary.net["cone nodes"] + \
        summary.net["symmetric nodes"] == members


def test_a_carrier_holds_its_crews_records_sealed_and_nothing_else(workdir: Path) -> None:
    _, simulation = _run(Carriers(CarrierKind.ALWAYS_ON), workdir)
    population = simulation.population
    for index, crew in enumerate(population.crews):
        (node,) = population.carriers[index]
        carrier = simulation.nodes[node]
        assert carrier.space_ids == (crew.space_id,)
        carrier.open()
        held = carrier.store.space_records(crew.space_id)
        assert carrier.store.space_records(population.congregation.space_id) == []
        state = fold(crew.space_id, held)
        assert state.is_carrier(carrier.public)
        assert not state.is_member(carrier.public)
        sealed = state.accepted(RecordKind.SEALED)
        assert sealed
        assert not open_posts(state, unlock(state, carrier.key)).posts
        member = simulation.nodes[crew.members[0]]
        assert len(open_posts(state, unlock(state, member.key)).posts) == len(sealed)
        carrier.store.close()
        carrier.replica = None


def test_a_carrier_past_its_quota_refuses_and_stays_within_it(
        tmp_path: Path) -> None:
    # A quota of the crew's setup and about two posts: the carrier refuses the rest.
    quota = max(sum(len(r.raw) for r in crew.records)
                for crew in build_population(36, 5, 1, carriers=lambda crews: ((36,),) * 5)
                .crews) + 2_000
    summary, simulation = run_scenario(churn(Carriers(CarrierKind.ALWAYS_ON,
                                                      space_quota_bytes=quota)), tmp_path)
    assert summary.carriers["refused_over_quota"] > 0
    assert summary.carriers["behind"] > 0
    assert summary.lost_records == 0
    for index in range(simulation.scenario.crews):
        (node,) = simulation.population.carriers[index]
        carrier = simulation.nodes[node]
        carrier.open()
        crew = simulation.population.crews[index].space_id
        assert sum(len(r.raw) for r in carrier.store.space_records(crew)) <= quota
        carrier.store.close()
        carrier.replica = None


def test_public_congregation_members_carry_crews_they_are_not_in(workdir: Path) -> None:
    summary, simulation = _run(Carriers(CarrierKind.PUBLIC_MEMBERS, per_crew=3), workdir)
    population = simulation.population
    assert population.carrier_keys == ()
    for crew, named in zip(population.crews, population.carriers, strict=True):
        assert len(named) == 3
        assert all(simulation.net.reachable[n] and n not in crew.members for n in named)
        assert simulation.nodes[named[0]].carried >= {crew.space_id}
    assert summary.leaks == summary.lost_records == 0
    assert summary.carriers["records_taken"] > 0
    assert summary.carriers["always_on"] == 0


def test_naming_carriers_adds_carrier_records_and_changes_no_other_setup_record() -> None:
    plain = build_population(18, 3, 5)
    named = build_population(18, 3, 5, carriers=lambda crew_of: (
        (18,), (19,), tuple(m for m in range(18) if crew_of[m] != 2)[:2]))
    assert named.congregation.records == plain.congregation.records
    assert len(named.carrier_keys) == 2
    for before, after, carriers in zip(plain.crews, named.crews, named.carriers, strict=True):
        extra = after.records[len(before.records):]
        assert after.records[:len(before.records)] == before.records
        # the namings, then the rotation that seals the transit key to the carriers
        assert [r.kind for r in extra] == [RecordKind.CARRIER] * len(carriers) + [RecordKind.KEYS]
        assert set(after.state.current_epoch.carriers) == set(after.state.carriers)  # type: ignore[union-attr]
        assert set(after.state.carriers) == {bytes(named.key_of(n).verify_key)
                                             for n in carriers}
        assert after.kind is SpaceKind.CREW


def test_a_crew_member_cannot_be_named_its_carrier() -> None:
    with pytest.raises(ValueError, match="cannot be its carrier"):
        build_population(18, 3, 5, carriers=lambda crew_of: tuple(
            (0,) if c == crew_of[0] else () for c in range(3)))


def test_carrier_quotas_and_limit_are_the_nodes() -> None:
    from meshcrew.node.config import CarrierConfig
    from meshcrew.spaces.kinds import MAX_CARRIERS

    sim, node = Carriers(), CarrierConfig()
    assert (sim.space_quota_bytes, sim.total_quota_bytes) == (node.space_quota_bytes,
                                                              node.total_quota_bytes)
    replace(churn(), carriers=Carriers(per_crew=MAX_CARRIERS))
    with pytest.raises(ValueError, match="1 to 8 carriers"):
        replace(churn(), carriers=Carriers(per_crew=MAX_CARRIERS + 1))


def test_carriers_take_gossip_and_get_each_post_before_the_propagation() -> None:
    # Each rotation seals the epoch's transit key to the carriers, so they join the topics and
    # take each post by gossip, before the writer's node syncs it on to them two seconds later
    # (which is all they had when they took no gossip: a median wait of at least 2 s).
    scenario = replace(congregation(18, name="online-18", days=0.3),
                       behaviour=Behaviour(days=0.3, drain_days=0.2, online=Online.ALWAYS,
                                           crash_per_day=0.0),
                       net=NetParams(loss=0.0), carriers=Carriers(CarrierKind.ALWAYS_ON))
    summary, simulation = run_scenario(scenario)
    assert summary.undelivered == {}
    carriers = {n for crew in simulation.population.carriers for n in crew}
    assert len(carriers) == scenario.crews
    for node in carriers:
        assert simulation.gossip.states[node].seen
    waits = sorted(at - made.at for made in simulation.metrics.made.values()
                   for at, _ in made.carriers)
    assert len(waits) == summary.carriers["records_taken"] > 20
    delay = scenario.node.propagate_delay_s
    print(f"carriers took {len(waits)} records: median {waits[len(waits) // 2]:.3f} s, "
          f"p99 {waits[len(waits) * 99 // 100]:.3f} s, max {waits[-1]:.3f} s")
    assert waits[len(waits) * 99 // 100] < delay  # by gossip, not by the propagation
    assert waits[-1] < delay + 5.0


def test_the_propagation_delay_is_the_nodes() -> None:
    from meshcrew.node.config import NodeConfig

    assert NodeParams().propagate_delay_s == NodeConfig().propagate_delay_s


def test_a_carrier_relays_for_the_members_of_the_crews_it_carries() -> None:
    # The node's relay gives member limits to members of any space it serves, carried ones
    # too (Node._shares_a_space). Members all behind symmetric NATs, carriers the only public
    # nodes, relays that refuse strangers: each member holds a reservation on its crew's
    # carrier and crewmates reach one another through circuits of it. Were carried spaces not
    # to count, every carrier would refuse every reservation and nothing would be relayed.
    scenario = replace(congregation(18, name="carrier-relays-18", days=0.2),
                       behaviour=Behaviour(days=0.2, drain_days=0.2, online=Online.ALWAYS,
                                           crash_per_day=0.0),
                       net=NetParams(public=0.0, symmetric=1.0, loss=0.0,
                                     relay=RelayParams(strangers=False)),
                       carriers=Carriers(CarrierKind.ALWAYS_ON))
    summary, simulation = run_scenario(scenario)
    population = simulation.population
    for member in range(population.size):
        assert not simulation.net.reachable[member]
        assert simulation.net.relays_of[member] == \
            list(population.carriers[population.crew_of[member]])
    assert summary.net["relayed"] > 0
    assert summary.net["hole-punched"] == 0
    assert summary.undelivered.get("crew", 0) == 0
    assert summary.lost_records == summary.leaks == 0
