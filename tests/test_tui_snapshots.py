"""Snapshots of the main screens at 100x30 and 160x48 (pytest-textual-snapshot).

The people, their keys, their random bytes and the clock are fixed, so the same records (and
the same screens) come out on every run. After a deliberate change to a screen, look at the
new pictures and accept them with ``pytest tests/test_tui_snapshots.py --snapshot-update``;
syrupy keeps them in tests/__snapshots__/test_tui_snapshots/.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Select, TabbedContent, TextArea

from meshcrew.home import Home
from meshcrew.tui.app import MeshcrewApp
from meshcrew.tui.launch import HomeSetup
from meshcrew.tui.read_marks import ReadMarks
from test_tui_support import DAY, Clock, Town, admit, crew_of, link, send, sync

SIZES = [pytest.param((100, 30), id="100x30"), pytest.param((160, 48), id="160x48")]
SnapCompare = Callable[..., bool]
Script = Callable[[Pilot[None]], Awaitable[None]]


def lived_in(town: Town) -> MeshcrewApp:
    """Ada's app: a congregation, two crews, check-ins with answers, an ask, a gathering."""
    crew, (ada, bo, cy) = crew_of(town, "Ada", "Bo", "Cy")
    congregation = ada.create_space("Riverside", kind="congregation",
                                    purpose="neighbours who grow food together")
    for joiner in (bo, cy):
        admit(ada, joiner, congregation)
    sync(congregation, ada, bo, cy)
    ada.create_space("Garden crew", parent=congregation)
    town.clock.tick()
    bo.checkin(crew, text="Arriving after a long week of fieldwork; tired but glad to see "
               "you all, and curious what everyone is working on.", energy=2,
               compass={"belonging": 4, "time": 2}, ask="someone to read my grant draft")
    cy.checkin(crew, text="Rested and ready", energy=4)
    town.clock.tick()
    sync(crew, ada, bo, cy)
    checkin = next(e for e in ada.log(crew) if e.kind == "checkin" and e.author_name == "Bo")
    cy.reply(checkin.id, text="I can read it on Thursday")
    cy.react(checkin.id, emoji="heard you")
    bo.post(congregation, bo.make_post("ask", title="A van for Saturday", text="moving day"))
    cy.post(congregation, cy.make_post("looking_for_crew", looking=True, note="mornings"))
    bo.post(congregation, bo.make_post("gathering", title="Spring gathering",
                                       when_ms=town.clock.now + 3 * DAY, where="the hall"))
    for space in (crew, congregation):
        sync(space, ada, bo, cy)
    send(bo, ada, crew)
    return MeshcrewApp(ada, read_marks=ReadMarks(), tz=UTC)


async def open_first(pilot: Pilot[None], name: str) -> None:
    """Move the home tree's cursor to ``name`` and open it."""
    tree: Any = pilot.app.screen.query_one("#spaces")
    for _ in range(10):
        node = tree.cursor_node
        if node is not None and node.data is not None and node.data.name == name:
            break
        await pilot.press("down")
    await pilot.press("enter")
    await pilot.pause()


async def home(pilot: Pilot[None]) -> None:
    await pilot.pause()


async def space(pilot: Pilot[None]) -> None:
    await open_first(pilot, "Tuesday crew")


async def checkin_form(pilot: Pilot[None]) -> None:
    await space(pilot)
    await pilot.press("c")
    await pilot.pause()
    await pilot.press(*"Glad to be here")
    pilot.app.screen.query_one("#energy", Select).value = 4
    await pilot.pause()


async def invite(pilot: Pilot[None]) -> None:
    await space(pilot)
    await pilot.press("i")
    await pilot.pause()
    await pilot.click("#make")
    await pilot.pause()


async def join_error(pilot: Pilot[None]) -> None:
    await pilot.press("j")
    await pilot.pause()
    pilot.app.screen.query_one("#code", Input).value = "mc1-this-is-not-a-whole-code"
    await pilot.press("enter")
    await pilot.pause()


async def leave_dialog(pilot: Pilot[None]) -> None:
    await space(pilot)
    await pilot.press("l")
    await pilot.pause()


async def congregation(pilot: Pilot[None]) -> None:
    await open_first(pilot, "Riverside")


async def sync_health(pilot: Pilot[None]) -> None:
    await pilot.press("s")
    await pilot.pause()
    pilot.app.screen.query_one(TabbedContent).active = "tab-spaces"
    await pilot.pause()


