"""A simulated member's node: the real replica, the real space rules, the member's own writing.

Each node keeps its records in a real SQLite :class:`~meshcrew.store.Replica` in its own home
folder; sync sessions read it as their record source and everything received is appended to it,
so the chain rules, verification and the reject log are the store's own. The membership a node
sees is :func:`meshcrew.spaces.fold` of the membership records its replica holds; posts are
sealed with :func:`meshcrew.spaces.seal_post` and signed with the node's key.

What a node has received waits ``ingest_delay_s`` in memory before one append commits it; a
crash loses that queue (and nothing committed).

A node may also carry spaces it is not a member of (``carried``: the crews that name it as a
carrier), as ``meshcrew.node.carrying`` does: it syncs them and takes their gossip like its own
(it holds their transit keys), offers them only to their members and carriers, takes their
records only within its quotas, and holds them sealed.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Mapping
from contextlib import closing
from enum import Enum

from nacl.signing import SigningKey

from meshcrew import spaces
from meshcrew.home import Home
from meshcrew.records import (
    MAX_CLOCK_SKEW_MS,
    Record,
    RecordError,
    decode_and_verify,
    record_id,
    sign_record,
)
from meshcrew.spaces import RecordKind, SpaceState
from meshcrew.store import Replica
from meshcrew.store.carrying import space_bytes, total_bytes

MEMBERSHIP_KINDS = tuple(k.value for k in RecordKind if k is not RecordKind.SEALED)
"""Record kinds that membership and epochs depend on (posts are ``sealed``)."""

Rng = Callable[[int], bytes]


class Verdict(Enum):
    """What a node's gossip validator says about a message (as ``meshcrew.net.gossip``)."""

    ACCEPT = "accept"
    IGNORE = "ignore"
    REJECT = "reject"


class VerifyCache:
    """:func:`~meshcrew.records.decode_and_verify` once per distinct record, for the gossip
    validators of all nodes.

    Verification is a pure function of the bytes except for the receiver's clock, which only
    refuses records dated more than ``MAX_CLOCK_SKEW_MS`` ahead; that check is made per node.
    Every node's replica still verifies every record it appends.
    """

    def __init__(self) -> None:
        self._done: dict[bytes, Record | None] = {}

    def verify(self, raw: bytes, now_ms: int) -> Record | None:
        """The verified record, or None if it is refused."""
        if raw in self._done:
            record = self._done[raw]
        else:
            try:
                record = decode_and_verify(raw)
            except RecordError:
                record = None
            self._done[raw] = record
        if record is None or record.ts > now_ms + MAX_CLOCK_SKEW_MS:
            return None
        return record


class ViewCache:
    """Membership views by the set of membership records they fold.

    ``fold`` is a pure function of the set of records, so nodes that hold the same membership
    records share one fold instead of each repeating it.
    """

    def __init__(self) -> None:
        self._views: dict[tuple[bytes, frozenset[bytes]], SpaceState] = {}
        self.folds = 0

    def view(self, space_id: bytes, records: list[Record]) -> SpaceState:
        """The fold of ``records`` (the membership records of one space)."""
        key = (space_id, frozenset(r.id for r in records))
        state = self._views.get(key)
        if state is None:
            state = spaces.fold(space_id, records)
            self._views[key] = state
            self.folds += 1
        return state


