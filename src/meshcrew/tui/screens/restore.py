"""Restore from a backup on the first run: a new laptop gets the member back (the same file as
``meshcrew restore``, see :mod:`meshcrew.node.home_backup`).

The file is opened and its records appended in a worker thread, with a progress bar; then the
home folder is opened in the app's thread as after "Create my identity". A key file that has
a passphrase of its own asks for it before it opens; nothing is restored twice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, ProgressBar, Static

from meshcrew import identity
from meshcrew.errors import IdentityError, MeshcrewError
from meshcrew.home import Home
from meshcrew.node.home_backup import RestoreReport
from meshcrew.tui.launch import Opened, Setup
from meshcrew.tui.screens.base import MeshcrewModal


class RestoreScreen(MeshcrewModal[Opened]):
    """Ask for the backup file and its passphrase; dismisses with the opened home folder.

    Args:
        setup: the first run's setup (it restores into its home folder, then opens it).
    """

    def __init__(self, setup: Setup) -> None:
        super().__init__()
        self.setup = setup
        self.working = False
        """Whether the backup is being restored (the dialog then stays until it is done)."""
        self.report: RestoreReport | None = None
        """What was restored, once it was (then only the key's passphrase is asked for)."""

    def compose(self) -> ComposeResult:
        """The file, its passphrase, the key's passphrase if it has one, the buttons."""
        with Vertical(classes="dialog"):
            yield Static("Restore from a backup", classes="title")
            yield Static("The file `meshcrew backup` or \"Back up to a file\" wrote: your "
                         "identity, your spaces' records and the peers you knew. Your node then "
                         "syncs what your crews wrote since.", classes="consequences")
            yield Label("Backup file")
            yield Input(placeholder="e.g. ~/meshcrew-backup.mcb", id="restore-path")
            yield Label("The backup's passphrase")
            yield Input(password=True, id="restore-passphrase")
            yield Label("Your key's own passphrase, if you gave it one", id="key-label")
            yield Input(password=True, placeholder="(none)", id="restore-key-passphrase")
            yield Label("", id="restore-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Restore", id="send", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        """Start with the file."""
        self.query_one("#restore-path", Input).focus()

    @on(Input.Submitted)
    @on(Button.Pressed, "#send")
    def _send(self) -> None:
        if self.working:
            return
        if self.report is not None:  # restored; only the key's passphrase was missing
            self._open()
            return
        error = self.query_one("#restore-error", Label)
        path_text = self.query_one("#restore-path", Input).value.strip()
        passphrase = self.query_one("#restore-passphrase", Input).value
        if not path_text:
            error.update("Give the backup file.")
            return
        if not passphrase:
            error.update("Give the backup's passphrase.")
            return
        try:
            path = Path(path_text).expanduser().absolute()
        except RuntimeError:  # ~name of no such user
            error.update(f"No such home folder: {path_text.split('/')[0]}.")
            return
        error.update("")
        self._busy(True)
        self.query_one(".dialog").mount(ProgressBar(id="restore-progress", show_eta=False),
                                        before="#restore-error")
        self.run_worker(lambda: self._restore(path, passphrase.encode("utf-8")), thread=True,
                        exclusive=True, group="restore", exit_on_error=False)

    def _restore(self, path: Path, passphrase: bytes) -> None:
        """In the worker thread: restore the file; hand the result back to the screen.

        The restore runs to its end even if the app closes meanwhile (progress is then not
        shown), so a home is never left half restored by quitting.
        """
        def progress(done: int, total: int) -> None:
            with contextlib.suppress(RuntimeError):  # the app has stopped
                self.app.call_from_thread(self._progress, done, total)

        try:
            report = self.setup.restore(path, passphrase, progress)
        except MeshcrewError as exc:
            self._tell(self._failed, str(exc))
            return
        except Exception as exc:  # a bug: say it in the dialog rather than end the app
            self._tell(self._failed, f"The restore failed: {exc!r}")
            return
        self._tell(self._restored, report)

    def _tell(self, callback: Callable[[Any], None], value: Any) -> None:
        """Run ``callback(value)`` in the app's thread, if the app still runs."""
        with contextlib.suppress(RuntimeError):
            self.app.call_from_thread(callback, value)

    def _progress(self, done: int, total: int) -> None:
        for bar in self.query("#restore-progress").results(ProgressBar):
            bar.update(total=total, progress=done)

    def _failed(self, problem: str) -> None:
        for bar in self.query("#restore-progress"):
            bar.remove()
        self.query_one("#restore-error", Label).update(problem)
        self._busy(False)

    def _restored(self, report: RestoreReport) -> None:
        for bar in self.query("#restore-progress"):
            bar.remove()
        self.report = report
        self._busy(False)
        for field in ("#restore-path", "#restore-passphrase"):
            self.query_one(field, Input).disabled = True
        self._open()

    def _open(self) -> None:
        """Open the home folder with the restored identity (in the app's thread)."""
        report = self.report
        assert report is not None
        key_passphrase = self.query_one("#restore-key-passphrase", Input).value
        try:
            opened = self.setup.open(key_passphrase.encode("utf-8") if key_passphrase else None)
        except IdentityError as exc:
            problem = (str(exc) if not identity.is_sealed(Home(self.setup.home_path).key_file) else
                       "Your key has a passphrase of its own: give it above to open it."
                       if not key_passphrase else "That is not your key's passphrase.")
            self.query_one("#restore-error", Label).update(
                f"Restored {report.records:,} records. {problem}")
            self.query_one("#restore-key-passphrase", Input).focus()
            return
        except MeshcrewError as exc:
            self.query_one("#restore-error", Label).update(
                f"Restored {report.records:,} records. {exc}")
            return
        refused = f"; {len(report.rejected)} refused (see Sync health)" if report.rejected else ""
        self.app.notify(f"Welcome back, {report.name}: {report.records:,} records of "
                        f"{report.spaces} space{'s' if report.spaces != 1 else ''} "
                        f"restored{refused}. Your node syncs what was written since.",
                        title="Restored", timeout=10)
        self.dismiss(opened)

    def _busy(self, busy: bool) -> None:
        self.working = busy
        for button in self.query(Button):
            button.disabled = busy

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.action_cancel()

    def action_cancel(self) -> None:
        """Close without restoring (not while restoring, nor once restored: the identity is
        there now, and opening it is the only way on)."""
        if self.report is not None:
            self.query_one("#restore-error", Label).update(
                "Your identity is restored; give your key's passphrase to open it (or quit: "
                "meshcrew asks for it at the next start).")
        elif not self.working:
            self.dismiss(None)
