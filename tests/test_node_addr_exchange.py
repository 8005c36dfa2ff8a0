"""The address exchange between two real hosts on loopback: what costs the peer points."""

from __future__ import annotations

import time

import pytest
import trio

from hosts_on_loopback import open_hosts
from meshcrew.net import Host, Stream
from meshcrew.node.addr_exchange import ADDRS_PROTOCOL, exchange


async def exchange_with(opener: Host, server: Host) -> list[tuple[str, list[str]]]:
    """``opener`` opens an exchange with ``server`` and offers its own address."""
    learnt: list[tuple[str, list[str]]] = []
    await opener.connect(server.listen_addrs()[0])
    stream = await opener.open_stream(server.peer_id, ADDRS_PROTOCOL)
    with trio.fail_after(10):
        await exchange(stream, {opener.peer_id: opener.listen_addrs()},
                       lambda peer, addrs: learnt.append((peer, list(addrs))),
                       opener.penalize)
    return learnt


@pytest.mark.trio
async def test_a_peer_that_ends_the_exchange_unanswered_loses_no_points() -> None:
    """It does not count this node as a member yet (each side answers by its own view): a
    carrier that had just taken a space closed Bo's exchanges, and Bo banned it for that."""
    async with open_hosts(2, first=390) as (bo, pi):

        async def tell_nothing(stream: Stream) -> None:
            await stream.aclose()

        pi.set_stream_handler(ADDRS_PROTOCOL, tell_nothing)
        for _ in range(3):  # two at 50 points each banned it
            assert await exchange_with(bo, pi) == []
        assert bo.scores.points(pi.peer_id, time.monotonic()) == 0.0
        assert not bo.scores.is_banned(pi.peer_id)


@pytest.mark.trio
async def test_a_malformed_answer_still_costs_points() -> None:
    async with open_hosts(2, first=392) as (bo, pi):

        async def garble(stream: Stream) -> None:
            await stream.send_all(b"\x03\xc1\xc1\xc1")  # a frame of three bytes msgpack never uses
            await stream.aclose()

        pi.set_stream_handler(ADDRS_PROTOCOL, garble)
        assert await exchange_with(bo, pi) == []
        assert bo.scores.points(pi.peer_id, time.monotonic()) > 0
