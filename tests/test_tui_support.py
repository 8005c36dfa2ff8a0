"""Members on real replicas for the TUI tests (no tests here; shared by tests/test_tui_*.py).

Each person is a :class:`~meshcrew.tui.service_backend.LocalBackend` (the member service over a
replica in its own home folder) with a deterministic key and random bytes. The clock stands still
unless a test moves it, so every run signs the same records and the snapshots repeat exactly.
Records move between people only through the service's ``export`` and ``ingest``, as files
would; the node is not needed.

The app runs in ``App.run_test`` under ``asyncio.run`` inside plain test functions (never
pytest-trio, which would run an ``async def`` test under trio; see STYLE.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC
from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from meshcrew.identity import Identity
from meshcrew.store import Replica
from meshcrew.tui.app import MeshcrewApp
from meshcrew.tui.read_marks import ReadMarks
from meshcrew.tui.service_backend import LocalBackend
from test_service_support import Homes

T0 = 1_767_657_000_000  # 2026-01-05 23:50 UTC, a Monday
HOUR = 3_600_000
DAY = 24 * HOUR
WEEK = 7 * DAY
SIZE = (100, 30)
WAIT_S = 5.0


class Clock:
    """A clock that moves only when told."""

    def __init__(self, start: int = T0) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now

    def tick(self, ms: int = 60_000) -> int:
        """Move forward (a minute by default) and return the new time."""
        self.now += ms
        return self.now


class Town(Homes[LocalBackend]):
    """Several members, each an app backend, sharing one clock."""

    SALT = b"meshcrew tui test "

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.clock = Clock()

    def make(self, replica: Replica, who: Identity, rng: Callable[[int], bytes]) -> LocalBackend:
        """The backend of the app over the member service."""
        return LocalBackend(replica, who, clock=self.clock, rng=rng)


town_at = Town.opened


def send(sender: LocalBackend, receiver: LocalBackend, space_id: bytes) -> int:
    """Carry every record of a space from one replica to another; returns how many were new."""
    report = receiver.service.ingest(sender.service.export(space_id),
                                     sender=sender.identity.name)
    return len(report.accepted)


def sync(space_id: bytes, *people: LocalBackend) -> None:
    """Exchange records between every pair until nothing new moves (housekeeping included)."""
    for _ in range(6):
        moved = sum(send(a, b, space_id) for a in people for b in people if a is not b)
        if not moved:
            return
    raise AssertionError("records kept moving")


def admit(inviter: LocalBackend, joiner: LocalBackend, space_id: bytes) -> None:
    """The offline join: invite, import, join, the inviter rotates the keys, and back."""
    code = inviter.invite(space_id, expires_ms=inviter.now() + WEEK)
    send(inviter, joiner, space_id)
    joiner.service.join(code)
    send(joiner, inviter, space_id)
    send(inviter, joiner, space_id)


def link(member: LocalBackend, laptop: LocalBackend, space_id: bytes) -> None:
    """What the link handshake does, offline: the member's space to the laptop, the member
    key's certificate of it posted there, back to the member (whose housekeeping rotates the
    keys), and the keys to the laptop."""
    send(member, laptop, space_id)
    laptop.service.adopt_certificate(member.identity.public_key,
                                     member.service.certify_device(laptop.identity.public_key))
    send(laptop, member, space_id)
    send(member, laptop, space_id)


def crew_of(town: Town, *names: str,
            name: str = "Tuesday crew") -> tuple[bytes, list[LocalBackend]]:
    """A crew founded by the first name, the others admitted by the founder, all in sync."""
    people = [town.person(n) for n in names]
    space_id = people[0].create_space(name, purpose="support each other's projects")
    for joiner in people[1:]:
        town.clock.tick()
        admit(people[0], joiner, space_id)
    sync(space_id, *people)
    return space_id, people


def make_app(backend: LocalBackend, **kwargs: Any) -> MeshcrewApp:
    """The app over ``backend``, showing times in UTC, marks in memory."""
    kwargs.setdefault("read_marks", ReadMarks())
    return MeshcrewApp(backend, tz=UTC, **kwargs)


def drive(app: MeshcrewApp, script: Callable[[Pilot[None]], Awaitable[None]],
          size: tuple[int, int] = SIZE) -> None:
    """Run ``app`` headless at ``size`` and let ``script`` drive it, under asyncio."""
    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            app.animation_level = "none"
            await pilot.pause()
            await script(pilot)

    asyncio.run(main())


async def until(pilot: Pilot[None], condition: Callable[[], bool], what: str) -> None:
    """Let the app run until ``condition`` holds (within :data:`WAIT_S` seconds)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause()


async def run_from_palette(pilot: Pilot[None], typed: str, title: str) -> None:
    """Open the command palette, type ``typed``, and run the first hit once it is ``title``."""
    from textual.command import CommandList, CommandPalette

    app = pilot.app
    await pilot.press("ctrl+p")
    await until(pilot, lambda: isinstance(app.screen, CommandPalette), "the palette")
    await pilot.press(*typed)
    results = app.screen.query_one(CommandList)

    def found() -> bool:  # the palette searches in a worker
        return results.option_count > 0 and title in str(results.get_option_at_index(0).prompt)

    await until(pilot, found, "the palette's hit")
    await pilot.press("enter")


def screen_text(app: MeshcrewApp) -> str:
    """The current screen as plain text, as a person would read it."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def words(app: MeshcrewApp) -> str:
    """The text of every Static on the current screen, unwrapped (for whole sentences)."""
    from textual.widgets import Static

    return "\n".join(str(widget.render()) for widget in app.screen.query(Static))


def table_rows(app: MeshcrewApp, table_id: str) -> list[list[str]]:
    """The cells of a DataTable on the current screen, as text."""
    from textual.widgets import DataTable

    table = app.screen.query_one(f"#{table_id}", DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]
