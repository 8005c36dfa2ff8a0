"""Real libp2p hosts on 127.0.0.1 for net tests, and waiting on conditions instead of sleeping."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace

import trio

from meshcrew.identity import Identity
from meshcrew.net import GossipValidator, Host, NetConfig, open_host
from meshcrew.node.stopping import run_queue_wait_s

LOOPBACK = NetConfig(listen_addrs=("/ip4/127.0.0.1/tcp/0",), read_timeout_s=2.0,
                     write_timeout_s=2.0, dial_timeout_s=5.0, session_timeout_s=20.0)


def member(n: int, name: str = "Member") -> Identity:
    """A deterministic member identity."""
    return Identity.from_seed(hashlib.sha256(b"meshcrew net test member %d" % n).digest(), name)


@asynccontextmanager
async def open_hosts(count: int, *, first: int = 0, config: NetConfig = LOOPBACK,
                     validator: GossipValidator | None = None) -> AsyncIterator[list[Host]]:
    """``count`` hosts for members ``first``, ``first + 1``, ... on loopback."""
    async with AsyncExitStack() as stack:
        hosts = [await stack.enter_async_context(open_host(member(first + i), config,
                                                           validator=validator))
                 for i in range(count)]
        yield hosts


def with_timeouts(*, read_timeout_s: float = LOOPBACK.read_timeout_s,
                  session_timeout_s: float = LOOPBACK.session_timeout_s) -> NetConfig:
    """The loopback config with some deadlines changed."""
    return replace(LOOPBACK, read_timeout_s=read_timeout_s, session_timeout_s=session_timeout_s)


async def wait_until(condition: Callable[[], bool], within: float = 10.0) -> None:
    """Return as soon as ``condition()`` holds; fail the test (``trio.TooSlowError``) after
    ``within`` seconds of this thread's own time: the wall time less its waits for a CPU
    (docs/testing.md). The hosts and in-process nodes under test run on this thread, so its
    waits for a CPU on a loaded machine are theirs, and say nothing of their behaviour."""
    thread = threading.get_native_id()
    deadline = _own_s(thread) + within
    # Polled: the conditions are libp2p's internal state, which signals no event.
    while not condition():
        if _own_s(thread) > deadline:
            raise trio.TooSlowError(f"not within {within:.0f} s of this thread's own time")
        await trio.sleep(0.01)


def _own_s(thread: int) -> float:
    return time.monotonic() - run_queue_wait_s(thread)
