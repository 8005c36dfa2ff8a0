"""Invite codes (one line, checksummed) and invite proofs."""

from __future__ import annotations

import hashlib
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hypothesis_profiles import examples
from meshcrew.errors import InviteCodeError
from meshcrew.spaces.invites import (
    CODE_PREFIX,
    InviteCode,
    decode_invite_code,
    encode_invite_code,
    invite_public_key,
    prove_invite,
    verify_invite_proof,
)

SPACE = hashlib.sha256(b"space").digest()
INVITE = hashlib.sha256(b"invite").digest()
SECRET = hashlib.sha256(b"secret").digest()
ADDRS = ("/ip4/192.168.1.20/tcp/4001/p2p/12D3KooWAbc", "/ip6/::1/udp/4001/quic-v1")
CODE = InviteCode(SPACE, INVITE, SECRET, ADDRS)
B32 = string.ascii_lowercase[:26] + "234567"


def test_round_trip_is_one_line() -> None:
    text = encode_invite_code(CODE)
    assert text.startswith(CODE_PREFIX)
    assert "\n" not in text
    assert " " not in text
    assert decode_invite_code(text) == CODE
    assert SECRET.hex() not in repr(CODE)  # the secret never shows in logs


def test_decoding_forgives_case_spaces_and_line_breaks() -> None:
    text = encode_invite_code(CODE)
    messy = "  " + text[:20].upper() + "\n " + text[20:40] + " " + text[40:] + "\n"
    assert decode_invite_code(messy) == CODE


def test_every_single_character_typo_reads_as_damaged() -> None:
    text = encode_invite_code(InviteCode(SPACE, INVITE, SECRET))
    for i in range(len(CODE_PREFIX), len(text)):
        for replacement in (B32[(B32.index(text[i]) + 1) % 32], "8", "!"):
            typo = text[:i] + replacement + text[i + 1:]
            with pytest.raises(InviteCodeError, match="damaged"):
                decode_invite_code(typo)


@settings(max_examples=examples(100), deadline=None)
@given(data=st.data())
def test_random_edits_read_as_damaged(data: st.DataObject) -> None:
    text = encode_invite_code(CODE)
    body = text[len(CODE_PREFIX):]
    edit = data.draw(st.sampled_from(["cut", "drop", "swap", "insert"]))
    i = data.draw(st.integers(0, len(body) - 2))
    if edit == "cut":
        changed = body[:i]
    elif edit == "drop":
        changed = body[:i] + body[i + 1:]
    elif edit == "swap":
        changed = body[:i] + body[i + 1] + body[i] + body[i + 2:]
    else:
        changed = body[:i] + data.draw(st.sampled_from(B32)) + body[i:]
    if changed == body:
        return  # swapping two equal characters changes nothing
    with pytest.raises(InviteCodeError, match="damaged"):
        decode_invite_code(CODE_PREFIX + changed)


def test_not_a_code_and_newer_codes_say_so() -> None:
    with pytest.raises(InviteCodeError, match="not a meshcrew invite code"):
        decode_invite_code("https://example.org/join")
    with pytest.raises(InviteCodeError, match="damaged"):
        decode_invite_code(CODE_PREFIX)


def test_proof_binds_secret_space_and_joiner() -> None:
    joiner = hashlib.sha256(b"joiner").digest()
    public = invite_public_key(SECRET)
    proof = prove_invite(SECRET, SPACE, joiner)
    assert verify_invite_proof(public, SPACE, joiner, proof)
    other = hashlib.sha256(b"other").digest()
    assert not verify_invite_proof(public, SPACE, other, proof)  # lifted to another joiner
    assert not verify_invite_proof(public, other, joiner, proof)  # lifted to another space
    wrong = prove_invite(hashlib.sha256(b"guess").digest(), SPACE, joiner)
    assert not verify_invite_proof(public, SPACE, joiner, wrong)
    assert not verify_invite_proof(b"\x00" * 31, SPACE, joiner, proof)


def test_code_fields_are_checked() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        InviteCode(SPACE, INVITE, b"short")
    with pytest.raises(ValueError, match="addresses"):
        InviteCode(SPACE, INVITE, SECRET, tuple("a" for _ in range(9)))
