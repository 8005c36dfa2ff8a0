"""A space's settings and the history of their changes; how to change them.

In a crew or dyad a change is a proposal (``n`` opens the proposal form with the change); in a
congregation that has not decided otherwise, ``n`` changes the settings at once.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Header, Static

from meshcrew.errors import MeshcrewError
from meshcrew.service.settings_text import parse_change
from meshcrew.tui.formatting import when
from meshcrew.tui.messages import RecordsChanged
from meshcrew.tui.screens.base import MeshcrewScreen
from meshcrew.tui.screens.forms import Field, FieldsScreen
from meshcrew.tui.screens.proposals import propose

CHANGE_HINT = "name=Sun; rhythm=weekly:thu; quorum=60; purpose=..."


def describe_change(change: dict[str, object]) -> str:
    """What a change changes, in a line."""
    return ", ".join(f"{k.replace('_', ' ')} → {v}" for k, v in change.items())


class SettingsScreen(MeshcrewScreen):
    """A space's settings now, and every change made to them.

    Args:
        space_id: the space.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back", tooltip="Back to the space"),
        Binding("n", "change", "Change…", tooltip="Propose a change of the settings (or, in a "
                "congregation that lets members, make it)"),
    ]

    def __init__(self, space_id: bytes) -> None:
        super().__init__()
        self.space_id = space_id
        self.by_proposal = True

    def compose(self) -> ComposeResult:
        """The settings above the history."""
        yield Header()
        with VerticalScroll():
            yield Static("", id="settings-now", classes="section")
            yield DataTable(id="settings-history", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        """Set up the table and fill it."""
        self.query_one("#settings-history", DataTable).add_columns(
            "when", "who", "what changed", "by proposal")
        self.reload()

    def reload(self) -> None:
        """Read the settings and their history again."""
        current = self.attempt(lambda: self.backend.settings(self.space_id))
        history = self.attempt(lambda: self.backend.settings_history(self.space_id))
        if current is None or history is None:
            return
        self.by_proposal = current.edit_by_proposal
        self.sub_title = f"{current.name} · settings"
        text = Text()
        quorum = "everyone" if current.quorum == 100 else f"{current.quorum}%"
        for label, value in (("Name", current.name), ("Purpose", current.purpose or "—"),
                             ("Rhythm", current.rhythm), ("Quorum", quorum)):
            text.append(f"{label:<8}", style="bold")
            text.append(f"{value}\n")
        text.append("\nChanges are made by a proposal that passed (n proposes one)."
                    if current.edit_by_proposal else
                    "\nAny member may change these settings (n); the congregation can decide "
                    "that changes need a proposal (edits=proposal).", style="dim")
        self.query_one("#settings-now", Static).update(text)
        table = self.query_one("#settings-history", DataTable)
        table.clear()
        for entry in reversed(history):
            table.add_row(when(entry.ts, self.tz), entry.author_name,
                          describe_change(dict(entry.change)), entry.by_title or "—")
        if not history:
            table.add_row("—", "", "no change since the space began", "")

    def on_records_changed(self, message: RecordsChanged) -> None:
        """Reload when the space changed."""
        if self.space_id in message.space_ids:
            self.reload()

    def action_change(self) -> None:
        """Propose a change (or make it, where members may)."""
        if self.by_proposal:
            propose(self, self.space_id)
            return

        def submit(values: dict[str, str | bool]) -> str | None:
            try:
                pairs = [p for p in str(values["change"]).split(";") if p.strip()]
                self.backend.change_settings(self.space_id, parse_change(pairs))
            except MeshcrewError as exc:
                return str(exc)
            return None

        self.app.push_screen(FieldsScreen("Change the settings", [
            Field("change", "What to change", placeholder=CHANGE_HINT, required=True)],
            submit=submit))
