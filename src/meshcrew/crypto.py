"""Encryption primitives for spaces: epoch keys, key shares sealed to members, body encryption.

Three tools, all from libsodium through PyNaCl:

* **Key shares.** An epoch key is sealed to a member with libsodium's *sealed box*
  construction (``crypto_box_seal``) to the X25519 key converted from the member's ed25519
  identity key. The ephemeral key pair comes from the caller's ``rng`` so this module never
  draws randomness itself; the output is byte-compatible with ``crypto_box_seal`` and opens
  with ``crypto_box_seal_open``.
* **Bodies.** A body is encrypted with XChaCha20-Poly1305 (IETF AEAD) under a 32-byte key.
  The associated data binds the ciphertext to where it belongs (space, author, epoch), so a
  ciphertext copied into another record does not open. A *blob* is ``nonce || ciphertext``.
* **Key generation.** ``new_key(rng)`` takes 32 bytes from ``rng``; callers pass
  ``os.urandom``, tests pass a seeded generator.

Pure: no I/O, no clock, no randomness that is not passed in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_decrypt,
    crypto_aead_xchacha20poly1305_ietf_encrypt,
    crypto_box,
    crypto_box_seal_open,
    crypto_box_seed_keypair,
    crypto_sign_ed25519_pk_to_curve25519,
)
from nacl.exceptions import CryptoError
from nacl.signing import SigningKey

from meshcrew.errors import DecryptError

Rng = Callable[[int], bytes]
"""A source of random bytes: ``rng(n)`` returns ``n`` bytes (``os.urandom`` in production)."""

KEY_BYTES = 32
"""Length of an epoch key, a meta key and an X25519 key."""

NONCE_BYTES = 24
"""XChaCha20-Poly1305 nonce length: long enough to draw at random."""

MAC_BYTES = 16
SEALED_KEY_BYTES = KEY_BYTES + MAC_BYTES + KEY_BYTES
"""Length of a sealed 32-byte key: ephemeral public key, MAC, ciphertext."""

BLOB_OVERHEAD = NONCE_BYTES + MAC_BYTES
"""Bytes a blob adds to its plaintext."""


def _draw(rng: Rng, n: int) -> bytes:
    data = rng(n)
    if not isinstance(data, bytes) or len(data) != n:
        raise ValueError(f"rng({n}) must return {n} bytes")
    return data


def new_key(rng: Rng) -> bytes:
    """A fresh 32-byte symmetric key drawn from ``rng``."""
    return _draw(rng, KEY_BYTES)


def x25519_public(ed25519_public: bytes) -> bytes:
    """The X25519 public key of an ed25519 public key.

    Raises:
        DecryptError: if the bytes are not a valid ed25519 public key.
    """
    try:
        return bytes(crypto_sign_ed25519_pk_to_curve25519(ed25519_public))
    except (CryptoError, ValueError, TypeError):
        raise DecryptError("The public key cannot receive encrypted keys.") from None


def x25519_secret(signing_key: SigningKey) -> bytes:
    """The X25519 secret key of an ed25519 signing key."""
    return bytes(signing_key.to_curve25519_private_key())


def seal_to_member(member: bytes, message: bytes, rng: Rng) -> bytes:
    """Seal ``message`` so only the holder of the ed25519 key ``member`` can open it.

    The construction is libsodium's sealed box: an ephemeral X25519 key pair (from ``rng``),
    nonce = BLAKE2b-192(ephemeral public || recipient public), then ``crypto_box``.
    """
    recipient = x25519_public(member)
    eph_public, eph_secret = crypto_box_seed_keypair(_draw(rng, KEY_BYTES))
    nonce = hashlib.blake2b(eph_public + recipient, digest_size=NONCE_BYTES).digest()
    return bytes(eph_public) + bytes(crypto_box(message, nonce, recipient, eph_secret))


def open_sealed(signing_key: SigningKey, sealed: bytes) -> bytes:
    """Open a message sealed to ``signing_key``'s owner by :func:`seal_to_member`.

    Raises:
        DecryptError: if it was not sealed to this key or was altered.
    """
    public = x25519_public(bytes(signing_key.verify_key))
    try:
        return bytes(crypto_box_seal_open(sealed, public, x25519_secret(signing_key)))
    except (CryptoError, ValueError, TypeError):
        raise DecryptError("The sealed key is not for this identity, or it was altered.") from None


def encrypt(key: bytes, plaintext: bytes, associated: bytes, rng: Rng) -> bytes:
    """Encrypt and authenticate ``plaintext`` under ``key``; returns ``nonce || ciphertext``.

    ``associated`` is authenticated but not encrypted and not included: the reader must supply
    the same bytes to :func:`decrypt`.
    """
    if len(key) != KEY_BYTES:
        raise ValueError(f"a key is {KEY_BYTES} bytes")
    nonce = _draw(rng, NONCE_BYTES)
    return nonce + bytes(crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, associated,
                                                                     nonce, key))


def decrypt(key: bytes, blob: bytes, associated: bytes) -> bytes:
    """Open a blob made by :func:`encrypt` with the same key and associated data.

    Raises:
        DecryptError: if the key or associated data differ, or the blob was altered.
    """
    if len(key) != KEY_BYTES or len(blob) < BLOB_OVERHEAD:
        raise DecryptError("The encrypted body is too short or the key has the wrong length.")
    try:
        return bytes(crypto_aead_xchacha20poly1305_ietf_decrypt(
            blob[NONCE_BYTES:], associated, blob[:NONCE_BYTES], key))
    except (CryptoError, ValueError, TypeError):
        raise DecryptError("The body does not open with this key (wrong epoch, wrong space, "
                           "or altered).") from None
