"""Carriers between real node processes on loopback (issue 12): a post crosses while its author
and its reader are never online together, through a carrier that cannot read it."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshcrew.reasons import Reason
from meshcrew.store import Replica
from node_processes import Fleet, NodeProcess, fleet, wait_for

pytestmark = pytest.mark.slow
__all__ = ["fleet"]

SECRET = "the-carrier-must-never-read-this-7Q2"


def holds(node: NodeProcess, record_id: str) -> bool:
    with Replica.open(node.home, read_only=True) as replica:
        return replica.get(bytes.fromhex(record_id)) is not None


def addr_of(node: NodeProcess) -> str:
    return next(a for a in node.status().addrs if "/ip4/127.0.0.1/" in a)


def everything_under(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file())


def test_a_checkin_reaches_a_sleeping_crewmate_through_a_carrier(fleet: Fleet) -> None:
    ana, bo, pi = fleet.make("Ana", "Bo", "Pi")
    pi.start("--carrier")
    ana.start()
    space = str(ana.cli("crew", "create", "Crew")["id"])
    bo.run("join", str(ana.cli("invite", space)["code"]))  # Bo's node is not running
    code = str(pi.cli("carrier", "offer")["code"])
    added = ana.cli("carrier", "add", space, code)
    assert added["reached"]
    listed = ana.cli("carriers", space)["carriers"]
    assert [c["peer_id"] for c in listed] == [pi.status().peer_id]
    assert listed[0]["added_by_name"] == "Ana"

    checkin = str(ana.cli("checkin", space, "--text", SECRET, "--energy", "4")["id"])
    wait_for(lambda: holds(pi, checkin), within=20, what="the carrier to hold Ana's check-in")
    assert pi.status().spaces == ()  # it carries the space without being a member
    ana.stop()

    bo.start("--bootstrap", addr_of(pi))  # only the carrier is up
    wait_for(lambda: SECRET in bo.texts(space), within=30,
             what="Ana's check-in to reach Bo through the carrier")
    # The carrier holds the sealed record but nothing it could read.
    pi.stop()
    assert SECRET.encode() not in everything_under(pi.home.path)
    assert b"Crew" not in everything_under(pi.home.path)


def test_a_carrier_refuses_a_space_that_did_not_name_it(fleet: Fleet) -> None:
    ana, pi = fleet.make("Ana", "Pi")
    pi.start("--carrier")
    ana.start("--bootstrap", addr_of(pi))
    space = str(ana.cli("crew", "create", "Crew")["id"])
    checkin = str(ana.cli("checkin", space, "--text", "hello", "--energy", "3")["id"])
    wait_for(lambda: pi.status().peers != (), within=20, what="Ana and the carrier to connect")
    # Ana's node never offers an unnamed carrier the space, and a push is refused:
    with Replica.open(pi.home, read_only=True) as replica:
        assert replica.get(bytes.fromhex(checkin)) is None
        assert bytes.fromhex(space) not in replica.spaces()


def test_quota_and_unnamed_spaces_are_refused_with_their_reasons(fleet: Fleet) -> None:
    ana, pi = fleet.make("Ana", "Pi")
    pi.start("--carrier", "--carrier-quota", "0.05")  # 52 KiB per space
    ana.start()
    space = str(ana.cli("crew", "create", "Crew")["id"])
    for n in range(30):  # through the node's control socket, as `meshcrew checkin` does
        ana.call("checkin", bytes.fromhex(space), text=f"{n} " + "x" * 1900, energy=3)
    ana.cli("carrier", "add", space, str(pi.cli("carrier", "offer")["code"]))

    def refused_over_quota() -> bool:
        with Replica.open(pi.home, read_only=True) as replica:
            return any(r.reason is Reason.OVER_QUOTA for r in replica.rejects(limit=500))

    wait_for(refused_over_quota, within=30, what="the carrier to refuse past its quota")
    shown = {row["reason"] for row in pi.cli("rejects", "--limit", "500")["rejects"]}
    assert Reason.OVER_QUOTA.value in shown  # `meshcrew rejects` on the carrier says why
    with Replica.open(pi.home, read_only=True) as replica:
        held = sum(len(r.raw) for r in replica.space_records(bytes.fromhex(space)))
    assert held <= 0.05 * 1024 * 1024
    assert pi.status().peers  # still up and answering
    assert Reason.NOT_CARRIED.value == "not_carried"


def test_status_and_peers_show_the_carrier_and_what_it_holds(fleet: Fleet) -> None:
    ana, pi = fleet.make("Ana", "Pi")
    pi.start("--carrier")
    ana.start()
    space = str(ana.cli("crew", "create", "Crew")["id"])
    ana.cli("carrier", "add", space, str(pi.cli("carrier", "offer")["code"]))
    pi_id = pi.status().peer_id

    def carried() -> bool:  # over the control socket: no Python per poll
        return [c["space"] for c in pi.status().to_json()["carried"]] == [space]

    wait_for(carried, within=20, what="the carrier's status to list the space")
    shown = pi.cli("status")
    assert [c["space"] for c in shown["carried"]] == [space]
    assert shown["carrier"] is True
    assert ana.cli("status")["carrier"] is False
    peers = {p["peer_id"]: p for p in ana.cli("peers")["peers"]}
    assert peers[pi_id]["role"] == "carrier"
    assert [s["space"] for s in peers[pi_id]["spaces"]] == [space]
    assert "(carrier)" in ana.run("peers").stdout
