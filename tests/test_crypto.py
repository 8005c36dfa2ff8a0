"""meshcrew.crypto: sealed key shares and AEAD bodies, tried with real keys and real failures."""

from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.public import PrivateKey, SealedBox
from nacl.signing import SigningKey

from hypothesis_profiles import examples
from meshcrew import crypto
from meshcrew.errors import DecryptError


def key_of(name: str) -> SigningKey:
    return SigningKey(hashlib.sha256(name.encode()).digest())


def rng_of(seed: int) -> crypto.Rng:
    return random.Random(seed).randbytes


ADA, BO = key_of("ada"), key_of("bo")


def test_sealed_share_opens_for_its_member_only() -> None:
    key = crypto.new_key(rng_of(1))
    sealed = crypto.seal_to_member(bytes(ADA.verify_key), key, rng_of(2))
    assert len(sealed) == crypto.SEALED_KEY_BYTES
    assert crypto.open_sealed(ADA, sealed) == key
    with pytest.raises(DecryptError):
        crypto.open_sealed(BO, sealed)


def test_sealed_share_is_a_libsodium_sealed_box() -> None:
    """The rng-driven construction is byte-compatible with crypto_box_seal."""
    sealed = crypto.seal_to_member(bytes(BO.verify_key), b"secret", rng_of(3))
    box = SealedBox(PrivateKey(crypto.x25519_secret(BO)))
    assert box.decrypt(sealed) == b"secret"
    # and the other way round: a libsodium sealed box opens with open_sealed
    theirs = SealedBox(PrivateKey(crypto.x25519_secret(BO)).public_key).encrypt(b"hi")
    assert crypto.open_sealed(BO, bytes(theirs)) == b"hi"


def test_sealing_is_a_function_of_rng() -> None:
    member = bytes(ADA.verify_key)
    assert crypto.seal_to_member(member, b"k", rng_of(5)) == crypto.seal_to_member(
        member, b"k", rng_of(5))
    assert crypto.seal_to_member(member, b"k", rng_of(5)) != crypto.seal_to_member(
        member, b"k", rng_of(6))


def test_every_altered_byte_of_a_share_fails_to_open() -> None:
    sealed = crypto.seal_to_member(bytes(ADA.verify_key), b"k" * 32, rng_of(7))
    for i in range(len(sealed)):
        bad = bytearray(sealed)
        bad[i] ^= 0x01
        with pytest.raises(DecryptError):
            crypto.open_sealed(ADA, bytes(bad))


def test_body_round_trip_and_associated_data_binding() -> None:
    key = crypto.new_key(rng_of(8))
    blob = crypto.encrypt(key, b"arriving tired", b"space|author|epoch", rng_of(9))
    assert len(blob) == len(b"arriving tired") + crypto.BLOB_OVERHEAD
    assert b"arriving" not in blob
    assert crypto.decrypt(key, blob, b"space|author|epoch") == b"arriving tired"
    with pytest.raises(DecryptError):
        crypto.decrypt(key, blob, b"space|other|epoch")
    with pytest.raises(DecryptError):
        crypto.decrypt(crypto.new_key(rng_of(10)), blob, b"space|author|epoch")
    with pytest.raises(DecryptError):
        crypto.decrypt(key, blob[:10], b"space|author|epoch")


@settings(max_examples=examples(60), deadline=None)
@given(plaintext=st.binary(max_size=200), data=st.data())
def test_any_change_to_a_body_blob_is_detected(plaintext: bytes, data: st.DataObject) -> None:
    key = crypto.new_key(rng_of(11))
    blob = crypto.encrypt(key, plaintext, b"ad", rng_of(12))
    i = data.draw(st.integers(0, len(blob) - 1))
    flip = data.draw(st.integers(1, 255))
    bad = bytearray(blob)
    bad[i] ^= flip
    with pytest.raises(DecryptError):
        crypto.decrypt(key, bytes(bad), b"ad")


def test_bad_inputs_fail_clearly() -> None:
    with pytest.raises(ValueError, match="must return 32 bytes"):
        crypto.new_key(lambda n: b"short")
    with pytest.raises(ValueError, match="32 bytes"):
        crypto.encrypt(b"short", b"x", b"", rng_of(1))
    # Not a point on the curve: cannot receive a sealed key.
    not_a_point = bytes.fromhex("02" + "00" * 31)
    with pytest.raises(DecryptError):
        crypto.seal_to_member(not_a_point, b"k", rng_of(1))


def test_an_empty_body_round_trips() -> None:
    key = crypto.new_key(rng_of(13))
    blob = crypto.encrypt(key, b"", b"ad", rng_of(14))
    assert len(blob) == crypto.BLOB_OVERHEAD
    assert crypto.decrypt(key, blob, b"ad") == b""


def test_each_failure_says_what_went_wrong() -> None:
    """The sentence a person reads tells a short blob or bad key from a blob that does not
    open, and a sealed key meant for someone else from a key that cannot receive one."""
    key = crypto.new_key(rng_of(15))
    blob = crypto.encrypt(key, b"hello", b"ad", rng_of(16))
    too_short = "The encrypted body is too short or the key has the wrong length."
    for bad_key, bad_blob in ((key, blob[:crypto.BLOB_OVERHEAD - 1]), (key[:31], blob)):
        with pytest.raises(DecryptError) as caught:
            crypto.decrypt(bad_key, bad_blob, b"ad")
        assert str(caught.value) == too_short
    with pytest.raises(DecryptError) as caught:
        crypto.decrypt(crypto.new_key(rng_of(17)), blob, b"ad")
    assert str(caught.value) == ("The body does not open with this key (wrong epoch, wrong "
                                 "space, or altered).")
    sealed = crypto.seal_to_member(bytes(ADA.verify_key), key, rng_of(18))
    with pytest.raises(DecryptError) as caught:
        crypto.open_sealed(BO, sealed)
    assert str(caught.value) == "The sealed key is not for this identity, or it was altered."
    with pytest.raises(DecryptError) as caught:
        crypto.x25519_public(bytes.fromhex("02" + "00" * 31))
    assert str(caught.value) == "The public key cannot receive encrypted keys."
