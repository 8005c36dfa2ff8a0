"""The identity: key file round trips, file safety, passphrases, fingerprints, libp2p peer ids."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from pathlib import Path

import base58
import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.id import ID
from nacl import pwhash, secret

from conftest import MakeIdentity
from hypothesis_profiles import examples
from meshcrew import identity, records
from meshcrew.errors import IdentityError
from meshcrew.home import Home


def test_save_load_round_trip(home: Home, make_identity: MakeIdentity) -> None:
    person = make_identity("Ada Lovelace")
    identity.save(person, home.key_file)
    loaded = identity.load(home.key_file)
    assert loaded.seed == person.seed
    assert loaded.name == "Ada Lovelace"
    assert loaded.public_key == person.public_key
    assert not list(home.path.glob("*.new")), "the temporary file is gone after save"


def test_key_file_is_private_on_disk(home: Home, make_identity: MakeIdentity) -> None:
    identity.save(make_identity(), home.key_file)
    assert stat.S_IMODE(home.key_file.stat().st_mode) == 0o600


def test_save_keeps_mode_0600_under_a_permissive_umask(home: Home,
                                                       make_identity: MakeIdentity) -> None:
    old = os.umask(0)
    try:
        identity.save(make_identity(), home.key_file)
    finally:
        os.umask(old)
    assert stat.S_IMODE(home.key_file.stat().st_mode) == 0o600


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_load_refuses_a_key_file_open_to_others(home: Home, make_identity: MakeIdentity,
                                                mode: int) -> None:
    identity.save(make_identity(), home.key_file)
    home.key_file.chmod(mode)
    with pytest.raises(IdentityError, match=re.escape(f"chmod 600 {home.key_file}")):
        identity.load(home.key_file)


def test_load_accepts_owner_read_only(home: Home, make_identity: MakeIdentity) -> None:
    person = make_identity()
    identity.save(person, home.key_file)
    home.key_file.chmod(0o400)
    assert identity.load(home.key_file).public_key == person.public_key


@pytest.mark.usefixtures("fast_kdf")
def test_passphrase_round_trip(home: Home, make_identity: MakeIdentity) -> None:
    person = make_identity()
    identity.save(person, home.key_file, passphrase=b"correct horse")
    raw = home.key_file.read_bytes()
    assert person.seed not in raw, "the seed is not stored in clear"
    assert identity.load(home.key_file, passphrase=b"correct horse").seed == person.seed


@pytest.mark.usefixtures("fast_kdf")
def test_wrong_passphrase_is_refused(home: Home, make_identity: MakeIdentity) -> None:
    identity.save(make_identity(), home.key_file, passphrase=b"correct horse")
    with pytest.raises(IdentityError, match="passphrase does not open"):
        identity.load(home.key_file, passphrase=b"battery staple")


@pytest.mark.usefixtures("fast_kdf")
def test_missing_passphrase_is_refused_with_the_way_to_give_it(home: Home,
                                                              make_identity: MakeIdentity) -> None:
    identity.save(make_identity(), home.key_file, passphrase=b"correct horse")
    with pytest.raises(IdentityError, match="--passphrase-file"):
        identity.load(home.key_file)


@pytest.mark.usefixtures("fast_kdf")
def test_sealed_file_records_its_kdf_cost(home: Home, make_identity: MakeIdentity) -> None:
    # The cost is stored, so raising the default later still opens old files.
    identity.save(make_identity(), home.key_file, passphrase=b"pw")
    doc = msgpack.unpackb(home.key_file.read_bytes())
    assert doc["kdf"] == "argon2id"
    assert doc["ops"] == identity.KDF_OPSLIMIT
    assert doc["mem"] == identity.KDF_MEMLIMIT


def test_plain_file_ignores_a_passphrase(home: Home, make_identity: MakeIdentity) -> None:
    person = make_identity()
    identity.save(person, home.key_file)
    assert identity.load(home.key_file, passphrase=b"unused").seed == person.seed


def _write_private(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",  # a byte msgpack never uses
        b"not msgpack at all",
        msgpack.packb([1, 2, 3]),
        msgpack.packb({"format": "something-else", "v": 1}),
        msgpack.packb({"format": identity.KEY_FILE_FORMAT, "v": 1, "name": "Ada"}),
        msgpack.packb({"format": identity.KEY_FILE_FORMAT, "v": 1, "name": 7, "seed": bytes(32)}),
        msgpack.packb({"format": identity.KEY_FILE_FORMAT, "v": 1, "name": "Ada",
                       "seed": "not bytes"}),
        msgpack.packb({"format": identity.KEY_FILE_FORMAT, "v": 1, "name": "Ada",
                       "seed": bytes(31)}),
        msgpack.packb({"format": identity.KEY_FILE_FORMAT, "v": 1, "name": "Ada",
                       "kdf": "argon2id", "ops": 1, "mem": 8192, "salt": b"short",
                       "sealed": b"x"}),
    ],
    ids=["empty", "reserved-byte", "text", "list", "other-format", "no-seed", "int-name",
         "str-seed", "short-seed", "damaged-seal"],
)
def test_damaged_key_file_is_refused(home: Home, data: bytes) -> None:
    _write_private(home.key_file, data)
    with pytest.raises(IdentityError):
        identity.load(home.key_file, passphrase=b"pw")


@pytest.mark.parametrize(
    "sealed_part",
    [
        {"salt": b"short", "sealed": bytes(72)},
        {"salt": bytes(16), "sealed": b"x"},
        {"salt": bytes(16), "sealed": bytes(72), "ops": "many"},
        {"sealed": bytes(72)},
    ],
    ids=["short-salt", "short-ciphertext", "text-cost", "no-salt"],
)
def test_damaged_seal_is_not_reported_as_a_wrong_passphrase(home: Home,
                                                            sealed_part: dict[str, object]) -> None:
    doc: dict[str, object] = {"format": identity.KEY_FILE_FORMAT, "v": 1, "name": "Ada",
                              "kdf": "argon2id", "ops": 1, "mem": 8192}
    _write_private(home.key_file, msgpack.packb({**doc, **sealed_part}))
    with pytest.raises(IdentityError, match="damaged"):
        identity.load(home.key_file, passphrase=b"pw")


def test_truncated_key_file_is_refused_as_damaged(home: Home, make_identity: MakeIdentity) -> None:
    identity.save(make_identity(), home.key_file)
    data = home.key_file.read_bytes()
    home.key_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(IdentityError, match="damaged"):
        identity.load(home.key_file)


def test_newer_key_file_version_asks_for_an_upgrade(home: Home) -> None:
    _write_private(home.key_file, msgpack.packb(
        {"format": identity.KEY_FILE_FORMAT, "v": 2, "name": "Ada", "seed": bytes(32)}))
    with pytest.raises(IdentityError, match="upgrade"):
        identity.load(home.key_file)


def test_missing_key_file_says_how_to_make_one(home: Home) -> None:
    with pytest.raises(IdentityError, match="meshcrew init"):
        identity.load(home.key_file)


def test_unreadable_key_path_is_an_identity_error(home: Home) -> None:
    home.key_file.mkdir(mode=0o700)  # a folder where the file should be
    with pytest.raises(IdentityError):
        identity.load(home.key_file)


def test_save_refuses_to_overwrite(home: Home, make_identity: MakeIdentity) -> None:
    identity.save(make_identity("Ada"), home.key_file)
    before = home.key_file.read_bytes()
    with pytest.raises(IdentityError, match="refusing to overwrite"):
        identity.save(make_identity("Bob"), home.key_file)
    assert home.key_file.read_bytes() == before


def test_save_into_a_missing_folder_is_an_identity_error(tmp_path: Path,
                                                         make_identity: MakeIdentity) -> None:
    with pytest.raises(IdentityError, match="Cannot write"):
        identity.save(make_identity(), tmp_path / "absent" / "identity.key")


@pytest.mark.parametrize(("given", "kept"), [("Ada", "Ada"), ("  Ada  ", "Ada"),
                                             ("Zoë", "Zoë"), ("x" * 64, "x" * 64)])
def test_check_name_accepts(given: str, kept: str) -> None:
    assert identity.check_name(given) == kept


def test_check_name_normalises_to_nfc() -> None:
    assert identity.check_name("Zoe\u0308") == "Zo\u00eb"


@pytest.mark.parametrize("bad", ["", "   ", "x" * 65, "a\x00b", "line\nbreak", "tab\there",
                                 "bidi\u202eoverride"])
def test_check_name_refuses(bad: str) -> None:
    with pytest.raises(IdentityError):
        identity.check_name(bad)


def test_fingerprint_format(make_identity: MakeIdentity) -> None:
    for _ in range(20):
        fpr = make_identity().fingerprint
        assert re.fullmatch(r"[A-Z2-7]{4}(-[A-Z2-7]{4}){3}", fpr), fpr


def test_fingerprint_is_stable() -> None:
    # Pinned: people compare fingerprints out loud, so the function must never change.
    assert identity.fingerprint(bytes(32)) == identity.fingerprint(bytes(32))
    person = identity.Identity.from_seed(bytes(range(32)), "Ada")
    assert person.fingerprint == PINNED_FINGERPRINT


PINNED_FINGERPRINT = "RAUS-AXJJ-2HO5-O6SC"


def test_fingerprints_differ_between_keys(make_identity: MakeIdentity) -> None:
    prints = {make_identity().fingerprint for _ in range(50)}
    assert len(prints) == 50


def test_seed_must_be_32_bytes() -> None:
    with pytest.raises(IdentityError):
        identity.Identity.from_seed(bytes(31), "Ada")


def test_repr_does_not_show_the_seed(make_identity: MakeIdentity) -> None:
    person = make_identity()
    assert person.seed.hex() not in repr(person)
    assert person.fingerprint in repr(person)


@settings(max_examples=examples(30), deadline=None)
@given(seed=st.binary(min_size=32, max_size=32))
def test_peer_id_equals_libp2p(seed: bytes) -> None:
    person = identity.Identity.from_seed(seed, "Ada")
    key_pair = create_new_key_pair(seed)
    assert key_pair.public_key.to_bytes() == person.public_key
    assert ID.from_pubkey(key_pair.public_key).to_base58() == person.peer_id
    assert identity.public_key_of_peer_id(person.peer_id) == person.public_key


@pytest.mark.parametrize(
    "bad", ["", "not base58 0OIl", "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG", "12D3KooW"])
def test_public_key_of_a_bad_peer_id_is_refused(bad: str) -> None:
    with pytest.raises(IdentityError):
        identity.public_key_of_peer_id(bad)


def _signed_bytes(raw: bytes) -> bytes:
    """What the record's signature covers, rebuilt from its encoding (see docs/protocol.md)."""
    return records.SIGN_DOMAIN + b"\x98" + raw[1 : -(records.SIG_BYTES + 2)]


