"""A member's devices in the fold (rules 12 and 13): certificates, revocations, keys, views.

Ada has her member key (her first device) and a second laptop, ``ADA2``. Each bad input is
refused with its own reason; the rules that speak of a member read Ada for either device.
"""

from __future__ import annotations

import random

import pytest

from meshcrew import crypto, spaces
from meshcrew.errors import SpaceError
from meshcrew.reasons import Reason
from meshcrew.records import Record
from meshcrew.spaces import CheckIn, MemberStatus, Profile, Rhythm
from meshcrew.spaces.bodies import ConsentBody, DeviceBody, SealedBody, UnlinkBody, draft
from meshcrew.spaces.devices import (
    DEVICE_DOMAIN,
    certify_device,
    device_certificate,
    revoke_device,
    unlink_device,
)
from meshcrew.spaces.sealing import post_ad
from meshcrew.spaces.state import ChangeKind
from meshcrew.spaces.views import checkin_cycle, member_views
from spaces_world import World, person, pk

ADA, BO, CY = (person(n) for n in ("ada", "bo", "cy"))
ADA2, ADA3, STRAY = (person(n) for n in ("ada's other laptop", "ada's third", "stray"))


def crew(w: World) -> bytes:
    """Ada's crew with Bo and Cy, everyone let in."""
    space = w.found(ADA)
    w.admit(ADA, BO, space)
    w.admit(ADA, CY, space)
    return space


def link(w: World, space: bytes, member=ADA, device=ADA2, *, rotate: bool = True) -> Record:
    """``device`` posts ``member``'s certificate of it; ``member`` then rotates the keys."""
    cert = w.sign(device, space, device_certificate(w.state(space), pk(member),
                                                   certify_device(member, pk(device))))
    if rotate:
        w.rotate(member, space)
    return cert


def raw_cert(w: World, space: bytes, member: bytes, signature: bytes) -> spaces.Draft:
    """A certificate made by hand (the builder refuses what the fold must refuse too)."""
    return draft(DeviceBody(member, signature, w.state(space).current_epoch_id or space))


def status(w: World, space: bytes, record: Record) -> Reason | None:
    found = w.state(space).status(record.id)
    assert found is not None
    return found.reason


def test_a_linked_device_writes_its_own_chain_as_its_member() -> None:
    w = World()
    space = crew(w)
    assert w.state(space).devices_of(pk(ADA)) == (pk(ADA),)  # the member key: first device
    cert = link(w, space, rotate=False)
    state = w.state(space)
    assert state.status(cert.id) == spaces.state.ACCEPTED
    assert state.member_of(pk(ADA2)) == pk(ADA)
    assert state.is_member(pk(ADA2))
    assert state.devices_of(pk(ADA)) == (pk(ADA), pk(ADA2))
    assert ChangeKind.LINKED in [c.change for c in state.changes]
    assert state.needs_rekey  # keys must reach the new device before anyone writes
    w.rotate(ADA, space)
    state = w.state(space)
    assert state.current_epoch is not None
    assert state.current_epoch.recipients == {pk(ADA), pk(ADA2), pk(BO), pk(CY)}
    w.post(ADA, space, CheckIn("from the desk", 3))
    w.post(ADA2, space, CheckIn("from the sofa", 4))
    w.post(ADA2, space, Profile("Ada", "two laptops"))
    state = w.state(space)
    assert all(s.accepted for s in state.statuses.values())
    assert state.active == {pk(ADA), pk(BO), pk(CY)}  # one Ada
    for reader in (BO, ADA, ADA2):
        opened = spaces.open_posts(state, spaces.unlock(state, reader))
        checkins = opened.of_kind(spaces.PostKind.CHECKIN)
        assert {p.author for p in checkins} == {pk(ADA)}
        assert {p.device for p in checkins} == {pk(ADA), pk(ADA2)}
        cycle = checkin_cycle(opened, Rhythm(), w.now)
        assert cycle.checkins[pk(ADA)].post == CheckIn("from the sofa", 4)
        assert pk(ADA) not in cycle.missing
        names = {m.key: m.name for m in member_views(opened)}
        assert names[pk(ADA)] == "Ada"
        assert len(names) == 3


def test_a_device_speaks_for_its_member_in_consent_and_leaving() -> None:
    w = World()
    space = crew(w)
    link(w, space)
    against_ada = w.propose(BO, space, ADA)
    with pytest.raises(SpaceError, match="own removal"):
        spaces.consent_to_removal(w.state(space), pk(ADA2), against_ada.id)
    own = w.sign(ADA2, space, draft(ConsentBody(against_ada.id)))
    assert status(w, space, own) is Reason.NOT_ALLOWED  # Ada's laptop is Ada
    proposal = w.propose(ADA2, space, CY)  # Ada proposes, from her second laptop
    w.consent(BO, space, proposal)
    state = w.state(space)
    assert state.removals[proposal.id].proposer == pk(ADA)
    assert state.members[pk(CY)].status is MemberStatus.REMOVED
    leave = w.leave(ADA2, space)  # leaving from any device: the member leaves
    state = w.state(space)
    assert state.status(leave.id) == spaces.state.ACCEPTED
    assert state.members[pk(ADA)].status is MemberStatus.LEFT
    assert not state.is_member(pk(ADA))
    assert not state.is_member(pk(ADA2))


