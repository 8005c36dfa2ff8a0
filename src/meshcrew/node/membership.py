"""Who is a member of what, as this node sees it; and the gossip validator built on it.

Sync offers a space only to its members and the gossip validator checks every message's author,
so both ask "is this key a member of this space?" many times a second. Folding a space answers
it, but a fold reads every record of the space, so :class:`Membership` keeps each space's
current members and folds again only when a record that can change membership arrives: any kind
but ``sealed`` (posts never change who is in).

A join accepted by gossip validation counts at once, before the fold, so the new member's first
posts are not refused in the meantime. That early note lasts only until the fold has seen the
join (stored, whatever the fold made of it), or :data:`EARLY_JOIN_MS` if it never arrives: from
then on the fold alone says who is in. So the loser of a race for a single-use invite, whose
join looked valid to a node that had not seen the winner's yet, stops counting as soon as both
joins are in the replica.

:class:`GossipJudge` is the validator libp2p runs on every message of a space's topic, at every
hop, before delivering or forwarding it (``docs/node.md`` gives its rules).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from meshcrew.errors import IdentityError, MeshcrewError
from meshcrew.identity import public_key_of_peer_id
from meshcrew.net import Verdict
from meshcrew.reasons import Reason
from meshcrew.records import Record, RecordError, decode_and_verify
from meshcrew.service import Member
from meshcrew.spaces import MemberStatus, RecordKind, SpaceState, invite_problem
from meshcrew.spaces.bodies import JoinBody, parse_body
from meshcrew.spaces.invites import verify_invite_proof
from meshcrew.spaces.transit import TransitForged, TransitUnknown

_MAX_EARLY_JOINS = 64
"""Joins per space counted ahead of the fold (more wait for it: a crowd of joiners is rare)."""
EARLY_JOIN_MS = 60_000
"""How long a join accepted by gossip counts without the fold having seen it (a message that
was validated but then dropped from a full queue; sync brings the join later)."""

UNJUDGEABLE = frozenset({Reason.UNKNOWN_VERSION, Reason.FROM_FUTURE})
"""Envelope refusals that are not the sender's fault: a newer peer, or a skewed clock."""


def changes_membership(kind: str) -> bool:
    """Whether a record of ``kind`` may change who is a member or which keys are current."""
    return kind != RecordKind.SEALED


@dataclass(frozen=True, slots=True)
class _EarlyJoin:
    """A join gossip validation accepted before the fold saw it."""

    join_id: bytes
    until_ms: int


