"""Retention between in-process nodes on loopback: a node deletes what expired while it was
off as it starts, and a joiner after an expiry catches up over sync past the husks, without
ever being sent the posts."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from hosts_on_loopback import wait_until
from meshcrew.node import open_node
from meshcrew.service import Member
from meshcrew.spaces import Period, Rhythm
from meshcrew.spaces.bodies import SealedBody
from meshcrew.store import Replica
from node_world import LOOPBACK_NODE, make_home, wall_ms

pytestmark = pytest.mark.trio
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MARKER = "MARKER-retention-over-sync"


def home_bytes(root: Path) -> bytes:
    """Every file of a home folder, end to end."""
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


async def test_a_joiner_after_an_expiry_catches_up_over_sync_without_the_posts(
        tmp_path: Path) -> None:
    home, ada_id = make_home(tmp_path, "Ada")
    three_days_ago = wall_ms() - 3 * DAY_MS
    with Replica.open(home) as replica:  # Ada's crew, three days ago: check-ins kept one day
        member = Member(replica, ada_id, clock=lambda: three_days_ago)
        space = member.create_space("Crew", rhythm=Rhythm(Period.DAILY), keep_checkins=1)
        marker = member.checkin(space, text=MARKER, energy=3)
        # Enough expired posts that the joiner checks them in its worker processes.
        for n in range(70):
            member.checkin(space, text=f"old news {n}", energy=1 + n % 5)
        body = member.view(space).state.bodies[marker]
        assert isinstance(body, SealedBody)
        blob = body.blob
    assert blob in home_bytes(home.path)
    with trio.fail_after(60):
        async with (open_node(home, ada_id, LOOPBACK_NODE) as ada,
                    open_node(*make_home(tmp_path, "Cy"), LOOPBACK_NODE) as cy):
            # Ada's node deletes them as it starts (its profile re-posted first: her head).
            await wait_until(lambda: bool(ada.replica.get(marker).expired))  # type: ignore[union-attr]
            assert blob not in home_bytes(home.path)
            code = ada.member.invite(space, expires_ms=wall_ms() + HOUR_MS, addrs=ada.addrs())
            result = await cy.join(code)
            assert result.has_keys
            await wait_until(
                lambda: cy.replica.frontier(space) == ada.replica.frontier(space), within=30)
            assert cy.replica.pending_count(space) == 0
            held = cy.replica.get(marker)
            assert held is not None
            assert held.expired
            assert cy.replica.expired_count(space) == 71
            assert cy.member.view(space).is_member
            assert cy.replica.rejects(space_id=space) == []
        cy_home = cy.replica.home.path
    for folder in (home.path, cy_home):
        assert blob not in home_bytes(folder)
        assert MARKER.encode() not in home_bytes(folder)
