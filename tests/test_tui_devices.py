"""A member's devices in the app (issue 13): a new laptop waits to be linked from its first
screen; the laptop holding the member key links one from the Devices screen, lists the
devices and revokes one.

The network tests run real nodes on 127.0.0.1: Ana's ``meshcrew node`` process (or her app's
own node, in-process) and the new laptop's app node (or ``meshcrew init --link``). They are
driven with Textual's pilot under asyncio; waits poll a condition with a deadline.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Callable
from datetime import UTC
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Button, Static, TextArea

from meshcrew import identity
from meshcrew.home import Home
from meshcrew.node import NodeConfig
from meshcrew.node.linking import decode_link_code
from meshcrew.tui.app import MeshcrewApp
from meshcrew.tui.attached import AttachedBackend
from meshcrew.tui.launch import HomeSetup, open_home
from meshcrew.tui.screens.devices import ApproveLinkScreen, DevicesScreen
from meshcrew.tui.screens.forms import ConfirmScreen
from meshcrew.tui.screens.home import HomeScreen
from meshcrew.tui.screens.link_wait import LinkWaitScreen
from node_processes import LOOPBACK, MESHCREW, Fleet, crew_in_process, fleet
from test_tui_support import (
    Town,
    crew_of,
    drive,
    link,
    make_app,
    screen_text,
    table_rows,
    until,
    words,
)

__all__ = ["fleet"]  # the fixture

NETWORK_WAIT_S = 45.0
LOCAL = NodeConfig(listen_addrs=(LOOPBACK,), mdns=False)

pytestmark = pytest.mark.timeout(150)


async def eventually(pilot: Pilot[None], condition: Callable[[], bool], what: str) -> None:
    """Like ``until``, with the patience a network needs."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + NETWORK_WAIT_S
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}; the screen:\n"
                                 f"{screen_text(pilot.app)}")  # type: ignore[arg-type]
        await pilot.pause(0.05)


def shown_code(app: MeshcrewApp) -> str | None:
    screen = app.screen
    return screen.code if isinstance(screen, LinkWaitScreen) else None


# -- the new laptop ------------------------------------------------------------------------


def test_a_new_laptop_is_linked_from_its_first_screen_and_lists_the_crew(
        fleet: Fleet) -> None:
    ana, bo, laptop = fleet.make("Ana", "Bo", "Laptop")
    laptop.home.key_file.unlink()  # a fresh home: the first-run screen makes the key
    space = crew_in_process(ana, bo, name="Riverside crew")
    ana.start()
    setup = HomeSetup(laptop.home, config=LOCAL)
    app = MeshcrewApp(setup=setup, tz=UTC)
    added: list[subprocess.CompletedProcess[str]] = []

    async def script(pilot: Pilot[None]) -> None:
        # the first-run screen, composed (on a loaded machine it may not be yet: NoMatches)
        await until(pilot, lambda: bool(app.screen.query("#another-device")), "the first screen")
        await pilot.click("#another-device")
        await until(pilot, lambda: isinstance(app.screen, LinkWaitScreen), "the link screen")
        await eventually(pilot, lambda: shown_code(app) is not None, "the link code")
        code = shown_code(app)
        assert code is not None
        device = identity.load(laptop.home.key_file)
        assert decode_link_code(code).device == device.public_key
        assert laptop.home.key_file.stat().st_mode & 0o777 == 0o600
        assert device.fingerprint in words(app)
        # The code as shown, line breaks and all, is the code (copied from the screen).
        shown = str(app.screen.query_one("#link-code", Static).render())
        assert "\n" in shown
        assert decode_link_code(shown) == decode_link_code(code)
        # Ana's laptop approves it (a command beside her running node); the app keeps running.
        added.append(await asyncio.to_thread(ana.run, "devices", "add", code))
        await eventually(pilot, lambda: "Linked to Ana." in words(app), "the link")
        assert identity.fingerprint(ana.key) in words(app)
        await pilot.click("#continue")
        await until(pilot, lambda: isinstance(app.screen, HomeScreen), "the home screen")
        # The keys follow (Ana's node rotates them to the laptop): the crew's name reads.
        await eventually(pilot, lambda: "Riverside crew" in screen_text(app), "the crew listed")

    try:
        drive(app, script)
    finally:
        setup.close()
    assert added[0].returncode == 0
    assert "Linked" in added[0].stdout
    assert identity.load(laptop.home.key_file).name == "Ana"  # as init --link renames it
    listed = {d["key"]: d for d in ana.cli("devices")["devices"]}
    mine = listed[identity.load(laptop.home.key_file).public_key.hex()]
    assert not mine["revoked"]
    assert mine["spaces"] == 1
    assert space in {s["id"] for s in ana.cli("spaces")["spaces"]}


