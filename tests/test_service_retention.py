"""Retention through the member service: a check-in expires after the space's number of cycles,
its ciphertext leaves every member's home folder (replica and WAL), the space's state and
frontier do not change, and the rule itself (which posts, when, and the chain's newest record)."""

from __future__ import annotations

from pathlib import Path

import msgpack
import pytest
from nacl.signing import SigningKey

from meshcrew import identity
from meshcrew.backup import MIN_MEMLIMIT, MIN_OPSLIMIT, KdfCost
from meshcrew.home import Home
from meshcrew.node.home_backup import back_up, restore
from meshcrew.reasons import Reason
from meshcrew.records import (
    RecordError,
    decode_and_check_husk,
    decode_and_verify,
    encode_husk,
    sign_record,
)
from meshcrew.service import Member
from meshcrew.spaces import Ask, Period, RecordKind, Rhythm, SettingsChange
from meshcrew.spaces.bodies import LeaveBody, encode_body, parse_body
from meshcrew.spaces.retention import expiry
from meshcrew.store import Replica
from test_service_support import DAY, Town, admit, blob_of, home_bytes, sync


def texts(member: Member, space: bytes) -> set[str]:
    return {str(p.fields.get("text")) for p in member.log(space)}


def daily_crew(town: Town, keep_checkins: int, keep_posts: int = 0) -> tuple[bytes, Member,
                                                                             Member]:
    ada, bob = town.person("Ada"), town.person("Bob")
    space = ada.create_space("Moon", rhythm=Rhythm(Period.DAILY), keep_checkins=keep_checkins,
                             keep_posts=keep_posts)
    admit(ada, bob, space)
    sync(space, ada, bob)
    return space, ada, bob


def test_an_expired_checkin_leaves_every_home_folder(town: Town) -> None:
    space, ada, bob = daily_crew(town, keep_checkins=1)
    marker = ada.checkin(space, text="MARKER-retention-7f3a", energy=3)
    sync(space, ada, bob)
    bob.reply(marker, text="heard you")
    sync(space, ada, bob)
    blob = blob_of(bob, space, marker)
    assert blob in home_bytes(ada) + home_bytes(bob)  # the ciphertext is on disk until it expires
    frontier = bob.replica.frontier(space)
    assert ada.expire_due(space).due == frozenset()  # still within its cycle
    town.clock.advance(2 * DAY)
    for member in (ada, bob, ada, bob):  # Ada's node re-posts her profile: her head was it
        member.expire_due(space)
        sync(space, ada, bob)
    for member in (ada, bob):
        assert blob not in home_bytes(member)
        assert b"MARKER-retention" not in home_bytes(member)
        assert "MARKER-retention-7f3a" not in texts(member, space)
        assert "heard you" not in texts(member, space)  # a reply goes with what it answers
        assert marker in member.view(space).opened.expired
        assert member.view(space).state.status(marker).accepted  # the chain is whole
        assert member.replica.get(marker).expired
    assert {a: h.seq for a, h in bob.replica.frontier(space).items()}[
        ada.identity.public_key] == frontier[ada.identity.public_key].seq + 1  # the profile
    assert bob.replica.frontier(space) == ada.replica.frontier(space)


def test_a_joiner_after_an_expiry_catches_up_past_it_without_the_content(town: Town) -> None:
    space, ada, bob = daily_crew(town, keep_checkins=1)
    marker = ada.checkin(space, text="MARKER-retention-joiner", energy=3)
    sync(space, ada, bob)
    bob.reply(marker, text="heard you")
    bob.checkin(space, text="mine too", energy=4)
    sync(space, ada, bob)
    blob = blob_of(ada, space, marker)
    town.clock.advance(2 * DAY)
    for member in (ada, bob, ada, bob):
        member.expire_due(space)
        sync(space, ada, bob)
    assert ada.replica.get(marker).expired
    cy = town.person("Cy")
    admit(ada, cy, space)  # Cy is sent the husks, never the posts
    sync(space, ada, bob, cy)
    for member in (ada, bob, cy):
        assert member.replica.pending_count(space) == 0
        assert member.replica.frontier(space) == ada.replica.frontier(space)
        assert blob not in home_bytes(member)
        assert b"MARKER-retention" not in home_bytes(member)
    held = cy.replica.get(marker)
    assert held is not None
    assert held.expired
    assert marker in cy.view(space).opened.expired
    assert cy.view(space).is_member
    assert {r.reason for r in cy.replica.rejects(space_id=space)} == set()


def test_a_backup_holding_husks_restores_whole(town: Town, tmp_path: Path) -> None:
    space, ada, bob = daily_crew(town, keep_checkins=1)
    marker = ada.checkin(space, text="MARKER-retention-backup", energy=3)
    ada.checkin(space, text="and again", energy=3)
    sync(space, ada, bob)
    blob = blob_of(ada, space, marker)
    town.clock.advance(2 * DAY)
    for member in (ada, bob, ada, bob):
        member.expire_due(space)
        sync(space, ada, bob)
    target = tmp_path / "ada.mcb"
    identity.save(ada.identity, ada.replica.home.key_file)  # as `meshcrew init` leaves it
    back_up(ada.replica.home, target, ada.identity, b"river stones",
            cost=KdfCost(MIN_OPSLIMIT, MIN_MEMLIMIT), now_ms=town.clock.now)
    fresh = Home(tmp_path / "restored")
    report = restore(fresh, target, b"river stones", key_passphrase=None, now_ms=town.clock.now)
    assert (report.pending, report.rejected) == (0, ())
    assert report.accepted == report.records
    with Replica.open(fresh, read_only=True) as restored:
        assert restored.frontier(space) == ada.replica.frontier(space)
        held = restored.get(marker)
        assert held is not None
        assert held.expired
    files = b"".join(p.read_bytes() for p in sorted(fresh.path.rglob("*")) if p.is_file())
    assert blob not in files
    assert b"MARKER-retention" not in files


