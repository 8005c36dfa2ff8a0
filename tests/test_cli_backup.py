"""``meshcrew backup`` and ``meshcrew restore`` through the command line.

A crew of two is made with the member service in temporary homes (records move by the service's
own export and ingest); the CLI runs as a real ``python -m meshcrew`` subprocess, except the
flipped-byte property, which calls ``main()`` in-process to stay fast. Backups use
``--kdf-cost interactive`` (the cost is recorded in the file; restore reads it from there).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl import pwhash

from meshcrew import identity
from meshcrew.backup import KdfCost, seal_backup
from meshcrew.cli import main
from meshcrew.cli.backup_commands import ProgressLine
from meshcrew.cli.service_access import wall_clock_ms
from meshcrew.home import Home
from meshcrew.node import home_backup
from meshcrew.node.home_backup import read_backup
from meshcrew.node.peerbook import PeerBook
from meshcrew.records import decode_and_verify
from meshcrew.store import Replica
from node_processes import Fleet, fleet, wait_for
from test_service_support import Town, crew_of, sync

__all__ = ["fleet"]  # the fixture

BACKUP_KEYS = {"file", "records", "spaces", "bytes"}
RESTORE_KEYS = {"file", "name", "key", "fingerprint", "key_file", "spaces", "records",
                "accepted", "duplicates", "pending", "rejected", "rejects", "peers"}
PEER = "12D3KooWQd3X9oqzRXEVEb2Kw2pJud8aLi7RyuZc6ubuPXRnfh4M"
PEER_ADDR = f"/ip4/192.0.2.7/tcp/4001/p2p/{PEER}"


def run(home: Path, *args: str | Path, stdin: int | None = subprocess.DEVNULL
        ) -> subprocess.CompletedProcess[str]:
    """``python -m meshcrew --home HOME ARGS`` with no MESHCREW_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHCREW_")}
    return subprocess.run([sys.executable, "-m", "meshcrew", "--home", str(home),
                           *map(str, args)], env=env, stdin=stdin, capture_output=True,
                          text=True, timeout=60, check=False)


def ok(home: Path, *args: str | Path) -> Any:
    """Run a command with ``--json``; its object (the command must succeed quietly)."""
    done = run(home, *args, "--json")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return json.loads(done.stdout)


def refused(home: Path, *args: str | Path) -> str:
    """Run a command that must be refused with one line; return that line."""
    done = run(home, *args)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("meshcrew: error: "), done.stderr
    return lines[0]


def member_view(home: Path) -> dict[str, Any]:
    """What a person sees: whoami, spaces, and the log of every space (all as JSON)."""
    spaces = ok(home, "spaces")
    return {"whoami": ok(home, "whoami"), "spaces": spaces,
            "logs": {s["id"]: ok(home, "log", s["id"]) for s in spaces["spaces"]}}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Ada and Bob in a crew (check-ins both ways), Ada's key file and peer book on disk, and a
    backup of Ada's home made by the CLI. Tests copy what they change."""
    root = tmp_path_factory.mktemp("backup")
    town = Town(root)
    try:
        space, (ada, bob) = crew_of(town, "Ada", "Bob")
        ada.checkin(space, text="arriving tired but glad", energy=2)
        bob.checkin(space, text="full of beans", energy=5, ask="a walk on Friday?")
        sync(space, ada, bob)
        ada.create_space("Ada's journal", kind="dyad")
        identity.save(ada.identity, Home(root / "Ada").key_file)
        identity.save(bob.identity, Home(root / "Bob").key_file)
    finally:
        town.close()
    book = PeerBook.load(Home(root / "Ada"))
    book.learn(PEER, [PEER_ADDR], source="invite")
    book.seen(PEER, 1_767_600_000_000)
    book.save()
    passphrase = root / "pass"
    passphrase.write_text("a long and private sentence\n")
    made = ok(root / "Ada", "backup", root / "ada.mcb", "--backup-passphrase-file", passphrase,
              "--kdf-cost", "interactive")
    assert set(made) == BACKUP_KEYS
    return {"root": root, "ada": root / "Ada", "bob": root / "Bob", "backup": root / "ada.mcb",
           "pass": passphrase}


