"""Keeping in contact with members: the peer book, redialling, the LAN, address exchange.

:class:`Contacts` runs the node's background work about *peers* (the records themselves are
:mod:`meshcrew.node.node`'s business):

- every connection and disconnection updates the peer book (last seen, the addresses identify
  reported) and tells the dialer;
- the dialer (:mod:`.dialer`) redials members of this member's spaces and ``--bootstrap``
  peers it is not connected to;
- peers announced on the LAN (mDNS) are remembered and dialled;
- members exchange the addresses of the members they share (:mod:`.addr_exchange`) when they
  connect, again once identify has settled, and when membership changes, so every member can
  reach every other one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable

import trio

from meshcrew.errors import IdentityError, NetError
from meshcrew.identity import peer_id_of, public_key_of_peer_id
from meshcrew.net import Host, PeerConnected, Stream, starts_sessions
from meshcrew.net.mdns import LanPeer, open_lan_discovery
from meshcrew.node.addr_exchange import ADDRS_PROTOCOL, Known, exchange
from meshcrew.node.config import NodeConfig
from meshcrew.node.dialer import Dialer
from meshcrew.node.membership import Membership
from meshcrew.node.peerbook import PeerBook
from meshcrew.node.reports import PeersChanged

log = logging.getLogger("meshcrew.node")

_IDENTIFY_SETTLE_S = 2.0
"""Identify runs just after a connection opens; its addresses are read again this much later."""


class Contacts:
    """The node's peers: book, dialer, LAN discovery and address exchange.

    Args:
        host: the running host.
        book: the peer book.
        membership: who is a member of what.
        config: the node's settings.
        clock: UTC milliseconds.
        emit: sends a node event.
    """

    def __init__(self, host: Host, book: PeerBook, membership: Membership, config: NodeConfig,
                 clock: Callable[[], int], emit: Callable[[PeersChanged], None], *,
                 carriers: Callable[[bytes], frozenset[bytes]] | None = None) -> None:
        self._host = host
        self._carriers = carriers or (lambda space_id: frozenset())
        self._book = book
        self._membership = membership
        self._config = config
        self._clock = clock
        self._emit = emit
        self.dialer = Dialer(host, book, self.wanted_peers, low_s=config.redial_min_s,
                             high_s=config.redial_max_s, max_dials=config.max_dials)
        self.lan_peers: dict[str, LanPeer] = {}
        """Peers heard of on the LAN since the node started."""
        self.mdns_running = False
        self._lan_found = trio.Event()
        self._lan_started = False
        self._nursery: trio.Nursery | None = None

    def wanted_peers(self) -> set[str]:
        """Peer ids of the other current members of this member's spaces, of the carriers
        those spaces name, and of this member's other devices (the member key's node included),
        whatever spaces they share: a device follows its member into new ones."""
        me = self._host.public_key
        membership = self._membership
        keys = {k for s in membership.my_spaces()
                for k in membership.active(s) | self._carriers(s)}
        devices = membership.devices()
        mine = devices.get(me, me)
        keys |= {k for k, member in devices.items() if member == mine} | {mine}
        return {peer_id_of(k) for k in keys if k != me}

    async def run(self) -> None:
        """Watch connections, redial, discover and exchange addresses, until cancelled."""
        self._host.set_stream_handler(ADDRS_PROTOCOL, self._serve_exchange)
        self.dialer.pin(self._config.bootstrap, source="bootstrap")
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self.dialer.run)
            if self._config.mdns:
                self.start_lan()
            await self._watch()

    def start_lan(self) -> None:
        """Start LAN discovery now if it is not running (for a join that needs it)."""
        if not self._lan_started and self._nursery is not None:
            self._lan_started = True
            self._nursery.start_soon(self._discover_lan)

    async def wait_lan_peer(self) -> None:
        """Return when the next peer is heard of on the LAN."""
        await self._lan_found.wait()

    def membership_changed(self) -> None:
        """New members may need dialling, and connected members may want their addresses."""
        self.dialer.wake()
        wanted = self.wanted_peers()
        for peer_id in self._host.connected_peers():
            if peer_id in wanted:
                self._start(self._exchange_with, peer_id)

    # --- connections ---------------------------------------------------------------------------

    async def _watch(self) -> None:
        host = self._host
        with host.watch_connections() as events:
            async for event in events:
                peer_id = event.peer_id
                self._book.seen(peer_id, self._clock())
                self._book.learn(peer_id, host.peer_addrs(peer_id), source="connection")
                if isinstance(event, PeerConnected):
                    self.dialer.connected(peer_id)
                    self._start(self._after_connecting, peer_id)
                # At once, not at the next periodic save: a node killed right after meeting
                # its peers must still find them when it restarts.
                self._book.save()
                self._emit(PeersChanged(frozenset(host.connected_peers())))

    async def _after_connecting(self, peer_id: str) -> None:
        try:
            remote = public_key_of_peer_id(peer_id)
        except IdentityError:
            return
        starts = starts_sessions(self._host.public_key, remote)
        if starts and peer_id in self.wanted_peers():
            await self._exchange_with(peer_id)
        await trio.sleep(_IDENTIFY_SETTLE_S)
        self._book.learn(peer_id, self._host.peer_addrs(peer_id), source="connection")
        self._book.save()
        # Again, now that identify has said where this peer and those connecting at the same
        # moment listen: two members reaching a third at once each exchanged with it before
        # it knew where the other listens, and would never meet without it.
        if starts and peer_id in self.wanted_peers() \
                and peer_id in self._host.connected_peers():
            await self._exchange_with(peer_id)

    def _start(self, fn: Callable[[str], Awaitable[object]], peer_id: str) -> None:
        if self._nursery is not None:
            self._nursery.start_soon(fn, peer_id)

    # --- the LAN -------------------------------------------------------------------------------

    async def _discover_lan(self) -> None:
        try:
            async with open_lan_discovery(self._host) as found:
                self.mdns_running = True
                async for peer in found:
                    self.lan_peers[peer.peer_id] = peer
                    self._lan_found.set()
                    self._lan_found = trio.Event()
                    self._book.learn(peer.peer_id, list(peer.addrs), source="mdns")
                    if peer.peer_id not in self._host.connected_peers():
                        self._start(self._dial_lan_peer, peer.peer_id)
        except NetError as exc:
            log.warning("LAN discovery is off: %s", exc)
        finally:
            self.mdns_running = False

    async def _dial_lan_peer(self, peer_id: str) -> None:
        peer = self.lan_peers[peer_id]
        await self.dialer.dial(peer.peer_id, peer.addrs, source="mdns")

    # --- address exchange ----------------------------------------------------------------------

    def _shared_members(self, remote: bytes) -> set[bytes]:
        """Members (and carriers) of the spaces this member shares with ``remote``."""
        membership = self._membership
        return {k for s in membership.my_spaces() if remote in membership.active(s)
                for k in membership.active(s) | self._carriers(s)}

    def _known_for(self, remote: bytes) -> Known:
        known: Known = {self._host.peer_id: self._host.listen_addrs()}
        for key in sorted(self._shared_members(remote) - {remote, self._host.public_key}):
            entry = self._book.get(peer_id_of(key))
            if entry is not None and entry.addrs:
                known[entry.peer_id] = list(entry.addrs)
        return known

    def _learner(self, remote: bytes) -> Callable[[str, Iterable[str]], None]:
        members = {peer_id_of(k) for k in self._shared_members(remote)} - {self._host.peer_id}

        def learn(peer_id: str, addrs: Iterable[str]) -> None:
            if peer_id in members:
                self._book.learn(peer_id, list(addrs), source="exchange")

        return learn

    async def _exchange_with(self, peer_id: str) -> None:
        host = self._host
        try:
            stream = await host.open_stream(peer_id, ADDRS_PROTOCOL)
        except NetError as exc:
            log.debug("no address exchange with %s: %s", peer_id, exc)
            return
        try:
            await exchange(stream, self._known_for(stream.remote_key),
                           self._learner(stream.remote_key), host.penalize)
        except NetError as exc:
            log.debug("address exchange with %s failed: %s", peer_id, exc)
            await stream.reset()
        self.dialer.wake()

    async def _serve_exchange(self, stream: Stream) -> None:
        if not self._shared_members(stream.remote_key):
            await stream.reset()  # not a member of any space here: tell it nothing
            return
        try:
            await exchange(stream, self._known_for(stream.remote_key),
                           self._learner(stream.remote_key), self._host.penalize)
        except NetError as exc:
            log.debug("address exchange with %s failed: %s", stream.peer_id, exc)
            return
        self.dialer.wake()
