"""A node run inside one CLI command, for a join or a device link when no ``meshcrew node`` is
running."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio

from meshcrew.cli.node_commands import logging_to_home
from meshcrew.errors import MeshcrewError
from meshcrew.home import Home
from meshcrew.identity import Identity
from meshcrew.net.host import late_arrivals_only
from meshcrew.net.seam import first_error
from meshcrew.node import NodeConfig, open_node
from meshcrew.node.reports import JoinProgress, JoinResult, LinkResult
from meshcrew.store import Replica

log = logging.getLogger("meshcrew.cli")

T = TypeVar("T")


def _run_node(home: Home, run: Callable[[], Awaitable[T]]) -> T:
    """``trio.run(run)`` with the node's log in ``node.log``, raising a refusal as the error
    itself.

    The log goes where ``meshcrew node`` writes it, not to stderr, where py-libp2p's warnings
    ("fail to upgrade mux for peer ...") would stand between the progress and the one-line
    error. trio and libp2p nest an error raised inside the node in their task groups, which the
    CLI would print as a traceback; py-libp2p 0.8.1 may also fail while its host closes after
    the work is done ("Nursery is closed to new arrivals", as in :mod:`meshcrew.demo.crew`):
    that error alone goes to the log.
    """
    done: list[T] = []

    async def keep() -> None:
        done.append(await run())

    try:
        with logging_to_home(home):
            trio.run(keep)
    except* MeshcrewError as group:
        raise first_error(group) from None
    except* RuntimeError as group:
        if not done or not late_arrivals_only(group):
            raise
        log.warning("libp2p failed while the command's node closed (ignored: its work is done)",
                    exc_info=group)
    return done[0]


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
