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
from textual.widgets import Button, Input, Label, ProgressBar, Static

from meshcrew.backup import DEFAULT_KDF_COST, KDF_COSTS, KdfCost
from meshcrew.errors import MeshcrewError
from meshcrew.home import Home
from meshcrew.node.home_backup import BackupReport, back_up
from meshcrew.tui.screens.base import MeshcrewModal

DEFAULT_NAME = "meshcrew-backup.mcb"


class BackupScreen(MeshcrewModal[BackupReport]):
    """Ask where to write the backup and for its passphrase; dismisses with what was written.

    Args:
        cost: how hard argon2id works (the default is what ``meshcrew backup`` uses).
    """

    def __init__(self, cost: KdfCost = KDF_COSTS[DEFAULT_KDF_COST]) -> None:
        super().__init__()
        self.cost = cost
        self.writing = False
        """Whether the file is being written (the dialog then stays until it is done)."""

    def compose(self) -> ComposeResult:
        """The path, the passphrase twice, the buttons."""
        with Vertical(classes="dialog"):
            yield Static("Back up to a file", classes="title")
            yield Static("Your identity, records and peer book in one file, encrypted with "
                         "this passphrase. Without it the file cannot be opened: keep the two "
                         "apart. Restore with: meshcrew restore FILE", classes="consequences")
            yield Label("File")
            yield Input(value=str(Path.home() / DEFAULT_NAME), id="backup-path")
            yield Label("Passphrase, twice")
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
        error = self.query_one("#backup-error", Label)
        path_text = self.query_one("#backup-path", Input).value.strip()
        passphrase = self.query_one("#backup-passphrase", Input).value
        if not path_text:
            error.update("Give the file to write.")
            return
        if not passphrase:
            error.update("Choose a passphrase.")
            return
        if self.query_one("#backup-again", Input).value != passphrase:
            error.update("The two passphrases differ.")
            return
        try:
            path = Path(path_text).expanduser().absolute()
        except RuntimeError:  # ~name of no such user
            error.update(f"No such home folder: {path_text.split('/')[0]}.")
            return
        if path.is_dir():
            error.update(f"{path} is a folder; give a file name in it.")
            return
        error.update("")
        self.writing = True
        for button in self.query(Button):
            button.disabled = True
        self.query_one(".dialog").mount(ProgressBar(id="backup-progress", show_eta=False),
                                        before="#backup-error")
        self.run_worker(lambda: self._write(path, passphrase.encode("utf-8")), thread=True,
                        exclusive=True, group="backup")

    def _write(self, path: Path, passphrase: bytes) -> None:
        """In the worker thread: write the file; hand the result back to the screen."""
        backend = self.backend
        try:
            report = back_up(Home(backend.home_path), path, backend.identity, passphrase,
                             cost=self.cost, now_ms=backend.now(),
                             on_progress=lambda done, total: self.app.call_from_thread(
                                 self._progress, done, total))
        except MeshcrewError as exc:
            self.app.call_from_thread(self._failed, str(exc))
            return
        self.app.call_from_thread(self._done, report)

    def _progress(self, done: int, total: int) -> None:
        for bar in self.query("#backup-progress").results(ProgressBar):
            bar.update(total=total, progress=done)

    def _failed(self, problem: str) -> None:
        for bar in self.query("#backup-progress"):
            bar.remove()
        self.query_one("#backup-error", Label).update(problem)
        self.writing = False
        for button in self.query(Button):
            button.disabled = False

    def _done(self, report: BackupReport) -> None:
        self.writing = False
        self.app.notify(f"Backed up {report.records:,} records of {report.spaces} "
                        f"space{'s' if report.spaces != 1 else ''} to {report.path}.",
                        title="Backup written", timeout=10)
        self.dismiss(report)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.action_cancel()

    def action_cancel(self) -> None:
        """Close without writing (not while the file is being written)."""
        if not self.writing:
            self.dismiss(None)
