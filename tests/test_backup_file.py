"""The backup file format (meshcrew.backup): sealing, opening, and every way a file is refused.

Pure tests: no home folder, no replica; argon2id at its minimum cost, which the file records.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import struct
import subprocess
import sys
from pathlib import Path

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl import pwhash

from hypothesis_profiles import examples
from meshcrew import backup, identity
from meshcrew.backup import (
    BackupContents,
    KdfCost,
    check_new_passphrase,
    open_backup,
    read_header,
    seal_backup,
)
from meshcrew.errors import BackupError

CHEAP = KdfCost(pwhash.argon2id.OPSLIMIT_MIN, pwhash.argon2id.MEMLIMIT_MIN)
PASSPHRASE = b"correct horse battery staple"


def key_file_of(person: identity.Identity) -> bytes:
    """A plain key file as identity.save writes it."""
    packed: bytes = msgpack.packb({"format": identity.KEY_FILE_FORMAT,
                                   "v": identity.KEY_FILE_VERSION, "name": person.name,
                                   "seed": person.seed}, use_bin_type=True)
    return packed


ADA = identity.Identity.from_seed(hashlib.sha256(b"backup test ada").digest(), "Ada")
CONTENTS = BackupContents(
    created_ms=1_767_571_200_000, key_file=key_file_of(ADA), member_key=ADA.public_key,
    member_name="Ada", spaces=(b"\x01" * 32,), records=(b"record one", b"record two"),
    peer_book=b'{"version": 1, "peers": {}}')


def sealed(contents: BackupContents = CONTENTS, seed: int = 1) -> bytes:
    return seal_backup(contents, PASSPHRASE, cost=CHEAP, rng=random.Random(seed).randbytes)


def with_fresh_checksum(data: bytes) -> bytes:
    """``data`` (minus its old checksum) with the checksum it would have if written so."""
    body = data[: -backup.CHECKSUM_BYTES]
    return body + backup.checksum(body)


def test_round_trip_keeps_every_field() -> None:
    data = sealed()
    assert data.startswith(backup.MAGIC)
    assert open_backup(data, PASSPHRASE) == CONTENTS
    header = read_header(data)
    assert (header.version, header.cost) == (backup.VERSION, CHEAP)
    assert len(data) == (backup.HEADER_BYTES + 24 + len(backup.encode_payload(CONTENTS)) + 16
                         + backup.CHECKSUM_BYTES)


def test_nothing_of_the_contents_is_in_the_clear() -> None:
    data = sealed()
    for secret in (ADA.seed, ADA.public_key, b"record one", b"Ada", b"peers"):
        assert secret not in data


def test_a_protected_key_file_is_carried_as_it_is() -> None:
    protected: bytes = msgpack.packb({"format": identity.KEY_FILE_FORMAT, "v": 1, "name": "Ada",
                                      "kdf": "argon2id", "ops": 1, "mem": 8192,
                                      "salt": b"s" * 16, "sealed": b"x" * 72},
                                     use_bin_type=True)
    contents = BackupContents(1, protected, ADA.public_key, "Ada", (), (), None)
    assert open_backup(sealed(contents), PASSPHRASE).key_file == protected


def test_wrong_passphrase_says_so() -> None:
    with pytest.raises(BackupError, match="passphrase does not open"):
        open_backup(sealed(), b"battery staple")


def test_an_empty_passphrase_is_refused() -> None:
    with pytest.raises(BackupError, match="empty"):
        seal_backup(CONTENTS, b"", cost=CHEAP, rng=random.Random(0).randbytes)


@pytest.mark.parametrize(("passphrase", "says"), [
    ("", "is empty"),
    ("eleven char", "at least 12 characters (this one has 11)"),
    ("ééééé", "this one has 5"),  # characters, not bytes (10 bytes)
    ("aaaaaaaaaaaaaaaaaaaa", "at least 5 different characters (this one repeats 1)"),
    ("abcdabcdabcdabcd", "(this one repeats 4)"),
])
def test_a_new_backups_passphrase_too_easy_to_guess_is_refused(passphrase: str,
                                                              says: str) -> None:
    with pytest.raises(BackupError, match=re.escape(says)):
        check_new_passphrase(passphrase.encode())


@pytest.mark.parametrize("passphrase", ["twelve chars", "river stones", "é à ô ü ß ç ñ"])
def test_twelve_characters_of_five_kinds_are_enough(passphrase: str) -> None:
    check_new_passphrase(passphrase.encode())


@settings(max_examples=examples(150), deadline=None)
@given(st.data())
def test_any_flipped_bit_is_refused_as_damage(data: st.DataObject) -> None:
    original = sealed()
    at = data.draw(st.integers(0, len(original) - 1), label="position")
    bit = data.draw(st.integers(0, 7), label="bit")
    flipped = bytearray(original)
    flipped[at] ^= 1 << bit
    with pytest.raises(BackupError) as refused:
        open_backup(bytes(flipped), PASSPHRASE)
    if at >= len(backup.MAGIC):
        assert "damaged or cut short" in str(refused.value)


@settings(max_examples=examples(60), deadline=None)
@given(st.data())
def test_a_changed_byte_with_a_recomputed_checksum_does_not_open(data: st.DataObject) -> None:
    """The checksum is no secret: the AEAD (header as associated data) is what authenticates."""
    original = sealed()
    # Past magic, version, kdf and costs (a changed cost is refused by its bounds or derives
    # another key; both refuse) and before the checksum.
    at = data.draw(st.integers(len(backup.MAGIC) + 2, len(original) - backup.CHECKSUM_BYTES - 1))
    changed = bytearray(original)
    changed[at] ^= 0x40
    with pytest.raises(BackupError, match=r"passphrase does not open|outside what meshcrew"):
        open_backup(with_fresh_checksum(bytes(changed)), PASSPHRASE)


@pytest.mark.parametrize("keep", [0, 1, 15, 16, 50, -1, -33, None])
def test_a_cut_short_file_is_refused(keep: int | None) -> None:
    original = sealed()
    cut = original[: len(original) // 2 if keep is None else keep]
    with pytest.raises(BackupError, match=r"cut short|not a meshcrew backup|empty"):
        open_backup(cut, PASSPHRASE)


def test_foreign_files_are_named() -> None:
    with pytest.raises(BackupError, match="not a meshcrew backup"):
        open_backup(b"PK\x03\x04 a zip file, say" * 10, PASSPHRASE)
    with pytest.raises(BackupError, match="exported records"):
        open_backup(b"meshcrew-records\x00\x01" + bytes(200), PASSPHRASE)


def test_a_newer_version_asks_for_an_upgrade() -> None:
    data = bytearray(sealed())
    data[len(backup.MAGIC)] = 2
    with pytest.raises(BackupError, match="upgrade meshcrew"):
        open_backup(with_fresh_checksum(bytes(data)), PASSPHRASE)


def test_a_huge_cost_is_refused_before_deriving() -> None:
    data = bytearray(sealed())
    struct.pack_into(">Q", data, len(backup.MAGIC) + 6, 2**40)  # memlimit: 1 TiB
    with pytest.raises(BackupError, match="outside what meshcrew accepts"):
        open_backup(with_fresh_checksum(bytes(data)), PASSPHRASE)
    with pytest.raises(BackupError, match="outside"):
        seal_backup(CONTENTS, PASSPHRASE, cost=KdfCost(1, 2**40), rng=random.Random(0).randbytes)


def test_a_key_file_of_someone_else_is_refused() -> None:
    bob = identity.Identity.from_seed(hashlib.sha256(b"backup test bob").digest(), "Bob")
    lying = BackupContents(1, key_file_of(bob), ADA.public_key, "Ada", (), (), None)
    with pytest.raises(BackupError, match="not the identity it names"):
        open_backup(sealed(lying), PASSPHRASE)


def test_counts_that_disagree_are_damage() -> None:
    doc = msgpack.unpackb(backup.encode_payload(CONTENTS), raw=False)
    doc["counts"]["records"] = 3
    with pytest.raises(BackupError, match="contents are damaged"):
        backup.decode_payload(msgpack.packb(doc, use_bin_type=True))


def test_the_format_module_is_pure() -> None:
    code = ("import json, sys, meshcrew.backup; "
            "print(json.dumps(sorted({m.partition('.')[0] for m in sys.modules})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    loaded = set(json.loads(done.stdout))
    assert "meshcrew" in loaded
    assert not loaded & {"trio", "libp2p", "sqlite3", "_sqlite3", "textual"}


def test_docs_describe_this_layout() -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "protocol.md").read_text()
    section = doc[doc.index("## Backup file"):]
    assert backup.HEADER_BYTES == 46
    assert backup.MIN_FILE_BYTES == 118
    assert "at least 118" in section
    assert f"opslimit 1 to {backup.MAX_OPSLIMIT}" in section
    assert backup.MAX_MEMLIMIT == 2**30
    assert "memlimit 8 KiB to 1 GiB" in section
    for key in msgpack.unpackb(backup.encode_payload(CONTENTS), raw=False):
        assert f"| `{key}` |" in section
    assert {"interactive": KdfCost(2, 64 << 20),
                                "moderate": KdfCost(3, 256 << 20),
                                "sensitive": KdfCost(4, 1 << 30)} == backup.KDF_COSTS
    for shown in ("`interactive` (2 passes, 64 MiB)", "`moderate` (3, 256 MiB; the default)",
                  "`sensitive` (4, 1 GiB)"):
        assert shown in section
