"""A node over a big replica folds and decrypts its spaces in a worker thread before it starts,
so the first reads on the trio thread find the work done."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import trio

from meshcrew.node import open_node
from meshcrew.service import Member, ViewCache
from meshcrew.service import views as service_views
from meshcrew.spaces import SpaceState, fold
from meshcrew.store import Replica
from node_world import LOOPBACK_NODE, make_home, wall_ms

pytestmark = pytest.mark.trio


async def test_the_node_opens_a_big_replica_off_the_trio_thread(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home, who = make_home(tmp_path, "Ada")
    with Replica.open(home) as replica:
        member = Member(replica, who, clock=wall_ms)
        crew = member.create_space("Crew")
        congregation = member.create_space("Riverside", kind="congregation")
        for n in range(5):
            member.checkin(crew, text=f"arriving {n}", energy=3)
    folded_in: list[tuple[bytes, str]] = []

    def counting(space: bytes, records: Any) -> SpaceState:
        folded_in.append((space, threading.current_thread().name))
        return fold(space, records)

    monkeypatch.setattr(service_views.__name__ + ".fold", counting)
    config = replace(LOOPBACK_NODE, prepare_above=0)  # this replica counts as big
    async with open_node(home, who, config) as node:
        assert {space for space, _ in folded_in} == {crew, congregation}
        assert threading.current_thread().name not in {name for _, name in folded_in}
        folded_in.clear()
        names = {s.name for s in node.member.spaces()}
        assert names == {"Crew", "Riverside"}
        assert len(node.member.log(crew)) == 6  # the profile and five check-ins
        assert folded_in == [], "the reads found the spaces opened"


async def test_a_small_replica_is_read_as_it_comes(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    home, who = make_home(tmp_path, "Bo")
    with Replica.open(home) as replica:
        Member(replica, who, clock=wall_ms).create_space("Crew")
    folded_in: list[str] = []

    def counting(space: bytes, records: Any) -> SpaceState:
        folded_in.append(threading.current_thread().name)
        return fold(space, records)

    monkeypatch.setattr(service_views.__name__ + ".fold", counting)
    async with open_node(home, who, LOOPBACK_NODE) as node:
        assert folded_in in ([], [threading.current_thread().name])
        assert [s.name for s in node.member.spaces()] == ["Crew"]
        assert set(folded_in) == {threading.current_thread().name}


async def test_the_app_and_its_node_share_the_views_and_prepare_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As in ``meshcrew``: the app's member service and the in-process node's read one
    replica; both prepare at start, and each space is folded once for the two."""
    home, who = make_home(tmp_path, "Cy")
    with Replica.open(home) as replica:
        first = Member(replica, who, clock=wall_ms)
        crew = first.create_space("Crew")
        for n in range(3):
            first.checkin(crew, text=f"arriving {n}", energy=3)
    folded: list[bytes] = []

    def counting(space: bytes, records: Any) -> SpaceState:
        folded.append(space)
        return fold(space, records)

    monkeypatch.setattr(service_views.__name__ + ".fold", counting)
    cache = ViewCache(who.public_key)
    with Replica.open(home) as replica:
        app_side = Member(replica, who, clock=wall_ms, views=cache)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.to_thread.run_sync, app_side.prepare)
            async with open_node(home, who, replace(LOOPBACK_NODE, prepare_above=0),
                                 replica=replica, views=cache) as node:
                assert node.member.views is cache
        assert folded == [crew], "one fold for both, whichever prepared first"
        texts = {e.fields.get("text") for e in app_side.log(crew)}
        assert {"arriving 0", "arriving 1", "arriving 2"} <= texts  # (same ms: any order)
        assert folded == [crew]
    with pytest.raises(ValueError, match="one member"):
        Member(replica, make_home(tmp_path, "Dee")[1], clock=wall_ms, views=cache)
