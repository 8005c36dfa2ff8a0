"""Records arriving from peers: gossip messages and sync batches, handed to :meth:`Node.take`.

Sync batches arrive already checked (signatures and all, on worker threads: the sync service's
``Verifier``), so taking them is only the chain rules and SQLite.

Gossip messages are taken in batches (per publisher and space) as they come. Posts from a sync
session are gathered into larger appends — up to :data:`SYNC_APPEND_RECORDS`, or whatever
arrived until the session paused for :data:`SYNC_APPEND_DELAY_S` — so a catch-up pays one
SQLite commit per thousands of records rather than per wire batch of 256 (see
``docs/performance.md``). A batch holding anything but posts is taken at once, after what was
gathered, so each sender's records stay in order. Frontiers from sync sessions become receipts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import msgpack
import trio

from meshcrew.errors import IdentityError, MeshcrewError
from meshcrew.identity import public_key_of_peer_id
from meshcrew.net import RecordsVerified, SessionEvent
from meshcrew.records import PROTOCOL_VERSION, Head, Record, record_id
from meshcrew.spaces import RecordKind
from meshcrew.spaces.transit import TransitForged, TransitUnknown
from meshcrew.store import VerifiedBatch, verify_batch
from meshcrew.sync import PeerFrontier, RecordsReceived

if TYPE_CHECKING:
    from meshcrew.net import GossipMessage
    from meshcrew.node.receipts import Receipts
    from meshcrew.node.transit import Transit
    from meshcrew.store import Replica

log = logging.getLogger("meshcrew.node")

GOSSIP_BATCH = 256
"""Gossip messages taken into the replica at once, at most."""
SYNC_APPEND_RECORDS = 4096
"""Posts from sync are appended in transactions of up to this many records..."""
SYNC_APPEND_DELAY_S = 0.01
"""...or of what arrived until the session paused this long."""

def stored_record(raw: bytes) -> Record:
    """A record the replica has verified and stored, rebuilt without verifying it again."""
    version, kind, space, author, seq, prev, ts, body, sig = msgpack.unpackb(raw, raw=False)
    return Record(version, kind, space, author, seq, prev, ts, body, sig, raw, record_id(raw))


SEALED_PREFIX = bytes([0x99, PROTOCOL_VERSION, 0xA0 | len(RecordKind.SEALED)]) + \
    RecordKind.SEALED.encode()
"""How every encoded ``sealed`` record (a post) begins: a 9-array, the version, the kind."""


def all_posts(raws: list[bytes]) -> bool:
    """Whether every encoded record claims to be a post (kind ``sealed``)."""
    return all(raw.startswith(SEALED_PREFIX) for raw in raws)


def peer_key(peer_id: str) -> bytes | None:
    """The member key of a peer id (None if it is not an ed25519 member key)."""
    try:
        return public_key_of_peer_id(peer_id)
    except IdentityError:
        return None


class Take(Protocol):
    """How records are taken in (:meth:`meshcrew.node.node.Node.take`): stored, and the ids
    accepted returned."""

    def __call__(self, raws: list[bytes], *, sender: str, propagate: bool,
                 space_id: bytes | None = None, verified: VerifiedBatch | None = None
                 ) -> list[bytes]: ...


class Arrivals:
    """Takes what peers send into the node's replica.

    Args:
        take: stores records (the node's, which also judges senders and propagates).
        replica: the replica, to tell what ``take`` stored.
        receipts: where frontiers and authors' own publications are noted.
        transit: opens gossip messages sealed in transit.
        opened: the record of a gossip message the validator accepted, opened and verified
            (:meth:`meshcrew.node.membership.GossipJudge.opened`), or None.
        clock: UTC milliseconds (for checking what the validator no longer keeps).
    """

    def __init__(self, take: Take, replica: Replica, receipts: Receipts,
                 transit: Transit, *, opened: Callable[[bytes, bytes], Record | None],
                 clock: Callable[[], int]) -> None:
        self._take = take
        self._opened = opened
        self._clock = clock
        self._replica = replica
        self._receipts = receipts
        self._transit = transit
        self._gathered: dict[tuple[str, bytes], VerifiedBatch] = {}
        self._count = 0
        self._flush_wanted = trio.Event()
        self.gossip_taken = 0
        """Records from validated gossip messages handed to the replica."""
        self.gossip_stored = 0
        """Of those, the ones it stored (the rest it held already, or refused)."""

    async def on_sync_event(self, peer_id: str, event: SessionEvent) -> None:
        """The sync service's event handler: records to take (checked on worker threads by the
        sync service's verifier), frontiers to note."""
        if isinstance(event, RecordsReceived):  # a session without a verifier
            self.flush_sync_records()
            self._take(list(event.raws), sender=peer_id, propagate=True,
                       space_id=event.space_id)
        elif isinstance(event, RecordsVerified):
            raws = event.batch.raws
            if not all_posts(raws):
                self.flush_sync_records()  # keep each sender's records in order
                self._take(raws, sender=peer_id, propagate=True, space_id=event.space_id)
                return
            # Posts are gathered into larger appends: a catch-up then pays one commit per
            # thousands of records rather than per batch of the wire (see docs/performance.md).
            self._gathered.setdefault((peer_id, event.space_id), VerifiedBatch()).extend(
                event.batch)
            self._count += len(raws)
            if self._count >= SYNC_APPEND_RECORDS:
                self.flush_sync_records()
            else:
                self._flush_wanted.set()
        elif isinstance(event, PeerFrontier):
            key = peer_key(peer_id)
            if key is not None:
                self._receipts.note_frontier(event.space_id, key, event.frontier)

    def flush_sync_records(self) -> None:
        """Append the posts gathered from sync sessions.

        A batch the replica cannot take (a locked or full disk) is logged and dropped: the
        records are not stored, so the next session with its peer brings them again. Raising
        would end the session that happened to flush, or the node itself (the timer's flush).
        """
        gathered, self._gathered = self._gathered, {}
        self._count = 0
        for (peer_id, space_id), batch in gathered.items():
            try:
                self._take(batch.raws, sender=peer_id, propagate=True, space_id=space_id,
                           verified=batch)
            except MeshcrewError as exc:
                log.warning("%d records synced from %s not taken (a later sync brings them): "
                            "%s", len(batch.raws), peer_id, exc)

    async def flush_sync_records_soon(self) -> None:
        """Append gathered posts once a session pauses, until cancelled."""
        while True:
            await self._flush_wanted.wait()
            await trio.sleep(SYNC_APPEND_DELAY_S)  # more batches of the session may follow
            self._flush_wanted = trio.Event()
            self.flush_sync_records()

    async def take_gossip(self, messages: trio.MemoryReceiveChannel[GossipMessage]) -> None:
        """Take validated gossip messages (the host's) as they come, until cancelled."""
        async for first in messages:
            batch = [first]
            while len(batch) < GOSSIP_BATCH:
                try:
                    batch.append(messages.receive_nowait())
                except trio.WouldBlock:
                    break
            by_origin: dict[tuple[str, bytes], VerifiedBatch] = {}
            for message in batch:
                records = by_origin.setdefault((message.origin, message.space_id),
                                               VerifiedBatch())
                record = self._opened(message.space_id, message.data)
                if record is not None:  # the validator opened and verified it
                    records.records.append(record)
                    continue
                try:  # no longer kept by the validator: open and verify it again
                    raw = self._transit.open(message.space_id, message.data)
                except (TransitUnknown, TransitForged):  # the keys changed in between
                    continue
                records.extend(verify_batch([raw], now_ms=self._clock()))
            for (origin, space_id), verified in by_origin.items():
                raws = verified.raws
                if not raws:
                    continue
                try:
                    stored = self._take(raws, sender=origin, propagate=False,
                                        space_id=space_id, verified=verified)
                except MeshcrewError as exc:  # never the end of the node: sync brings them
                    log.warning("%d gossip records from %s not taken: %s", len(raws), origin,
                                exc)
                    continue
                self.gossip_taken += len(raws)
                self.gossip_stored += len(stored)
                self.note_published(origin, raws)

    def note_published(self, origin: str, raws: list[bytes]) -> None:
        """A record published by its own author proves the author holds its chain up to it."""
        origin_key = peer_key(origin)
        for raw in raws:
            record = stored_record(raw)
            if record.author == origin_key and self._replica.state_of(record.id) is not None:
                self._receipts.note_author_holds(record.space_id, record.author,
                                                      Head(record.seq, record.id))

