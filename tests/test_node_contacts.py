"""Members find each other through a third: the address exchange, with real nodes on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from hosts_on_loopback import wait_until
from meshcrew.node import open_node
from meshcrew.node.peerbook import PeerBook
from meshcrew.service import Member
from meshcrew.store import Replica
from node_world import LOOPBACK_NODE, make_home, wall_ms

pytestmark = pytest.mark.trio
HOUR_MS = 3_600_000


def crew_of_three(root: Path) -> list[tuple[object, object]]:
    """Ada founds a crew; Bo and Cy join it through files (no node runs)."""
    homes = [make_home(root, name) for name in ("Ada", "Bo", "Cy")]
    [(ada_home, ada_who), *joiners] = homes
    with Replica.open(ada_home) as ada_replica:
        ada = Member(ada_replica, ada_who, clock=wall_ms)
        space = ada.create_space("Crew")
        for home, who in joiners:
            with Replica.open(home) as replica:
                joiner = Member(replica, who, clock=wall_ms)
                code = ada.invite(space, expires_ms=wall_ms() + HOUR_MS)
                joiner.ingest(ada.export(space), sender="file")
                joiner.join(code)
                ada.ingest(joiner.export(space), sender="file")
        for home, who in joiners:  # each holds the whole crew: all three are members
            with Replica.open(home) as replica:
                Member(replica, who, clock=wall_ms).ingest(ada.export(space), sender="file")
    return homes  # type: ignore[return-value]


async def test_two_members_reaching_a_third_at_once_learn_where_each_other_listens(
        tmp_path: Path) -> None:
    """Bo and Cy know only Ada's address, and reach her at the same moment: each one's first
    exchange with Ada comes before Ada has heard (from identify) where the other listens. Ada
    tells them again once identify has settled, so they meet without her."""
    [(ada_home, ada_who), (bo_home, bo_who), (cy_home, cy_who)] = crew_of_three(tmp_path)
    with trio.fail_after(40):
        async with open_node(ada_home, ada_who, LOOPBACK_NODE) as ada:
            for home in (bo_home, cy_home):
                book = PeerBook.load(home)
                book.learn(ada.host.peer_id, ada.addrs(), source="invite")
                book.save()
            async with open_node(bo_home, bo_who, LOOPBACK_NODE) as bo, \
                    open_node(cy_home, cy_who, LOOPBACK_NODE) as cy:
                await wait_until(lambda: cy.host.peer_id in bo.host.connected_peers(),
                                 within=15)
                assert {bo.host.peer_id, cy.host.peer_id} <= set(ada.host.connected_peers())
