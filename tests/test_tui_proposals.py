"""Journeys: a proposal from the app — propose it, see who answered what, object with a reason,
consent, amend, withdraw — on real replicas, under asyncio (see test_tui_support)."""

from __future__ import annotations

from textual.pilot import Pilot
from textual.widgets import Input

from meshcrew.tui.app import MeshcrewApp
from meshcrew.tui.screens.forms import ConfirmScreen, FieldsScreen, PromptScreen
from meshcrew.tui.screens.proposals import ProposalScreen, ProposalsScreen
from meshcrew.tui.screens.settings import SettingsScreen
from meshcrew.tui.screens.space import SpaceScreen
from test_tui_support import (
    DAY,
    Town,
    crew_of,
    drive,
    make_app,
    sync,
    table_rows,
    until,
    words,
)


def notices(app: MeshcrewApp) -> str:
    """The text of the notices the app shows now (Textual keeps them in ``_notifications``)."""
    return "\n".join(n.message for n in app._notifications)


async def into_proposals(pilot: Pilot[None]) -> None:
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(pilot.app.screen, SpaceScreen), "the crew")
    await pilot.press("p")
    await until(pilot, lambda: isinstance(pilot.app.screen, ProposalsScreen), "the proposals")


def test_proposing_from_the_app_and_seeing_the_answers_arrive(town: Town) -> None:
    space_id, (ada, bo, cy) = crew_of(town, "Ada", "Bo", "Cy")
    app = make_app(ada)

    async def script(pilot: Pilot[None]) -> None:
        await into_proposals(pilot)
        assert "No proposals yet" in words(app)
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, FieldsScreen), "the form")
        app.screen.query_one("#field-title", Input).value = "Meet on Thursdays"
        app.screen.query_one("#field-text", Input).value = "Tuesdays clash with the choir"
        days = app.screen.query_one("#field-days", Input)
        days.value = "soo"
        days.focus()
        await pilot.press("enter")
        await until(pilot, lambda: "whole number of days" in words(app), "the refusal")
        days.value = "10"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ProposalsScreen), "the list again")
        await until(pilot, lambda: table_rows(app, "proposals") != [], "the proposal listed")
        [row] = table_rows(app, "proposals")
        assert row[:4] == ["open", "Meet on Thursdays", "Ada", "1 of 3"]
        # Bo and Cy answer on their laptops; the records arrive.
        sync(space_id, ada, bo, cy)
        [entry] = bo.proposals(space_id)
        bo.answer(entry.id, position="consent")
        cy.answer(entry.id, position="object", reason="Thursdays I teach until seven")
        sync(space_id, ada, bo, cy)
        await until(pilot, lambda: table_rows(app, "proposals")[0][0] == "blocked",
                    "the objection")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ProposalScreen), "the proposal")
        text = words(app)
        assert "Blocked while the objection stands: Cy objects." in text
        rows = {r[0]: r[1:3] for r in table_rows(app, "answers")}
        assert rows["Ada (you)"][0] == "proposed it (consents)"
        assert rows["Bo"][0] == "consents"
        assert rows["Cy"] == ["objects", "Thursdays I teach until seven"]
        # Ada amends a minute later; the earlier answers are marked as such.
        town.clock.tick()
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, PromptScreen), "the amend prompt")
        app.screen.query_one("#prompt", Input).value = "Thursdays at eight, so Cy can come"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ProposalScreen), "the proposal")
        await until(pilot, lambda: any("to an earlier version" in r[1]
                                       for r in table_rows(app, "answers")), "the marks")
        # Ada cannot answer her own proposal: the refusal is shown, nothing signed.
        held = len(ada.service.export(space_id))
        await pilot.press("c")
        await until(pilot, lambda: "counts as your consent" in notices(app), "the notice")
        assert len(ada.service.export(space_id)) == held

    drive(app, script)
    [entry] = ada.proposals(space_id)
    assert (entry.title, entry.text, entry.amendments) == (
        "Meet on Thursdays", "Thursdays at eight, so Cy can come", 1)
    assert entry.deadline_ms > town.clock.now + 9 * DAY