def test_a_wait_that_times_out_or_is_stopped_says_so_and_its_code_stops_working(
        fleet: Fleet) -> None:
    (ana,) = fleet.make("Ana")
    ana.start()
    home = Home(fleet.root / "laptop")
    setup = HomeSetup(home, config=LOCAL)
    app = MeshcrewApp(setup=setup, tz=UTC)
    tried: list[subprocess.CompletedProcess[str]] = []

    async def script(pilot: Pilot[None]) -> None:
        opened = setup.create_device("")
        app.connect_opened(opened)
        app.push_screen(LinkWaitScreen(setup, within_s=1.0))
        await eventually(pilot, lambda: "within 1 seconds; that code no longer works"
                         in words(app), "the timeout")
        await pilot.pause()
        assert "Stop waiting" not in screen_text(app)  # no button, no key in the footer
        await pilot.click("#again")
        await eventually(pilot, lambda: shown_code(app) is not None, "a new code")
        code = shown_code(app)
        assert code is not None
        assert "esc Stop waiting" in screen_text(app)
        await pilot.press("escape")
        await until(pilot, lambda: "Stopped waiting: that code no longer works" in words(app),
                    "the wait stopped")
        assert app.screen.query_one("#again", Button).display
        # The stopped code is turned away: Ana's laptop cannot link this one with it.
        tried.append(await asyncio.to_thread(ana.run, "devices", "add", code, check=False))

    try:
        drive(app, script)
    finally:
        setup.close()
    assert tried[0].returncode != 0
    assert identity.load(home.key_file).name == "new device"


def test_a_wait_whose_node_stops_says_so(tmp_path: Path) -> None:
    setup = HomeSetup(Home(tmp_path / "laptop"), config=LOCAL)
    app = MeshcrewApp(setup=setup, tz=UTC)

    async def script(pilot: Pilot[None]) -> None:
        app.connect_opened(setup.create_device("Ana's laptop"))
        app.push_screen(LinkWaitScreen(setup))
        await eventually(pilot, lambda: shown_code(app) is not None, "the link code")
        assert app.guest is not None
        app.guest.cancel()  # as when the node ends by itself
        await eventually(pilot, lambda: "The node stopped." in words(app), "the sentence")
        assert app.screen.query_one("#again", Button).display

    try:
        drive(app, script)
    finally:
        setup.close()


# -- the laptop holding the member key ---------------------------------------------------


@pytest.mark.parametrize("attached", [False, True], ids=["own node", "attached"])
def test_the_member_links_a_laptop_from_the_devices_screen_then_revokes_it(
        fleet: Fleet, tmp_path: Path, attached: bool) -> None:
    """Through the app's own node, or through the ``meshcrew node`` it is attached to."""
    ana, bo, laptop = fleet.make("Ana", "Bo", "Laptop")
    laptop.home.key_file.unlink()
    crew_in_process(ana, bo)
    if attached:
        ana.start()
    out = tmp_path / "link.out"
    with out.open("wb") as sink:
        waiting = subprocess.Popen(
            [MESHCREW, "--home", str(laptop.home.path), "init", "--link", "--listen", LOOPBACK,
             "--wait", "60", "--json"], stdout=sink, stderr=subprocess.STDOUT)
    opened = open_home(ana.home, config=LOCAL)
    assert isinstance(opened.backend, AttachedBackend) == attached
    app = MeshcrewApp(opened.backend, node=opened.node, read_marks=opened.read_marks, tz=UTC)

    def code_line() -> str | None:
        text = out.read_text()
        return text.split("\n", 1)[0] if "\n" in text else None

    async def script(pilot: Pilot[None]) -> None:
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, DevicesScreen), "the devices")
        assert [row[1:2] for row in table_rows(app, "devices")] == [["this laptop, member key"]]
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ApproveLinkScreen), "the link form")
        await eventually(pilot, lambda: code_line() is not None, "init --link's code")
        shown = json.loads(code_line() or "")
        app.screen.query_one("#link-code-input", TextArea).text = shown["code"]
        await until(pilot, lambda: shown["device_fingerprint"] in words(app),
                    "the new laptop's fingerprint to compare")
        await pilot.click("#link")
        await eventually(pilot, lambda: isinstance(app.screen, DevicesScreen), "the link")
        await until(pilot, lambda: len(table_rows(app, "devices")) == 2, "two devices")
        linked = table_rows(app, "devices")[1]
        assert linked[0] == shown["device_fingerprint"]
        assert linked[1] == "another laptop"
        assert linked[5] == "current"
        await pilot.press("down", "r")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
        assert "reads nothing" not in words(app)  # the consequences are the screen's own
        assert "cannot read anything written from now on" in words(app)
        await pilot.click("#confirm")
        await until(pilot, lambda: table_rows(app, "devices")[1][5] == "revoked",
                    "the device revoked")

    try:
        drive(app, script)
    finally:
        opened.close()
        try:
            waiting.wait(timeout=30)  # it stops its node once linked
        except subprocess.TimeoutExpired:
            waiting.kill()
            waiting.wait(timeout=10)
    assert waiting.returncode == 0, out.read_text()
    device = identity.load(laptop.home.key_file)
    assert device.name == "Ana"
    listed = {d["fingerprint"]: d for d in ana.cli("devices")["devices"]}
    assert listed[device.fingerprint]["revoked"]


