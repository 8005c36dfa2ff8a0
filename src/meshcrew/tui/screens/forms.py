"""Small dialogs shared by the screens: a confirmation that says what will happen, a one-field
prompt (a reply), and a short form of text fields (an ask, a gathering, a follow-up)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Checkbox, Input, Label, Static

from meshcrew.tui.screens.base import MeshcrewModal


class ConfirmScreen(MeshcrewModal[bool]):
    """Ask before doing something that cannot be undone; dismisses True to go ahead.

    Args:
        title: the question, e.g. "Leave Tuesday crew?".
        consequences: what will happen, in full sentences.
        confirm: the label of the button that goes ahead.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", tooltip="Close without doing anything"),
    ]

    def __init__(self, title: str, consequences: str, confirm: str) -> None:
        super().__init__()
        self.title_text = title
        self.consequences = consequences
        self.confirm = confirm

    def compose(self) -> ComposeResult:
        """The question, the consequences, two buttons."""
        with Vertical(classes="dialog"):
            yield Static(self.title_text, classes="title")
            yield Static(self.consequences, classes="consequences")
            with Horizontal(classes="buttons"):
                yield Button(self.confirm, id="confirm", variant="error")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        """Cancel is the default: going ahead takes a deliberate move."""
        self.query_one("#cancel", Button).focus()

    @on(Button.Pressed, "#confirm")
    def _confirm(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)


class PromptScreen(MeshcrewModal[str]):
    """Ask for one line of text; dismisses with it (stripped), or None if cancelled.

    Args:
        title: what is asked, e.g. "Reply to Bo".
        context: a line of context shown above the field (e.g. the post answered).
        placeholder: the field's placeholder.
        max_length: the longest text accepted.
    """

    def __init__(self, title: str, context: str = "", *, placeholder: str = "",
                 max_length: int = 2000) -> None:
        super().__init__()
        self.title_text = title
        self.context = context
        self.placeholder = placeholder
        self.max_length = max_length

    def compose(self) -> ComposeResult:
        """The title, the context, the field."""
        with Vertical(classes="dialog"):
            yield Static(self.title_text, classes="title")
            if self.context:
                yield Static(self.context, classes="context")
            yield Input(placeholder=self.placeholder, max_length=self.max_length, id="prompt")
            yield Label("", id="prompt-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Send", id="send", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        """Type at once."""
        self.query_one("#prompt", Input).focus()

    @on(Input.Submitted, "#prompt")
    @on(Button.Pressed, "#send")
    def _send(self) -> None:
        text = self.query_one("#prompt", Input).value.strip()
        if not text:
            self.query_one("#prompt-error", Label).update("Write something first.")
            return
        self.dismiss(text)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)


@dataclass(frozen=True, slots=True)
class Field:
    """One line of a :class:`FieldsScreen`."""

    name: str
    label: str
    placeholder: str = ""
    required: bool = False
    max_length: int = 2000


class FieldsScreen(MeshcrewModal[dict[str, str | bool]]):
    """A short form; dismisses with each field's text (stripped) and the checkbox's value.

    Args:
        title: what the form makes, e.g. "New ask".
        fields: the text fields, in order.
        checkbox: the label of one optional checkbox (its value is under ``"checkbox"``).
        submit: called with the values before the form closes (it posts what they make);
            returns a problem to show in the form, or None when done.
    """

    def __init__(self, title: str, fields: list[Field], *, checkbox: str | None = None,
                 submit: Callable[[dict[str, str | bool]], str | None] | None = None) -> None:
        super().__init__()
        self.title_text = title
        self.fields = fields
        self.checkbox = checkbox
        self.submit = submit

    def compose(self) -> ComposeResult:
        """The fields, the checkbox, the buttons."""
        with Vertical(classes="dialog"):
            yield Static(self.title_text, classes="title")
            for item in self.fields:
                yield Label(item.label + ("" if item.required else " (optional)"))
                yield Input(placeholder=item.placeholder, max_length=item.max_length,
                            id=f"field-{item.name}")
            if self.checkbox is not None:
                yield Checkbox(self.checkbox, id="checkbox")
            yield Label("", id="form-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Post", id="send", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        """Start with the first field."""
        self.query(Input).first().focus()

    @on(Input.Submitted)
    @on(Button.Pressed, "#send")
    def _send(self) -> None:
        values: dict[str, str | bool] = {
            item.name: self.query_one(f"#field-{item.name}", Input).value.strip()
            for item in self.fields}
        missing = [item.label for item in self.fields if item.required and not values[item.name]]
        error = self.query_one("#form-error", Label)
        if missing:
            error.update(f"{missing[0]} is needed.")
            return
        if self.checkbox is not None:
            values["checkbox"] = self.query_one("#checkbox", Checkbox).value
        problem = self.submit(values) if self.submit is not None else None
        if problem is not None:
            error.update(problem)
            return
        self.dismiss(values)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)
