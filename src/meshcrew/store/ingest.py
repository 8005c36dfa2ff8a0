"""Appending records to the replica: the chain rules, applied inside one transaction.

The rules decide what a set of records means no matter in which order its records arrive, so two
replicas holding the same records agree on the same frontier, the same accepted ids and the same
forked authors.

A **chain** is the records of one author in one space (``Record.space_id``: a record that
creates a space belongs to the space it creates). Its records are numbered ``seq`` 1, 2, 3…,
and each names its predecessor's id in ``prev``.

1. **Duplicates.** A record already stored (accepted, pending or evidence) is counted, not
   logged.
2. **Pending.** A record whose predecessor is not accepted yet waits as *pending* and is applied
   when the chain reaches it, cascading through whatever waits behind it. At most
   ``pending_cap`` records wait per chain; beyond that a record is refused with
   ``Reason.PENDING_FULL`` (a hostile peer cannot fill the disk; sync fetches it again later,
   because the frontier still lacks it).
3. **Applying** a record at ``seq = k`` once the record at ``k - 1`` is accepted (or ``k = 1``),
   in this order:

   a. ``prev`` differs from the accepted record at ``k - 1``: that proves the author signed a
      second record at ``k - 1``, a fork at ``k - 1`` (logged as ``Reason.CHAIN_BROKEN``).
   b. ``ts`` is before the accepted record at ``k - 1``: refused with ``Reason.TIME_TRAVEL``.
   c. a different record is already accepted at ``k``: a fork at ``k`` (``Reason.FORK``).
   d. the chain already forked at ``k``: refused with ``Reason.AUTHOR_FORKED``.
   e. otherwise the record is accepted and becomes the chain's head.

4. **Forks.** A chain's accepted part is exactly its records below the lowest fork seen. When a
   fork at ``f`` is found, the record that revealed it and every record of the chain at or after
   ``f`` (accepted or pending) are kept as *evidence*: not accepted, not in the frontier, not
   served to peers. The author is flagged as forked in that space. A fork found later at a lower
   seq lowers ``f`` again; records that were waiting at ``f`` itself are still checked against
   3a, since one of them may prove a fork at ``f - 1``. A record arriving for a forked chain
   above ``f`` is refused with ``Reason.AUTHOR_FORKED`` (it cannot change the outcome, and
   refusing it bounds the evidence).
5. **Refusals** are not stored, only logged with reason, detail, sender and time (and, for the
   chain rules, the record's space and author) in a log that keeps the latest
   ``reject_log_size`` entries. Fork evidence is stored *and* logged. A bad
   record never aborts the rest of its batch.
6. **Husks** (what is left of a record whose post expired, ``Record.expired``; see
   :func:`meshcrew.records.encode_husk`) carry no signature: only the id of one is vouched
   for, by the next record of its chain naming it in ``prev``. A husk at ``k`` therefore waits
   as pending (it counts against the cap) until the chain's head is at ``k - 1`` *and* a record
   held at ``k + 1`` names its id, that record being signed or itself a husk so vouched for
   (a run of expired posts is taken from its signed top down). Then, if its ``prev`` and
   ``ts`` fit the record at ``k - 1`` as rule 3a and 3b ask, it is accepted like a record.
   A husk never proves anything against its author: a husk that does not fit, or that
   arrives where another record is held, is refused with ``Reason.HUSK_CONFLICT``; a signed
   record that conflicts with a husk held at its place or just before it is refused the same
   way (not kept as evidence); a fork found otherwise removes the chain's husks from ``f`` on
   rather than keeping them as evidence. A husk and the record it stands for are the same
   record (one id): the record fills a pending husk's place, and the husk of a record held
   already is a duplicate.

Why this is order-independent: rule 3 only ever looks at accepted records at ``k - 1`` and
``k``, which are the same in every order (induction on ``k``); forks freeze the chain below
``f``, and the lowest fork seq is a property of the set. What may differ between orders is
only which records past a fork are kept as evidence rather than refused, and the reject log.
The one exception is the pending cap: a replica that refused records with ``PENDING_FULL``
agrees again once it has been sent them in chain order. ``tests/test_store_order.py`` checks
all this against a reference model with hypothesis.

Husks keep this as long as they are true (made by :func:`~meshcrew.records.encode_husk` from
the record) and the author did not fork at or just after a husk's place: a husk's fields other
than its id are taken on its sender's word, so a forged one below a signed record, or a
genuine fork next to an expired post, can leave replicas holding different ids at that place
(never a different frontier above a signed record, never a fork charged to the author).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any

import msgpack

from meshcrew.errors import ReplicaError
from meshcrew.reasons import Reason
from meshcrew.records import HUSK_VERSION, MAX_RECORD_BYTES, Record, RecordError, record_id
from meshcrew.store.schema import ACCEPTED, EVIDENCE, ID_KEY_BYTES, PENDING

_IS_HUSK = "substr(raw, 2, 1) = x'00'"
"""A stored row holds a husk: its version (the byte after the array's) is 0."""
_STORED = f"SELECT rowid, state, {_IS_HUSK} FROM records WHERE substr(id, 1, {ID_KEY_BYTES}) " \
          f"= substr(?1, 1, {ID_KEY_BYTES}) AND id = ?1"
_INSERT_ACCEPTED = f"INSERT INTO records (id, chain, seq, ts, kind, state, raw) " \
                   f"VALUES (?, ?, ?, ?, ?, {ACCEPTED}, ?)"
_INSERT_HELD = "INSERT INTO records (id, chain, seq, ts, kind, state, sender, raw) " \
               "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
_ACCEPTED_AT = f"SELECT id, ts FROM records WHERE chain = ? AND seq = ? AND state = {ACCEPTED}"
_PENDING_AT = f"SELECT rowid, id, raw, sender FROM records " \
              f"WHERE chain = ? AND seq = ? AND state = {PENDING} ORDER BY id"


@dataclass(frozen=True, slots=True)
class RejectEntry:
    """One entry of the reject log.

    Attributes:
        record_id: the id the refused bytes have (None for input over the size limit).
        reason: why it was refused (or, for fork evidence, why it was not accepted).
        detail: specifics for a person, e.g. the seq numbers involved.
        sender: who sent it ("local", or the peer id given to ``append``).
        at_ms: the receiver's clock when it was refused.
        space: the space of a record refused by the chain rules (its signature held); None
            for bytes the envelope check refused, whose claimed space is not to be trusted,
            and for entries logged before schema version 2.
        author: the author of a record refused by the chain rules; None like ``space``.
    """

    record_id: bytes | None
    reason: Reason
    detail: str
    sender: str
    at_ms: int
    space: bytes | None = None
    author: bytes | None = None


@dataclass(slots=True)
class AppendReport:
    """What one :meth:`Replica.append` changed.

    Attributes:
        accepted: ids accepted by this call (including earlier pending records it unblocked), in
            the order they were applied; each author's records in chain order.
        pending: ids of this call's records that now wait for a predecessor.
        duplicates: how many records were already stored.
        forks: ids of records whose arrival revealed a fork (each is kept as evidence).
        rejected: the reject-log entries this call wrote, fork evidence included.
    """

    accepted: list[bytes] = field(default_factory=list)
    pending: list[bytes] = field(default_factory=list)
    duplicates: int = 0
    forks: list[bytes] = field(default_factory=list)
    rejected: list[RejectEntry] = field(default_factory=list)


@dataclass(slots=True)
class _Chain:
    """The ``chains`` row of one (space, author), cached for one append."""

    space: bytes
    author: bytes
    rowid: int
    head_seq: int
    head_id: bytes | None
    head_ts: int
    fork_seq: int | None
    pending: int
    expired: int
    """How many of its accepted records are husks."""


# Outcome of applying a record (rule 3): a reason, the fork seq (0 if no fork), a detail.
_Verdict = tuple[Reason | None, int, str]
_ACCEPT: _Verdict = (None, 0, "")


class Ingest:
    """One append: applies verified records to ``conn``'s open transaction.

    Accepted records that extend a clean chain (the common case: sync sends chains in order) are
    buffered and inserted with one ``executemany``; any other case first flushes the buffer so
    the database is the whole truth, then takes the slow path.
    """

    def __init__(self, conn: sqlite3.Connection, *, sender: str, now_ms: int, pending_cap: int,
                 reject_log_size: int) -> None:
        self._conn = conn
        self._sender = sender
        self._now_ms = now_ms
        self._pending_cap = pending_cap
        self._reject_log_size = reject_log_size
        self._chains: dict[tuple[bytes, bytes], _Chain] = {}
        self._rows: list[tuple[bytes, int, int, int, str, bytes]] = []
        self._accepted: list[tuple[_Chain, int, bytes]] = []
        self._pending: list[tuple[_Chain, int, bytes]] = []
        self._dropped: set[bytes] = set()
        self._vouched: set[bytes] = set()
        self._rejects: list[RejectEntry] = []
        self._forks: list[bytes] = []
        self._duplicates = 0

    def reject_envelope(self, raw: bytes, error: RecordError) -> None:
        """Log bytes that ``decode_and_verify`` refused."""
        rid = record_id(raw) if len(raw) <= MAX_RECORD_BYTES else None
        self._log(rid, error.reason, error.detail, self._sender)

    def add(self, record: Record) -> None:
        """Apply one verified record (rules 1-4)."""
        key = (record.space_id, record.author)
        chain = self._chains.get(key)
        if chain is None:
            chain = self._load(key)
        seq = record.seq
        if (seq == chain.head_seq + 1 and not chain.pending and chain.fork_seq is None
                and not record.expired
                and (seq == 1 or (record.prev == chain.head_id and record.ts >= chain.head_ts))):
            # A clean chain's next record: it cannot be stored already (it would be pending or
            # accepted, and the chain has neither at this seq), so no duplicate check is needed.
            rid = record.id
            self._rows.append((rid, chain.rowid, seq, record.ts, record.kind, record.raw))
            chain.head_seq = seq
            chain.head_id = rid
            chain.head_ts = record.ts
            self._accepted.append((chain, seq, rid))
            return
        self._flush()
        self._place(record, chain)

    def finish(self) -> AppendReport:
        """Write the buffered rows, the chains and the reject log; say what changed."""
        self._flush()
        self._conn.executemany(
            "UPDATE chains SET head_seq = ?, head_id = ?, head_ts = ?, fork_seq = ?, pending = ?, "
            "expired = ? WHERE chain = ?",
            [(c.head_seq, c.head_id, c.head_ts, c.fork_seq, c.pending, c.expired, c.rowid)
             for c in self._chains.values()])
        if self._rejects:
            self._conn.executemany(
                "INSERT INTO rejects (record_id, reason, detail, sender, at_ms, space, author) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(e.record_id, e.reason.value, e.detail, e.sender, e.at_ms, e.space, e.author)
                 for e in self._rejects])
            self._conn.execute("DELETE FROM rejects WHERE n <= (SELECT max(n) FROM rejects) - ?",
                               (self._reject_log_size,))
        # Drop what a later fork (or a later acceptance) of this same batch overtook.
        return AppendReport(
            accepted=[rid for chain, seq, rid in self._accepted if seq <= chain.head_seq],
            pending=[rid for chain, seq, rid in self._pending
                     if rid not in self._dropped and chain.fork_seq is None
                     and seq > chain.head_seq],
            duplicates=self._duplicates,
            forks=self._forks,
            rejected=self._rejects,
        )

    # -- slow path --------------------------------------------------------------------------

    def _place(self, record: Record, chain: _Chain) -> None:
        conn = self._conn
        stored = conn.execute(_STORED, (record.id,)).fetchone()
        if stored is not None:
            self._duplicates += 1
            if stored[1] == PENDING and stored[2] and not record.expired:
                # The record a waiting husk stands for: it takes the husk's place, signed.
                conn.execute("UPDATE records SET raw = ? WHERE rowid = ?", (record.raw,
                                                                           stored[0]))
                self._cascade(chain)
            return
        seq = record.seq
        if chain.fork_seq is not None and (seq > chain.fork_seq or record.expired):
            self._log(record.id, Reason.AUTHOR_FORKED,
                      f"seq {seq}; the chain forked at seq {chain.fork_seq}", self._sender, chain)
            return
        if record.expired and seq <= chain.head_seq:
            self._log(record.id, Reason.HUSK_CONFLICT,
                      f"a husk at seq {seq}, where another record is held", self._sender, chain)
            return
        if seq > chain.head_seq + 1 or record.expired:
            if chain.pending >= self._pending_cap:
                self._log(record.id, Reason.PENDING_FULL,
                          f"seq {seq}; {chain.pending} records wait for seq {chain.head_seq + 1}",
                          self._sender, chain)
                return
            self._insert_held(record, chain, PENDING)
            chain.pending += 1
            self._pending.append((chain, seq, record.id))
            self._cascade(chain)  # it may vouch for a husk waiting at the head, or be one
            return
        reason, fork_at, detail = self._judge(chain, seq, record.prev, record.ts)
        if reason is None:
            self._insert_held(record, chain, ACCEPTED)
            self._advance(chain, seq, record.id, record.ts)
            self._drop_husks_at(chain, seq)
            self._cascade(chain)
        elif fork_at:
            self._insert_held(record, chain, EVIDENCE)
            self._fork(chain, fork_at, record.id, reason=reason, detail=detail,
                       sender=self._sender)
        else:
            self._log(record.id, reason, detail, self._sender, chain)

    def _judge(self, chain: _Chain, seq: int, prev: bytes | None, ts: int) -> _Verdict:
        """Rule 3 for a record at ``seq <= head + 1``; see the module docstring."""
        if seq >= 2:
            before_id, before_ts = self._accepted_at(chain, seq - 1)
            if prev != before_id and self._husk_at(chain, seq - 1):
                return (Reason.HUSK_CONFLICT, 0,
                        f"seq {seq} links to another record at seq {seq - 1} than the husk "
                        "held there")
            if prev != before_id:
                return (Reason.CHAIN_BROKEN, seq - 1,
                        f"seq {seq} links to another record at seq {seq - 1} than the one "
                        "held, which proves a fork there; kept as evidence")
            if ts < before_ts:
                return (Reason.TIME_TRAVEL, 0,
                        f"seq {seq} at {ts} ms, seq {seq - 1} at {before_ts} ms")
        if seq <= chain.head_seq and self._husk_at(chain, seq):
            return (Reason.HUSK_CONFLICT, 0, f"the husk of another record is held at seq {seq}")
        if seq <= chain.head_seq:
            return (Reason.FORK, seq,
                    f"a different record is held at seq {seq}; both kept as evidence")
        if chain.fork_seq is not None:
            return (Reason.AUTHOR_FORKED, 0,
                    f"seq {seq}; the chain forked at seq {chain.fork_seq}")
        return _ACCEPT

    def _cascade(self, chain: _Chain) -> None:
        """Apply pending records level by level while the chain advances (rule 2)."""
        conn = self._conn
        while chain.pending and chain.fork_seq is None:
            level = chain.head_seq + 1
            rows = conn.execute(_PENDING_AT, (chain.rowid, level)).fetchall()
            waiting = [row for row in rows if not _is_husk(row[2])]  # signed records first
            for index, (rowid, rid, raw, sender) in enumerate(waiting):
                chain.pending -= 1
                prev, ts = _prev_and_ts(raw)
                reason, fork_at, detail = self._judge(chain, level, prev, ts)
                if reason is None:
                    conn.execute(f"UPDATE records SET state = {ACCEPTED}, sender = NULL "
                                 "WHERE rowid = ?", (rowid,))
                    self._advance(chain, level, rid, ts)
                elif fork_at:
                    # _fork turns this row and all other pending rows into evidence.
                    self._fork(chain, fork_at, rid, reason=reason, detail=detail,
                               sender=sender or self._sender)
                    self._recheck_level(chain, level, waiting[index + 1 :])
                    return
                else:
                    conn.execute("DELETE FROM records WHERE rowid = ?", (rowid,))
                    self._dropped.add(rid)
                    self._log(rid, reason, detail, sender or self._sender, chain)
            husks = [row for row in rows if _is_husk(row[2])]
            if chain.head_seq < level:
                self._apply_husk(chain, level, husks)
            else:  # a signed record took the place
                for rowid, rid, _, sender in husks:
                    self._drop_husk(chain, rowid, rid, sender,
                                    f"a husk at seq {level}, where another record was taken")
            if chain.head_seq < level:
                return  # nothing at this level could be applied: the rest keeps waiting

    def _apply_husk(self, chain: _Chain, level: int, husks: list[Any]) -> None:
        """Rule 6: accept the husk waiting at ``level`` (the head's next) whose id the record
        above it names, if it fits the record below; refuse those that do not fit."""
        if not husks:
            return
        conn = self._conn
        before_id, before_ts = self._accepted_at(chain, level - 1)  # a husk's seq is >= 2
        for rowid, rid, raw, sender in husks:
            prev, ts = _prev_and_ts(raw)
            if chain.head_seq >= level:
                self._drop_husk(chain, rowid, rid, sender,
                                f"a husk at seq {level}, where another record was taken")
            elif prev != before_id or ts < before_ts:
                self._drop_husk(chain, rowid, rid, sender,
                                f"a husk at seq {level} that does not follow the record held "
                                f"at seq {level - 1} (its prev or its time)")
            elif self._vouched_for(chain, level, rid):
                conn.execute(f"UPDATE records SET state = {ACCEPTED}, sender = NULL "
                             "WHERE rowid = ?", (rowid,))
                chain.pending -= 1
                chain.expired += 1
                self._advance(chain, level, rid, ts)

    def _vouched_for(self, chain: _Chain, seq: int, rid: bytes) -> bool:
        """Whether a record waiting at ``seq + 1`` names ``rid`` and is signed, or is a husk
        vouched for in turn (rule 6). Each id found vouched for is remembered for the batch,
        so a long run of husks costs one walk up it."""
        if rid in self._vouched:
            return True
        seen: set[bytes] = set()
        stack = [(seq, rid, [rid])]
        while stack:
            at, wanted, path = stack.pop()
            for _, above, raw, _ in self._conn.execute(_PENDING_AT, (chain.rowid, at + 1)):
                if above in seen or _prev_and_ts(raw)[0] != wanted:
                    continue
                seen.add(above)
                if not _is_husk(raw) or above in self._vouched:
                    self._vouched.update(path)
                    return True
                stack.append((at + 1, above, [*path, above]))
        return False

    def _drop_husks_at(self, chain: _Chain, level: int) -> None:
        """Refuse the husks still waiting at ``level`` once a signed record was taken there."""
        if not chain.pending:
            return
        for rowid, rid, raw, sender in self._conn.execute(_PENDING_AT,
                                                          (chain.rowid, level)).fetchall():
            if _is_husk(raw):
                self._drop_husk(chain, rowid, rid, sender,
                                f"a husk at seq {level}, where another record was taken")

    def _drop_husk(self, chain: _Chain, rowid: int, rid: bytes, sender: str | None,
                   detail: str) -> None:
        self._conn.execute("DELETE FROM records WHERE rowid = ?", (rowid,))
        chain.pending -= 1
        self._dropped.add(rid)
        self._log(rid, Reason.HUSK_CONFLICT, detail, sender or self._sender, chain)

    def _recheck_level(self, chain: _Chain, level: int, rows: list[Any]) -> None:
        """After a fork at ``level``, let the level's other waiting records lower it (rule 3a).

        They became evidence unjudged, but one that links to another record at ``level - 1``
        proves a lower fork, as it would have had it been applied first.
        """
        for _, rid, raw, sender in rows:
            if chain.fork_seq != level:
                return
            prev, ts = _prev_and_ts(raw)
            reason, fork_at, detail = self._judge(chain, level, prev, ts)
            if reason is Reason.CHAIN_BROKEN:
                self._fork(chain, fork_at, rid, reason=reason, detail=detail,
                           sender=sender or self._sender)

    def _fork(self, chain: _Chain, at: int, rid: bytes, *, reason: Reason, detail: str,
              sender: str) -> None:
        """Rule 4: freeze the chain below ``at``; everything from ``at`` on becomes evidence
        (but husks, which prove nothing: they are let go, rule 6)."""
        husks = self._conn.execute(f"SELECT count(*) FROM records WHERE chain = ? AND seq >= ? "
                                   f"AND state = {ACCEPTED} AND {_IS_HUSK}",
                                   (chain.rowid, at)).fetchone()[0]
        chain.expired -= husks
        self._conn.execute(f"DELETE FROM records WHERE chain = ? AND seq >= ? "
                           f"AND state != {EVIDENCE} AND {_IS_HUSK}", (chain.rowid, at))
        self._conn.execute(f"UPDATE records SET state = {EVIDENCE}, sender = NULL "
                           f"WHERE chain = ? AND seq >= ? AND state != {EVIDENCE}",
                           (chain.rowid, at))
        chain.fork_seq = at if chain.fork_seq is None else min(at, chain.fork_seq)
        chain.pending = 0
        if at == 1:
            chain.head_seq, chain.head_id, chain.head_ts = 0, None, 0
        else:
            head_id, head_ts = self._accepted_at(chain, at - 1)
            chain.head_seq, chain.head_id, chain.head_ts = at - 1, head_id, head_ts
        self._forks.append(rid)
        self._log(rid, reason, detail, sender, chain)

    # -- small steps ------------------------------------------------------------------------

    def _load(self, key: tuple[bytes, bytes]) -> _Chain:
        row = self._conn.execute(
            "SELECT chain, head_seq, head_id, head_ts, fork_seq, pending, expired FROM chains "
            "WHERE space = ? AND author = ?", key).fetchone()
        if row is None:
            cursor = self._conn.execute("INSERT INTO chains (space, author) VALUES (?, ?)", key)
            assert cursor.lastrowid is not None
            chain = _Chain(*key, cursor.lastrowid, 0, None, 0, None, 0, 0)
        else:
            rowid, head_seq, head_id, head_ts, fork_seq, pending, expired = row
            chain = _Chain(*key, rowid, head_seq, head_id, head_ts or 0, fork_seq, pending,
                           expired)
        self._chains[key] = chain
        return chain

    def _accepted_at(self, chain: _Chain, seq: int) -> tuple[bytes, int]:
        if seq == chain.head_seq and chain.head_id is not None:
            return chain.head_id, chain.head_ts
        row = self._conn.execute(_ACCEPTED_AT, (chain.rowid, seq)).fetchone()
        if row is None:
            raise ReplicaError(f"The replica is inconsistent: chain {chain.rowid} has no "
                               f"accepted record at seq {seq}; run meshcrew doctor.")
        return row[0], row[1]

    def _husk_at(self, chain: _Chain, seq: int) -> bool:
        """Whether the accepted record at ``seq`` is a husk."""
        row = self._conn.execute(f"SELECT {_IS_HUSK} FROM records WHERE chain = ? AND seq = ? "
                                 f"AND state = {ACCEPTED}", (chain.rowid, seq)).fetchone()
        return bool(row and row[0])

    def _advance(self, chain: _Chain, seq: int, rid: bytes, ts: int) -> None:
        chain.head_seq, chain.head_id, chain.head_ts = seq, rid, ts
        self._accepted.append((chain, seq, rid))

    def _insert_held(self, record: Record, chain: _Chain, state: int) -> None:
        sender = self._sender if state == PENDING else None
        self._conn.execute(_INSERT_HELD, (record.id, chain.rowid, record.seq, record.ts,
                                          record.kind, state, sender, record.raw))

    def _flush(self) -> None:
        if self._rows:
            self._conn.executemany(_INSERT_ACCEPTED, self._rows)
            self._rows.clear()

    def _log(self, rid: bytes | None, reason: Reason, detail: str, sender: str,
             chain: _Chain | None = None) -> None:
        space, author = (chain.space, chain.author) if chain is not None else (None, None)
        self._rejects.append(RejectEntry(rid, reason, detail, sender, self._now_ms, space,
                                         author))


def _is_husk(raw: bytes) -> bool:
    return raw[1] == HUSK_VERSION  # the version, a positive fixint after the array's byte


def _prev_and_ts(raw: bytes) -> tuple[bytes | None, int]:
    """The ``prev`` and ``ts`` fields of a stored (already verified) record."""
    fields: list[Any] = msgpack.unpackb(raw, use_list=True, raw=False)
    return fields[5], fields[6]
