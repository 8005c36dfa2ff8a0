"""A node whose replica refuses a write for a while keeps running, and takes the records later.

Another process holding the SQLite replica's write lock (a backup tool, a second program reading
it wrongly) makes the node's append fail after SQLite's busy timeout (five seconds) with a
``ReplicaError``. Records arriving then are not stored: the node logs it and a later sync brings
them; the background tasks that take them (gossip, the sync batches gathered into larger
appends) once let the error end the node; so did a carrier's pass that deletes the spaces that
dropped it.

Two in-process nodes on loopback; the lock is a real second SQLite connection to Bo's replica.
In one process both nodes share trio's thread, which a write waiting for the lock blocks: Bo's
replica waits 0.2 s for it here, so the wait does not stall Ada's side of the connection too.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
import trio

from hosts_on_loopback import wait_until
from meshcrew.node import open_node
from meshcrew.node.config import CarrierConfig
from meshcrew.store import Replica
from node_world import LOOPBACK_NODE, crew_by_file, found_crew, make_home, mint_checkins, wall_ms

pytestmark = pytest.mark.trio

QUIET = replace(LOOPBACK_NODE, sync_period_s=600.0, propagate_delay_s=600.0)
"""Nodes that sync only on connection and when asked: what arrives meanwhile comes by gossip."""


@contextmanager
def write_locked(replica: Replica) -> Iterator[None]:
    """Another connection holds the replica's write lock while the block runs."""
    replica._connection().execute("PRAGMA busy_timeout = 200")
    other = sqlite3.connect(replica.path, isolation_level=None, timeout=0)
    try:
        other.execute("BEGIN IMMEDIATE")
        yield
        other.execute("ROLLBACK")
    finally:
        other.close()


def warned(caplog: pytest.LogCaptureFixture, words: str) -> bool:
    return any(words in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


async def test_gossip_the_replica_cannot_take_is_logged_and_synced_later(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ada_home, ada_who, bo_home, bo_who, [space] = crew_by_file(
        tmp_path, then=lambda ada, bo, spaces: bo.ingest(ada.export(spaces[0]), sender="file"))
    caplog.set_level(logging.WARNING, logger="meshcrew.node")
    with trio.fail_after(60):
        async with open_node(ada_home, ada_who, QUIET) as ada, \
                open_node(bo_home, bo_who, QUIET) as bo:
            await bo.connect(ada.addrs()[0])
            await wait_until(lambda: ada.host.peer_id in bo.host.gossip.mesh_peers(space),
                             within=15)
            with write_locked(bo.replica):
                first = ada.member.checkin(space, text="while Bo's replica is locked", energy=3)
                await wait_until(lambda: warned(caplog, "gossip records from"), within=20)
            assert bo.replica.get(first) is None
            # Bo's node is still running: it syncs the record, and takes the next by gossip
            await bo.sync.sync_with(ada.host.peer_id)
            await wait_until(lambda: bo.replica.get(first) is not None, within=10)
            second = ada.member.checkin(space, text="after", energy=4)
            await wait_until(lambda: bo.replica.get(second) is not None, within=10)


async def test_synced_records_the_replica_cannot_take_are_logged_and_synced_later(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ada_home, ada_who, bo_home, bo_who, [space] = crew_by_file(
        tmp_path, then=lambda ada, bo, spaces: bo.ingest(ada.export(spaces[0]), sender="file"))
    posts = mint_checkins(ada_home, ada_who, space, 20, sealed_once=True)
    caplog.set_level(logging.WARNING, logger="meshcrew.node")
    with trio.fail_after(60):
        async with open_node(ada_home, ada_who, QUIET) as ada, \
                open_node(bo_home, bo_who, QUIET) as bo:
            with write_locked(bo.replica):
                await bo.connect(ada.addrs()[0])  # the sync on connection brings the posts
                await wait_until(lambda: warned(caplog, "records synced from"), within=20)
            assert bo.replica.get(posts[0]) is None
            await bo.sync.sync_with(ada.host.peer_id)  # Bo's node is still running
            await wait_until(lambda: all(bo.replica.get(p) is not None for p in posts),
                             within=10)


async def test_a_carrier_pass_the_replica_refuses_is_logged_and_the_node_runs_on(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ada_home, ada_who = make_home(tmp_path, "Ada")
    crew = found_crew(ada_home, ada_who)  # a space that does not name Pi as its carrier
    pi_home, pi_who = make_home(tmp_path, "Pi")
    with Replica.open(ada_home) as ada_replica, Replica.open(pi_home) as pi_replica:
        pi_replica.append([r.raw for r in ada_replica.space_records(crew.space)],
                          sender="file", now_ms=wall_ms())
    carrier = replace(QUIET, carrier=CarrierConfig(enabled=True, drop_grace_ms=0))
    caplog.set_level(logging.WARNING, logger="meshcrew.node")
    with Replica.open(pi_home) as replica, ExitStack() as lock, trio.fail_after(30):
        lock.enter_context(write_locked(replica))  # from before the node's first pass
        async with open_node(pi_home, pi_who, carrier, replica=replica) as pi:
            await wait_until(lambda: warned(caplog, "could not delete the spaces"), within=10)
            lock.close()
            assert crew.space in replica.spaces()
            assert pi.carrying is not None
            assert pi.carrying.forget_now() == [crew.space]  # what the next pass does
            assert crew.space not in replica.spaces()
