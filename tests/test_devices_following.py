"""A linked laptop follows its member into a space joined after it was linked (issue 13).

Through the member service, records moved by ``export`` and ``ingest`` (what the member's node
brings on the carry protocol and sync sends back): the laptop keeps its certificate in its home
folder and posts it in the new space once its member is let in there; the member's node
rotates the keys to it. Which nodes send it the new space's records first (before it has posted
its certificate there) is :class:`meshcrew.node.carrying.Serving`'s answer, checked here on the
member's and a crewmate's replicas. The same across node processes:
``tests/test_devices_processes.py``.
"""

from __future__ import annotations

import logging

import pytest

from hosts_on_loopback import LOOPBACK
from meshcrew.errors import SpaceError
from meshcrew.identity import peer_id_of
from meshcrew.net import open_host
from meshcrew.node import NodeConfig
from meshcrew.node.carrying import Serving
from meshcrew.node.contacts import Contacts
from meshcrew.node.membership import Membership
from meshcrew.node.peerbook import PeerBook
from meshcrew.service import Member
from meshcrew.service.devices import HeldCertificate
from test_service_support import WEEK, Town, crew_of, send, sync


def serving(member: Member) -> Serving:
    return Serving(Membership(member), member.replica, member.me, carrier=False)


def linked(town: Town, member: Member, space: bytes, *others: Member) -> Member:
    """A laptop linked to ``member`` in ``space`` (as the link handshake does), synced."""
    laptop = town.person(f"{member.identity.name}'s laptop")
    send(member, laptop, space)
    assert laptop.adopt_certificate(member.me, member.certify_device(laptop.me))
    send(laptop, member, space)
    sync(space, member, laptop, *others)
    return laptop


def test_a_laptop_posts_its_certificate_where_its_member_is_let_in_later(town: Town) -> None:
    first, (ana, bo) = crew_of(town, "Ana", "Bo")
    laptop = linked(town, ana, first, bo)
    held = laptop.held_certificate()
    assert held is not None  # kept in the home folder
    assert held.member == ana.me

    later = bo.create_space("Sun")
    code = bo.invite(later, expires_ms=bo.now() + WEEK)
    send(bo, ana, later)
    ana.join(code)
    # Before Bo's node lets Ana in, the laptop has nothing to adopt (no epoch sealed to her)...
    send(ana, laptop, later)
    assert laptop.replica.frontier(later).get(laptop.me) is None
    # ...but Ana's node serves it the space as Ana's already, and so does Bo's once Ana joined.
    assert serving(ana).shares(later, laptop.me)
    assert not serving(bo).shares(later, laptop.me)
    assert later in bo.ingest(ana.export(later), sender="ana").rotated  # Ana is let in
    assert serving(bo).shares(later, laptop.me)
    assert not serving(bo).shares(later, bytes(32))
    send(bo, ana, later)
    send(ana, laptop, later)  # what Ana's node brings
    certificate = laptop.replica.frontier(later).get(laptop.me)
    assert certificate is not None
    assert certificate.seq == 1
    assert laptop.view(later).state.records[certificate.id].kind == "device"
    assert later in ana.ingest(laptop.export(later), sender="laptop").rotated  # keys to it
    sync(later, ana, bo, laptop)
    assert laptop.summary(later).my_status == "active"
    assert not laptop.summary(later).waiting_for_keys

    sofa = laptop.checkin(later, text="from the sofa", energy=3)
    sync(later, ana, bo, laptop)
    entries = {e.id: e for e in bo.log(later)}
    assert entries[sofa].author == ana.me
    assert entries[sofa].chain == laptop.me
    assert sorted(m.name for m in bo.members(later)) == ["Ana", "Bo"]
    assert bo.view(later).state.rejected() == {}

    # Once revoked, no node serves it a space it is not in yet: not even Bo's, which has the
    # revocation in the first crew only (a revocation names no space).
    ana.revoke_device(laptop.me)
    sync(first, ana, bo)
    assert bo.view(later).state.is_member(laptop.me)  # Bo's replica of "Sun" lacks it
    third = bo.create_space("Moon too")
    code = bo.invite(third, expires_ms=bo.now() + WEEK)
    send(bo, ana, third)
    ana.join(code)
    assert third in bo.ingest(ana.export(third), sender="ana").rotated
    assert not serving(ana).shares(third, laptop.me)
    assert not serving(bo).shares(third, laptop.me)


