"""Receipts ("seen by N of M") and gaps ("what each member lacks") from real nodes.

Ada runs ``meshcrew node`` and Cy too, until Cy stops; Bo's node runs inside the app's backend
(:class:`~meshcrew.tui.node_backend.NodeBackend`, on loopback) and a second app attaches to
Ada's running node (:class:`~meshcrew.tui.attached.AttachedBackend`). Ada checks in while Cy
is away: every report must say Cy lacks it — the node's ``seen_by``, both backends' holdings
and what the screens compute from them — until Cy's node is back and has caught up.
"""

from __future__ import annotations

import gc
import warnings
from collections.abc import Callable, Iterator

import pytest
import trio

from meshcrew.node import NodeConfig
from meshcrew.records import decode_and_verify
from meshcrew.tui.attached import AttachedBackend
from meshcrew.tui.backend import Backend
from meshcrew.tui.health import Route, lacking, receipt
from meshcrew.tui.launch import open_home
from meshcrew.tui.node_backend import NodeBackend
from node_processes import LOOPBACK, Fleet, crew_in_process, fleet, remember

__all__ = ["fleet"]  # the fixture

WITHIN_S = 30.0


async def eventually(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` (it may block briefly: CLI calls, control socket) until it holds."""
    with trio.move_on_after(WITHIN_S):
        while not await trio.to_thread.run_sync(condition):  # noqa: ASYNC110 (no event)
            await trio.sleep(0.1)
        return
    pytest.fail(f"gave up after {WITHIN_S:.0f} s waiting for {what}")


@pytest.fixture
def _dial_sockets_collected() -> Iterator[None]:
    """py-libp2p's swarm leaves open the socket of a dial it cancelled (of racing dials to a
    peer at several addresses); collected later, its ResourceWarning would fail some other
    test. Not what these tests are about: collect it once the test's objects are gone."""
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@pytest.mark.slow
@pytest.mark.timeout(150)
@pytest.mark.usefixtures("_dial_sockets_collected")
def test_a_member_away_during_a_post_lacks_it_in_every_report_until_it_catches_up(
        fleet: Fleet) -> None:
    ada, bo, cy = fleet.make("Ada", "Bo", "Cy")
    space = crew_in_process(ada, bo, cy)
    space_id = bytes.fromhex(space)
    # A peer's frontier is noted when a sync session starts: records sent in that session
    # count from the next one (after new records, or every sync period of whichever of the
    # pair starts sessions), hence short periods everywhere.
    period = ("--sync-period", "3")
    ada.start(*period)
    remember(cy, ada)
    remember(bo, ada)
    cy.start(*period)
    keys = {n.name: n.key for n in (ada, bo, cy)}
    members = frozenset(keys.values())
    opened = open_home(bo.home, config=NodeConfig(listen_addrs=(LOOPBACK,), mdns=False,
                                                  sync_period_s=3.0))
    in_app = opened.backend
    assert isinstance(in_app, NodeBackend)
    attached_to_ada = open_home(ada.home)
    attached = attached_to_ada.backend
    assert isinstance(attached, AttachedBackend)
    backends: dict[str, Backend] = {"Bo's app (its node inside)": in_app,
                                    "Ada's app (attached to her node)": attached}

    def ada_head() -> int:
        return max(r.seq for r in map(decode_and_verify, ada.call("export", space_id))
                   if r.author == keys["Ada"])

    def holds(backend: Backend, who: str, seq: int) -> bool:
        return backend.holdings(space_id).get(keys[who], {}).get(keys["Ada"], 0) >= seq

    async def scenario() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(in_app.run)
            before = await trio.to_thread.run_sync(ada_head)
            for name, backend in backends.items():  # both nodes know Cy holds it all
                await eventually(lambda b=backend: holds(b, "Cy", before),  # type: ignore[misc]
                                 f"Cy's frontier in {name}")
            status = in_app.status()
            [ada_peer] = [p for p in status.peers if p.member == keys["Ada"]]
            assert ada_peer.connected
            assert ada_peer.route is Route.LAN  # loopback, reported by a real node
            await trio.to_thread.run_sync(cy.stop)
            posted = await trio.to_thread.run_sync(
                lambda: ada.cli("checkin", space, "--text", "while Cy was away"))
            post_id = bytes.fromhex(posted["id"])
            [post] = [r for r in map(decode_and_verify, ada.call("export", space_id))
                      if r.id == post_id]
            assert post.seq == before + 1

            def seen_by() -> set[bytes]:
                return set(ada.call("seen_by", post_id))

            # Bo's node receives the check-in; Ada's node hears Bo's frontier in a sync session.
            await eventually(lambda: keys["Bo"] in seen_by(), "Bo in seen_by")
            assert seen_by() == {keys["Ada"], keys["Bo"]}
            for name, backend in backends.items():
                await eventually(lambda b=backend: holds(b, "Bo", post.seq),  # type: ignore[misc]
                                 f"Bo's copy of the check-in in {name}")
                holdings = backend.holdings(space_id)
                assert receipt(post.author, post.seq, members, holdings).holders == \
                    {keys["Ada"], keys["Bo"]}, name
                mine = holdings[backend.identity.public_key]
                assert lacking(mine, holdings[keys["Cy"]]) >= 1, name
                assert holdings[keys["Cy"]][keys["Ada"]] == before, name

            # Back (on a new port): Cy's node redials the others from its peer book.
            await trio.to_thread.run_sync(lambda: cy.start(*period))
            await eventually(lambda: keys["Cy"] in seen_by(), "Cy in seen_by")
            assert seen_by() == set(members)
            for name, backend in backends.items():
                await eventually(lambda b=backend: holds(b, "Cy", post.seq),  # type: ignore[misc]
                                 f"Cy's copy in {name}")
                holdings = backend.holdings(space_id)
                assert receipt(post.author, post.seq, members, holdings).holders == members
                mine = holdings[backend.identity.public_key]
                assert holdings[keys["Cy"]][keys["Ada"]] >= post.seq
                assert lacking({keys["Ada"]: mine[keys["Ada"]]},
                               holdings[keys["Cy"]]) == 0, name
            nursery.cancel_scope.cancel()

    try:
        trio.run(scenario)
    finally:
        attached_to_ada.close()
        opened.close()
