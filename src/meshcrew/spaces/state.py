"""The state of a space: what :func:`meshcrew.spaces.fold.fold` computes from a set of records.

Everything here is plain, immutable data (mappings are never mutated after the fold), so two
replicas can compare states with ``==``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from meshcrew.reasons import Reason
from meshcrew.records import Record
from meshcrew.spaces.bodies import Body
from meshcrew.spaces.kinds import RecordKind, SpaceKind


class Outcome(StrEnum):
    """What the space rules made of a record."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    WAITING = "waiting"
    """A record it names (or its chain predecessor) is not here yet; not a fault."""


@dataclass(frozen=True, slots=True)
class Status:
    """The outcome for one record, with the reason if it was refused."""

    outcome: Outcome
    reason: Reason | None = None
    detail: str = ""
    missing: frozenset[bytes] = frozenset()
    """For a waiting record: the absent ids it waits for."""

    @property
    def accepted(self) -> bool:
        """Whether the record counts."""
        return self.outcome is Outcome.ACCEPTED


ACCEPTED = Status(Outcome.ACCEPTED)


class MemberStatus(StrEnum):
    """Where a member stands."""

    ACTIVE = "active"
    LEFT = "left"
    REMOVED = "removed"


@dataclass(frozen=True, slots=True)
class Member:
    """A key that is or was a member of the space."""

    key: bytes
    status: MemberStatus
    joined_id: bytes
    """The genesis (for the founder) or the member's latest accepted join."""
    joined_ts: int
    invited_by: bytes | None
    """The key that made the invite they joined with (None for the founder)."""
    ended_id: bytes | None = None
    """The leave record, or the record that made their removal effective."""
    last_seq: int | None = None
    """For a departed member: the seq of their last counting record in this space."""


@dataclass(frozen=True, slots=True)
class Epoch:
    """A key epoch: the genesis (epoch 0) or an accepted ``keys`` record."""

    id: bytes
    number: int
    author: bytes
    prev: bytes | None
    shares: Mapping[bytes, bytes] = field(repr=False)
    """Recipient key → the epoch key sealed to them."""
    history: bytes | None = field(repr=False)
    """Blob of the keys of the previous epochs, under this epoch's key (if history allowed)."""
    meta_key: bytes = field(repr=False)
    """Blob of the space's settings key, under this epoch's key."""
    version: int = 0
    """How many membership changes had been applied when this epoch was accepted; only an
    epoch made after the latest change can be current."""
    settings: bytes | None = field(default=None, repr=False)
    """Blob of the settings as the rotation's author knew them, under this epoch's key."""
    carriers: Mapping[bytes, bytes] = field(default_factory=dict, repr=False)
    """Carrier key → this epoch's transit key sealed to it (carriers open gossip, not posts);
    only an epoch sealed to exactly the carriers named now can be current."""

    @property
    def recipients(self) -> frozenset[bytes]:
        """Whoever this epoch's key was sealed to."""
        return frozenset(self.shares)


@dataclass(frozen=True, slots=True)
class Invite:
    """An accepted invite and the joins it admitted, in canonical order."""

    id: bytes
    author: bytes
    public_key: bytes
    expires_ms: int
    uses: int
    used_by: tuple[bytes, ...] = ()
    revoked: bool = False
    """Its maker was removed, or a member revoked it: it admits no one more."""
    revoked_by: bytes | None = None
    """The ``revoke`` record that revoked it (None if its maker's removal did, or if it was
    not revoked)."""


@dataclass(frozen=True, slots=True)
class Removal:
    """A removal proposal and the consents it has gathered."""

    id: bytes
    proposer: bytes
    member: bytes
    last_seq: int
    last_id: bytes
    consents: frozenset[bytes]
    """Keys that agreed (the proposer included)."""
    electorate: frozenset[bytes] = frozenset()
    """Whose consent counts: the other members the proposal names, and anyone else who was a
    current member when it was applied (never the target)."""
    effective_by: bytes | None = None
    """The record (proposal or consent) whose arrival made the removal take effect."""

    @property
    def effective(self) -> bool:
        """Whether the member has been removed by this proposal."""
        return self.effective_by is not None

    @property
    def needed(self) -> int:
        """How many of the electorate must agree: a majority."""
        return len(self.electorate) // 2 + 1

    @property
    def reason(self) -> Reason | None:
        """None if effective, else why not: the consent is not (yet) sufficient."""
        return None if self.effective else Reason.CONSENT_INSUFFICIENT


