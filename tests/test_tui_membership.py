"""Journeys: leave, propose a removal, consent to one — each behind a dialog that says what
will happen before anything is signed."""

from __future__ import annotations

from textual.pilot import Pilot
from textual.widgets import OptionList

from meshcrew.tui.screens.forms import ConfirmScreen
from meshcrew.tui.screens.home import HomeScreen
from meshcrew.tui.screens.membership import PickScreen
from meshcrew.tui.screens.space import SpaceScreen
from test_tui_support import (
    Town,
    crew_of,
    drive,
    make_app,
    screen_text,
    sync,
    until,
    words,
)


async def into_crew(pilot: Pilot[None]) -> None:
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(pilot.app.screen, SpaceScreen), "the crew")


async def pick(pilot: Pilot[None], label: str) -> None:
    """Choose the option whose label contains ``label`` in the open PickScreen."""
    await until(pilot, lambda: isinstance(pilot.app.screen, PickScreen), "the choice")
    options = pilot.app.screen.query_one("#pick", OptionList)
    index = next(i for i in range(options.option_count)
                 if label in str(options.get_option_at_index(i).prompt))
    options.highlighted = index
    await pilot.press("enter")


def test_leave_explains_then_leaves_only_when_confirmed(town: Town) -> None:
    space_id, (ada, _bo) = crew_of(town, "Ada", "Bo")
    app = make_app(ada)

    async def script(pilot: Pilot[None]) -> None:
        await into_crew(pilot)
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the dialog")
        text = words(app)
        assert "Leave Tuesday crew?" in text
        assert "rotate the key" in text
        assert "cannot read anything written after you leave" in text
        assert "You keep what is already on this laptop" in text
        await pilot.press("enter")  # the focused button is Cancel
        await until(pilot, lambda: isinstance(app.screen, SpaceScreen), "the crew again")
        assert ada.summary(space_id).my_status == "active"
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the dialog")
        await pilot.click("#confirm")
        await until(pilot, lambda: isinstance(app.screen, HomeScreen), "home")
        assert "Past spaces" in screen_text(app)

    drive(app, script)
    assert ada.summary(space_id).my_status == "left"


def test_removal_by_consent_from_proposal_to_effect(town: Town) -> None:
    space_id, (ada, bo, cy, dee) = crew_of(town, "Ada", "Bo", "Cy", "Dee")
    # Bo proposes removing Dee (his proposal is his consent); Ada sees it and consents.
    bo.propose_removal(space_id, dee.identity.public_key)
    sync(space_id, ada, bo, cy, dee)
    app = make_app(ada)

    async def script(pilot: Pilot[None]) -> None:
        await into_crew(pilot)
        assert "removal of Dee proposed: 1 of 2 consents" in words(app)
        await pilot.press("a")
        await pick(pilot, "remove Dee")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the dialog")
        text = words(app)
        assert "Consent to removing Dee?" in text
        assert "Your consent makes it take effect (2 of 2 needed)" in text
        assert "the key rotates" in text
        await pilot.click("#confirm")
        await until(pilot, lambda: isinstance(app.screen, SpaceScreen), "the crew again")
        await until(pilot, lambda: "removed" in screen_text(app), "Dee shown as removed")

    drive(app, script)
    removal = ada.removals(space_id)[0]
    assert removal.effective
    assert {m.name: m.status for m in ada.members(space_id)}["Dee"] == "removed"


def test_proposing_a_removal_says_who_decides(town: Town) -> None:
    space_id, (ada, _bo, _cy) = crew_of(town, "Ada", "Bo", "Cy")
    app = make_app(ada)

    async def script(pilot: Pilot[None]) -> None:
        await into_crew(pilot)
        await pilot.press("x")
        await pick(pilot, "Cy")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the dialog")
        text = words(app)
        assert "Propose removing Cy?" in text
        assert "2 of 2" in text  # Ada and Bo decide (Ada's proposal counts); Cy has no vote
        assert "Cy keeps what they already hold" in text
        await pilot.click("#confirm")
        await until(pilot, lambda: "removal of Cy proposed" in words(app), "the proposal")

    drive(app, script)
    (removal,) = ada.removals(space_id)
    assert removal.member_name == "Cy"
    assert not removal.effective
    assert removal.consents == (ada.identity.public_key,)


def test_revoking_an_invite_explains_then_revokes(town: Town) -> None:
    space_id, (ada, _bo) = crew_of(town, "Ada", "Bo")
    ada.invite(space_id, expires_ms=town.clock.now + 7 * 86_400_000)
    app = make_app(ada)

    async def script(pilot: Pilot[None]) -> None:
        await into_crew(pilot)
        await pilot.press("v")
        await pick(pilot, "0 of 1 used")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the dialog")
        text = words(app)
        assert "Revoke this invite?" in text
        assert "even with the code in hand" in text
        assert "Whoever already joined with it stays" in text
        await pilot.click("#confirm")
        await until(pilot, lambda: isinstance(app.screen, SpaceScreen), "the crew again")
        await pilot.press("v")  # nothing left to revoke: a notice, no choice
        await until(pilot, lambda: any("No invite of this space can admit anyone" in n.message
                                       for n in app._notifications), "the notice")
        assert not isinstance(app.screen, PickScreen)

    drive(app, script)
    assert [i.revoked for i in ada.invites(space_id) if i.uses == 1 and i.used == 0] == [True]