def test_a_certificate_not_signed_by_the_member_is_refused() -> None:
    w = World()
    space = crew(w)
    # The stray key signs "Ada certifies me" itself: not Ada's signature.
    signature = STRAY.sign(DEVICE_DOMAIN + pk(ADA) + pk(STRAY)).signature
    forged = w.sign(STRAY, space, raw_cert(w, space, pk(ADA), signature))
    assert status(w, space, forged) is Reason.DEVICE_UNPROVEN
    later = w.sign(STRAY, space, draft(SealedBody(space, w.rng(60))))
    assert status(w, space, later) is Reason.NOT_MEMBER
    assert not w.state(space).is_member(pk(STRAY))


def test_a_revoked_device_still_writing_is_refused_and_keys_rotate_away_from_it() -> None:
    w = World()
    space = crew(w)
    link(w, space)
    before = w.post(ADA2, space, CheckIn("before", 3))
    state = w.state(space)
    unlink = w.sign(ADA, space, unlink_device(state, pk(ADA), pk(ADA2),
                                              revoke_device(ADA, pk(ADA2))))
    state = w.state(space)
    assert state.status(unlink.id) == spaces.state.ACCEPTED
    assert state.devices[pk(ADA2)].last_seq == before.seq
    assert not state.is_member(pk(ADA2))
    assert state.member_of(pk(ADA2)) == pk(ADA)  # what it wrote before stays Ada's
    assert state.needs_rekey
    old_keys = spaces.unlock(state, ADA2).epoch_keys
    after = w.sign(ADA2, space, draft(SealedBody(state.epochs[max(
        old_keys, key=lambda e: state.epochs[e].number)].id, w.rng(60))))
    assert status(w, space, after) is Reason.DEVICE_REVOKED
    w.rotate(BO, space)  # any member rotates: the new key is not sealed to the lost laptop
    state = w.state(space)
    assert state.current_epoch is not None
    assert pk(ADA2) not in state.current_epoch.recipients
    secret = w.post(BO, space, CheckIn("after the revocation", 2))
    state = w.state(space)
    lost = spaces.unlock(state, ADA2)
    assert secret.id in spaces.open_posts(state, lost).locked
    body = spaces.bodies.parse_body(secret.kind, secret.body)
    assert isinstance(body, SealedBody)
    for key in lost.epoch_keys.values():  # the test tries every key the lost laptop holds
        with pytest.raises(crypto.DecryptError):
            crypto.decrypt(key, body.blob, post_ad(space, pk(BO), body.epoch))
    kept = spaces.open_posts(state, spaces.unlock(state, BO)).post(before.id)
    assert kept is not None
    assert kept.author == pk(ADA)


def test_a_revocation_cuts_the_device_at_the_named_record_in_any_order() -> None:
    w = World()
    space = crew(w)
    link(w, space)
    first = w.post(ADA2, space, CheckIn("one", 3))
    view = w.state(space)  # Ada revokes as she sees it: after "one"
    racing = w.post(ADA2, space, CheckIn("two, concurrent", 3))
    unlink = w.sign(ADA, space, unlink_device(view, pk(ADA), pk(ADA2),
                                              revoke_device(ADA, pk(ADA2))))
    records = w.of(space)
    reference = w.state(space)
    assert reference.status(first.id) == spaces.state.ACCEPTED
    assert reference.status(racing.id).reason is Reason.DEVICE_REVOKED
    assert reference.status(unlink.id) == spaces.state.ACCEPTED
    shuffler = random.Random(7)
    for _ in range(5):
        shuffler.shuffle(records)
        assert spaces.fold(space, records) == reference


def test_a_device_cannot_revoke_itself_nor_without_the_member_key() -> None:
    w = World()
    space = crew(w)
    link(w, space)
    state = w.state(space)
    last = state.last_counting_record(pk(ADA2))
    assert last is not None
    own = w.sign(ADA2, space, draft(UnlinkBody(pk(ADA), pk(ADA2), revoke_device(ADA, pk(ADA2)),
                                               last.seq, last.id)))
    assert status(w, space, own) is Reason.NOT_ALLOWED
    unsigned = w.sign(ADA, space, draft(UnlinkBody(pk(ADA), pk(ADA2),
                                                   revoke_device(ADA2, pk(ADA2)),
                                                   last.seq, last.id)))
    assert status(w, space, unsigned) is Reason.DEVICE_UNPROVEN
    other = w.sign(BO, space, draft(UnlinkBody(pk(ADA), pk(ADA2), revoke_device(ADA, pk(ADA2)),
                                               last.seq, last.id)))
    assert status(w, space, other) is Reason.NOT_ALLOWED  # Bo is not Ada
    with pytest.raises(SpaceError, match="member key"):
        unlink_device(w.state(space), pk(ADA), pk(ADA2), revoke_device(BO, pk(ADA2)))
    assert w.state(space).is_member(pk(ADA2))


