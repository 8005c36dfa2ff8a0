"""``net.stream.Stream`` between real libp2p hosts on loopback: a write cancelled from outside
leaves the connection working (py-libp2p's Noise takes a nonce for a frame before the socket
write's first checkpoint, so a write cut short there broke the whole connection)."""

from __future__ import annotations

import pytest
import trio

from hosts_on_loopback import open_hosts
from meshcrew.net import Stream

SINK = "/meshcrew/test-sink/1.0.0"
ECHO = "/meshcrew/test-echo/1.0.0"


async def sink(stream: Stream) -> None:
    """Read everything until the stream ends."""
    while await stream.receive_some():
        pass


async def echo(stream: Stream) -> None:
    """Send back the first bytes read."""
    await stream.send_all(await stream.receive_some())
    await stream.aclose()


@pytest.mark.trio
async def test_a_write_cancelled_from_outside_leaves_the_connection_working() -> None:
    async with open_hosts(2, first=700) as (ana, bo):
        bo.set_stream_handler(SINK, sink)
        bo.set_stream_handler(ECHO, echo)
        await ana.connect(bo.listen_addrs()[0])
        # Cancelled after 0 to 9 trio steps, so that some cancellation lands on each of the
        # write's steps (trio runs ready tasks in a random order: four rounds)
        for steps in range(40):
            stream = await ana.open_stream(bo.peer_id, SINK)
            with trio.CancelScope() as writing:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(stream.send_all, b"x" * 3000)
                    for _ in range(steps % 10):
                        await trio.lowlevel.checkpoint()
                    writing.cancel()
            await stream.reset()
            # the same connection still carries a new stream both ways
            check = await ana.open_stream(bo.peer_id, ECHO)
            await check.send_all(b"ping %d" % steps)
            assert await check.receive_some() == b"ping %d" % steps
            await check.aclose()