SCREENS: dict[str, Script] = {
    "home": home, "space": space, "checkin": checkin_form, "invite": invite,
    "join_error": join_error, "leave": leave_dialog, "congregation": congregation,
    "sync_health": sync_health,
}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("screen", list(SCREENS))
def test_main_screens(screen: str, size: tuple[int, int], town: Town,
                      snap_compare: SnapCompare) -> None:
    assert snap_compare(lived_in(town), terminal_size=size, run_before=SCREENS[screen])


def deciding(town: Town) -> MeshcrewApp:
    """Ada's app: a crew deciding a proposal (Bo consents, Cy objects, Dee has not answered)."""
    crew, (ada, bo, cy, _dee) = crew_of(town, "Ada", "Bo", "Cy", "Dee")
    town.clock.tick()
    pid = ada.propose(crew, title="Meet on Thursdays from March",
                      text="Tuesdays clash with the choir for two of us. Same time, same place.")
    sync(crew, ada, bo, cy)
    town.clock.tick()
    bo.answer(pid, position="consent")
    cy.answer(pid, position="object", reason="Thursdays I teach until seven")
    town.clock.tick()
    ada.amend_proposal(pid, text="Thursdays from March, at eight so Cy can come.")
    sync(crew, ada, bo, cy)
    return MeshcrewApp(ada, read_marks=ReadMarks(), tz=UTC)


async def proposals(pilot: Pilot[None]) -> None:
    await space(pilot)
    await pilot.press("p")
    await pilot.pause()


async def proposal(pilot: Pilot[None]) -> None:
    await proposals(pilot)
    await pilot.press("enter")
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("screen", [proposals, proposal], ids=["proposals", "proposal"])
def test_proposal_screens(screen: Script, size: tuple[int, int], town: Town,
                          snap_compare: SnapCompare) -> None:
    assert snap_compare(deciding(town), terminal_size=size, run_before=screen)


def with_laptops(town: Town) -> MeshcrewApp:
    """Ada's app: her crew, a laptop linked to her, and an old one linked then revoked."""
    crew, (ada, _bo) = crew_of(town, "Ada", "Bo")
    laptop, old = town.person("Ada's laptop"), town.person("Ada's old laptop")
    for device in (old, laptop):
        town.clock.tick(DAY)
        link(ada, device, crew)
    town.clock.tick()
    laptop.checkin(crew, text="From the sofa", energy=3)
    send(laptop, ada, crew)
    town.clock.tick(DAY)
    ada.revoke_device(old.identity.public_key)
    return MeshcrewApp(ada, read_marks=ReadMarks(), tz=UTC)


async def devices(pilot: Pilot[None]) -> None:
    await pilot.press("d")
    await pilot.pause()


async def link_dialog(pilot: Pilot[None]) -> None:
    from meshcrew.node.linking import LinkCode, encode_link_code

    await devices(pilot)
    await pilot.press("a")
    await pilot.pause()
    code = encode_link_code(LinkCode(bytes(range(32)), bytes(32), ("/ip4/192.0.2.7/tcp/4001",)))
    pilot.app.screen.query_one("#link-code-input", TextArea).text = code
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("screen", [devices, link_dialog], ids=["devices", "link_dialog"])
def test_device_screens(screen: Script, size: tuple[int, int], town: Town,
                        snap_compare: SnapCompare) -> None:
    assert snap_compare(with_laptops(town), terminal_size=size, run_before=screen)


@pytest.mark.parametrize("size", SIZES)
def test_first_run(size: tuple[int, int], tmp_path: Path, snap_compare: SnapCompare) -> None:
    setup = HomeSetup(Home(tmp_path / "home"), clock=Clock(), network=False)
    try:
        assert snap_compare(MeshcrewApp(setup=setup, tz=UTC), terminal_size=size)
    finally:
        setup.close()


@pytest.mark.parametrize("size", [pytest.param((100, 30), id="100x30")])
def test_light_theme(size: tuple[int, int], town: Town, snap_compare: SnapCompare) -> None:
    async def light(pilot: Pilot[None]) -> None:
        await space(pilot)
        await pilot.press("ctrl+t")
        await pilot.pause()
        assert pilot.app.theme == "textual-light"

    assert snap_compare(lived_in(town), terminal_size=size, run_before=light)