def test_answering_with_a_reason_then_consenting_passes_it(town: Town) -> None:
    space_id, (ada, bo, cy) = crew_of(town, "Ada", "Bo", "Cy")
    pid = bo.propose(space_id, title="Buy a kettle for the hall")
    sync(space_id, ada, bo, cy)
    cy.answer(pid, position="consent")
    sync(space_id, ada, bo, cy)
    app = make_app(ada)

    async def script(pilot: Pilot[None]) -> None:
        await into_proposals(pilot)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ProposalScreen), "the proposal")
        assert "waiting for Ada" in words(app)
        await pilot.press("o")
        await until(pilot, lambda: isinstance(app.screen, PromptScreen), "the reason prompt")
        await pilot.press("enter")  # no reason: the prompt says so and stays
        await until(pilot, lambda: "Write something first" in words(app), "the hint")
        app.screen.query_one("#prompt", Input).value = "we have one already"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ProposalScreen), "the proposal")
        await until(pilot, lambda: "Blocked" in words(app), "blocked")
        await pilot.press("c")
        await until(pilot, lambda: "Passed: everyone answered" in words(app), "passed")
        assert [r[1] for r in table_rows(app, "answers") if r[0] == "Ada (you)"] == ["consents"]

    drive(app, script)
    assert ada.proposal(pid).status == "passed"


def test_withdrawing_asks_first(town: Town) -> None:
    space_id, (ada, _bo) = crew_of(town, "Ada", "Bo")
    pid = ada.propose(space_id, title="Rename the crew")
    app = make_app(ada)

    async def script(pilot: Pilot[None]) -> None:
        await into_proposals(pilot)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ProposalScreen), "the proposal")
        await pilot.press("w")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the dialog")
        assert "no one can answer it any more" in words(app)
        await pilot.click("#confirm")
        await until(pilot, lambda: "Withdrawn" in words(app), "withdrawn")

    drive(app, script)
    assert ada.proposal(pid).status == "withdrawn"


def test_a_settings_change_proposed_from_the_app_and_its_history(town: Town) -> None:
    space_id, (ada, bo, cy) = crew_of(town, "Ada", "Bo", "Cy")
    app = make_app(ada)

    async def script(pilot: Pilot[None]) -> None:
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, SpaceScreen), "the crew")
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, SettingsScreen), "the settings")
        assert "Tuesday crew" in words(app)
        assert "by a proposal that passed" in words(app)
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, FieldsScreen), "the form")
        app.screen.query_one("#field-title", Input).value = "Meet on Thursdays"
        change = app.screen.query_one("#field-change", Input)
        change.value = "colour=red"
        change.focus()
        await pilot.press("enter")
        await until(pilot, lambda: "not a setting to change" in words(app), "the refusal")
        change.value = "name=Thursday crew; rhythm=weekly:thu"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, SettingsScreen), "the settings")
        sync(space_id, ada, bo, cy)
        [entry] = bo.proposals(space_id)
        assert entry.change == {"name": "Thursday crew", "rhythm": "weekly:thu+00:00"}
        town.clock.tick()
        bo.answer(entry.id, position="consent")
        cy.answer(entry.id, position="consent")
        sync(space_id, ada, bo, cy)  # Ada's node sees it passed and makes the change
        await until(pilot, lambda: "Thursday crew" in str(table_rows(app, "settings-history")),
                    "the change in the history")
        [row] = table_rows(app, "settings-history")
        assert row[1:] == ["Ada", "name → Thursday crew, rhythm → weekly:thu+00:00",
                           "Meet on Thursdays"]
        assert "Thursday crew" in words(app)

    drive(app, script)
    assert {m.summary(space_id).name for m in (ada, bo, cy)} == {"Thursday crew"}
