"""The join handshake on ``/meshcrew/join/1.0.0``: let an invited person's node in.

A joiner is not a member yet, so the sync protocol serves it nothing. This protocol bridges the
gap: the joiner proves it holds the invite's secret, a member's node sends it the space's
history, the joiner signs its join, the member's node takes it in (its housekeeping rotates the
keys when it made the invite, so the joiner can read) and sends back what the joiner lacks. From
then on the joiner is a member and ordinary sync and gossip take over.

Messages are framed as in sync (varint length, msgpack array, first element the type):

| type | name | array | direction |
| --- | --- | --- | --- |
| 0 | ask | ``[0, 1, space id, invite id, proof]`` | joiner → member |
| 1 | history | ``[1, total]`` | member → joiner |
| 2 | records | ``[2, [record, ...]]`` (at most 256 records, 512 KiB) | member → joiner |
| 3 | sent | ``[3]`` | member → joiner |
| 4 | join | ``[4, record]`` | joiner → member |
| 5 | welcome | ``[5, [record, ...]]`` | member → joiner |
| 6 | refused | ``[6, reason, sentence]`` | member → joiner |

The proof is the invite key's signature over the space id and the joiner's key
(:func:`meshcrew.spaces.invites.prove_invite`); the joiner's key is its peer id, authenticated by
Noise, so a proof overheard or replayed by anyone else proves nothing. A member's node refuses
(``refused``) when it is not in the space (``not_here``: the joiner tries another node), when the
invite cannot be used (its reason), or when the proof or the join is wrong; a wrong proof or join
also costs the joiner penalty points.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgpack
import trio

from meshcrew.errors import JoinRefused, NetError, RemoteProtocolError
from meshcrew.net import INVALID_RECORD, PROTOCOL_VIOLATION, Stream
from meshcrew.reasons import Reason
from meshcrew.records import ID_BYTES, SIG_BYTES, Head, Record, RecordError, decode_and_verify
from meshcrew.spaces import RecordKind
from meshcrew.spaces.invites import InviteCode, prove_invite, verify_invite_proof
from meshcrew.sync import MAX_BATCH_BYTES, MAX_BATCH_RECORDS, RecordSource
from meshcrew.sync.wire import FrameBuffer

JOIN_PROTOCOL = "/meshcrew/join/1.0.0"
JOIN_VERSION = 1
NOT_HERE = "not_here"
"""The refusal of a node that is not a member of the space (the joiner asks another)."""

TOO_MANY_UNFINISHED = "too_many_unfinished"
"""The refusal of an invite whose histories were fetched too often without a join."""
UNFINISHED_PER_INVITE = 6
UNFINISHED_WINDOW_S = 3600.0
"""A joiner may leave after the history without its join (it was cancelled, timed out, its node
stopped) and costs nothing for it; the same invite may leave so at most UNFINISHED_PER_INVITE
times within UNFINISHED_WINDOW_S: else a leaked code would make this node send the space's whole
history over and over, under any peer id."""
_INVITES_KEPT = 256

ASK, HISTORY, RECORDS, SENT, JOIN, WELCOME, REFUSED = range(7)

log = logging.getLogger("meshcrew.node")

_REFUSALS = {
    NOT_HERE: "That node is not a member of this space.",
    Reason.INVITE_UNKNOWN.value: "The member's node does not know this invite (was it made in "
                                 "another space, or not yet synced to that node?).",
    Reason.INVITE_EXPIRED.value: "This invite has expired; ask for a new one.",
    Reason.INVITE_EXHAUSTED.value: "This invite has already been used; ask for a new one.",
    Reason.INVITE_REVOKED.value: "This invite no longer admits anyone: its maker was removed.",
    Reason.SPACE_FULL.value: "This space is full.",
    Reason.INVITE_BAD_PROOF.value: "The invite code does not prove its secret; was it copied "
                                   "whole?",
    TOO_MANY_UNFINISHED: "Joins with this invite were started and left unfinished too often "
                         "in the last hour; try again later, or ask for a new invite.",
}


def encode_frame(message: list[Any]) -> bytes:
    """One frame: a varint length, then the msgpack array."""
    payload: bytes = msgpack.packb(message, use_bin_type=True)
    length = len(payload)
    prefix = bytearray()
    while True:
        byte = length & 0x7F
        length >>= 7
        prefix.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(prefix) + payload


class StreamEnded(RemoteProtocolError):
    """The peer ended the stream before its next message: a refusal or a peer that went away,
    which a protocol may take for a violation or not."""


class Messages:
    """Reads whole messages from a stream (each read under the stream's deadline)."""

    def __init__(self, stream: Stream) -> None:
        self._stream = stream
        self._frames = FrameBuffer()

    async def next(self) -> list[Any]:
        """The next message array.

        Raises:
            RemoteProtocolError: a malformed frame or message, or the stream ended.
            NetError: the stream stalled or broke.
        """
        while (payload := self._frames.next_frame()) is None:
            data = await self._stream.receive_some()
            if not data:
                raise StreamEnded("The peer closed the stream early.")
            self._frames.feed(data)
        try:
            message = msgpack.unpackb(payload, raw=False, use_list=True)
        except (ValueError, TypeError, OverflowError, msgpack.UnpackException):
            raise RemoteProtocolError("A join message is not valid msgpack.") from None
        if not isinstance(message, list) or not message or type(message[0]) is not int:
            raise RemoteProtocolError("A join message is not a message array.")
        return message


def _records(message: list[Any]) -> list[bytes]:
    if len(message) != 2 or not isinstance(message[1], list) or \
            not all(isinstance(raw, bytes) for raw in message[1]):
        raise RemoteProtocolError("A join message's records are malformed.")
    return list(message[1])


def history_batches(replica: RecordSource, space_id: bytes, cursor: dict[bytes, Head]
                    ) -> list[bytes]:
    """The next batch of the space's records after ``cursor`` (advanced past them)."""
    batch: list[bytes] = []
    size = 0
    for record in replica.records_after(space_id, cursor, limit=MAX_BATCH_RECORDS):
        if batch and size + len(record.raw) > MAX_BATCH_BYTES:
            break
        batch.append(record.raw)
        size += len(record.raw)
        cursor[record.author] = Head(record.seq, record.id)
    return batch


@dataclass(frozen=True, slots=True)
class Admission:
    """What the member's node made of a join record."""

    accepted: bool
    reason: str = ""


class JoinServer:
    """A member's node's side: serves ``/meshcrew/join/1.0.0``.

    Args:
        replica: the member's replica, as sync reads it (the node's: each space's retention
            applied before it is served, ``node/retention.py``).
        is_active: whether this member is in a space (``is_active(space_id)``).
        check_invite: why a join with an invite signed now would be refused
            (``check_invite(space_id, invite_id) -> (public key or None, Reason or None)``).
        admit: takes a joiner's join record in (as from ``sender``) and says whether the space
            accepted it; the node's housekeeping rotates the keys meanwhile.
        penalize: costs a peer points.
    """

    def __init__(self, replica: RecordSource, *, is_active: Callable[[bytes], bool],
                 check_invite: Callable[[bytes, bytes], tuple[bytes | None, Reason | None]],
                 admit: Callable[[Record, str], Awaitable[Admission]],
                 penalize: Callable[[str, float, str], None]) -> None:
        self._replica = replica
        self._is_active = is_active
        self._check_invite = check_invite
        self._admit = admit
        self._penalize = penalize
        self._unfinished: dict[bytes, list[float]] = {}
        """Per invite id, when histories were sent that no join has followed yet."""

    async def serve(self, stream: Stream) -> None:
        """Serve one joiner; protocol violations cost points, then the stream is reset.

        A joiner that goes away (ends or breaks the stream before its next message) loses
        nothing: its user cancelled, its join timed out, its node stopped, or storing the history
        failed there. Two such ends at 50 points banned an honest joiner, whose later joins
        this node then refused unread.
        """
        try:
            await self._serve(stream)
        except (StreamEnded, NetError) as exc:
            log.info("a joiner %s went away: %s", stream.peer_id, exc)
            await stream.reset()
            return
        except RemoteProtocolError as exc:
            self._penalize(stream.peer_id, PROTOCOL_VIOLATION, str(exc))
            await stream.reset()
            return
        await stream.aclose()

    def _start_pull(self, invite_id: bytes) -> float | None:
        """Note a history about to be sent with this invite; None if the invite has left too
        many unfinished within the window."""
        now = trio.current_time()
        pulls = [t for t in self._unfinished.pop(invite_id, []) if now - t < UNFINISHED_WINDOW_S]
        self._unfinished[invite_id] = pulls  # newest last: the oldest invite goes first
        if len(self._unfinished) > _INVITES_KEPT:
            del self._unfinished[next(iter(self._unfinished))]
        if len(pulls) >= UNFINISHED_PER_INVITE:
            return None
        pulls.append(now)
        return now

    async def _refuse(self, stream: Stream, reason: str) -> None:
        sentence = _REFUSALS.get(reason) or (Reason(reason).sentence if reason in
                                             Reason._value2member_map_ else reason)
        await stream.send_all(encode_frame([REFUSED, reason, sentence]))

    async def _serve(self, stream: Stream) -> None:
        messages = Messages(stream)
        ask = await messages.next()
        if (len(ask) != 5 or ask[0] != ASK or ask[1] != JOIN_VERSION
                or not all(isinstance(v, bytes) for v in ask[2:])
                or len(ask[2]) != ID_BYTES or len(ask[3]) != ID_BYTES or len(ask[4]) != SIG_BYTES):
            raise RemoteProtocolError("The first join message is not a well-formed ask.")
        space_id, invite_id, proof = ask[2], ask[3], ask[4]
        if not self._is_active(space_id):
            await self._refuse(stream, NOT_HERE)
            return
        public_key, problem = self._check_invite(space_id, invite_id)
        if problem is not None or public_key is None:
            await self._refuse(stream, (problem or Reason.INVITE_UNKNOWN).value)
            return
        if not verify_invite_proof(public_key, space_id, stream.remote_key, proof):
            self._penalize(stream.peer_id, INVALID_RECORD, "a join asked with a wrong proof")
            await self._refuse(stream, Reason.INVITE_BAD_PROOF.value)
            return
        started = self._start_pull(invite_id)
        if started is None:
            log.info("refusing a join from %s: its invite's histories were left unfinished "
                     "%d times within the hour", stream.peer_id, UNFINISHED_PER_INVITE)
            await self._refuse(stream, TOO_MANY_UNFINISHED)
            return
        frontier = self._replica.frontier(space_id)
        await stream.send_all(encode_frame([HISTORY, sum(h.seq for h in frontier.values())]))
        cursor: dict[bytes, Head] = {}
        while batch := history_batches(self._replica, space_id, cursor):
            await stream.send_all(encode_frame([RECORDS, batch]))
        await stream.send_all(encode_frame([SENT]))

        message = await messages.next()
        if len(message) != 2 or message[0] != JOIN or not isinstance(message[1], bytes):
            raise RemoteProtocolError("The joiner did not send its join.")
        self._unfinished[invite_id].remove(started)  # a join followed: this pull is finished
        try:
            join = decode_and_verify(message[1])
        except RecordError as exc:
            raise RemoteProtocolError(f"The joiner's join is not a valid record: {exc}") from None
        if join.kind != RecordKind.JOIN or join.author != stream.remote_key \
                or join.space_id != space_id:
            raise RemoteProtocolError("The joiner sent another record than its join.")
        admission = await self._admit(join, stream.peer_id)
        if not admission.accepted:
            await self._refuse(stream, admission.reason or Reason.NOT_ALLOWED.value)
            return
        cursor[join.author] = Head(join.seq, join.id)
        await stream.send_all(encode_frame(
            [WELCOME, history_batches(self._replica, space_id, cursor)]))


async def ask_to_join(stream: Stream, code: InviteCode, me: bytes, *,
                      take: Callable[[list[bytes]], Awaitable[None]],
                      sign_join: Callable[[], Awaitable[bytes]],
                      on_history: Callable[[int, int], Awaitable[None]]) -> int:
    """The joiner's side, on a stream to a member's node; returns how many records arrived.

    Args:
        stream: an open ``/meshcrew/join/1.0.0`` stream.
        code: the invite code.
        me: this member's public key (the stream's authenticated local key).
        take: stores records from the member (the space's history, then the welcome).
        sign_join: signs, stores and returns this member's join record.
        on_history: ``on_history(received, total)`` after each batch.

    Raises:
        JoinRefused: the member's node refused (``reason`` says why; ``not_here`` means ask
            another node).
        RemoteProtocolError, NetError: the exchange broke.
    """
    messages = Messages(stream)
    proof = prove_invite(code.secret, code.space_id, me)
    await stream.send_all(encode_frame([ASK, JOIN_VERSION, code.space_id, code.invite_id, proof]))
    first = _refusal_or(await messages.next(), HISTORY)
    if len(first) != 2 or type(first[1]) is not int:
        raise RemoteProtocolError("A malformed history message.")
    total, received = first[1], 0
    await on_history(0, total)
    while (message := _refusal_or(await messages.next(), RECORDS, SENT))[0] == RECORDS:
        raws = _records(message)
        await take(raws)
        received += len(raws)
        await on_history(received, total)
    await stream.send_all(encode_frame([JOIN, await sign_join()]))
    welcome = _records(_refusal_or(await messages.next(), WELCOME))
    await take(welcome)
    await stream.aclose()
    return received + len(welcome)


def _refusal_or(message: list[Any], *wanted: int) -> list[Any]:
    if message[0] == REFUSED:
        if len(message) != 3 or not all(isinstance(v, str) for v in message[1:]):
            raise RemoteProtocolError("A malformed refusal.")
        raise JoinRefused(message[2][:300], message[1][:40])
    if message[0] not in wanted:
        raise RemoteProtocolError(f"An unexpected join message (type {message[0]}).")
    return message

