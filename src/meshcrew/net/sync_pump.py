"""One sync session driven over one stream: :func:`run_session` moves the session's bytes both
ways, reading and writing side by side, and hands its events on in arrival order.

Given a :class:`Verifier`, received record batches are checked away from trio's thread and
handed on as :class:`RecordsVerified`, in the order they arrived. Between the stream and the
workers sits a bounded queue: once ``ahead`` batches wait, the session stops reading, the
stream's flow control stops the peer, and memory stays bounded whatever the peer sends.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

from meshcrew.net.seam import first_error, translated
from meshcrew.net.stream import Stream
from meshcrew.net.verifying import Verifier
from meshcrew.store.verify import VerifiedBatch
from meshcrew.sync import RecordsReceived, SyncEvent, SyncSession, SyncStats


@dataclass(frozen=True, slots=True)
class RecordsVerified:
    """A batch of the peer's records of ``space_id`` after :func:`~meshcrew.store.verify_batch`
    (what a session with a :class:`Verifier` hands on instead of
    :class:`~meshcrew.sync.RecordsReceived`): give it to
    :meth:`~meshcrew.store.Replica.append_verified`."""

    space_id: bytes
    batch: VerifiedBatch


SessionEvent = SyncEvent | RecordsVerified
"""What a session hands to its event handler."""
SyncEventHandler = Callable[[str, SessionEvent], Awaitable[None]]
"""``handle(peer_id, event)``: take records into the replica, note the peer's frontier."""

READ_BYTES = 1 << 20
"""Bytes a session asks the stream for at once: large reads mean fewer of yamux's window
updates (each an encrypted frame back to the peer) during a catch-up."""

@dataclass(slots=True)
class _Delivery:
    """One event of a session on its way to the handler, in arrival order."""

    event: SessionEvent
    ready: trio.Event | None = None
    """Set once the batch's checks are done (None: nothing to wait for)."""


class _Pump:
    """Moves one session's bytes both ways and its events, in order, to the handler."""

    def __init__(self, stream: Stream, session: SyncSession, on_event: SyncEventHandler,
                 verifier: Verifier | None) -> None:
        self.stream = stream
        self.session = session
        self.on_event = on_event
        self.verifier = verifier
        self.changed = trio.Event()
        self.queue_in, self.queue_out = trio.open_memory_channel[_Delivery](
            verifier.ahead if verifier is not None else 1)
        self.receiving: trio.CancelScope | None = None

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.read_side, nursery)
            nursery.start_soon(self.deliver)
            await self.write_side()

    async def write_side(self) -> None:
        session = self.session
        # A session the read side failed is not asked again (it would refuse): the read side's
        # error is the one the nursery surfaces. The writer can be woken in the same round as
        # the reader fails, so the check comes before every step, not only after a wait.
        while not session.failed:
            data = session.data_to_send()
            if data:
                await self.stream.send_all(data)
            elif session.complete:
                break
            else:
                await self.changed.wait()
        if self.receiving is not None:
            self.receiving.cancel()  # nothing more may come: stop waiting for it

    async def read_side(self, nursery: trio.Nursery) -> None:
        session = self.session
        # The queue is closed without a checkpoint (not ``async with``): a checkpoint on the way
        # out could turn this side's error into a Cancelled once the writer ends the nursery,
        # and the peer's fault would be lost.
        try:
            while not session.complete:
                # Only the wait for bytes is cut short once the exchange is complete: the events
                # of the bytes already received are all queued by then.
                with trio.CancelScope() as waiting:
                    self.receiving = waiting
                    data = await self.stream.receive_some(READ_BYTES)
                self.receiving = None
                if waiting.cancelled_caught:
                    return
                if not data:
                    session.receive_eof()  # raises unless the exchange is complete
                    return
                for event in session.receive_data(data):
                    delivery = _Delivery(event)
                    if self.verifier is not None and isinstance(event, RecordsReceived):
                        delivery.ready = trio.Event()
                        nursery.start_soon(self.check, self.verifier, delivery, event)
                    await self.queue_in.send(delivery)  # waits while the queue is full
                self.changed.set()
                self.changed = trio.Event()
        finally:
            self.queue_in.close()

    @staticmethod
    async def check(verifier: Verifier, delivery: _Delivery, received: RecordsReceived) -> None:
        batch = await verifier.verify(received.raws)
        delivery.event = RecordsVerified(received.space_id, batch)
        assert delivery.ready is not None
        delivery.ready.set()

    async def deliver(self) -> None:
        async for delivery in self.queue_out:
            if delivery.ready is not None:
                await delivery.ready.wait()
            await self.on_event(self.stream.peer_id, delivery.event)


async def run_session(stream: Stream, session: SyncSession, on_event: SyncEventHandler, *,
                      timeout_s: float, verifier: Verifier | None = None) -> SyncStats:
    """Drive ``session`` over ``stream`` until the exchange is complete, then close the stream.

    Reading and writing run side by side (both peers may be sending batches at once). Events go
    to ``on_event`` in the order they arrived (after the batches' checks, when there is a
    ``verifier``), all of them before this returns. On any failure the stream is reset, so the
    peer never waits for a dead session.

    Raises:
        RemoteProtocolError: the peer broke the protocol.
        PeerTimeout: the peer stalled past a read deadline, or the session took over ``timeout_s``.
        ConnectionLost: the stream closed or reset midway.
        Exception: whatever ``on_event`` (or the verifier) raised.
    """
    try:
        with translated(f"syncing with {stream.peer_id}"), trio.fail_after(timeout_s):
            await _Pump(stream, session, on_event, verifier).run()
    except BaseExceptionGroup as group:
        await stream.reset()
        raise first_error(group) from None
    except BaseException:
        await stream.reset()
        raise
    await stream.aclose()
    return session.stats
