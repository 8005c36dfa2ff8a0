"""What a run measures: who holds which record when, and for how long members were online.

A *delivery* is one (record, member of its space other than the author) pair; it is done when
the member's replica accepts the record. For each delivery the run keeps three delays:

* **simulated**: from the moment the author's replica committed the record until the member's
  replica accepted it;
* **awake**: the part of that time the member's node was up (a member whose laptop is closed
  cannot receive anything);
* **ready**: the time the member's node was up between the first moment it and a node already
  holding the record were up together and the moment it held the record. Crew records live only
  on crewmates' nodes, so a post written just before its author's laptop closes waits for the
  author; that wait is the design's choice (only members hold a space's records). The ready
  delay is what the network, gossip and sync take once delivery is possible (NAT permitting:
  two NATed nodes need a public node up to meet). A carrier that holds the record counts as a
  holder here.

A carrier (a node a crew names to hold its sealed records) is not a member: the records it
takes are counted apart (:attr:`Metrics.carried`), never as deliveries.
"""

from __future__ import annotations

import bisect
import math
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field

from meshcrew.records import Record


class OnlineLog:
    """When one node was up: closed intervals and the online time before each."""

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.ends: list[float] = []
        self._before: list[float] = []

    def up(self, when: float) -> None:
        """The node came up."""
        self._before.append(self._before[-1] + self.ends[-1] - self.starts[-1]
                            if self.starts else 0.0)
        self.starts.append(when)

    def down(self, when: float) -> None:
        """The node went down."""
        self.ends.append(when)

    def spans_from(self, when: float) -> Iterator[tuple[float, float]]:
        """The node's online spans that end after ``when``, clipped to start at ``when``."""
        i = max(bisect.bisect_right(self.starts, when) - 1, 0)
        for j in range(i, len(self.starts)):
            end = self.ends[j] if j < len(self.ends) else math.inf
            if end > when:
                yield max(self.starts[j], when), end

    def online_before(self, when: float) -> float:
        """Seconds the node was up between the start of the run and ``when``."""
        i = bisect.bisect_right(self.starts, when) - 1
        if i < 0:
            return 0.0
        end = self.ends[i] if i < len(self.ends) else math.inf
        return self._before[i] + min(when, end) - self.starts[i]


def first_together(a: OnlineLog, b: OnlineLog, since: float) -> float:
    """The first time from ``since`` on when both nodes are up (infinity if never)."""
    spans_a, spans_b = a.spans_from(since), b.spans_from(since)
    span_a, span_b = next(spans_a, None), next(spans_b, None)
    while span_a is not None and span_b is not None:
        start, end = max(span_a[0], span_b[0]), min(span_a[1], span_b[1])
        if start < end:
            return start
        if span_a[1] <= span_b[1]:
            span_a = next(spans_a, None)
        else:
            span_b = next(spans_b, None)
    return math.inf


@dataclass(slots=True)
class _Made:
    space: bytes
    author: int
    at: float
    remaining: int
    holders: array[int] = field(default_factory=lambda: array("i"))
    held_at: array[float] = field(default_factory=lambda: array("d"))
    carriers: list[tuple[float, int]] = field(default_factory=list)
    """(when, carrier) for each carrier that took the record."""


@dataclass(slots=True)
class CurvePoint:
    """The state of delivery at one sampled time."""

    at: float
    expected: int
    """Deliveries of the records made so far."""
    done: int


@dataclass(slots=True)
class Metrics:
    """Deliveries, delays and the convergence curve of one run."""

    members: dict[bytes, frozenset[int]]
    logs: list[OnlineLog]
    carriers: dict[bytes, frozenset[int]] = field(default_factory=dict)
    """Per space, the nodes it names as carriers."""
    made: dict[bytes, _Made] = field(default_factory=dict)
    expected: int = 0
    done: int = 0
    leaks: int = 0
    """Records accepted by a node that is neither a member nor a carrier of their space (must
    stay 0)."""
    carried: int = 0
    """Records taken by a carrier of their space (not deliveries)."""
    delays: array[float] = field(default_factory=lambda: array("d"))
    awake: array[float] = field(default_factory=lambda: array("d"))
    complete_at: dict[bytes, float] = field(default_factory=dict)
    curve: list[CurvePoint] = field(default_factory=list)
    last_made: float = 0.0

    def on_made(self, record: Record, author: int, now: float) -> None:
        """The author's replica committed a new record."""
        others = len(self.members[record.space_id]) - 1
        self.made[record.id] = _Made(record.space_id, author, now, others)
        self.expected += others
        self.last_made = now
        if others == 0:
            self.complete_at[record.id] = now

    def on_held(self, node: int, record_id: bytes, now: float) -> None:
        """A node's replica accepted a record it did not write."""
        made = self.made.get(record_id)
        if made is None:
            return  # part of the setup, held from the start
        if node not in self.members[made.space]:
            if node in self.carriers.get(made.space, ()):
                self.carried += 1
                made.carriers.append((now, node))
            else:
                self.leaks += 1
            return
        self.done += 1
        made.remaining -= 1
        made.holders.append(node)
        made.held_at.append(now)
        self.delays.append(now - made.at)
        log = self.logs[node]
        self.awake.append(log.online_before(now) - log.online_before(made.at))
        if made.remaining == 0:
            self.complete_at[record_id] = now

    def ready_delays(self) -> array[float]:
        """Per delivery, the ready delay (see the module's docstring)."""
        delays = array("d")
        logs = self.logs
        for made in self.made.values():
            holders = [(made.at, made.author), *zip(made.held_at, made.holders, strict=True)]
            if made.carriers:
                holders = sorted([*holders, *made.carriers])
            for held, member in zip(made.held_at, made.holders, strict=True):
                # Nothing is ready before the member is first up after the record was made.
                floor = next(logs[member].spans_from(made.at), (math.inf, math.inf))[0]
                ready = math.inf
                for since, holder in holders:
                    if since >= held or since >= ready or ready <= floor:
                        break  # no later holder can make it ready earlier
                    ready = min(ready, first_together(logs[member], logs[holder], since))
                log = logs[member]
                delays.append(max(log.online_before(held) - log.online_before(ready), 0.0))
        return delays

    def full_bounds(self) -> array[float]:
        """Per record, the least time until every member held it that any network could give:
        until the last member of its space (the author aside) was first up after it was made.
        Only members hold their spaces' keys, so a carrier cannot beat this: it can only bring
        the record to each member the first time they are up."""
        bounds = array("d")
        for made in self.made.values():
            bound = made.at
            for member in self.members[made.space]:
                if member != made.author:
                    up = next(self.logs[member].spans_from(made.at), (math.inf, math.inf))[0]
                    bound = max(bound, up)
            bounds.append(bound - made.at)
        return bounds

    @property
    def missing(self) -> int:
        """Deliveries not done yet."""
        return self.expected - self.done

    def incomplete(self) -> list[bytes]:
        """Records some member of their space does not hold."""
        return [rid for rid, made in self.made.items() if made.remaining > 0]

    def sample(self, now: float) -> None:
        """Add a point to the convergence curve."""
        self.curve.append(CurvePoint(now, self.expected, self.done))


def quantile(values: array[float] | list[float], q: float) -> float:
    """The ``q`` quantile (nearest rank) of ``values``; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]
