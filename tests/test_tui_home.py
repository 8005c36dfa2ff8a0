"""Journeys: first run (name → identity → fingerprint → start or join) and the home screen."""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from meshcrew import identity
from meshcrew.home import Home
from meshcrew.service import views as service_views
from meshcrew.spaces import SpaceState, fold
from meshcrew.tui.app import MeshcrewApp
from meshcrew.tui.launch import HomeSetup
from meshcrew.tui.screens.create_space import CreateSpaceScreen
from meshcrew.tui.screens.first_run import FirstRunScreen
from meshcrew.tui.screens.home import HomeScreen
from meshcrew.tui.screens.join import JoinScreen
from meshcrew.tui.screens.space import SpaceScreen
from meshcrew.tui.service_backend import LocalBackend
from test_tui_support import (
    WAIT_S,
    Clock,
    Town,
    crew_of,
    drive,
    make_app,
    screen_text,
    send,
    until,
)


def test_first_run_creates_the_identity_shows_the_fingerprint_and_starts_a_crew() -> None:
    # A short path, which the screen shows on one line (a pytest-xdist worker's tmp_path is
    # longer by the worker's folder, and wraps).
    root = Path(tempfile.mkdtemp(prefix="mc-"))
    home = Home(root / "new-home")
    setup = HomeSetup(home, clock=Clock(), network=False)
    app = MeshcrewApp(setup=setup, tz=UTC)

    async def script(pilot: Pilot[None]) -> None:
        assert isinstance(app.screen, FirstRunScreen)
        await pilot.click("#create")
        assert "The name is empty" in screen_text(app)  # refused, nothing written
        assert not home.key_file.exists()
        await pilot.click("#name")
        await pilot.press("A", "d", "a", "enter")
        await until(pilot, lambda: app.backend is not None, "the identity")
        person = identity.load(home.key_file)
        assert person.name == "Ada"
        text = screen_text(app)
        assert person.fingerprint in text
        assert str(home.path) in text
        await pilot.click("#start")
        await until(pilot, lambda: isinstance(app.screen, CreateSpaceScreen), "the new-space form")
        await pilot.press(*"Tuesday crew")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, SpaceScreen), "the new crew")
        assert "Tuesday crew" in str(app.screen.sub_title)
        await pilot.press("escape")
        assert isinstance(app.screen, HomeScreen)
        assert "Tuesday crew" in screen_text(app)

    try:
        drive(app, script)
    finally:
        setup.close()
        shutil.rmtree(root, ignore_errors=True)


def test_first_run_says_what_an_empty_name_needs_in_the_apps_words(tmp_path: Path) -> None:
    """It said 'give a display name such as --name Ada': an option of the command line."""
    setup = HomeSetup(Home(tmp_path / "h"), clock=Clock(), network=False)
    app = MeshcrewApp(setup=setup, tz=UTC)

    async def script(pilot: Pilot[None]) -> None:
        await pilot.press("space", "enter")
        error = app.screen.query_one("#name-error", Static)
        await until(pilot, lambda: "empty" in str(error.render()), "the refusal")
        assert str(error.render()) == ("The name is empty; give the name your crewmates know "
                                       "you by, such as Ada.")
        assert app.backend is None

    try:
        drive(app, script)
    finally:
        setup.close()


def test_first_run_offers_joining_with_a_code(tmp_path: Path) -> None:
    setup = HomeSetup(Home(tmp_path / "h"), clock=Clock(), network=False)
    app = MeshcrewApp(setup=setup, tz=UTC)

    async def script(pilot: Pilot[None]) -> None:
        await pilot.press("B", "o", "enter")
        await until(pilot, lambda: app.backend is not None, "the identity")
        await pilot.click("#join")
        await until(pilot, lambda: isinstance(app.screen, JoinScreen), "the join form")
        await pilot.press("escape")
        assert isinstance(app.screen, HomeScreen)
        assert "No spaces yet" in screen_text(app)

    try:
        drive(app, script)
    finally:
        setup.close()


def test_home_nests_crews_in_their_congregation_with_unread_and_due_check_ins(
        town: Town) -> None:
    space_id, (ada, bo) = crew_of(town, "Ada", "Bo")
    congregation = ada.create_space("Riverside", kind="congregation")
    ada.create_space("Garden crew", parent=congregation)
    town.clock.tick()
    bo.checkin(space_id, text="Arriving rested", energy=4)
    send(bo, ada, space_id)
    app = make_app(ada)

    async def script(pilot: Pilot[None]) -> None:
        assert isinstance(app.screen, HomeScreen)
        lines = screen_text(app).splitlines()
        riverside = next(i for i, line in enumerate(lines) if "Riverside" in line)
        garden = next(i for i, line in enumerate(lines) if "Garden crew" in line)
        tuesday = next(line for line in lines if "Tuesday crew" in line)
        assert garden > riverside  # nested under its congregation
        assert "new" in tuesday  # Bo's check-in is unread
        assert "check-in due: you" in tuesday
        assert "Bo" not in tuesday.split("due:")[1]
        assert "not connected" in screen_text(app)

    drive(app, script)


class GatedBackend(LocalBackend):
    """A backend whose prepare waits for the test to let it go (to see the screen meanwhile)."""

    def __init__(self, backend: LocalBackend) -> None:
        super().__init__(backend.reads.replica, backend.identity, clock=backend.reads.now)
        self.gate = threading.Event()
        self.threads: set[str] = set()

    def prepare(self, progress: Callable[[int, int, str | None], None]) -> None:
        self.threads.add(threading.current_thread().name)
        assert self.gate.wait(WAIT_S), "the test never opened the gate"
        super().prepare(progress)


def test_a_big_replica_shows_its_opening_then_the_spaces_read_without_folding(
        town: Town, monkeypatch: pytest.MonkeyPatch) -> None:
    space_id, (ada, bo) = crew_of(town, "Ada", "Bo")
    bo.checkin(space_id, text="Arriving rested", energy=4)
    send(bo, ada, space_id)
    backend = GatedBackend(ada)
    app = make_app(backend, prepare_above=1)  # every replica counts as big here
    folded_in: list[str] = []

    def counting(space: bytes, records: Any) -> SpaceState:
        folded_in.append(threading.current_thread().name)
        return fold(space, records)

    monkeypatch.setattr(service_views.__name__ + ".fold", counting)

    async def script(pilot: Pilot[None]) -> None:
        assert isinstance(app.screen, HomeScreen)
        records = ada.reads.replica.record_count()
        await until(pilot, lambda: f"Opening your spaces ({records:,} records)"
                    in screen_text(app), "the opening notice")
        assert app.screen.query("#opening"), "a progress bar while the spaces open"
        assert "Tuesday crew" not in screen_text(app)
        backend.gate.set()
        await until(pilot, lambda: "Tuesday crew" in screen_text(app), "the crew")
        assert not app.screen.query("#opening")
        tuesday = next(line for line in screen_text(app).splitlines() if "Tuesday crew" in line)
        assert "new" in tuesday  # unread counts and the cycle were read as usual
        assert folded_in, "the worker folded the crew"
        assert threading.main_thread().name not in folded_in, folded_in
        assert backend.threads
        assert threading.main_thread().name not in backend.threads

    drive(app, script)
