"""The member service: leaving, removal by consent, refused records, joins that cannot happen.

Confidentiality after a departure is checked the hard way: the departed member's own replica
and keys are used to try to decrypt what was written after they left.
"""

from __future__ import annotations

import pytest

from meshcrew.crypto import decrypt
from meshcrew.errors import DecryptError, InviteCodeError, SpaceError
from meshcrew.records import sign_record
from meshcrew.spaces import RecordKind
from meshcrew.spaces.bodies import LeaveBody, SealedBody, draft, parse_body
from meshcrew.spaces.sealing import post_ad
from test_service_support import WEEK, Town, crew_of, logs, send, sync


def test_after_leaving_the_keys_rotate_and_the_leaver_cannot_read_on(town: Town) -> None:
    space, (ada, bob, cy) = crew_of(town, "Ada", "Bob", "Cy")
    before = ada.checkin(space, text="before Cy left", energy=3)
    sync(space, ada, bob, cy)
    cy.leave(space)
    sync(space, ada, bob, cy)
    assert cy.summary(space).my_status == "left"
    assert ada.view(space).state.needs_rekey
    with pytest.raises(SpaceError, match="You have left"):
        cy.checkin(space, text="still here?", energy=3)

    after = ada.checkin(space, text="after Cy left", energy=3)  # rotates first
    send(ada, bob, space)
    bob.reply(after, text="yes")
    sync(space, ada, bob, cy)
    assert not ada.view(space).state.needs_rekey
    assert logs(space, ada) == logs(space, bob)
    cy_texts = [e.fields.get("text") for e in cy.log(space)]
    assert "before Cy left" in cy_texts
    assert "after Cy left" not in cy_texts
    assert "yes" not in cy_texts
    assert before in cy.view(space).posts_by_id
    assert after in cy.view(space).opened.locked

    # Cy's replica holds the records; every key Cy holds fails to open them.
    view = cy.view(space)
    new_posts = [view.state.records[after], view.state.records[ada.log(space)[-1].id]]
    for record in new_posts:
        body = parse_body(record.kind, record.body)
        assert isinstance(body, SealedBody)
        assert body.epoch not in view.keyring.epoch_keys
        for key in [*view.keyring.epoch_keys.values(), view.keyring.meta_key]:
            assert key is not None
            with pytest.raises(DecryptError):
                decrypt(key, body.blob, post_ad(space, record.author, body.epoch))
    assert [m.status for m in ada.members(space) if m.name == "Cy"] == ["left"]


def test_removal_takes_a_majority_of_the_others(town: Town) -> None:
    space, (ada, bob, cy, dee) = crew_of(town, "Ada", "Bob", "Cy", "Dee")
    proposal = ada.propose_removal(space, dee.me)
    sync(space, ada, bob, cy, dee)
    [removal] = bob.removals(space)
    assert (removal.id, removal.member_name, removal.needed, removal.electorate) == (
        proposal, "Dee", 2, 3)
    assert removal.consents == (ada.me,)
    assert not removal.effective
    assert dee.summary(space).my_status == "active", "one consent of three is not enough"
    with pytest.raises(SpaceError, match="own removal"):
        dee.consent(space, proposal)
    with pytest.raises(SpaceError, match="already consented"):
        ada.consent(space, proposal)

    # Dee writes before hearing of the consent that removes them: refused by everyone after.
    late = dee.checkin(space, text="did I miss something?", energy=3)
    bob.consent(space, proposal)
    assert bob.removals(space)[0].effective
    sync(space, ada, bob, cy, dee)
    for member in (ada, bob, cy, dee):
        assert [m.status for m in member.members(space) if m.name == "Dee"] == ["removed"]
        assert late not in member.view(space).posts_by_id
    refused = {r.record_id: r for r in ada.rejected(space)}
    assert refused[late].reason == "removed_member"
    assert refused[late].source == "space"
    assert dee.summary(space).my_status == "removed"
    with pytest.raises(SpaceError, match="already taken effect"):
        cy.consent(space, proposal)
    cy.checkin(space, text="carrying on", energy=4)  # rotates the keys without Dee
    sync(space, ada, bob, cy, dee)
    assert "carrying on" not in [e.fields.get("text") for e in dee.log(space)]


