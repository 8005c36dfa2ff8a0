"""The named scenarios of issue 6, and smaller ones for the tests and the scale table.

Every member is in the congregation and one crew (crews of 6-7: 30 crews for 200 members,
scaled in proportion for other sizes). Unless a scenario says otherwise, members are on laptops:
online about 10 hours a day, starting between 06:00 and 12:00 UTC (±1 h from day to day); 5% of
online days see a crash; each member checks in once a day in their crew; half of a check-in's
crewmates react; each member posts an ask, offer or gathering to the congregation every three
days or so, and each gets about two replies; 1% of messages are lost.
"""

from __future__ import annotations

from dataclasses import replace

from meshcrew.sim.params import (
    Behaviour,
    CarrierKind,
    Carriers,
    NetParams,
    Partition,
    Scenario,
)


def congregation(members: int, *, name: str | None = None, description: str = "",
                 seed: int = 1, days: float = 7.0) -> Scenario:
    """The base scenario for a congregation of ``members`` (crews scaled as 30 per 200)."""
    crews = max(1, round(members * 30 / 200))
    return Scenario(name or f"congregation-{members}",
                    description or f"{members} members, {crews} crews, {days:g} days of "
                                   "check-ins on laptops",
                    members=members, crews=crews, seed=seed,
                    behaviour=Behaviour(days=days))


BASE = congregation(200)
CHURN = replace(BASE, name="churn-2h",
                description="as congregation-200; each node online 2 hours a day",
                behaviour=Behaviour(hours_per_day=2.0, start_hour=(14.0, 20.0), drain_days=7.0))

SCENARIOS: dict[str, Scenario] = {
    s.name: s for s in (
        BASE,
        congregation(500),
        replace(BASE, name="loss-20", description="as congregation-200 with 20% message loss",
                net=NetParams(loss=0.2)),
        replace(BASE, name="partition-day",
                description="as congregation-200; half of the nodes cut off for day 3",
                partition=Partition(start_day=2.0, days=1.0)),
        CHURN,
        replace(CHURN, name="churn-2h-carriers",
                description="as churn-2h; each crew names one always-on public carrier",
                carriers=Carriers(CarrierKind.ALWAYS_ON, per_crew=1)),
        replace(CHURN, name="churn-2h-member-carriers",
                description="as churn-2h; each crew names 3 public congregation members as "
                            "carriers",
                carriers=Carriers(CarrierKind.PUBLIC_MEMBERS, per_crew=3)),
        congregation(50),
    )
}
"""Named scenarios: ``scripts/simulate NAME``."""

SCALE_TABLE = ("congregation-50", "congregation-200", "congregation-500")
"""The scenarios of the scale table in docs/performance.md."""


def reduced(scenario: Scenario, *, days: float = 1.0, drain_days: float = 1.0) -> Scenario:
    """The same congregation over fewer days (the test suite's version)."""
    return replace(scenario, name=f"{scenario.name}-reduced",
                   behaviour=replace(scenario.behaviour, days=days, drain_days=drain_days))