def test_a_leaving_member_may_take_their_posts_with_them(town: Town) -> None:
    ada, bob, cy = town.person("Ada"), town.person("Bob"), town.person("Cy")
    space = ada.create_space("Moon", rhythm=Rhythm(Period.DAILY))  # kept forever
    admit(ada, bob, space)
    admit(ada, cy, space)
    sync(space, ada, bob, cy)
    bobs = bob.checkin(space, text="BOB-LEAVING-a91", energy=2)
    cys = cy.checkin(space, text="CY-STAYING-a91", energy=4)
    sync(space, ada, bob, cy)
    answer = ada.reply(bobs, text="ADA-ANSWERS-a91")
    sync(space, ada, bob, cy)
    bob_blob = blob_of(ada, space, bobs)
    bob.leave(space, expire_posts=True)  # Bob's own node deletes them at once
    assert bob.replica.get(bobs).expired  # type: ignore[union-attr]
    cy.leave(space)  # the default: Cy's posts stay
    sync(space, ada, bob, cy)
    for member in (ada, bob, cy, ada, bob, cy):  # Ada's reply was her newest record
        member.expire_due(space)
        sync(space, ada, bob, cy)
    for member in (ada, bob, cy):
        on_disk = home_bytes(member)
        assert bob_blob not in on_disk
        assert bobs in member.view(space).opened.expired
        assert answer in member.view(space).opened.expired  # a reply goes with its post
        assert "BOB-LEAVING-a91" not in texts(member, space)
    assert {"CY-STAYING-a91", "Bob", "Cy"} <= texts_and_names(ada, space)
    assert cys not in ada.view(space).opened.expired


def test_a_leave_says_whether_the_posts_go_and_old_nodes_read_it_alike() -> None:
    assert encode_body(LeaveBody()) == encode_body(LeaveBody(expire_posts=False))
    assert parse_body(RecordKind.LEAVE, encode_body(LeaveBody())) == LeaveBody()  # unchanged
    taken = encode_body(LeaveBody(expire_posts=True))
    assert parse_body(RecordKind.LEAVE, taken) == LeaveBody(expire_posts=True)
    # Only true asks for the expiry: an older release ignores the field, so anything else is
    # read as "stay" (not refused), or the two would disagree on whether the leave counts.
    for odd in (1, None, "yes", [True]):
        assert parse_body(RecordKind.LEAVE, msgpack.packb({"x": odd})) == LeaveBody()


def texts_and_names(member: Member, space: bytes) -> set[str]:
    return texts(member, space) | {str(p.fields.get("name")) for p in member.log(space)}


def test_replies_go_with_the_checkin_and_posts_follow_their_own_setting(town: Town) -> None:
    space, ada, bob = daily_crew(town, keep_checkins=2, keep_posts=5)
    checkin = ada.checkin(space, text="arriving tired", energy=2)
    sync(space, ada, bob)
    reply = bob.reply(checkin, text="with you")
    ask = bob.post(space, Ask("Lift on Friday?"))
    sync(space, ada, bob)
    view = ada.view(space)
    heads = {h.id for h in ada.replica.frontier(space).values()}
    meta = view.meta
    assert meta is not None
    now = ada.now()
    assert expiry(view.opened, meta, now, heads).due == frozenset()
    found = expiry(view.opened, meta, now + 2 * DAY, heads)
    assert found.due == {reply}  # it goes with the check-in, before its own time
    assert found.waiting == {checkin}  # Ada's newest record: whole until she writes again
    assert ask not in found.due | found.waiting
    later = expiry(view.opened, meta, now + 6 * DAY, heads)
    assert ask in later.due | later.waiting
    assert later.next_ms is None


def test_retention_changes_by_consent_and_shortening_it_expires_old_posts(town: Town) -> None:
    space, ada, bob = daily_crew(town, keep_checkins=0)
    old = ada.checkin(space, text="long ago", energy=4)
    ada.checkin(space, text="recently", energy=4)
    sync(space, ada, bob)
    town.clock.advance(3 * DAY)
    assert ada.expire_due(space).due == frozenset()  # forever
    pid = ada.propose(space, title="Keep a week", change=SettingsChange(keep_checkins=1))
    sync(space, ada, bob)
    bob.answer(pid, position="consent")
    sync(space, ada, bob)
    assert bob.settings(space).keep_checkins == 1
    assert old in bob.expire_due(space).due
    assert bob.replica.get(old).expired


def test_a_husk_is_no_signed_record_but_is_checked_as_a_husk() -> None:
    record = sign_record(SigningKey(bytes(32)), kind=RecordKind.SEALED, space=b"s" * 32, seq=2,
                         prev=bytes(range(32)), ts=1, body=b"secret")
    husk = encode_husk(record, b"stub")
    assert b"secret" not in husk
    assert record.id in husk
    with pytest.raises(RecordError) as refused:
        decode_and_verify(husk)
    assert refused.value.reason is Reason.UNKNOWN_VERSION  # an older node: no points lost
    assert decode_and_check_husk(husk).id == record.id  # the chain rules decide on it
