"""Bringing spaces to connected peers over the carry protocol, once per connection.

:func:`meshcrew.node.carrying.bring` offers one space to one peer (``[space id]``, then an
ordinary sync session of that space). Two parts of the node do it for peers that would not sync
the space on their own yet: :class:`~meshcrew.node.carrying.CarrierContacts` (a space to the
carriers it names, a carried space to its members) and
:class:`~meshcrew.node.following.DeviceFollowing` (a member's spaces to the member's devices).
:class:`Bringer` is what they share: look again whenever a peer connects or something changed,
bring each due ``(space, peer)`` pair once per connection, retry one that failed at the next
look.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio

from meshcrew.errors import IdentityError, MeshcrewError
from meshcrew.identity import peer_id_of
from meshcrew.net import Host, PeerConnected

log = logging.getLogger("meshcrew.node")

BringOne = Callable[[str, bytes], Awaitable[str | None]]
"""``(peer id, space id)``: offers the space; the peer's reason if it refused, else None."""


class Bringer:
    """Brings the ``(space, key)`` pairs :meth:`due` names to those keys' peers while they
    are connected, each once per connection; subclasses say what is due and what an answer
    means.

    Args:
        host: the running host.
        bring_one: runs :func:`meshcrew.node.carrying.bring` with a new session.
    """

    def __init__(self, host: Host, bring_one: BringOne) -> None:
        self._host = host
        self._bring_one = bring_one
        self._brought: set[tuple[str, bytes]] = set()
        """(peer, space) pairs brought since that peer last connected."""
        self._wake = trio.Event()

    def changed(self) -> None:
        """What is due may have changed: look again."""
        self._wake.set()

    def due(self) -> list[tuple[bytes, bytes]]:
        """``(space, key)`` pairs to bring now."""
        raise NotImplementedError

    def answered(self, peer_id: str, space_id: bytes, refused: str | None) -> None:
        """The peer took the space (``refused`` is None) or said why not."""

    async def run(self) -> None:
        """Bring what is due whenever a peer connects or :meth:`changed` is called, until
        cancelled."""
        with self._host.watch_connections() as events:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._on_changes, nursery)
                async for event in events:
                    if isinstance(event, PeerConnected):
                        self._brought = {p for p in self._brought if p[0] != event.peer_id}
                        self._bring_due(nursery)

    async def _on_changes(self, nursery: trio.Nursery) -> None:
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            self._bring_due(nursery)

    def _bring_due(self, nursery: trio.Nursery) -> None:
        connected = set(self._host.connected_peers())
        for space_id, key in self.due():
            try:
                peer_id = peer_id_of(key)
            except IdentityError:
                continue
            if peer_id in connected and (peer_id, space_id) not in self._brought:
                self._brought.add((peer_id, space_id))
                nursery.start_soon(self._bring_quietly, peer_id, space_id)

    async def _bring_quietly(self, peer_id: str, space_id: bytes) -> None:
        try:
            refused = await self._bring_one(peer_id, space_id)
        except MeshcrewError as exc:
            log.info("bringing space %s to %s failed: %s", space_id.hex()[:12], peer_id, exc)
            self._brought.discard((peer_id, space_id))
            return
        self.answered(peer_id, space_id, refused)
