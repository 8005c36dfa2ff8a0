"""The NAT lab: a small internet with two home NATs in Linux network namespaces (root only).

Used by the tests and scenarios that prove hole punching and relaying; see docs/netlab.md.
Imports no libp2p or trio.
"""

from meshcrew.netlab.topology import (
    HOSTS,
    LAPTOPS,
    NAT_MODES,
    PUBLIC_HOSTS,
    ROUTERS,
    STOP_TIMEOUT_S,
    Lab,
    LabError,
    NatMode,
    missing,
    open_lab,
)

__all__ = [
    "HOSTS",
    "LAPTOPS",
    "NAT_MODES",
    "PUBLIC_HOSTS",
    "ROUTERS",
    "STOP_TIMEOUT_S",
    "Lab",
    "LabError",
    "NatMode",
    "missing",
    "open_lab",
]
