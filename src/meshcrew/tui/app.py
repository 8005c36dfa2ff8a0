"""The meshcrew Textual app: given a backend, it shows the journeys of DESIGN §2.

The app is handed its :class:`~meshcrew.tui.backend.Backend` (and optionally a node to run)
through its constructor; without one it starts with the first-run screen and gets the backend
from a :class:`~meshcrew.tui.launch.Setup`. Backend events arrive through the sink the app
subscribes and become typed messages (:mod:`meshcrew.tui.messages`) handed to every screen.

A node, if given, runs as a trio guest on the app's asyncio loop (:mod:`.node_runner`), started
when the backend is connected and stopped when the app exits, so the node stays the replica's
only writer and shares the app's thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import tzinfo
from typing import ClassVar

from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen

from meshcrew.home import Home
from meshcrew.node.log_file import logging_to_home
from meshcrew.service import PREPARE_ABOVE
from meshcrew.tui.backend import Backend, BackendEvent, JoinProgress, PeersUpdated, SpacesChanged
from meshcrew.tui.launch import HomeSetup, Opened, Setup, open_home
from meshcrew.tui.messages import JoinProgressed, NodeStopped, PeersChanged, RecordsChanged
from meshcrew.tui.node_runner import NodeMain, TrioGuest
from meshcrew.tui.read_marks import ReadMarks
from meshcrew.tui.screens.backup import BackupScreen
from meshcrew.tui.screens.base import BackendAccess, ScreenHost
from meshcrew.tui.screens.first_run import FirstRunScreen
from meshcrew.tui.screens.home import HomeScreen

DARK_THEME = "textual-dark"
LIGHT_THEME = "textual-light"


class MeshcrewApp(App[None]):
    """The app.

    Args:
        backend: what the screens read and write; None starts with the first-run screen.
        node: a trio function to run as a guest while the app runs (the in-process node).
        setup: creates the identity and the backend on a first run.
        read_marks: where unread marks are kept (default: in memory).
        tz: the time zone to show times in (default: the machine's).
        prepare_above: from how many records in the replica the home screen opens the spaces
            in a worker thread, showing its progress, before it lists them.
    """

    CSS_PATH = "app.tcss"
    TITLE = "meshcrew"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+t", "toggle_dark", "Light/dark", tooltip="Switch between the light and "
                "the dark theme"),
    ]

    def __init__(self, backend: Backend | None = None, *, node: NodeMain | None = None,
                 setup: Setup | None = None, read_marks: ReadMarks | None = None,
                 tz: tzinfo | None = None, prepare_above: int = PREPARE_ABOVE) -> None:
        super().__init__()
        self.prepare_above = prepare_above
        self.prepared = False
        """Whether the first reads have been done (in a worker, for a big replica)."""
        if backend is None and setup is None:
            raise ValueError("give the app a backend, or a setup for the first run")
        self.backend = backend
        self.setup = setup
        self.read_marks = read_marks or ReadMarks()
        self.tz = tz
        self._node = node
        self.guest: TrioGuest | None = None

    # -- starting -----------------------------------------------------------------------------

    def on_mount(self) -> None:
        """Connect the backend, or ask for a name first."""
        if self.backend is None:
            assert self.setup is not None
            self.push_screen(FirstRunScreen(self.setup))
        else:
            self.connect(self.backend, self._node)
            self.push_screen(HomeScreen())

    def connect(self, backend: Backend, node: NodeMain | None,
                read_marks: ReadMarks | None = None) -> None:
        """Use ``backend`` from now on, and start ``node`` as a trio guest if given."""
        self.backend = backend
        if read_marks is not None:
            self.read_marks = read_marks
        backend.subscribe(self._on_backend_event)
        if node is not None:
            self.guest = TrioGuest(node, self._on_node_done)
            self.guest.start(asyncio.get_running_loop())

    def connect_opened(self, opened: Opened) -> None:
        """Use what a first run opened."""
        self.connect(opened.backend, opened.node, opened.read_marks)

    async def on_unmount(self) -> None:
        """Stop the node (bounded by the node runner's shutdown time)."""
        if self.guest is not None and self.guest.running:
            await self.guest.stop()

    # -- events from the backend --------------------------------------------------------------

    def _on_backend_event(self, event: BackendEvent) -> None:
        match event:
            case SpacesChanged(space_ids=ids):
                self.post_message(RecordsChanged(ids))
            case PeersUpdated():
                self.post_message(PeersChanged())
            case JoinProgress(received=received, expected=expected, stage=stage):
                self.post_message(JoinProgressed(received, expected, stage))

    def _on_node_done(self, error: BaseException | None) -> None:
        self.post_message(NodeStopped(error))

    def on_records_changed(self, message: RecordsChanged) -> None:
        """Hand a copy to every screen."""
        for screen in self.screen_stack:
            screen.post_message(RecordsChanged(message.space_ids))

    def on_peers_changed(self, _message: PeersChanged) -> None:
        """Hand a copy to every screen."""
        for screen in self.screen_stack:
            screen.post_message(PeersChanged())

    def on_join_progressed(self, message: JoinProgressed) -> None:
        """Hand the progress to the top screen (the join screen, if a join runs)."""
        self.screen.post_message(JoinProgressed(message.received, message.expected,
                                                message.stage))

    def on_node_stopped(self, message: NodeStopped) -> None:
        """Say so if the node ended by itself (a crash), so the person knows sync stopped."""
        if message.error is not None:
            self.notify(f"The node stopped: {message.error}", title="Node stopped",
                        severity="error", timeout=15)
        for screen in self.screen_stack:
            screen.post_message(PeersChanged())

    # -- app-wide actions ---------------------------------------------------------------------

    def action_toggle_dark(self) -> None:
        """Switch between the light and the dark theme."""
        self.theme = LIGHT_THEME if self.current_theme.dark else DARK_THEME

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        """Textual's commands, the app's, and every action of the current screen."""
        yield from super().get_system_commands(screen)
        yield SystemCommand("Light/dark", "Switch between the light and the dark theme",
                            self.action_toggle_dark)
        if self.backend is not None:
            yield SystemCommand("Back up to a file", "Write your identity, records and peer "
                                "book to one passphrase-encrypted file",
                                lambda: self.push_screen(BackupScreen()))
        if isinstance(screen, BackendAccess):
            yield from screen.palette()


_APP_IS_A_SCREEN_HOST: type[ScreenHost] = MeshcrewApp
"""Here mypy checks that the app offers what the screens ask of it (they do not import it)."""


def run_app(home: Home, *, passphrase: bytes | None = None, network: bool = True) -> None:
    """Run the app on ``home``: the first-run screen if it holds no identity yet.

    Args:
        home: the home folder.
        passphrase: the key file's passphrase, if it is sealed.
        network: run a node in the app (attaching instead if one already runs).

    Raises:
        MeshcrewError: if the identity, the replica or the node's log cannot be opened.
    """
    if home.key_file.exists():
        opened = open_home(home, passphrase=passphrase, network=network)
        try:
            with logging_to_home(home):  # the app's node logs where `meshcrew node` does
                MeshcrewApp(opened.backend, node=opened.node, read_marks=opened.read_marks).run()
        finally:
            opened.close()
        return
    setup = HomeSetup(home, network=network, log_to_home=True)  # once the home exists
    try:
        MeshcrewApp(setup=setup).run()
    finally:
        setup.close()
