"""The link code and the link proof (node/linking.py), without a network.

The handshake itself runs between real processes in ``tests/test_devices_processes.py``.
"""

from __future__ import annotations

import pytest

from meshcrew.errors import InviteCodeError
from meshcrew.node.linking import (
    LinkCode,
    decode_link_code,
    encode_link_code,
    link_proof,
)

DEVICE = bytes(range(32))
SECRET = bytes(range(32, 64))
CODE = LinkCode(DEVICE, SECRET, ("/ip4/127.0.0.1/tcp/4001",))


def test_a_link_code_reads_back_whatever_its_case_and_spacing() -> None:
    text = encode_link_code(CODE)
    assert text.startswith("mcl1-")
    assert decode_link_code(text) == CODE
    assert decode_link_code(" " + text.upper()[:20] + "\n" + text.upper()[20:]) == CODE
    assert SECRET.hex() not in repr(CODE)


@pytest.mark.parametrize("damage", ["typo", "cut", "extra"])
def test_a_damaged_link_code_is_refused_as_damaged(damage: str) -> None:
    text = encode_link_code(CODE)
    broken = {"typo": text[:-3] + ("a" if text[-3] != "a" else "b") + text[-2:],
              "cut": text[:-4], "extra": text + "q"}[damage]
    with pytest.raises(InviteCodeError, match="damaged"):
        decode_link_code(broken)


def test_an_invite_code_is_not_a_link_code() -> None:
    with pytest.raises(InviteCodeError, match="not a meshcrew link code"):
        decode_link_code("mc1-aaaa")


def test_the_proof_binds_the_secret_the_member_and_the_device() -> None:
    member = bytes(32)
    proof = link_proof(SECRET, member, DEVICE)
    assert proof != link_proof(bytes(32), member, DEVICE)
    assert proof != link_proof(SECRET, bytes([1]) * 32, DEVICE)
    assert proof != link_proof(SECRET, member, bytes([2]) * 32)
