"""Restore from a backup on the first run: a new laptop gets the member back (the same file as
``meshcrew restore``, see :mod:`meshcrew.node.home_backup`).

The file is opened and its records appended in a worker thread, with a progress bar; then the
home folder is opened in the app's thread as after "Create my identity". A key file that has
a passphrase of its own asks for it before it opens; nothing is restored twice.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, Static

from meshcrew import identity
from meshcrew.errors import IdentityError, MeshcrewError
from meshcrew.home import Home
from meshcrew.node.home_backup import RestoreReport
from meshcrew.tui.launch import Opened, Setup
from meshcrew.tui.screens.file_work import FileWorkDialog


class RestoreScreen(FileWorkDialog[Opened]):
    """Ask for the backup file and its passphrase; dismisses with the opened home folder.

    Args:
        setup: the first run's setup (it restores into its home folder, then opens it).
    """

    PREFIX = "restore"

    def __init__(self, setup: Setup) -> None:
        super().__init__()
        self.setup = setup
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
        passphrase = self.query_one("#restore-passphrase", Input).value
        path = self.path_from(self.query_one("#restore-path", Input).value,
                              "Give the backup file.")
        if path is None:
            return
        if not passphrase:
            self.error.update("Give the backup's passphrase.")
            return
        secret = passphrase.encode("utf-8")
        self.start(lambda progress: self.setup.restore(path, secret, progress), self._restored)

    def _restored(self, report: RestoreReport) -> None:
        self.report = report
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
            self.error.update(f"Restored {report.records:,} records. {problem}")
            self.query_one("#restore-key-passphrase", Input).focus()
            return
        except MeshcrewError as exc:
            self.error.update(f"Restored {report.records:,} records. {exc}")
            return
        refused = f"; {len(report.rejected)} refused (see Sync health)" if report.rejected else ""
        self.app.notify(f"Welcome back, {report.name}: {report.records:,} records of "
                        f"{report.spaces} space{'s' if report.spaces != 1 else ''} "
                        f"restored{refused}. Your node syncs what was written since.",
                        title="Restored", timeout=10)
        self.dismiss(opened)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.action_cancel()

    def action_cancel(self) -> None:
        """Close without restoring (not while restoring, nor once restored: the identity is
        there now, and opening it is the only way on)."""
        if self.report is not None:
            self.error.update("Your identity is restored; give your key's passphrase to open "
                              "it (or quit: meshcrew asks for it at the next start).")
        else:
            super().action_cancel()
