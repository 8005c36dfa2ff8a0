"""The node: one member's replica, service and libp2p host, run together by
:func:`~meshcrew.node.opening.open_node` (which starts and stops it, :mod:`.opening`).

``open_node`` owns everything it starts: the replica (and with it the home folder's writer
lock), the :class:`~meshcrew.service.Member` service, the host, catch-up sync, gossip on every
space the member is in, the join handshake, the peers (:mod:`.contacts`) and the control
socket. Leaving its block stops them all within a bounded time (well under two seconds).
What callers read and ask of a running node (its status, events, dialing) is
:class:`~meshcrew.node.handle.NodeHandle`.

How records move (``docs/node.md`` has the whole picture):

- a record this member signs is appended, published on its space's topic at once, and synced
  to connected members a moment later (which also tells who has received it);
- gossip from peers passes :class:`~meshcrew.node.membership.GossipJudge` and is appended;
- records from sync and joins are appended, then synced on to the other connected members
  (:mod:`.arrivals` takes gossip and sync batches in);
- a record that may change membership (any kind but ``sealed``) goes through
  :meth:`Member.ingest`, whose housekeeping rotates keys for joiners; posts go straight to the
  replica, so a long catch-up never refolds its space batch after batch.

Everything runs in the node's trio thread, so the replica (one thread at a time) is only ever
used from there; SQLite appends are fast enough not to need a worker thread.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import trio

from meshcrew.errors import IdentityError, MeshcrewError, NetError
from meshcrew.home import Home
from meshcrew.identity import Identity, public_key_of_peer_id
from meshcrew.net import (
    INVALID_RECORD,
    PROTOCOL_VIOLATION,
    Host,
    PoolVerifier,
    Stream,
    SyncService,
)
from meshcrew.node.arrivals import Arrivals, all_posts, peer_key
from meshcrew.node.carrying import (
    CARRY_PROTOCOL,
    CarrierContacts,
    Carrying,
    ReceiveOnly,
    Serving,
    accept_carry,
    bring,
    read_carry_request,
    refuse_carry,
)
from meshcrew.node.config import NodeConfig
from meshcrew.node.contacts import Contacts
from meshcrew.node.dialer import peer_of
from meshcrew.node.expiry_notices import EXPIRED_PROTOCOL, ExpiryListener, ExpiryNotices
from meshcrew.node.following import DeviceFollowing
from meshcrew.node.handle import NodeHandle
from meshcrew.node.join import JOIN_PROTOCOL, Admission, JoinServer
from meshcrew.node.joining import Joining
from meshcrew.node.linking import link_device
from meshcrew.node.membership import GossipJudge, Membership, changes_membership
from meshcrew.node.peer_reports import peer_reports
from meshcrew.node.peerbook import PeerBook
from meshcrew.node.reachability import ReachabilityWatch
from meshcrew.node.receipts import Receipts
from meshcrew.node.reports import (
    JoinProgress,
    JoinResult,
    LinkResult,
    NodeEvent,
    PeerReport,
    PeerSynced,
    RecordsChanged,
)
from meshcrew.node.retention import ExpiredFirst, expire_posts
from meshcrew.node.transit import Transit
from meshcrew.reasons import Reason
from meshcrew.records import Record, record_id
from meshcrew.service import Member, ViewCache
from meshcrew.spaces import invite_problem
from meshcrew.store import Replica, VerifiedBatch, VerifyPool
from meshcrew.sync import SyncSession, SyncStats
from meshcrew.sync.wire import record_space

if TYPE_CHECKING:
    from trio_typing import TaskStatus

log = logging.getLogger("meshcrew.node")

ENVELOPE_FAULTS = frozenset({
    Reason.TOO_LARGE, Reason.MALFORMED, Reason.NOT_CANONICAL, Reason.BAD_FIELD, Reason.BAD_KIND,
    Reason.BAD_SEQ, Reason.BODY_TOO_LARGE, Reason.BAD_SIGNATURE})
"""Refusals that prove the sender sent a bad record (a newer version or a skewed clock do not)."""

_REGATE_EVERY_S = 60.0
_SAVE_EVERY_S = 1.0
"""How often the peer book and receipts are written if they changed (a killed node loses at
most this much of them)."""


class Node(NodeHandle):
    """A running node. Made by :func:`open_node`; valid until its block exits.

    Attributes:
        home: the home folder.
        identity: the member.
        config: the settings it runs with.
        replica: the replica (the node is its only writer).
        member: the member service over the replica (call it from the node's trio thread).
        membership: who is a member of what, as this node sees it.
        book: the peer book.
        receipts: who holds which records.
    """

    def __init__(self, home: Home, identity: Identity, config: NodeConfig, replica: Replica,
                 clock: Callable[[], int], views: ViewCache | None = None) -> None:
        self.home = home
        self.identity = identity
        self.config = config
        self.replica = replica
        self._clock = clock
        self.member = Member(replica, identity, clock=clock, on_records=self._on_records,
                             views=views)
        self.membership = Membership(self.member)
        self.serving = Serving(self.membership, replica, identity.public_key,
                               carrier=config.carrier.enabled, clock=clock)
        """Which spaces the node syncs, and with whom (members, carriers)."""
        self.carrying = Carrying(replica, self.serving, self.membership, config.carrier,
                                 clock) if config.carrier.enabled else None
        """The carrier's side (``--carrier``), else None."""
        self._carriers: CarrierContacts | None = None
        self._notices: ExpiryNotices | None = None
        self._served = ExpiredFirst(replica, self._expire_space)
        """The replica as sync reads it: a space's retention applied before it is served."""
        self._following: DeviceFollowing | None = None
        self.transit = Transit(self.member)
        """Transit keys: gossip is sealed under the space's epoch (docs/protocol.md)."""
        self.judge = GossipJudge(self.membership, clock, open_transit=self.transit.open)
        self.book = PeerBook.load(home)
        self.receipts = Receipts.load(home)
        self.started_ms = clock()
        self._host: Host | None = None
        self._sync: SyncService | None = None
        self._contacts: Contacts | None = None
        self._watchers: list[trio.MemorySendChannel[NodeEvent]] = []
        self._incoming: set[bytes] = set()
        self._topics_changed = trio.Event()
        self._to_sync: set[str] = set()
        self._sync_wanted = trio.Event()
        self._arrivals = Arrivals(self.take, replica, self.receipts, self.transit,
                                  opened=self.judge.opened, clock=clock)
        self._reach: ReachabilityWatch | None = None

    # --- the handle ----------------------------------------------------------------------------

    def peers(self) -> list[PeerReport]:
        """Connected and known peers, and per shared space what each lacks (``meshcrew peers``)."""
        return peer_reports(self)

    async def join(self, code: str,
                   progress: Callable[[JoinProgress], Awaitable[None]] | None = None
                   ) -> JoinResult:
        """Join the space of an invite code over the network (see :mod:`.joining`)."""
        return await Joining(self, code, progress).run()

    async def link_device(self, code: str) -> LinkResult:
        """Approve a new device of this member from its link code (see :mod:`.linking`)."""
        return await link_device(self, code)

    # --- records in ----------------------------------------------------------------------------

    def take(self, raws: list[bytes], *, sender: str, propagate: bool,
             space_id: bytes | None = None, verified: VerifiedBatch | None = None) -> list[bytes]:
        """Store records from a peer (or a file); return the ids accepted.

        Records that may change membership go through the member service (its housekeeping
        rotates keys for joiners); posts go straight to the replica. A peer that sent records
        with bad envelopes loses points.

        Args:
            raws: encoded records.
            sender: the peer id they came from (for the reject log and penalties).
            propagate: sync what was accepted on to the other connected members soon.
            space_id: the space they all belong to, when the caller knows it.
            verified: ``raws`` already checked (by the sync service's worker processes).
        """
        if self.carrying is not None:  # a carrier takes only what the spaces it carries allow
            kept = self.carrying.admit(raws, sender)
            if len(kept) != len(raws):
                raws, verified = kept, None
            if not raws:
                return []
        if all_posts(raws):
            # Posts only: nothing about membership changes, and none was signed here.
            if verified is not None:
                appended = self.replica.append_verified(verified, sender=sender,
                                                        now_ms=self._clock())
            else:
                appended = self.replica.append(raws, sender=sender, now_ms=self._clock())
            accepted = appended.accepted
            faults = [e.reason.value for e in appended.rejected]
            if accepted:
                spaces = {space_id} if space_id is not None else \
                    {s for s in map(record_space, raws) if s is not None}
                self._emit(RecordsChanged(frozenset(spaces), tuple(accepted), False,
                                          self._clock()))
        else:
            self._incoming = {record_id(raw) for raw in raws}  # not to publish them again
            try:
                report = self.member.ingest(raws, sender=sender)
            finally:
                self._incoming = set()
            accepted = list(report.accepted)
            faults = [r.reason for r in report.rejected]
        bad = sum(1 for reason in faults if reason in ENVELOPE_FAULTS)
        if bad and self._host is not None and peer_key(sender) is not None:
            self._host.penalize(sender, INVALID_RECORD * bad, f"sent {bad} invalid records")
        if accepted and propagate:
            self._propagate(exclude=sender)
        return accepted

    def _on_records(self, records: list[Record]) -> None:
        """Every record the member signs or the replica accepts (Member's ``on_records``)."""
        if not records:
            return
        me = self.identity.public_key
        local = [r for r in records if r.author == me and r.id not in self._incoming]
        if any(changes_membership(r.kind) for r in records):
            for record in records:
                if changes_membership(record.kind):
                    self.membership.changed(record.space_id)
            self.serving.changed()
            self.transit.changed()
            if self._carriers is not None:
                self._carriers.changed()
            if self._following is not None:
                self._following.changed()
            self._topics_changed.set()
        for record in local:
            self._gossip(record.space_id, record.raw, record.id)
        if local:
            self._propagate(exclude=None)
        self._emit(RecordsChanged(frozenset(r.space_id for r in records),
                                  tuple(r.id for r in records), bool(local), self._clock()))

    def _propagate(self, *, exclude: str | None) -> None:
        """Sync connected members soon: new records reach them even if gossip dropped them,
        and their frontiers say who has received what."""
        if self._host is None or self._contacts is None:
            return
        # Every connected peer this node syncs with: members and carriers (gossip may have
        # missed them), and for a while a dropped carrier or a lapsed joiner, who learn of it
        # this way (they take no gossip).
        sync = self.sync
        self._to_sync |= {p for p in self._host.connected_peers()
                          if (key := peer_key(p)) is not None and sync.shares_a_space(key)
                          } - {exclude}
        self._sync_wanted.set()

    def _on_sync_complete(self, peer_id: str, stats: SyncStats) -> None:
        """A session ran to the end (either side started it): note when, per peer and space.

        A session that shared no space (a peer that is not a member, as either side sees it)
        synced nothing, so it does not count.
        """
        if not stats.spaces_in_common:
            return
        now = self._clock()
        self.book.synced(peer_id, stats.spaces_synced, now)
        self._emit(PeerSynced(peer_id, stats.spaces_synced, now))

    def _emit(self, event: NodeEvent) -> None:
        if isinstance(event, RecordsChanged):
            self._served.arrived(event.spaces)
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
        # The pool's worker processes start with the first large batch.
        pool = VerifyPool()
        self._sync = SyncService(host, self._served, self.serving.spaces,
                                 self.serving.shares, self._arrivals.on_sync_event,
                                 period_s=self.config.sync_period_s,
                                 on_complete=self._on_sync_complete,
                                 verifier=PoolVerifier(pool, self._clock))
        self._contacts = Contacts(host, self.book, self.membership, self.config, self._clock,
                                  self._emit, carriers=self.serving.carriers)
        host.is_member = self._shares_a_space
        host.gossip.set_gate(self._may_see)
        host.reach.on_direct = self._hole_punched
        for addr in (*self.config.relays, *self.config.bootstrap):
            relay_id = peer_of(addr)
            if relay_id is not None:
                host.reach.reservations.pin(relay_id, [addr])
        self._reach = ReachabilityWatch(host, self.config.reachability)
        await nursery.start(self._reach.run)
        host.set_stream_handler(JOIN_PROTOCOL, JoinServer(
            self._served, is_active=self._is_active, check_invite=self._check_invite,
            admit=self._admit, penalize=host.penalize).serve)
        # Expired posts go before the first sync, so they are never sent on.
        self._notices = ExpiryNotices(host, self.serving, self.membership, self.replica)
        await nursery.start(expire_posts, self, self._notices.expired)
        await nursery.start(self._sync.run)
        host.set_stream_handler(CARRY_PROTOCOL, self._serve_carry)
        self._carriers = CarrierContacts(host, self.serving, self.membership, self._bring)
        nursery.start_soon(self._carriers.run)
        nursery.start_soon(self._notices.run)
        if self.carrying is not None:
            host.set_stream_handler(EXPIRED_PROTOCOL, ExpiryListener(
                self.replica, self.serving, self.membership, host).serve)
        self._following = DeviceFollowing(host, self.membership, self.member, self._bring,
                                          self.receipts)
        nursery.start_soon(self._following.run)
        if self.carrying is not None:
            nursery.start_soon(self.carrying.forget_dropped)
        await nursery.start(self._keep_topics)
        nursery.start_soon(self._arrivals.take_gossip, host.gossip.messages)
        nursery.start_soon(self._arrivals.flush_sync_records_soon)
        nursery.start_soon(self._sync_when_wanted)
        nursery.start_soon(self._save_periodically)
        nursery.start_soon(self._contacts.run)

    async def _keep_topics(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED
                           ) -> None:
        gossip = self.host.gossip
        started = changed = False
        while True:
            wanted = set(self.serving.spaces())  # a member's, and on a carrier those it carries
            for space_id in sorted(wanted - gossip.joined):
                await gossip.join(space_id)
            for space_id in sorted(gossip.joined - wanted):
                await gossip.leave(space_id)
            gossip.regate()
            if not started:
                task_status.started()
                started = True
            elif changed:
                self.contacts.membership_changed()
                self.sync.membership_changed()
            # (and once a minute: a lapsed joiner's grace runs out with the clock alone)
            with trio.move_on_after(_REGATE_EVERY_S):
                await self._topics_changed.wait()
            changed = self._topics_changed.is_set()
            self._topics_changed = trio.Event()

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

    # --- carriers ------------------------------------------------------------------------------

    async def _run_sync_on(self, stream: Stream, spaces: list[bytes]) -> SyncStats:
        """A sync session offering exactly ``spaces`` (the carry protocol's second half)."""
        session = SyncSession(self.identity.public_key, stream.remote_key, spaces, self._served)
        return await self.sync.run_on(stream, session)

    async def _serve_carry(self, stream: Stream) -> None:
        """A peer offers a space on the carry protocol: a member bringing it to this carrier,
        or a carrier bringing a space of this member's that this node does not yet know names
        it (then this side only receives, and tells it nothing, until its fold says so)."""
        try:
            space_id = await read_carry_request(stream)
        except NetError as exc:  # it went away (its node stopped, its bringing was cancelled)
            log.info("carry: no request from %s: %s", stream.peer_id, exc)
            await stream.reset()
            return
        except ValueError as exc:
            log.info("carry: a malformed request from %s: %s", stream.peer_id, exc)
            self.host.penalize(stream.peer_id, PROTOCOL_VIOLATION, "malformed carry request")
            await stream.reset()
            return
        if space_id in self.membership.my_spaces():
            await accept_carry(stream)
            known = self.serving.shares(space_id, stream.remote_key)
            source = self._served if known else ReceiveOnly()
            session = SyncSession(self.identity.public_key, stream.remote_key, [space_id],
                                  source)
            try:
                await self.sync.run_on(stream, session)
            except MeshcrewError as exc:
                log.info("carry: a session with %s failed: %s", stream.peer_id, exc)
        elif self._following is not None and self._following.takes_from(stream.remote_key):
            await accept_carry(stream)  # a space this device's member joined: it follows
            try:
                await self._run_sync_on(stream, [space_id])
            except MeshcrewError as exc:
                log.info("a space brought by %s failed: %s", stream.peer_id, exc)
        elif self.carrying is not None:
            await self.carrying.serve(stream, space_id, self._run_sync_on)
        else:
            await refuse_carry(stream, Reason.NOT_CARRIED)

    async def _bring(self, peer_id: str, space_id: bytes) -> str | None:
        return await bring(self.host, peer_id, space_id, self._run_sync_on)


    def _expire_space(self, space_id: bytes) -> None:
        """The retention pass for one space before sync serves it (``ExpiredFirst``)."""
        found = self.member.expire_due(space_id)
        if found is not None and found.due and self._notices is not None:
            self._notices.expired(space_id)

    def _gossip(self, space_id: bytes, raw: bytes, record_id: bytes | None = None) -> None:
        """Publish a record on its space's topic, sealed in transit (not before this member
        holds a key of the space: sync brings it to the others meanwhile)."""
        if self._host is None:
            return
        sealed = self.transit.seal(space_id, raw, record_id)
        if sealed is not None:
            self._host.gossip.publish(space_id, sealed)

    def _may_see(self, peer_id: str, space_id: bytes) -> bool:
        """Whether a peer may be told of a space's gossip topic: a member, a carrier the space
        names (it holds the transit key), and for a while a joiner whose join lapsed
        (docs/node.md, "What a stranger learns")."""
        try:
            key = public_key_of_peer_id(peer_id)
        except IdentityError:
            return False
        return self.serving.sees_gossip(space_id, key)

    def _shares_a_space(self, peer_id: str) -> bool:
        """Whether a peer counts as a member for this node's relay limits: a member of one of
        its spaces, or, on a carrier, of a space it carries (its crewmates behind NAT)."""
        try:
            key = public_key_of_peer_id(peer_id)
        except IdentityError:
            return False
        return any(key in self.membership.active(s) for s in self.serving.spaces())

    def _hole_punched(self, peer_id: str) -> None:
        """A direct connection replaced a relayed one: sync over it (a session on the relayed
        connection is cut when that closes)."""
        if self._sync is not None and peer_id in self.host.connected_peers():
            self.sync.sync_soon(peer_id)

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
        # Sealed before it is taken: taking it rotates the keys (this member made the invite),
        # and the others can open only what is sealed under an epoch they already hold.
        sealed = self.transit.seal(join.space_id, join.raw)
        self.take([join.raw], sender=sender, propagate=True)
        state = self.membership.state(join.space_id)
        status = state.status(join.id) if state is not None else None
        if status is None or not status.accepted:
            reason = status.reason if status is not None and status.reason else \
                Reason.NOT_ALLOWED
            return Admission(False, reason.value)
        if sealed is not None and self._host is not None:  # tell the other members at once
            self._host.gossip.publish(join.space_id, sealed)
        return Admission(True)