class Membership:
    """Current members per space, refolded only when membership may have changed."""

    def __init__(self, member: Member) -> None:
        self._member = member
        self._active: dict[bytes, frozenset[bytes]] = {}
        self._joined_early: dict[bytes, dict[bytes, _EarlyJoin]] = {}
        self._mine: list[bytes] | None = None
        self._devices: dict[bytes, bytes] | None = None

    def state(self, space_id: bytes) -> SpaceState | None:
        """The state of a space for everything but its posts (None if the replica holds none
        of it): the fold of its membership records, which holds no post in memory
        (:class:`~meshcrew.service.lean_spaces.LeanSpaces`); its ``head`` sees those records
        only (the replica's frontier has each author's head)."""
        try:
            return self._member.lean.state(space_id)
        except MeshcrewError:
            return None

    def active(self, space_id: bytes) -> frozenset[bytes]:
        """The keys of the space's current members and of their current devices (each device
        is a peer of its own; empty if the space is unknown)."""
        members = self._active.get(space_id)
        if members is None:
            state = self.state(space_id)
            members = state.recipients if state is not None else frozenset()
            self._active[space_id] = members
            early = self._joined_early.get(space_id)
            if early and state is not None:  # the fold's word replaces the notes of what it saw
                for key in [k for k, note in early.items()
                            if state.status(note.join_id) is not None]:
                    del early[key]
        return members

    def is_member(self, space_id: bytes, key: bytes) -> bool:
        """Whether ``key`` is a current member (or its valid join was just accepted by gossip
        and has not reached the fold yet)."""
        return key in self.active(space_id) or self._joined_early_counts(space_id, key)

    def _joined_early_counts(self, space_id: bytes, key: bytes) -> bool:
        early = self._joined_early.get(space_id)
        note = early.get(key) if early else None
        if early is None or note is None:
            return False
        state = self.state(space_id)
        if state is not None and state.status(note.join_id) is not None:
            del early[key]  # the fold has the join: it alone says whether it counts
            return state.is_member(key)
        if self._member.now() > note.until_ms:
            del early[key]
            return False
        return True

    def was_member(self, space_id: bytes, key: bytes) -> bool:
        """Whether ``key`` is or was a member of the space, or a device of one, in the fold
        (a departed member's record may have been valid when it was sent)."""
        state = self.state(space_id)
        return state is not None and (key in state.members or key in state.devices)

    def my_spaces(self) -> list[bytes]:
        """The spaces this member is currently in."""
        if self._mine is None:
            me = self._member.me
            self._mine = [s for s in self._member.replica.spaces() if me in self.active(s)]
        return list(self._mine)

    def devices(self) -> dict[bytes, bytes]:
        """Every device certified in any space the replica holds, with its member key; a
        device revoked in any of them is left out (a revocation names no space, like a
        certificate: it holds everywhere). A device of a member is the member's in a space it
        has not posted its certificate in yet, so that it can be sent that space's records
        (:meth:`meshcrew.node.carrying.Serving.shares`)."""
        if self._devices is None:
            found: dict[bytes, bytes] = {}
            revoked: set[bytes] = set()
            for space_id in self._member.replica.spaces():
                state = self.state(space_id)
                for device in state.devices.values() if state is not None else ():
                    if device.revoked_by is not None:
                        revoked.add(device.key)
                    else:
                        found[device.key] = device.member
            self._devices = {k: m for k, m in found.items() if k not in revoked}
        return self._devices

    def changed(self, space_id: bytes) -> None:
        """A record that may change the space's membership was accepted: fold again next time."""
        self._active.pop(space_id, None)
        self._mine = None
        self._devices = None

    def valid_join(self, record: Record) -> bool:
        """Whether ``record`` is a join that this node's view of the space would admit.

        The checks are the fold's join rule (``meshcrew.spaces.fold``, rules 3 and 4) against
        the space as folded now; a join the fold has already seen is valid only if it counts.
        """
        if record.kind != RecordKind.JOIN:
            return False
        state = self.state(record.space_id)
        if state is None or not state.exists:
            return False
        seen = state.status(record.id)
        if seen is not None:
            return seen.accepted
        try:
            body = parse_body(record.kind, record.body)
        except RecordError:
            return False
        if not isinstance(body, JoinBody) or body.joiner != record.author:
            return False
        known = state.members.get(record.author)
        if known is not None and known.status is not MemberStatus.LEFT:
            return False  # a member already, or removed by consent (rule 3 refuses the join)
        invite = state.invites.get(body.invite)
        if invite is None or invite_problem(state, invite.id, record.ts) is not None or \
                not verify_invite_proof(invite.public_key, record.space_id, record.author,
                                        body.proof):
            return False
        # the fold applies it now, not once a gap is filled
        head = self._member.replica.frontier(record.space_id).get(record.author)
        return (record.seq, record.prev) == ((1, None) if head is None else
                                             (head.seq + 1, head.id))

    def note_early_join(self, record: Record) -> None:
        """Count the author of a valid join as a member until the fold has seen the join."""
        early = self._joined_early.setdefault(record.space_id, {})
        if len(early) < _MAX_EARLY_JOINS:
            early[record.author] = _EarlyJoin(record.id, self._member.now() + EARLY_JOIN_MS)


