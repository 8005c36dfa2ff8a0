"""First run: a name, then the identity is made, its fingerprint shown, and two ways on; or
the member comes back from a backup file (a new laptop); or this laptop gets a key of its own
and is linked to the member another laptop holds ("This is another device of mine")."""

from __future__ import annotations

from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Footer, Header, Input, Label, Static

from meshcrew.errors import MeshcrewError
from meshcrew.identity import MAX_NAME_CHARS
from meshcrew.tui.launch import Opened, Setup
from meshcrew.tui.screens.base import MeshcrewScreen
from meshcrew.tui.screens.create_space import CreateSpaceScreen
from meshcrew.tui.screens.home import HomeScreen
from meshcrew.tui.screens.join import JoinScreen
from meshcrew.tui.screens.link_wait import LinkWaitScreen
from meshcrew.tui.screens.restore import RestoreScreen

INTRO = (
    "meshcrew keeps your crew's check-ins on your own laptop and shares them directly with "
    "your crewmates' laptops: no server, and only members can read what the crew writes.\n\n"
    "First, a name your crewmates will know you by. meshcrew makes a key for you with it."
)


class FirstRunScreen(MeshcrewScreen):
    """Ask for a name, create the identity, show the fingerprint; then start or join. Or
    restore an identity and its records from a backup, or link this laptop to the member."""

    def __init__(self, setup: Setup) -> None:
        super().__init__()
        self.setup = setup

    def compose(self) -> ComposeResult:
        """The welcome panel, then (once made) the identity panel."""
        yield Header()
        with Vertical(id="welcome", classes="panel"):
            yield Static("Welcome to meshcrew", classes="title")
            yield Static(INTRO, classes="intro")
            yield Label("Your name, as crewmates will see it")
            yield Input(placeholder="e.g. Ada", id="name", max_length=MAX_NAME_CHARS)
            yield Static("", id="name-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Create my identity", id="create", variant="primary")
            yield Static("Already use meshcrew on another laptop?", classes="hint already")
            with Horizontal(classes="buttons", id="more-ways"):
                yield Button("Restore from a backup", id="restore")
                yield Button("This is another device of mine", id="another-device")
        with Vertical(id="created", classes="panel"):
            yield Static("", id="identity")
            with Horizontal(classes="buttons"):
                yield Button("Start a crew", id="start", variant="primary")
                yield Button("Join with a code", id="join")
        yield Footer()

    def on_mount(self) -> None:
        """Only the welcome panel until the identity exists."""
        self.query_one("#created").display = False
        self.query_one("#name", Input).focus()

    @on(Input.Submitted, "#name")
    @on(Button.Pressed, "#create")
    def create(self) -> None:
        """Make the identity from the name typed."""
        name = self.query_one("#name", Input).value
        error = self.query_one("#name-error", Static)
        try:
            opened = self.setup.create(name)
        except MeshcrewError as exc:
            error.update(str(exc))
            return
        error.update("")
        self.host.connect_opened(opened)
        me = opened.backend.identity
        self.query_one("#identity", Static).update(
            f"[b]Welcome, {escape(me.name)}.[/b]\n\n"
            f"Your fingerprint is  [b]{me.fingerprint}[/b]\n"
            "Compare it out loud with crewmates when you meet: it is how they know this key "
            "is yours.\n\n"
            f"Everything meshcrew keeps lives in\n  {escape(str(self.setup.home_path))}\n"
            "(back that folder up to keep your identity).")
        self.query_one("#welcome").display = False
        self.query_one("#created").display = True
        self.query_one("#start", Button).focus()

    @on(Button.Pressed, "#restore")
    def restore(self) -> None:
        """A new laptop: bring the member back from a backup file instead."""
        self.app.push_screen(RestoreScreen(self.setup), self._restored)

    @on(Button.Pressed, "#another-device")
    def link(self) -> None:
        """A second laptop of a member: its own key, then wait for the first one to link it."""
        error = self.query_one("#name-error", Static)
        try:
            opened = self.setup.create_device(self.query_one("#name", Input).value)
        except MeshcrewError as exc:
            error.update(str(exc))
            return
        self.host.connect_opened(opened)
        self.app.switch_screen(LinkWaitScreen(self.setup))

    def _restored(self, opened: Opened | None) -> None:
        if opened is None:
            return
        self.host.connect_opened(opened)
        self.app.switch_screen(HomeScreen())

    @on(Button.Pressed, "#start")
    def start_crew(self) -> None:
        """On to the home screen, with the new-space form open."""
        self.app.switch_screen(HomeScreen(then=CreateSpaceScreen()))

    @on(Button.Pressed, "#join")
    def join(self) -> None:
        """On to the home screen, with the join form open."""
        self.app.switch_screen(HomeScreen(then=JoinScreen()))
