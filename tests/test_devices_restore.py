"""A backup restored while the member's laptop still runs becomes a new device, not a fork
(issue 13, ``meshcrew restore --as-device``).

The restore reads the member key from the backup in memory, makes the home a new device key
certified by it, and posts the certificate in each space; the old laptop takes it and rotates
the keys. Both then write, every crewmate reads both as the member, nothing is refused. Real
replicas and a real backup file; records moved by export and ingest (the node's part is
``tests/test_devices_processes.py``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from meshcrew import identity
from meshcrew.backup import MIN_MEMLIMIT, MIN_OPSLIMIT, KdfCost
from meshcrew.errors import BackupError
from meshcrew.home import Home
from meshcrew.node.home_backup import back_up, restore
from meshcrew.service import Member
from meshcrew.store import Replica
from test_service_support import Town, crew_of, sync

PASS = b"river stones"


def test_a_restore_as_a_device_writes_beside_the_old_laptop_without_a_fork(
        town: Town, tmp_path: Path) -> None:
    space, (ana, bo) = crew_of(town, "Ana", "Bo")
    ana.checkin(space, text="before the backup", energy=3)
    sync(space, ana, bo)
    target = tmp_path / "ana.mcb"
    identity.save(ana.identity, ana.replica.home.key_file)  # as `meshcrew init` leaves it
    back_up(ana.replica.home, target, ana.identity, PASS,
            cost=KdfCost(MIN_OPSLIMIT, MIN_MEMLIMIT), now_ms=town.clock.now)
    fresh = Home(tmp_path / "restored")
    report = restore(fresh, target, PASS, key_passphrase=None, now_ms=town.clock.now,
                     as_device=True)
    assert (report.key_file, report.certified, report.rejected) == ("device", 1, ())
    device = identity.load(fresh.key_file)
    assert device.public_key == report.device != ana.me
    assert device.name == "Ana"
    assert ana.identity.seed not in b"".join(
        p.read_bytes() for p in fresh.path.rglob("*") if p.is_file()), "no member key here"

    with Replica.open(fresh) as replica:
        restored = Member(replica, device, clock=town.clock)
        assert restored.held_certificate() is not None
        assert restored.linked_to() == ana.me
        assert space in ana.ingest(restored.export(space), sender="restored").rotated
        sync(space, ana, bo, restored)
        assert restored.summary(space).my_status == "active"
        assert not restored.summary(space).waiting_for_keys
        desk = ana.checkin(space, text="from the old laptop", energy=3)
        sofa = restored.checkin(space, text="from the restored one", energy=4)
        sync(space, ana, bo, restored)
        for reader in (ana, bo, restored):
            entries = {e.id: e for e in reader.log(space)}
            assert entries[desk].author == entries[sofa].author == ana.me
            assert entries[sofa].chain == device.public_key
            assert reader.view(space).state.rejected() == {}, "no fork"
            assert sorted(m.name for m in reader.members(space)) == ["Ana", "Bo"]


def test_a_restore_as_a_device_needs_an_empty_home(town: Town, tmp_path: Path) -> None:
    _, (ana, _) = crew_of(town, "Ana", "Bo")
    target = tmp_path / "ana.mcb"
    identity.save(ana.identity, ana.replica.home.key_file)
    back_up(ana.replica.home, target, ana.identity, PASS,
            cost=KdfCost(MIN_OPSLIMIT, MIN_MEMLIMIT), now_ms=town.clock.now)
    with pytest.raises(BackupError, match="already holds an identity"):
        restore(ana.replica.home, target, PASS, key_passphrase=None, now_ms=town.clock.now,
                as_device=True)
    sealed = Home(tmp_path / "sealed")
    sealed.ensure()
    identity.save(ana.identity, sealed.key_file, passphrase=b"key pass")
    Replica.open(sealed).close()  # an empty replica beside a protected key file
    back_up(sealed, tmp_path / "sealed.mcb", ana.identity, PASS,
            cost=KdfCost(MIN_OPSLIMIT, MIN_MEMLIMIT), now_ms=town.clock.now)
    with pytest.raises(BackupError, match="protected by a passphrase"):
        restore(Home(tmp_path / "fresh"), tmp_path / "sealed.mcb", PASS, key_passphrase=None,
                now_ms=town.clock.now, as_device=True)
    assert not (tmp_path / "fresh" / "identity.key").exists()
