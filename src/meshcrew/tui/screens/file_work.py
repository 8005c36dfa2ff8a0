"""What the backup and restore dialogs share: a file named by a person, and long work on it
in a worker thread with a progress bar, the dialog held open until it is done.

The work runs to its end even if the app closes meanwhile (progress and the result are then
not shown), so quitting never leaves a file or a home folder half written; a refusal
(:class:`~meshcrew.errors.MeshcrewError`) or any other failure is said in the dialog, never
ends the app.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from textual.widgets import Button, Label, ProgressBar

from meshcrew.errors import MeshcrewError
from meshcrew.tui.screens.base import MeshcrewModal

T = TypeVar("T")
R = TypeVar("R")

Progress = Callable[[int, int], None]


class FileWorkDialog(MeshcrewModal[T]):
    """A dialog that works on a file in a worker thread. Subclasses name their widgets
    ``{PREFIX}-error`` (a Label in a ``.dialog`` container) and call :meth:`path_from` and
    :meth:`start`."""

    PREFIX: ClassVar[str] = "file"

    def __init__(self) -> None:
        super().__init__()
        self.working = False
        """Whether the work runs (the dialog then stays until it is done)."""

    @property
    def error(self) -> Label:
        """The line that says what is wrong."""
        return self.query_one(f"#{self.PREFIX}-error", Label)

    def path_from(self, text: str, missing: str) -> Path | None:
        """The absolute path a person typed, or None (having said why) if there is none."""
        text = text.strip()
        if not text:
            self.error.update(missing)
            return None
        try:
            return Path(text).expanduser().absolute()
        except RuntimeError:  # ~name of no such user
            self.error.update(f"No such home folder: {text.split('/')[0]}.")
            return None

    def start(self, work: Callable[[Progress], R], done: Callable[[R], None]) -> None:
        """Run ``work(progress)`` in a worker thread behind a progress bar; then ``done``
        with its result in the app's thread (or the refusal in the error line)."""
        self.error.update("")
        self._busy(True)
        self.query_one(".dialog").mount(ProgressBar(id=f"{self.PREFIX}-progress",
                                                    show_eta=False),
                                        before=f"#{self.PREFIX}-error")

        def in_thread() -> None:
            try:
                result = work(lambda n, total: self._tell(self._progress, n, total))
            except MeshcrewError as exc:
                self._tell(self._failed, str(exc))
                return
            except Exception as exc:  # a bug: say it here rather than end the app
                self._tell(self._failed, f"It failed: {exc!r}")
                return
            self._tell(self._finished, done, result)

        self.run_worker(in_thread, thread=True, exclusive=True, group=self.PREFIX,
                        exit_on_error=False)

    def _tell(self, callback: Callable[..., None], *args: Any) -> None:
        """Run ``callback(*args)`` in the app's thread, if the app still runs."""
        with contextlib.suppress(RuntimeError):  # the app has stopped
            self.app.call_from_thread(callback, *args)

    def _progress(self, done: int, total: int) -> None:
        for bar in self.query(f"#{self.PREFIX}-progress").results(ProgressBar):
            bar.update(total=total, progress=done)

    def _failed(self, problem: str) -> None:
        self._settle()
        self.error.update(problem)

    def _finished(self, done: Callable[[R], None], result: R) -> None:
        self._settle()
        done(result)

    def _settle(self) -> None:
        for bar in self.query(f"#{self.PREFIX}-progress"):
            bar.remove()
        self._busy(False)

    def _busy(self, busy: bool) -> None:
        self.working = busy
        for button in self.query(Button):
            button.disabled = busy

    def action_cancel(self) -> None:
        """Close without doing anything (not while the work runs)."""
        if not self.working:
            self.dismiss(None)
