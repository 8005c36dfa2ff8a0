"""A node run inside one CLI command, for a join or a device link when no ``meshcrew node`` is
running."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from meshcrew.identity import Identity
from meshcrew.node import NodeConfig, open_node
from meshcrew.node.linking import LinkResult
from meshcrew.node.reports import JoinProgress, JoinResult
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
    import os

    from meshcrew.node.linking import (
        LINK_PROTOCOL,
        SECRET_BYTES,
        LinkCode,
        LinkWaiter,
        encode_link_code,
    )
    from meshcrew.spaces.invites import MAX_ADDR_CHARS, MAX_ADDRS

    async def run() -> LinkResult | None:
        config = NodeConfig(mdns=False, mdns_on_demand=True,
                            listen_addrs=listen)
        async with open_node(replica.home, identity, config, replica=replica,
                             control=False) as node:
            addrs = tuple(a for a in node.addrs() if len(a) <= MAX_ADDR_CHARS)[:MAX_ADDRS]
            code = LinkCode(identity.public_key, os.urandom(SECRET_BYTES), addrs)

            def take(raws: list[bytes], sender: str) -> None:
                node.take(raws, sender=sender, propagate=False)

            def learn(peer_id: str, peer_addrs: list[str]) -> None:
                node.book.learn(peer_id, peer_addrs, source="link")
                node.book.save()

            waiter = LinkWaiter(node.member, code, take=take, learn=learn)
            node.host.set_stream_handler(LINK_PROTOCOL, waiter.serve)
            show(encode_link_code(code))
            with trio.move_on_after(within_s):
                await waiter.done.wait()
            return waiter.result

    return trio.run(run)
