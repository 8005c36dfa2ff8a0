"""Editing a space through the member service: a passed proposal renames a crew (carried out by
whoever's answer made it pass), a change without one is refused before anything is signed, a
congregation edits freely until it decides otherwise, and a joiner who cannot read the history
still sees the current settings."""

from __future__ import annotations

import pytest

from meshcrew.errors import SpaceError
from meshcrew.spaces import Answer, Period, Position, Rhythm, SettingsChange
from meshcrew.spaces.posts import PostKind
from test_service_support import DAY, Town, admit, crew_of, sync


def test_a_passed_proposal_renames_the_crew(town: Town) -> None:
    space, (ada, bob, cy) = crew_of(town, "Ada", "Bob", "Cy")
    change = SettingsChange(name="Thursday crew", rhythm=Rhythm(Period.WEEKLY, 3))
    pid = ada.propose(space, title="Meet on Thursdays", change=change)
    sync(space, ada, bob, cy)
    assert bob.proposal(pid).change == {"name": "Thursday crew", "rhythm": "weekly:thu+00:00"}
    bob.answer(pid, position="consent")
    sync(space, ada, bob, cy)
    cy.answer(pid, position="consent")  # this makes it pass: Cy's node makes the change
    sync(space, ada, bob, cy)
    for member in (ada, bob, cy):
        assert member.summary(space).name == "Thursday crew"
        assert member.settings(space).rhythm == "weekly:thu+00:00"
        assert member.proposal(pid).carried_out
        [entry] = member.settings_history(space)
        assert (entry.author_name, entry.by, entry.by_title) == ("Cy", pid, "Meet on Thursdays")
        assert entry.change == {"name": "Thursday crew", "rhythm": "weekly:thu+00:00"}
    with pytest.raises(SpaceError, match="made already"):
        ada.change_settings(space, by=pid)


def test_a_change_without_consent_is_refused_before_signing(town: Town) -> None:
    space, (ada, bob) = crew_of(town, "Ada", "Bob")
    held = len(ada.export(space))
    with pytest.raises(SpaceError, match="by consent"):
        ada.change_settings(space, SettingsChange(name="Mine now"))
    pid = ada.propose(space, title="Rename", change=SettingsChange(name="Moonrise"))
    with pytest.raises(SpaceError, match="has not passed"):
        ada.change_settings(space, by=pid)
    assert len(ada.export(space)) == held + 1  # the proposal only
    assert ada.summary(space).name == "Moon"
    assert ada.settings(space).edit_by_proposal  # a crew: always by consent
    sync(space, ada, bob)


def test_a_proposal_that_passes_at_its_deadline_is_carried_out_on_request(town: Town) -> None:
    ada, bob, cy = (town.person(n) for n in ("Ada", "Bob", "Cy"))
    space = ada.create_space("Moon", quorum=60)
    admit(ada, bob, space)
    admit(ada, cy, space)
    sync(space, ada, bob, cy)
    pid = ada.propose(space, title="Quorum of half", change=SettingsChange(quorum=50),
                      deadline_ms=town.clock.now + DAY)
    sync(space, ada, bob, cy)
    bob.answer(pid, position="consent")  # 2 of 3 by the deadline: passes with a quorum of 60%
    sync(space, ada, bob, cy)
    assert ada.proposal(pid).status == "open"
    town.clock.advance(2 * DAY)
    assert ada.proposal(pid).status == "passed"
    ada.change_settings(space, by=pid)
    sync(space, ada, bob, cy)
    assert {m.settings(space).quorum for m in (ada, bob, cy)} == {50}


def test_a_congregation_edits_freely_until_it_decides_otherwise(town: Town) -> None:
    ada, bob = town.person("Ada"), town.person("Bob")
    hall = ada.create_space("Hall", kind="congregation")
    admit(ada, bob, hall)
    bob.change_settings(hall, SettingsChange(purpose="neighbours who grow food"))
    bob.change_settings(hall, SettingsChange(edit_by_proposal=True))
    sync(hall, ada, bob)
    assert ada.settings(hall).purpose == "neighbours who grow food"
    with pytest.raises(SpaceError, match="by consent"):
        ada.change_settings(hall, SettingsChange(name="Our hall"))
    assert [e.change for e in ada.settings_history(hall)] == [
        {"purpose": "neighbours who grow food"}, {"edit_by_proposal": True}]


