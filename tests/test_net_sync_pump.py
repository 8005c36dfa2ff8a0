"""The sync pump when one side fails while the other is mid-step.

A session that failed refuses every further call (``LocalProtocolError``), so the pump's two
sides must not call it after the other side saw it fail: the error surfaced is the one that
failed the session, the peer's fault, never "this sync session already failed" (which a node's
sync loop did not expect, and which once ended a node in CI).

The stream here is an in-memory pipe under the real :class:`~meshcrew.net.Stream` wrapper, so
the test can place the two sides' steps in one scheduling round, which real sockets do only now
and then; what it checks is the pump, not libp2p.
"""

from __future__ import annotations

import pytest
import trio

from meshcrew.errors import RemoteProtocolError
from meshcrew.identity import Identity
from meshcrew.net import Stream
from meshcrew.net.sync_pump import run_session
from meshcrew.sync import SyncEvent, SyncSession
from replica_in_memory import MemoryReplica, make_chain, signing_key, space_id

pytestmark = pytest.mark.trio
GARBAGE = b"\xff" * 16  # a frame length over any limit: the peer broke the protocol


class _Conn:
    def __init__(self, peer_id: str) -> None:
        self.peer_id = peer_id


class _PipeWhoseWriteWakesWithTheRead:
    """A raw stream whose one write waits until the read hands over the peer's (bad) bytes, so
    the writer is woken in the same round as the reader fails."""

    def __init__(self, peer_id: str) -> None:
        self.muxed_conn = _Conn(peer_id)
        self.gate = trio.Event()
        self.writes = 0
        self.was_reset = False

    async def write(self, data: bytes) -> None:
        self.writes += 1
        await self.gate.wait()

    async def read(self, max_bytes: int) -> bytes:
        self.gate.set()  # the writer is now runnable, before the reader fails
        return GARBAGE

    async def close(self) -> None:
        pass

    async def reset(self) -> None:
        self.was_reset = True


async def _ignore(peer_id: str, event: SyncEvent) -> None:
    pass


async def test_the_error_surfaced_is_the_peers_not_the_failed_sessions() -> None:
    me, peer = Identity.from_seed(bytes(32), "Me"), Identity.from_seed(bytes([1]) * 32, "Peer")
    replica = MemoryReplica(make_chain(signing_key(1), space_id(1), 30))
    # trio runs the tasks woken in one round in a random order: 20 sessions take both orders
    for _ in range(20):
        raw = _PipeWhoseWriteWakesWithTheRead(peer.peer_id)
        stream = Stream(raw, read_timeout_s=5, write_timeout_s=5)
        session = SyncSession(me.public_key, peer.public_key, [space_id(1)], replica)
        with trio.fail_after(10), pytest.raises(RemoteProtocolError, match="frame length"):
            await run_session(stream, session, _ignore, timeout_s=5)
        assert raw.writes == 1  # the hello went out; nothing asked of the failed session after
        assert raw.was_reset
