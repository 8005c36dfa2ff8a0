"""What every meshcrew screen shares: the backend, refusals shown as notices, palette entries.

Screens ask the app they run in only for what :class:`ScreenHost` names (the backend, the time
zone, the read marks, the first run's outcome): they never import the app, which imports them.

Every binding with a description is also a command palette entry (its tooltip is the help
line), so each action a screen offers can be found by name with ctrl+p.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import tzinfo
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from textual.app import SystemCommand
from textual.binding import Binding
from textual.screen import ModalScreen, Screen
from textual.widgets import Label

from meshcrew.errors import MeshcrewError
from meshcrew.service import PostEntry

if TYPE_CHECKING:
    from meshcrew.tui.backend import Backend
    from meshcrew.tui.launch import Opened
    from meshcrew.tui.read_marks import ReadMarks

T = TypeVar("T")


class ScreenHost(Protocol):
    """What the screens need of their app besides Textual's :class:`~textual.app.App`
    (:class:`~meshcrew.tui.app.MeshcrewApp` is one, and mypy checks it there)."""

    prepared: bool
    """Whether the home screen has done its first reads (in a worker, for a big replica)."""

    @property
    def backend(self) -> Backend | None:
        """What the screens read and write; None until the first run is done."""

    @property
    def tz(self) -> tzinfo | None:
        """The time zone times are shown in (None: the machine's)."""

    @property
    def read_marks(self) -> ReadMarks:
        """What has been read, for the unread counts."""

    @property
    def prepare_above(self) -> int:
        """From how many records the home screen prepares the spaces in a worker."""

    def connect_opened(self, opened: Opened) -> None:
        """Use what a first run (or a restore) opened."""


class BackendAccess:
    """Mixed into every meshcrew screen: typed access to the app, its backend and time zone."""

    @property
    def host(self) -> ScreenHost:
        """What the screen may ask of its app."""
        return cast("ScreenHost", cast(Screen[Any], self).app)

    @property
    def backend(self) -> Backend:
        """The app's backend (present on every screen after the first run)."""
        backend = self.host.backend
        assert backend is not None, "no backend before the first run completes"
        return backend

    @property
    def tz(self) -> tzinfo | None:
        """The time zone times are shown in (None: the machine's)."""
        return self.host.tz

    def attempt(self, action: Callable[[], T], *, into: Label | None = None) -> T | None:
        """Run a backend call; on a refusal show why and return None.

        Args:
            action: the call.
            into: a label to write the refusal in (a form's error line); default a notice.
        """
        try:
            return action()
        except MeshcrewError as exc:
            if into is not None:
                into.update(str(exc))
            else:
                cast(Screen[Any], self).notify(str(exc), title="Refused", severity="error",
                                               timeout=8)
            return None

    def mark_read(self, log: Sequence[PostEntry]) -> None:
        """Everything in ``log`` has been seen (for the home screen's unread counts)."""
        try:
            self.host.read_marks.mark_read(log)
        except OSError as exc:
            cast(Screen[Any], self).notify(
                f"Cannot save what you have read: {exc.strerror or exc}.", severity="warning")

    def palette(self) -> Iterable[SystemCommand]:
        """Command palette entries: one per described binding of this screen."""
        screen = cast(Screen[Any], self)
        seen: set[str] = set()
        for cls in type(screen).__mro__:
            for binding in vars(cls).get("BINDINGS", ()):
                if (not isinstance(binding, Binding) or not binding.description
                        or binding.action in seen):
                    continue
                seen.add(binding.action)
                yield SystemCommand(binding.description,
                                    binding.tooltip or binding.description,
                                    _runner(screen, binding.action))


def _runner(screen: Screen[Any], action: str) -> Callable[[], Any]:
    async def run() -> None:
        await screen.run_action(action)

    return run


class MeshcrewScreen(BackendAccess, Screen[None]):
    """A full screen of the app."""


class MeshcrewModal(BackendAccess, ModalScreen[T | None]):
    """A dialog over the current screen; escape cancels it."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", tooltip="Close without doing anything")]  # noqa: RUF012

    def action_cancel(self) -> None:
        """Close without a result."""
        self.dismiss(None)