def test_a_joiner_without_history_sees_the_current_settings(town: Town) -> None:
    space, (ada, bob, cy) = crew_of(town, "Ada", "Bob", "Cy", history=False)
    pid = ada.propose(space, title="Rename", change=SettingsChange(name="Sun"))
    sync(space, ada, bob, cy)
    bob.answer(pid, position="consent")
    sync(space, ada, bob, cy)
    cy.answer(pid, position="consent")
    sync(space, ada, bob, cy)
    assert ada.summary(space).name == "Sun"
    dee = town.person("Dee")
    admit(ada, dee, space)
    assert pid in dee.view(space).opened.locked  # Dee cannot read the proposal...
    assert dee.summary(space).name == "Sun"  # ...but sees its outcome
    # A later change, naming a proposal Dee can read, applies for Dee too.
    sync(space, ada, bob, cy, dee)
    later = bob.propose(space, title="Purpose", change=SettingsChange(purpose="sunny days"))
    sync(space, ada, bob, cy, dee)
    for member in (ada, cy, dee):
        member.answer(later, position="consent")
        sync(space, ada, bob, cy, dee)
    assert {m.settings(space).purpose for m in (ada, bob, cy, dee)} == {"sunny days"}
    assert {m.summary(space).name for m in (ada, bob, cy, dee)} == {"Sun"}


def test_a_joiner_without_history_takes_a_change_of_a_proposal_made_before_them(
        town: Town) -> None:
    """The proposal passed before Dee joined but its change is made after: Dee cannot read
    the proposal, and takes the change on the word of the members who can."""
    space, (ada, bob, cy) = crew_of(town, "Ada", "Bob", "Cy", history=False)
    pid = ada.propose(space, title="Purpose", change=SettingsChange(purpose="sunny days"))
    sync(space, ada, bob, cy)
    bob.post(space, Answer(pid, Position.CONSENT))  # answers posted, not yet carried out
    cy.post(space, Answer(pid, Position.CONSENT))
    sync(space, bob, cy)
    dee = town.person("Dee")
    admit(ada, dee, space)  # Ada has not seen the answers: her rotation's snapshot predates it
    sync(space, ada, bob, cy, dee)  # Ada, the proposer, makes the change once she sees them
    [change] = ada.settings_history(space)
    assert change.author_name == "Ada"
    assert pid in dee.view(space).opened.locked
    assert {m.settings(space).purpose for m in (ada, bob, cy, dee)} == {"sunny days"}


def test_a_passed_change_is_carried_out_once_whoever_joins_after(town: Town) -> None:
    """In a space without history, the rotation that lets a joiner in carries the settings as
    they are; the members who hold the genesis key still read the settings from the genesis on,
    so they see the change as carried out and nobody posts it again."""
    space, (ada, bob, cy) = crew_of(town, "Ada", "Bob", "Cy", history=False)
    pid = ada.propose(space, title="Rename", change=SettingsChange(name="Sun"))
    sync(space, ada, bob, cy)
    bob.answer(pid, position="consent")
    sync(space, ada, bob, cy)
    cy.answer(pid, position="consent")
    sync(space, ada, bob, cy)
    dee = town.person("Dee")
    admit(ada, dee, space)
    sync(space, ada, bob, cy, dee)
    for member in (ada, bob, cy):
        assert len(member.view(space).opened.of_kind(PostKind.SETTINGS)) == 1
    assert {m.summary(space).name for m in (ada, bob, cy, dee)} == {"Sun"}


def test_a_proposal_that_passes_as_it_is_made_is_carried_out_at_once(town: Town) -> None:
    """In a space of one (everyone has answered: the proposer's proposal is their consent) the
    change was left unmade, since nothing else would arrive to make it."""
    ada = town.person("Ada")
    space = ada.create_space("Moon")
    pid = ada.propose(space, title="Keep less", change=SettingsChange(keep_checkins=2))
    assert ada.proposal(pid).status == "passed"
    assert ada.proposal(pid).carried_out
    assert ada.settings(space).keep_checkins == 2
