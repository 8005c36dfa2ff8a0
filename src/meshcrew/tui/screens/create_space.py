"""Start a crew, dyad or congregation: name, purpose, check-in rhythm, congregation."""

from __future__ import annotations

from datetime import datetime, timedelta

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from meshcrew.spaces import Period, Rhythm, SpaceKind
from meshcrew.spaces.settings import MAX_PURPOSE_CHARS, MAX_SPACE_NAME_CHARS
from meshcrew.tui.screens.base import MeshcrewModal

_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class CreateSpaceScreen(MeshcrewModal[bytes]):
    """The new-space form; dismisses with the new space's id."""

    def compose(self) -> ComposeResult:
        """The fields."""
        parents = [(s.name or s.id.hex()[:8], s.id) for s in self.backend.spaces()
                   if s.kind == "congregation" and s.my_status == "active" and s.name]
        with VerticalScroll(classes="dialog form"):
            yield Static("Start a space", classes="title")
            yield Label("", id="form-error", classes="error")
            yield Label("Name")
            yield Input(placeholder="e.g. Tuesday crew", id="space-name",
                        max_length=MAX_SPACE_NAME_CHARS)
            yield Label("Kind")
            yield Select([("crew (3–8 people)", "crew"), ("dyad (a pair)", "dyad"),
                          ("congregation (30–200)", "congregation")],
                         value="crew", allow_blank=False, id="space-kind")
            yield Label("Purpose")
            yield Input(placeholder="what it is for (optional)", id="purpose",
                        max_length=MAX_PURPOSE_CHARS)
            yield Label("Check-in rhythm")
            with Horizontal(classes="row"):
                yield Select([(p.value, p.value) for p in Period], value="weekly",
                             allow_blank=False, id="period")
                yield Select([(name, index) for index, name in enumerate(_DAY_NAMES)], value=0,
                             allow_blank=False, id="weekday")
            if parents:
                yield Label("In congregation")
                yield Select(parents, prompt="none", id="parent")
            yield Checkbox("Joiners may read what was written before they joined", True,
                           id="history")
            with Horizontal(classes="buttons"):
                yield Button("Create", id="create", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        """Start with the name."""
        self.query_one("#space-name", Input).focus()

    @on(Select.Changed, "#period")
    def _period(self, event: Select.Changed) -> None:
        self.query_one("#weekday").display = event.value != Period.DAILY.value

    @on(Input.Submitted)
    @on(Button.Pressed, "#create")
    def create(self) -> None:
        """Found the space, or say what is wrong with the form."""
        error = self.query_one("#form-error", Label)
        name = self.query_one("#space-name", Input).value
        if not name.strip():
            error.update("Give the space a name.")
            self.query_one("#space-name", Input).focus()
            return
        parent: bytes | None = None
        found = self.query("#parent")
        if found:
            value = found.first(Select).value
            parent = value if isinstance(value, bytes) else None
        kind = str(self.query_one("#space-kind", Select).value)
        period = Period(str(self.query_one("#period", Select).value))
        weekday = self.query_one("#weekday", Select).value
        rhythm = Rhythm(period, weekday if isinstance(weekday, int) else 0, self._offset_min())
        space_id = self.attempt(lambda: self.backend.create_space(
            name, kind=SpaceKind(kind), purpose=self.query_one("#purpose", Input).value,
            parent=parent, rhythm=rhythm, history=self.query_one("#history", Checkbox).value),
            into=error)
        if space_id is None:
            self.query_one(VerticalScroll).scroll_home(animate=False)
        else:
            self.notify(f"Started {name.strip()}. Invite your crewmates with i.",
                        title="Space created")
            self.dismiss(space_id)

    def _offset_min(self) -> int:
        """Cycles start at midnight where the app shows times (the machine's zone)."""
        offset = datetime.now(self.tz).astimezone(self.tz).utcoffset() or timedelta()
        return int(offset.total_seconds() // 60)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)

