"""The check-in form: how I am arriving, energy 1-5, the compass scales, an ask for support.

The form checks what it can before anything is signed (the text is there and not too long, an
energy is chosen); the service checks the rest, and its refusal is shown in the form, which
stays open with everything typed.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Input, Label, Select, Static, TextArea

from meshcrew.spaces import COMPASS_SCALES
from meshcrew.spaces.posts import MAX_ASK_CHARS, MAX_TEXT_CHARS
from meshcrew.tui.screens.base import MeshcrewModal

ENERGY_CHOICES = [("1 · depleted", 1), ("2 · low", 2), ("3 · steady", 3), ("4 · good", 4),
                  ("5 · full of energy", 5)]


def compass_choices(low: str, high: str) -> list[tuple[str, int]]:
    """The five scores of a scale, its ends named."""
    return [(f"1 · {low}", 1), ("2", 2), ("3", 3), ("4", 4), (f"5 · {high}", 5)]


class CheckInScreen(MeshcrewModal[bytes]):
    """Check in to a space; dismisses with the check-in's record id.

    Args:
        space_id: where to check in.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "send", "Check in", tooltip="Sign and send the check-in"),
        Binding("escape", "cancel", "Cancel", tooltip="Close without checking in"),
    ]

    def __init__(self, space_id: bytes) -> None:
        super().__init__()
        self.space_id = space_id

    def compose(self) -> ComposeResult:
        """The fields."""
        with VerticalScroll(classes="dialog form"):
            yield Static("Check in  (ctrl+s sends)", classes="title")
            yield Label("", id="form-error", classes="error")
            yield Label("How are you arriving?")
            yield TextArea(id="arrival", soft_wrap=True, show_line_numbers=False)
            yield Label("Energy")
            yield Select(ENERGY_CHOICES, prompt="choose 1 to 5", id="energy")
            yield Static("Compass (optional): 1 is murky waters, 5 is your north star.",
                         classes="hint")
            for scale in COMPASS_SCALES:
                with Horizontal(classes="compass-scale"):
                    yield Label(scale.question)
                    yield Select(compass_choices(scale.low, scale.high), prompt="–",
                                 id=f"compass-{scale.key}", compact=True)
            yield Label("An ask for support (optional)")
            yield Input(placeholder="e.g. someone to read my grant draft", id="ask",
                        max_length=MAX_ASK_CHARS)
            with Horizontal(classes="buttons"):
                yield Button("Check in", id="send", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        """Start with the arrival text."""
        self.query_one("#arrival", TextArea).focus()

    def problems(self) -> list[str]:
        """What must be fixed before the check-in can be signed (empty when it can)."""
        found = []
        text = self.query_one("#arrival", TextArea).text.strip()
        if not text:
            found.append("Say how you are arriving (a line is enough).")
        elif len(text) > MAX_TEXT_CHARS:
            found.append(f"The arrival text is {len(text)} characters; at most "
                         f"{MAX_TEXT_CHARS} fit.")
        if not isinstance(self.query_one("#energy", Select).value, int):
            found.append("Choose your energy, 1 to 5.")
        return found

    @on(Button.Pressed, "#send")
    def action_send(self) -> None:
        """Check in, or show what is missing."""
        error = self.query_one("#form-error", Label)
        problems = self.problems()
        if problems:
            error.update("\n".join(problems))
            self.query_one(VerticalScroll).scroll_home(animate=False)
            return
        energy = self.query_one("#energy", Select).value
        assert isinstance(energy, int)
        compass = {}
        for scale in COMPASS_SCALES:
            score = self.query_one(f"#compass-{scale.key}", Select).value
            if isinstance(score, int):
                compass[scale.key] = score
        ask = self.query_one("#ask", Input).value.strip() or None
        text = self.query_one("#arrival", TextArea).text.strip()
        record_id = self.attempt(lambda: self.backend.checkin(
            self.space_id, text=text, energy=energy, compass=compass, ask=ask), into=error)
        if record_id is None:
            self.query_one(VerticalScroll).scroll_home(animate=False)
        else:
            self.notify("Checked in. Crewmates see it when their node next hears from yours.",
                        title="Checked in")
            self.dismiss(record_id)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)
