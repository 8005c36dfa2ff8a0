"""The member identity: one ed25519 key that signs records and is the libp2p peer identity.

The key lives in a file of mode 0600 in the home folder (see :mod:`meshcrew.home`). A file that
others can read is refused. The seed may be sealed with a passphrase (argon2id + secretbox).

No network, no database: only the key file is read or written here.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import base58
import msgpack
from nacl import pwhash, secret
from nacl.exceptions import CryptoError
from nacl.signing import SigningKey, VerifyKey

from meshcrew.errors import IdentityError
from meshcrew.files import write_private

KEY_FILE_FORMAT = "meshcrew-identity"
KEY_FILE_VERSION = 1
SEED_BYTES = 32
MAX_NAME_CHARS = 64
FINGERPRINT_BYTES = 10
"""80 bits: 16 base32 characters, shown as four groups of four."""

KDF_OPSLIMIT = pwhash.argon2id.OPSLIMIT_MODERATE
KDF_MEMLIMIT = pwhash.argon2id.MEMLIMIT_MODERATE

# libp2p peer id of an ed25519 key: identity multihash (0x00, length) of the protobuf
# PublicKey {Type: Ed25519 (1), Data: 32 bytes}, in base58btc.
_PEER_ID_PREFIX = bytes([0x00, 0x24, 0x08, 0x01, 0x12, 0x20])


def check_name(name: str) -> str:
    """Return a display name cleaned of outer whitespace, or raise IdentityError."""
    name = unicodedata.normalize("NFC", name).strip()
    if not name:
        raise IdentityError("The name is empty; give the name your crewmates know you by, "
                            "such as Ada.")
    if len(name) > MAX_NAME_CHARS:
        raise IdentityError(f"The name is longer than {MAX_NAME_CHARS} characters.")
    if any(unicodedata.category(c).startswith("C") for c in name):
        raise IdentityError("The name contains control characters.")
    return name


def fingerprint(public_key: bytes) -> str:
    """A short, human-comparable fingerprint of a public key, e.g. ``ABCD-EFGH-IJKL-MNOP``."""
    digest = hashlib.blake2b(public_key, digest_size=FINGERPRINT_BYTES,
                             person=b"meshcrew.fpr").digest()
    text = base64.b32encode(digest).decode("ascii")
    return "-".join(text[i : i + 4] for i in range(0, len(text), 4))


def peer_id_of(public_key: bytes) -> str:
    """The libp2p peer id (base58btc) of an ed25519 public key."""
    return str(base58.b58encode(_PEER_ID_PREFIX + public_key).decode("ascii"))


def public_key_of_peer_id(peer_id: str) -> bytes:
    """The ed25519 public key inside a libp2p peer id, or raise IdentityError."""
    try:
        raw = base58.b58decode(peer_id)
    except ValueError:
        raise IdentityError(f"{peer_id!r} is not a peer id.") from None
    if len(raw) != len(_PEER_ID_PREFIX) + 32 or not raw.startswith(_PEER_ID_PREFIX):
        raise IdentityError(f"{peer_id!r} is not an ed25519 peer id.")
    return raw[len(_PEER_ID_PREFIX) :]


@dataclass(frozen=True)
class Identity:
    """A member's key pair and display name."""

    signing_key: SigningKey
    name: str

    @classmethod
    def from_seed(cls, seed: bytes, name: str) -> Identity:
        """The identity whose key is made from a 32-byte seed."""
        if len(seed) != SEED_BYTES:
            raise IdentityError(f"A seed is {SEED_BYTES} bytes.")
        return cls(SigningKey(seed), check_name(name))

    @classmethod
    def generate(cls, name: str) -> Identity:
        """A new identity from a fresh random seed."""
        return cls.from_seed(os.urandom(SEED_BYTES), name)

    @property
    def seed(self) -> bytes:
        """The 32-byte secret seed (never log it)."""
        return bytes(self.signing_key)

    @property
    def public_key(self) -> bytes:
        """The 32-byte ed25519 public key: the member's id everywhere."""
        return bytes(self.signing_key.verify_key)

    @property
    def verify_key(self) -> VerifyKey:
        """The public half as a pynacl key."""
        return self.signing_key.verify_key

    @property
    def fingerprint(self) -> str:
        """See :func:`fingerprint`."""
        return fingerprint(self.public_key)

    @property
    def peer_id(self) -> str:
        """The libp2p peer id of this identity."""
        return peer_id_of(self.public_key)

    def __repr__(self) -> str:
        return f"Identity(name={self.name!r}, fingerprint={self.fingerprint!r})"


def derive_key(passphrase: bytes, salt: bytes, *, opslimit: int, memlimit: int) -> bytes:
    """The 32-byte key argon2id derives from a passphrase and a 16-byte salt.

    Seals the key file, and backup files (:mod:`meshcrew.backup`).

    Raises:
        ValueError, TypeError, CryptoError: if the salt or the costs are out of range (pynacl's
            own errors; callers translate them).
    """
    return bytes(pwhash.argon2id.kdf(secret.SecretBox.KEY_SIZE, passphrase, salt,
                                     opslimit=opslimit, memlimit=memlimit))