def test_offline_the_devices_screen_lists_refuses_to_link_and_guards_the_member_key(
        town: Town) -> None:
    ada = town.person("Ada")
    ada.create_space("Tuesday crew")
    app = make_app(ada)

    async def script(pilot: Pilot[None]) -> None:
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, DevicesScreen), "the devices")
        rows = table_rows(app, "devices")
        assert len(rows) == 1
        assert rows[0][0] == ada.identity.fingerprint
        assert "This laptop holds your member key" in words(app)
        await pilot.press("r")  # the member key's own laptop
        await until(pilot, lambda: any("cannot be revoked" in str(n.message)
                                       for n in app._notifications), "the refusal")
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ApproveLinkScreen), "the link form")
        area = app.screen.query_one("#link-code-input", TextArea)
        area.text = "mc1-not-a-link-code"
        await until(pilot, lambda: "not a meshcrew link code" in words(app), "the refusal")
        from meshcrew.node.linking import LinkCode, encode_link_code

        good = encode_link_code(LinkCode(bytes(range(32)), bytes(32), ("/ip4/127.0.0.1/tcp/9",)))
        area.text = good[:-2] + ("a" if good[-2] != "a" else "b") + good[-1]
        await until(pilot, lambda: "damaged" in words(app), "the damaged code")
        area.text = good[:40] + "\n" + good[40:]  # pasted across lines
        await until(pilot, lambda: identity.fingerprint(bytes(range(32))) in words(app),
                    "the fingerprint")
        await pilot.click("#link")
        await until(pilot, lambda: "No node runs in this app" in words(app), "no node")
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, DevicesScreen), "back")

    drive(app, script)


def test_a_linked_laptop_lists_the_devices_but_leaves_linking_and_revoking_to_the_first(
        town: Town) -> None:
    crew, (ada, _bo) = crew_of(town, "Ada", "Bo")
    laptop = town.person("Ada's laptop")
    link(ada, laptop, crew)
    app = make_app(laptop)

    async def script(pilot: Pilot[None]) -> None:
        # The title speaks of the member (the fingerprint crewmates know), then this laptop.
        assert app.screen.sub_title == (f"Ada's laptop · {ada.identity.fingerprint} · this "
                                        f"laptop {laptop.identity.fingerprint}")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, DevicesScreen), "the devices")
        rows = table_rows(app, "devices")
        assert [row[:2] for row in rows] == [[ada.identity.fingerprint, "member key"],
                                            [laptop.identity.fingerprint, "this laptop"]]
        assert "This laptop is a linked device" in words(app)
        for key in ("a", "r"):
            app._notifications.clear()
            await pilot.press(key)
            await until(pilot, lambda: any("only the laptop that holds your member key"
                                           in str(n.message) for n in app._notifications),
                        f"the refusal of {key}")
            assert isinstance(app.screen, DevicesScreen)

    drive(app, script)


def test_revoking_asks_first_and_a_cancel_changes_nothing(town: Town) -> None:
    crew, (ada, _bo) = crew_of(town, "Ada", "Bo")
    laptop = town.person("Ada's laptop")
    link(ada, laptop, crew)
    app = make_app(ada)

    async def script(pilot: Pilot[None]) -> None:
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, DevicesScreen), "the devices")
        await pilot.press("down", "r")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
        assert laptop.identity.fingerprint in words(app)
        await pilot.press("enter")  # Cancel has the focus: going ahead takes a deliberate move
        await until(pilot, lambda: isinstance(app.screen, DevicesScreen), "back")
        assert table_rows(app, "devices")[1][5] == "current"
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation")
        await pilot.click("#confirm")
        await until(pilot, lambda: table_rows(app, "devices")[1][5] == "revoked", "revoked")

    drive(app, script)
    assert all(d.revoked for d in ada.devices() if d.key == laptop.identity.public_key)
