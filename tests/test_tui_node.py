"""The app with a real node: inside the app (trio guest mode), or attached to ``meshcrew node``.

Ada runs ``meshcrew node`` on loopback (a separate process, see tests/node_processes.py). Bo's
app runs its own node in-process and joins Ada's crew over the network with the invite code;
Ada's app attaches to her running node instead of starting a second one and checks in
through it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Select

from meshcrew.node import NodeConfig
from meshcrew.tui.app import MeshcrewApp
from meshcrew.tui.attached import AttachedBackend
from meshcrew.tui.launch import open_home
from meshcrew.tui.node_backend import NodeBackend
from meshcrew.tui.screens.checkin import CheckInScreen
from meshcrew.tui.screens.home import HomeScreen
from meshcrew.tui.screens.join import JoinScreen
from meshcrew.tui.screens.space import SpaceScreen
from node_processes import LOOPBACK, Fleet, fleet  # noqa: F401 (the fixture)
from test_tui_support import drive, screen_text, until, words

NETWORK_WAIT_S = 30.0

pytestmark = pytest.mark.timeout(120)


async def eventually(pilot: Pilot[None], condition: Callable[[], bool], what: str) -> None:
    """Like ``until``, with the patience a network needs."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + NETWORK_WAIT_S
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


def test_the_app_runs_its_node_and_joins_over_the_network(fleet: Fleet) -> None:  # noqa: F811
    ada, bo = fleet.make("Ada", "Bo")
    ada.start()
    space = str(ada.cli("crew", "create", "Tuesday crew")["id"])
    code = str(ada.cli("invite", space)["code"])
    opened = open_home(bo.home, config=NodeConfig(listen_addrs=(LOOPBACK,), mdns=False))
    backend = opened.backend
    assert isinstance(backend, NodeBackend)
    app = MeshcrewApp(backend, node=opened.node, read_marks=opened.read_marks, tz=UTC)

    async def script(pilot: Pilot[None]) -> None:
        await eventually(pilot, lambda: backend.status().running, "Bo's node")
        assert app.guest is not None
        assert app.guest.running
        await pilot.press("j")
        await until(pilot, lambda: isinstance(app.screen, JoinScreen), "the join form")
        app.screen.query_one("#code", Input).value = code
        await pilot.press("enter")
        await eventually(pilot, lambda: isinstance(app.screen, SpaceScreen), "the join")
        # Ada's node rotates the keys for Bo; the crew's name becomes readable.
        await eventually(pilot, lambda: "Tuesday crew" in str(app.screen.sub_title),
                         "the keys")
        await pilot.press("escape")
        await eventually(pilot, lambda: "connected to 1 peer" in words(app), "the peer")
        # The node's sessions with Ada ran to the end: the home panel says when.
        await eventually(pilot, lambda: "last sync: just now (1 of 1 peer synced)"
                         in words(app), "the last sync")

    try:
        drive(app, script)
    finally:
        opened.close()
    assert app.guest is not None
    assert not app.guest.running  # the node stopped with the app
    members = {m["name"] for m in ada.cli("members", space)["members"]}
    assert members == {"Ada", "Bo"}


def test_the_app_attaches_to_a_running_node_and_writes_through_it(fleet: Fleet) -> None:  # noqa: F811
    (ada,) = fleet.make("Ada")
    ada.start()
    space = str(ada.cli("crew", "create", "Tuesday crew")["id"])
    opened = open_home(ada.home)
    assert isinstance(opened.backend, AttachedBackend)
    app = MeshcrewApp(opened.backend, node=opened.node, read_marks=opened.read_marks, tz=UTC)

    async def script(pilot: Pilot[None]) -> None:
        assert isinstance(app.screen, HomeScreen)
        assert "attached to the node already running" in words(app)
        assert "last sync: never" in words(app)  # no peer yet, asked over the control socket
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, SpaceScreen), "the crew")
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, CheckInScreen), "the form")
        await pilot.press(*"Through the node")
        app.screen.query_one("#energy", Select).value = 4
        await pilot.press("ctrl+s")
        await eventually(pilot, lambda: "Through the node" in screen_text(app),
                         "the check-in, back from the node")

    try:
        drive(app, script)
    finally:
        opened.close()
    assert "Through the node" in ada.texts(space)
    assert ada.process is not None
    assert ada.process.poll() is None  # the node kept running; the app did not take over
