"""The host's dialable addresses (meshcrew.net.addresses): wildcards become the machine's own
addresses, and the answer is reused for a moment, not rebuilt for every gossip message."""

from __future__ import annotations

from collections.abc import Iterable

import ifaddr
import pytest
from multiaddr import Multiaddr

from meshcrew.net import addresses

WILDCARD = [Multiaddr("/ip4/0.0.0.0/tcp/4001")]


def test_a_wildcard_becomes_every_ipv4_address_loopback_last() -> None:
    expanded = [str(a) for a in addresses.expand_wildcards(WILDCARD)]
    assert expanded[-1] == "/ip4/127.0.0.1/tcp/4001"
    assert all(a.startswith("/ip4/") and a.endswith("/tcp/4001") for a in expanded)
    assert "/ip4/0.0.0.0/tcp/4001" not in expanded


def test_the_interfaces_are_listed_once_while_the_answer_is_fresh(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """libp2p asks for the host's addresses about twice per gossip message; listing the
    interfaces each time cost a flooded node a third of its CPU."""
    listed = []
    real = ifaddr.get_adapters

    def counted() -> Iterable[ifaddr.Adapter]:
        listed.append(1)
        return real()

    clock = [1000.0]
    monkeypatch.setattr(ifaddr, "get_adapters", counted)
    monkeypatch.setattr(addresses, "_now", lambda: clock[0])
    monkeypatch.setattr(addresses, "_expanded", {})
    first = addresses.expand_wildcards(WILDCARD)
    for _ in range(100):
        assert addresses.expand_wildcards(WILDCARD) == first
        clock[0] += addresses.FRESH_S / 1000
    assert len(listed) == 1
    clock[0] += addresses.FRESH_S  # a laptop that moved to another network is seen again
    assert addresses.expand_wildcards(WILDCARD) == first
    assert len(listed) == 2
