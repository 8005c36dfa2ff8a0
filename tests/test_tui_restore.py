"""First run on a new laptop: "Restore from a backup" brings the member back, their spaces
and records with them; a wrong passphrase restores nothing; a key with its own passphrase
asks for it before it opens."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Label

from meshcrew import identity
from meshcrew.backup import MIN_MEMLIMIT, MIN_OPSLIMIT, KdfCost
from meshcrew.errors import BackupError, IdentityError
from meshcrew.home import Home
from meshcrew.node.home_backup import back_up
from meshcrew.tui.app import MeshcrewApp
from meshcrew.tui.launch import HomeSetup
from meshcrew.tui.screens.first_run import FirstRunScreen
from meshcrew.tui.screens.home import HomeScreen
from meshcrew.tui.screens.restore import RestoreScreen
from test_tui_support import Clock, Town, crew_of, drive, screen_text, until

CHEAP = KdfCost(MIN_OPSLIMIT, MIN_MEMLIMIT)  # the file records its cost; tests keep it low


def backed_up(town: Town, tmp_path: Path, *, key_passphrase: bytes | None = None
              ) -> tuple[Path, bytes]:
    """Ada's crew with a check-in, backed up to a file; returns the file and Ada's key."""
    space_id, (ada, _bo) = crew_of(town, "Ada", "Bo")
    ada.checkin(space_id, text="a good week, thanks to you all")
    home = Home(ada.home_path)
    identity.save(ada.identity, home.key_file, passphrase=key_passphrase)
    target = tmp_path / "ada.mcb"
    back_up(home, target, ada.identity, b"river stones", cost=CHEAP, now_ms=town.clock.now)
    return target, ada.identity.public_key


def fill(app: MeshcrewApp, path: Path | str, passphrase: str) -> None:
    app.screen.query_one("#restore-path", Input).value = str(path)
    app.screen.query_one("#restore-passphrase", Input).value = passphrase


async def submit(pilot: Pilot[None], field: str = "#restore-passphrase") -> None:
    """Press enter in a field, as a person who has just typed it would (two clicks on one
    button in quick succession can read as one double click)."""
    pilot.app.screen.query_one(field, Input).focus()
    await pilot.press("enter")


def error_text(app: MeshcrewApp) -> str:
    return str(app.screen.query_one("#restore-error", Label).render())


def test_a_new_laptop_restores_the_member_from_a_backup(town: Town, tmp_path: Path) -> None:
    target, ada_key = backed_up(town, tmp_path)
    new_home = Home(tmp_path / "new-laptop")
    setup = HomeSetup(new_home, clock=Clock(), network=False)
    app = MeshcrewApp(setup=setup, tz=UTC)

    async def script(pilot: Pilot[None]) -> None:
        assert isinstance(app.screen, FirstRunScreen)
        await pilot.click("#restore")
        await until(pilot, lambda: isinstance(app.screen, RestoreScreen), "the dialog")
        fill(app, "~no-such-user-here/ada.mcb", "river stones")
        await submit(pilot)
        await until(pilot, lambda: "No such home folder" in error_text(app), "the bad path")
        fill(app, target, "not the passphrase")
        await submit(pilot)
        await until(pilot, lambda: "passphrase" in error_text(app), "the refusal")
        assert not new_home.key_file.exists(), "nothing restored with a wrong passphrase"
        fill(app, target, "river stones")
        await submit(pilot)
        await until(pilot, lambda: isinstance(app.screen, HomeScreen), "home")
        await until(pilot, lambda: "Tuesday crew" in screen_text(app), "the crew")
        assert app.backend is not None
        assert app.backend.identity.public_key == ada_key
        assert "a good week, thanks to you all" in [e.fields.get("text") for e in
                                                    app.backend.log(app.backend.spaces()[0].id)]

    try:
        drive(app, script)
    finally:
        setup.close()
    assert new_home.key_file.stat().st_mode & 0o777 == 0o600


def test_a_key_with_its_own_passphrase_asks_for_it(town: Town, tmp_path: Path) -> None:
    target, ada_key = backed_up(town, tmp_path, key_passphrase=b"ada's own")
    new_home = Home(tmp_path / "new-laptop")
    setup = HomeSetup(new_home, clock=Clock(), network=False)
    app = MeshcrewApp(setup=setup, tz=UTC)

    async def script(pilot: Pilot[None]) -> None:
        await pilot.click("#restore")
        await until(pilot, lambda: isinstance(app.screen, RestoreScreen), "the dialog")
        fill(app, target, "river stones")
        await pilot.click("#send")
        await until(pilot, lambda: "passphrase of its own" in error_text(app), "the question")
        assert isinstance(app.screen, RestoreScreen)
        assert new_home.key_file.exists()  # restored, not yet opened
        await pilot.press("escape")  # no way back to a first run: the identity is here now
        await until(pilot, lambda: "identity is restored" in error_text(app), "the answer")
        assert isinstance(app.screen, RestoreScreen)
        app.screen.query_one("#restore-key-passphrase", Input).value = "not it"
        await submit(pilot, "#restore-key-passphrase")
        await until(pilot, lambda: "not your key's passphrase" in error_text(app), "refusal")
        app.screen.query_one("#restore-key-passphrase", Input).value = "ada's own"
        await submit(pilot, "#restore-key-passphrase")
        await until(pilot, lambda: isinstance(app.screen, HomeScreen), "home")
        assert app.backend is not None
        assert app.backend.identity.public_key == ada_key

    try:
        drive(app, script)
    finally:
        setup.close()


def test_a_restore_cut_short_can_be_done_again_but_not_over_someone_else(
        town: Town, tmp_path: Path) -> None:
    """The same identity takes the records again (merged); another identity is refused."""
    target, ada_key = backed_up(town, tmp_path)
    new_home = Home(tmp_path / "new-laptop")
    setup = HomeSetup(new_home, clock=Clock(), network=False)
    first = setup.restore(target, b"river stones")
    again = setup.restore(target, b"river stones")
    assert (first.key_file, again.key_file) == ("written", "kept")
    assert again.accepted == 0
    assert again.duplicates == first.accepted > 0
    other = Home(tmp_path / "someone-else")
    other.ensure()
    identity.save(identity.Identity.generate("Cy"), other.key_file)
    with pytest.raises(BackupError):
        HomeSetup(other, clock=Clock(), network=False).restore(target, b"river stones")
    assert identity.load(new_home.key_file).public_key == ada_key


def test_a_home_whose_key_file_is_lost_is_not_given_a_new_identity(
        town: Town, tmp_path: Path) -> None:
    """The first-run screen's "Create my identity" (and "another device of mine") made one
    beside the replica: in none of its spaces, and the restore was then refused."""
    target, ada_key = backed_up(town, tmp_path)
    home = Home(tmp_path / "laptop")
    HomeSetup(home, clock=Clock(), network=False).restore(target, b"river stones")
    home.key_file.unlink()
    setup = HomeSetup(home, clock=Clock(), network=False)
    with pytest.raises(IdentityError, match="Restore from a backup"):
        setup.create("Ada")
    with pytest.raises(IdentityError, match="Restore from a backup"):
        setup.create_device()
    assert not home.key_file.exists()
    setup.restore(target, b"river stones")
    assert identity.load(home.key_file).public_key == ada_key

