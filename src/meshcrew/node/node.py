"""The node: one member's replica, service and libp2p host, run together by :func:`open_node`.

``open_node`` owns everything it starts: the replica (and with it the home folder's writer
lock), the :class:`~meshcrew.service.Member` service, the host, catch-up sync, gossip on every
space the member is in, the join handshake, the dialer and the peer book, LAN discovery and the
control socket. Leaving its block stops them all within a bounded time (about a second).

How records move (``docs/node.md`` has the whole picture):

- a record this member signs is appended, published on its space's topic at once, and synced
  to connected members a moment later (which also tells who has received it);
- gossip from peers passes :class:`~meshcrew.node.membership.GossipJudge` and is appended;
- records from sync and joins are appended, then synced on to the other connected members;
- a record that may change membership (any kind but ``sealed``) goes through
  :meth:`Member.ingest`, whose housekeeping rotates keys for joiners; posts go straight to the
  replica, so a long catch-up never refolds its space batch after batch.

Everything runs in the node's trio thread, so the replica (one thread at a time) is only ever
used from there; SQLite appends are fast enough not to need a worker thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from typing import TYPE_CHECKING

import msgpack
import trio

from meshcrew.errors import IdentityError, ListenError, NetError
from meshcrew.home import Home
from meshcrew.identity import Identity, peer_id_of, public_key_of_peer_id
from meshcrew.net import INVALID_RECORD, Host, NetConfig, PeerConnected, SyncService, open_host
from meshcrew.net.config import default_listen_addrs
from meshcrew.net.mdns import LanPeer, open_lan_discovery
from meshcrew.node.config import NodeConfig
from meshcrew.node.dialer import Dialer
from meshcrew.node.join import JOIN_PROTOCOL, Admission, JoinServer
from meshcrew.node.joining import Joining
from meshcrew.node.membership import GossipJudge, Membership, changes_membership
from meshcrew.node.peerbook import PeerBook
from meshcrew.node.receipts import Receipts
from meshcrew.node.reports import (
    JoinProgress,
    JoinResult,
    NodeEvent,
    NodeStatus,
    PeerReport,
    PeersChanged,
    RecordsChanged,
)
from meshcrew.reasons import Reason
from meshcrew.records import Head, Record, record_id
from meshcrew.service import Member
from meshcrew.spaces import invite_problem
from meshcrew.store import Replica
from meshcrew.sync import PeerFrontier, RecordsReceived, SyncEvent

if TYPE_CHECKING:
    from trio_typing import TaskStatus

log = logging.getLogger("meshcrew.node")

ENVELOPE_FAULTS = frozenset({
    Reason.TOO_LARGE, Reason.MALFORMED, Reason.NOT_CANONICAL, Reason.BAD_FIELD, Reason.BAD_KIND,
    Reason.BAD_SEQ, Reason.BODY_TOO_LARGE, Reason.BAD_SIGNATURE})
"""Refusals that prove the sender sent a bad record (a newer version or a skewed clock do not)."""

_SAVE_EVERY_S = 5.0
_GOSSIP_BATCH = 256


def wall_clock_ms() -> int:
    """The current time in UTC milliseconds."""
    return time.time_ns() // 1_000_000


def stored_record(raw: bytes) -> Record:
    """A record the replica has verified and stored, rebuilt without verifying it again."""
    version, kind, space, author, seq, prev, ts, body, sig = msgpack.unpackb(raw, raw=False)
    return Record(version, kind, space, author, seq, prev, ts, body, sig, raw, record_id(raw))


def kind_of_raw(raw: bytes) -> str | None:
    """The kind an encoded record claims (None if it does not look like a record)."""
    try:
        fields = msgpack.unpackb(raw, raw=False)
        kind = fields[1]
    except (ValueError, TypeError, IndexError, KeyError, msgpack.UnpackException):
        return None
    return kind if isinstance(kind, str) else None


class Node:
    """A running node. Made by :func:`open_node`; valid until its block exits.

    Attributes:
        home: the home folder.
        identity: the member.
        member: the member service over the replica (call it from the node's trio thread).
        host: the libp2p host.
        config: the settings it runs with.
    """

    def __init__(self, home: Home, identity: Identity, config: NodeConfig, replica: Replica,
                 clock: Callable[[], int]) -> None:
        self.home = home
        self.identity = identity
        self.config = config
        self.replica = replica
        self._clock = clock
        self.member = Member(replica, identity, clock=clock, on_records=self._on_records)
        self.book = PeerBook.load(home)
        self.receipts = Receipts.load(home)
        self.membership = Membership(self.member)
        self.judge = GossipJudge(self.membership, clock)
        self.started_ms = clock()
        self._host: Host | None = None
        self._sync: SyncService | None = None
        self._dialer: Dialer | None = None
        self._nursery: trio.Nursery | None = None
        self._watchers: list[trio.MemorySendChannel[NodeEvent]] = []
        self._incoming: set[bytes] = set()
        self._topics_changed = trio.Event()
        self._to_sync: set[str] = set()
        self._sync_wanted = trio.Event()
        self._lan_peers: dict[str, LanPeer] = {}
        self._lan_found = trio.Event()
        self.mdns_running = False

    # --- the handle ----------------------------------------------------------------------------

    @property
    def host(self) -> Host:
        """The libp2p host (once started)."""
        if self._host is None:
            raise RuntimeError("the node is not running")
        return self._host

    @property
    def sync(self) -> SyncService:
        """The catch-up sync service (once started)."""
        if self._sync is None:
            raise RuntimeError("the node is not running")
        return self._sync

    @property
    def dialer(self) -> Dialer:
        """The dialer (once started)."""
        if self._dialer is None:
            raise RuntimeError("the node is not running")
        return self._dialer

    def status(self) -> NodeStatus:
        """The node at a glance (``meshcrew status``)."""
        host = self.host
        stats = host.gossip.statistics()
        return NodeStatus(
            peer_id=host.peer_id, key=self.identity.public_key, name=self.identity.name,
            fingerprint=self.identity.fingerprint, home=str(self.home.path),
            addrs=tuple(host.listen_addrs()), peers=tuple(sorted(host.connected_peers())),
            spaces=tuple(self.membership.my_spaces()), records=self.replica.record_count(),
            mdns=self.mdns_running, started_ms=self.started_ms,
            banned=tuple(sorted(host.scores.banned)), gossip_published=stats.published,
            gossip_received=stats.received, gossip_rejected=stats.rejected,
            gossip_dropped=stats.publish_dropped + stats.receive_dropped)

    def peers(self) -> list[PeerReport]:
        """Connected and known peers, and per shared space what each lacks (``meshcrew peers``)."""
        from meshcrew.node.peer_reports import peer_reports

        return peer_reports(self)

    def seen_by(self, record_id: bytes) -> list[bytes]:
        """Member keys known to hold a record (its author and this member included)."""
        record = self.replica.get(record_id)
        if record is None:
            return []
        holders = set(self.receipts.holders(record.space_id, record.author, record.seq))
        return sorted(holders | {record.author, self.identity.public_key})

    def subscribe(self, buffer: int = 256) -> trio.MemoryReceiveChannel[NodeEvent]:
        """A channel of :data:`~meshcrew.node.reports.NodeEvent` from now on.

        Events beyond ``buffer`` unread are dropped (each says only *what* changed; read the
        replica for the rest). Close the channel to stop.
        """
        send, receive = trio.open_memory_channel[NodeEvent](buffer)
        self._watchers.append(send)
        return receive

    def addrs(self) -> tuple[str, ...]:
        """Where peers can dial this node (for invite codes)."""
        return tuple(self.host.listen_addrs())

    async def connect(self, addr: str) -> str:
        """Dial a peer at a multiaddr ending in ``/p2p/<peer id>`` and remember it."""
        peer_id = await self.host.connect(addr)
        self.book.learn(peer_id, [addr], source="manual")
        return peer_id

    async def join(self, code: str,
                   progress: Callable[[JoinProgress], Awaitable[None]] | None = None
                   ) -> JoinResult:
        """Join the space of an invite code over the network (see :mod:`.joining`)."""
        return await Joining(self, code, progress).run()

    # --- records -------------------------------------------------------------------------------

    def take(self, raws: list[bytes], *, sender: str, propagate: bool) -> list[bytes]:
        """Store records from a peer (or a file); return the ids accepted.

        Records that may change membership go through the member service (its housekeeping
        rotates keys for joiners); posts go straight to the replica. A peer that sent records
        with bad envelopes loses points.
        """
        claimed = {record_id(raw): raw for raw in raws}
        self._incoming = set(claimed)
        try:
            if any(kind_of_raw(raw) != "sealed" for raw in raws):
                report = self.member.ingest(raws, sender=sender)
                accepted = list(report.accepted)
                faults = [r.reason for r in report.rejected]
            else:
                appended = self.replica.append(raws, sender=sender, now_ms=self._clock())
                accepted = appended.accepted
                faults = [e.reason.value for e in appended.rejected]
                self._on_records([self._record_of(rid, claimed) for rid in accepted])
        finally:
            self._incoming = set()
        bad = sum(1 for reason in faults if reason in ENVELOPE_FAULTS)
        if bad and self._host is not None and _is_peer(sender):
            self._host.penalize(sender, INVALID_RECORD * bad, f"sent {bad} invalid records")
        if accepted and propagate:
            self._propagate(exclude=sender)
        return accepted

    def _record_of(self, rid: bytes, claimed: dict[bytes, bytes]) -> Record:
        raw = claimed.get(rid)
        if raw is not None:
            return stored_record(raw)
        record = self.replica.get(rid)
        assert record is not None  # just accepted
        return record

    def _on_records(self, records: list[Record]) -> None:
        """Every record the member signs or the replica accepts (Member's ``on_records``)."""
        if not records:
            return
        me = self.identity.public_key
        local = [r for r in records if r.author == me and r.id not in self._incoming]
        if self._host is not None:
            for record in local:
                self._host.gossip.publish(record.space_id, record.raw)
        for record in records:
            if changes_membership(record.kind):
                self.membership.changed(record.space_id)
                self._topics_changed.set()
        if local:
            self._propagate(exclude=None)
        self._emit(RecordsChanged(frozenset(r.space_id for r in records), len(records),
                                  bool(local)))

    def _propagate(self, *, exclude: str | None) -> None:
        """Sync connected members soon: new records reach them even if gossip dropped them,
        and their frontiers say who has received what."""
        if self._host is None:
            return
        wanted = self.wanted_peers()
        self._to_sync |= {p for p in self._host.connected_peers() if p in wanted} - {exclude}
        self._sync_wanted.set()

    async def _on_sync_event(self, peer_id: str, event: SyncEvent) -> None:
        if isinstance(event, RecordsReceived):
            self.take(list(event.raws), sender=peer_id, propagate=True)
        elif isinstance(event, PeerFrontier):
            try:
                key = public_key_of_peer_id(peer_id)
            except IdentityError:
                return
            self.receipts.note_frontier(event.space_id, key, event.frontier)

    def wanted_peers(self) -> set[str]:
        """Peer ids of the other current members of this member's spaces."""
        me = self.identity.public_key
        keys = {k for s in self.membership.my_spaces() for k in self.membership.active(s)}
        return {peer_id_of(k) for k in keys if k != me}

    def _emit(self, event: NodeEvent) -> None:
        for watcher in list(self._watchers):
            try:
                watcher.send_nowait(event)
            except trio.WouldBlock:
                pass  # a slow reader misses an event that only says something changed
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._watchers.remove(watcher)

    # --- background tasks ----------------------------------------------------------------------

    async def _start(self, host: Host, nursery: trio.Nursery) -> None:
        self._host = host
        self._nursery = nursery
        self._sync = SyncService(host, self.replica, self.membership.my_spaces,
                                 self.membership.is_member, self._on_sync_event,
                                 period_s=self.config.sync_period_s)
        self._dialer = Dialer(host, self.book, self.wanted_peers,
                              low_s=self.config.redial_min_s, high_s=self.config.redial_max_s,
                              max_dials=self.config.max_dials)
        host.set_stream_handler(JOIN_PROTOCOL, JoinServer(
            self.replica, is_active=self._is_active, check_invite=self._check_invite,
            admit=self._admit, penalize=host.penalize).serve)
        await nursery.start(self._sync.run)
        await nursery.start(self._keep_topics)
        nursery.start_soon(self._take_gossip)
        nursery.start_soon(self._watch_peers)
        nursery.start_soon(self._sync_when_wanted)
        nursery.start_soon(self._save_periodically)
        self._dialer.pin(self.config.bootstrap, source="bootstrap")
        nursery.start_soon(self._dialer.run)
        if self.config.mdns:
            nursery.start_soon(self._discover_lan)

    async def _keep_topics(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED
                           ) -> None:
        gossip = self.host.gossip
        started = False
        while True:
            wanted = set(self.membership.my_spaces())
            for space_id in sorted(wanted - gossip.joined):
                await gossip.join(space_id)
            for space_id in sorted(gossip.joined - wanted):
                await gossip.leave(space_id)
            self.dialer.wake()
            if not started:
                task_status.started()
                started = True
            await self._topics_changed.wait()
            self._topics_changed = trio.Event()

    async def _take_gossip(self) -> None:
        messages = self.host.gossip.messages
        async for first in messages:
            batch = [first]
            while len(batch) < _GOSSIP_BATCH:
                try:
                    batch.append(messages.receive_nowait())
                except trio.WouldBlock:
                    break
            by_origin: dict[str, list[bytes]] = {}
            for message in batch:
                by_origin.setdefault(message.origin, []).append(message.data)
            for origin, raws in by_origin.items():
                accepted = set(self.take(raws, sender=origin, propagate=False))
                self._note_published(origin, raws, accepted)

    def _note_published(self, origin: str, raws: list[bytes], accepted: set[bytes]) -> None:
        """A record published by its own author proves the author holds its chain up to it."""
        try:
            origin_key = public_key_of_peer_id(origin)
        except IdentityError:
            return
        for raw in raws:
            rid = record_id(raw)
            if rid in accepted or self.replica.state_of(rid) is not None:
                record = stored_record(raw)
                if record.author == origin_key:
                    self.receipts.note_author_holds(record.space_id, record.author,
                                                    Head(record.seq, record.id))

    async def _watch_peers(self) -> None:
        host = self.host
        with host.watch_connections() as events:
            async for event in events:
                peer_id = event.peer_id
                self.book.seen(peer_id, self._clock())
                if isinstance(event, PeerConnected):
                    self.dialer.connected(peer_id)
                    self._nursery_start(self._learn_addrs_later, peer_id)
                self.book.learn(peer_id, host.peer_addrs(peer_id), source="connection")
                self._emit(PeersChanged(frozenset(host.connected_peers())))

    async def _learn_addrs_later(self, peer_id: str) -> None:
        # identify runs just after a connection opens; its addresses land a moment later
        await trio.sleep(2.0)
        self.book.learn(peer_id, self.host.peer_addrs(peer_id), source="connection")

    async def _sync_when_wanted(self) -> None:
        while True:
            await self._sync_wanted.wait()
            self._sync_wanted = trio.Event()
            await trio.sleep(self.config.propagate_delay_s)  # gather a burst into one session
            peers, self._to_sync = self._to_sync, set()
            connected = set(self.host.connected_peers())
            for peer_id in sorted(peers & connected):
                self.sync.sync_soon(peer_id)

    async def _save_periodically(self) -> None:
        while True:
            await trio.sleep(_SAVE_EVERY_S)
            self.save()

    def save(self) -> None:
        """Write the peer book (with the ban list) and the receipts if they changed."""
        if self._host is not None:
            self.book.set_banned(self._host.scores.banned)
        self.book.save()
        self.receipts.save()

    async def _discover_lan(self) -> None:
        try:
            async with open_lan_discovery(self.host) as found:
                self.mdns_running = True
                async for peer in found:
                    self._lan_peers[peer.peer_id] = peer
                    self._lan_found.set()
                    self._lan_found = trio.Event()
                    self.book.learn(peer.peer_id, list(peer.addrs), source="mdns")
                    if peer.peer_id not in self.host.connected_peers():
                        self._nursery_start(self._dial_lan_peer, peer)
        except NetError as exc:
            log.warning("LAN discovery is off: %s", exc)
        finally:
            self.mdns_running = False

    async def _dial_lan_peer(self, peer: LanPeer) -> None:
        await self.dialer.dial(peer.peer_id, peer.addrs, source="mdns")

    def _nursery_start(self, fn: Callable[..., Awaitable[object]], *args: object) -> None:
        if self._nursery is not None:
            self._nursery.start_soon(fn, *args)

    # --- the join handshake's member side ------------------------------------------------------

    def _is_active(self, space_id: bytes) -> bool:
        return self.identity.public_key in self.membership.active(space_id)

    def _check_invite(self, space_id: bytes, invite_id: bytes
                      ) -> tuple[bytes | None, Reason | None]:
        state = self.membership.state(space_id)
        if state is None:
            return None, Reason.INVITE_UNKNOWN
        invite = state.invites.get(invite_id)
        problem = invite_problem(state, invite_id, self._clock())
        return (invite.public_key if invite is not None else None), problem

    async def _admit(self, join: Record, sender: str) -> Admission:
        self.take([join.raw], sender=sender, propagate=True)
        state = self.membership.state(join.space_id)
        status = state.status(join.id) if state is not None else None
        if status is None or not status.accepted:
            reason = status.reason.value if status is not None and status.reason else \
                Reason.NOT_ALLOWED.value
            return Admission(False, reason)
        self.host.gossip.publish(join.space_id, join.raw)  # tell the other members at once
        return Admission(True)

    @property
    def lan_peers(self) -> dict[str, LanPeer]:
        """Peers heard of on the LAN since the node started."""
        return dict(self._lan_peers)

    async def wait_lan_peer(self) -> None:
        """Return when the next peer is heard of on the LAN."""
        await self._lan_found.wait()


def _is_peer(sender: str) -> bool:
    try:
        public_key_of_peer_id(sender)
    except IdentityError:
        return False
    return True


@asynccontextmanager
async def open_node(home: Home, identity: Identity, config: NodeConfig | None = None, *,
                    clock: Callable[[], int] = wall_clock_ms) -> AsyncIterator[Node]:
    """Run a node for ``identity`` over the replica of ``home`` until the block exits.

    Usable from any trio run (``trio.run``, or guest mode inside a Textual app).

    Raises:
        HomeError: another process holds the home folder, or the control socket cannot be made.
        ReplicaError: the replica cannot be opened.
        ListenError: a listen address cannot be used.
    """
    from meshcrew.node.control import serve_control
    from meshcrew.node.dispatch import Dispatcher, value_types

    config = config or NodeConfig()
    home.ensure()
    with Replica.open(home) as replica:
        node = Node(home, identity, config, replica, clock)
        try:
            async with AsyncExitStack() as stack:
                host = await stack.enter_async_context(_open_host(node))
                if not config.listen_addrs:
                    node.book.listen_port = host.listen_port()
                nursery = await stack.enter_async_context(trio.open_nursery())
                await node._start(host, nursery)
                await nursery.start(serve_control, home.socket_file, Dispatcher(node).dispatch,
                                    value_types())
                log.info("node %s running at %s", host.peer_id, ", ".join(host.listen_addrs()))
                try:
                    yield node
                finally:
                    nursery.cancel_scope.cancel()
        finally:
            node.save()
            node._host = None


@asynccontextmanager
async def _open_host(node: Node) -> AsyncIterator[Host]:
    """The node's host, on the port it used last time if no address was given (else, when that
    port is taken now, on one the system picks)."""
    config = node.config
    remembered = node.book.listen_port
    choices = [config.listen_addrs] if config.listen_addrs else \
        [default_listen_addrs(remembered or 0)] + ([default_listen_addrs(0)] if remembered else [])
    async with AsyncExitStack() as stack:
        for number, addrs in enumerate(choices, start=1):
            net = replace(config.net or NetConfig(shutdown_timeout_s=1.0), listen_addrs=addrs)
            try:
                host = await stack.enter_async_context(open_host(
                    node.identity, net, validator=node.judge, banned=node.book.banned))
                break
            except ListenError:
                if number == len(choices):
                    raise
                log.info("port %s is taken now; listening on another", remembered)
        yield host
