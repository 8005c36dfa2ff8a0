"""The member service's proposals: propose, answer, amend, withdraw, and what each member reads,
on real replicas that exchange records as files would. Bad input is refused before anything is
signed, and a refused answer someone forges anyway changes nothing."""

from __future__ import annotations

import pytest

from meshcrew.errors import InputError, SpaceError, UnknownName
from meshcrew.reasons import Reason
from meshcrew.spaces import Answer, Position
from test_service_support import DAY, WEEK, Town, crew_of, sync


def test_a_proposal_passes_when_everyone_has_answered_without_objection(town: Town) -> None:
    space, (ada, bob, cy) = crew_of(town, "Ada", "Bob", "Cy")
    pid = ada.propose(space, title="Meet on Thursdays", text="Tuesdays no longer work for me")
    sync(space, ada, bob, cy)
    [entry] = bob.proposals(space)
    assert (entry.title, entry.proposer_name, entry.status) == ("Meet on Thursdays", "Ada",
                                                                "open")
    assert [w.name for w in entry.waiting] == ["Bob", "Cy"]
    # The default deadline: the end of the next weekly cycle (the crew checks in on Mondays).
    cycle = bob.cycle(space)
    assert entry.deadline_ms == cycle.end_ms + WEEK
    bob.answer(pid, position="consent")
    cy.answer(pid, position=Position.STAND_ASIDE, reason="I will be away that month")
    sync(space, ada, bob, cy)
    for member in (ada, bob, cy):
        [entry] = member.proposals(space)
        assert entry.status == "passed"
        assert entry.decided
        assert {(a.name, a.position, a.reason) for a in entry.answers} == {
            ("Bob", "consent", ""), ("Cy", "stand_aside", "I will be away that month")}
    assert ada.proposal(pid).to_json()["status"] == "passed"


def test_bad_input_is_refused_before_anything_is_signed(town: Town) -> None:
    space, (ada, bob, cy) = crew_of(town, "Ada", "Bob", "Cy")
    pid = ada.propose(space, title="Meet on Thursdays", deadline_ms=town.clock.now + DAY)
    checkin = bob.checkin(space, text="arriving", energy=3)
    sync(space, ada, bob, cy)
    records = len(bob.export(space))
    with pytest.raises(UnknownName, match="not a proposal"):
        bob.answer(checkin, position="consent")
    with pytest.raises(UnknownName, match="No proposal"):
        bob.answer(b"\x09" * 32, position="consent")
    with pytest.raises(InputError, match="say why"):
        bob.answer(pid, position="object")
    with pytest.raises(InputError, match="not an answer"):
        bob.answer(pid, position="maybe")
    with pytest.raises(SpaceError, match="counts as your consent"):
        ada.answer(pid, position="object", reason="changed my mind")
    with pytest.raises(SpaceError, match=Reason.NOT_PROPOSER.sentence):
        bob.amend_proposal(pid, text="Fridays")
    with pytest.raises(SpaceError, match=Reason.NOT_PROPOSER.sentence):
        bob.withdraw_proposal(pid)
    with pytest.raises(InputError, match="deadline has passed"):
        ada.propose(space, title="Yesterday", deadline_ms=town.clock.now - 1)
    assert len(bob.export(space)) == records
    town.clock.advance(2 * DAY)
    with pytest.raises(SpaceError, match="reached its deadline"):
        cy.answer(pid, position="consent")
    assert len(cy.export(space)) == records
    [entry] = cy.proposals(space)
    assert entry.status == "expired"


def test_a_forged_answer_is_refused_with_its_reason_and_changes_nothing(town: Town) -> None:
    """A modified client posts what the service refuses: every member refuses it alike."""
    space, (ada, bob, cy) = crew_of(town, "Ada", "Bob", "Cy")
    pid = ada.propose(space, title="Buy a kettle")
    checkin = cy.checkin(space, text="arriving", energy=4)
    sync(space, ada, bob, cy)
    before = [e.to_json() for e in cy.proposals(space)]
    forged = bob.post(space, Answer(checkin, Position.OBJECT, "no kettles"))
    own = ada.post(space, Answer(pid, Position.OBJECT, "second thoughts"))
    sync(space, ada, bob, cy)
    for member in (ada, bob, cy):
        assert [e.to_json() for e in member.proposals(space)] == before
        refused = {r.record_id: r for r in member.rejected(space)}
        assert refused[forged].reason == Reason.PROPOSAL_UNKNOWN.value
        assert refused[forged].source == "post"
        assert refused[own].reason == Reason.NOT_ALLOWED.value


def test_an_objection_blocks_amending_answers_it_and_answers_show_the_version(
        town: Town) -> None:
    space, (ada, bob, cy) = crew_of(town, "Ada", "Bob", "Cy")
    pid = ada.propose(space, title="Meet on Thursdays")
    sync(space, ada, bob, cy)
    bob.answer(pid, position="consent")
    cy.answer(pid, position="object", reason="Thursdays I teach until 7")
    sync(space, ada, bob, cy)
    assert ada.proposal(pid).status == "blocked"
    ada.amend_proposal(pid, title="Meet on Thursdays at 8")
    sync(space, ada, bob, cy)
    entry = cy.proposal(pid)
    assert (entry.title, entry.amendments) == ("Meet on Thursdays at 8", 1)
    assert all(a.before_amendment for a in entry.answers)
    cy.answer(pid, position="consent")
    sync(space, ada, bob, cy)
    entry = ada.proposal(pid)
    assert entry.status == "passed"
    assert {a.name: a.before_amendment for a in entry.answers} == {"Bob": True, "Cy": False}
    with pytest.raises(SpaceError, match="closed"):
        bob.answer(pid, position="object", reason="too late")


def test_withdrawing_closes_it(town: Town) -> None:
    space, (ada, bob) = crew_of(town, "Ada", "Bob")
    pid = ada.propose(space, title="Rename the crew")
    ada.withdraw_proposal(pid, note="we will talk first")
    sync(space, ada, bob)
    assert bob.proposal(pid).status == "withdrawn"
    with pytest.raises(SpaceError, match="closed"):
        bob.answer(pid, position="consent")