def test_rejected_lists_store_and_space_refusals_with_reasons(town: Town) -> None:
    space, (ada, bob) = crew_of(town, "Ada", "Bob")
    bob.leave(space)
    send(bob, ada, space)
    # A departed member's further record is refused by the space rules, on every replica.
    head = bob.replica.frontier(space)[bob.me]
    stray = sign_record(bob.identity.signing_key, kind=RecordKind.LEAVE, space=space,
                        seq=head.seq + 1, prev=head.id, ts=bob.now(),
                        body=draft(LeaveBody()).body)
    # And a record with a broken signature is refused by the replica itself.
    damaged = bytearray(ada.export(space)[-1])
    damaged[-1] ^= 1
    report = ada.ingest([stray.raw, bytes(damaged)], sender="peer-x")
    assert [r.reason for r in report.refused] == ["not_member"]
    assert [r.reason for r in report.rejected] == ["bad_signature"]

    rows = ada.rejected()
    by_reason = {r.reason: r for r in rows}
    assert by_reason["not_member"].record_id == stray.id
    assert by_reason["not_member"].author == bob.me
    assert by_reason["not_member"].sentence.startswith("The author is not a member")
    assert by_reason["bad_signature"].sender == "peer-x"
    assert by_reason["bad_signature"].source == "store"
    assert by_reason["bad_signature"].space is None  # its claimed space is not trusted
    assert all(r.to_json()["reason"] == r.reason for r in rows)
    # A chain refusal names its space and author, so it is listed with the space's refusals.
    back_dated = sign_record(bob.identity.signing_key, kind=RecordKind.LEAVE, space=space,
                             seq=stray.seq + 1, prev=stray.id, ts=stray.ts - 1,
                             body=draft(LeaveBody()).body)
    assert [r.reason for r in ada.ingest([back_dated.raw], sender="peer-y").rejected] == [
        "time_travel"]
    in_space = {r.reason: r for r in ada.rejected(space)}
    assert set(in_space) == {"not_member", "time_travel"}
    travel = in_space["time_travel"]
    assert (travel.space, travel.author, travel.sender, travel.source) == (
        space, bob.me, "peer-y", "store")


def test_joins_that_cannot_happen_say_why(town: Town) -> None:
    ada, bob, cy = town.person("Ada"), town.person("Bob"), town.person("Cy")
    space = ada.create_space("Moon")
    code = ada.invite(space, expires_ms=ada.now() + WEEK)
    damaged = code[:20] + ("a" if code[20] != "a" else "b") + code[21:]
    with pytest.raises(InviteCodeError, match="This code is damaged"):
        bob.join(damaged)
    with pytest.raises(InviteCodeError, match="not a meshcrew invite code"):
        bob.join("hello")
    with pytest.raises(SpaceError, match="import the inviter's export first"):
        bob.join(code)
    with pytest.raises(SpaceError, match="already a member"):
        ada.join(code)
    admit_code = ada.invite(space, expires_ms=ada.now() + 60_000)
    town.clock.advance(WEEK)
    send(ada, cy, space)
    with pytest.raises(SpaceError, match="expired"):
        cy.join(admit_code)
    assert cy.replica.frontier(space).get(cy.me) is None, "nothing was signed"

    later = ada.invite(space, expires_ms=ada.now() + WEEK)
    with pytest.raises(SpaceError, match="not among the records"):
        cy.join(later)  # Cy's copy predates this invite
    send(ada, cy, space)
    cy.join(later)


def test_a_joiner_whose_inviter_left_gets_keys_from_the_member_with_lowest_key(
        town: Town) -> None:
    space, (ada, bob, cy) = crew_of(town, "Ada", "Bob", "Cy")
    dee = town.person("Dee")
    code = bob.invite(space, expires_ms=bob.now() + WEEK)
    send(bob, dee, space)
    bob.leave(space)
    dee.join(code)
    send(bob, ada, space)
    send(bob, cy, space)
    reports = {m.identity.name: m.ingest(dee.export(space), sender="dee") for m in (ada, cy)}
    rotated = sorted(name for name, report in reports.items() if report.rotated)
    assert rotated == [min(("Ada", ada.me), ("Cy", cy.me), key=lambda p: p[1])[0]]
    sync(space, ada, cy, dee)
    assert dee.summary(space).name == "Moon"
    dee.checkin(space, text="made it", energy=4)
    sync(space, ada, cy, dee)
    assert logs(space, ada) == logs(space, cy) == logs(space, dee)


def test_the_inviter_rotates_once_for_many_joiners(town: Town) -> None:
    ada = town.person("Ada")
    space = ada.create_space("Hall", kind="congregation")
    code = ada.invite(space, uses=5, expires_ms=ada.now() + WEEK)
    joiners = [town.person(f"P{i}") for i in range(5)]
    for joiner in joiners:
        send(ada, joiner, space)
        joiner.join(code)
    records = [raw for joiner in joiners for raw in joiner.export(space)]
    report = ada.ingest(records, sender="file")
    assert report.rotated == (space,)
    keys = [e for e in ada.log(space, events=True) if e.kind == "keys"]
    assert [k.fields["recipients"] for k in keys] == [6]
    sync(space, ada, *joiners)
    assert all(not j.summary(space).waiting_for_keys for j in joiners)
    assert len({m.name for m in ada.members(space)}) == 6
