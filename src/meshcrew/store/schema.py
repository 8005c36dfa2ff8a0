"""The replica's SQLite file: connection settings, tables, schema version and migrations.

The schema version lives in ``PRAGMA user_version``. Opening a replica for writing brings an older
file up to :data:`SCHEMA_VERSION` by running each step of :data:`MIGRATIONS` in its own
transaction; a file written by a newer meshcrew is refused rather than guessed at.

Tables (version 1):

``chains``
    One row per (space, author): the accepted head (``head_seq`` 0 means nothing accepted yet),
    the lowest fork ``fork_seq`` (NULL while the chain is clean) and how many of its records
    are ``pending``. This row is the frontier, so frontiers never scan records.
``records``
    Every stored record: ``state`` says whether it is accepted, pending (waiting for its
    predecessor) or evidence of a fork. ``raw`` is the record exactly as signed; the other
    columns are copies of its fields that queries filter on. ``sender`` is kept only while a
    record is pending, so a later rejection can still name who sent it.
``rejects``
    The bounded log of refused records. Version 2 adds ``space`` and ``author``: the chain a
    record refused by the chain rules belongs to (NULL for envelope refusals and for entries
    from version 1).

Version 3 adds ``chains.expired``: how many of the chain's records are husks (posts whose
content expired, see :meth:`meshcrew.store.Replica.expire`), so that readers notice an expiry,
which changes no frontier.

Indexes are only what queries need: records by (chain, seq) for chains, frontiers and sync, and
by the first 8 bytes of the id for :meth:`Replica.get` and duplicate checks. Record ids are
random, so an id index costs a random B-tree insert per record; keying it on 8 bytes instead of
32 keeps that index (and the pages each commit rewrites) a third of the size. Listing a space
sorts its records by time on read instead of keeping a third index on every insert.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from meshcrew.errors import ReplicaError

ACCEPTED = 0
PENDING = 1
EVIDENCE = 2
"""Values of ``records.state``."""

ID_KEY_BYTES = 8
"""How many leading bytes of a record id the id index holds."""

RESTORE_ADVICE = ("Restore it from a backup, or move it aside to start an empty replica and "
                  "sync again from your crew.")
"""What to do about a damaged replica, ending the sentences that refuse one."""

_V1 = f"""
CREATE TABLE chains (
    chain INTEGER PRIMARY KEY,
    space BLOB NOT NULL,
    author BLOB NOT NULL,
    head_seq INTEGER NOT NULL DEFAULT 0,
    head_id BLOB,
    head_ts INTEGER,
    fork_seq INTEGER,
    pending INTEGER NOT NULL DEFAULT 0,
    UNIQUE (space, author)
);
CREATE TABLE records (
    id BLOB NOT NULL,
    chain INTEGER NOT NULL REFERENCES chains (chain),
    seq INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    kind TEXT NOT NULL,
    state INTEGER NOT NULL,
    sender TEXT,
    raw BLOB NOT NULL
);
CREATE INDEX records_by_chain ON records (chain, seq);
CREATE INDEX records_by_id ON records (substr(id, 1, {ID_KEY_BYTES}));
CREATE TABLE rejects (
    n INTEGER PRIMARY KEY,
    record_id BLOB,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    sender TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);
