"""Invite: make a code for a space, show it as text and as a QR code, copy it."""

from __future__ import annotations

from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Label, Select, Static

from meshcrew.tui.formatting import when
from meshcrew.tui.screens.base import MeshcrewModal
from meshcrew.tui.widgets.qr import qr_text

DAY_MS = 24 * 60 * 60 * 1000
EXPIRY_CHOICES = [("1 day", 1), ("7 days", 7), ("30 days", 30)]
USES_CHOICES = [("1 person", 1), ("2 people", 2), ("5 people", 5), ("10 people", 10)]


class InviteScreen(MeshcrewModal[str]):
    """Make an invite to a space; dismisses with the code (None if none was made).

    Args:
        space_id: the space to invite to.
    """

    def __init__(self, space_id: bytes) -> None:
        super().__init__()
        self.space_id = space_id
        self.code: str | None = None

    def compose(self) -> ComposeResult:
        """How many people and how long, then the code."""
        with VerticalScroll(classes="dialog form"):
            yield Static("Invite to this space", classes="title")
            yield Static("An invite code lets people join once each; give it only to them, "
                         "over a channel you trust.", classes="hint")
            with Horizontal(classes="row", id="invite-options"):
                yield Select(USES_CHOICES, value=1, allow_blank=False, id="uses")
                yield Select(EXPIRY_CHOICES, value=7, allow_blank=False, id="expiry")
            yield Label("", id="form-error", classes="error")
            yield Static("", id="invite-code")
            yield Static("", id="invite-hint", classes="hint")
            with Horizontal(classes="buttons"):
                yield Button("Make invite", id="make", variant="primary")
                yield Button("Copy code", id="copy")
                yield Button("Close", id="close")
            with Horizontal(id="qr-box"):
                yield Static("", id="qr")

    def on_mount(self) -> None:
        """Only the options until a code is made."""
        for selector in ("#invite-code", "#qr-box", "#copy"):
            self.query_one(selector).display = False
        self.query_one("#make", Button).focus()

    @on(Button.Pressed, "#make")
    def make(self) -> None:
        """Make the invite and show it."""
        uses = self.query_one("#uses", Select).value
        days = self.query_one("#expiry", Select).value
        assert isinstance(uses, int)
        assert isinstance(days, int)
        expires = self.backend.now() + days * DAY_MS
        code = self.attempt(lambda: self.backend.invite(self.space_id, uses=uses,
                                                        expires_ms=expires),
                            into=self.query_one("#form-error", Label))
        if code is None:
            return
        self.code = code
        self.query_one("#invite-code", Static).update(escape(code))
        self.query_one("#invite-hint", Static).update(
            f"Admits {uses} {'person' if uses == 1 else 'people'} until "
            f"{when(expires, self.tz)}. They paste it into meshcrew's Join screen.")
        self.query_one("#qr", Static).update(qr_text(code))
        for selector in ("#invite-code", "#qr-box", "#copy"):
            self.query_one(selector).display = True
        for selector in ("#invite-options", "#make"):
            self.query_one(selector).display = False
        self.query_one("#copy", Button).focus()

    @on(Button.Pressed, "#copy")
    def copy(self) -> None:
        """Put the code on the clipboard (terminals that allow OSC 52 do)."""
        if self.code is not None:
            self.app.copy_to_clipboard(self.code)
            self.notify("Copied, if your terminal lets apps set the clipboard; otherwise "
                        "select the code with the mouse.", title="Invite code")

    @on(Button.Pressed, "#close")
    def close(self) -> None:
        """Done."""
        self.dismiss(self.code)

    def action_cancel(self) -> None:
        """Escape closes too (the invite stays valid once made)."""
        self.dismiss(self.code)
