"""Passphrase sealing costs at least libsodium's "moderate" argon2id (3 passes, 256 MiB).

Checked on real files made by the CLI with its defaults: a key file sealed by ``meshcrew init``
and a backup written by ``meshcrew backup`` without ``--kdf-cost``. The floor is written here
and the files are read by their documented layouts (docs/protocol.md), not through the code's
own constants: lowering those must fail these tests. Both files are then opened again, so the
stored cost is the one that sealed them.
"""

from __future__ import annotations

import struct
from pathlib import Path

import msgpack
import pytest
from nacl import pwhash

from meshcrew import identity
from meshcrew.home import Home
from test_cli_backup import ok, run

FLOOR_OPSLIMIT = 3
"""libsodium's crypto_pwhash_argon2id_OPSLIMIT_MODERATE."""
FLOOR_MEMLIMIT = 256 * 1024 * 1024
"""libsodium's crypto_pwhash_argon2id_MEMLIMIT_MODERATE: 256 MiB."""
PASSPHRASE = "a long and private sentence"

pytestmark = pytest.mark.timeout(120)


def test_the_floor_is_libsodiums_moderate() -> None:
    assert (FLOOR_OPSLIMIT, FLOOR_MEMLIMIT) == (pwhash.argon2id.OPSLIMIT_MODERATE,
                                                pwhash.argon2id.MEMLIMIT_MODERATE)


def test_a_key_file_sealed_by_init_costs_at_least_moderate(tmp_path: Path) -> None:
    passphrase = tmp_path / "pass"
    passphrase.write_text(PASSPHRASE + "\n")
    home = tmp_path / "home"
    ok(home, "init", "--name", "Ada", "--passphrase-file", passphrase)
    key_file = Home(home).key_file
    doc = msgpack.unpackb(key_file.read_bytes(), raw=False)
    assert doc["kdf"] == "argon2id"
    assert doc["ops"] >= FLOOR_OPSLIMIT
    assert doc["mem"] >= FLOOR_MEMLIMIT
    assert identity.load(key_file, passphrase=PASSPHRASE.encode()).name == "Ada"


def test_a_backup_with_the_default_cost_costs_at_least_moderate(tmp_path: Path) -> None:
    passphrase = tmp_path / "pass"
    passphrase.write_text(PASSPHRASE + "\n")
    home = tmp_path / "home"
    ok(home, "init", "--name", "Ada")
    backup = tmp_path / "ada.mcb"
    ok(home, "backup", backup, "--backup-passphrase-file", passphrase)
    magic, version, kdf, opslimit, memlimit, _salt = struct.unpack(
        ">16sBBIQ16s", backup.read_bytes()[:46])
    assert (magic, version, kdf) == (b"meshcrew-backup\x00", 1, 1)
    assert opslimit >= FLOOR_OPSLIMIT
    assert memlimit >= FLOOR_MEMLIMIT
    restored = run(tmp_path / "new", "restore", backup, "--backup-passphrase-file", passphrase)
    assert restored.returncode == 0, restored.stderr
