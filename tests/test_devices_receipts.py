"""Receipts with a member's second laptop: a post it signed is looked up in its own chain, and a
member holds a record when the member key or any of their current devices does (the app's
holdings, on either laptop, and the node's ``seen_by``; real replicas, records moved by
export and ingest, frontiers noted as sync sessions note them)."""

from __future__ import annotations

from types import MappingProxyType

from meshcrew.node import Node, NodeConfig
from meshcrew.tui.health import member_holdings, receipt
from meshcrew.tui.service_backend import LocalBackend
from test_service_support import Town, crew_of, send, sync

ANA, LAPTOP, BO, CY = (bytes([n]) * 32 for n in (1, 2, 3, 4))
MEMBERS = frozenset({ANA, BO, CY})


def test_a_device_post_is_counted_by_its_own_chain() -> None:
    # Bo holds the laptop's chain up to seq 3 and Ana's key chain up to seq 9; Cy holds
    # neither far enough.
    holdings = MappingProxyType({BO: {LAPTOP: 3, ANA: 9}, CY: {LAPTOP: 1, ANA: 9}})
    seen = receipt(ANA, 3, MEMBERS, holdings, LAPTOP)
    assert seen.holders == {ANA, BO}
    assert seen.text == "seen by 2 of 3"
    # Read in Ana's key chain (as before devices), seq 3 would look held by everyone.
    assert receipt(ANA, 3, MEMBERS, holdings).holders == {ANA, BO, CY}


def test_a_members_second_laptop_holding_a_post_counts_for_them() -> None:
    bo_laptop, revoked = bytes([5]) * 32, bytes([6]) * 32
    frontiers = {bo_laptop: {ANA: 4}, BO: {ANA: 1}, revoked: {ANA: 9}, CY: {ANA: 2}}
    holdings = member_holdings(frontiers, {bo_laptop: BO})  # a revoked device is nobody's
    assert holdings[BO] == {ANA: 4}, "the furthest of Bo's devices"
    seen = receipt(ANA, 4, MEMBERS, holdings)
    assert seen.holders == {ANA, BO}
    assert receipt(ANA, 4, MEMBERS, frontiers).holders == {ANA}  # per device, as before


def test_the_app_and_the_node_count_a_member_by_any_of_their_devices(town: Town) -> None:
    space, (ana, bo, cy) = crew_of(town, "Ana", "Bo", "Cy")
    laptop = town.person("Bo's laptop")
    send(bo, laptop, space)
    laptop.adopt_certificate(bo.me, bo.certify_device(laptop.me))
    send(laptop, bo, space)
    sync(space, ana, bo, cy, laptop)
    post = ana.checkin(space, text="who has it?", energy=3)
    sync(space, ana, laptop)  # Bo's laptop holds it; Bo's first laptop and Cy do not
    record = ana.replica.get(post)
    assert record is not None
    members = frozenset({ana.me, bo.me, cy.me})
    peers = {laptop.me: laptop.replica.frontier(space), bo.me: bo.replica.frontier(space),
             cy.me: cy.replica.frontier(space)}

    app = LocalBackend(ana.replica, ana.identity, clock=ana.now)
    assert receipt(ana.me, record.seq, members,
                   app.holdings_with(space, peers)).holders == {ana.me, bo.me}
    on_laptop = LocalBackend(laptop.replica, laptop.identity, clock=laptop.now)
    assert laptop.me not in on_laptop.holdings(space)  # its own replica is Bo's
    assert on_laptop.holdings(space)[bo.me][ana.me] == record.seq

    node = Node(ana.replica.home, ana.identity, NodeConfig(), ana.replica, ana.now)
    for key, frontier in peers.items():  # what sync sessions report
        node.receipts.note_frontier(space, key, frontier)
    assert set(node.seen_by(post)) == {ana.me, bo.me}
    laptop_post = laptop.checkin(space, text="from Bo's sofa", energy=4)
    sync(space, ana, laptop)
    assert set(node.seen_by(laptop_post)) == {ana.me, bo.me}  # Bo's laptop is Bo
