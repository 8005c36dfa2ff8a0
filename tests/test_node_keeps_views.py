"""``meshcrew node`` alone keeps the views of big spaces when it stops (issue 15).

A node that ran for a while has folded its spaces and followed what arrived; as it stops it
writes each big space's view snapshot, so that the next start (the app's, or the node's own
prepare) lists the space at once instead of folding it.
"""

from __future__ import annotations

import time

import pytest

from meshcrew import identity
from meshcrew.service import MemberReads
from meshcrew.service.snapshots import SnapshotView, ViewSnapshots
from meshcrew.store import Replica
from node_processes import Fleet, crew_in_process, fleet, wait_for
from node_world import mint_checkins

__all__ = ["fleet"]

RECORDS = 6_000
"""Above the 5,000 from which a space's view is worth a snapshot, below the 20,000 from which
the node prepares (and so writes a snapshot) as it starts: only the stop can have written it."""


def _now() -> int:
    return time.time_ns() // 1_000_000


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_node_that_stops_keeps_its_views_for_the_next_start(fleet: Fleet) -> None:
    (ada,) = fleet.make("Ada")
    space = crew_in_process(ada)
    space_id = bytes.fromhex(space)
    who = identity.load(ada.home.key_file)
    mint_checkins(ada.home, who, space_id, RECORDS, sealed_once=True)
    with Replica.open(ada.home, read_only=True) as replica:
        held = replica.record_count()
    path = ViewSnapshots(ada.home, who).path(space_id)
    ada.start()
    ada.run("checkin", space, "--text", "written while the node ran")  # the view follows it
    wait_for(lambda: ada.status().records == held + 1, what="the check-in in the replica")
    assert not path.exists(), "nothing wrote a snapshot before the stop"
    ada.stop(within=30)
    assert ada.process is not None
    assert ada.process.returncode == 0
    assert path.exists(), (ada.home.path / "node.log").read_text()

    with Replica.open(ada.home, read_only=True) as replica:
        now = _now()
        reader = MemberReads(replica, who, clock=lambda: now)
        reader.prepare(complete=False)  # as the app starts
        view = reader.view(space_id)
        assert isinstance(view, SnapshotView), "the next start folded instead"
        assert reader.log(space_id)[-1].fields["text"] == "written while the node ran"
        folded = MemberReads(replica, who, clock=lambda: now, snapshots=False)
        assert reader.log(space_id) == folded.log(space_id)
        assert reader.spaces() == folded.spaces()
        assert reader.members(space_id) == folded.members(space_id)