def restore(home: Path, world: dict[str, Path], backup: Path | None = None) -> Any:
    return ok(home, "restore", backup or world["backup"], "--backup-passphrase-file",
              world["pass"])


def test_backup_reports_what_it_wrote(world: dict[str, Path]) -> None:
    path = world["backup"]
    with Replica.open(Home(world["ada"]), read_only=True) as replica:
        records, spaces = replica.record_count(), len(replica.spaces())
    assert spaces == 2
    assert records >= 10
    again = ok(world["ada"], "backup", world["root"] / "again.mcb", "--backup-passphrase-file",
               world["pass"], "--kdf-cost", "interactive")
    assert again == {"file": str(world["root"] / "again.mcb"), "records": records,
                     "spaces": spaces, "bytes": path.stat().st_size}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not [p for p in world["root"].iterdir() if p.name.endswith(".new")]


def test_round_trip_gives_the_same_member(world: dict[str, Path], tmp_path: Path) -> None:
    fresh = tmp_path / "laptop"
    done = restore(fresh, world)
    assert set(done) == RESTORE_KEYS
    assert done["key_file"] == "written"
    assert done["accepted"] == done["records"]
    assert done["records"] >= 10
    assert (done["duplicates"], done["pending"], done["rejected"], done["peers"]) == (0, 0, 0, 1)
    restored = member_view(fresh)
    assert restored == member_view(world["ada"])
    assert "full of beans" in json.dumps(restored["logs"])  # Bob's check-in, decrypted

    key_file = Home(fresh).key_file
    assert key_file.read_bytes() == Home(world["ada"]).key_file.read_bytes()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700
    peer = PeerBook.load(Home(fresh)).get(PEER)
    assert peer is not None
    assert (peer.addrs, peer.last_seen_ms) == ([PEER_ADDR], 1_767_600_000_000)


def test_text_output_says_what_was_restored_and_what_next(world: dict[str, Path],
                                                          tmp_path: Path) -> None:
    done = run(tmp_path / "laptop", "restore", world["backup"], "--backup-passphrase-file",
               world["pass"])
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("Restored Ada (")
    assert "the key file (mode 0600)" in lines[0]
    assert "1 known peer." in lines[0]
    assert lines[-1] == ("Start the node (meshcrew node, or meshcrew) to sync what your crew "
                         "wrote since.")


def test_restore_into_the_same_identity_merges(world: dict[str, Path], tmp_path: Path) -> None:
    laptop, ada = tmp_path / "laptop", tmp_path / "ada"
    restore(laptop, world)
    shutil.copytree(world["ada"], ada)
    space = ok(ada, "spaces")["spaces"][0]["id"]
    ok(ada, "checkin", space, "--text", "written after the first backup")
    newer = tmp_path / "newer.mcb"
    made = ok(ada, "backup", newer, "--backup-passphrase-file", world["pass"], "--kdf-cost",
              "interactive")

    merged = restore(laptop, world, newer)
    assert merged["key_file"] == "kept"
    assert merged["accepted"] >= 1
    assert merged["accepted"] + merged["duplicates"] == made["records"]
    assert member_view(laptop) == member_view(ada)


def test_restore_over_another_identity_is_refused(world: dict[str, Path],
                                                  tmp_path: Path) -> None:
    bob = tmp_path / "bob"
    shutil.copytree(world["bob"], bob)
    before = {p.name: p.read_bytes() for p in bob.iterdir()}
    line = refused(bob, "restore", world["backup"], "--backup-passphrase-file", world["pass"])
    assert "already holds another identity (Bob," in line
    assert "the backup is of Ada" in line
    assert {p.name: p.read_bytes() for p in bob.iterdir()} == before


def test_wrong_passphrase_writes_nothing(world: dict[str, Path], tmp_path: Path) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("another sentence\n")
    line = refused(tmp_path / "laptop", "restore", world["backup"], "--backup-passphrase-file",
                   wrong)
    assert "passphrase does not open this backup" in line
    assert not (tmp_path / "laptop").exists()


