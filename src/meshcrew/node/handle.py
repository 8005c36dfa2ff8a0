"""The node's handle: what callers read and ask of a running node (status, who holds a
record, events, dialing, saving), mixed into :class:`meshcrew.node.node.Node`."""

from __future__ import annotations

import trio

from meshcrew.home import Home
from meshcrew.identity import Identity
from meshcrew.net import Host, SyncService
from meshcrew.node.arrivals import Arrivals
from meshcrew.node.carrying import CarrierContacts, Carrying, Serving
from meshcrew.node.contacts import Contacts
from meshcrew.node.membership import GossipJudge, Membership
from meshcrew.node.peerbook import PeerBook
from meshcrew.node.reachability import ReachabilityWatch, Verdict
from meshcrew.node.receipts import Receipts
from meshcrew.node.reports import CarriedUse, NodeEvent, NodeStatus, RelayUse
from meshcrew.store import Replica


class NodeHandle:
    """The handle's methods of :class:`~meshcrew.node.node.Node`, over the parts it holds."""

    home: Home
    identity: Identity
    replica: Replica
    membership: Membership
    serving: Serving
    carrying: Carrying | None
    judge: GossipJudge
    book: PeerBook
    receipts: Receipts
    started_ms: int
    _host: Host | None
    _sync: SyncService | None
    _contacts: Contacts | None
    _carriers: CarrierContacts | None
    _watchers: list[trio.MemorySendChannel[NodeEvent]]
    _arrivals: Arrivals
    _reach: ReachabilityWatch | None

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
    def contacts(self) -> Contacts:
        """The peers: book, dialer, LAN (once started)."""
        if self._contacts is None:
            raise RuntimeError("the node is not running")
        return self._contacts

    def status(self) -> NodeStatus:
        """The node at a glance (``meshcrew status``)."""
        host = self.host
        stats = host.gossip.statistics()
        reach = self.reachability()
        use = host.reach.service.statistics()
        return NodeStatus(
            peer_id=host.peer_id, key=self.identity.public_key, name=self.identity.name,
            fingerprint=self.identity.fingerprint, home=str(self.home.path),
            addrs=tuple(host.listen_addrs()), peers=tuple(sorted(host.connected_peers())),
            spaces=tuple(self.membership.my_spaces()), records=self.replica.record_count(),
            mdns=self.contacts.mdns_running, started_ms=self.started_ms,
            banned=tuple(sorted(host.scores.banned)), gossip_published=stats.published,
            gossip_received=stats.received, gossip_rejected=stats.rejected,
            gossip_refused=host.gossip.refused,
            gossip_dropped=stats.publish_dropped + stats.receive_dropped,
            last_sync_ms=self.book.last_sync_ms(),
            synced_peers=sum(1 for e in self.book.entries() if e.last_sync_ms is not None),
            reachability=reach.verdict, reachability_reason=reach.reason,
            reservations=tuple(sorted(host.reach.reservations.active)),
            relay=RelayUse(serving=use.enabled, strangers=use.strangers,
                           reservations=use.reservations, max_reservations=use.max_reservations,
                           circuits=use.circuits, max_circuits=use.max_circuits,
                           max_circuits_per_peer=use.max_circuits_per_peer,
                           bytes_today=use.bytes_today, bytes_per_day=use.bytes_per_day,
                           circuits_served=use.circuits_served, refused=use.refused),
            carrier=self.carrying is not None,
            carried=tuple(CarriedUse(c.space, c.records, c.bytes, c.named)
                          for c in (self.carrying.held() if self.carrying else [])),
            carrier_refusals=tuple(sorted(self._carriers.refusals.items()))
            if self._carriers else (),
            gossip_judged=self.judge.judged, gossip_accepted=self.judge.accepted,
            gossip_stored=self._arrivals.gossip_stored)

    def seen_by(self, record_id: bytes) -> list[bytes]:
        """Member keys known to hold a record (its author and this member included): a member
        holds it when the member key or any of their current devices does; carriers are not
        members and are left out (:meth:`held_by_carriers`)."""
        record = self.replica.get(record_id)
        if record is None:
            return []
        holders = set(self.receipts.holders(record.space_id, record.author, record.seq))
        holders |= {record.author, self.identity.public_key}
        carriers = self.serving.carriers(record.space_id)
        devices = self.membership.devices()
        return sorted({devices.get(key, key) for key in holders - carriers})

    def held_by_carriers(self, record_id: bytes) -> list[bytes]:
        """Keys of the space's carriers known to hold a record ("held by the carrier")."""
        record = self.replica.get(record_id)
        if record is None:
            return []
        holders = set(self.receipts.holders(record.space_id, record.author, record.seq))
        return sorted(holders & self.serving.carriers(record.space_id))

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

    def save(self) -> None:
        """Write the peer book (with the ban list) and the receipts if they changed."""
        if self._host is not None:
            self.book.set_banned(self._host.scores.banned)
        self.book.save()
        self.receipts.save()


    def reachability(self) -> Verdict:
        """Whether peers can dial this node directly, and why the node thinks so."""
        if self._reach is None:
            return Verdict("unknown", "the node is not running")
        return self._reach.verdict()
