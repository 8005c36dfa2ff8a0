"""The backup file: a member's identity, replica and peer book, sealed with a passphrase.

Layout (every integer big-endian; ``docs/protocol.md`` "Backup file" has the table)::

    magic     16 bytes  b"meshcrew-backup\\x00"
    version    1 byte   1
    kdf        1 byte   1 = argon2id (libsodium's crypto_pwhash_argon2id, version 1.3)
    opslimit   4 bytes  argon2id passes
    memlimit   8 bytes  argon2id memory, in bytes
    salt      16 bytes
    nonce     24 bytes  XChaCha20-Poly1305
    ciphertext          the msgpack payload map, encrypted; the first 46 bytes are its
                        associated data, so a changed header does not open either
    checksum  32 bytes  BLAKE2b-256 of everything before it

The checksum holds no secret; it is there so that a damaged or cut-short file is told apart from
a wrong passphrase, and checked before the key derivation, so a damaged cost field cannot make
the reader spend minutes or gigabytes. Authenticity comes from the AEAD: without the passphrase
nobody can make a file that opens.

The payload holds the key file exactly as stored (a passphrase-protected key stays protected),
the member's public key and name (so a restore can compare identities and say whose backup it
is without the key's passphrase), every accepted record in chain order per author, the peer
book file if there was one, and its counts.

Pure: no I/O, no clock (``created_ms``), no randomness that is not passed in (``rng``).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Any, TypeGuard

import msgpack
from nacl import pwhash
from nacl.exceptions import CryptoError

from meshcrew import identity
from meshcrew.crypto import BLOB_OVERHEAD, KEY_BYTES, Rng, decrypt, encrypt
from meshcrew.errors import BackupError, DecryptError, IdentityError

MAGIC = b"meshcrew-backup\x00"
VERSION = 1
KDF_ARGON2ID = 1
SALT_BYTES = pwhash.argon2id.SALTBYTES
CHECKSUM_BYTES = 32
PAYLOAD_FORMAT = "meshcrew-backup"

_HEADER = struct.Struct(">16sBBIQ16s")
HEADER_BYTES = _HEADER.size
"""46: magic, version, kdf, opslimit, memlimit, salt; the AEAD's associated data."""
MIN_FILE_BYTES = HEADER_BYTES + BLOB_OVERHEAD + CHECKSUM_BYTES

MIN_OPSLIMIT = pwhash.argon2id.OPSLIMIT_MIN
MAX_OPSLIMIT = 4 * pwhash.argon2id.OPSLIMIT_SENSITIVE
MIN_MEMLIMIT = pwhash.argon2id.MEMLIMIT_MIN
MAX_MEMLIMIT = pwhash.argon2id.MEMLIMIT_SENSITIVE
"""Costs a reader accepts: a file asking for more is refused before deriving anything."""

_RECORDS_FILE_MAGIC = b"meshcrew-records\x00"

MIN_PASSPHRASE_CHARS = 12
MIN_DISTINCT_CHARS = 5
"""What a new backup's passphrase needs (docs/cli.md "Backup and restore" says why): whoever
copies the file can guess offline without limit. Opening a backup never checks it, so a backup
made with a shorter passphrase before the rule still restores."""


@dataclass(frozen=True, slots=True)
class KdfCost:
    """How hard argon2id works for one file: passes and memory (bytes)."""

    opslimit: int
    memlimit: int


KDF_COSTS: dict[str, KdfCost] = {
    "interactive": KdfCost(pwhash.argon2id.OPSLIMIT_INTERACTIVE,
                           pwhash.argon2id.MEMLIMIT_INTERACTIVE),
    "moderate": KdfCost(pwhash.argon2id.OPSLIMIT_MODERATE, pwhash.argon2id.MEMLIMIT_MODERATE),
    "sensitive": KdfCost(pwhash.argon2id.OPSLIMIT_SENSITIVE,
                         pwhash.argon2id.MEMLIMIT_SENSITIVE),
}
"""Named costs (libsodium's): interactive 64 MiB, moderate 256 MiB, sensitive 1 GiB."""

DEFAULT_KDF_COST = "moderate"


