"""A node over a big replica folds and decrypts its spaces in a worker thread before it starts,
so the first reads on the trio thread find the work done."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from meshcrew.node import open_node
from meshcrew.service import Member
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
