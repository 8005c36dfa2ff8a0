"""A member's devices through the member service: link, both write, revoke, keys rotate.

Records move between replicas only through the service's ``export`` and ``ingest`` (as the
node's handshake and sync carry them); the revoked laptop is then handed everything anyway, and
every key it holds is tried on what was written after the revocation.
"""

from __future__ import annotations

import pytest

from meshcrew.crypto import decrypt
from meshcrew.errors import DecryptError, SpaceError
from meshcrew.spaces.bodies import SealedBody, parse_body
from meshcrew.spaces.sealing import post_ad
from test_service_support import Town, crew_of, send, sync


def test_a_second_laptop_writes_as_its_member_and_a_revoked_one_reads_nothing_new(
        town: Town) -> None:
    space, (ana, bo, cy) = crew_of(town, "Ana", "Bo", "Cy")
    laptop = town.person("Ana's laptop")
    send(ana, laptop, space)  # what the link handshake sends: the member's spaces
    assert laptop.summary(space).my_status == "outsider"
    made = laptop.adopt_certificate(ana.me, ana.certify_device(laptop.me))
    assert len(made) == 1
    assert laptop.adopt_certificate(ana.me, ana.certify_device(laptop.me)) == []  # once per space
    report = ana.ingest(laptop.export(space), sender="laptop")
    assert space in report.rotated  # Ana's node rotates so that her laptop can read
    sync(space, ana, bo, cy, laptop)
    assert laptop.summary(space).my_status == "active"
    with pytest.raises(SpaceError, match="linked device"):
        laptop.certify_device(bytes(32))
    other = bo.create_space("Sun")
    code = bo.invite(other, expires_ms=bo.now() + 3_600_000)
    send(bo, laptop, other)
    with pytest.raises(SpaceError, match="linked device"):
        laptop.join(code)  # it would join as a member of its own

    desk = ana.checkin(space, text="from the desk", energy=3)
    sofa = laptop.checkin(space, text="from the sofa", energy=4)
    sync(space, ana, bo, cy, laptop)
    for reader in (bo, cy, ana, laptop):
        entries = {e.id: e for e in reader.log(space)}
        assert entries[desk].author == entries[sofa].author == ana.me
        assert (entries[desk].chain, entries[sofa].chain) == (ana.me, laptop.me)
        assert [m.name for m in reader.members(space)].count("Ana") == 1
        assert len(reader.members(space)) == 3
        cycle = reader.cycle(space)
        assert [c.author for c in cycle.checkins].count(ana.me) == 1
        assert all(m.key != ana.me for m in cycle.missing)
        assert reader.view(space).state.rejected() == {}
    assert [(d.first, d.revoked) for d in ana.devices()] == [(True, False), (False, False)]

    revoked = ana.revoke_device(laptop.me)
    assert len(revoked) == 2  # the revocation and the rotation that follows it
    sync(space, ana, bo, cy)
    after = bo.checkin(space, text="after the laptop was lost", energy=2)
    sync(space, ana, bo, cy)
    send(bo, laptop, space)  # the lost laptop is handed everything all the same
    view = laptop.view(space)
    assert laptop.summary(space).my_status == "revoked"
    assert after in view.opened.locked
    record = view.state.records[after]
    body = parse_body(record.kind, record.body)
    assert isinstance(body, SealedBody)
    for key in view.keyring.epoch_keys.values():
        with pytest.raises(DecryptError):
            decrypt(key, body.blob, post_ad(space, record.author, body.epoch))
    with pytest.raises(SpaceError, match="revoked"):
        laptop.checkin(space, text="still mine?", energy=1)
    assert [(d.first, d.revoked) for d in ana.devices()] == [(True, False), (False, True)]
    assert sofa in {e.id for e in bo.log(space)}  # what it wrote before still counts


def test_a_linked_laptop_says_which_laptop_can_link_or_revoke(town: Town) -> None:
    space, (ana, bo) = crew_of(town, "Ana", "Bo")
    laptop, other = town.person("Ana's laptop"), town.person("Ana's tablet")
    for device in (laptop, other):
        send(ana, device, space)
        device.adopt_certificate(ana.me, ana.certify_device(device.me))
        send(device, ana, space)
    sync(space, ana, bo, laptop, other)
    for attempt in (lambda: laptop.revoke_device(other.me),
                    lambda: laptop.certify_device(bytes(range(32)))):
        with pytest.raises(SpaceError) as refused:
            attempt()
        said = str(refused.value)
        assert said.startswith("Only the laptop with your member key can ")
        assert "Ana's first laptop" in said
        assert ana.identity.fingerprint in said
    assert [d.revoked for d in ana.devices()] == [False, False, False]