def test_a_certificate_file_that_is_not_this_devices_is_ignored(
        town: Town, caplog: pytest.LogCaptureFixture) -> None:
    first, (ana, _) = crew_of(town, "Ana", "Bo")
    laptop = town.person("Ana's laptop")
    path = laptop.replica.home.certificate_file
    assert laptop.held_certificate() is None  # never linked
    caplog.set_level(logging.WARNING)
    for damaged in (b"", b"\x93\x01", b"not msgpack \xc1"):
        path.write_bytes(damaged)
        assert laptop.held_certificate() is None
    other = town.person("Someone else")
    with pytest.raises(SpaceError, match="not your member key"):
        laptop.keep_certificate(ana.me, ana.certify_device(other.me))
    other.keep_certificate(ana.me, ana.certify_device(other.me))
    path.write_bytes(other.replica.home.certificate_file.read_bytes())  # another device's
    assert laptop.held_certificate() is None
    assert "not a certificate of this device's key" in caplog.text
    send(ana, laptop, first)  # nothing to adopt with, and no crash
    assert laptop.replica.frontier(first).get(laptop.me) is None
    laptop.keep_certificate(ana.me, ana.certify_device(laptop.me))
    assert laptop.held_certificate() == HeldCertificate(ana.me, ana.certify_device(laptop.me))


def test_a_revoked_laptop_certifying_itself_in_a_later_space_is_revoked_there(
        town: Town) -> None:
    first, (ana, bo) = crew_of(town, "Ana", "Bo")
    laptop = linked(town, ana, first, bo)
    ana.revoke_device(laptop.me)
    sync(first, ana, bo)
    later = bo.create_space("Sun")
    code = bo.invite(later, expires_ms=bo.now() + WEEK)
    send(bo, ana, later)
    ana.join(code)
    assert later in bo.ingest(ana.export(later), sender="ana").rotated
    send(bo, ana, later)
    send(bo, laptop, later)  # the lost laptop gets the records somehow, and certifies itself
    certificate = laptop.replica.frontier(later).get(laptop.me)
    assert certificate is not None, "its certificate names no space"
    # Bo's node knows it is revoked (in the first crew): it seals no key to it meanwhile.
    assert later not in bo.ingest(laptop.export(later), sender="laptop").rotated
    with pytest.raises(SpaceError, match="revoked in another space"):
        bo.checkin(later, text="too early", energy=2)
    report = ana.ingest(laptop.export(later), sender="laptop")
    assert later in report.rotated
    state = ana.view(later).state
    assert state.devices[laptop.me].revoked_by is not None  # revoked there too, at once
    assert laptop.me not in state.recipients
    sync(later, ana, bo)
    after = bo.checkin(later, text="not for the lost laptop", energy=2)
    sync(later, ana, bo)
    send(bo, laptop, later)
    assert after in laptop.view(later).opened.locked


@pytest.mark.trio
async def test_a_member_and_their_devices_want_each_other_whatever_spaces_they_share(
        town: Town) -> None:
    first, (ana, bo) = crew_of(town, "Ana", "Bo")
    laptop = linked(town, ana, first, bo)
    ana.leave(first)  # no space in common now: the laptop must still reach the next one
    send(ana, laptop, first)
    for me, other in ((ana, laptop), (laptop, ana)):
        async with open_host(me.identity, LOOPBACK) as host:
            contacts = Contacts(host, PeerBook.load(me.replica.home), Membership(me),
                                NodeConfig(), me.now, lambda event: None)
            assert Membership(me).my_spaces() == []
            assert peer_id_of(other.me) in contacts.wanted_peers()
            assert peer_id_of(bo.me) not in contacts.wanted_peers()
