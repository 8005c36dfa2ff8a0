"""Carriers: always-on nodes that hold and serve a space's sealed records without reading them.

A space names its carriers by record (``docs/spaces.md``, "Carriers"). This module is both sides:

- :class:`Serving` says which spaces this node syncs and with whom: a member's own spaces with
  their members and named carriers; on a carrier, also the spaces that name it, with their
  members. Sync offers, gossip topics (:meth:`Serving.sees_gossip`) and who may push records
  all follow it.
- :class:`Carrying` runs on a carrier (``meshcrew node --carrier``). A carrier knows nothing of a
  space until a member brings it: on ``/meshcrew/carry/1.0.0`` the member names the space and,
  if the carrier takes it, the two run an ordinary sync session for that one space, the carrier
  verifying every envelope, signature and chain as any replica does. If the space's records do
  not name the carrier it deletes them and says so. After that, ordinary sync and gossip keep it
  level (each rotation seals the epoch's transit key to the carriers named then: it opens,
  verifies and forwards gossip). It holds a quota per space and in total (refusing past it,
  with a reason the member's node logs), refuses records of spaces that have not named it,
  and deletes a space that has dropped it after a grace period.
- :func:`bring` is the member's side of the carry protocol; :class:`CarrierContacts` runs it
  whenever a carrier of one of this member's spaces connects, or a space names a connected one.

A carrier has no epoch key, only transit keys: posts stay sealed. It learns member keys, sizes
and timing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import trio

from meshcrew.errors import MeshcrewError, NetError
from meshcrew.identity import peer_id_of, public_key_of_peer_id
from meshcrew.net import PROTOCOL_VIOLATION, Host, Stream
from meshcrew.net.frames import read_message, write_message
from meshcrew.node.bringing import Bringer, BringOne
from meshcrew.node.config import MIB, CarrierConfig
from meshcrew.node.membership import Membership
from meshcrew.reasons import Reason
from meshcrew.records import ID_BYTES, Frontier, Head, Record, record_id
from meshcrew.spaces.bodies import CarrierBody
from meshcrew.spaces.state import ChangeKind
from meshcrew.store import Replica
from meshcrew.store.carrying import delete_space, log_refusal, space_bytes, total_bytes
from meshcrew.sync.wire import record_space

log = logging.getLogger("meshcrew.node")

CARRY_PROTOCOL = "/meshcrew/carry/1.0.0"
LEFT_OUT_GRACE_MS = 10 * 60_000
"""How long a joiner whose join lapsed, or a dropped carrier, is still synced with, to learn it."""
_MAX_REQUEST = 256
_FORGET_EVERY_S = 60.0
@dataclass(frozen=True, slots=True)
class CarriedSpace:
    """One space a carrier holds (``status``)."""

    space: bytes
    records: int
    bytes: int
    named: bool
    """Still named; False while it waits out the grace period before deletion."""


class Serving:
    """Which spaces this node syncs, and with which keys.

    Args:
        membership: who is a member of what.
        me: this node's key.
        carrier: whether this node carries spaces that name it.
        clock: UTC milliseconds (for :data:`LAPSED_GRACE_MS`).
    """

    def __init__(self, membership: Membership, replica: Replica, me: bytes, *,
                 carrier: bool, clock: Callable[[], int] | None = None) -> None:
        self._membership = membership
        self._clock = clock
        self._replica = replica
        self._me = me
        self.carrier = carrier
        self._carried: list[bytes] | None = None
        self._carriers: dict[bytes, frozenset[bytes]] = {}
        self._left_out: dict[bytes, dict[bytes, int]] = {}
        """Per space, lapsed joiners and dropped carriers, with when (see :meth:`shares`)."""
        self._dropped: dict[bytes, frozenset[bytes]] = {}
        """Per space, which of those are dropped carriers (see :meth:`sees_gossip`)."""
        """Per space, the carriers it names: asked on every append (whom to sync next), so kept
        until a record that may change them arrives (reading the state would extend the
        space's view by every new post first)."""

    def changed(self) -> None:
        """A record that may change membership or carriers arrived: look again next time."""
        self._carried = None
        self._carriers.clear()
        self._left_out.clear()
        self._dropped.clear()

    def carried(self) -> list[bytes]:
        """The spaces that name this node as a carrier (on a carrier; else [])."""
        if not self.carrier:
            return []
        if self._carried is None:
            found = []
            for space_id in self._replica.spaces():
                state = self._membership.state(space_id)
                if state is not None and state.is_carrier(self._me):
                    found.append(space_id)
            self._carried = found
        return list(self._carried)

    def spaces(self) -> list[bytes]:
        """Every space this node syncs: its member's, and those it carries."""
        return list(dict.fromkeys([*self._membership.my_spaces(), *self.carried()]))

    def carriers(self, space_id: bytes) -> frozenset[bytes]:
        """The keys of the carriers a space names now."""
        carriers = self._carriers.get(space_id)
        if carriers is None:
            state = self._membership.state(space_id)
            carriers = frozenset(state.carriers) if state is not None else frozenset()
            self._carriers[space_id] = carriers
        return carriers

    def shares(self, space_id: bytes, key: bytes) -> bool:
        """Whether ``key`` may be offered and sent the records of ``space_id``: a current
        member; or, for a space this node is in or carries, a carrier the space names; or a
        joiner whose join lapsed, or a carrier the space dropped, in the last
        :data:`LEFT_OUT_GRACE_MS`, so that their node learns it (a lapsed joiner was sent the
        history when they joined, a carrier held it; neither holds a key); or a device of a
        current member, certified in another space (it follows its member into spaces joined
        later: ``node/following.py``). A removed member is not: after the next rotation they
        are sent nothing (docs/node.md)."""
        if self._membership.is_member(space_id, key) or key in self.carriers(space_id):
            return True
        member = self._membership.devices().get(key)
        if member is not None and member != key and self._membership.is_member(space_id, member):
            return True
        return self._lapsed_lately(space_id, key)

    def sees_gossip(self, space_id: bytes, key: bytes) -> bool:
        """Whether ``key`` may be told of the space's gossip topic: as :meth:`shares`, less a
        carrier the space dropped (it is synced for a while to learn of the drop, but holds no
        transit key to what is sealed after it)."""
        if key in self.carriers(space_id):
            return True
        if not self.shares(space_id, key):
            return False
        self._lapsed_lately(space_id, key)  # finds who was left out, and how
        return key not in self._dropped.get(space_id, ())

    def _lapsed_lately(self, space_id: bytes, key: bytes) -> bool:
        """A joiner whose join lapsed, or a carrier the space dropped, within the last
        :data:`LEFT_OUT_GRACE_MS`: still synced with so that their node learns it."""
        if self._clock is None:
            return False
        left_at = self._left_out.get(space_id)
        if left_at is None:
            left_at = self._left_out[space_id] = self._find_left_out(space_id)
        ts = left_at.get(key)
        return ts is not None and self._clock() - ts <= LEFT_OUT_GRACE_MS

    def _find_left_out(self, space_id: bytes) -> dict[bytes, int]:
        state = self._membership.state(space_id)
        if state is None:
            return {}
        found: dict[bytes, int] = {}
        for change in state.changes:
            record = state.records.get(change.record_id)
            if record is not None:
                if change.change is ChangeKind.LAPSED:
                    found[change.member] = record.ts
                else:
                    found.pop(change.member, None)
        dropped = set()
        for rid in state.order:
            body = state.bodies.get(rid)
            if isinstance(body, CarrierBody):
                if body.add:
                    found.pop(body.carrier, None)
                else:
                    found[body.carrier] = state.records[rid].ts
                    dropped.add(body.carrier)
        left = {k: ts for k, ts in found.items()
                if not state.is_member(k) and k not in state.carriers}
        self._dropped[space_id] = frozenset(dropped & set(left))
        return left

    def carrier_peers(self) -> set[str]:
        """Peer ids of the carriers of this member's spaces."""
        return {peer_id_of(k) for s in self._membership.my_spaces() for k in self.carriers(s)
                if k != self._me}


class Carrying:
    """The carrier's side: which records it takes, the carry protocol, quotas, forgetting.

    Args:
        replica: the carrier's replica.
        serving: which spaces it carries.
        membership: the folds.
        config: quotas and grace period.
        clock: UTC milliseconds.
        take: stores records from a peer (the node's ``take``).
    """

    def __init__(self, replica: Replica, serving: Serving, membership: Membership,
                 config: CarrierConfig, clock: Callable[[], int]) -> None:
        self._replica = replica
        self._serving = serving
        self._membership = membership
        self.config = config
        self._clock = clock
        self._bringing: set[bytes] = set()
        """Spaces a member is bringing in a carry session right now (not yet known named)."""
        self._dropped_at: dict[bytes, int] = {}

    # --- what is taken ----------------------------------------------------------------------

    def admit(self, raws: list[bytes], sender: str) -> list[bytes]:
        """The records a carrier takes: of spaces it carries (or is being brought) and within
        the quotas. The rest are logged as refused with their reason."""
        carried = set(self._serving.carried()) | self._bringing | set(self._mine())
        kept: list[bytes] = []
        used: dict[bytes, int] = {}
        total = None
        for raw in raws:
            space = record_space(raw)
            if space is None:
                kept.append(raw)  # not a record: the replica refuses it with its reason
                continue
            if space not in carried:
                self._refuse(raw, space, Reason.NOT_CARRIED, sender)
                continue
            if space not in used:
                used[space] = space_bytes(self._replica, space)
            if total is None:
                total = total_bytes(self._replica)
            if used[space] + len(raw) > self.config.space_quota_bytes:
                self._refuse(raw, space, Reason.OVER_QUOTA, sender,
                             f"{self.config.space_quota_bytes / MIB:g} MiB for this space")
                continue
            if total + len(raw) > self.config.total_quota_bytes:
                self._refuse(raw, space, Reason.OVER_QUOTA, sender,
                             f"{self.config.total_quota_bytes / MIB:g} MiB in all")
                continue
            used[space] += len(raw)
            total += len(raw)
            kept.append(raw)
        return kept

    def _mine(self) -> list[bytes]:
        return self._membership.my_spaces()

    def _refuse(self, raw: bytes, space: bytes, reason: Reason, sender: str,
                detail: str = "") -> None:
        log_refusal(self._replica, record_id(raw), reason, detail, sender, self._clock(), space)

    def held(self) -> list[CarriedSpace]:
        """The spaces this carrier holds (named now, or waiting out their grace period)."""
        named = set(self._serving.carried())
        out = []
        for space_id in self._replica.spaces():
            if space_id in named or space_id in self._dropped_at:
                out.append(CarriedSpace(space_id, len(self._replica.space_records(space_id)),
                                        space_bytes(self._replica, space_id),
                                        space_id in named))
        return out

    # --- the carry protocol -----------------------------------------------------------------

    async def serve(self, stream: Stream, space_id: bytes, run_sync: RunSync) -> None:
        """A member brings ``space_id``: take it (a sync session for that space) or say why not;
        keep it only if its records name this carrier."""
        problem = self._bring_problem(space_id)
        if problem is not None:
            await refuse_carry(stream, problem)
            return
        await accept_carry(stream)
        self._bringing.add(space_id)
        try:
            await run_sync(stream, [space_id])
        except MeshcrewError as exc:
            log.info("carry: bringing space %s from %s failed: %s", space_id.hex()[:12],
                     stream.peer_id, exc)
        finally:
            self._bringing.discard(space_id)
            self._membership.changed(space_id)
            self._serving.changed()
        if space_id not in self._serving.carried() and space_id not in self._mine():
            log.info("carry: space %s does not name this carrier; its records are deleted",
                     space_id.hex()[:12])
            deleted = delete_space(self._replica, space_id)
            log_refusal(self._replica, None, Reason.NOT_CARRIED,
                        f"{deleted} records deleted: the space does not name this carrier",
                        stream.peer_id, self._clock(), space_id)
            self._membership.changed(space_id)
        else:
            log.info("carry: carrying space %s (brought by %s)", space_id.hex()[:12],
                     stream.peer_id)

    def _bring_problem(self, space_id: bytes) -> Reason | None:
        if total_bytes(self._replica) >= self.config.total_quota_bytes:
            return Reason.OVER_QUOTA
        return None

    # --- forgetting dropped spaces -------------------------------------------------------------

    async def forget_dropped(self) -> None:
        """Delete the records of spaces that dropped this carrier, after the grace period; a
        pass the replica refuses (a locked or full disk) is logged, and the next tries again."""
        while True:
            try:
                self.forget_now()
            except MeshcrewError as exc:
                log.warning("carry: could not delete the spaces that dropped this carrier: %s",
                            exc)
            await trio.sleep(_FORGET_EVERY_S)

    def forget_now(self) -> list[bytes]:
        """One pass: note newly dropped spaces, delete those past their grace; the deleted."""
        now = self._clock()
        named = set(self._serving.carried()) | set(self._mine()) | self._bringing
        deleted = []
        for space_id in self._replica.spaces():
            if space_id in named:
                self._dropped_at.pop(space_id, None)
                continue
            since = self._dropped_at.setdefault(space_id, now)
            if now - since >= self.config.drop_grace_ms:
                delete_space(self._replica, space_id)
                self._membership.changed(space_id)
                self._dropped_at.pop(space_id, None)
                deleted.append(space_id)
                log.info("carry: deleted space %s, dropped %d ms ago", space_id.hex()[:12],
                         now - since)
        return deleted


RunSync = Callable[[Stream, list[bytes]], Awaitable[object]]
"""``run(stream, spaces)``: a sync session offering exactly ``spaces`` on ``stream``."""


async def read_carry_request(stream: Stream) -> bytes:
    """The space a carry stream is about.

    Raises:
        NetError: the stream broke or ended.
        ValueError: the request is malformed.
    """
    return _space_of(await _read_frame(stream))


async def accept_carry(stream: Stream) -> None:
    """Go on: a sync session for the space follows."""
    await _write_frame(stream, [0])


async def refuse_carry(stream: Stream, reason: Reason) -> None:
    """Say why not, and end the stream."""
    await _write_frame(stream, [1, reason.value, reason.sentence])
    await stream.aclose()


class ReceiveOnly:
    """A record source that holds nothing and sends nothing: for a session with a peer this
    node does not (yet) know as a member or carrier of the space, which may give records (they
    are verified and folded like any) but is told nothing (an empty frontier, no records)."""

    def frontier(self, space_id: bytes) -> dict[bytes, Head]:
        return {}

    def records_after(self, space_id: bytes, theirs: Frontier, *, limit: int) -> list[Record]:
        return []


async def bring(host: Host, peer_id: str, space_id: bytes, run_sync: RunSync) -> str | None:
    """Offer a space to a peer on the carry protocol, then sync it: a member bringing it to a
    carrier, or a carrier bringing it to a member who does not know yet that the space names
    it. None if the peer took it, else its sentence for why not.

    Raises:
        NetError: the carrier could not be reached or the stream broke.
    """
    stream = await host.open_stream(peer_id, CARRY_PROTOCOL)
    try:
        await _write_frame(stream, [space_id])
        try:
            answer = await _read_frame(stream)
        except ValueError as exc:  # too long, or not msgpack: the peer's fault, not a crash
            host.penalize(peer_id, PROTOCOL_VIOLATION, "malformed carry answer")
            raise NetError(f"Carrier {peer_id} answered the carry request with nonsense: "
                           f"{exc}.") from None
        if not isinstance(answer, list) or not answer or answer[0] not in (0, 1):
            host.penalize(peer_id, PROTOCOL_VIOLATION, "malformed carry answer")
            raise NetError(f"Carrier {peer_id} answered the carry request with nonsense.")
        if answer[0] == 1:
            return str(answer[2]) if len(answer) > 2 else "refused"
        await run_sync(stream, [space_id])
        return None
    finally:
        if not stream.finished:
            await stream.aclose()


class CarrierContacts(Bringer):
    """Bring each space to its carriers when they connect, and when a space names a carrier
    that is connected already; on a carrier, each carried space to its members.

    Args:
        host: the running host.
        serving: which carriers the member's spaces name.
        membership: the member's spaces.
        bring_one: ``(peer id, space id)``: runs :func:`bring` with a new session.
    """

    def __init__(self, host: Host, serving: Serving, membership: Membership,
                 bring_one: BringOne) -> None:
        super().__init__(host, bring_one)
        self._serving = serving
        self._membership = membership
        self.refusals: dict[str, str] = {}
        """Per carrier, why it last refused (``status`` shows it)."""

    def due(self) -> list[tuple[bytes, bytes]]:
        """Member side: each space to its connected carriers. Carrier side: each carried space
        to its connected members (one who joined before the space named this carrier does not
        know yet that it may sync with it)."""
        due = [(space_id, key) for space_id in self._membership.my_spaces()
               for key in self._serving.carriers(space_id)]
        due += [(space_id, key) for space_id in self._serving.carried()
                for key in self._membership.active(space_id)]
        return due

    def answered(self, peer_id: str, space_id: bytes, refused: str | None) -> None:
        if refused:
            self.refusals[peer_id] = str(refused)
            log.info("carrier %s refused space %s: %s", peer_id, space_id.hex()[:12], refused)
        else:
            self.refusals.pop(peer_id, None)


def carrier_key(text: str) -> bytes:
    """A carrier's key from its peer id, 64 hex digits, or an offer code's first line."""
    text = text.strip()
    if text.startswith("meshcrew-carrier:"):
        text = text.removeprefix("meshcrew-carrier:").split(":", 1)[0]
    if len(text) == 64:
        try:
            return bytes.fromhex(text)
        except ValueError:
            pass
    return public_key_of_peer_id(text)


def offer_code(peer_id: str, addrs: Iterable[str]) -> str:
    """The one line a carrier prints for members to name it: ``meshcrew-carrier:<peer
    id>:<addr>,<addr>``."""
    return f"meshcrew-carrier:{peer_id}:{','.join(addrs)}"


def offer_addrs(code: str) -> list[str]:
    """The addresses in an offer code (empty for a bare peer id or key)."""
    if not code.startswith("meshcrew-carrier:"):
        return []
    parts = code.removeprefix("meshcrew-carrier:").split(":", 1)
    return [a for a in parts[1].split(",") if a] if len(parts) > 1 else []


async def _write_frame(stream: Stream, value: object) -> None:
    await write_message(stream, value, prefix=2)


async def _read_frame(stream: Stream) -> object:
    """Raises: NetError: the stream broke or ended; ValueError: too long, or not msgpack."""
    return await read_message(stream, prefix=2, limit=_MAX_REQUEST, what="a carry message")


def _space_of(request: object) -> bytes:
    if (not isinstance(request, list) or len(request) != 1 or not isinstance(request[0], bytes)
            or len(request[0]) != ID_BYTES):
        raise ValueError("not [space id]")
    return request[0]
