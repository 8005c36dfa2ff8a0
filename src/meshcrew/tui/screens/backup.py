""""Back up to a file": a dialog that asks for a path and a passphrase (twice) and writes the
backup (the same file as ``meshcrew backup``, see :mod:`meshcrew.node.home_backup`).

The backup reads the replica read-only in a worker thread, so the node keeps running and the
screen stays live while a big replica is read and the passphrase's key is derived.
"""

from __future__ import annotations

from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, Static

from meshcrew.backup import (
    DEFAULT_KDF_COST,
    KDF_COSTS,
    MIN_PASSPHRASE_CHARS,
    KdfCost,
    check_new_passphrase,
)
from meshcrew.errors import BackupError
from meshcrew.home import Home
from meshcrew.node.home_backup import BackupReport, back_up
from meshcrew.tui.screens.file_work import FileWorkDialog

DEFAULT_NAME = "meshcrew-backup.mcb"


class BackupScreen(FileWorkDialog[BackupReport]):
    """Ask where to write the backup and for its passphrase; dismisses with what was written.

    Args:
        cost: how hard argon2id works (the default is what ``meshcrew backup`` uses).
    """

    PREFIX = "backup"

    def __init__(self, cost: KdfCost = KDF_COSTS[DEFAULT_KDF_COST]) -> None:
        super().__init__()
        self.cost = cost

    def compose(self) -> ComposeResult:
        """The path, the passphrase twice, the buttons."""
        with Vertical(classes="dialog"):
            yield Static("Back up to a file", classes="title")
            yield Static("Your identity, records and peer book in one file, encrypted with "
                         "this passphrase. Without it the file cannot be opened: keep the two "
                         "apart. Restore with: meshcrew restore FILE", classes="consequences")
            yield Label("File")
            yield Input(value=str(Path.home() / DEFAULT_NAME), id="backup-path")
            yield Label(f"Passphrase (at least {MIN_PASSPHRASE_CHARS} characters), twice")
            yield Input(password=True, placeholder="passphrase", id="backup-passphrase")
            yield Input(password=True, placeholder="the same again", id="backup-again")
            yield Label("", id="backup-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Back up", id="send", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        """Start with the passphrase: the file name is filled in."""
        self.query_one("#backup-passphrase", Input).focus()

    @on(Input.Submitted)
    @on(Button.Pressed, "#send")
    def _send(self) -> None:
        if self.working:
            return
        passphrase = self.query_one("#backup-passphrase", Input).value
        path = self.path_from(self.query_one("#backup-path", Input).value,
                              "Give the file to write.")
        if path is None:
            return
        try:
            check_new_passphrase(passphrase.encode("utf-8"))  # the rule `meshcrew backup` has
        except BackupError as exc:
            self.error.update(str(exc))
            return
        if self.query_one("#backup-again", Input).value != passphrase:
            self.error.update("The two passphrases differ.")
            return
        if path.is_dir():
            self.error.update(f"{path} is a folder; give a file name in it.")
            return
        backend, secret = self.backend, passphrase.encode("utf-8")
        self.start(lambda progress: back_up(Home(backend.home_path), path, backend.identity,
                                            secret, cost=self.cost, now_ms=backend.now(),
                                            on_progress=progress), self._done)

    def _done(self, report: BackupReport) -> None:
        self.app.notify(f"Backed up {report.records:,} records of {report.spaces} "
                        f"space{'s' if report.spaces != 1 else ''} to {report.path}.",
                        title="Backup written", timeout=10)
        self.dismiss(report)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.action_cancel()

