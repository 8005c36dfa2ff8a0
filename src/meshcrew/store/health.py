"""Checking a replica without opening it for writing, for ``meshcrew doctor``."""

from __future__ import annotations

import sqlite3

from meshcrew.home import Home
from meshcrew.store.schema import SCHEMA_VERSION, schema_version_of, too_new

_MAX_INTEGRITY_LINES = 3


def check_replica(home: Home) -> list[str]:
    """Sentences describing what is wrong with the replica of ``home``; [] when it is fine.

    A replica that does not exist yet is fine. Works while a node is writing the replica.
    """
    path = home.replica_file
    if not path.exists():
        return []
    try:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        return [f"The replica {path} cannot be opened: {exc}."]
    try:
        conn.execute("PRAGMA busy_timeout = 5000")
        version = schema_version_of(conn)
        refusal = too_new(version, path)
        if refusal:
            return [refusal]
        problems: list[str] = []
        lines = [str(row[0]) for row in conn.execute("PRAGMA integrity_check")]
        if lines != ["ok"]:
            shown = "; ".join(lines[:_MAX_INTEGRITY_LINES])
            more = f" (and {len(lines) - _MAX_INTEGRITY_LINES} more)" \
                if len(lines) > _MAX_INTEGRITY_LINES else ""
            problems.append(f"The replica {path} is damaged: {shown}{more}. Restore it from a "
                            "backup, or move it aside and sync again from your crew.")
        if 0 < version < SCHEMA_VERSION:
            problems.append(f"The replica {path} has schema version {version}; the node "
                            f"upgrades it to {SCHEMA_VERSION} when it next starts.")
        return problems
    except sqlite3.Error as exc:
        return [f"The replica {path} cannot be read: {exc}. Restore it from a backup, or move "
                "it aside and sync again from your crew."]
    finally:
        conn.close()
