"""A node run inside one CLI command, for a join or a device link when no ``meshcrew node`` is
running."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from meshcrew.home import Home
from meshcrew.identity import Identity
from meshcrew.node import NodeConfig, open_node
from meshcrew.node.log_file import logging_to_home
from meshcrew.node.opening import run_node_work
from meshcrew.node.reports import JoinProgress, JoinResult, LinkResult
from meshcrew.store import Replica

T = TypeVar("T")


def _run_node(home: Home, run: Callable[[], Awaitable[T]]) -> T:
    """``run`` in a node of the command's own (:func:`~meshcrew.node.opening.run_node_work`:
    a refusal raised inside it comes out as the error itself, for one sentence), with the
    node's log in ``node.log``, where ``meshcrew node`` writes it, not on stderr, where
    py-libp2p's warnings ("fail to upgrade mux for peer ...") would stand between the progress
    and the one-line error."""
    with logging_to_home(home):
        return run_node_work(run, what="the command's node")


def join_with_temporary_node(replica: Replica, identity: Identity, code: str,
                             on_progress: Callable[[Any], None] | None) -> JoinResult:
    """Start a node over ``replica`` (already open), join with ``code``, stop the node.

    It listens like ``meshcrew node`` with its defaults, without a control socket; it looks for
    members on the LAN (mDNS) only if none answers at the code's addresses.

    Raises:
        JoinRefused: no member's node let this one in (or the invite was refused).
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

    return _run_node(replica.home, run)


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

    return _run_node(replica.home, run)


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

    return _run_node(replica.home, run)
