"""The catch-up sync protocol as a sans-IO state machine (the wire format is in docs/sync.md).

One :class:`SyncSession` runs on one stream between two members. Both sides are the same: each
starts by sending ``hello``, feeds received bytes to :meth:`SyncSession.receive_data` and writes
whatever :meth:`SyncSession.data_to_send` returns. The session ends by itself.

State rules, per space both sides offered (``hello`` carries a token and a frontier digest):

- equal digests: the space is in sync; nothing more is sent for it;
- different digests: each side learns the peer's frontier, then sends the records the peer lacks
  in chain order, in bounded batches, then ``done``. In version 1 each side sends its full
  frontier; in version 2 the two reconcile them (:mod:`meshcrew.sync.reconcile`, the lower key
  speaking first), and a side whose result disagrees with the peer's ``hello`` digest sends its
  full frontier, which the peer answers with its own.

The session is complete when both ``hello`` messages have crossed and, for every space that was
out of sync, this side has sent ``done`` and received the peer's ``done``. In sync, that is one
round trip of O(1) bytes per space.

A side offers only spaces whose records it may serve to the peer (the caller passes them in), so
records are only ever sent to members, and a space the peer did not offer is never named.
Anything the peer sends out of order, oversized or for a space not agreed raises
:class:`~meshcrew.errors.RemoteProtocolError`; misuse by the caller raises
:class:`~meshcrew.errors.LocalProtocolError`. After either, the session is dead.

Pure: no I/O, no clock. The record source is called synchronously.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from meshcrew.errors import ConnectionLost, LocalProtocolError, RemoteProtocolError
from meshcrew.records import KEY_BYTES, Frontier, Head, Record
from meshcrew.sync.events import PeerFrontier, RecordsReceived, SyncEvent, SyncStats
from meshcrew.sync.reconcile import Reconciler
from meshcrew.sync.wire import (
    MAX_BATCH_BYTES,
    MAX_BATCH_RECORDS,
    MAX_OFFERS,
    MAX_RECORDS_PER_SPACE,
    SYNC_VERSION,
    SYNC_VERSIONS,
    DoneMsg,
    FrameBuffer,
    FrontierMsg,
    Hello,
    Message,
    Offer,
    ReconcileMsg,
    RecordsMsg,
    decode_frontier,
    decode_message,
    encode_frontier,
    encode_message,
    frontier_digest,
    record_space,
    space_token,
)


class RecordSource(Protocol):
    """What a session reads from the local replica (``store.Replica`` satisfies it)."""

    def frontier(self, space_id: bytes) -> Mapping[bytes, Head]:
        """Per author, the head of their contiguous chain in the space."""
        ...

    def records_after(self, space_id: bytes, theirs: Frontier, *, limit: int) -> Sequence[Record]:
        """Up to ``limit`` records of the space that ``theirs`` lacks, in chain order per author."""
        ...


@dataclass(slots=True)
class _Space:
    """Per-space state of a session (only spaces both sides offered get past ``hello``)."""

    space_id: bytes
    token: bytes
    frontier_blob: bytes
    digest: bytes
    # set once the peer's hello names this space with a different digest
    active: bool = False
    peer_digest: bytes = b""
    # learning the peer's frontier (version 2: by reconciliation, or whole as a fallback)
    reconciler: Reconciler | None = None
    frontier_sent: bool = False
    frontier_received: bool = False
    # sending side: the peer's frontier advanced by every record sent (None until known)
    cursor: dict[bytes, Head] | None = None
    pending: deque[Record] = field(default_factory=deque)
    sent: int = 0
    send_done: bool = False
    # receiving side
    received: int = 0
    recv_done: bool = False
    more: bool = False


def _level(space: _Space) -> bool:
    """Whether a space both sides offered is level: in sync at ``hello``, or both ``done`` sent
    with nothing left over on either side (neither stopped at the per-session cap)."""
    if not space.active:
        return True
    return (space.send_done and space.recv_done and not space.more
            and space.sent < MAX_RECORDS_PER_SPACE)


class SyncSession:
    """One side of one sync exchange.

    Args:
        local_key: this member's public key.
        remote_key: the peer's public key, as authenticated by the transport.
        spaces: the spaces to offer: those this node belongs to *and* in which ``remote_key`` is a
            member by this node's view. At most ``MAX_OFFERS`` are offered (the lowest tokens).
        source: the local replica.
        version: the protocol version the stream was opened for (both sides must use the
            same; ``meshcrew.net`` negotiates it with the stream's protocol id).
    """

    def __init__(self, local_key: bytes, remote_key: bytes, spaces: Iterable[bytes],
                 source: RecordSource, *, version: int = SYNC_VERSION) -> None:
        if len(local_key) != KEY_BYTES or len(remote_key) != KEY_BYTES:
            raise LocalProtocolError("sync keys must be 32-byte ed25519 public keys")
        if version not in SYNC_VERSIONS:
            raise LocalProtocolError(f"sync version {version} is not one this node speaks")
        self.version = version
        self._initiator = local_key < remote_key
        self._source = source
        by_token: dict[bytes, _Space] = {}
        for space_id in set(spaces):
            token = space_token(space_id, local_key, remote_key)
            blob = encode_frontier(source.frontier(space_id))
            by_token[token] = _Space(space_id, token, blob, frontier_digest(blob))
        offered = sorted(by_token)[:MAX_OFFERS]
        self._spaces = {token: by_token[token] for token in offered}
        self._frames = FrameBuffer()
        self._out = bytearray(encode_message(
            Hello(version, tuple(Offer(t, self._spaces[t].digest) for t in offered))))
        self._hello_received = False
        self._common: list[_Space] = []
        self._active: list[_Space] = []
        self._turn = 0
        self._failed = False
        self._bytes_sent = 0
        self._bytes_received = 0

    # --- state ---------------------------------------------------------------------------------

    @property
    def complete(self) -> bool:
        """Whether the exchange is over: all sent (taken by data_to_send) and all received."""
        return (self._hello_received and not self._out
                and all(s.send_done and s.recv_done for s in self._active))

    @property
    def failed(self) -> bool:
        """Whether a call failed the session (every later call raises LocalProtocolError)."""
        return self._failed

    @property
    def stats(self) -> SyncStats:
        """Counts so far (final once :attr:`complete`)."""
        return SyncStats(
            spaces_offered=len(self._spaces),
            spaces_in_common=len(self._common),
            spaces_in_sync=len(self._common) - len(self._active),
            records_sent=sum(s.sent for s in self._active),
            records_received=sum(s.received for s in self._active),
            bytes_sent=self._bytes_sent,
            bytes_received=self._bytes_received,
            more_from_peer=frozenset(s.space_id for s in self._active if s.more),
            spaces_synced=frozenset(s.space_id for s in self._common if _level(s)),
            version=self.version,
            frontiers_sent=sum(s.frontier_sent for s in self._active),
        )

    # --- input ---------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[SyncEvent]:
        """Feed bytes received from the peer; return the events they complete, in order.

        Raises:
            RemoteProtocolError: the peer broke the protocol; abandon the stream.
            LocalProtocolError: the session already failed.
        """
        self._check_alive()
        if not data:
            return []
        if self.complete:
            self._failed = True
            raise RemoteProtocolError("The peer sent data after the sync exchange was complete.")
        self._bytes_received += len(data)
        self._frames.feed(data)
        events: list[SyncEvent] = []
        try:
            self._consume_frames(events)
        except RemoteProtocolError:
            self._failed = True
            raise
        return events

    def _consume_frames(self, events: list[SyncEvent]) -> None:
        while (payload := self._frames.next_frame()) is not None:
            self._handle(decode_message(payload), events)
            if self.complete and len(self._frames):
                raise RemoteProtocolError("The peer sent data after the exchange was complete.")

    def receive_eof(self) -> None:
        """The peer closed its side of the stream.

        Raises:
            ConnectionLost: the stream ended before the exchange was complete, between frames or
                inside one (a reset looks the same as a close on libp2p streams, and so does a
                connection closed by a node that stops or loses its network in the middle of a
                batch; none of it is held against the peer).
        """
        self._check_alive()
        if len(self._frames):
            self._failed = True
            raise ConnectionLost("The sync stream ended in the middle of a frame.")
        if not self.complete:
            self._failed = True
            raise ConnectionLost("The sync stream ended before the exchange was complete.")

    def _check_alive(self) -> None:
        if self._failed:
            raise LocalProtocolError("this sync session already failed; open a new one")

    def _space(self, token: bytes) -> _Space:
        space = self._spaces.get(token)
        if space is None or not space.active:
            raise RemoteProtocolError("The peer sent data for a space not agreed in this session.")
        return space

    def _handle(self, msg: Message, events: list[SyncEvent]) -> None:
        if not self._hello_received and not isinstance(msg, Hello):
            raise RemoteProtocolError("The peer's first sync message is not hello.")
        match msg:
            case Hello():
                self._on_hello(msg, events)
            case FrontierMsg(token, blob):
                self._on_frontier(self._space(token), blob, events)
            case ReconcileMsg(token, payload):
                space = self._space(token)
                if space.reconciler is None or space.reconciler.finished() or space.recv_done:
                    raise RemoteProtocolError("The peer sent reconciliation out of turn.")
                answer = space.reconciler.receive(payload)
                if answer is not None:
                    self._out += encode_message(ReconcileMsg(space.token, answer))
                if space.reconciler.finished():
                    self._on_reconciled(space, events)
            case RecordsMsg(token, raws):
                space = self._space(token)
                if not self._may_receive(space):
                    raise RemoteProtocolError("The peer sent records out of turn.")
                if space.received + len(raws) > MAX_RECORDS_PER_SPACE:
                    raise RemoteProtocolError("The peer sent more records than a session allows.")
                if any(record_space(raw) != space.space_id for raw in raws):
                    raise RemoteProtocolError("The peer sent a record of another space.")
                space.received += len(raws)
                events.append(RecordsReceived(space.space_id, raws))
            case DoneMsg(token, more):
                space = self._space(token)
                if not self._may_receive(space):
                    raise RemoteProtocolError("The peer ended a space out of turn.")
                space.recv_done = True
                space.more = more

    def _may_receive(self, space: _Space) -> bool:
        """Whether the peer may send records or ``done`` for an active space now: in version 1
        once it sent its frontier; in version 2 whenever it knows this side's (which this
        side cannot tell); never after its ``done``."""
        if space.recv_done:
            return False
        return self.version >= 2 or space.frontier_received

    def _on_frontier(self, space: _Space, blob: bytes, events: list[SyncEvent]) -> None:
        """The peer's whole frontier: version 1's second message, version 2's fallback."""
        if space.frontier_received:
            raise RemoteProtocolError("The peer sent a space's frontier twice.")
        if frontier_digest(blob) != space.peer_digest:
            raise RemoteProtocolError("The peer's frontier does not match its digest.")
        theirs = decode_frontier(blob)
        space.frontier_received = True
        if space.cursor is None:
            self._learned(space, theirs, events)
        self._send_frontier(space)  # version 2: a frontier is answered by a frontier

    def _on_reconciled(self, space: _Space, events: list[SyncEvent]) -> None:
        assert space.reconciler is not None
        blob = space.reconciler.peer_blob()
        if space.cursor is not None:
            return  # the peer's whole frontier came first
        if frontier_digest(blob) == space.peer_digest:
            self._learned(space, decode_frontier(blob), events)
        else:  # a fingerprint collision, or a peer whose answers disagree with its hello
            self._send_frontier(space)

    def _send_frontier(self, space: _Space) -> None:
        if not space.frontier_sent:
            space.frontier_sent = True
            self._out += encode_message(FrontierMsg(space.token, space.frontier_blob))

    def _learned(self, space: _Space, theirs: dict[bytes, Head], events: list[SyncEvent]) -> None:
        """The peer's frontier is known: sending the records it lacks may begin."""
        space.cursor = dict(theirs)
        events.append(PeerFrontier(space.space_id, theirs))

    def _on_hello(self, hello: Hello, events: list[SyncEvent]) -> None:
        if self._hello_received:
            raise RemoteProtocolError("The peer sent hello twice.")
        if hello.version != self.version:
            raise RemoteProtocolError(f"The peer speaks sync version {hello.version} on a "
                                      f"stream of version {self.version}.")
        self._hello_received = True
        for offer in hello.offers:
            space = self._spaces.get(offer.token)
            if space is None:
                continue
            self._common.append(space)
            if offer.digest == space.digest:
                events.append(PeerFrontier(space.space_id, decode_frontier(space.frontier_blob)))
                continue
            space.active = True
            space.peer_digest = offer.digest
            self._active.append(space)
            if self.version == 1:
                self._send_frontier(space)
                continue
            space.reconciler = Reconciler(space.frontier_blob, initiator=self._initiator)
            if self._initiator:
                self._out += encode_message(ReconcileMsg(space.token, space.reconciler.start()))

    # --- output --------------------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        """Bytes to write to the peer now (empty if nothing is ready).

        Record batches are made on demand, at most one per call, so call again until it returns
        empty; then wait for received data (or for :attr:`complete`).

        Raises:
            LocalProtocolError: the session already failed.
        """
        self._check_alive()
        if not self._out:
            self._next_batch()
        data = bytes(self._out)
        self._out.clear()
        self._bytes_sent += len(data)
        return data

    def _next_batch(self) -> None:
        """Queue one batch (or a done) for the next space whose turn it is, round robin."""
        ready = [s for s in self._active if s.cursor is not None and not s.send_done]
        if not ready:
            return
        self._turn = (self._turn + 1) % len(ready)
        space = ready[self._turn]
        if not space.pending and not self._fetch(space):
            space.send_done = True
            more = space.sent >= MAX_RECORDS_PER_SPACE
            self._out += encode_message(DoneMsg(space.token, more))
            return
        assert space.cursor is not None
        batch: list[bytes] = []
        size = 0
        while space.pending and len(batch) < MAX_BATCH_RECORDS:
            record = space.pending[0]
            if batch and size + len(record.raw) > MAX_BATCH_BYTES:
                break
            space.pending.popleft()
            batch.append(record.raw)
            size += len(record.raw)
            space.cursor[record.author] = Head(record.seq, record.id)
        space.sent += len(batch)
        self._out += encode_message(RecordsMsg(space.token, tuple(batch)))

    def _fetch(self, space: _Space) -> bool:
        """Refill ``space.pending`` from the source; False when there is nothing left to send."""
        assert space.cursor is not None
        room = MAX_RECORDS_PER_SPACE - space.sent
        if room <= 0:
            return False
        try:
            fetched = self._source.records_after(space.space_id, space.cursor,
                                                 limit=min(MAX_BATCH_RECORDS, room))
        except BaseException:
            self._failed = True
            raise
        # Keep only records that extend the peer's chains one by one, or that differ from the
        # peer's head at its own seq (evidence of a fork, which the replica offers on purpose),
        # so a source that repeats itself or skips cannot make the session loop, send a record
        # twice or send a gap.
        reached = dict(space.cursor)
        for record in fetched[:room]:
            head = reached.get(record.author)
            seq, head_id = (head.seq, head.id) if head else (0, b"")
            if record.space_id == space.space_id and (
                    record.seq == seq + 1 or (record.seq == seq and record.id != head_id)):
                reached[record.author] = Head(record.seq, record.id)
                space.pending.append(record)
        return bool(space.pending)
