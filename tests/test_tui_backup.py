""""Back up to a file" from the command palette: the dialog writes a backup that opens."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import Input, Label

from meshcrew import identity
from meshcrew.backup import KDF_COSTS
from meshcrew.home import Home
from meshcrew.node.home_backup import read_backup
from meshcrew.tui.app import MeshcrewApp
from meshcrew.tui.screens.backup import BackupScreen
from meshcrew.tui.screens.home import HomeScreen
from test_tui_support import Town, crew_of, drive, make_app, run_from_palette, until


def fill(app: MeshcrewApp, path: Path, passphrase: str, again: str) -> None:
    screen = app.screen
    screen.query_one("#backup-path", Input).value = str(path)
    screen.query_one("#backup-passphrase", Input).value = passphrase
    screen.query_one("#backup-again", Input).value = again


def shows(label: Label, text: str) -> Callable[[], bool]:
    return lambda: text in str(label.render())


async def submit(pilot: Pilot[None]) -> None:
    """Press enter in the last field, as a person who typed the passphrase twice would."""
    pilot.app.screen.query_one("#backup-again", Input).focus()
    await pilot.press("enter")


def test_back_up_from_the_palette(town: Town, tmp_path: Path) -> None:
    space_id, (ada, _bo) = crew_of(town, "Ada", "Bo")
    ada.checkin(space_id, text="a good week")
    home = Home(ada.home_path)
    identity.save(ada.identity, home.key_file)
    target = tmp_path / "ada.mcb"
    app = make_app(ada)

    async def script(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: isinstance(app.screen, HomeScreen), "home")
        await run_from_palette(pilot, "Back up", "Back up to a file")
        await until(pilot, lambda: isinstance(app.screen, BackupScreen), "the backup dialog")
        fill(app, target, "our crew's secret", "our crew's secret")
        await pilot.click("#send")
        await until(pilot, lambda: isinstance(app.screen, HomeScreen), "the dialog to close")

    drive(app, script)
    contents = read_backup(target, b"our crew's secret")
    assert contents.member_key == ada.identity.public_key
    assert contents.key_file == home.key_file.read_bytes()
    assert len(contents.records) == ada.record_count() > 0
    assert target.stat().st_mode & 0o777 == 0o600


def test_the_dialog_refuses_and_writes_nothing(town: Town, tmp_path: Path) -> None:
    _space_id, (ada,) = crew_of(town, "Ada")
    identity.save(ada.identity, Home(ada.home_path).key_file)
    target = tmp_path / "ada.mcb"
    app = make_app(ada)

    async def script(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: isinstance(app.screen, HomeScreen), "home")
        await app.push_screen(BackupScreen(cost=KDF_COSTS["interactive"]))
        await pilot.pause()
        error = app.screen.query_one("#backup-error", Label)
        good = "our crew's secret"
        for passphrase, again, problem in (
                (good, "our crews secret", "differ"), ("", "", "empty"),
                ("pw", "pw", "needs at least 12 characters (this one has 2)"),
                ("abababababab", "abababababab", "at least 5 different characters"),
                (good, good, "is a folder")):
            fill(app, tmp_path if problem == "is a folder" else target, passphrase, again)
            await submit(pilot)
            await until(pilot, shows(error, problem), problem)
        fill(app, tmp_path / "no such folder" / "b.mcb", good, good)
        await submit(pilot)
        await until(pilot, lambda: "Cannot write" in str(error.render()), "the write refusal")
        assert isinstance(app.screen, BackupScreen)
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, HomeScreen), "the dialog to close")

    drive(app, script)
    assert not target.exists()
