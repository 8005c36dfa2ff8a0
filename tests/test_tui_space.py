"""Journeys on the space screen: check in (a validated form), reply, react, receipts, energy."""

from __future__ import annotations

import gc

import pytest
from textual.pilot import Pilot
from textual.widgets import Select, TextArea

from meshcrew import collector
from meshcrew.tui.formatting import SPARK_BLOCKS
from meshcrew.tui.screens import space as space_screen
from meshcrew.tui.screens.checkin import CheckInScreen
from meshcrew.tui.screens.forms import PromptScreen
from meshcrew.tui.screens.home import HomeScreen
from meshcrew.tui.screens.post import PostScreen
from meshcrew.tui.screens.space import HEARD, SpaceScreen
from meshcrew.tui.widgets.timeline import Timeline
from test_tui_support import (
    WEEK,
    Town,
    crew_of,
    drive,
    make_app,
    screen_text,
    send,
    sync,
    until,
)


async def open_space(pilot: Pilot[None], name: str) -> SpaceScreen:
    """From the home screen, open the space called ``name`` with the keyboard."""
    app = pilot.app
    assert isinstance(app.screen, HomeScreen)
    for _ in range(10):
        node = app.screen.query_one("#spaces").cursor_node  # type: ignore[attr-defined]
        if node is not None and node.data is not None and node.data.name == name:
            break
        await pilot.press("down")
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, SpaceScreen), f"the space {name}")
    assert isinstance(app.screen, SpaceScreen)
    return app.screen


def test_check_in_form_validates_then_posts_to_the_timeline(town: Town) -> None:
    space_id, (ada, _bo) = crew_of(town, "Ada", "Bo")
    app = make_app(ada)

    async def script(pilot: Pilot[None]) -> None:
        await open_space(pilot, "Tuesday crew")
        assert "still to check in: you, Bo" in screen_text(app)
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, CheckInScreen), "the form")
        await pilot.press("ctrl+s")  # nothing filled in
        errors = screen_text(app)
        assert "Say how you are arriving" in errors
        assert "Choose your energy" in errors
        assert ada.log(space_id)[-1].kind == "profile"  # nothing signed
        await pilot.press(*"Tired but glad")
        assert app.screen.query_one("#arrival", TextArea).text == "Tired but glad"
        app.screen.query_one("#energy", Select).value = 2
        app.screen.query_one("#compass-belonging", Select).value = 4
        app.screen.query_one("#ask").value = "someone to read my draft"  # type: ignore[attr-defined]
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, SpaceScreen), "the space again")
        post = ada.log(space_id)[-1]
        assert post.kind == "checkin"
        assert post.fields["text"] == "Tired but glad"
        assert post.fields["energy"] == 2
        assert dict(post.fields["compass"]) == {"belonging": 4}
        assert post.fields["ask"] == "someone to read my draft"
        text = screen_text(app)
        assert "Tired but glad" in text
        assert "energy 2/5" in text
        assert "ask: someone to read my draft" in text
        assert "compass: belonging 4" in text
        assert "seen by 1 of 2" in text  # only Ada's replica is known to hold it
        assert "1 of 2 checked in" in text
        assert SPARK_BLOCKS[1] in text  # Ada's energy sparkline

    drive(app, script)


def test_reply_and_heard_you_show_inline_and_in_the_post(town: Town) -> None:
    space_id, (ada, bo) = crew_of(town, "Ada", "Bo")
    town.clock.tick()
    bo.checkin(space_id, text="Big week ahead, a bit anxious", energy=3)
    send(bo, ada, space_id)
    app = make_app(ada)

    async def script(pilot: Pilot[None]) -> None:
        await open_space(pilot, "Tuesday crew")
        assert app.screen.query_one(Timeline).selected is not None
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, PromptScreen), "the reply prompt")
        await pilot.press(*"You have got this", "enter")
        await until(pilot, lambda: isinstance(app.screen, SpaceScreen), "the space again")
        await pilot.press("h")
        await pilot.pause()
        text = screen_text(app)
        assert "↳ Ada: You have got this" in text
        assert HEARD in text
        answers = [e for e in ada.log(space_id) if e.kind in ("reply", "reaction")]
        assert sorted((e.kind, e.fields["text"]) for e in answers) == [
            ("reaction", HEARD), ("reply", "You have got this")]
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, PostScreen), "the post")
        full = screen_text(app)
        assert "Big week ahead, a bit anxious" in full
        assert "from Ada" in full
        await pilot.press("escape")

    drive(app, script)
    # Bo sees Ada's answers once the records reach him.
    send(ada, bo, space_id)
    card = [e for e in bo.log(space_id) if e.kind == "reply"]
    assert card[0].fields["text"] == "You have got this"


def test_receipts_count_members_known_to_hold_a_post(town: Town) -> None:
    space_id, people = crew_of(town, "Ada", "Bo", "Cy")
    ada = people[0]
    town.clock.tick()
    ada.checkin(space_id, text="Here", energy=5)
    app = make_app(ada)

    async def script(pilot: Pilot[None]) -> None:
        await open_space(pilot, "Tuesday crew")
        assert "seen by 1 of 3" in screen_text(app)
        cy_print = people[2].identity.fingerprint
        assert cy_print not in screen_text(app)
        await pilot.press("f")  # fingerprints on demand, to compare out loud
        await until(pilot, lambda: cy_print in screen_text(app), "Cy's fingerprint")

    drive(app, script)
    assert ada.holdings(space_id).keys() == {ada.identity.public_key}


def test_energy_sparkline_has_one_bar_per_cycle(town: Town) -> None:
    space_id, (ada, bo) = crew_of(town, "Ada", "Bo")
    for energy in (1, 3, 5):
        bo.checkin(space_id, text=f"energy {energy}", energy=energy)
        bo.checkin(space_id, text="again, same cycle", energy=energy)  # the later one counts
        town.clock.tick(WEEK)
    sync(space_id, ada, bo)
    app = make_app(ada)

    async def script(pilot: Pilot[None]) -> None:
        await open_space(pilot, "Tuesday crew")
        expected = SPARK_BLOCKS[0] + SPARK_BLOCKS[2] + SPARK_BLOCKS[4]
        assert f"Bo  {expected}" in screen_text(app)

    drive(app, script)


def test_a_big_space_freezes_its_cards_and_thaws_when_it_closes(
        town: Town, monkeypatch: pytest.MonkeyPatch) -> None:
    """Frozen objects are never collected: a closed space screen must not stay frozen."""
    _space_id, (ada, _bo) = crew_of(town, "Ada", "Bo")
    monkeypatch.setattr(collector, "FREEZE_ABOVE", 1)  # every space counts as big here
    monkeypatch.setattr(space_screen, "FREEZE_ABOVE", 1)
    app = make_app(ada)
    frozen: list[int] = []

    async def script(pilot: Pilot[None]) -> None:
        gc.unfreeze()
        await open_space(pilot, "Tuesday crew")
        frozen.append(gc.get_freeze_count())
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, HomeScreen), "home")
        frozen.append(gc.get_freeze_count())

    try:
        drive(app, script)
    finally:
        gc.unfreeze()
    assert frozen[0] > 0, "the cards were built frozen"
    assert frozen[1] == 0, "closing the screen thawed them"
