"""The route the app shows per peer (LAN, internet, relay, hole-punched), from real addresses.

:func:`~meshcrew.tui.node_backend.route_of` reads the node's peer report: the link the node
has now (relayed, hole-punched) comes first; otherwise how the peer was found and where it can
be reached. The addresses below are real ones of each kind; the test with real nodes on
loopback (``test_tui_receipts``) checks the report a running node makes.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from meshcrew.node import PeerReport
from meshcrew.tui.health import Route
from meshcrew.tui.node_backend import route_of

PEER = "12D3KooWDGHBYmzxAzjfH7tN3kJ3sQybPLvTswH9D95oKY9uSNKe"
RELAY = "12D3KooWQd3X9oqzRXEVEb2Kw2pJud8aLi7RyuZc6ubuPXRnfh4M"


def report(*addrs: str, connected: bool = True, source: str = "connection") -> PeerReport:
    return PeerReport(PEER, b"k" * 32, "Bo", connected, tuple(f"{a}/p2p/{PEER}" for a in addrs),
                      1, False, source, ())


@pytest.mark.parametrize(("addr", "route"), [
    ("/ip4/127.0.0.1/tcp/4001", Route.LAN),  # loopback: this machine
    ("/ip6/::1/tcp/4001", Route.LAN),
    ("/ip4/10.1.2.3/tcp/4001", Route.LAN),  # the private ranges
    ("/ip4/172.16.0.9/tcp/4001", Route.LAN),
    ("/ip4/172.31.255.1/tcp/4001", Route.LAN),
    ("/ip4/192.168.1.7/tcp/4001", Route.LAN),
    ("/ip4/169.254.10.20/tcp/4001", Route.LAN),  # link-local
    ("/ip6/fe80::1/tcp/4001", Route.LAN),
    ("/ip6/fd12:3456:789a::1/tcp/4001", Route.LAN),  # unique local
    ("/ip4/172.32.0.1/tcp/4001", Route.INTERNET),  # just past 172.16/12
    ("/ip4/8.8.8.8/tcp/4001", Route.INTERNET),  # public
    ("/ip4/93.184.216.34/udp/4001/quic-v1", Route.INTERNET),
    ("/ip6/2001:4860:4860::8888/tcp/4001", Route.INTERNET),
    ("/dns4/bo.example.org/tcp/4001", Route.INTERNET),  # a name: not known to be near
])
def test_the_route_of_a_direct_peer_follows_its_address(addr: str, route: Route) -> None:
    assert route_of(report(addr)) is route
    assert route_of(report(addr, connected=False)) is route


def test_a_peer_at_a_private_address_among_public_ones_is_on_the_lan() -> None:
    assert route_of(report("/ip4/8.8.8.8/tcp/4001", "/ip4/192.168.1.7/tcp/4001")) is Route.LAN
    assert route_of(report("/ip4/not-an-ip/tcp/4001", "/ip4/8.8.8.8/tcp/4001")) is \
        Route.INTERNET


def test_a_peer_found_on_the_lan_is_on_the_lan_whatever_its_addresses() -> None:
    assert route_of(report("/ip4/8.8.8.8/tcp/4001", source="mdns")) is Route.LAN


def test_a_peer_known_only_through_a_relay_is_relayed() -> None:
    circuit = f"/ip4/8.8.4.4/tcp/4001/p2p/{RELAY}/p2p-circuit"
    assert route_of(report(circuit, connected=False)) is Route.RELAY


def test_the_link_the_node_has_now_comes_first() -> None:
    lan = report("/ip4/192.168.1.7/tcp/4001")
    assert route_of(replace(lan, link="relayed", via=RELAY)) is Route.RELAY
    assert route_of(replace(lan, link="hole-punched")) is Route.HOLE_PUNCHED
    assert route_of(replace(lan, link="direct")) is Route.LAN
    # A link is of a connection: once it is gone, the addresses speak again.
    assert route_of(replace(lan, connected=False, link="relayed", via=RELAY)) is Route.LAN
    assert route_of(replace(report("/ip4/8.8.8.8/tcp/4001"), link="hole-punched",
                            connected=False)) is Route.INTERNET