@dataclass(frozen=True, slots=True)
class BackupContents:
    """What a backup holds.

    Attributes:
        created_ms: when it was made (UTC milliseconds).
        key_file: the identity key file, byte for byte.
        member_key: the member's ed25519 public key.
        member_name: the member's display name.
        spaces: ids of the spaces whose records it holds.
        records: encoded records, each author's records of a space in chain order.
        peer_book: the peer book file (``peers.json``), or None if there was none.
    """

    created_ms: int
    key_file: bytes
    member_key: bytes
    member_name: str
    spaces: tuple[bytes, ...]
    records: tuple[bytes, ...]
    peer_book: bytes | None = None

    @property
    def fingerprint(self) -> str:
        """The member's fingerprint (see :func:`meshcrew.identity.fingerprint`)."""
        return identity.fingerprint(self.member_key)


def encode_payload(contents: BackupContents) -> bytes:
    """The msgpack map that gets encrypted (field names in ``docs/protocol.md``)."""
    doc = {
        "format": PAYLOAD_FORMAT,
        "version": VERSION,
        "created_ms": contents.created_ms,
        "member": {"key": contents.member_key, "name": contents.member_name},
        "key_file": contents.key_file,
        "counts": {"spaces": len(contents.spaces), "records": len(contents.records)},
        "spaces": list(contents.spaces),
        "records": list(contents.records),
        "peer_book": contents.peer_book,
    }
    packed: bytes = msgpack.packb(doc, use_bin_type=True)
    return packed


def decode_payload(data: bytes) -> BackupContents:
    """The contents from the decrypted payload map.

    Raises:
        BackupError: if the map is not a backup payload of this version, its counts disagree
            with what it holds, or its key file is not the member it names.
    """
    damaged = BackupError("The backup opens but its contents are damaged; nothing was restored.")
    try:
        doc = msgpack.unpackb(data, raw=False)
    except (ValueError, TypeError, msgpack.UnpackException):
        raise damaged from None
    if not isinstance(doc, dict) or doc.get("format") != PAYLOAD_FORMAT:
        raise damaged
    if doc.get("version") != VERSION:
        raise BackupError(f"The backup holds contents of version {doc.get('version')!r}, which "
                          "this meshcrew does not know; upgrade meshcrew to restore it.")
    member, counts = doc.get("member"), doc.get("counts")
    if not isinstance(member, dict) or not isinstance(counts, dict):
        raise damaged
    created, key_file = doc.get("created_ms"), doc.get("key_file")
    key, name = member.get("key"), member.get("name")
    spaces, records, peers = doc.get("spaces"), doc.get("records"), doc.get("peer_book")
    if not (isinstance(created, int) and isinstance(key_file, bytes)
            and isinstance(key, bytes) and len(key) == KEY_BYTES and isinstance(name, str)
            and _all_bytes(spaces) and _all_bytes(records)
            and (peers is None or isinstance(peers, bytes))):
        raise damaged
    if counts.get("spaces") != len(spaces) or counts.get("records") != len(records):
        raise damaged
    if not key_file_matches(key_file, key):
        raise BackupError("The backup's key file is not the identity it names; nothing was "
                          "restored.")
    return BackupContents(created, key_file, key, name, tuple(spaces), tuple(records), peers)


def _all_bytes(value: Any) -> TypeGuard[list[bytes]]:
    return isinstance(value, list) and all(isinstance(item, bytes) for item in value)


def key_file_matches(key_file: bytes, member_key: bytes) -> bool:
    """Whether ``key_file`` is an identity key file of ``member_key``.

    A passphrase-protected key cannot be opened here; only its shape is checked.
    """
    try:
        doc = msgpack.unpackb(key_file, raw=False)
    except (ValueError, TypeError, msgpack.UnpackException):
        return False
    if not isinstance(doc, dict) or doc.get("format") != identity.KEY_FILE_FORMAT:
        return False
    if "seed" not in doc:
        return isinstance(doc.get("sealed"), bytes) and isinstance(doc.get("salt"), bytes)
    seed, name = doc.get("seed"), doc.get("name")
    if not isinstance(seed, bytes) or not isinstance(name, str):
        return False
    try:
        return identity.Identity.from_seed(seed, name).public_key == member_key
    except IdentityError:
        return False


def check_new_passphrase(passphrase: bytes) -> None:
    """Refuse a passphrase too easy to guess for a new backup (the CLI and the app use this).

    Raises:
        BackupError: if it is empty, shorter than :data:`MIN_PASSPHRASE_CHARS` characters, or
            made of fewer than :data:`MIN_DISTINCT_CHARS` different characters.
    """
    text = passphrase.decode("utf-8", errors="replace")
    if not text:
        raise BackupError("The backup's passphrase is empty; choose one.")
    advice = "a short sentence you will remember works well"
    if len(text) < MIN_PASSPHRASE_CHARS:
        raise BackupError(f"A backup's passphrase needs at least {MIN_PASSPHRASE_CHARS} "
                          f"characters (this one has {len(text)}): {advice}.")
    if len(set(text)) < MIN_DISTINCT_CHARS:
        raise BackupError(f"A backup's passphrase needs at least {MIN_DISTINCT_CHARS} different "
                          f"characters (this one repeats {len(set(text))}): {advice}.")


