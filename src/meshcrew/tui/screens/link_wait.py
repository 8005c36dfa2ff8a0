"""A new laptop waits to be linked to its member ("This is another device of mine").

The first-run screen has made this laptop's own key and started the app's node; this screen
shows the link code (one line, also as a QR code) with this laptop's fingerprint, and waits
until the laptop that holds the member key approves it (the Devices screen there, or
``meshcrew devices add CODE``): the member's spaces arrive, then their keys. It is the new
device's side of ``meshcrew init --link`` (:func:`meshcrew.node.linking.wait_for_link`, through
the backend), with the same default wait.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Footer, Header, Label, ProgressBar, Static

from meshcrew.errors import MeshcrewError
from meshcrew.identity import fingerprint
from meshcrew.tui.device_calls import LINK_WAIT_S
from meshcrew.tui.launch import Setup
from meshcrew.tui.screens.base import MeshcrewScreen
from meshcrew.tui.screens.home import HomeScreen
from meshcrew.tui.widgets.qr import qr_text

if TYPE_CHECKING:
    from meshcrew.node.reports import LinkResult

CODE_LINE_CHARS = 64
"""The link code is shown in lines of this many characters (it is long: it carries the node's
addresses); the decoder ignores the line breaks, so it can be copied as shown."""


def code_lines(code: str) -> str:
    """``code`` cut into lines of :data:`CODE_LINE_CHARS`."""
    return "\n".join(code[i:i + CODE_LINE_CHARS] for i in range(0, len(code), CODE_LINE_CHARS))


def minutes(seconds: float) -> str:
    """A wait, as a person says it."""
    return f"{seconds / 60:.0f} minutes" if seconds >= 120 else f"{seconds:.0f} seconds"


class LinkWaitScreen(MeshcrewScreen):
    """Show a link code and wait for the laptop holding the member key to link this one.

    Args:
        setup: renames the key to the member's once linked (:meth:`Setup.linked`).
        within_s: how long each code is waited on.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "stop", "Stop waiting", tooltip="Stop waiting: the code stops "
                "working"),
    ]

    def __init__(self, setup: Setup, *, within_s: float = LINK_WAIT_S) -> None:
        super().__init__()
        self.setup = setup
        self.within_s = within_s
        self.code: str | None = None
        self.result: LinkResult | None = None

    def compose(self) -> ComposeResult:
        """The code, the fingerprint, the progress, the buttons, the QR code."""
        yield Header()
        with VerticalScroll(id="link-wait", classes="panel"):
            yield Static("Link this laptop to your member identity", classes="title")
            yield Static("On the laptop that holds your member key, open meshcrew's Devices "
                         "screen (d on the home screen), choose Link a device and paste this "
                         "code, or run  meshcrew devices add CODE  there:", classes="hint")
            yield Static("", id="link-code")
            yield Static("", id="link-fingerprint")
            yield ProgressBar(id="link-progress", show_eta=False, show_percentage=False)
            yield Label("", id="link-stage", classes="hint")
            yield Label("", id="link-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Continue", id="continue", variant="primary")
                yield Button("Copy code", id="copy")
                yield Button("Show a new code", id="again")
                yield Button("Stop waiting", id="stop")
            with Horizontal(id="qr-box"):
                yield Static("", id="qr")
        yield Footer()

    def on_mount(self) -> None:
        """Start the first wait at once."""
        self.sub_title = "a new laptop, waiting to be linked"
        self.query_one("#link-fingerprint", Static).update(
            f"This laptop's fingerprint is  [b]{self.backend.identity.fingerprint}[/b]\n"
            "The other laptop shows it when you paste the code: check that they match.")
        self.start()

    def _buttons(self, *shown: str) -> None:
        for name in ("continue", "copy", "again", "stop"):
            self.query_one(f"#{name}", Button).display = name in shown
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Escape stops a wait only while there is one (the footer shows it only then)."""
        if action == "stop":
            stop = self.query("#stop")  # none yet while the screen is being composed
            return bool(stop) and stop.first(Button).display
        return True

    @on(Button.Pressed, "#again")
    def start(self) -> None:
        """Wait for a link, with a new code."""
        self.code = None
        self.query_one("#link-code", Static).update("")
        self.query_one("#qr-box").display = False
        self.query_one("#link-error", Label).update("")
        self.query_one("#link-stage", Label).update("Starting this laptop's node…")
        bar = self.query_one("#link-progress", ProgressBar)
        bar.update(total=None, progress=0)
        bar.display = True
        self._buttons("stop")
        self.run_worker(self._wait(), exclusive=True, group="link")

    async def _wait(self) -> None:
        try:
            result = await self.backend.wait_for_link(self._show, within_s=self.within_s,
                                                      on_records=self._received)
        except MeshcrewError as exc:
            self._stopped(str(exc))
            return
        if result is None:
            self._stopped(f"No laptop of yours linked this one within "
                          f"{minutes(self.within_s)}; that code no longer works. Show a new "
                          "code to try again.")
            return
        self._linked(result)

    def _show(self, code: str) -> None:
        self.code = code
        self.query_one("#link-code", Static).update(escape(code_lines(code)))
        self.query_one("#qr", Static).update(qr_text(code))
        self.query_one("#qr-box").display = True
        self.query_one("#link-stage", Label).update(
            f"Waiting for your other laptop (up to {minutes(self.within_s)})…")
        self._buttons("copy", "stop")

    def _received(self, records: int) -> None:
        self.query_one("#link-stage", Label).update(
            f"Linking: {records:,} records of your spaces received…")

    def _stopped(self, why: str) -> None:
        self.code = None
        self.query_one("#link-progress").display = False
        self.query_one("#link-stage", Label).update("")
        self.query_one("#link-error", Label).update(why)
        self.query_one("#link-code", Static).update("")
        self.query_one("#qr-box").display = False
        self._buttons("again")
        self.query_one("#again", Button).focus()

    def _linked(self, result: LinkResult) -> None:
        self.result = result
        try:
            self.setup.linked(result)
        except MeshcrewError as exc:
            self.notify(f"Linked, but the key file keeps its old name: {exc}",
                        severity="warning", timeout=10)
        self.query_one("#link-progress").display = False
        self.query_one("#qr-box").display = False
        self.query_one("#link-code", Static).update("")
        self.query_one("#link-stage", Label).update("")
        self.query_one("#link-fingerprint", Static).update(
            f"[b]Linked to {escape(result.member_name)}.[/b]\n\n"
            f"Your member fingerprint is  [b]{fingerprint(result.member)}[/b]\n"
            "Compare it with the one your first laptop shows (in its title bar, or meshcrew "
            f"whoami).\n\n{result.spaces} of your spaces came across; their keys follow as "
            "your first laptop's node shares them, and their new records as they are written.")
        self.sub_title = f"a laptop of {result.member_name}"
        self._buttons("continue")
        self.query_one("#continue", Button).focus()

    @on(Button.Pressed, "#copy")
    def copy(self) -> None:
        """Put the code on the clipboard (terminals that allow OSC 52 do)."""
        if self.code is not None:
            self.app.copy_to_clipboard(self.code)
            self.notify("Copied, if your terminal lets apps set the clipboard; otherwise "
                        "select the code with the mouse.", title="Link code")

    @on(Button.Pressed, "#stop")
    def action_stop(self) -> None:
        """Stop waiting; the code stops working (a new one can be shown)."""
        if not self.query_one("#stop", Button).display:
            return  # not waiting
        self.workers.cancel_group(self, "link")
        self._stopped("Stopped waiting: that code no longer works. Show a new code to try "
                      "again.")

    @on(Button.Pressed, "#continue")
    def go_on(self) -> None:
        """On to the home screen: the member's spaces are listed as they arrive."""
        self.app.switch_screen(HomeScreen())
