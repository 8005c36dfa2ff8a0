"""Journeys: invite (code as text and QR, copied) and join (progress, clear errors)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import segno
from textual.pilot import Pilot
from textual.widgets import Input, ProgressBar

from meshcrew.spaces import decode_invite_code
from meshcrew.tui.backend import JoinProgress
from meshcrew.tui.screens.home import HomeScreen
from meshcrew.tui.screens.invite import InviteScreen
from meshcrew.tui.screens.join import JoinScreen
from meshcrew.tui.screens.space import SpaceScreen
from meshcrew.tui.service_backend import LocalBackend
from meshcrew.tui.widgets.qr import QUIET_ZONE, qr_text
from test_tui_support import (
    DAY,
    WEEK,
    Town,
    crew_of,
    drive,
    make_app,
    screen_text,
    send,
    until,
)


def test_invite_shows_the_code_as_text_and_qr_and_copies_it(town: Town) -> None:
    space_id, (ada,) = crew_of(town, "Ada")
    app = make_app(ada)
    codes: list[str] = []

    async def script(pilot: Pilot[None]) -> None:
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, SpaceScreen), "the crew")
        await pilot.press("i")
        await until(pilot, lambda: isinstance(app.screen, InviteScreen), "the invite form")
        await pilot.click("#make")
        screen = app.screen
        assert isinstance(screen, InviteScreen)
        await until(pilot, lambda: screen.code is not None, "the code")
        assert screen.code is not None
        codes.append(screen.code)
        text = screen_text(app)
        assert screen.code[:40] in text
        assert "Admits 1 person until Mon 12 Jan 23:50" in text
        assert "▀" in str(screen.query_one("#qr").render())
        await pilot.click("#copy")
        assert app.clipboard == screen.code
        await pilot.press("escape")
        assert isinstance(app.screen, SpaceScreen)

    drive(app, script)
    invite = decode_invite_code(codes[0])
    assert invite.space_id == space_id
    assert ada.service.replica.get(invite.invite_id) is not None


def test_qr_code_text_holds_exactly_the_modules_of_the_code() -> None:
    code = "mc1-" + "abcdefghijklmnopqrstuvwxyz234567" * 5
    drawn = qr_text(code)
    halves = {" ": (False, False), "▀": (True, False), "▄": (False, True), "█": (True, True)}
    modules = []
    for row in drawn.splitlines():
        cells = [halves[c] for c in row]
        modules += [[top for top, _ in cells], [bottom for _, bottom in cells]]
    expected = [[bool(m) for m in row] for row in segno.make(
        code.upper(), error="l", micro=False).matrix_iter(scale=1, border=QUIET_ZONE)]
    assert modules[:len(expected)] == expected
    assert not any(any(row) for row in modules[len(expected):])  # padding row, if any


def test_join_with_a_code_opens_the_crew(town: Town) -> None:
    space_id, (ada,) = crew_of(town, "Ada")
    bo = town.person("Bo")
    code = ada.invite(space_id, expires_ms=town.clock.now + WEEK)
    send(ada, bo, space_id)  # what the node (or an imported export) brings first
    app = make_app(bo)

    async def script(pilot: Pilot[None]) -> None:
        await pilot.press("j")
        await until(pilot, lambda: isinstance(app.screen, JoinScreen), "the join form")
        app.screen.query_one("#code", Input).value = code
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, SpaceScreen), "the joined crew")
        assert "Tuesday crew" not in str(app.screen.sub_title)  # no key yet: name locked
        assert str(app.screen.sub_title) == "locked: no key yet · crew"

    drive(app, script)
    assert bo.summary(space_id).my_status == "active"
    assert bo.summary(space_id).waiting_for_keys


@pytest.mark.parametrize(("problem", "expected"), [
    ("damaged", "This code is damaged"),
    ("expired", "This invite has expired; ask for a new one."),
    ("unreachable", "The inviter cannot be reached"),
    ("not a code", "This is not a meshcrew invite code"),
])
def test_join_says_clearly_why_a_code_does_not_work(town: Town, problem: str,
                                                    expected: str) -> None:
    space_id, (ada,) = crew_of(town, "Ada")
    bo = town.person("Bo")
    code = ada.invite(space_id, expires_ms=town.clock.now + DAY)
    if problem != "unreachable":
        send(ada, bo, space_id)
    if problem == "damaged":
        code = code[:20] + ("a" if code[20] != "a" else "b") + code[21:]
    elif problem == "expired":
        town.clock.tick(2 * DAY)
    elif problem == "not a code":
        code = "hello"
    app = make_app(bo)

    async def script(pilot: Pilot[None]) -> None:
        await pilot.press("j")
        await until(pilot, lambda: isinstance(app.screen, JoinScreen), "the join form")
        app.screen.query_one("#code", Input).value = code
        await pilot.press("enter")
        await until(pilot, lambda: expected in screen_text(app), "the error")
        assert isinstance(app.screen, JoinScreen)  # the code stays, to fix or cancel
        assert not app.screen.query_one("#join-progress").display

    drive(app, script)
    assert bo.spaces() == [] or bo.summary(space_id).my_status == "outsider"


class SlowJoin(LocalBackend):
    """A backend whose join reports progress as a node's would, and waits to be let go."""

    release: asyncio.Event

    async def join(self, code: str) -> bytes:
        self.release = asyncio.Event()
        self.emit(JoinProgress(0, None, "reaching the inviter"))
        self.emit(JoinProgress(40, 100, "receiving the history"))
        await self.release.wait()
        return await super().join(code)


def test_join_shows_progress_while_the_history_arrives(town: Town, tmp_path: Path) -> None:
    space_id, (ada,) = crew_of(town, "Ada")
    bo = town.person("Bo")
    slow = SlowJoin(bo.service.replica, bo.identity, clock=town.clock)
    code = ada.invite(space_id, expires_ms=town.clock.now + WEEK)
    send(ada, bo, space_id)
    app = make_app(slow)

    async def script(pilot: Pilot[None]) -> None:
        assert isinstance(app.screen, HomeScreen)
        await pilot.press("j")
        await until(pilot, lambda: isinstance(app.screen, JoinScreen), "the join form")
        app.screen.query_one("#code", Input).value = code
        await pilot.press("enter")
        bar = app.screen.query_one("#join-progress", ProgressBar)
        await until(pilot, lambda: bar.progress == 40, "progress")
        assert bar.display
        assert bar.total == 100
        assert "receiving the history" in screen_text(app)
        slow.release.set()
        await until(pilot, lambda: isinstance(app.screen, SpaceScreen), "the joined crew")

    drive(app, script)
    assert slow.summary(space_id).my_status == "active"
