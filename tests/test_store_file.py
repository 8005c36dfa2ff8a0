"""The replica's file: the writer lock, readers, schema versions, damage and ``check_replica``."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys

import pytest

from meshcrew.errors import HomeError, ReplicaError
from meshcrew.home import Home
from meshcrew.records import Head
from meshcrew.store import SCHEMA_VERSION, Replica, check_replica, schema
from store_factory import NOW_MS, Chain, key, raws, space

_HOLD_LOCK = """
import sys
from meshcrew.home import Home
from meshcrew.store import Replica
replica = Replica.open(Home.resolve(sys.argv[1]))
print("locked", flush=True)
sys.stdin.read()  # hold the lock until the parent closes our stdin
"""


def test_a_second_writer_in_this_process_is_refused_at_once(home: Home) -> None:
    busy = rf"Another meshcrew \(pid {os.getpid()}\) is using"
    with Replica.open(home), pytest.raises(HomeError, match=busy):
        Replica.open(home)
    with Replica.open(home) as again:  # closing released the lock
        assert not again.read_only


def test_a_writer_in_another_process_is_named_by_its_pid(home: Home) -> None:
    with subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(home.path)],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as holder:
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline() == "locked\n"
            with pytest.raises(HomeError, match=rf"\(pid {holder.pid}\)"):
                Replica.open(home)
            with Replica.open(home, read_only=True) as reader:
                assert reader.record_count() == 0
        finally:
            holder.kill()
            holder.wait(timeout=10)
    # The kernel released the lock of the killed process.
    Replica.open(home).close()


def test_a_reader_sees_the_writers_commits_while_it_runs(home: Home) -> None:
    chain = Chain(key(0), space(0))
    with Replica.open(home) as writer:
        writer.append(raws(chain.extend(2)), now_ms=NOW_MS)
        with Replica.open(home, read_only=True) as reader:
            assert reader.read_only
            assert reader.frontier(space(0)) == {chain.author: Head(2, chain.records[1].id)}
            writer.append([chain.next().raw], now_ms=NOW_MS)
            assert reader.frontier(space(0))[chain.author].seq == 3
            with pytest.raises(ReplicaError, match="read-only"):
                reader.append([chain.next().raw], now_ms=NOW_MS)


def test_a_reader_needs_an_existing_replica(home: Home) -> None:
    with pytest.raises(ReplicaError, match="no replica"):
        Replica.open(home, read_only=True)


def test_a_closed_replica_says_so(home: Home) -> None:
    replica = Replica.open(home)
    replica.close()
    replica.close()
    with pytest.raises(ReplicaError, match="closed"):
        replica.frontier(space(0))


def test_the_file_is_in_wal_mode_with_the_current_schema_version(home: Home) -> None:
    Replica.open(home).close()
    conn = sqlite3.connect(home.replica_file)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 1
    finally:
        conn.close()


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_the_replica_and_its_wal_are_private_whatever_the_umask(home: Home, umask: int) -> None:
    old = os.umask(umask)
    try:
        with Replica.open(home) as replica:
            replica.append(raws(Chain(key(0), space(0)).extend(2)), now_ms=NOW_MS)
            files = [home.replica_file.with_name(home.replica_file.name + suffix)
                     for suffix in ("", "-wal", "-shm")]
            assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o600}
    finally:
        os.umask(old)


def _set_version(home: Home, version: int) -> None:
    conn = sqlite3.connect(home.replica_file)
    try:
        conn.execute(f"PRAGMA user_version = {version}")
    finally:
        conn.close()


def test_a_replica_from_a_newer_meshcrew_is_refused(home: Home) -> None:
    Replica.open(home).close()
    _set_version(home, SCHEMA_VERSION + 1)
    for read_only in (False, True):
        with pytest.raises(ReplicaError, match=r"newer than this meshcrew knows.*upgrade"):
            Replica.open(home, read_only=read_only)
    assert "newer than this meshcrew" in " ".join(check_replica(home))
    _set_version(home, SCHEMA_VERSION)
    Replica.open(home).close()  # the refused writer released the lock


def test_an_empty_file_is_brought_up_to_the_current_version(home: Home) -> None:
    sqlite3.connect(home.replica_file).close()  # an empty database: version 0
    with Replica.open(home) as replica:
        replica.append(raws(Chain(key(0), space(0)).extend(1)), now_ms=NOW_MS)
        assert replica.record_count() == 1


def test_migrations_run_in_order_and_a_failed_step_changes_nothing(
        home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    with Replica.open(home) as replica:
        replica.append(raws(Chain(key(0), space(0)).extend(2)), now_ms=NOW_MS)

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half_done (x)")
        conn.execute("SELECT * FROM no_such_table")

    def add_notes(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE notes (id BLOB PRIMARY KEY, text TEXT)")

    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, broken])
    with pytest.raises(ReplicaError, match="cannot be opened"):
        Replica.open(home)
    conn = sqlite3.connect(home.replica_file)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'half_done'"
                            ).fetchall() == []
    finally:
        conn.close()

    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS[:-1], add_notes])
    with Replica.open(home) as replica:
        assert replica.record_count() == 2  # the data came through the upgrade
    conn = sqlite3.connect(home.replica_file)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
        assert conn.execute("SELECT count(*) FROM notes").fetchone()[0] == 0
    finally:
        conn.close()


def test_a_version_1_reject_log_is_upgraded_and_new_entries_name_their_space(
        home: Home) -> None:
    home.ensure()
    conn = sqlite3.connect(home.replica_file, isolation_level=None)
    try:
        schema.MIGRATIONS[0](conn)  # the file as meshcrew wrote it at schema version 1
        conn.execute("PRAGMA user_version = 1")
        conn.execute("INSERT INTO rejects (record_id, reason, detail, sender, at_ms) "
                     "VALUES (NULL, 'malformed', '', 'peer-old', 1)")
    finally:
        conn.close()
    chain = Chain(key(0), space(0))
    first, second = chain.extend(2)
    with Replica.open(home) as replica:
        [old] = replica.rejects()
        assert (old.sender, old.space, old.author) == ("peer-old", None, None)
        replica.append([first.raw, second.raw], now_ms=NOW_MS)
        report = replica.append([chain.at(2).raw], sender="peer-new", now_ms=NOW_MS)
        [fork] = report.rejected
        assert (fork.space, fork.author) == (space(0), bytes(key(0).verify_key))
        assert replica.rejects(space_id=space(0)) == [fork]
        assert replica.rejects() == [fork, old]


def test_garbage_bytes_give_a_clear_error_not_a_traceback(home: Home) -> None:
    home.replica_file.write_bytes(b"this is not an SQLite database, just some bytes\n" * 100)
    home.replica_file.chmod(0o600)  # only the damage, not the umask's mode, is reported
    for read_only in (False, True):
        with pytest.raises(ReplicaError, match=r"cannot be opened.*not a database.*backup"):
            Replica.open(home, read_only=read_only)
    [problem] = check_replica(home)
    assert str(home.replica_file) in problem
    home.replica_file.unlink()
    Replica.open(home).close()  # the lock was released despite the failure


def _damaged(kind: str, good: bytes) -> bytes:
    """A replica file damaged in one of the ways a disk, a copy or a person damages one."""
    if kind == "garbage":
        return b"this is not an SQLite database, just some bytes\n" * 100
    if kind == "truncated":
        return good[:1000]
    if kind == "names":  # a table's name in the schema is no longer UTF-8
        assert b"tablerecordsrecords" in good
        return good.replace(b"tablerecordsrecords", b"tablerec\xffrdsrecords", 1)
    assert kind == "version"  # user_version is signed; no meshcrew writes a negative one
    return good[:60] + (-3).to_bytes(4, "big", signed=True) + good[64:]


@pytest.mark.parametrize("kind", ["garbage", "truncated", "names", "version"])
def test_a_refused_open_leaves_the_folder_as_it_was(home: Home, kind: str) -> None:
    with Replica.open(home) as replica:
        replica.append(raws(Chain(key(0), space(0)).extend(20)), now_ms=NOW_MS)
    damaged = _damaged(kind, home.replica_file.read_bytes())
    home.replica_file.write_bytes(damaged)
    before = sorted(home.path.iterdir())
    assert [p.name for p in before] == ["replica.sqlite3", "writer.lock"]

    with pytest.raises(ReplicaError, match=f"^The replica {home.replica_file} .*backup"):
        Replica.open(home)
    assert sorted(home.path.iterdir()) == before, "no -wal/-shm left beside it"
    assert home.replica_file.read_bytes() == damaged, "the file is untouched"

    # A reader is refused in one line too. Like every read-only connection (SQLite lets only
    # a writer remove them), it may leave an empty -wal and the -shm index behind.
    with pytest.raises(ReplicaError, match=f"^The replica {home.replica_file} "):
        Replica.open(home, read_only=True)
    assert home.replica_file.read_bytes() == damaged
    problems = check_replica(home)
    assert problems
    assert all(str(home.replica_file) in p for p in problems)
    home.replica_file.unlink()
    Replica.open(home).close()  # the refused writer released the lock


def test_check_replica_is_quiet_for_a_missing_or_healthy_replica(home: Home) -> None:
    assert check_replica(home) == []
    with Replica.open(home) as replica:
        replica.append(raws(Chain(key(0), space(0)).extend(3)), now_ms=NOW_MS)
        assert check_replica(home) == []  # also while the writer runs


def test_check_replica_reports_damaged_pages(home: Home) -> None:
    with Replica.open(home) as replica:
        replica.append(raws(Chain(key(0), space(0)).extend(200)), now_ms=NOW_MS)
    data = bytearray(home.replica_file.read_bytes())
    page_size = int.from_bytes(data[16:18], "big")
    assert len(data) >= 4 * page_size
    for page in range(2, len(data) // page_size):  # leave the header page alone
        start = page * page_size
        data[start : start + 64] = b"\xee" * 64
    home.replica_file.write_bytes(bytes(data))
    problems = check_replica(home)
    assert problems
    assert all(str(home.replica_file) in p for p in problems)


def test_a_lock_file_left_behind_does_not_block(home: Home) -> None:
    home.lock_file.write_text("4242\n")  # e.g. from a node that crashed
    with Replica.open(home):
        assert home.lock_file.read_text() == f"{os.getpid()}\n"


def test_check_replica_reports_what_integrity_check_finds(home: Home) -> None:
    with Replica.open(home) as replica:
        replica.append(raws(Chain(key(0), space(0)).extend(20)), now_ms=NOW_MS)
    # Swap an index's b-tree with an empty one behind SQLite's back: the file stays readable,
    # but its index no longer matches its table.
    conn = sqlite3.connect(home.replica_file)
    try:
        conn.execute("PRAGMA writable_schema = ON")
        conn.execute("CREATE TABLE spare (a, b)")
        conn.execute("CREATE INDEX spare_index ON spare (a, b)")
        roots = dict(conn.execute("SELECT name, rootpage FROM sqlite_master "
                                  "WHERE name IN ('spare_index', 'records_by_chain')"))
        for name, other in (("records_by_chain", "spare_index"),
                            ("spare_index", "records_by_chain")):
            conn.execute("UPDATE sqlite_master SET rootpage = ? WHERE name = ?",
                         (roots[other], name))
        conn.commit()
    finally:
        conn.close()
    [problem] = check_replica(home)
    assert problem.startswith(f"The replica {home.replica_file} is damaged: ")
    assert "missing from index records_by_chain" in problem
    assert "more)" in problem