def _seal(seed: bytes, passphrase: bytes) -> dict[str, Any]:
    salt = os.urandom(pwhash.argon2id.SALTBYTES)
    key = derive_key(passphrase, salt, opslimit=KDF_OPSLIMIT, memlimit=KDF_MEMLIMIT)
    return {"kdf": "argon2id", "ops": KDF_OPSLIMIT, "mem": KDF_MEMLIMIT, "salt": salt,
            "sealed": bytes(secret.SecretBox(key).encrypt(seed))}


def _unseal(doc: dict[str, Any], passphrase: bytes | None, path: Path) -> bytes:
    if passphrase is None:
        raise IdentityError(f"The key file {path} is protected by a passphrase; give it with "
                            "--passphrase-file or MESHCREW_PASSPHRASE_FILE.")
    try:
        key = derive_key(passphrase, doc["salt"], opslimit=doc["ops"], memlimit=doc["mem"])
        return bytes(secret.SecretBox(key).decrypt(doc["sealed"]))
    except (KeyError, TypeError, ValueError):
        # Before CryptoError: pynacl's ValueError/TypeError (a bad salt or cost) are CryptoErrors
        # too, and a damaged file must not be reported as a wrong passphrase.
        raise IdentityError(f"The key file {path} is damaged (its sealed part).") from None
    except CryptoError:
        raise IdentityError("The passphrase does not open this key file.") from None


def save(identity: Identity, path: Path, *, passphrase: bytes | None = None) -> None:
    """Write the identity to a new key file of mode 0600; never overwrites an existing one.

    The file is written beside its final name, flushed to disk and renamed, so a crash leaves
    either no key file or a complete one.
    """
    doc: dict[str, Any] = {"format": KEY_FILE_FORMAT, "v": KEY_FILE_VERSION, "name": identity.name}
    if passphrase is None:
        doc["seed"] = identity.seed
    else:
        doc.update(_seal(identity.seed, passphrase))
    data: bytes = msgpack.packb(doc, use_bin_type=True)
    if path.exists():
        raise IdentityError(f"A key file already exists at {path}; refusing to overwrite it.")
    try:
        write_private(path, data, overwrite=False)  # if one appeared meanwhile: never replace it
    except FileExistsError:
        raise IdentityError(f"A key file already exists at {path}; "
                            "refusing to overwrite it.") from None
    except OSError as exc:
        raise IdentityError(f"Cannot write the key file {path}: {exc.strerror or exc}.") from None


def is_sealed(path: Path) -> bool:
    """Whether the key file at ``path`` is protected by a passphrase (False if unreadable)."""
    try:
        doc = msgpack.unpackb(path.read_bytes(), raw=False)
    except (OSError, ValueError, msgpack.UnpackException):
        return False
    return isinstance(doc, dict) and "sealed" in doc


def check_mode(path: Path) -> None:
    """Raise IdentityError if a key file can be read or written by anyone but its owner."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise IdentityError(f"The key file {path} is open to others (mode {mode:04o}); "
                            f"run: chmod 600 {path}")


def load(path: Path, *, passphrase: bytes | None = None) -> Identity:
    """Read the identity from its key file.

    Raises:
        IdentityError: if the file is missing, open to others, damaged, or locked.
    """
    if not path.exists():
        raise IdentityError(f"No identity at {path}; create one with: meshcrew init --name NAME")
    check_mode(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise IdentityError(f"Cannot read the key file {path}: {exc.strerror or exc}.") from None
    return read_key_file(data, path, passphrase=passphrase)


def read_key_file(data: bytes, path: Path, *, passphrase: bytes | None = None) -> Identity:
    """The identity in the bytes of a key file (read from ``path``, or kept in a backup of it:
    ``path`` names it in the errors).

    Raises:
        IdentityError: if they are damaged or locked.
    """
    damaged = IdentityError(f"The key file {path} is damaged; restore it from a backup.")
    try:
        doc = msgpack.unpackb(data, raw=False)
    except (ValueError, TypeError, msgpack.UnpackException):
        raise damaged from None
    if not isinstance(doc, dict) or doc.get("format") != KEY_FILE_FORMAT:
        raise damaged
    if doc.get("v") != KEY_FILE_VERSION:
        raise IdentityError(f"The key file {path} has version {doc.get('v')!r}, "
                            "which this meshcrew does not know; upgrade meshcrew.")
    name = doc.get("name")
    seed = doc.get("seed") if "seed" in doc else _unseal(doc, passphrase, path)
    if not isinstance(name, str) or not isinstance(seed, bytes):
        raise damaged
    return Identity.from_seed(seed, name)