"""

Migration = Callable[[sqlite3.Connection], None]


def _create_v1(conn: sqlite3.Connection) -> None:
    for statement in _V1.split(";"):
        if statement.strip():
            conn.execute(statement)


def _rejects_name_their_chain_v2(conn: sqlite3.Connection) -> None:
    conn.execute("ALTER TABLE rejects ADD COLUMN space BLOB")
    conn.execute("ALTER TABLE rejects ADD COLUMN author BLOB")


def _chains_count_husks_v3(conn: sqlite3.Connection) -> None:
    conn.execute("ALTER TABLE chains ADD COLUMN expired INTEGER NOT NULL DEFAULT 0")


MIGRATIONS: list[Migration] = [_create_v1, _rejects_name_their_chain_v2, _chains_count_husks_v3]
"""``MIGRATIONS[n]`` brings a file from version ``n`` to ``n + 1``; never edit a released step."""

SCHEMA_VERSION = len(MIGRATIONS)


def schema_version_of(conn: sqlite3.Connection) -> int:
    """The version stored in the file (0 for a new, empty file)."""
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def unknown_version(version: int, path: Path) -> str | None:
    """The sentence refusing a version this code does not know, or None when it knows it.

    A version above :data:`SCHEMA_VERSION` comes from a newer meshcrew. ``user_version`` is a
    signed 32-bit field and no meshcrew writes a negative one, so a negative version means the
    file's header is damaged (migrating from it would index :data:`MIGRATIONS` from the end).
    """
    if version > len(MIGRATIONS):
        return (f"The replica {path} has schema version {version}, newer than this meshcrew "
                f"knows ({len(MIGRATIONS)}); upgrade meshcrew.")
    if version < 0:
        return (f"The replica {path} has schema version {version}, which no meshcrew writes: "
                f"its header is damaged. {RESTORE_ADVICE}")
    return None


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Bring the file up to the current version, one transaction per step.

    Raises:
        ReplicaError: if the file is newer than this code.
    """
    version = schema_version_of(conn)
    refusal = unknown_version(version, path)
    if refusal:
        raise ReplicaError(refusal)
    for step in range(version, len(MIGRATIONS)):
        conn.execute("BEGIN IMMEDIATE")
        try:
            MIGRATIONS[step](conn)
            # PRAGMA takes no parameters; step is an int from range().
            conn.execute(f"PRAGMA user_version = {step + 1}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def connect(path: Path, *, read_only: bool) -> sqlite3.Connection:
    """Open the file with meshcrew's settings; translate SQLite's errors into ReplicaError.

    The connection is in autocommit mode: the replica runs its own ``BEGIN``/``COMMIT``.
    It may be used from another thread (``trio.to_thread``), one call at a time.
    """
    try:
        if read_only:
            conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, isolation_level=None,
                                   check_same_thread=False)
        else:
            _create_private(path)
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise ReplicaError(f"The replica {path} cannot be opened: {exc}.") from None
    with closing_on_error(conn, path):
        # Wait briefly instead of failing while a checkpoint holds a lock for a moment.
        conn.execute("PRAGMA busy_timeout = 5000")
        if read_only:
            conn.execute("PRAGMA query_only = ON")
            # Parse the schema now, so a damaged one is refused here in one line rather than
            # by the first query (the writer's PRAGMA journal_mode parses it too).
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        else:
            # WAL lets readers (the TUI, `meshcrew doctor`) run while the node writes.
            # synchronous=NORMAL syncs the WAL at checkpoints, not at every commit: a committed
            # transaction survives a crash of the process (it is in the WAL, in the OS's page
            # cache), and the file is never corrupted; only a power loss or OS crash may lose
            # the last commits, which sync fetches again from peers. FULL would cost an fsync
            # per append.
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise ReplicaError(f"The replica {path} cannot use write-ahead logging "
                                   f"(journal mode {mode}); is the folder on a network drive?")
            conn.execute("PRAGMA synchronous = NORMAL")
            # Deleted content (an expired post's ciphertext) is overwritten with zeros in the
            # file and its WAL instead of left in free space (see Replica.expire).
            conn.execute("PRAGMA secure_delete = ON")
    return conn


def _create_private(path: Path) -> None:
    """Create a missing replica file with mode 0600 (SQLite gives its WAL the same mode).

    Crew content is encrypted, but who is in which space and when they wrote is not; the home
    folder is closed to others already, and the file is too, whatever the umask.
    """
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError as exc:
        raise ReplicaError(f"The replica {path} cannot be created: {exc.strerror}.") from None


@contextmanager
def closing_on_error(conn: sqlite3.Connection, path: Path) -> Iterator[None]:
    """Close ``conn`` if the block fails; SQLite's errors become ReplicaError."""
    try:
        yield
    except sqlite3.Error as exc:
        conn.close()
        raise ReplicaError(f"The replica {path} cannot be opened: {exc}. "
                           f"{RESTORE_ADVICE}") from None
    except UnicodeDecodeError:
        # SQLite's error message quotes the damaged bytes (a table name in a broken schema,
        # say), and Python fails to decode the message instead of raising sqlite3.Error.
        conn.close()
        raise ReplicaError(f"The replica {path} cannot be opened: it is damaged. "
                           f"{RESTORE_ADVICE}") from None
    except BaseException:
        conn.close()
        raise
