"""A peer's nonsense answer on the small request/answer protocols (carry, expiry notices) is the
peer's fault: the asking node gets a NetError it handles (``Bringer`` catches MeshcrewError) and
takes points off the peer, instead of a ValueError that would end its task and the node.
Real hosts on loopback; the answering side is a plain stream handler sending the bytes."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import pytest
import trio

from hosts_on_loopback import open_hosts
from meshcrew.errors import MeshcrewError, NetError
from meshcrew.net import Stream
from meshcrew.net.scores import PROTOCOL_VIOLATION
from meshcrew.node.carrying import CARRY_PROTOCOL, bring
from meshcrew.node.expiry_notices import EXPIRED_PROTOCOL, send_notice

pytestmark = pytest.mark.trio
SPACE = bytes(range(32))

TOO_LONG_CARRY = (300).to_bytes(2, "big") + bytes(300)  # over the carry answer's limit
NOT_MSGPACK_CARRY = (3).to_bytes(2, "big") + b"\xc1\xc1\xc1"  # 0xc1 is never msgpack
TOO_LONG_EXPIRY = (1 << 30).to_bytes(4, "big")
NOT_MSGPACK_EXPIRY = (3).to_bytes(4, "big") + b"\xc1\xc1\xc1"


def answering(data: bytes) -> Callable[[Stream], Awaitable[None]]:
    """A handler that reads the request, then sends ``data`` and closes."""

    async def handler(stream: Stream) -> None:
        await stream.receive_some(4096)
        await stream.send_all(data)
        await stream.aclose()

    return handler


async def run_sync(stream: Stream, spaces: list[bytes]) -> None:
    raise AssertionError("no sync may follow a nonsense answer")


@pytest.mark.parametrize("answer", [TOO_LONG_CARRY, NOT_MSGPACK_CARRY],
                         ids=["too-long", "not-msgpack"])
async def test_a_nonsense_carry_answer_is_a_net_error_and_costs_points(answer: bytes) -> None:
    with trio.fail_after(30):
        async with open_hosts(2) as [member, carrier]:
            carrier.set_stream_handler(CARRY_PROTOCOL, answering(answer))
            await member.connect(carrier.listen_addrs()[0])
            with pytest.raises(NetError, match="nonsense"):
                await bring(member, carrier.peer_id, SPACE, run_sync)
            assert member.scores.points(carrier.peer_id, time.monotonic()) >= \
                PROTOCOL_VIOLATION * 0.9


@pytest.mark.parametrize("answer", [TOO_LONG_EXPIRY, NOT_MSGPACK_EXPIRY],
                         ids=["too-long", "not-msgpack"])
async def test_a_nonsense_expiry_answer_is_a_net_error_and_costs_points(answer: bytes) -> None:
    with trio.fail_after(30):
        async with open_hosts(2) as [member, carrier]:
            carrier.set_stream_handler(EXPIRED_PROTOCOL, answering(answer))
            await member.connect(carrier.listen_addrs()[0])
            with pytest.raises(MeshcrewError, match="nonsense"):
                await send_notice(member, carrier.peer_id, SPACE, [bytes(32)])
            assert member.scores.points(carrier.peer_id, time.monotonic()) >= \
                PROTOCOL_VIOLATION * 0.9
