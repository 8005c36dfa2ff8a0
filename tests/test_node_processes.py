"""Real ``meshcrew node`` processes on 127.0.0.1, driven through the CLI as a member would.

Each test starts its nodes in fresh home folders, waits on conditions with deadlines, and stops
every process by pid when it ends (see ``node_processes.fleet``).
"""

from __future__ import annotations

import pytest

from meshcrew import identity
from node_processes import Fleet, crew_of, fleet, wait_for
from node_world import found_crew, mint_checkins

__all__ = ["fleet"]  # the fixture


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_three_nodes_converge_through_the_cli(fleet: Fleet) -> None:
    ada, bo, cy = fleet.make("Ada", "Bo", "Cy")
    ada.start()
    bo.start()
    # Bo joins through his running node; Cy joins with no node running (the command starts one
    # for the join), then starts hers.
    space = crew_of(ada, bo, cy)
    cy.start()
    for node in (ada, bo, cy):
        node.run("checkin", space, "--text", f"{node.name} arriving", "--energy", "3")
    expected = {"Ada arriving", "Bo arriving", "Cy arriving"}
    wait_for(lambda: all(expected <= n.texts(space) for n in (ada, bo, cy)), within=30,
             what="every check-in on every node")
    wait_for(lambda: ada.log(space) == bo.log(space) == cy.log(space), within=20,
             what="identical logs")
    status = ada.cli("status")
    assert status["peer_id"] == ada.status().peer_id
    assert all(a.endswith(f"/p2p/{status['peer_id']}") for a in status["addrs"])
    assert status["addrs"][0].startswith("/ip4/127.0.0.1/tcp/")
    # every node is connected to both others (addresses travel between members)
    wait_for(lambda: all(len(n.status().peers) == 2 for n in (ada, bo, cy)), within=20,
             what="a full mesh")
    for node in (ada, bo, cy):
        assert node.stop() < 2.0


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_late_joiner_receives_a_thousand_check_ins(fleet: Fleet) -> None:
    ada, bo, dee = fleet.make("Ada", "Bo", "Dee")
    # The history is made in-process for speed (real signed, sealed check-ins), before Ada's
    # node starts; everything after goes through the nodes.
    founder = identity.load(ada.home.key_file)
    crew = found_crew(ada.home, founder)
    minted = mint_checkins(ada.home, founder, crew.space, 1000)
    space = crew.space.hex()
    ada.start()
    bo.start()
    bo.run("join", str(ada.cli("invite", space)["code"]))
    bo.run("checkin", space, "--text", "Bo was here first")
    dee.start()
    joined = dee.run("join", str(ada.cli("invite", space)["code"]))
    assert "1,00" in joined.stderr  # the progress display counted the history in
    texts = dee.texts(space)
    assert {f"check-in {n}" for n in range(1000)} <= texts
    wait_for(lambda: "Bo was here first" in dee.texts(space), within=20, what="Bo's check-in")
    assert {bytes.fromhex(r["id"]) for r in dee.log(space)} >= set(minted)
    wait_for(lambda: dee.log(space) == ada.log(space) == bo.log(space), within=20,
             what="identical logs")


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_killed_node_restarts_and_converges_losing_nothing(fleet: Fleet) -> None:
    ada, bo, cy = fleet.make("Ada", "Bo", "Cy")
    for node in (ada, bo, cy):
        node.start()
    space = crew_of(ada, bo, cy)
    wait_for(lambda: all(len(n.status().peers) == 2 for n in (ada, bo, cy)), within=20,
             what="a full mesh")
    acknowledged = set()
    cy.run("checkin", space, "--text", "Cy, just before the crash")
    acknowledged.add("Cy, just before the crash")
    cy.kill()  # SIGKILL: no goodbye, no saving
    for n in range(3):
        for node in (ada, bo):
            text = f"{node.name} while Cy was down {n}"
            node.run("checkin", space, "--text", text)
            acknowledged.add(text)
    wait_for(lambda: acknowledged - {"Cy, just before the crash"} <= ada.texts(space)
             and acknowledged - {"Cy, just before the crash"} <= bo.texts(space), within=20,
             what="Ada's and Bo's check-ins on both")
    cy.start()  # a new port: Cy redials Ada and Bo from its peer book
    for node in (ada, bo, cy):
        wait_for(lambda node=node: acknowledged <= node.texts(space), within=30,  # type: ignore[misc]
                 what=f"every acknowledged check-in on {node.name}")
    wait_for(lambda: ada.log(space) == bo.log(space) == cy.log(space), within=20,
             what="identical logs")


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_two_halves_post_apart_then_reconnect_and_converge(fleet: Fleet) -> None:
    ada, bo, cy, dee = fleet.make("Ada", "Bo", "Cy", "Dee")
    for node in (ada, bo, cy, dee):
        node.start()
    space = crew_of(ada, bo, cy, dee)
    wait_for(lambda: all(len(n.status().peers) == 3 for n in (ada, bo, cy, dee)), within=30,
             what="a full mesh")
    for node in (ada, bo, cy, dee):
        node.stop()
    # The partition: every node comes back on a new port, so the addresses each remembers of
    # the others are dead; each half is told only its own other member's address.
    ada.start()
    bo.start("--bootstrap", ada.status().addrs[0])
    cy.start()
    dee.start("--bootstrap", cy.status().addrs[0])
    wait_for(lambda: bo.status().peers == (ada.status().peer_id,), within=20, what="Ada-Bo")
    wait_for(lambda: dee.status().peers == (cy.status().peer_id,), within=20, what="Cy-Dee")
    ada.run("checkin", space, "--text", "Ada in the west")
    cy.run("checkin", space, "--text", "Cy in the east")
    wait_for(lambda: "Ada in the west" in bo.texts(space) and "Cy in the east" in
             dee.texts(space), within=20, what="each half to sync")
    assert "Cy in the east" not in ada.texts(space)
    assert "Ada in the west" not in dee.texts(space)
    bo.run("connect", cy.status().addrs[0])  # the halves meet again
    both = {"Ada in the west", "Cy in the east"}
    for node in (ada, bo, cy, dee):
        wait_for(lambda node=node: both <= node.texts(space), within=30,  # type: ignore[misc]
                 what=f"both halves' check-ins on {node.name}")
    wait_for(lambda: ada.log(space) == bo.log(space) == cy.log(space) == dee.log(space),
             within=20, what="identical logs")