def seal_backup(contents: BackupContents, passphrase: bytes, *, cost: KdfCost,
                rng: Rng) -> bytes:
    """The whole backup file: ``contents`` encrypted under a key derived from ``passphrase``.

    Raises:
        BackupError: if the passphrase is empty or the cost is outside what readers accept.
    """
    if not passphrase:
        raise BackupError("The backup's passphrase is empty; choose one.")
    _check_cost(cost.opslimit, cost.memlimit)
    header = _HEADER.pack(MAGIC, VERSION, KDF_ARGON2ID, cost.opslimit, cost.memlimit,
                          rng(SALT_BYTES))
    key = identity.derive_key(passphrase, header[-SALT_BYTES:], opslimit=cost.opslimit,
                              memlimit=cost.memlimit)
    body = header + encrypt(key, encode_payload(contents), header, rng)
    return body + checksum(body)


def checksum(data: bytes) -> bytes:
    """BLAKE2b-256 of ``data``: the last 32 bytes of a backup file, over all the others."""
    return hashlib.blake2b(data, digest_size=CHECKSUM_BYTES).digest()


@dataclass(frozen=True, slots=True)
class BackupHeader:
    """The clear part of a backup file (readable without the passphrase)."""

    version: int
    cost: KdfCost
    salt: bytes


def read_header(data: bytes) -> BackupHeader:
    """Check a file's framing and checksum and return its header; derives nothing.

    Raises:
        BackupError: if the bytes are not a meshcrew backup, are damaged or cut short, or come
            from a newer meshcrew.
    """
    if not data:
        raise BackupError("The backup file is empty; nothing was restored.")
    if not data.startswith(MAGIC):
        if MAGIC.startswith(data):
            raise BackupError("The backup file is cut short; nothing was restored.")
        if data.startswith(_RECORDS_FILE_MAGIC):
            raise BackupError("This is a file of exported records, not a backup; bring it in "
                              "with: meshcrew import FILE")
        raise BackupError("This is not a meshcrew backup file; nothing was restored.")
    if len(data) < MIN_FILE_BYTES or checksum(data[:-CHECKSUM_BYTES]) != data[-CHECKSUM_BYTES:]:
        raise BackupError("The backup file is damaged or cut short (its checksum does not "
                          "match); nothing was restored.")
    _, version, kdf, ops, mem, salt = _HEADER.unpack_from(data)
    if version != VERSION:
        raise BackupError(f"The backup file has version {version}, which this meshcrew does "
                          "not know; upgrade meshcrew to restore it.")
    if kdf != KDF_ARGON2ID:
        raise BackupError(f"The backup file names key derivation {kdf}, which this meshcrew "
                          "does not know; upgrade meshcrew to restore it.")
    _check_cost(ops, mem)
    return BackupHeader(version, KdfCost(ops, mem), salt)


def open_backup(data: bytes, passphrase: bytes) -> BackupContents:
    """The contents of a backup file made by :func:`seal_backup`.

    Raises:
        BackupError: with one sentence, if the file is not a backup, is damaged or cut short,
            is from a newer meshcrew, or the passphrase does not open it.
    """
    header = read_header(data)
    try:
        key = identity.derive_key(passphrase, header.salt, opslimit=header.cost.opslimit,
                                  memlimit=header.cost.memlimit)
    except (ValueError, TypeError, CryptoError):
        raise BackupError("The backup file's key derivation settings are unusable; nothing "
                          "was restored.") from None
    try:
        payload = decrypt(key, data[HEADER_BYTES:-CHECKSUM_BYTES], data[:HEADER_BYTES])
    except DecryptError:
        raise BackupError("The passphrase does not open this backup; nothing was "
                          "restored.") from None
    return decode_payload(payload)


def _check_cost(ops: int, mem: int) -> None:
    if not (MIN_OPSLIMIT <= ops <= MAX_OPSLIMIT and MIN_MEMLIMIT <= mem <= MAX_MEMLIMIT):
        raise BackupError(f"The backup's key derivation cost (passes {ops}, memory {mem} "
                          f"bytes) is outside what meshcrew accepts; nothing was restored.")
