"""The app over a big replica starts from the view snapshots, and folds when one is wrong.

(The service's own tests, ``test_service_snapshots.py``, compare every read with a fold; here
the app shows the right spaces and posts whatever the snapshot's state.)
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from textual.pilot import Pilot

from meshcrew.service import views as service_views
from meshcrew.service.snapshots import SnapshotView, ViewSnapshots
from meshcrew.spaces import SpaceState, fold
from meshcrew.tui.screens.space import SpaceScreen
from meshcrew.tui.service_backend import LocalBackend
from test_tui_support import Town, crew_of, drive, make_app, screen_text, send, until


@pytest.fixture
def folded_in(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The threads the service folded a space in (a spy: the real fold still runs)."""
    threads: list[str] = []

    def counting(space: bytes, records: Any) -> SpaceState:
        threads.append(threading.current_thread().name)
        return fold(space, records)

    monkeypatch.setattr(service_views.__name__ + ".fold", counting)
    return threads


def fresh_backend(person: LocalBackend) -> LocalBackend:
    """The same member's backend over the same replica with nothing kept: an app's start."""
    return LocalBackend(person.reads.replica, person.identity, clock=person.reads.now)


def open_the_crew(backend: LocalBackend, space_id: bytes) -> list[str]:
    """Run the app over ``backend``: list the spaces, open the crew, return what it showed."""
    app = make_app(backend, prepare_above=1)  # every replica counts as big here
    shown: list[str] = []

    async def script(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: "Tuesday crew" in screen_text(app), "the crew")
        tuesday = next(line for line in screen_text(app).splitlines() if "Tuesday crew" in line)
        shown.append(tuesday)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, SpaceScreen)
                    and "Arriving rested" in screen_text(app), "Bo's check-in")
        shown.append(screen_text(app))
        # The fold a write needs goes on in a worker once the spaces show.
        view = backend.reads.view(space_id)
        await until(pilot, lambda: not isinstance(view, SnapshotView) or view.complete,
                    "the fold behind the snapshot")

    drive(app, script)
    return shown


def test_the_app_starts_from_a_snapshot_and_folds_when_it_is_corrupt(
        town: Town, folded_in: list[str]) -> None:
    space_id, (ada, bo) = crew_of(town, "Ada", "Bo")
    bo.checkin(space_id, text="Arriving rested", energy=4)
    send(bo, ada, space_id)
    folded_in.clear()
    first = open_the_crew(fresh_backend(ada), space_id)  # folds; writes the snapshot
    assert folded_in
    assert "new" in first[0]  # Bo's check-in is unread

    folded_in.clear()
    backend = fresh_backend(ada)
    assert open_the_crew(backend, space_id)[0] == first[0]
    assert isinstance(backend.reads.views.views[space_id], SnapshotView)
    assert threading.main_thread().name not in folded_in, "folded in the worker, after"

    path = ViewSnapshots(ada.reads.replica.home, ada.identity).path(space_id)
    blob = bytearray(path.read_bytes())
    blob[-1] ^= 0xFF
    path.write_bytes(bytes(blob))
    folded_in.clear()
    backend = fresh_backend(ada)
    assert open_the_crew(backend, space_id)[0] == first[0]
    assert not isinstance(backend.reads.views.views[space_id], SnapshotView)
    assert folded_in, "the corrupt snapshot was not used: the space was folded"