@pytest.mark.parametrize("keep", [0, 10, 100, -1, None])
def test_a_cut_short_backup_writes_nothing(world: dict[str, Path], tmp_path: Path,
                                           keep: int | None) -> None:
    data = world["backup"].read_bytes()
    cut = tmp_path / "cut.mcb"
    cut.write_bytes(data[: len(data) // 2 if keep is None else keep])
    line = refused(tmp_path / "laptop", "restore", cut, "--backup-passphrase-file", world["pass"])
    assert ("empty" if keep == 0 else "cut short") in line
    assert not (tmp_path / "laptop").exists()


def test_a_foreign_file_is_refused(world: dict[str, Path], tmp_path: Path) -> None:
    line = refused(tmp_path / "laptop", "restore", world["pass"], "--backup-passphrase-file",
                   world["pass"])
    assert "not a meshcrew backup" in line
    assert not (tmp_path / "laptop").exists()


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_a_flipped_byte_anywhere_is_refused(world: dict[str, Path], data: st.DataObject) -> None:
    original = world["backup"].read_bytes()
    at = data.draw(st.integers(0, len(original) - 1), label="position")
    flip = data.draw(st.integers(1, 255), label="xor")
    changed = bytearray(original)
    changed[at] ^= flip
    with tempfile.TemporaryDirectory() as folder:
        file, home = Path(folder) / "b.mcb", Path(folder) / "laptop"
        file.write_bytes(bytes(changed))
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(["--home", str(home), "restore", str(file),
                           "--backup-passphrase-file", str(world["pass"])])
        assert status == 1
        assert out.getvalue() == ""
        assert len(err.getvalue().splitlines()) == 1
        assert err.getvalue().startswith("meshcrew: error: ")
        assert not home.exists()


def test_a_tampered_record_is_refused_and_the_rest_restored(world: dict[str, Path],
                                                            tmp_path: Path) -> None:
    """Someone with the passphrase altered a record: the replica checks every signature."""
    passphrase = b"a long and private sentence"
    contents = read_backup(world["backup"], passphrase)
    last = bytearray(contents.records[-1])  # the end of a chain: nothing waits on it
    last[-1] ^= 0x01  # inside the signature
    altered = type(contents)(contents.created_ms, contents.key_file, contents.member_key,
                             contents.member_name, contents.spaces,
                             (*contents.records[:-1], bytes(last)), contents.peer_book)
    file = tmp_path / "altered.mcb"
    file.write_bytes(seal_backup(altered, passphrase, rng=random.Random(7).randbytes,
                                 cost=KdfCost(pwhash.argon2id.OPSLIMIT_MIN,
                                              pwhash.argon2id.MEMLIMIT_MIN)))
    laptop = tmp_path / "laptop"
    done = restore(laptop, world, file)
    assert (done["rejected"], done["accepted"]) == (1, done["records"] - 1)
    assert done["rejects"][0]["reason"] == "bad_signature"
    text = run(tmp_path / "other", "restore", file, "--backup-passphrase-file", world["pass"])
    assert text.returncode == 0, text.stderr
    assert "Refused record" in text.stdout
    assert "signature does not match" in text.stdout


def test_a_protected_key_file_stays_protected(tmp_path: Path) -> None:
    home, laptop = tmp_path / "cy", tmp_path / "laptop"
    key_pass, backup_pass = tmp_path / "key-pass", tmp_path / "backup-pass"
    key_pass.write_text("the key's own passphrase\n")
    backup_pass.write_text("the backup's passphrase\n")
    assert run(home, "--passphrase-file", key_pass, "init", "--name", "Cy").returncode == 0
    # Backing up a protected key needs its passphrase (to name whose backup it is).
    assert "protected by a passphrase" in refused(home, "backup", tmp_path / "cy.mcb",
                                                  "--backup-passphrase-file", backup_pass)
    ok(home, "--passphrase-file", key_pass, "backup", tmp_path / "cy.mcb",
       "--backup-passphrase-file", backup_pass, "--kdf-cost", "interactive")

    done = ok(laptop, "restore", tmp_path / "cy.mcb", "--backup-passphrase-file", backup_pass)
    assert (done["name"], done["records"], done["key_file"]) == ("Cy", 0, "written")
    assert Home(laptop).key_file.read_bytes() == Home(home).key_file.read_bytes()
    assert "protected by a passphrase" in refused(laptop, "whoami")
    assert (ok(laptop, "--passphrase-file", key_pass, "whoami")
            == ok(home, "--passphrase-file", key_pass, "whoami"))


def test_passphrase_sources_and_refusals(world: dict[str, Path], tmp_path: Path) -> None:
    target = tmp_path / "ada.mcb"
    line = refused(world["ada"], "backup", target)  # stdin is not a terminal
    assert "--backup-passphrase-file" in line
    empty = tmp_path / "empty"
    empty.write_text("\n")
    assert "empty" in refused(world["ada"], "backup", target, "--backup-passphrase-file", empty)
    assert not target.exists()

    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MESHCREW_")},
           "MESHCREW_BACKUP_PASSPHRASE_FILE": str(world["pass"])}
    done = subprocess.run([sys.executable, "-m", "meshcrew", "--home", str(tmp_path / "laptop"),
                           "restore", str(world["backup"]), "--json"], env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["name"] == "Ada"


def test_a_new_backup_needs_a_passphrase_hard_to_guess(world: dict[str, Path],
                                                      tmp_path: Path) -> None:
    """A backup can be guessed at offline for ever: the CLI refuses a short or repetitive
    passphrase for a new one, in the same sentence as the app's dialog (test_tui_backup)."""
    target = tmp_path / "ada.mcb"
    for typed, says in (("pw", "needs at least 12 characters (this one has 2)"),
                        ("1234123412341234", "needs at least 5 different characters")):
        weak = tmp_path / "weak"
        weak.write_text(typed + "\n")
        line = refused(world["ada"], "backup", target, "--backup-passphrase-file", weak)
        assert says in line
        assert not target.exists()


def test_an_old_backup_with_a_short_passphrase_still_restores(world: dict[str, Path],
                                                               tmp_path: Path) -> None:
    """Backups made before the rule, with a short passphrase, open as they did."""
    home = Home(world["ada"])
    old = tmp_path / "old.mcb"
    old.write_bytes(seal_backup(home_backup.gather(home, identity.load(home.key_file), now_ms=1),
                                b"pw", rng=random.Random(5).randbytes,
                                cost=KdfCost(pwhash.argon2id.OPSLIMIT_MIN,
                                             pwhash.argon2id.MEMLIMIT_MIN)))
    short = tmp_path / "short"
    short.write_text("pw\n")
    done = ok(tmp_path / "laptop", "restore", old, "--backup-passphrase-file", short)
    assert (done["name"], done["rejected"], done["pending"]) == ("Ada", 0, 0)


def test_a_weak_passphrase_typed_is_refused_before_it_is_asked_again(
        world: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    asked: list[str] = []

    def getpass(prompt: str) -> str:
        asked.append(prompt)
        return "short"

    monkeypatch.setattr("getpass.getpass", getpass)
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.delenv("MESHCREW_BACKUP_PASSPHRASE_FILE", raising=False)
    status = main(["--home", str(world["ada"]), "backup", str(tmp_path / "ada.mcb")])
    assert status == 1
    assert asked == ["Backup passphrase (at least 12 characters): "]
    err = capsys.readouterr().err
    assert err.startswith("meshcrew: error: A backup's passphrase needs at least 12 characters")
    assert not (tmp_path / "ada.mcb").exists()


@pytest.mark.parametrize(("command", "says"), [
    ("restore missing.mcb", "Cannot read {tmp}/missing.mcb: No such file or directory."),
    ("restore records.mcr", "This is a file of exported records, not a backup"),
    ("restore {tmp}", "Cannot read {tmp}: Is a directory."),
    ("backup {tmp}", "{tmp} is a folder; give a file name in it."),
    ("backup {tmp}/no/ada.mcb", "Cannot write {tmp}/no/ada.mcb: there is no folder {tmp}/no."),
])
def test_what_can_be_told_without_the_passphrase_is_told_before_asking(
        world: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], command: str, says: str) -> None:
    """A missing or wrong file, or a folder where the backup cannot go, was found only after
    the passphrase was typed (twice, for a backup)."""
    def getpass(prompt: str) -> str:
        raise AssertionError(f"asked {prompt!r}")

    monkeypatch.setattr("getpass.getpass", getpass)
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.delenv("MESHCREW_BACKUP_PASSPHRASE_FILE", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["--home", str(world["ada"]), "export", "--all", "-o", "records.mcr"]) == 0
    capsys.readouterr()
    home = world["ada"] if command.startswith("backup") else tmp_path / "laptop"
    argv = command.format(tmp=tmp_path).split()
    assert main(["--home", str(home), *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"meshcrew: error: {says.format(tmp=tmp_path)}")
    assert len(err.splitlines()) == 1


def test_with_a_running_node_backup_works_and_restore_is_refused(fleet: Fleet,
                                                                  tmp_path: Path) -> None:
    (ada,) = fleet.make("Ada")
    passphrase = tmp_path / "pass"
    passphrase.write_text("a long and private sentence\n")
    ada.start()
    try:
        space = ada.cli("crew", "create", "Moon")["id"]
        ada.cli("checkin", space, "--text", "hello from a running node")
        wait_for(lambda: ada.status().records >= 3, what="the check-in to be stored")
        made = ada.cli("backup", str(tmp_path / "live.mcb"), "--backup-passphrase-file",
                       str(passphrase), "--kdf-cost", "interactive")
        assert (made["spaces"], made["records"]) == (1, ada.status().records)

        replica_before = ada.status().records
        key_before = ada.home.key_file.read_bytes()
        done = ada.run("restore", str(tmp_path / "live.mcb"), "--backup-passphrase-file",
                       str(passphrase), check=False)
        assert done.returncode == 1
        assert "Another meshcrew (pid " in done.stderr
        assert len(done.stderr.splitlines()) == 1
        assert ada.status().records == replica_before
        assert ada.home.key_file.read_bytes() == key_before
    finally:
        ada.stop()
    restored = ok(tmp_path / "laptop", "restore", tmp_path / "live.mcb",
                  "--backup-passphrase-file", passphrase)
    assert restored["accepted"] == made["records"]
    assert ok(tmp_path / "laptop", "log", space) == ok(ada.home.path, "log", space)


def test_small_batches_keep_chain_order_and_report_progress(world: dict[str, Path],
                                                             tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    home = Home(world["ada"])
    ada = identity.load(home.key_file)
    whole = home_backup.gather(home, ada, now_ms=1)
    steps: list[tuple[int, int]] = []
    monkeypatch.setattr(home_backup, "BATCH", 3)
    small = home_backup.gather(home, ada, now_ms=1, on_progress=lambda *step: steps.append(step))
    assert small.records == whole.records
    total = len(whole.records)
    assert steps[-1] == (total, total)
    assert [done for done, _ in steps] == sorted({done for done, _ in steps})
    assert len(steps) >= total // 3
    chains: dict[tuple[bytes, bytes], list[int]] = {}
    for raw in whole.records:
        record = decode_and_verify(raw)
        chains.setdefault((record.space_id, record.author), []).append(record.seq)
    assert all(seqs == list(range(1, len(seqs) + 1)) for seqs in chains.values())

    file = tmp_path / "small.mcb"
    file.write_bytes(seal_backup(whole, b"pw", rng=random.Random(3).randbytes,
                                 cost=KdfCost(pwhash.argon2id.OPSLIMIT_MIN,
                                              pwhash.argon2id.MEMLIMIT_MIN)))
    done = home_backup.restore(Home(tmp_path / "laptop"), file, b"pw", key_passphrase=None,
                               now_ms=wall_clock_ms())
    assert (done.accepted, done.pending, done.rejected) == (total, 0, ())


def test_the_progress_line_shows_only_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    shown, piped = Terminal(), io.StringIO()
    for stream in (shown, piped):
        line = ProgressLine(stream, "Backing up")
        line(2000, 4500)
        line(4500, 4500)
        line.end()
    assert shown.getvalue() == ("\rBacking up: 2,000/4,500 records"
                                "\rBacking up: 4,500/4,500 records\n")
    assert piped.getvalue() == ""
