"""A carrier's refusals, with in-process nodes on loopback: a space that did not name it, a
space that dropped it, a removed member's records, records of spaces it does not carry."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import trio

from hosts_on_loopback import wait_until
from meshcrew.node import Node
from meshcrew.node.config import CarrierConfig
from meshcrew.reasons import Reason
from meshcrew.store.carrying import space_bytes
from node_world import LOOPBACK_NODE, open_nodes, person, wall_ms

pytestmark = pytest.mark.trio
HOUR_MS = 3_600_000
CARRIER = replace(LOOPBACK_NODE, carrier=CarrierConfig(enabled=True, drop_grace_ms=0))


def reasons(node: Node) -> list[Reason]:
    return [r.reason for r in node.replica.rejects(limit=500)]


async def test_a_space_that_does_not_name_the_carrier_is_deleted_and_logged(
        tmp_path: Path) -> None:
    with trio.fail_after(40):
        async with open_nodes(tmp_path / "c", "Pi", config=CARRIER) as [pi], \
                open_nodes(tmp_path / "m", "Ana") as [ana]:
            space = ana.member.create_space("Crew")
            ana.member.checkin(space, text="not for you", energy=3)
            await ana.connect(pi.addrs()[0])
            refused = await ana._bring(pi.host.peer_id, space)  # a member pushing anyway
            assert refused is None  # taken in, verified, folded...
            # ...and deleted: it does not name Pi (once the carrier's side has finished)
            await wait_until(lambda: Reason.NOT_CARRIED in reasons(pi), within=10)
            assert space not in pi.replica.spaces()
            # Gossip or sync of that space later is refused before the replica too:
            raw = ana.replica.space_records(space)[-1].raw
            assert pi.take([raw], sender=ana.host.peer_id, propagate=False) == []
            assert space not in pi.replica.spaces()


async def test_a_dropped_space_stops_syncing_and_is_deleted_after_the_grace(
        tmp_path: Path) -> None:
    with trio.fail_after(40):
        async with open_nodes(tmp_path / "c", "Pi", config=CARRIER) as [pi], \
                open_nodes(tmp_path / "m", "Ana") as [ana]:
            space = ana.member.create_space("Crew")
            ana.member.add_carrier(space, pi.identity.public_key)
            await ana.connect(pi.addrs()[0])
            await wait_until(lambda: space in pi.serving.carried(), within=20)
            assert space_bytes(pi.replica, space) > 0
            # The carrier's relay gives the members of what it carries a member's limits.
            assert pi.host.is_member(ana.host.peer_id)
            assert not pi.host.is_member(person("Eve").peer_id)  # a stranger is not
            ana.member.drop_carrier(space, pi.identity.public_key)
            await wait_until(lambda: space not in pi.serving.carried(), within=20)
            # Ana still syncs with Pi for a grace period, so that Pi learns of the drop (it
            # did: it no longer carries the space), and no longer names it a carrier.
            assert pi.identity.public_key not in ana.serving.carriers(space)
            assert ana.serving.shares(space, pi.identity.public_key)
            assert pi.carrying is not None
            assert space in pi.carrying.forget_now()  # grace 0: deleted at the next pass
            assert space not in pi.replica.spaces()
            # A record of the dropped space is refused from now on.
            checkin = ana.member.checkin(space, text="after the drop", energy=2)
            raw = ana.replica.get(checkin)
            assert raw is not None
            assert pi.take([raw.raw], sender=ana.host.peer_id, propagate=False) == []
            assert Reason.NOT_CARRIED in reasons(pi)


async def test_a_removed_members_later_records_do_not_count_on_the_carrier(
        tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with open_nodes(tmp_path / "c", "Pi", config=CARRIER) as [pi], \
                open_nodes(tmp_path / "m", "Ana", "Bo", "Cy") as [ana, bo, cy]:
            space = ana.member.create_space("Crew")
            for joiner in (bo, cy):
                code = ana.member.invite(space, expires_ms=wall_ms() + HOUR_MS,
                                         addrs=ana.addrs())
                await joiner.join(code)
            ana.member.add_carrier(space, pi.identity.public_key)
            await ana.connect(pi.addrs()[0])
            await wait_until(lambda: space in pi.serving.carried(), within=20)
            proposal = ana.member.propose_removal(space, cy.identity.public_key)
            await wait_until(lambda: bo.replica.get(proposal) is not None, within=20)
            bo.member.consent(space, proposal)
            await wait_until(lambda: not pi.membership.is_member(space, cy.identity.public_key),
                             within=30)
            # The carrier no longer offers the space to Cy: a session shares nothing.
            assert not pi.serving.shares(space, cy.identity.public_key)
            assert pi.serving.shares(space, bo.identity.public_key)