def test_record_signatures_verify_across_pynacl_and_libp2p() -> None:
    seed = bytes(range(32))
    person = identity.Identity.from_seed(seed, "Ada")
    key_pair = create_new_key_pair(seed)
    rec = records.sign_record(person.signing_key, kind="checkin", space=records.NEW_SPACE,
                              seq=1, prev=None, ts=1_700_000_000_000, body=b"hello")

    # pynacl signed it; libp2p's public key verifies it.
    assert key_pair.public_key.verify(_signed_bytes(rec.raw), rec.sig)
    assert not key_pair.public_key.verify(_signed_bytes(rec.raw) + b"x", rec.sig)

    # libp2p signs the same bytes; the record built from that signature verifies here.
    libp2p_sig = key_pair.private_key.sign(_signed_bytes(rec.raw))
    raw = rec.raw[: -records.SIG_BYTES] + libp2p_sig
    assert records.decode_and_verify(raw).author == person.public_key
    assert libp2p_sig == rec.sig  # ed25519 is deterministic: one key, one signature


# What a person reads when the key or its file is refused: each sentence whole (mutation
# testing found them checked only by a word, or not at all).

_ED25519_PEER_ID = identity.peer_id_of(bytes(range(32)))
_RSA_TAG_PEER_ID = str(base58.b58encode(bytes([0x00, 0x24, 0x08, 0x00, 0x12, 0x20]) +
                                        bytes(32)).decode("ascii"))