@dataclass(frozen=True, slots=True)
class Carrier:
    """A node the space named to hold and serve its sealed records (not a member)."""

    key: bytes
    added_by: bytes
    """The member who named it."""
    record_id: bytes
    """The carrier record that named it."""
    added_ts: int


@dataclass(frozen=True, slots=True)
class Device:
    """A device key its member certified (see :mod:`meshcrew.spaces.devices`).

    A member key is its member's first device and has no entry of its own."""

    key: bytes
    member: bytes
    """The member key that certified it."""
    cert_id: bytes
    """The device's certificate record (its first record in the space)."""
    revoked_by: bytes | None = None
    """The ``unlink`` record that revoked it, if any."""
    last_seq: int | None = None
    """For a revoked device: the seq of its last counting record in this space."""


class ChangeKind(StrEnum):
    """A change of membership."""

    FOUNDED = "founded"
    JOINED = "joined"
    LEFT = "left"
    REMOVED = "removed"
    LAPSED = "lapsed"
    """A join no member let in before its invite expired (see fold rule 7)."""
    LINKED = "linked"
    """A member's new device (its certificate, fold rule 12): keys must reach it."""
    UNLINKED = "unlinked"
    """A member revoked one of their devices (fold rule 13): keys must move away from it."""


@dataclass(frozen=True, slots=True)
class MembershipChange:
    """One change in the membership history, in canonical order."""

    record_id: bytes
    change: ChangeKind
    member: bytes