class GossipJudge:
    """The gossip validator: decode, verify, check the space and the author's membership.

    - a record that does not decode or verify, or belongs to another space: reject;
    - a record by a current member, or a join this node would admit: accept;
    - a record by someone who was a member (removed, left) or a device of one: ignore,
      without penalty (it may have been valid when sent, and forwarded by a node that had not
      yet folded the departure);
    - a record by someone else, or from a newer version, or dated ahead of this node's clock,
      published by a member (who may know of a join this node has not seen yet): ignore,
      without penalty;
    - the same from a publisher that is not a member either: reject.

    Rejections cost the forwarding peer penalty points (``meshcrew.net.gossip``).

    An accepted message's record, opened and verified, is kept for :meth:`opened` (the node
    takes it from there rather than opening and verifying it a second time), a bounded number
    of them: libp2p delivers what it accepts moments later, or drops it.
    """

    KEEP_OPENED = 512
    """Most accepted records kept for :meth:`opened`; the oldest go first."""
    KEEP_OPENED_BYTES = 8 << 20
    """Most bytes of them kept."""

    def __init__(self, membership: Membership, clock: Callable[[], int], *,
                 open_transit: Callable[[bytes, bytes], bytes] | None = None) -> None:
        self._membership = membership
        self._clock = clock
        self._open_transit = open_transit
        """Opens a message sealed in transit (None: messages are bare records, for tests)."""
        self.verdicts: dict[Verdict, int] = dict.fromkeys(Verdict, 0)
        """How many messages got each verdict since the node started (libp2p drops a message
        it has seen before without asking again)."""
        self._opened: OrderedDict[tuple[bytes, bytes], Record] = OrderedDict()
        self._opened_bytes = 0

    @property
    def judged(self) -> int:
        """Messages judged since the node started (this node's own included)."""
        return sum(self.verdicts.values())

    @property
    def accepted(self) -> int:
        """Of those, the messages accepted."""
        return self.verdicts[Verdict.ACCEPT]

    def __call__(self, space_id: bytes, data: bytes, origin: str) -> Verdict:
        """Judge one message published on ``space_id``'s topic by ``origin``."""
        verdict, record = self._judge(space_id, data, origin)
        self.verdicts[verdict] += 1
        if record is not None:
            self._keep_opened((space_id, data), record)
        return verdict

    def opened(self, space_id: bytes, data: bytes) -> Record | None:
        """The record of a message this judge accepted (as it came, sealed), verified, once;
        None if it was not accepted or is no longer kept."""
        record = self._opened.pop((space_id, data), None)
        if record is not None:
            self._opened_bytes -= len(data) + len(record.raw)
        return record

    def _keep_opened(self, key: tuple[bytes, bytes], record: Record) -> None:
        if key in self._opened:
            return
        self._opened[key] = record
        self._opened_bytes += len(key[1]) + len(record.raw)
        while len(self._opened) > self.KEEP_OPENED or self._opened_bytes > self.KEEP_OPENED_BYTES:
            (_, data), dropped = self._opened.popitem(last=False)
            self._opened_bytes -= len(data) + len(dropped.raw)

    def _judge(self, space_id: bytes, sealed: bytes, origin: str
               ) -> tuple[Verdict, Record | None]:
        """The verdict, and the record when it is accepted."""
        membership = self._membership
        data = sealed
        if self._open_transit is not None:
            try:
                data = self._open_transit(space_id, sealed)
            except TransitUnknown:
                # Another version, or sealed under an epoch this member has not received yet
                # (a rotation racing its first posts): nothing is proven, sync brings it. Only
                # peers the gate lets into the topic can send here at all.
                return Verdict.IGNORE, None
            except TransitForged:
                return Verdict.REJECT, None
        try:
            record = decode_and_verify(data, now_ms=self._clock())
        except RecordError as exc:
            if exc.reason in UNJUDGEABLE and self._vouched(space_id, origin):
                return Verdict.IGNORE, None
            return Verdict.REJECT, None
        if record.space_id != space_id:
            return Verdict.REJECT, None
        if membership.is_member(space_id, record.author):
            return Verdict.ACCEPT, record
        if membership.valid_join(record):
            membership.note_early_join(record)
            return Verdict.ACCEPT, record
        if membership.was_member(space_id, record.author):
            # Valid when sent, perhaps: a forwarder that had not folded the departure yet
            # passed it on, and must not lose points for it (four such ban it).
            return Verdict.IGNORE, None
        return (Verdict.IGNORE if self._vouched(space_id, origin) else Verdict.REJECT), None

    def _vouched(self, space_id: bytes, origin: str) -> bool:
        """Whether a member published it (so what cannot be judged yet is not held against
        anyone; from anyone else it is a reject, or a non-member could flood without cost)."""
        try:
            origin_key = public_key_of_peer_id(origin)
        except IdentityError:
            return False
        return self._membership.is_member(space_id, origin_key)