@pytest.mark.parametrize(("call", "message"), [
    (lambda: identity.check_name(" "),
     "The name is empty; give the name your crewmates know you by, such as Ada."),
    (lambda: identity.check_name("x" * 65), "The name is longer than 64 characters."),
    (lambda: identity.check_name("a\x00b"), "The name contains control characters."),
    (lambda: identity.Identity.from_seed(bytes(31), "Ada"), "A seed is 32 bytes."),
    (lambda: identity.public_key_of_peer_id("0OIl"), "'0OIl' is not a peer id."),
    (lambda: identity.public_key_of_peer_id(_ED25519_PEER_ID[:-2]),
     f"{_ED25519_PEER_ID[:-2]!r} is not an ed25519 peer id."),
    # The right length, with another key type's tag (0 is RSA in libp2p's PublicKey).
    (lambda: identity.public_key_of_peer_id(_RSA_TAG_PEER_ID),
     f"{_RSA_TAG_PEER_ID!r} is not an ed25519 peer id."),
], ids=["empty-name", "long-name", "control-name", "short-seed", "not-base58", "short-peer-id",
        "other-key-type"])
def test_refusals_say_what_is_wrong(call: Callable[[], object], message: str) -> None:
    with pytest.raises(IdentityError) as refused:
        call()
    assert str(refused.value) == message


