"""The backend of an app whose node runs in the same process (trio in guest mode).

:class:`NodeBackend` starts as a :class:`~meshcrew.tui.service_backend.LocalBackend` over the
replica, so the home screen paints at once; :meth:`NodeBackend.run` (the app's node runner) opens
the node on that same replica and from then on every read and write goes to the node's own
member service, so the node stays the only writer and publishes what the member signs. The node's
events become backend events; its peer reports become :class:`~meshcrew.tui.health.SyncStatus`;
its receipts (the frontiers peers showed in sync sessions) become holdings.

This module imports no Textual. The node (and with it trio and libp2p) is imported when the
node starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import trio
import trio.lowlevel

from meshcrew.errors import JoinRefused, MeshcrewError, NodeNotRunning, UnknownName
from meshcrew.identity import Identity
from meshcrew.spaces import decode_invite_code
from meshcrew.spaces.invites import MAX_ADDR_CHARS, MAX_ADDRS
from meshcrew.store import Replica
from meshcrew.tui.backend import JoinProgress, PeersUpdated, SpacesChanged
from meshcrew.tui.device_calls import LINK_WAIT_S
from meshcrew.tui.health import Holdings, PeerStatus, Route, SyncStatus
from meshcrew.tui.service_backend import LocalBackend

if TYPE_CHECKING:
    from meshcrew.node import JoinProgress as NodeJoinProgress
    from meshcrew.node import Node, NodeConfig, PeerReport
    from meshcrew.node.reports import LinkResult

T = TypeVar("T")

STAGES = {"dialling": "reaching a member of the space",
          "looking_on_lan": "looking for a member on the LAN", "asking": "asking to be let in",
          "history": "receiving the history", "joined": "joined; waiting for the keys",
          "keys": "the keys arrived", "waiting_for_keys": "waiting for a member to share "
          "the keys"}
"""The node's join stages, as the join screen says them."""

PEERS_EVERY_S = 5.0
"""How often the app is told to read the peers again (last seen, reconnections)."""

NODE_START_S = 60.0
"""How long a wait for a link waits for the app's node to start (it opens the replica and
listens first)."""


def route_of(report: PeerReport) -> Route:
    """How the node says the peer is connected now (relayed, hole-punched); otherwise LAN if
    found by mDNS or at a private address, relay if known only through a circuit, else internet.
    """
    if report.connected and report.link == "relayed":
        return Route.RELAY
    if report.connected and report.link == "hole-punched":
        return Route.HOLE_PUNCHED
    if report.source == "mdns":
        return Route.LAN
    if any("/p2p-circuit" in addr for addr in report.addrs):
        return Route.RELAY
    for addr in report.addrs:
        parts = addr.split("/")
        if len(parts) > 2 and parts[1] in ("ip4", "ip6"):
            try:
                if ipaddress.ip_address(parts[2]).is_private:
                    return Route.LAN
            except ValueError:
                continue
    return Route.INTERNET


def sync_status(addrs: tuple[str, ...], reports: list[PeerReport],
                last_received_ms: int | None, detail: str = "") -> SyncStatus:
    """The status of a running node from its addresses and peer reports."""
    peers = tuple(
        PeerStatus(member=report.key, addresses=report.addrs, connected=report.connected,
                   route=route_of(report), last_seen_ms=report.last_seen_ms,
                   last_sync_ms=report.last_sync_ms, via=report.via, role=report.role,
                   of_member=report.member)
        for report in reports if report.key is not None)
    return SyncStatus(running=True, detail=detail, listen_addrs=addrs, peers=peers,
                      last_received_ms=last_received_ms)


