"""Expiry notices: members tell a space's carriers which of its posts expired.

A carrier cannot read a space's settings (they are sealed), so it cannot apply the retention
rule (``docs/spaces.md``, "Retention") itself, and would keep an expired post's ciphertext and
hand it to a joiner. Each member's node therefore tells the connected carriers of its spaces
which posts it has replaced by husks, on ``/meshcrew/expired/1.0.0``:

- the member sends ``[space id, ids]`` (``ids``: record ids, 32 bytes each, at most
  :data:`MAX_IDS` in one request); the carrier answers ``[held]``, a bitmap saying for each id
  (bit ``i`` of byte ``i // 8``, lowest bit first) whether it now holds that record as a husk.
  One request per stream; a member with more to say opens another.
- the carrier takes the word only of a **current member** of a space it **carries** (the stream's
  key, authenticated by the transport, among the members and their devices in its fold of the
  plaintext membership records). Anyone else's stream is reset unanswered, and nothing is
  changed: a stranger, a removed member or another carrier cannot make it drop a record.
- it replaces by its husk only an accepted **post** (kind ``sealed``: never a membership record)
  that is **not the newest record of its chain** (receivers check a chain from its newest record
  down, rule 4), wipes the ciphertext from the disk as every member's node does
  (:meth:`meshcrew.store.Replica.expire`: ``secure_delete``, the write-ahead log truncated), and
  from then on serves the husk, which a joiner takes when the next record of the chain names it.
- the member's node sends each carrier the husks of a space it has not yet confirmed holding,
  once per connection and again after each retention pass that expired something
  (:class:`ExpiryNotices`); ids a carrier did not take (it has not received the post yet, or
  the author's next record has not reached it) are sent again a few times, backing off, and
  at the next connection or expiry.

What it does not prevent: a current member can make a carrier drop any post that is not the
newest of its chain (the carrier cannot check the rule); a member can already send a joiner
husks in place of posts directly, so this gives a member no new power over what others read,
and members keep the posts the carrier dropped. A carrier learns which posts expired and when,
and so roughly the space's retention.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

import trio

from meshcrew.errors import MeshcrewError, NetError
from meshcrew.identity import public_key_of_peer_id
from meshcrew.net import PROTOCOL_VIOLATION, Host, Stream
from meshcrew.net.frames import read_message, write_message
from meshcrew.node.bringing import Bringer
from meshcrew.node.carrying import Serving
from meshcrew.node.membership import Membership
from meshcrew.records import ID_BYTES, RecordError, encode_husk
from meshcrew.spaces.bodies import SealedBody, parse_body
from meshcrew.spaces.retention import husk_stub
from meshcrew.store import Replica
from meshcrew.store.carrying import husk_ids

log = logging.getLogger("meshcrew.node")

EXPIRED_PROTOCOL = "/meshcrew/expired/1.0.0"
MAX_IDS = 1024
"""Most record ids in one notice (32 KiB)."""
_MAX_FRAME = 64 + MAX_IDS * ID_BYTES
RETRY_S = 5.0
"""How long a member's node waits before it sends again what a carrier did not take."""
RETRIES = 5
NOTICE_TIMEOUT_S = 20.0
"""The longest a notice and its answer may take, either side."""


class ExpiryNotices(Bringer):
    """A member's side: tell each connected carrier of this member's spaces which posts have
    expired here, until it says it holds them as husks.

    Args:
        host: the running host.
        serving: which carriers each space names.
        membership: this member's spaces.
        replica: where the husks are.
    """

    def __init__(self, host: Host, serving: Serving, membership: Membership,
                 replica: Replica) -> None:
        super().__init__(host, self._tell)
        self._serving = serving
        self._membership = membership
        self._replica = replica
        self._confirmed: dict[tuple[bytes, bytes], set[bytes]] = {}
        """Per (carrier key, space), the husks it said it holds."""
        self._telling: set[tuple[str, bytes]] = set()
        self._again: set[tuple[str, bytes]] = set()

    def expired(self, space_id: bytes) -> None:
        """Posts of a space have just become husks here: tell its connected carriers again."""
        self._brought = {pair for pair in self._brought if pair[1] != space_id}
        self.changed()

    def due(self) -> list[tuple[bytes, bytes]]:
        return [(space_id, key) for space_id in self._membership.my_spaces()
                for key in self._serving.carriers(space_id)
                if self._replica.expired_count(space_id)
                > len(self._confirmed.get((key, space_id), ()))]

    async def _tell(self, peer_id: str, space_id: bytes) -> str | None:
        """Send the carrier the husks it has not confirmed; those it does not take (it has
        not received the post yet, or the post is still its chain's newest record there: the
        author's next record is on its way) are sent again after :data:`RETRY_S`, doubling,
        at most :data:`RETRIES` times. One task per carrier and space: asked again while it
        runs, it runs once more after."""
        pair = (peer_id, space_id)
        if pair in self._telling:
            self._again.add(pair)
            return None
        self._telling.add(pair)
        try:
            await self._tell_now(peer_id, space_id)
            while pair in self._again:
                self._again.discard(pair)
                await self._tell_now(peer_id, space_id)
        finally:
            self._telling.discard(pair)
            self._again.discard(pair)
        return None

    async def _tell_now(self, peer_id: str, space_id: bytes) -> None:
        key = public_key_of_peer_id(peer_id)
        confirmed = self._confirmed.setdefault((key, space_id), set())
        for attempt in range(RETRIES + 1):
            if attempt:
                await trio.sleep(RETRY_S * 2 ** (attempt - 1))
                if peer_id not in self._host.connected_peers():
                    return
            untold = sorted(husk_ids(self._replica, space_id) - confirmed)
            if not untold:
                return
            for start in range(0, len(untold), MAX_IDS):
                ids = untold[start:start + MAX_IDS]
                held = await send_notice(self._host, peer_id, space_id, ids)
                confirmed.update(rid for rid, yes in zip(ids, held, strict=True) if yes)
            if confirmed.issuperset(untold):
                return


