"""The node: trio orchestration of the replica, the member service and the libp2p host.

:func:`open_node` runs a node (``meshcrew node`` headless, or inside the TUI); the CLI reaches a
running node through :class:`ControlClient` on the control socket in the home folder. See
``docs/node.md`` and ``/work/notes/node-api.md``.

The names that need trio and libp2p are loaded on first use, so a CLI command that only talks
to a running node (``meshcrew.node.control_client``) starts without importing them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from meshcrew.node.config import NodeConfig
from meshcrew.node.control_client import ControlClient, control_types
from meshcrew.node.reports import (
    JoinProgress,
    JoinResult,
    NodeEvent,
    NodeStatus,
    PeerReport,
    PeersChanged,
    PeerSpace,
    PeerSynced,
    RecordsChanged,
)

if TYPE_CHECKING:
    from meshcrew.node.node import Node
    from meshcrew.node.opening import open_node

__all__ = [
    "ControlClient", "JoinProgress", "JoinResult", "Node", "NodeConfig", "NodeEvent",
    "NodeStatus", "PeerReport", "PeerSpace", "PeerSynced", "PeersChanged", "RecordsChanged",
    "control_types", "open_node",
]


def __getattr__(name: str) -> Any:
    if name == "Node":
        from meshcrew.node.node import Node

        return Node
    if name == "open_node":
        from meshcrew.node.opening import open_node

        return open_node
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
