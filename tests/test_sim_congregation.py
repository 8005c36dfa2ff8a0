"""The 200-member congregation scenario, reduced to 0.4 days of posting (the full week is
``scripts/simulate congregation-200``; its figures are in docs/performance.md).

The bound, and why (docs/performance.md, "Scale"):

* nothing is lost, every replica ends equal to the truth, and every post passes the space rules;
* once a member's node and a node holding a record are both up, the member has it within two
  sync periods for 99% of deliveries (gossip takes a second; what gossip misses, the next
  periodic sync or the sync that opens every new connection brings);
* and always within 45 minutes: the slow cases are members who wake when few others are up and
  must find a peer first; a node re-dials its crewmates and favourite peers at least every
  30 minutes (the back-off cap), which bounds the wait for a connection, plus a few sync periods
  for the records to cross one or two hops;
* every member holds every record within a day of the last post (members are up 10 hours a day
  and crews overlap for several hours).
"""

from __future__ import annotations

import pytest

from meshcrew.sim import SCENARIOS, reduced, run_scenario
from meshcrew.sim.params import DAY, MINUTE


@pytest.mark.slow
@pytest.mark.xdist_group("sim")  # in one process: not queued behind the node processes
def test_congregation_200_reduced_converges_within_the_bound() -> None:
    base = SCENARIOS["congregation-200"]
    summary, _ = run_scenario(reduced(base, days=0.4, drain_days=1.0))
    assert summary.members == 200
    assert summary.crews == 30
    assert summary.converged, summary.table()
    assert summary.lost_records == 0
    assert summary.undelivered == {}
    assert summary.nodes_behind == 0
    assert summary.replica_mismatches == 0
    assert summary.refused_posts == 0
    assert summary.refused_locally == 0
    assert summary.leaks == 0
    assert summary.delivered == summary.deliveries > 30_000
    period = base.node.sync_period_s * base.node.sync_jitter[1]
    assert summary.ready_p99_s <= 2 * period
    assert summary.ready_max_s <= 45 * MINUTE
    assert summary.drain_s <= DAY
