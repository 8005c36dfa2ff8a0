"""A member's node takes a catch-up and gossip without a view of the space (issue 15's soak).

Two in-process nodes on loopback: Bo's node catches up Ada's check-ins by sync, then takes her
next check-ins by gossip (judged, opened in transit, stored) and runs its retention pass. It
folds the membership only: its member service holds no view of the space, whose every post a
view would hold in memory (``scripts/bench-soak`` measures what that costs).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from hosts_on_loopback import wait_until
from meshcrew.node import open_node
from meshcrew.spaces.retention import Expiry
from node_world import LOOPBACK_NODE, crew_by_file, mint_checkins

pytestmark = pytest.mark.trio


async def test_a_node_takes_a_catch_up_and_gossip_without_a_view(tmp_path: Path) -> None:
    ada_home, ada_who, bo_home, bo_who, [space] = crew_by_file(
        tmp_path, then=lambda ada, bo, spaces: bo.ingest(ada.export(spaces[0]), sender="file"))
    # (Bo holds the crew's records, his keys among them: what reaches his node is posts only)
    mint_checkins(ada_home, ada_who, space, 300, sealed_once=True)
    with trio.fail_after(60):
        async with open_node(ada_home, ada_who, LOOPBACK_NODE) as ada, \
                open_node(bo_home, bo_who, LOOPBACK_NODE) as bo:
            await bo.connect(ada.addrs()[0])
            ada_head = ada.replica.frontier(space)[ada_who.public_key]
            await wait_until(lambda: bo.replica.frontier(space).get(ada_who.public_key)
                             == ada_head, within=30)
            await wait_until(lambda: ada.host.peer_id in bo.host.gossip.topic_peers(space),
                             within=15)
            before = bo.judge.accepted
            posted = [ada.member.checkin(space, text=f"live {n}", energy=3)
                      for n in range(3)]
            await wait_until(lambda: all(bo.replica.get(r) is not None for r in posted),
                             within=20)
            assert bo.judge.accepted - before >= 1  # by gossip, judged by the membership
            assert bo.member.expire_due(space) == Expiry(frozenset(), frozenset(), None)
            assert bo.member.views.views == {}  # no view of the space was made
            assert bo.membership.is_member(space, ada_who.public_key)
