"""Invites through the member service: revoking one, listing them, and a join that reaches the
inviter only after the invite expired (backdated or just late), which no one lets in."""

from __future__ import annotations

import pytest

from meshcrew.errors import SpaceError, UnknownName
from meshcrew.reasons import Reason
from test_service_support import HOUR, WEEK, Town, admit, crew_of, send, sync


def test_a_revoked_invite_is_refused_by_a_node_that_had_it_before(town: Town) -> None:
    space, (ada, bob) = crew_of(town, "Ada", "Bob")
    cy = town.person("Cy")
    code = ada.invite(space, expires_ms=ada.now() + WEEK)
    send(ada, cy, space)  # Cy's replica holds the invite, as a node that saw it would
    sync(space, ada, bob)
    [entry] = [i for i in bob.invites(space) if i.open]
    assert (entry.inviter_name, entry.uses, entry.used) == ("Ada", 1, 0)
    assert bob.resolve_invite(code) == (space, entry.id)
    assert bob.resolve_invite(entry.id.hex()[:8]) == (space, entry.id)
    bob.revoke_invite(space, entry.id)  # any member may
    sync(space, ada, bob)
    with pytest.raises(SpaceError, match="revoked already"):
        ada.revoke_invite(space, entry.id)
    # Cy, not having seen the revocation, joins; every member's replica refuses it.
    cy.join(code)
    sync(space, ada, bob, cy)
    for member in (ada, bob):
        refused = {r.record_id: r.reason for r in member.rejected(space)}
        assert Reason.INVITE_REVOKED.value in refused.values()
        assert [m.name for m in member.members(space)] == ["Ada", "Bob"]
    assert cy.summary(space).my_status == "outsider"
    dee = town.person("Dee")
    send(ada, dee, space)
    with pytest.raises(SpaceError, match="no longer admits anyone: a member revoked it"):
        dee.join(code)
    revoked = next(i for i in ada.invites(space) if i.id == entry.id)
    assert (revoked.revoked, revoked.open) == (True, False)
    with pytest.raises(UnknownName):
        ada.resolve_invite("abcd1234")


def test_a_join_that_reaches_the_inviter_after_the_expiry_is_not_let_in(town: Town) -> None:
    space, (ada, bob) = crew_of(town, "Ada", "Bob")
    cy = town.person("Cy")
    code = ada.invite(space, expires_ms=ada.now() + HOUR)
    send(ada, cy, space)
    cy.join(code)  # in time, by Cy's clock; but Ada is away
    assert cy.summary(space).waiting_for_keys
    with pytest.raises(SpaceError, match="not been let in"):
        cy.checkin(space, text="hello?", energy=3)
    town.clock.advance(2 * HOUR)
    report = ada.ingest(cy.export(space), sender="Cy")  # Ada rotates: her clock is past it
    assert space in report.rotated
    sync(space, ada, bob, cy)
    for member in (ada, bob, cy):
        refused = {r.record_id: r for r in member.rejected(space)}
        assert [r.reason for r in refused.values()] == [Reason.INVITE_EXPIRED.value]
        assert {m.key for m in member.members(space)} == {ada.me, bob.me}
        assert not member.view(space).state.needs_rekey
    summary = cy.summary(space)
    assert (summary.my_status, summary.waiting_for_keys) == ("outsider", False)
    # With a new invite, in time, Cy is let in as usual.
    admit(ada, cy, space)
    assert cy.summary(space).my_status == "active"
    assert not cy.summary(space).waiting_for_keys
