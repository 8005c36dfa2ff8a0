"""The replica: open, append, and the queries the node, sync and the TUI need."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any

import msgpack

from meshcrew.errors import ReplicaError
from meshcrew.home import Home
from meshcrew.reasons import Reason
from meshcrew.records import HUSK_KIND, HUSK_VERSION, Frontier, Head, Record, decode_husk
from meshcrew.store.ingest import AppendReport, Ingest, RejectEntry
from meshcrew.store.lock import WriterLock
from meshcrew.store.schema import (
    ACCEPTED,
    EVIDENCE,
    ID_KEY_BYTES,
    PENDING,
    SCHEMA_VERSION,
    closing_on_error,
    connect,
    migrate,
    schema_version_of,
    unknown_version,
)
from meshcrew.store.verify import VerifiedBatch, verify_batch

PENDING_CAP = 10_000
"""Default for how many records may wait for a missing predecessor, per author and space."""

REJECT_LOG_SIZE = 10_000
"""Default for how many reject-log entries are kept (the newest)."""

_BY_ID = f"substr(id, 1, {ID_KEY_BYTES}) = substr(?1, 1, {ID_KEY_BYTES}) AND id = ?1"


class RecordState(StrEnum):
    """Where a stored record stands."""

    ACCEPTED = "accepted"
    PENDING = "pending"
    """Waiting for its predecessor."""
    EVIDENCE = "evidence"
    """Kept as proof that its author forked their chain; never accepted."""


_STATES = {ACCEPTED: RecordState.ACCEPTED, PENDING: RecordState.PENDING,
           EVIDENCE: RecordState.EVIDENCE}


class Replica:
    """The local replica of a home folder: an SQLite file in WAL mode.

    Open it with :meth:`open` (also a context manager). The writer holds the home folder's
    single-writer lock; any number of read-only replicas may read meanwhile. A Replica may be
    used from any one thread at a time (e.g. through ``trio.to_thread``), not from two at once.
    See :mod:`meshcrew.store.ingest` for the chain rules ``append`` applies.
    """

    def __init__(self, home: Home, conn: sqlite3.Connection, lock: WriterLock | None, *,
                 pending_cap: int = PENDING_CAP, reject_log_size: int = REJECT_LOG_SIZE) -> None:
        """Use :meth:`open`; this only wires an opened connection."""
        self.home = home
        self._conn: sqlite3.Connection | None = conn
        self._lock = lock
        self.pending_cap = pending_cap
        self.reject_log_size = reject_log_size

    @classmethod
    def open(cls, home: Home, *, read_only: bool = False, pending_cap: int = PENDING_CAP,
             reject_log_size: int = REJECT_LOG_SIZE) -> Replica:
        """Open the replica of ``home``, creating or upgrading it when writing.

        Args:
            home: the home folder.
            read_only: open without the lock and without writing (works while a writer runs).
            pending_cap: per author and space, how many records may wait for a predecessor.
            reject_log_size: how many reject-log entries to keep.

        Raises:
            HomeError: if another process holds the home folder (writers only).
            ReplicaError: if the file is missing (read-only), damaged, or from a newer meshcrew.
        """
        path = home.replica_file
        if read_only:
            if not path.exists():
                raise ReplicaError(f"There is no replica at {path} yet; start the node once to "
                                   "create it.")
            conn = connect(path, read_only=True)
            with closing_on_error(conn, path):
                version = schema_version_of(conn)
                refusal = unknown_version(version, path)
                if refusal:
                    raise ReplicaError(refusal)
                if version < SCHEMA_VERSION:
                    raise ReplicaError(f"The replica {path} has schema version {version}; start "
                                       "the node once to upgrade it.")
            return cls(home, conn, None, pending_cap=pending_cap, reject_log_size=reject_log_size)
        lock = WriterLock.acquire(home)
        try:
            conn = connect(path, read_only=False)
            with closing_on_error(conn, path):
                migrate(conn, path)
        except BaseException:
            lock.release()
            raise
        return cls(home, conn, lock, pending_cap=pending_cap, reject_log_size=reject_log_size)

    @property
    def path(self) -> Path:
        """The SQLite file."""
        return self.home.replica_file

    @property
    def read_only(self) -> bool:
        """Whether this replica was opened without the writer lock."""
        return self._lock is None

    def close(self) -> None:
        """Close the file and release the lock; harmless to call twice."""
        conn, self._conn = self._conn, None
        try:
            if conn is not None:
                conn.close()
        finally:
            if self._lock is not None:
                self._lock.release()

    def __enter__(self) -> Replica:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- writing ----------------------------------------------------------------------------

    def append(self, raws: Iterable[bytes], *, sender: str = "local", now_ms: int) -> AppendReport:
        """Verify encoded records and apply the chain rules to them, all in one transaction.

        A bad record is logged and skipped; it never aborts the others.

        Args:
            raws: encoded records, in any order.
            sender: who sent them, for the reject log (a peer id, or "local").
            now_ms: the receiver's clock, for ``Reason.FROM_FUTURE`` and the reject log.

        Raises:
            ReplicaError: if the replica is read-only or the write fails (nothing is written).
        """
        return self.append_verified(verify_batch(raws, now_ms=now_ms), sender=sender,
                                    now_ms=now_ms)

    def append_verified(self, batch: VerifiedBatch, *, sender: str = "local",
                        now_ms: int) -> AppendReport:
        """Apply the chain rules to records already checked by :func:`verify_batch`, in one
        transaction; log those it refused. ``append(raws)`` is
        ``append_verified(verify_batch(raws))``: the checks may run in other threads first.

        Args:
            batch: the verified records (only :func:`verify_batch` makes them: the chain rules
                trust their signatures).
            sender: who sent them, for the reject log (a peer id, or "local").
            now_ms: the receiver's clock, for the reject log.

        Raises:
            ReplicaError: if the replica is read-only or the write fails (nothing is written).
        """
        conn = self._writable()
        ingest = Ingest(conn, sender=sender, now_ms=now_ms, pending_cap=self.pending_cap,
                        reject_log_size=self.reject_log_size)
        for raw, error in batch.refused:
            ingest.reject_envelope(raw, error)
        with self._transaction(conn):
            for record in batch.records:
                ingest.add(record)
            return ingest.finish()

    def expire(self, husks: Mapping[bytes, bytes]) -> int:
        """Replace accepted records by their husks and wipe their content from the disk.

        The replica keeps what the chain rules, the frontier and the space rules need (the
        husk, see :func:`meshcrew.records.encode_husk`); the content is overwritten in the
        file (``secure_delete``), and the write-ahead log is checkpointed and truncated, so
        neither file holds it afterwards. A reader holding an old snapshot open can delay the
        truncation: :meth:`wipe_log` says whether it happened, and the next call retries.

        Args:
            husks: per record id, its husk (ids not accepted here, or husks already, are
                skipped).

        Returns:
            How many records became husks.

        Raises:
            ReplicaError: if the replica is read-only or the write fails (nothing is changed).
        """
        conn = self._writable()
        done = 0
        with self._transaction(conn):
            for rid, husk in husks.items():
                row = conn.execute(f"SELECT rowid, chain, raw FROM records WHERE {_BY_ID} "
                                   f"AND state = {ACCEPTED}", (rid,)).fetchone()
                if row is None or _is_husk(row[2]):
                    continue
                conn.execute("UPDATE records SET raw = ? WHERE rowid = ?", (husk, row[0]))
                conn.execute("UPDATE chains SET expired = expired + 1 WHERE chain = ?",
                             (row[1],))
                done += 1
        if done:
            self.wipe_log()
        return done

    def wipe_log(self) -> bool:
        """Checkpoint the write-ahead log into the file and truncate it to nothing; False if a
        reader's open snapshot kept it from finishing (it is tried again at the next expiry)."""
        try:
            busy, _, _ = self._connection().execute(
                "PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error as exc:
            raise ReplicaError(f"Cannot write to the replica {self.path}: {exc}.") from exc
        return not busy

    # -- queries ----------------------------------------------------------------------------

    def expired_count(self, space_id: bytes) -> int:
        """How many of the space's records are husks (it grows at each expiry)."""
        row = self._one("SELECT coalesce(sum(expired), 0) FROM chains WHERE space = ?",
                        (space_id,))
        assert row is not None
        return int(row[0])

    def get(self, record_id: bytes, *, include_held: bool = False) -> Record | None:
        """The accepted record with this id (or also a pending or evidence one if asked)."""
        row = self._one(f"SELECT raw, id, state FROM records WHERE {_BY_ID}", (record_id,))
        if row is None or (row[2] != ACCEPTED and not include_held):
            return None
        return _record(row[0], row[1])

    def state_of(self, record_id: bytes) -> RecordState | None:
        """Whether the record is accepted, pending or evidence; None if not stored."""
        row = self._one(f"SELECT state FROM records WHERE {_BY_ID}", (record_id,))
        return None if row is None else _STATES[row[0]]

    def space_records(self, space_id: bytes, *, kinds: Collection[str] | None = None,
                      lean: bool = False) -> list[Record]:
        """The accepted records of a space, ordered by (ts, id), optionally of some kinds.

        Args:
            space_id: the space.
            kinds: only records of these kinds.
            lean: for a fold kept in memory (a space's view): posts come without their
                encoding and signature (``raw`` and ``sig`` empty: the fold and the views read
                neither), and the fields records share (space, author, kind, the id a record
                follows) are one object each, not a copy per record. About half the memory of
                the records of a big space.
        """
        sql = ("SELECT r.raw, r.id FROM chains c JOIN records r ON r.chain = c.chain "
               f"WHERE c.space = ? AND r.state = {ACCEPTED}")
        args: list[Any] = [space_id]
        if kinds is not None:
            kinds = list(kinds)
            if not kinds:
                return []
            sql += f" AND r.kind IN ({', '.join('?' * len(kinds))})"
            args += kinds
        rows = self._all(sql + " ORDER BY r.ts, r.id", args)
        return _lean_records(rows) if lean else [_record(raw, rid) for raw, rid in rows]

    def each_space_record(self, space_id: bytes) -> Iterator[Record]:
        """The accepted records of a space one at a time, read from the disk as they are asked
        for (all of them are never in memory at once): each author's chain whole, in order, as
        :func:`meshcrew.spaces.membership.fold_membership` takes them; lean, as
        :meth:`space_records` gives them with ``lean``. Read them to the end before using the
        replica again."""
        try:
            rows = self._connection().execute(
                "SELECT r.raw, r.id FROM chains c JOIN records r ON r.chain = c.chain "
                f"WHERE c.space = ? AND r.state = {ACCEPTED} ORDER BY c.author, r.seq",
                (space_id,))
            yield from _each_lean(rows)
        except sqlite3.Error as exc:
            raise ReplicaError(f"Cannot read the replica {self.path}: {exc}.") from exc

    def each_record_after(self, space_id: bytes, before: Frontier) -> Iterator[Record]:
        """The accepted records of a space above ``before`` (per author, the seq it reached),
        one at a time as :meth:`each_space_record` gives them, reading only those: what
        arrived since ``before``, whatever the size of the space. Read them to the end before
        using the replica again."""
        try:
            conn = self._connection()
            chains = conn.execute("SELECT chain, author, head_seq FROM chains "
                                  "WHERE space = ? AND head_seq > 0 ORDER BY author",
                                  (space_id,)).fetchall()
            for chain, author, head_seq in chains:
                seen = before.get(author)
                after = seen.seq if seen is not None else 0
                if head_seq > after:
                    yield from _each_lean(conn.execute(
                        f"SELECT raw, id FROM records WHERE chain = ? AND seq > ? "
                        f"AND state = {ACCEPTED} ORDER BY seq", (chain, after)))
        except sqlite3.Error as exc:
            raise ReplicaError(f"Cannot read the replica {self.path}: {exc}.") from exc

    def kinds_after(self, space_id: bytes, before: Frontier) -> set[str]:
        """The kinds of the accepted records of a space above ``before`` (per author, the seq
        it reached), read from the index without the records themselves."""
        found: set[str] = set()
        for chain, author, head_seq in self._all(
                "SELECT chain, author, head_seq FROM chains WHERE space = ? AND head_seq > 0",
                (space_id,)):
            seen = before.get(author)
            after = seen.seq if seen is not None else 0
            if head_seq > after:
                found.update(kind for kind, in self._all(
                    f"SELECT DISTINCT kind FROM records WHERE chain = ? AND seq > ? "
                    f"AND state = {ACCEPTED}", (chain, after)))
        return found

    def author_records(self, author: bytes, space_id: bytes | None = None) -> list[Record]:
        """An author's accepted records: by space id, then in chain order."""
        sql = ("SELECT r.raw, r.id FROM chains c JOIN records r ON r.chain = c.chain "
               f"WHERE c.author = ? AND r.state = {ACCEPTED}")
        args: list[Any] = [author]
        if space_id is not None:
            sql += " AND c.space = ?"
            args.append(space_id)
        return [_record(raw, rid) for raw, rid in self._all(sql + " ORDER BY c.space, r.seq",
                                                            args)]

    def spaces(self) -> list[bytes]:
        """Ids of the spaces with any accepted record, sorted."""
        return [row[0] for row in self._all(
            "SELECT DISTINCT space FROM chains WHERE head_seq > 0 ORDER BY space", ())]

    def frontier(self, space_id: bytes) -> dict[bytes, Head]:
        """Per author, the head of their accepted chain in the space."""
        return {author: Head(seq, head_id) for author, seq, head_id in self._all(
            "SELECT author, head_seq, head_id FROM chains WHERE space = ? AND head_seq > 0",
            (space_id,))}

    def records_after(self, space_id: bytes, theirs: Frontier, *, limit: int) -> list[Record]:
        """What a peer whose frontier is ``theirs`` lacks: at most ``limit`` accepted records.

        Authors come in key order, each author's records in chain order. If the peer's head of
        an author differs from the accepted record this replica holds at that seq, that record
        is sent too, so the peer sees the fork.
        """
        out: list[Record] = []
        chains = self._all("SELECT chain, author, head_seq FROM chains "
                           "WHERE space = ? AND head_seq > 0 ORDER BY author", (space_id,))
        for chain, author, head_seq in chains:
            if len(out) >= limit:
                break
            their = theirs.get(author)
            start = 1 if their is None else their.seq + 1
            if their is not None and 1 <= their.seq <= head_seq:
                ours = self._one(f"SELECT id FROM records WHERE chain = ? AND seq = ? "
                                 f"AND state = {ACCEPTED}", (chain, their.seq))
                if ours is not None and ours[0] != their.id:
                    start = their.seq
            if start > head_seq:
                continue
            out += [_record(raw, rid) for raw, rid in self._all(
                f"SELECT raw, id FROM records WHERE chain = ? AND seq >= ? AND state = {ACCEPTED} "
                "ORDER BY seq LIMIT ?", (chain, start, limit - len(out)))]
        return out

    def rejects(self, *, limit: int = 100, space_id: bytes | None = None) -> list[RejectEntry]:
        """The newest entries of the reject log, newest first.

        With ``space_id``, only the chain-rule refusals of that space (envelope refusals name
        no space). Entries whose reason this version of meshcrew does not know are left out.
        """
        sql = "SELECT record_id, reason, detail, sender, at_ms, space, author FROM rejects"
        args: list[Any] = []
        if space_id is not None:
            sql += " WHERE space = ?"
            args.append(space_id)
        rows = self._all(sql + " ORDER BY n DESC LIMIT ?", [*args, limit])
        known = {reason.value for reason in Reason}
        return [RejectEntry(rid, Reason(reason), detail, sender, at_ms, space, author)
                for rid, reason, detail, sender, at_ms, space, author in rows
                if reason in known]

    def pending_count(self, space_id: bytes | None = None) -> int:
        """How many records wait for a predecessor (in one space, or in all)."""
        if space_id is None:
            row = self._one("SELECT coalesce(sum(pending), 0) FROM chains", ())
        else:
            row = self._one("SELECT coalesce(sum(pending), 0) FROM chains WHERE space = ?",
                            (space_id,))
        assert row is not None
        return int(row[0])

    def forked_authors(self, space_id: bytes) -> set[bytes]:
        """Authors who signed conflicting records in the space."""
        return {row[0] for row in self._all(
            "SELECT author FROM chains WHERE space = ? AND fork_seq IS NOT NULL", (space_id,))}

    def record_count(self) -> int:
        """How many records are accepted, in all spaces."""
        row = self._one("SELECT coalesce(sum(head_seq), 0) FROM chains", ())
        assert row is not None
        return int(row[0])

    # -- plumbing ---------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ReplicaError(f"The replica {self.path} is closed.")
        return self._conn

    def _writable(self) -> sqlite3.Connection:
        conn = self._connection()
        if self._lock is None:
            raise ReplicaError(f"The replica {self.path} was opened read-only; only the node "
                               "writes it.")
        return conn

    @contextmanager
    def _transaction(self, conn: sqlite3.Connection) -> Iterator[None]:
        """One write transaction: committed if the block ends, rolled back if it raises;
        SQLite's errors (at any step) become ReplicaError."""
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise ReplicaError(f"Cannot write to the replica {self.path}: {exc}.") from exc

    def _all(self, sql: str, args: Iterable[Any]) -> list[Any]:
        try:
            return self._connection().execute(sql, tuple(args)).fetchall()
        except sqlite3.Error as exc:
            raise ReplicaError(f"Cannot read the replica {self.path}: {exc}.") from exc
        except UnicodeDecodeError as exc:  # SQLite's message quoted damaged bytes
            raise ReplicaError(f"Cannot read the replica {self.path}: it is damaged.") from exc

    def _one(self, sql: str, args: Iterable[Any]) -> Any:
        try:
            return self._connection().execute(sql, tuple(args)).fetchone()
        except sqlite3.Error as exc:
            raise ReplicaError(f"Cannot read the replica {self.path}: {exc}.") from exc
        except UnicodeDecodeError as exc:  # SQLite's message quoted damaged bytes
            raise ReplicaError(f"Cannot read the replica {self.path}: it is damaged.") from exc


def _is_husk(raw: bytes) -> bool:
    return raw[1] == HUSK_VERSION  # the version, a positive fixint after the array's byte


def _lean_records(rows: Iterable[tuple[bytes, bytes]]) -> list[Record]:
    """The records of ``rows`` (raw, id) as :meth:`Replica.space_records` gives them lean."""
    return list(_each_lean(rows))


def _each_lean(rows: Iterable[tuple[bytes, bytes]]) -> Iterator[Record]:
    """The records of ``rows`` (raw, id), lean (see :meth:`Replica.space_records`)."""
    shared: dict[object, Any] = {}
    for raw, rid in rows:
        if _is_husk(raw):
            yield decode_husk(raw)
            continue
        version, kind, space, author, seq, prev, ts, body, sig = msgpack.unpackb(raw, raw=False)
        kind, space, author = (shared.setdefault(kind, kind), shared.setdefault(space, space),
                               shared.setdefault(author, author))
        if prev is not None:
            prev = shared.get(prev, prev)  # the record it follows, mostly read before it
        shared[rid] = rid
        if kind == POST_KIND:
            raw, sig = b"", b""
        yield Record(version, kind, space, author, seq, prev, ts, body, sig, raw, rid)


POST_KIND = HUSK_KIND
"""The kind of a post (``sealed``): what a lean record holds without its encoding."""


def _record(raw: bytes, rid: bytes) -> Record:
    """Rebuild a record stored after verification (its fields are in envelope order)."""
    if _is_husk(raw):
        return decode_husk(raw)
    version, kind, space, author, seq, prev, ts, body, sig = msgpack.unpackb(raw, raw=False)
    return Record(version, kind, space, author, seq, prev, ts, body, sig, raw, rid)

