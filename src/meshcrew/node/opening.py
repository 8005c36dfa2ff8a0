"""Starting and stopping a node: :func:`open_node` and what it opens around the
:class:`~meshcrew.node.node.Node` (its host, on the port it used last time; the views it keeps
for the next start)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager
from dataclasses import replace
from typing import TypeVar

import trio

from meshcrew.errors import ListenError, MeshcrewError
from meshcrew.home import Home
from meshcrew.identity import Identity
from meshcrew.net import Host, NetConfig, open_host
from meshcrew.net.config import default_listen_addrs
from meshcrew.net.host import late_arrivals_only
from meshcrew.net.seam import first_error
from meshcrew.node.config import NodeConfig
from meshcrew.node.control import serve_control
from meshcrew.node.dispatch import Dispatcher, value_types
from meshcrew.node.node import Node
from meshcrew.service import ViewCache
from meshcrew.store import Replica

log = logging.getLogger("meshcrew.node")


def wall_clock_ms() -> int:
    """The current time in UTC milliseconds."""
    return time.time_ns() // 1_000_000



@asynccontextmanager
async def open_node(home: Home, identity: Identity, config: NodeConfig | None = None, *,
                    clock: Callable[[], int] = wall_clock_ms, replica: Replica | None = None,
                    control: bool = True, views: ViewCache | None = None
                    ) -> AsyncIterator[Node]:
    """Run a node for ``identity`` over the replica of ``home`` until the block exits.

    Usable from any trio run (``trio.run``, or guest mode inside a Textual app).

    Args:
        home: the home folder.
        identity: the member.
        config: addresses, discovery and timing (defaults: every interface, mDNS on).
        clock: UTC milliseconds.
        replica: an already open replica of ``home`` to use (and leave open); by default the
            node opens it, taking the home folder's writer lock, and closes it at the end.
        control: serve the control socket (a node started by a CLI command for one join does
            not).
        views: the views of the member's spaces to share with another service over the same
            replica (the app's, when the node runs inside it), so they are made once.

    Raises:
        HomeError: another process holds the home folder, or the control socket cannot be made.
        ReplicaError: the replica cannot be opened.
        ListenError: a listen address cannot be used.
    """
    config = config or NodeConfig()
    home.ensure()
    with ExitStack() as owned:
        if replica is None:
            replica = owned.enter_context(Replica.open(home))
        node = Node(home, identity, config, replica, clock, views)
        records = replica.record_count()
        if records > config.prepare_above:
            # Fold and decrypt the spaces off the trio thread, before anything reads them.
            log.info("opening the spaces: %d records", records)
            try:
                # trio-typing's stubs predate abandon_on_cancel (as in net/mdns.py)
                await trio.to_thread.run_sync(node.member.prepare,
                                              abandon_on_cancel=True)  # type: ignore[call-arg]
            except Exception:  # only a head start: the reads will do the work, and say why
                log.warning("could not open the spaces ahead", exc_info=True)
        try:
            async with AsyncExitStack() as stack:
                host = await stack.enter_async_context(_open_host(node))
                if not config.listen_addrs:
                    node.book.listen_port = host.listen_port()
                nursery = await stack.enter_async_context(trio.open_nursery())
                await node._start(host, nursery)
                if control:
                    await nursery.start(serve_control, home.socket_file,
                                        Dispatcher(node).dispatch, value_types())
                log.info("node %s running at %s", host.peer_id, ", ".join(host.listen_addrs()))
                try:
                    yield node
                finally:
                    nursery.cancel_scope.cancel()
        finally:
            if views is None:  # the node's own views (the app keeps those it shares as it closes)
                _keep_views(node)
            node.save()
            node._host = None


def _keep_views(node: Node) -> None:
    """Write the snapshots of the views that changed while the node ran (see
    :meth:`MemberReads.keep_snapshots`), so the next start, the app's or the node's, lists the
    spaces at once instead of folding them."""
    try:
        written = node.member.keep_snapshots()
    except Exception:  # only a head start for the next one: stopping must go on
        log.warning("could not keep the views of the spaces", exc_info=True)
        return
    if written:
        log.info("kept the views of %d spaces for the next start", written)


@asynccontextmanager
async def _open_host(node: Node) -> AsyncIterator[Host]:
    """The node's host, on the port it used last time if no address was given (else, when that
    port is taken now, on one the system picks)."""
    config = node.config
    remembered = node.book.listen_port
    choices = [config.listen_addrs] if config.listen_addrs else \
        [default_listen_addrs(remembered or 0)] + ([default_listen_addrs(0)] if remembered else [])
    async with AsyncExitStack() as stack:
        for number, addrs in enumerate(choices, start=1):
            net = replace(config.net or NetConfig(shutdown_timeout_s=1.0), listen_addrs=addrs,
                          relay_strangers=config.relay_strangers)
            try:
                host = await stack.enter_async_context(open_host(
                    node.identity, net, validator=node.judge, banned=node.book.banned))
                break
            except ListenError:
                if number == len(choices):
                    raise
                log.info("port %s is taken now; listening on another", remembered)
        yield host


T = TypeVar("T")


def run_node_work(work: Callable[[], Awaitable[T]], *, what: str) -> T:
    """``trio.run(work)`` for a node run only for one piece of work (a join, a device link):
    its answer, or a refusal raised inside the node as the error itself.

    trio and libp2p nest an error raised inside the node in their task groups, which a command
    would print as a traceback. py-libp2p 0.8.1 may also fail while its host closes after the
    work is done (a pubsub stream handler schedules a task after the connection's nursery
    stopped: "Nursery is closed to new arrivals"; net/host.py drops it while the host closes):
    the work's records are committed by then, so that error alone goes to the log, naming
    ``what`` ran; any other is raised.

    Raises:
        MeshcrewError: the work's own refusal, or the node could not start.
    """
    done: list[T] = []

    async def keep() -> None:
        done.append(await work())

    try:
        trio.run(keep)
    except* MeshcrewError as group:
        raise first_error(group) from None
    except* RuntimeError as group:
        if not done or not late_arrivals_only(group):
            raise
        log.warning("libp2p failed while %s closed (ignored: its work is done)", what,
                    exc_info=group)
    return done[0]