@pytest.mark.usefixtures("fast_kdf")
def test_passphrase_refusals_name_the_file_and_the_way_out(home: Home,
                                                          make_identity: MakeIdentity) -> None:
    identity.save(make_identity(), home.key_file, passphrase=b"correct horse")
    path = home.key_file
    with pytest.raises(IdentityError) as wrong:
        identity.load(path, passphrase=b"battery staple")
    assert str(wrong.value) == "The passphrase does not open this key file."
    with pytest.raises(IdentityError) as missing:
        identity.load(path)
    assert str(missing.value) == (f"The key file {path} is protected by a passphrase; give it "
                                  "with --passphrase-file or MESHCREW_PASSPHRASE_FILE.")
    doc = msgpack.unpackb(path.read_bytes())
    _write_private(path, msgpack.packb({**doc, "salt": b"short"}))
    with pytest.raises(IdentityError) as damaged:
        identity.load(path, passphrase=b"correct horse")
    assert str(damaged.value) == f"The key file {path} is damaged (its sealed part)."


def test_file_refusals_name_the_file_and_the_cause(home: Home, tmp_path: Path,
                                                  make_identity: MakeIdentity) -> None:
    path = home.key_file
    _write_private(path, msgpack.packb(
        {"format": identity.KEY_FILE_FORMAT, "v": 2, "name": "Ada", "seed": bytes(32)}))
    with pytest.raises(IdentityError) as newer:
        identity.load(path)
    assert str(newer.value) == (f"The key file {path} has version 2, which this meshcrew does "
                                "not know; upgrade meshcrew.")
    path.unlink()
    path.mkdir(mode=0o700)  # a folder where the file should be
    with pytest.raises(IdentityError) as unreadable:
        identity.load(path)
    assert str(unreadable.value) == f"Cannot read the key file {path}: Is a directory."
    nowhere = tmp_path / "absent" / "identity.key"
    with pytest.raises(IdentityError) as unwritable:
        identity.save(make_identity(), nowhere)
    assert str(unwritable.value) == (f"Cannot write the key file {nowhere}: "
                                     "No such file or directory.")


def test_save_never_writes_through_a_link_at_the_key_path(home: Home,
                                                          make_identity: MakeIdentity) -> None:
    """A name that does not exist as a file but is taken (here a dangling symlink: the same
    path as a key file appearing between the check and the write) is not overwritten, nor
    followed, and no temporary file is left behind."""
    target = home.path / "elsewhere"
    home.key_file.symlink_to(target)
    with pytest.raises(IdentityError) as refused:
        identity.save(make_identity(), home.key_file)
    assert str(refused.value) == (f"A key file already exists at {home.key_file}; "
                                  "refusing to overwrite it.")
    assert home.key_file.is_symlink()
    assert not target.exists()
    assert sorted(p.name for p in home.path.iterdir()) == [home.key_file.name]


@pytest.mark.usefixtures("fast_kdf")
def test_is_sealed_tells_a_passphrase_key_file_from_anything_else(
        home: Home, tmp_path: Path, make_identity: MakeIdentity) -> None:
    """The app's restore dialog asks for the key's own passphrase only when this says so."""
    sealed, plain = tmp_path / "sealed.key", tmp_path / "plain.key"
    identity.save(make_identity(), sealed, passphrase=b"pw")
    identity.save(make_identity(), plain)
    assert identity.is_sealed(sealed)
    assert not identity.is_sealed(plain)
    assert not identity.is_sealed(tmp_path / "missing.key")
    junk, listed = tmp_path / "junk.key", tmp_path / "list.key"
    junk.write_bytes(b"\xc1 not msgpack")
    listed.write_bytes(msgpack.packb(["sealed"]))
    assert not identity.is_sealed(junk)
    assert not identity.is_sealed(listed)


@pytest.mark.usefixtures("fast_kdf")
def test_the_sealed_seed_opens_with_the_costs_the_file_records(
        home: Home, make_identity: MakeIdentity) -> None:
    """docs/protocol.md's key file: argon2id at the file's own ops and mem over its salt gives
    the secretbox key. Opened here without meshcrew's code, as another implementation would."""
    person = make_identity()
    identity.save(person, home.key_file, passphrase=b"correct horse")
    doc = msgpack.unpackb(home.key_file.read_bytes())
    key = pwhash.argon2id.kdf(secret.SecretBox.KEY_SIZE, b"correct horse", doc["salt"],
                              opslimit=doc["ops"], memlimit=doc["mem"])
    assert secret.SecretBox(key).decrypt(doc["sealed"]) == person.seed


def test_generate_makes_a_new_key_each_time_under_the_name_given() -> None:
    first, second = identity.Identity.generate(" Ada "), identity.Identity.generate("Ada")
    assert first.name == second.name == "Ada"
    assert first.public_key != second.public_key
    assert len(first.seed) == identity.SEED_BYTES
    assert identity.Identity.from_seed(first.seed, "Ada").public_key == first.public_key
    with pytest.raises(IdentityError):
        identity.Identity.generate("")
