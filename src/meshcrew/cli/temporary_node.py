"""A node run inside one CLI command, for a join or a device link when no ``meshcrew node`` is
running."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from meshcrew.identity import Identity
from meshcrew.node import NodeConfig, open_node
from meshcrew.node.reports import JoinProgress, JoinResult, LinkResult
from meshcrew.store import Replica


def join_with_temporary_node(replica: Replica, identity: Identity, code: str,
                             on_progress: Callable[[Any], None] | None) -> JoinResult:
    """Start a node over ``replica`` (already open), join with ``code``, stop the node.

    It listens like ``meshcrew node`` with its defaults, without a control socket; it looks for
    members on the LAN (mDNS) only if none answers at the code's addresses.

    Raises:
        JoinRefused: no member's node let this one in.
        SpaceError, InviteCodeError, NetError: as :meth:`meshcrew.node.Node.join`.
    """

    async def progress(step: JoinProgress) -> None:
        if on_progress is not None:
            on_progress(step)

    async def run() -> JoinResult:
        config = NodeConfig(mdns=False, mdns_on_demand=True)
        async with open_node(replica.home, identity, config, replica=replica,
                             control=False) as node:
            return await node.join(code, progress)

    return trio.run(run)


def link_with_temporary_node(replica: Replica, identity: Identity, code: str) -> LinkResult:
    """Start a node over ``replica``, approve the device of a link code, stop the node.

    Raises:
        JoinRefused, SpaceError, InviteCodeError: as :func:`meshcrew.node.linking.link_device`.
    """

    async def run() -> LinkResult:
        config = NodeConfig(mdns=False, mdns_on_demand=True)
        async with open_node(replica.home, identity, config, replica=replica,
                             control=False) as node:
            return await node.link_device(code)

    return trio.run(run)


def wait_for_link(replica: Replica, identity: Identity, *, listen: tuple[str, ...],
                  show: Callable[[str], None], within_s: float) -> LinkResult | None:
    """The new device's side of ``init --link``: start a node, show the link code (with the
    node's addresses in it), serve one link, stop; None if no member came within ``within_s``.
    """
    from meshcrew.node.linking import wait_for_link as serve_one_link

    async def run() -> LinkResult | None:
        config = NodeConfig(mdns=False, mdns_on_demand=True,
                            listen_addrs=listen)
        async with open_node(replica.home, identity, config, replica=replica,
                             control=False) as node:
            return await serve_one_link(node, show=show, within_s=within_s)

    return trio.run(run)
