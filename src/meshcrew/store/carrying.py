"""What a carrier needs of its replica besides appending: sizes, refusals, forgetting a space.

A carrier (``meshcrew.node.carrying``) holds quotas per space and in total, logs the records it
refuses in the replica's reject log (so ``meshcrew rejects`` shows them), and deletes a space
that dropped it. Deleting is whole-space only: a member never deletes records (expired posts
become husks, :meth:`Replica.expire`; :func:`husk_ids` says which are). As the replica's own
methods, each raises ``ReplicaError`` when SQLite fails (another program holds the write lock, a
full disk), never SQLite's own errors, which the node's tasks do not expect.
"""

from __future__ import annotations

import sqlite3

from meshcrew.errors import ReplicaError
from meshcrew.reasons import Reason
from meshcrew.records import HUSK_VERSION
from meshcrew.store.replica import Replica
from meshcrew.store.schema import ACCEPTED


def space_bytes(replica: Replica, space_id: bytes) -> int:
    """Bytes of the records the replica holds of a space (accepted, pending and forks)."""
    row = replica._one("SELECT coalesce(sum(length(r.raw)), 0) FROM records r JOIN chains c "
                       "ON r.chain = c.chain WHERE c.space = ?", (space_id,))
    return int(row[0])


def total_bytes(replica: Replica) -> int:
    """Bytes of every record the replica holds."""
    row = replica._one("SELECT coalesce(sum(length(raw)), 0) FROM records", ())
    return int(row[0])


def log_refusal(replica: Replica, record_id: bytes | None, reason: Reason, detail: str,
                sender: str, at_ms: int, space_id: bytes | None, author: bytes | None = None
                ) -> None:
    """Add a refusal to the reject log (as the replica's own refusals are)."""
    try:  # autocommit mode: one statement is one transaction
        replica._connection().execute(
            "INSERT INTO rejects (record_id, reason, detail, sender, at_ms, space, author) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (record_id, reason.value, detail, sender, at_ms, space_id, author))
    except sqlite3.Error as exc:
        raise ReplicaError(f"Cannot write to the replica {replica.path}: {exc}.") from exc


def delete_space(replica: Replica, space_id: bytes) -> int:
    """Delete every record and chain of a space; the number of records deleted."""
    conn = replica._connection()  # autocommit mode: the transaction is ours to run
    with replica._transaction(conn):
        deleted = conn.execute("DELETE FROM records WHERE chain IN (SELECT chain FROM chains "
                               "WHERE space = ?)", (space_id,)).rowcount
        conn.execute("DELETE FROM chains WHERE space = ?", (space_id,))
    return int(deleted)


def husk_ids(replica: Replica, space_id: bytes) -> set[bytes]:
    """The ids of the records of a space the replica holds as husks (expired posts)."""
    rows = replica._all(
        "SELECT r.id FROM records r JOIN chains c ON r.chain = c.chain WHERE c.space = ? "
        f"AND c.expired > 0 AND r.state = {ACCEPTED} AND substr(r.raw, 2, 1) = ?",
        (space_id, bytes([HUSK_VERSION])))
    return {row[0] for row in rows}