@dataclass(frozen=True, slots=True)
class SpaceState:
    """The state of one space: a pure function of its set of records.

    Build it with :func:`meshcrew.spaces.fold.fold`.
    """

    space_id: bytes
    kind: SpaceKind | None
    """None while the genesis is absent or if it was refused."""
    founder: bytes | None
    history: bool
    """Whether joiners may read what was written before they joined."""
    members: Mapping[bytes, Member]
    """Everyone ever admitted, by key, whatever their status now."""
    epochs: Mapping[bytes, Epoch]
    """Every accepted epoch, by id."""
    current_epoch_id: bytes | None
    """The epoch to write under: accepted after the latest membership change and sealed to
    exactly the current members (highest number, then lowest id). None when a membership
    change has not been followed by such a key rotation."""
    invites: Mapping[bytes, Invite]
    removals: Mapping[bytes, Removal]
    changes: tuple[MembershipChange, ...]
    statuses: Mapping[bytes, Status]
    """Every record given to the fold, by id."""
    order: tuple[bytes, ...]
    """The accepted records, in canonical order."""
    sequence: tuple[bytes, ...]
    """Every record the rules were applied to, accepted or refused, in canonical order (the
    order plus the refused records; the waiting ones are in neither)."""
    floors: Mapping[bytes, int]
    """Per author: the highest epoch number they wrote under or created (see rule 8)."""
    records: Mapping[bytes, Record] = field(repr=False)
    bodies: Mapping[bytes, Body | None] = field(repr=False, compare=False)
    """The parsed bodies, by record id (None where the body does not parse or the kind is not
    known): a function of the records, kept so that readers need not parse them again."""
    stalled: bool = field(repr=False, compare=False)
    """Whether the canonical order met a cycle through a soft dependency (a removal and what
    it orders behind itself, see :mod:`meshcrew.spaces.fold` rule 6) and broke it: a function
    of the records, kept for :func:`meshcrew.spaces.extend.extend`."""
    carriers: Mapping[bytes, Carrier] = field(default_factory=dict)
    """The carriers named now, by key."""
    pending: Mapping[bytes, bytes] = field(default_factory=dict)
    """Joiners no key rotation has let in yet (key → their join's id). They count as current
    members (so a rotation must include or drop them) but nothing else they sign counts until
    a rotation admits them (see :mod:`meshcrew.spaces.fold`, rules 4 and 7)."""
    devices: Mapping[bytes, Device] = field(default_factory=dict)
    """Every device key a member certified here, by key, revoked ones included (a member key
    is its member's first device and is not listed)."""
    memo: dict[str, object] = field(default_factory=dict, repr=False, compare=False)
    """Facts worked out once from the records and kept with the state, a cache (a function of
    the records): :func:`meshcrew.spaces.extend.extend` keeps what it would otherwise look
    over every record for on each new post. Each state has its own."""

    @property
    def exists(self) -> bool:
        """Whether the space has an accepted genesis."""
        return self.kind is not None

    @property
    def active(self) -> frozenset[bytes]:
        """The keys of the current members."""
        return frozenset(k for k, m in self.members.items() if m.status is MemberStatus.ACTIVE)

    def is_carrier(self, key: bytes) -> bool:
        """Whether ``key`` is a carrier the space names now."""
        return key in self.carriers

    def member_of(self, key: bytes) -> bytes | None:
        """The member ``key`` speaks for: itself if it is (or was) a member key, its member if
        it is (or was) one of their devices, else None."""
        if key in self.members:
            return key
        device = self.devices.get(key)
        return None if device is None else device.member

    def is_member(self, key: bytes) -> bool:
        """Whether ``key`` is a current member (one whose join awaits admission included), or
        a current (not revoked) device of one."""
        member = self.members.get(key)
        if member is None:
            device = self.devices.get(key)
            if device is None or device.revoked_by is not None:
                return False
            member = self.members.get(device.member)
        return member is not None and member.status is MemberStatus.ACTIVE

    def is_admitted(self, key: bytes) -> bool:
        """Whether ``key`` is a current member whose records count (not awaiting admission),
        or a current device of one."""
        return self.is_member(key) and self.member_of(key) not in self.pending

    def devices_of(self, member: bytes) -> tuple[bytes, ...]:
        """The current devices of ``member``: the member key first, then the others by key."""
        linked = sorted(d.key for d in self.devices.values()
                        if d.member == member and d.revoked_by is None)
        return (member, *linked)

    @property
    def recipients(self) -> frozenset[bytes]:
        """The keys the current epoch is sealed to: every current device of every current
        member (member keys included)."""
        return self.active | frozenset(
            d.key for d in self.devices.values()
            if d.revoked_by is None and self.is_member(d.member))

    @property
    def current_epoch(self) -> Epoch | None:
        """See :attr:`current_epoch_id`."""
        return None if self.current_epoch_id is None else self.epochs[self.current_epoch_id]

    @property
    def needs_rekey(self) -> bool:
        """Whether a member must rotate keys before anyone writes (see :attr:`current_epoch_id`)."""
        return self.exists and bool(self.active) and self.current_epoch_id is None

    def status(self, record_id: bytes) -> Status | None:
        """The outcome for a record given to the fold, or None if it was not given."""
        return self.statuses.get(record_id)

    def accepted(self, kind: RecordKind | str | None = None) -> list[Record]:
        """The accepted records (of ``kind`` if given), in canonical order."""
        found = (self.records[rid] for rid in self.order)
        return [r for r in found if kind is None or r.kind == kind]

    def rejected(self) -> dict[bytes, Status]:
        """The refused records with their reasons."""
        return {rid: s for rid, s in self.statuses.items() if s.outcome is Outcome.REJECTED}

    def waiting(self) -> dict[bytes, Status]:
        """The records waiting for a record that has not arrived."""
        return {rid: s for rid, s in self.statuses.items() if s.outcome is Outcome.WAITING}

    def last_counting_record(self, member: bytes) -> Record | None:
        """The accepted record of ``member`` with the highest seq (what a removal names)."""
        best: Record | None = None
        for rid in self.order:
            record = self.records[rid]
            if record.author == member and (best is None or record.seq > best.seq):
                best = record
        return best

    def head(self, author: bytes) -> Record | None:
        """The record of ``author`` with the highest seq, whatever its status (to chain onto)."""
        best: Record | None = None
        for record in self.records.values():
            if record.author == author and (best is None or record.seq > best.seq):
                best = record
        return best