class SimNode:
    """One member's node.

    Args:
        index: the node's number in the simulation.
        key: the member's identity key.
        home: the home folder holding the replica.
        space_ids: the spaces the member belongs to.
        views: the shared fold cache.
        catalog: every record made in the simulation, by id (to know what an accepted id is).
        verifier: the shared verification cache of the gossip validators.
        carried: spaces the node carries for others (it is no member of them); they follow
            its own in ``space_ids``.
        quotas: the carrier's quotas in bytes, per space and in all (``CarrierConfig``); None
            if the node carries nothing.
    """

    def __init__(self, index: int, key: SigningKey, home: Home, space_ids: tuple[bytes, ...],
                 views: ViewCache, catalog: Mapping[bytes, Record], verifier: VerifyCache, *,
                 carried: tuple[bytes, ...] = (), quotas: tuple[int, int] | None = None) -> None:
        self.index = index
        self.key = key
        self.public = bytes(key.verify_key)
        self.home = home
        self.space_ids = space_ids + carried
        """The spaces the node syncs: its member's, then those it carries."""
        self.topics = self.space_ids
        """The gossip topics the node joins: its member's spaces and those it carries (each
        rotation seals the epoch's transit key to the carriers named then: issue 17)."""
        self.carried = frozenset(carried)
        self._quotas = quotas
        self._space_bytes: dict[bytes, int] = {}
        self._total_bytes = 0
        self.refused_over_quota = 0
        """Records a carrier refused because they would pass a quota."""
        self._views = views
        self._catalog = catalog
        self._verifier = verifier
        self.replica: Replica | None = None
        self.online = False
        self.generation = 0
        """Bumped whenever the node goes down, so events scheduled before do nothing after."""
        self.views: dict[bytes, SpaceState] = {}
        self._offers: dict[bytes, list[bytes]] = {}
        self.heads: dict[bytes, dict[bytes, bytes]] = {}
        """Per space, per author: the id of the head of the accepted chain (the frontier as
        the replica reported it accepting records)."""
        self.digest: dict[bytes, int] = {}
        """Per space: the XOR of the frontier's head ids; equal digests, equal frontiers."""
        self.queue: list[bytes] = []
        self.lost_on_crash = 0
        self.duplicates = 0
        """Received records that were already held when their turn to be committed came."""

    # -- life cycle ----------------------------------------------------------------------------

    def open(self) -> None:
        """Open the replica (as the node does at start and after a crash) and read its state."""
        self.replica = Replica.open(self.home)
        for space_id in self.space_ids:
            self._refresh_view(space_id)
            heads = {author: head.id for author, head in self.replica.frontier(space_id).items()}
            self.heads[space_id] = heads
            digest = 0
            for head_id in heads.values():
                digest ^= int.from_bytes(head_id)
            self.digest[space_id] = digest
        if self.carried:  # what the quotas count, as the carrier's admit reads it
            self._space_bytes = {s: space_bytes(self.replica, s) for s in self.carried}
            self._total_bytes = total_bytes(self.replica)

    def crash(self) -> None:
        """Die: lose what waits to be committed and close the replica."""
        self.lost_on_crash += len(self.queue)
        self.queue.clear()
        self.generation += 1
        self.online = False
        if self.replica is not None:
            self.replica.close()
            self.replica = None

    def replica_bytes(self) -> tuple[int, int]:
        """The replica's size (its pages, as the last commit left them, WAL included) and the
        size of its write-ahead log file."""
        path = self.home.replica_file
        wal = path.with_name(path.name + "-wal")
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        return int(pages * page_size), os.path.getsize(wal) if wal.exists() else 0

    # -- reading -------------------------------------------------------------------------------

    @property
    def store(self) -> Replica:
        """The open replica (the node must be up)."""
        if self.replica is None:
            raise RuntimeError(f"node {self.index} is down")
        return self.replica

    def _refresh_view(self, space_id: bytes) -> None:
        records = self.store.space_records(space_id, kinds=MEMBERSHIP_KINDS)
        self.views[space_id] = self._views.view(space_id, records)
        self._offers.clear()

    def _serves(self, space_id: bytes, key: bytes) -> bool:
        view = self.views[space_id]
        return view.is_member(key) or view.is_carrier(key)

    def offers(self, peer: bytes) -> list[bytes]:
        """Spaces to offer a peer in sync, by this node's view (``Serving.shares``): those this
        node is a member or a carrier of, and the peer too."""
        offered = self._offers.get(peer)
        if offered is None:
            offered = [s for s in self.space_ids
                       if self._serves(s, self.public) and self._serves(s, peer)]
            self._offers[peer] = offered
        return offered

    def judge(self, space_id: bytes, raw: bytes, now_ms: int) -> Verdict:
        """The gossip validator: verify the record and that its author is a member here."""
        record = self._verifier.verify(raw, now_ms)
        if record is None or record.space_id != space_id:
            return Verdict.REJECT
        view = self.views.get(space_id)
        if view is None or not view.is_member(record.author):
            return Verdict.IGNORE
        return Verdict.ACCEPT

    # -- writing -------------------------------------------------------------------------------

    def holds(self, raw: bytes) -> bool:
        """Whether the replica already holds this record (its chain's head is at or past it)."""
        record = self._catalog.get(record_id(raw))
        if record is None:
            return False
        head = self.heads.get(record.space_id, {}).get(record.author)
        return head is not None and self._catalog[head].seq >= record.seq

    def commit(self, now_ms: int) -> list[bytes]:
        """Append what waits in one transaction; return the ids the replica accepted.

        Records the replica already holds are left out: appending them would change nothing
        but cost a signature check each (the replica verifies before it looks for duplicates),
        and on waking a node receives the same records from several sessions at once.
        """
        raws = [raw for raw in self.queue if not self.holds(raw)]
        self.duplicates += len(self.queue) - len(raws)
        self.queue = []
        if self.carried:
            raws = self._admit(raws)
        if not raws:
            return []
        report = self.store.append(raws, sender="sim", now_ms=now_ms)
        for accepted in report.accepted:
            self._advance(self._catalog[accepted])
        return report.accepted

    def _admit(self, raws: list[bytes]) -> list[bytes]:
        """What a carrier takes (``Carrying.admit``): a carried space's records within the
        quotas; its member's own spaces' records as any member."""
        if self._quotas is None:
            return raws
        per_space, in_all = self._quotas
        kept = []
        for raw in raws:
            size = len(raw)
            space_id = self._catalog[record_id(raw)].space_id
            if space_id in self.carried:
                used = self._space_bytes[space_id]
                if used + size > per_space or self._total_bytes + size > in_all:
                    self.refused_over_quota += 1
                    continue
                self._space_bytes[space_id] = used + size
            self._total_bytes += size
            kept.append(raw)
        return kept

    def _advance(self, record: Record) -> None:
        heads = self.heads[record.space_id]
        old = heads.get(record.author)
        heads[record.author] = record.id
        self.digest[record.space_id] ^= int.from_bytes(record.id) ^ (
            int.from_bytes(old) if old is not None else 0)
        if record.kind != RecordKind.SEALED:
            self._refresh_view(record.space_id)

    def write(self, space_id: bytes, post: spaces.Post, now_ms: int, rng: Rng) -> Record:
        """Seal, sign and append the member's next post in a space (one transaction)."""
        made = spaces.seal_post(self.views[space_id], self.key, post, rng)
        head_id = self.heads[space_id].get(self.public)
        seq = self._catalog[head_id].seq if head_id is not None else 0
        record = sign_record(self.key, kind=made.kind, space=space_id, seq=seq + 1,
                             prev=head_id, ts=now_ms, body=made.body)
        report = self.store.append([record.raw], sender="local", now_ms=now_ms)
        if report.accepted != [record.id]:
            raise AssertionError(f"node {self.index}'s own post was not accepted: {report}")
        return record

    def accept_own(self, record: Record) -> None:
        """Note the member's own post (once it is in the catalog)."""
        self._advance(record)
