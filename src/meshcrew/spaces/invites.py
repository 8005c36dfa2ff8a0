"""Invite codes and the proof a joiner makes with one.

An invite is a one-time ed25519 key pair made from a 32-byte secret seed. The ``invite`` record
holds only the public key; the seed travels in the invite code, person to person. To join, the
joiner signs ``PROOF_DOMAIN || space id || joiner key`` with the invite key: only someone who
holds the code can make it, and it is bound to the joiner's key, so nobody can lift another
person's proof into a join of their own.

An invite code is one line::

    mc1-<base32 of (msgpack [1, space id, invite id, secret, [address, ...]] || checksum)>

The checksum is the first 4 bytes of a BLAKE2b hash of the msgpack bytes, so a mistyped or
truncated code reads as "this code is damaged" instead of failing later on the network. Base32
is lowercase without padding and decoding ignores case, spaces and line breaks.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgpack
from nacl.exceptions import BadSignatureError, CryptoError
from nacl.signing import SigningKey, VerifyKey

from meshcrew.errors import InviteCodeError
from meshcrew.records import ID_BYTES

CODE_PREFIX = "mc1-"
CODE_VERSION = 1
SECRET_BYTES = 32
CHECKSUM_BYTES = 4
MAX_ADDRS = 8
MAX_ADDR_CHARS = 256
PROOF_DOMAIN = b"meshcrew/invite-proof/v1\x00"
_CHECK_PERSON = b"meshcrew.invite"
_DAMAGED = "This code is damaged: check that it was copied whole and unchanged."


@dataclass(frozen=True, slots=True)
class InviteCode:
    """What an invite code carries."""

    space_id: bytes
    invite_id: bytes
    """The id of the ``invite`` record the join names."""
    secret: bytes
    """The invite key's seed: whoever holds it may join once (never log it)."""
    addrs: tuple[str, ...] = ()
    """The inviter's multiaddrs when the code was made (may be empty)."""

    def __post_init__(self) -> None:
        if len(self.space_id) != ID_BYTES or len(self.invite_id) != ID_BYTES:
            raise ValueError(f"space and invite ids are {ID_BYTES} bytes")
        if len(self.secret) != SECRET_BYTES:
            raise ValueError(f"an invite secret is {SECRET_BYTES} bytes")
        if len(self.addrs) > MAX_ADDRS or any(
                not isinstance(a, str) or len(a) > MAX_ADDR_CHARS for a in self.addrs):
            raise ValueError(f"at most {MAX_ADDRS} addresses of {MAX_ADDR_CHARS} characters")

    def __repr__(self) -> str:
        return (f"InviteCode(space_id={self.space_id.hex()[:12]}…, "
                f"invite_id={self.invite_id.hex()[:12]}…, addrs={self.addrs!r})")

    @property
    def public_key(self) -> bytes:
        """The invite's public key (what the ``invite`` record holds)."""
        return invite_public_key(self.secret)


def invite_public_key(secret: bytes) -> bytes:
    """The public key of the invite key made from ``secret``."""
    return bytes(SigningKey(secret).verify_key)


def prove_invite(secret: bytes, space_id: bytes, joiner: bytes) -> bytes:
    """The proof a joiner puts in a join: the invite key's signature over (space, joiner)."""
    return bytes(SigningKey(secret).sign(PROOF_DOMAIN + space_id + joiner).signature)


def verify_invite_proof(public_key: bytes, space_id: bytes, joiner: bytes, proof: bytes) -> bool:
    """Whether ``proof`` was made with the secret of ``public_key`` for (space, joiner)."""
    try:
        VerifyKey(public_key).verify(PROOF_DOMAIN + space_id + joiner, proof)
    except (BadSignatureError, CryptoError, ValueError, TypeError):
        return False
    return True


def _checksum(payload: bytes, person: bytes) -> bytes:
    return hashlib.blake2b(payload, digest_size=CHECKSUM_BYTES, person=person).digest()


def encode_checked(prefix: str, person: bytes, fields: list[Any]) -> str:
    """A one-line code: ``prefix`` + lowercase base32 (unpadded) of msgpack ``fields`` and a
    BLAKE2b checksum personalised with ``person`` (invite codes, and devices' link codes)."""
    payload: bytes = msgpack.packb(fields, use_bin_type=True)
    text = base64.b32encode(payload + _checksum(payload, person)).decode("ascii")
    return prefix + text.rstrip("=").lower()


def decode_checked(text: str, prefix: str, person: bytes, *, not_ours: str,
                   damaged: str) -> list[Any]:
    """The fields of a code made by :func:`encode_checked` (spaces and case are ignored).

    Raises:
        InviteCodeError: ``not_ours`` if the text does not start with ``prefix``, ``damaged``
            on any typo, cut or change (or fields that are not a list starting with a number).
    """
    compact = "".join(text.split()).lower()
    if not compact.startswith(prefix):
        raise InviteCodeError(not_ours)
    body = compact[len(prefix):].upper()
    try:
        raw = base64.b32decode(body + "=" * (-len(body) % 8))
    except ValueError:
        raise InviteCodeError(damaged) from None
    # The last character carries unused bits that decoding ignores; a typo there must still
    # count as damage, so the text has to be the one encoding of the bytes.
    canonical = base64.b32encode(raw).decode("ascii").rstrip("=")
    payload, check = raw[:-CHECKSUM_BYTES], raw[-CHECKSUM_BYTES:]
    if canonical != body or len(raw) <= CHECKSUM_BYTES or _checksum(payload, person) != check:
        raise InviteCodeError(damaged)
    try:
        fields = msgpack.unpackb(payload, raw=False, use_list=True)
    except (ValueError, TypeError, OverflowError, msgpack.UnpackException):
        raise InviteCodeError(damaged) from None
    if not isinstance(fields, list) or not fields or type(fields[0]) is not int:
        raise InviteCodeError(damaged)
    return fields


def encode_invite_code(code: InviteCode) -> str:
    """The one-line text of an invite code."""
    return encode_checked(CODE_PREFIX, _CHECK_PERSON, [
        CODE_VERSION, code.space_id, code.invite_id, code.secret, list(code.addrs)])


def decode_invite_code(text: str) -> InviteCode:
    """Read an invite code made by :func:`encode_invite_code`.

    Raises:
        InviteCodeError: "this code is damaged" on any typo, cut or change; another sentence
            if the text is not a meshcrew invite code at all or comes from a newer version.
    """
    fields = decode_checked(text, CODE_PREFIX, _CHECK_PERSON, damaged=_DAMAGED, not_ours=(
        f"This is not a meshcrew invite code (they start with {CODE_PREFIX!r})."))
    if fields[0] != CODE_VERSION:
        raise InviteCodeError("This invite code was made by a newer meshcrew; upgrade to use it.")
    return _code_from_fields(fields[1:])


def _code_from_fields(fields: Sequence[object]) -> InviteCode:
    if len(fields) != 4:
        raise InviteCodeError(_DAMAGED)
    space_id, invite_id, secret, addrs = fields
    if not (isinstance(space_id, bytes) and isinstance(invite_id, bytes)
            and isinstance(secret, bytes) and isinstance(addrs, list)):
        raise InviteCodeError(_DAMAGED)
    try:
        return InviteCode(space_id, invite_id, secret, tuple(addrs))
    except ValueError:
        raise InviteCodeError(_DAMAGED) from None
