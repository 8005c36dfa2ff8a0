"""Receipts of a post a member's second laptop signed: looked up in that laptop's chain."""

from __future__ import annotations

from types import MappingProxyType

from meshcrew.tui.health import receipt

ANA, LAPTOP, BO, CY = (bytes([n]) * 32 for n in (1, 2, 3, 4))
MEMBERS = frozenset({ANA, BO, CY})


def test_a_device_post_is_counted_by_its_own_chain() -> None:
    # Bo holds the laptop's chain up to seq 3 and Ana's key chain up to seq 9; Cy holds
    # neither far enough.
    holdings = MappingProxyType({BO: {LAPTOP: 3, ANA: 9}, CY: {LAPTOP: 1, ANA: 9}})
    seen = receipt(ANA, 3, MEMBERS, holdings, LAPTOP)
    assert seen.holders == {ANA, BO}
    assert seen.text == "seen by 2 of 3"
    # Read in Ana's key chain (as before devices), seq 3 would look held by everyone.
    assert receipt(ANA, 3, MEMBERS, holdings).holders == {ANA, BO, CY}
