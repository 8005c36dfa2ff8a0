"""Leaving from one laptop with ``--expire-posts`` takes the member's posts on their other
devices too (retention rule 5, ``spaces.retention.withdrawn``), as far as rule 4 allows: each
device's newest record stays whole. A leave that names someone else's chain takes nothing of
theirs. Real replicas, records moved by export and ingest, every home folder read for the
ciphertext."""

from __future__ import annotations

from meshcrew.records import sign_record
from meshcrew.service import Member
from meshcrew.spaces import Period, RecordKind, Rhythm
from meshcrew.spaces.bodies import LeaveBody, encode_body
from test_service_support import Town, admit, blob_of, home_bytes, send, sync


def crew_with_a_laptop(town: Town) -> tuple[bytes, Member, Member, Member]:
    """Ana's crew (a daily rhythm, posts kept forever) with Bo, and Ana's linked laptop."""
    ana, bo, laptop = town.person("Ana"), town.person("Bo"), town.person("Ana's laptop")
    space = ana.create_space("Moon", rhythm=Rhythm(Period.DAILY))
    admit(ana, bo, space)
    send(ana, laptop, space)
    laptop.adopt_certificate(ana.me, ana.certify_device(laptop.me))
    sync(space, ana, bo, laptop)
    return space, ana, bo, laptop


def settle(space: bytes, *members: Member) -> None:
    for _ in range(2):
        for member in members:
            member.expire_due(space)
            sync(space, *members)


def test_leaving_from_the_laptop_takes_the_desks_posts_too(town: Town) -> None:
    space, ana, bo, laptop = crew_with_a_laptop(town)
    old = ana.checkin(space, text="DESK-OLD-c17", energy=3)
    newest = ana.checkin(space, text="DESK-NEWEST-c17", energy=3)
    sofa = laptop.checkin(space, text="SOFA-c17", energy=4)
    bos = bo.checkin(space, text="BO-STAYS-c17", energy=2)
    sync(space, ana, bo, laptop)
    blobs = {rid: blob_of(bo, space, rid) for rid in (old, newest, sofa, bos)}
    laptop.leave(space, expire_posts=True)
    sync(space, ana, bo, laptop)
    settle(space, ana, bo, laptop)
    for member in (ana, bo, laptop):
        expired = member.view(space).opened.expired
        on_disk = home_bytes(member)
        assert {old, sofa} <= expired, member.identity.name
        assert blobs[old] not in on_disk
        assert blobs[sofa] not in on_disk
        # Rule 4: the desk's newest record is a post and the desk can write no later one.
        assert newest not in expired
        assert bos not in expired
        assert blobs[bos] in on_disk


def test_a_leave_naming_someone_elses_chain_takes_nothing_of_theirs(town: Town) -> None:
    space, ana, bo, laptop = crew_with_a_laptop(town)
    first = bo.checkin(space, text="BO-FIRST-c17", energy=2)
    bo.checkin(space, text="BO-LATER-c17", energy=2)
    sync(space, ana, bo, laptop)
    bos = bo.replica.frontier(space)[bo.me]
    head = laptop.replica.frontier(space)[laptop.me]
    forged = sign_record(laptop.identity.signing_key, kind=RecordKind.LEAVE, space=space,
                         seq=head.seq + 1, prev=head.id, ts=laptop.now(),
                         body=encode_body(LeaveBody(True, ((bo.me, bos.seq, bos.id),))))
    assert forged.id in ana.ingest([forged.raw], sender="laptop").accepted
    sync(space, ana, bo, laptop)
    settle(space, ana, bo)
    assert first not in ana.view(space).opened.expired
    assert first not in bo.view(space).opened.expired
