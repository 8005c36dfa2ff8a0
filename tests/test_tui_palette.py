"""Every action a screen binds to a key is also a command palette entry, and runs from there."""

from __future__ import annotations

from typing import Any

from textual.binding import Binding
from textual.pilot import Pilot
from textual.screen import Screen

from meshcrew.tui.screens.checkin import CheckInScreen
from meshcrew.tui.screens.congregation import CongregationScreen
from meshcrew.tui.screens.health import SyncHealthScreen
from meshcrew.tui.screens.home import HomeScreen
from meshcrew.tui.screens.space import SpaceScreen
from test_tui_support import Town, crew_of, drive, make_app, run_from_palette, until


def described(screen: type[Screen[Any]]) -> set[str]:
    return {b.description for b in screen.BINDINGS if isinstance(b, Binding) and b.description}


def test_every_described_binding_is_a_palette_entry(town: Town) -> None:
    space_id, (ada,) = crew_of(town, "Ada")
    congregation = ada.create_space("Riverside", kind="congregation")
    app = make_app(ada)

    async def script(pilot: Pilot[None]) -> None:
        for screen in (HomeScreen(), SpaceScreen(space_id), CongregationScreen(congregation),
                       SyncHealthScreen()):
            await app.push_screen(screen)
            await pilot.pause()
            titles = {command.title for command in app.get_system_commands(app.screen)}
            assert described(type(screen)) <= titles, type(screen).__name__
            assert {"Light/dark", "Quit"} <= titles
            await app.pop_screen()

    drive(app, script)
    assert len(described(SpaceScreen)) >= 10


def test_an_action_runs_from_the_palette(town: Town) -> None:
    _space_id, (ada,) = crew_of(town, "Ada")
    app = make_app(ada)

    async def script(pilot: Pilot[None]) -> None:
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, SpaceScreen), "the crew")
        await run_from_palette(pilot, "Check in", "Check in")
        await until(pilot, lambda: isinstance(app.screen, CheckInScreen), "the check-in form")

    drive(app, script)
