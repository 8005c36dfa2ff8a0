"""A member's second laptop across real ``meshcrew node`` processes on 127.0.0.1 (issue 13).

Ana, Bo and Cy run nodes; Ana's new laptop runs ``meshcrew init --link`` and Ana approves it
with ``meshcrew devices add CODE`` on her running node. Both of Ana's laptops check in while
online at once; every crewmate's replica holds both check-ins as Ana's, with no fork, one Ana in
the member list and in the rhythm. Ana revokes the laptop; the keys rotate; a check-in Bo posts
afterwards is taken from Bo's replica and the revoked laptop's keys are tried on it: none opens.

Waits poll a condition with a deadline (see ``node_processes``); nothing sleeps a fixed time.
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import pytest

from meshcrew import identity
from meshcrew.crypto import decrypt
from meshcrew.errors import DecryptError
from meshcrew.records import Record
from meshcrew.service import Member, SpaceSummary
from meshcrew.spaces.bodies import SealedBody, parse_body
from meshcrew.spaces.sealing import post_ad
from meshcrew.store import Replica
from node_processes import (
    LOOPBACK,
    MESHCREW,
    Fleet,
    NodeProcess,
    crew_of,
    fleet,
    remember,
    start_all,
    wait_for,
)

__all__ = ["fleet"]  # the fixture


def summary(node: NodeProcess, space: str) -> SpaceSummary:
    found: SpaceSummary = node.call("summary", bytes.fromhex(space))
    return found


def holds_keys(node: NodeProcess, space: str, members: int) -> bool:
    found = summary(node, space)
    return found.my_status == "active" and not found.waiting_for_keys and \
        found.members == members


def entries(node: NodeProcess, space: str) -> list[dict[str, Any]]:
    """``log --json`` records of the running node (over its control socket)."""
    found = node.call("log", bytes.fromhex(space), events=True)
    return [e.to_json() for e in found]


def first_line(path: Any) -> str | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return text.split("\n", 1)[0] if "\n" in text else None


def link_laptop(member: NodeProcess, laptop: NodeProcess
                ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """``init --link`` on the laptop (a fresh home), ``devices add CODE`` through the member's
    running node; returns what each screen said: the code shown, ``devices add``'s answer and
    the laptop's ``linked`` object. Sets ``laptop.key`` to the device's key."""
    out = laptop.home.path / "link.out"
    with open(out, "w") as sink:
        linking = subprocess.Popen(
            [MESHCREW, "--home", str(laptop.home.path), "init", "--link", "--listen", LOOPBACK,
             "--wait", "90", "--json"], stdout=sink, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: first_line(out) is not None, within=30, what="the link code")
        shown = json.loads(first_line(out) or "{}")
        added = member.cli("devices", "add", shown["code"])
        assert linking.wait(timeout=60) == 0, out.read_text()
    finally:
        if linking.poll() is None:
            linking.kill()
            linking.wait(timeout=10)
    laptop.key = identity.load(laptop.home.key_file).public_key
    return shown, added, json.loads(out.read_text().strip().split("\n")[-1])["linked"]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_linked_laptop_checks_in_as_its_member_and_reads_nothing_once_revoked(
        fleet: Fleet) -> None:
    ana, bo, cy, laptop = fleet.make("Ana", "Bo", "Cy", "Laptop")
    laptop.home.key_file.unlink()  # a fresh home: init --link makes the device's key
    crew = (ana, bo, cy)
    start_all(*crew)
    space = crew_of(ana, bo, cy)
    wait_for(lambda: all(holds_keys(n, space, 3) for n in crew), within=40,
             what="every member holding the keys")

    # The new laptop shows a link code; Ana's running node approves it.
    shown, added, linked = link_laptop(ana, laptop)
    device_fpr = identity.fingerprint(laptop.key)
    assert shown["device_fingerprint"] == added["device_fingerprint"] == device_fpr
    assert linked["member_fingerprint"] == identity.fingerprint(ana.key)  # both screens
    assert linked["member_name"] == "Ana"
    assert linked["spaces"] == added["spaces"] == 1

    remember(laptop, *crew)
    laptop.start()
    wait_for(lambda: holds_keys(laptop, space, 3), within=40,
             what="the laptop holding the keys as Ana")
    wait_for(lambda: all(any(e.get("device_fingerprint") == device_fpr for e in entries(n, space))
                         for n in crew), within=40, what="every crewmate knowing the laptop")

    # Both of Ana's laptops check in at once.
    at_once = [subprocess.Popen([MESHCREW, "--home", str(n.home.path), "checkin", space,
                                 "--text", text, "--energy", "4"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
               for n, text in ((ana, "from the desk"), (laptop, "from the sofa"))]
    for process in at_once:
        _, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
    for node in crew:
        wait_for(lambda n=node: {"from the desk", "from the sofa"} <= n.texts(space),
                 within=40, what=f"both check-ins on {node.name}'s node")
    for node in (bo, cy):
        log = [e for e in node.log(space) if e.get("text") in ("from the desk", "from the sofa")]
        assert {e["author"] for e in log} == {ana.key.hex()}, "both are Ana's"
        members = node.cli("members", space)["members"]
        assert sorted(m["name"] for m in members) == ["Ana", "Bo", "Cy"]
        rhythm = node.cli("rhythm", space)
        assert [c["author"] for c in rhythm["checkins"]].count(ana.key.hex()) == 1
        assert ana.key.hex() not in [m["key"] for m in rhythm["missing"]]
        assert node.cli("rejects", space)["rejects"] == [], "no fork, nothing refused"

    # Ana revokes the laptop: the keys rotate away from it.
    ana.cli("devices", "revoke", device_fpr)
    wait_for(lambda: all(any(e["kind"] == "unlink" for e in entries(n, space)) for n in crew),
             within=40, what="every crewmate holding the revocation")
    bo.run("checkin", space, "--text", "after the laptop was lost", "--energy", "2")
    wait_for(lambda: all("after the laptop was lost" in n.texts(space) for n in crew),
             within=40, what="Bo's check-in on every member's node")
    laptop.stop()
    bo.stop()
    with Replica.open(bo.home) as replica:
        reader = Member(replica, identity.load(bo.home.key_file), clock=_now)
        [after] = [e.id for e in reader.log(bytes.fromhex(space))
                   if e.fields.get("text") == "after the laptop was lost"]
        record = replica.get(after)
    assert isinstance(record, Record)
    with Replica.open(laptop.home) as replica:
        lost = Member(replica, identity.load(laptop.home.key_file), clock=_now)
        view = lost.view(bytes.fromhex(space))
        keys = list(view.keyring.epoch_keys.values())
    body = parse_body(record.kind, record.body)
    assert isinstance(body, SealedBody)
    assert keys, "the laptop held keys before it was revoked"
    for key in keys:  # every key the revoked laptop holds fails on the post made after
        with pytest.raises(DecryptError):
            decrypt(key, body.blob, post_ad(bytes.fromhex(space), record.author, body.epoch))


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_linked_laptop_follows_its_member_into_a_space_joined_later(fleet: Fleet) -> None:
    ana, bo, laptop = fleet.make("Ana", "Bo", "Laptop")
    laptop.home.key_file.unlink()
    start_all(ana, bo)
    first = crew_of(ana, bo)
    wait_for(lambda: all(holds_keys(n, first, 2) for n in (ana, bo)), within=40,
             what="both holding the keys")
    link_laptop(ana, laptop)
    assert laptop.home.certificate_file.exists(), "the laptop keeps its certificate"
    remember(laptop, ana, bo)
    laptop.start()
    wait_for(lambda: holds_keys(laptop, first, 2), within=40, what="the laptop in the first crew")

    # Bo founds a second crew and invites Ana; she joins on her desk, and the laptop follows.
    second = str(bo.cli("crew", "create", "Second")["id"])
    ana.run("join", str(bo.cli("invite", second)["code"]))
    wait_for(lambda: bytes.fromhex(second) in laptop.status().spaces
             and holds_keys(laptop, second, 2), within=60,
             what="the laptop following Ana into the second crew, with its keys")
    laptop.run("checkin", second, "--text", "from the sofa", "--energy", "3")
    wait_for(lambda: "from the sofa" in bo.texts(second), within=40,
             what="the laptop's check-in on Bo's node")
    [entry] = [e for e in bo.log(second) if e.get("text") == "from the sofa"]
    assert entry["author"] == ana.key.hex()
    assert entry.get("device") == laptop.key.hex()
    assert sorted(m["name"] for m in bo.cli("members", second)["members"]) == ["Ana", "Bo"]
    assert bo.cli("rejects", second)["rejects"] == [], "nothing refused"
    for node in (bo, ana):  # sync health names the laptop as Ana's device
        [peer] = [p for p in node.cli("peers")["peers"] if p["key"] == laptop.key.hex()]
        assert (peer["role"], peer["member"], peer["name"]) == ("device", ana.key.hex(), "Ana")


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_backup_restored_as_a_device_beside_the_running_laptop_does_not_fork(
        fleet: Fleet) -> None:
    ana, bo, restored = fleet.make("Ana", "Bo", "Restored")
    restored.home.key_file.unlink()  # a fresh home: the restore makes the device's key
    start_all(ana, bo)
    space = crew_of(ana, bo)
    wait_for(lambda: all(holds_keys(n, space, 2) for n in (ana, bo)), within=40,
             what="both holding the keys")
    passphrase = ana.home.path.parent / "backup-pass"
    passphrase.write_text("a long and private sentence\n")
    backup = ana.home.path.parent / "ana.mcb"
    ana.cli("backup", str(backup), "--backup-passphrase-file", str(passphrase),
            "--kdf-cost", "interactive")
    made = restored.cli("restore", str(backup), "--as-device", "--backup-passphrase-file",
                        str(passphrase))
    assert (made["key_file"], made["certified"]) == ("device", 1)
    restored.key = bytes.fromhex(made["device"])

    # No one has seen the new device yet: it brings its certificate to Ana's running node.
    remember(restored, ana, bo)
    restored.start()
    wait_for(lambda: holds_keys(restored, space, 2), within=60,
             what="the restored laptop holding the keys as Ana")
    restored.run("checkin", space, "--text", "from the restored laptop", "--energy", "3")
    ana.run("checkin", space, "--text", "from the old laptop", "--energy", "3")
    wait_for(lambda: {"from the restored laptop", "from the old laptop"} <= bo.texts(space),
             within=40, what="both check-ins on Bo's node")
    log = [e for e in bo.log(space) if e.get("text", "").startswith("from the ")]
    assert {e["author"] for e in log} == {ana.key.hex()}
    assert {e.get("device") for e in log} == {None, restored.key.hex()}
    assert bo.cli("rejects", space)["rejects"] == [], "no fork"


def _now() -> int:
    return time.time_ns() // 1_000_000
