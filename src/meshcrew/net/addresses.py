"""This host's dialable addresses: a wildcard listen address becomes one address per interface.

A node that listens on ``/ip4/0.0.0.0/tcp/P`` can be reached at every IPv4 address of the
machine, but ``0.0.0.0`` itself means nothing to a peer. Invite codes, ``meshcrew status``, mDNS
and libp2p's identify all need the real addresses, so the host announces these instead.
Loopback is included (nodes on one machine, and the tests, use it) but listed last, so a peer on
another machine tries the LAN addresses first.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterable

import ifaddr
from libp2p.peer.peerinfo import info_from_p2p_addr
from multiaddr import Multiaddr

_WILDCARDS = {"ip4": "0.0.0.0", "ip6": "::"}


def interface_ips(version: int) -> list[str]:
    """The machine's IP addresses of one version (4 or 6), loopback last, link-local left out."""
    found: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            text = ip.ip if isinstance(ip.ip, str) else ip.ip[0]
            try:
                address = ipaddress.ip_address(text)
            except ValueError:
                continue
            if address.version == version and not address.is_link_local:
                found.append(address)
    unique = sorted(set(found), key=lambda a: (a.is_loopback, a.packed))
    return [str(a) for a in unique]


FRESH_S = 2.0
"""How long an expansion is reused: libp2p asks for the host's addresses about twice per gossip
message, and listing the interfaces and parsing the addresses again each time cost a node under
a gossip flood about a third of its CPU; a laptop that changes networks is seen within this."""

_now = time.monotonic
_expanded: dict[tuple[str, ...], tuple[float, list[Multiaddr]]] = {}


def expand_wildcards(addrs: Iterable[Multiaddr]) -> list[Multiaddr]:
    """Replace each ``0.0.0.0`` / ``::`` address by the same address on every interface (an
    answer at most :data:`FRESH_S` old)."""
    addrs = list(addrs)
    key = tuple(str(a) for a in addrs)
    now = _now()
    kept = _expanded.get(key)
    if kept is not None and now - kept[0] < FRESH_S:
        return list(kept[1])
    if len(_expanded) >= 64:  # a few listen sets in a process's life: never many
        _expanded.clear()
    fresh = _expand(addrs)
    _expanded[key] = (now, fresh)
    return list(fresh)


def _expand(addrs: list[Multiaddr]) -> list[Multiaddr]:
    out: list[Multiaddr] = []
    for addr in addrs:
        protocols = [p.name for p in addr.protocols()]
        family = protocols[0] if protocols else ""
        wildcard = _WILDCARDS.get(family)
        if wildcard is None or addr.value_for_protocol(family) != wildcard:
            out.append(addr)
            continue
        rest = str(addr)[len(f"/{family}/{wildcard}"):]
        version = 4 if family == "ip4" else 6
        ips = interface_ips(version) or (["127.0.0.1"] if version == 4 else ["::1"])
        out.extend(Multiaddr(f"/{family}/{ip}{rest}") for ip in ips)
    seen: set[str] = set()
    unique = []
    for addr in out:
        if str(addr) not in seen:
            seen.add(str(addr))
            unique.append(addr)
    return unique


def is_peer_addr(text: str) -> bool:
    """Whether ``text`` is a multiaddr ending in ``/p2p/<peer id>`` (a circuit's included), as
    ``--bootstrap`` and ``--relay`` take."""
    try:
        info_from_p2p_addr(Multiaddr(text))
    except Exception:  # multiaddr and libp2p raise several unrelated types for bad text
        return False
    return True
