"""When each member's node is up, when it crashes, and when its member writes.

A plan is drawn once per member from the scenario's seed before the run starts. What members
write in answer to others (reactions, replies) is decided during the run, when they receive it.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from enum import StrEnum

from meshcrew.sim.params import DAY, HOUR, MINUTE, Behaviour, Online


class Intent(StrEnum):
    """What a member writes (each becomes a sealed post of the same kind)."""

    PROFILE = "profile"
    CHECKIN = "checkin"
    REACTION = "reaction"
    ASK = "ask"
    OFFER = "offer"
    GATHERING = "gathering"
    REPLY = "reply"


CREW_INTENTS = frozenset({Intent.CHECKIN, Intent.REACTION})
"""Intents posted to the member's crew; the others go to the congregation."""


@dataclass(slots=True)
class NodePlan:
    """One member's schedule.

    Attributes:
        online: sorted, disjoint ``[start, end)`` intervals when the node is up.
        crashes: ``(at, restart_at)`` pairs inside online intervals.
        posts: ``(at, intent)`` of what the member writes of their own accord.
    """

    online: list[tuple[float, float]] = field(default_factory=list)
    crashes: list[tuple[float, float]] = field(default_factory=list)
    posts: list[tuple[float, Intent]] = field(default_factory=list)


def _day_windows(behaviour: Behaviour, days: int, rng: random.Random) -> list[tuple[float, float]]:
    if behaviour.online is Online.ALWAYS:
        return [(d * DAY, (d + 1) * DAY) for d in range(days)]
    usual = rng.uniform(*behaviour.start_hour)
    windows = []
    for d in range(days):
        start = d * DAY + (usual + rng.uniform(-1, 1) * behaviour.start_jitter_h) * HOUR
        windows.append((max(start, 0.0), start + behaviour.hours_per_day * HOUR))
    return windows


def _merge(windows: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for start, end in sorted(windows):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def plan_node(behaviour: Behaviour, rng: random.Random) -> NodePlan:
    """Draw one member's plan: online windows, crashes and posts for the whole run."""
    total_days = math.ceil(behaviour.days + behaviour.drain_days) + 1
    windows = _day_windows(behaviour, total_days, rng)
    plan = NodePlan(online=_merge(windows))
    post_until = behaviour.days * DAY
    for start, end in windows:
        if rng.random() < behaviour.crash_per_day:
            at = rng.uniform(start, end)
            plan.crashes.append((at, min(at + rng.uniform(*behaviour.restart_s), end)))
        if start >= post_until:
            continue
        end = min(end, post_until)
        plan.posts += [(rng.uniform(start, end), Intent.CHECKIN)
                       for _ in range(behaviour.checkins_per_day)]
        rate = behaviour.congregation_posts_per_day
        count = int(rate) + (rng.random() < rate - int(rate))
        for _ in range(count):
            intent = rng.choices((Intent.ASK, Intent.OFFER, Intent.GATHERING),
                                 (0.45, 0.45, 0.1))[0]
            plan.posts.append((rng.uniform(start, end), intent))
    first = plan.online[0][0]
    if first < post_until:
        plan.posts.append((min(first + rng.uniform(0, 30 * MINUTE), post_until), Intent.PROFILE))
    plan.posts.sort()
    plan.crashes.sort()
    return plan


def plan_nodes(behaviour: Behaviour, members: int, seed: int) -> list[NodePlan]:
    """A plan per member, each from its own random stream (so adding a member changes no other)."""
    return [plan_node(behaviour, random.Random(f"meshcrew-sim plan {seed} {m}"))
            for m in range(members)]
