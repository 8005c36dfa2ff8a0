"""Real libp2p hosts on 127.0.0.1 for net tests, and waiting on conditions instead of sleeping."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace

import trio

from meshcrew.identity import Identity
from meshcrew.net import GossipValidator, Host, NetConfig, open_host

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
    """Return as soon as ``condition()`` holds; fail the test after ``within`` seconds."""
    with trio.fail_after(within):
        # Polled: the conditions are libp2p's internal state, which signals no event.
        while not condition():  # noqa: ASYNC110
            await trio.sleep(0.01)
