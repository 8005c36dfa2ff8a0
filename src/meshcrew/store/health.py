"""Checking a replica without opening it for writing, for ``meshcrew doctor``."""

from __future__ import annotations

import shlex
import sqlite3
import stat
from pathlib import Path

from meshcrew.home import Home
from meshcrew.store.schema import SCHEMA_VERSION, schema_version_of, unknown_version

_MAX_INTEGRITY_LINES = 3

_SIDE_FILES = ("-wal", "-shm")
"""SQLite's companions of a replica in WAL mode: the log of recent commits and its index."""


def check_replica(home: Home) -> list[str]:
    """Sentences describing what is wrong with the replica of ``home``; [] when it is fine.

    Checks that the replica file and its ``-wal``/``-shm`` companions are closed to others,
    then that the replica is intact. A replica that does not exist yet is fine. Works while a
    node is writing the replica.
    """
    path = home.replica_file
    if not path.exists():
        return []
    return _files_open_to_others(path) + _content_problems(path)


def _files_open_to_others(path: Path) -> list[str]:
    """The sentence naming the replica files others may access, with the command that fixes it.

    Replicas made before meshcrew created them with mode 0600 kept the umask's 0644, and SQLite
    gives the ``-wal`` and ``-shm`` files the replica's own mode. The home folder (0700) keeps
    others out already; the files should not rely on it.
    """
    found: list[tuple[Path, int]] = []
    for file in (path, *(path.with_name(path.name + suffix) for suffix in _SIDE_FILES)):
        try:
            mode = stat.S_IMODE(file.stat().st_mode)
        except FileNotFoundError:
            continue  # no companion: a writer that closed cleanly removed them
        if mode & 0o077:
            found.append((file, mode))
    if not found:
        return []
    listed = ", ".join(f"{file} (mode {mode:04o})" for file, mode in found)
    return [f"The replica is open to others: {listed}; run: chmod 600 "
            + " ".join(shlex.quote(str(file)) for file, _ in found)]


def _content_problems(path: Path) -> list[str]:
    try:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        return [f"The replica {path} cannot be opened: {exc}."]
    try:
        conn.execute("PRAGMA busy_timeout = 5000")
        version = schema_version_of(conn)
        refusal = unknown_version(version, path)
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
    except UnicodeDecodeError:
        # SQLite's message quoted damaged bytes; see schema.closing_on_error.
        return [f"The replica {path} cannot be read: it is damaged. Restore it from a backup, "
                "or move it aside and sync again from your crew."]
    finally:
        conn.close()
