"""A member's devices: list them (when each was linked and last heard of), link a new laptop
from its link code, revoke a lost one.

The same calls as ``meshcrew devices``, ``devices add CODE`` and ``devices revoke`` (through the
backend: the member service, and the node for a link). Only the laptop holding the member key
links and revokes (docs/spaces.md, *A member's devices*); on a linked laptop the screen lists
the devices and says where to go.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DataTable, Footer, Header, Label, Static, TextArea

from meshcrew.errors import MeshcrewError
from meshcrew.identity import fingerprint
from meshcrew.service.devices import DeviceEntry
from meshcrew.tui.formatting import ago, plural, when
from meshcrew.tui.messages import RecordsChanged
from meshcrew.tui.screens.base import MeshcrewModal, MeshcrewScreen
from meshcrew.tui.screens.forms import ConfirmScreen

if TYPE_CHECKING:
    from meshcrew.node.reports import LinkResult

ONLY_THE_FIRST = ("This laptop is a linked device: only the laptop that holds your member key "
                  "can link or revoke devices. Do it there.")


def revoke_consequences(device: DeviceEntry) -> str:
    """What revoking does, for the confirmation."""
    return (f"The laptop {device.fingerprint} is shut out of every space it is in "
            f"({plural(device.spaces, 'space')}), and the keys there rotate at once.\n\n"
            "• It cannot read anything written from now on, even if someone else holds it.\n"
            "• What it already holds stays readable on it: revoking cannot take that back.\n"
            "• Its records written before the revocation still count.\n"
            "• To use that laptop again, link it afresh (a new key, from its first screen).")


class DevicesScreen(MeshcrewScreen):
    """This member's devices, with linking and revoking."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back", tooltip="Back to the previous screen"),
        Binding("a", "link", "Link a device", tooltip="Link a new laptop of yours from the code "
                "it shows"),
        Binding("r", "revoke", "Revoke device", tooltip="Revoke the highlighted device (a lost "
                "laptop): it reads nothing written after"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[DeviceEntry] = []

    def compose(self) -> ComposeResult:
        """A note on this laptop's part, then the devices."""
        yield Header()
        yield Static("", id="devices-note", classes="panel")
        yield DataTable(id="devices", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        """Read the devices."""
        self.sub_title = "Your devices"
        self.query_one("#devices-note").border_title = "Devices"
        table = self.query_one("#devices", DataTable)
        table.add_columns("Device", "Which", "Linked", "Last seen", "In", "Status")
        self.reload()
        table.focus()

    def on_records_changed(self, _message: RecordsChanged) -> None:
        """Certificates, revocations and new records change the list."""
        self.reload()

    @property
    def holds_member_key(self) -> bool:
        """Whether this laptop holds the member key (it is not anyone's linked device)."""
        me = self.backend.identity.public_key
        return not self.rows or any(row.first and row.key == me for row in self.rows)

    def reload(self) -> None:
        """Read the devices again."""
        rows = self.attempt(self.backend.devices)
        if rows is None:
            return
        self.rows = rows
        me = self.backend.identity.public_key
        now = self.backend.now()
        table = self.query_one("#devices", DataTable)
        cursor = table.cursor_row
        table.clear()
        for row in rows:
            which = ", ".join(part for part in (
                "this laptop" if row.key == me else "", "member key" if row.first else "")
                if part) or "another laptop"
            table.add_row(row.fingerprint, which,
                          when(row.linked_ts, self.tz) if row.linked_ts else "",
                          ago(row.last_ts, now), plural(row.spaces, "space"),
                          "revoked" if row.revoked else "current", key=row.key.hex())
        if rows:
            table.move_cursor(row=min(max(cursor, 0), len(rows) - 1))
        note = self.query_one("#devices-note", Static)
        if not rows:
            note.update("Each laptop of yours has a key of its own under your member identity. "
                        "They are listed once you are in a space.\n"
                        "a: link a new laptop (it shows a code on its first screen)")
        elif self.holds_member_key:
            note.update("This laptop holds your member key: link new laptops here (a) and "
                        "revoke a lost one (r). Each laptop writes as you, with a key of its "
                        "own.")
        else:
            note.update(ONLY_THE_FIRST)

    def action_link(self) -> None:
        """Paste a new laptop's link code, compare its fingerprint, link it."""
        if not self.holds_member_key:
            self.notify(ONLY_THE_FIRST, severity="warning", timeout=8)
            return
        self.app.push_screen(ApproveLinkScreen(), self._linked)

    def _linked(self, result: LinkResult | None) -> None:
        if result is None:
            return
        self.notify(f"Linked {fingerprint(result.device)} in "
                    f"{plural(result.spaces, 'space')}; its keys are on their way.",
                    title="Device linked")
        self.reload()

    def action_revoke(self) -> None:
        """Ask, then revoke the highlighted device everywhere and rotate the keys."""
        table = self.query_one("#devices", DataTable)
        if not self.rows or table.cursor_row < 0 or table.cursor_row >= len(self.rows):
            self.notify("No device to revoke.", severity="warning")
            return
        device = self.rows[table.cursor_row]
        if not self.holds_member_key:
            self.notify(ONLY_THE_FIRST, severity="warning", timeout=8)
        elif device.first:
            self.notify("That is the laptop your member key lives on: it cannot be revoked. "
                        "Pick a linked laptop.", severity="warning", timeout=8)
        elif device.revoked:
            self.notify(f"{device.fingerprint} is revoked already.")
        else:
            self.app.push_screen(
                ConfirmScreen(f"Revoke the laptop {device.fingerprint}?",
                              revoke_consequences(device), "Revoke"),
                lambda confirmed: self._revoke(device) if confirmed else None)

    def _revoke(self, device: DeviceEntry) -> None:
        if self.attempt(lambda: self.backend.revoke_device(device.key)) is not None:
            self.notify(f"Revoked {device.fingerprint} and rotated the keys: it reads nothing "
                        "written from now on.", title="Device revoked")
            self.reload()


class ApproveLinkScreen(MeshcrewModal["LinkResult"]):
    """Paste a new laptop's link code, compare its fingerprint, link it; dismisses with how
    the link went."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", tooltip="Close without linking"),
        Binding("ctrl+s", "link", "Link it", tooltip="Link the laptop of the code (once its "
                "fingerprint matches)"),
    ]

    def compose(self) -> ComposeResult:
        """The code, the fingerprint to compare, the buttons."""
        with Vertical(classes="dialog"):
            yield Static("Link a new laptop of yours  (ctrl+s links)", classes="title")
            yield Static("On the new laptop, choose “This is another device of mine” on "
                         "meshcrew's first screen (or run meshcrew init --link), and paste "
                         "the code it shows (mcl1-…) here:", classes="hint")
            yield TextArea(id="link-code-input", soft_wrap=True, show_line_numbers=False)
            yield Static("", id="link-device")
            yield Label("", id="link-stage", classes="hint")
            yield Label("", id="form-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Link it", id="link", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        """Paste at once."""
        self.query_one("#link-device").display = False
        self.query_one("#link-code-input", TextArea).focus()

    @on(TextArea.Changed, "#link-code-input")
    def read_code(self) -> bool:
        """Show the new laptop's fingerprint as soon as the code reads (or why it does not);
        whether it reads."""
        from meshcrew.node.linking import decode_link_code

        text = self.query_one("#link-code-input", TextArea).text
        shown = self.query_one("#link-device", Static)
        error = self.query_one("#form-error", Label)
        if not text.strip():
            shown.display = False
            error.update("")
            return False
        try:
            code = decode_link_code(text)
        except MeshcrewError as exc:
            shown.display = False
            error.update(escape(str(exc)))
            return False
        error.update("")
        shown.update(f"The new laptop's fingerprint:  [b]{fingerprint(code.device)}[/b]\n"
                     "Check that the new laptop shows the same before you link it.")
        shown.display = True
        return True

    @on(Button.Pressed, "#link")
    def action_link(self) -> None:
        """Reach the new laptop and link it."""
        if self.query_one("#link", Button).disabled:
            return  # a link is under way
        text = self.query_one("#link-code-input", TextArea).text
        error = self.query_one("#form-error", Label)
        if not text.strip():
            error.update("Paste the new laptop's link code first.")
            return
        if not self.read_code():
            return
        self.query_one("#link", Button).disabled = True
        self.query_one("#link-stage", Label).update(
            "Reaching the new laptop, then sending it your spaces…")
        self.run_worker(self._link(text), exclusive=True, group="link")

    async def _link(self, text: str) -> None:
        try:
            result = await self.backend.link_device(text)
        except MeshcrewError as exc:
            self.query_one("#form-error", Label).update(escape(str(exc)))
            self.query_one("#link-stage", Label).update("")
            self.query_one("#link", Button).disabled = False
            return
        self.dismiss(result)

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.workers.cancel_group(self, "link")
        self.dismiss(None)

    def action_cancel(self) -> None:
        """Escape: stop linking (if under way) and close."""
        self._cancel()