async def send_notice(host: Host, peer_id: str, space_id: bytes, ids: list[bytes]
                      ) -> list[bool]:
    """Tell a carrier that the posts ``ids`` of a space expired; whether it holds each as a
    husk now.

    Raises:
        NetError: the carrier could not be reached, refused to listen or answered nonsense.
    """
    stream = await host.open_stream(peer_id, EXPIRED_PROTOCOL)
    try:
        with trio.move_on_after(NOTICE_TIMEOUT_S) as waited:
            await _write_frame(stream, [space_id, b"".join(ids)])
            try:
                answer = await _read_frame(stream)
            except ValueError:  # too long, or not msgpack: the peer's fault, not a crash
                answer = None
        if waited.cancelled_caught:
            raise NetError(f"Carrier {peer_id} did not answer an expiry notice in time.")
        if (not isinstance(answer, list) or len(answer) != 1 or not isinstance(answer[0], bytes)
                or len(answer[0]) != (len(ids) + 7) // 8):
            host.penalize(peer_id, PROTOCOL_VIOLATION, "malformed expiry answer")
            raise NetError(f"Carrier {peer_id} answered an expiry notice with nonsense.")
        bits = answer[0]
        return [bool(bits[i // 8] >> (i % 8) & 1) for i in range(len(ids))]
    finally:
        if not stream.finished:
            await stream.aclose()


class ExpiryListener:
    """A carrier's side: take a current member's word that posts of a carried space expired.

    Args:
        replica: the carrier's replica.
        serving: which spaces it carries.
        membership: its folds of their membership records.
        host: to penalize malformed requests.
    """

    def __init__(self, replica: Replica, serving: Serving, membership: Membership,
                 host: Host) -> None:
        self._replica = replica
        self._serving = serving
        self._membership = membership
        self._host = host

    async def serve(self, stream: Stream) -> None:
        """One notice on one stream."""
        try:
            with trio.fail_after(NOTICE_TIMEOUT_S):
                space_id, ids = _notice_of(await _read_frame(stream))
        except (NetError, trio.TooSlowError) as exc:
            log.info("expiry: no notice from %s: %s", stream.peer_id, exc)
            await stream.reset()
            return
        except ValueError as exc:
            log.info("expiry: a malformed notice from %s: %s", stream.peer_id, exc)
            self._host.penalize(stream.peer_id, PROTOCOL_VIOLATION, "malformed expiry notice")
            await stream.reset()
            return
        if (space_id not in self._serving.carried() or space_id in self._membership.my_spaces()
                or stream.remote_key not in self._membership.active(space_id)):
            log.info("expiry: a notice from %s, not a member of a space carried here",
                     stream.peer_id)
            await stream.reset()  # tell a stranger nothing, not even that the space is here
            return
        held, done = self.take(space_id, ids)
        if done:
            log.info("expiry: %d posts of space %s expired on the word of %s", done,
                     space_id.hex()[:12], stream.peer_id)
        bits = bytearray((len(ids) + 7) // 8)
        for i, rid in enumerate(ids):
            if rid in held:
                bits[i // 8] |= 1 << (i % 8)
        try:
            with trio.fail_after(NOTICE_TIMEOUT_S):
                await _write_frame(stream, [bytes(bits)])
        except (MeshcrewError, trio.TooSlowError) as exc:
            log.info("expiry: could not answer %s: %s", stream.peer_id, exc)
        await stream.aclose()

    def take(self, space_id: bytes, ids: Collection[bytes]) -> tuple[set[bytes], int]:
        """Replace the named posts of a space by their husks (see the module's rules); the ids
        held as husks afterwards, and how many became husks now."""
        heads = {head.id for head in self._replica.frontier(space_id).values()}
        held: set[bytes] = set()
        husks: dict[bytes, bytes] = {}
        for rid in ids:
            record = self._replica.get(rid)
            if record is None or record.space_id != space_id:
                continue
            if record.expired:
                held.add(rid)
                continue
            if rid in heads:
                continue
            try:
                body = parse_body(record.kind, record.body)
            except RecordError:
                continue
            if isinstance(body, SealedBody):
                husks[rid] = encode_husk(record, husk_stub(body))
        done = self._replica.expire(husks) if husks else 0
        return held | set(husks), done


def _notice_of(request: object) -> tuple[bytes, list[bytes]]:
    if (not isinstance(request, list) or len(request) != 2 or not isinstance(request[0], bytes)
            or len(request[0]) != ID_BYTES or not isinstance(request[1], bytes)
            or len(request[1]) % ID_BYTES or len(request[1]) > MAX_IDS * ID_BYTES):
        raise ValueError("not [space id, ids]")
    blob = request[1]
    return request[0], [blob[i:i + ID_BYTES] for i in range(0, len(blob), ID_BYTES)]


async def _write_frame(stream: Stream, value: object) -> None:
    await write_message(stream, value, prefix=4)


async def _read_frame(stream: Stream) -> object:
    """Raises: NetError: the stream broke or ended; ValueError: too long, or not msgpack."""
    return await read_message(stream, prefix=4, limit=_MAX_FRAME, what="an expiry message")