class NodeBackend(LocalBackend):
    """The member service of the in-process node, and what the node knows of the network.

    Args:
        replica: the replica, opened for writing (the node uses it and leaves it open).
        identity: this member.
        clock: the current time in UTC ms.
        config: the node's settings (default: every interface, mDNS on).
    """

    def __init__(self, replica: Replica, identity: Identity, *, clock: Callable[[], int],
                 config: NodeConfig | None = None) -> None:
        super().__init__(replica, identity, clock=clock)
        self._replica = replica
        self._clock = clock
        self._config = config
        self.node: Node | None = None
        self._nursery: trio.Nursery | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._detail = "Starting the node…"
        self._last_received_ms: int | None = None

    # -- the node runner ----------------------------------------------------------------------

    async def run(self) -> None:
        """Run the node until cancelled (the app's node runner, in trio guest mode).

        A node that cannot start (a port in use, another node on this home folder) leaves the
        app working offline and says why in :meth:`status`.
        """
        from meshcrew.node import open_node

        try:
            async with open_node(self._replica.home, self.identity, self._config,
                                 clock=self._clock, replica=self._replica,
                                 views=self.service.views) as node:
                self.node = node
                self.service = node.member
                self._token = trio.lowlevel.current_trio_token()
                self._detail = ""
                with node.subscribe() as events:
                    async with trio.open_nursery() as nursery:
                        self._nursery = nursery
                        nursery.start_soon(self._tick_peers)
                        self.emit(PeersUpdated())
                        async for event in events:
                            self._forward(event)
        except MeshcrewError as exc:
            self._detail = f"Not connected: the node could not start ({exc})"
            self.emit(PeersUpdated())
        finally:
            self.node = None
            self._nursery = None

    def _forward(self, event: object) -> None:
        from meshcrew.node import PeersChanged, PeerSynced, RecordsChanged

        if isinstance(event, RecordsChanged):
            if not event.local:
                self._last_received_ms = self._clock()
            self.emit(SpacesChanged(event.spaces))
            self.emit(PeersUpdated())  # receipts change as peers sync what was written
        elif isinstance(event, PeersChanged | PeerSynced):
            self.emit(PeersUpdated())

    async def _tick_peers(self) -> None:
        while True:
            await trio.sleep(PEERS_EVERY_S)
            self.emit(PeersUpdated())

    # -- what the node knows ------------------------------------------------------------------

    def status(self) -> SyncStatus:
        """The node's peers by route and last sync, where it listens, the last arrival."""
        node = self.node
        if node is None:
            return SyncStatus(running=False, detail=self._detail)
        return sync_status(node.addrs(), node.peers(), self._last_received_ms)

    def holdings(self, space_id: bytes) -> Holdings:
        """This replica's frontier, and each member's (any of their devices') as last shown
        in a sync session."""
        node = self.node
        return self.holdings_with(space_id, {} if node is None else
                                  node.receipts.frontiers(space_id))

    # -- the node's versions of invite and join -----------------------------------------------

    def invite(self, space_id: bytes, *, uses: int = 1, expires_ms: int) -> str:
        """An invite whose code carries the node's addresses (none while it is not running)."""
        addrs = () if self.node is None else tuple(
            a for a in self.node.addrs() if len(a) <= MAX_ADDR_CHARS)[:MAX_ADDRS]
        return self.service.invite(space_id, uses=uses, expires_ms=expires_ms, addrs=addrs)

    async def join(self, code: str) -> bytes:
        """Join over the network through the node (reporting progress); else locally."""
        node, nursery, token = self.node, self._nursery, self._token
        if node is None or nursery is None or token is None:
            return await super().join(code)
        done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        async def report(step: NodeJoinProgress) -> None:
            self.emit(JoinProgress(step.done, step.total or None,
                                   STAGES.get(step.stage, step.stage)))

        async def run_join() -> None:
            try:
                space_id = (await node.join(code, progress=report)).space
            except JoinRefused as exc:
                self._join_here(code, exc, done)
            except MeshcrewError as exc:
                _settle(done, error=exc)
            else:
                _settle(done, result=space_id)

        # The join runs in the node's nursery, in trio; the app's worker awaits its outcome.
        token.run_sync_soon(nursery.start_soon, run_join)
        return await done

    def _join_here(self, code: str, refused: JoinRefused, done: asyncio.Future[bytes]) -> None:
        """No member reachable, but the space may be in the replica already (an import)."""
        if refused.reason == "unreachable":
            try:
                self.service.view(decode_invite_code(code).space_id)
                _settle(done, result=self.service.join(code))
                return
            except UnknownName:
                pass
            except MeshcrewError as exc:
                _settle(done, error=exc)
                return
        _settle(done, error=refused)

    # -- a member's devices, through the node (see meshcrew.tui.device_calls) -----------------

    async def link_device(self, code: str) -> LinkResult:
        """Link the new device of a link code through the node (``devices add``)."""
        return await self._in_node(lambda node: node.link_device(code))

    async def wait_for_link(self, show: Callable[[str], None], *, within_s: float = LINK_WAIT_S,
                            on_records: Callable[[int], None] | None = None
                            ) -> LinkResult | None:
        """Once the node listens: show a link code with its addresses and serve one link (the
        new device's side of ``init --link``)."""
        from meshcrew.node.linking import wait_for_link

        loop = asyncio.get_running_loop()
        deadline = loop.time() + NODE_START_S
        while self.node is None or self._nursery is None:
            if self._detail.startswith("Not connected") or loop.time() > deadline:
                raise NodeNotRunning(self._detail if self._detail.startswith("Not connected")
                                     else "The node did not start in time; restart meshcrew.")
            await asyncio.sleep(0.05)  # the node starts in the same thread: poll for it
        return await self._in_node(lambda node: wait_for_link(
            node, show=show, within_s=within_s, on_records=on_records))

    async def _in_node(self, work: Callable[[Node], Awaitable[T]]) -> T:
        """Run ``work`` in the node's nursery (in trio) and await its outcome here (asyncio).
        Cancelling the await cancels the work; the node stopping ends it with NodeNotRunning.
        """
        node, nursery, token = self.node, self._nursery, self._token
        if node is None or nursery is None or token is None:
            raise NodeNotRunning(self._detail or "The app's node is not running.")
        done: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        scope = trio.CancelScope()

        async def run() -> None:
            try:
                with scope:
                    try:
                        result = await work(node)
                    except MeshcrewError as exc:
                        if not done.done():
                            done.set_exception(exc)
                    else:
                        if not done.done():
                            done.set_result(result)
            finally:  # the node stopping cancels this too: the app must not wait for ever
                if not done.done():
                    done.set_exception(NodeNotRunning("The node stopped."))

        token.run_sync_soon(nursery.start_soon, run)
        try:
            return await done
        except asyncio.CancelledError:
            with contextlib.suppress(trio.RunFinishedError):  # the node has stopped already
                token.run_sync_soon(scope.cancel)
            raise


def _settle(done: asyncio.Future[bytes], *, result: bytes | None = None,
            error: BaseException | None = None) -> None:
    if done.done():
        return  # the app stopped waiting (the join screen was closed)
    if error is not None:
        done.set_exception(error)
    elif result is not None:
        done.set_result(result)