def test_a_device_of_a_removed_member_is_refused() -> None:
    w = World()
    space = crew(w)
    link(w, space)
    proposal = w.propose(BO, space, ADA)
    w.consent(CY, space, proposal)
    state = w.state(space)
    assert state.members[pk(ADA)].status is MemberStatus.REMOVED
    assert not state.is_member(pk(ADA2))
    assert state.needs_rekey
    epoch = state.current_epoch_id or max(state.epochs, key=lambda e: state.epochs[e].number)
    late = w.sign(ADA2, space, draft(SealedBody(epoch, w.rng(60))))
    assert status(w, space, late) is Reason.DEVICE_OF_REMOVED
    w.rotate(BO, space)
    state = w.state(space)
    assert state.current_epoch is not None
    assert state.current_epoch.recipients == {pk(BO), pk(CY)}  # all of Ada's devices are out
    newcomer = w.sign(ADA3, space, raw_cert(w, space, pk(ADA), certify_device(ADA, pk(ADA3))))
    assert status(w, space, newcomer) is Reason.DEVICE_OF_REMOVED


def test_two_members_claiming_one_device_are_refused() -> None:
    w = World()
    space = crew(w)
    link(w, space)
    # Ada's laptop presents a certificate from Bo as well: one key, one member.
    second = w.sign(ADA2, space, raw_cert(w, space, pk(BO), certify_device(BO, pk(ADA2))))
    assert status(w, space, second) is Reason.DEVICE_CLAIMED
    # A member key cannot become someone else's device either.
    cy_as_device = w.sign(CY, space, raw_cert(w, space, pk(ADA), certify_device(ADA, pk(CY))))
    assert status(w, space, cy_as_device) is Reason.DEVICE_CLAIMED
    # Nor may a device join as a member of its own.
    join = w.join(ADA2, w.invite(BO, space))
    assert status(w, space, join) is Reason.DEVICE_CLAIMED
    state = w.state(space)
    assert state.member_of(pk(ADA2)) == pk(ADA)
    assert state.active == {pk(ADA), pk(BO), pk(CY)}


def test_a_certificate_must_be_the_devices_first_record_and_name_a_current_member() -> None:
    w = World()
    space = crew(w)
    w.sign(ADA3, space, draft(SealedBody(space, w.rng(60))))  # writes before it is certified
    late_cert = w.sign(ADA3, space, raw_cert(w, space, pk(ADA), certify_device(ADA, pk(ADA3))))
    assert status(w, space, late_cert) is Reason.NOT_ALLOWED
    w.leave(CY, space)
    of_leaver = w.sign(STRAY, space, raw_cert(w, space, pk(CY), certify_device(CY, pk(STRAY))))
    assert status(w, space, of_leaver) is Reason.NOT_MEMBER


def test_a_member_key_that_signed_records_directly_is_the_first_device() -> None:
    """Replicas made before devices existed: nothing changes for them."""
    w = World()
    space = crew(w)
    w.post(ADA, space, CheckIn("as ever", 3))
    state = w.state(space)
    assert state.devices == {}
    assert state.recipients == state.active
    assert state.member_of(pk(ADA)) == pk(ADA)
    opened = spaces.open_posts(state, spaces.unlock(state, BO))
    assert [(p.author, p.signer) for p in opened.posts] == [(pk(ADA), pk(ADA))]


def test_a_leave_names_the_other_devices_so_what_they_wrote_before_counts_in_any_order() -> None:
    w = World()
    space = crew(w)
    link(w, space)
    post = w.post(ADA2, space, CheckIn("still here", 3))
    leave = w.leave(ADA, space)
    body = spaces.bodies.parse_body(leave.kind, leave.body)
    assert isinstance(body, spaces.bodies.LeaveBody)
    assert body.devices == ((pk(ADA2), post.seq, post.id),)
    late = w.sign(ADA2, space, draft(SealedBody(post.id, w.rng(60))))
    records = w.of(space)
    reference = w.state(space)
    assert reference.status(post.id) == spaces.state.ACCEPTED
    assert reference.status(late.id).reason is Reason.NOT_MEMBER
    shuffler = random.Random(3)
    for _ in range(5):
        shuffler.shuffle(records)
        assert spaces.fold(space, records) == reference
