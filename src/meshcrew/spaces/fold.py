"""The fold: the state of a space as a pure function of its set of records.

``fold(space_id, records)`` parses every body, puts the records in the canonical order (see
:mod:`meshcrew.spaces.order`) and applies the rules below one record at a time. Records arrive
at a replica in any order and any number of times; the result depends only on the set.

Rules, in the order they are checked for each record:

1. Bodies are parsed first; a body that does not fit its kind is refused (``bad_body``). Two
   records at one place of an author's chain are a fork: that record and every later one of the
   author are refused (``fork``). A record whose predecessor is not the author's previous
   record is refused (``chain_broken``).
2. A record whose predecessor, genesis or named records are absent *waits*; it is neither
   accepted nor refused, and it is applied once they arrive.
3. A member removed by consent has every record after their last counting one refused
   (``removed_member``), including a later join.
4. ``join`` (by someone not a current member): the body names the joiner, which must be the
   signer (``join_forged``); the invite must be an accepted invite of this space
   (``invite_unknown``), not revoked, whose maker has not been removed (``invite_revoked``);
   the proof must verify (``invite_bad_proof``); the join's own signed ``ts`` must not be after
   the invite's expiry (``invite_expired``); the invite must have uses left
   (``invite_exhausted``), and the space room (``space_full``). Uses are taken in canonical
   order, so of two concurrent joins with a single-use invite the one with the lower id wins,
   on every replica. The joiner is then a current member *waiting to be let in* (``pending``):
   nothing else they sign counts (``not_member``) and they have no say in a removal until a
   key rotation lets them in (rule 7).
5. Every other record needs its author to be a current member (``not_member``).
6. ``remove`` names a member other than its author and their record at the named seq
   (``bad_reference``; if they have already left or been removed it is accepted and moot), and
   the joins of the other members it was proposed among (it waits for them). ``consent`` names
   an accepted proposal and is not by its target (``not_allowed``). The *electorate* is fixed
   when the proposal is applied: the members it names plus anyone else then a current member,
   less the target. When the proposer and the consenting electorate members reach a majority
   of the electorate, the removal takes effect at that record: the target's records after the
   named seq are refused, and their invites revoked. A consent counts only if its author is a
   member when it is applied; departures after the proposal do not lower the bar (propose
   anew if too many have left). So that this holds whatever the arrival order, the target's
   first record after the named seq, and every join with one of the target's invites that the
   proposal does not name, are ordered after the proposal and all of its consents. If two
   removals wait on each other's consents (members removing each other), the lower id goes
   first, and a removal whose target's later records were already applied does not take
   effect.
7. ``keys`` opens epoch ``n`` after an accepted epoch ``n - 1``; its author is a recipient;
   every recipient who did not hold epoch ``n - 1`` is or was a member or signed a join it
   names; it carries a history link exactly when the space allows history (``bad_epoch``). It
   names the membership changes it answers, so it is ordered after them. Concurrent rotations
   are all accepted; the *current* epoch is one accepted after the latest membership change
   and sealed to exactly the current members (highest number, then lowest id); if none is,
   ``needs_rekey`` is true. (An older epoch sealed to the same members is not current: a
   departed member may hold its key through a history link.) A rotation **lets in** the
   waiting joiners it seals the key to, if its own signed ``ts`` (a member's clock, not the
   joiner's) is no later than their invite's expiry; a later one is refused
   (``invite_expired``). A waiting joiner whose join it names but leaves out, signed after
   their invite expired, *lapses*: the join is refused (``invite_expired``) and they are no
   member. The joiner's first record after the join is ordered after every rotation naming it.
8. ``sealed`` names an accepted epoch (``bad_reference``) whose key was sealed to its author and
   no older than an epoch the author already wrote under or created (``stale_epoch``). Honest
   clients write under the current epoch, so after a departure they rotate first.
9. Records of a kind this version does not know are accepted from members, uninterpreted.
10. ``carrier`` names a carrier (a node that holds and serves the space's sealed records
    without being a member) or drops one. Any current member may do either; naming one already
    named changes nothing (the first naming stands), dropping one not named is refused
    (``bad_reference``), and a space names at most ``MAX_CARRIERS`` (``not_allowed``). Naming
    a carrier is not a membership change: no key is sealed to it.
11. ``revoke`` (by any current member) names an accepted invite (``bad_reference``); every
    join with it that the revocation does not name (it names those its author had seen) is
    ordered after it and refused (``invite_revoked``), whatever the arrival order.

12. ``device`` certifies its author as a device of the member it names (see
    :mod:`meshcrew.spaces.devices`). From then on the device's records are its member's: every
    rule above that speaks of a member (who is current, who leaves, who proposes or consents,
    who made an invite or named a carrier) reads the member, while chains, epochs shares and
    floors stay per device (each device writes its own chain, holds its own key share). It is
    refused when the member's signature does not verify (``device_unproven``); when the author
    already belongs to a member, as a member key or a device (``device_claimed``: one key, one
    member); when the member was removed (``device_of_removed``), has left, is not let in yet
    or never was (``not_member``); and when it is not the device's first record in the space
    (``not_allowed``). A certificate is a membership change: keys must be sealed to the device
    (the rotation names its certificate). A device cannot join as a member (``device_claimed``).
13. ``unlink`` revokes a device: posted by the member key or another current device of the
    same member (``not_allowed`` otherwise, and for the device itself), with the member's
    signature (``device_unproven``), naming a device of that member (``bad_reference``) and
    that device's record at the named seq (``bad_reference``). The device's records after it
    are refused (``device_revoked``); its record after the named seq is ordered after the
    revocation, so this holds whatever the arrival order. A revocation is a membership
    change: keys must move away from the device. Revoking a revoked device changes nothing.
    A removed member's devices are out with them: a removal names each device's last counting
    record as it names the member's, and their later records are refused
    (``device_of_removed``), ordered after the removal and its consents as the member's are
    (rule 6); a device it does not name has its certificate ordered after them, and so
    refused if the removal takes effect.

No rule reads a clock: expiry compares signed timestamps (invite ``exp`` with the join's
``ts``, and with the ``ts`` of the member's rotation that lets the joiner in). A joiner who holds
an old secret could backdate their join, but not the member's rotation: such a join lapses.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from meshcrew.reasons import Reason
from meshcrew.records import Record, RecordError
from meshcrew.spaces.bodies import (
    Body,
    CarrierBody,
    ConsentBody,
    DeviceBody,
    GenesisBody,
    InviteBody,
    JoinBody,
    KeysBody,
    LeaveBody,
    RemoveBody,
    RevokeBody,
    SealedBody,
    UnlinkBody,
    parse_body,
    references,
)
from meshcrew.spaces.devices import verify_certificate, verify_revocation
from meshcrew.spaces.invites import verify_invite_proof
from meshcrew.spaces.kinds import RecordKind, SpaceKind
from meshcrew.spaces.order import canonical_order, find_waiting
from meshcrew.spaces.state import (
    ACCEPTED,
    Carrier,
    ChangeKind,
    Device,
    Epoch,
    Invite,
    Member,
    MembershipChange,
    MemberStatus,
    Outcome,
    Removal,
    SpaceState,
    Status,
)

MAX_CARRIERS = 8
"""The most carriers a space names at once."""


def _refused(reason: Reason, detail: str = "") -> Status:
    return Status(Outcome.REJECTED, reason, detail)


def fold(space_id: bytes, records: Iterable[Record]) -> SpaceState:
    """The state of the space ``space_id`` given a set of its records.

    Args:
        space_id: the space (its genesis record's id).
        records: verified records of that space in any order; duplicates are ignored.

    Raises:
        ValueError: if a record belongs to another space (a caller's mistake).
    """
    by_id: dict[bytes, Record] = {}
    for record in records:
        if record.space_id != space_id:
            raise ValueError(f"record {record.id.hex()} belongs to another space")
        by_id[record.id] = record
    bodies, early = _parse_all(space_id, by_id)
    hard: dict[bytes, list[bytes]] = {}
    for rid, record in by_id.items():
        deps = [] if record.creates_space else [space_id]
        if record.prev is not None:
            deps.append(record.prev)
        body = bodies.get(rid)
        if body is not None:
            deps.extend(references(body))
        hard[rid] = deps
    waiting = find_waiting(hard)
    ready = {rid: deps for rid, deps in hard.items() if rid not in waiting}
    machine = _Machine(space_id, by_id, bodies, early)
    stalls: list[bytes] = []
    sequence = canonical_order(ready, _soft_deps(by_id, bodies, early, ready), stalls)
    for rid in sequence:
        machine.apply(by_id[rid])
    for rid, missing in waiting.items():
        machine.statuses[rid] = early.get(rid, Status(Outcome.WAITING, missing=missing))
    return machine.result(tuple(sequence), bool(stalls))


def _parse_all(space_id: bytes, by_id: dict[bytes, Record]
               ) -> tuple[dict[bytes, Body | None], dict[bytes, Status]]:
    """Parse bodies and find what can be refused before ordering (bad body, fork, chain)."""
    bodies: dict[bytes, Body | None] = {}
    early: dict[bytes, Status] = {}
    slots: dict[tuple[bytes, int], list[bytes]] = {}
    for rid, record in by_id.items():
        slots.setdefault((record.author, record.seq), []).append(rid)
        if record.creates_space and record.kind != RecordKind.GENESIS:
            early[rid] = _refused(Reason.BAD_BODY, "a space starts with a genesis record")
        elif record.kind == RecordKind.GENESIS and not record.creates_space:
            early[rid] = _refused(Reason.NOT_ALLOWED, "a genesis cannot be posted in a space")
        try:
            bodies[rid] = parse_body(record.kind, record.body)
        except RecordError as exc:
            bodies[rid] = None
            early.setdefault(rid, _refused(exc.reason, exc.detail))
    fork_from: dict[bytes, int] = {}
    for (author, seq), ids in slots.items():
        if len(ids) > 1:
            fork_from[author] = min(seq, fork_from.get(author, seq))
    for rid, record in by_id.items():
        if record.seq >= fork_from.get(record.author, record.seq + 1):
            early[rid] = _refused(Reason.FORK,
                                  f"the author forked at seq {fork_from[record.author]}")
            continue
        prev = by_id.get(record.prev) if record.prev is not None else None
        if prev is not None and (prev.author != record.author or prev.seq != record.seq - 1):
            early.setdefault(rid, _refused(Reason.CHAIN_BROKEN))
    return bodies, early


def _soft_deps(by_id: dict[bytes, Record], bodies: dict[bytes, Body | None],
               early: dict[bytes, Status], ready: dict[bytes, list[bytes]]
               ) -> dict[bytes, set[bytes]]:
    """Ordering hints, so that what a record would decide is decided before what it affects.

    * A removal and its consents come before the target's first record after the named seq,
      and before every join using one of the target's invites (rule 6).
    * A key rotation that names a join comes before the joiner's next record, so that record
      meets an admitted (or lapsed) joiner whatever the arrival order (rule 7).
    * A revocation comes before every join with its invite that it does not name (rule 11).
    * A device's revocation comes before the device's record after the one it names (rule 13).

    An invite made by a device counts as its member's (the member its certificate claims).
    """
    consents: dict[bytes, list[bytes]] = {}
    behind: dict[tuple[bytes, int], set[bytes]] = {}  # (author, seq) → what comes first
    joins_by_invite: dict[bytes, list[bytes]] = {}
    joins_by_inviter: dict[bytes, list[bytes]] = {}
    removals: list[bytes] = []
    revokes: list[bytes] = []
    claims = {by_id[rid].author: body.member for rid, body in bodies.items()  # rule 12
              if isinstance(body, DeviceBody) and by_id[rid].seq == 1 and rid in ready
              and rid not in early}
    for rid in ready:
        body = bodies.get(rid)
        if rid in early or body is None:
            continue
        if isinstance(body, JoinBody):
            inviter = by_id[body.invite].author
            joins_by_invite.setdefault(body.invite, []).append(rid)
            joins_by_inviter.setdefault(claims.get(inviter, inviter), []).append(rid)
        elif isinstance(body, ConsentBody):
            consents.setdefault(body.proposal, []).append(rid)
        elif isinstance(body, RemoveBody):
            removals.append(rid)
        elif isinstance(body, RevokeBody):
            revokes.append(rid)
        elif isinstance(body, UnlinkBody):
            behind.setdefault((body.device, body.last_seq + 1), set()).add(rid)
        elif isinstance(body, LeaveBody) and (body.devices or claims):
            leaver = by_id[rid].author
            _behind_devices(behind, claims, claims.get(leaver, leaver), body.devices, {rid})
        elif isinstance(body, KeysBody):
            for named in body.after:
                join = by_id.get(named)
                if join is not None and join.kind == RecordKind.JOIN:
                    behind.setdefault((join.author, join.seq + 1), set()).add(rid)
    soft: dict[bytes, set[bytes]] = {}
    for pid in removals:
        body = bodies[pid]
        assert isinstance(body, RemoveBody)
        before = {pid, *consents.get(pid, ())}
        behind.setdefault((body.member, body.last_seq + 1), set()).update(before)
        _behind_devices(behind, claims, body.member, body.devices, before)
        known = set(body.after)  # joins the proposer had seen come first, not after
        for join_id in joins_by_inviter.get(body.member, ()):
            if join_id not in known:
                soft.setdefault(join_id, set()).update(before)
    for vid in revokes:
        body = bodies[vid]
        assert isinstance(body, RevokeBody)
        for join_id in joins_by_invite.get(body.invite, ()):
            if join_id not in body.used:
                soft.setdefault(join_id, set()).add(vid)
    if behind:
        for rid in ready:
            record = by_id[rid]
            first = behind.get((record.author, record.seq))
            if first is not None:
                soft.setdefault(rid, set()).update(first)
    return soft


def _behind_devices(behind: dict[tuple[bytes, int], set[bytes]], claims: dict[bytes, bytes],
                    member: bytes, named: tuple[tuple[bytes, int, bytes], ...],
                    first: set[bytes]) -> None:
    """A leave or removal of ``member`` (``first``: it and its consents) comes before each
    named device's record after the named one, and before the certificate of every device
    of the member it does not name (rules 12 and 13)."""
    for device, seq, _ in named:
        behind.setdefault((device, seq + 1), set()).update(first)
    cut = {device for device, _, _ in named}
    for device, owner in claims.items():
        if owner == member and device not in cut:
            behind.setdefault((device, 1), set()).update(first)


class _Machine:
    """Applies records in canonical order; holds the working state of one fold."""

    def __init__(self, space_id: bytes, by_id: dict[bytes, Record],
                 bodies: dict[bytes, Body | None], early: dict[bytes, Status]) -> None:
        self.space_id = space_id
        self.by_id = by_id
        self.bodies = bodies
        self.early = early
        self.kind: SpaceKind | None = None
        self.founder: bytes | None = None
        self.history = False
        self.members: dict[bytes, Member] = {}
        self.active: set[bytes] = set()
        self.epochs: dict[bytes, Epoch] = {}
        self.invites: dict[bytes, Invite] = {}
        self.removals: dict[bytes, Removal] = {}
        self.changes: list[MembershipChange] = []
        self.statuses: dict[bytes, Status] = {}
        self.order: list[bytes] = []
        self.cutoff: dict[bytes, int] = {}
        self.floor: dict[bytes, int] = {}
        """Per author: the highest epoch number they wrote under or created."""
        self.applied_seq: dict[bytes, int] = {}
        self.carriers: dict[bytes, Carrier] = {}
        self.pending: dict[bytes, bytes] = {}
        """Joiners awaiting admission by a key rotation: key → join id (rule 7)."""
        self.before_join: dict[bytes, Member | None] = {}
        """What ``members`` held for a pending joiner before their join (restored on lapse)."""
        self.lapsed: dict[bytes, bytes] = {}
        """Join id → the rotation that let it lapse (its invite expired, no one let them in)."""
        self.devices: dict[bytes, Device] = {}
        """Every device a member certified (rule 12), revoked ones included."""
        self.device_cut: dict[bytes, int] = {}
        """Per device an effective removal of its member named: its last counting seq."""

    def apply(self, record: Record) -> None:
        """Apply one record and note its status."""
        status = self.early.get(record.id)
        if status is None:
            try:
                self._apply(record, self.bodies[record.id])
                status = ACCEPTED
                self.order.append(record.id)
            except RecordError as exc:
                status = _refused(exc.reason, exc.detail)
        self.statuses[record.id] = status
        self.applied_seq[record.author] = max(record.seq, self.applied_seq.get(record.author, 0))

    def _apply(self, record: Record, body: Body | None) -> None:
        if isinstance(body, GenesisBody):
            self._genesis(record, body)
            return
        if self.kind is None:
            raise RecordError(Reason.BAD_REFERENCE, "the space's genesis was refused")
        author = record.author
        cut = self.cutoff.get(author)
        if cut is not None and record.seq > cut:
            raise RecordError(Reason.REMOVED_MEMBER, f"removed after their record {cut}")
        if isinstance(body, DeviceBody):
            self._certify(record, body)
            return
        device = self.devices.get(author)
        if device is not None:
            self._check_device(record, device)
        if isinstance(body, JoinBody):
            if device is not None:
                raise RecordError(Reason.DEVICE_CLAIMED, "the key is a member's device")
            self._join(record, body)
            return
        member = author if device is None else device.member
        if member not in self.active:
            left = member in self.members
            raise RecordError(Reason.NOT_MEMBER, "the author has left" if left else "")
        if member in self.pending:
            raise RecordError(Reason.NOT_MEMBER, "their join awaits admission: no key rotation "
                              "has let them in yet")
        match body:
            case InviteBody():
                self.invites[record.id] = Invite(record.id, member, body.public_key,
                                                 body.expires_ms, body.uses)
            case LeaveBody():
                last = record.seq if device is None else self.applied_seq.get(member, 0)
                self._depart(member, record.id, last, MemberStatus.LEFT)
            case RemoveBody():
                self._propose(record, body, member)
            case ConsentBody():
                self._consent(record, body, member)
            case KeysBody():
                self._keys(record, body)
            case SealedBody():
                self._sealed(record, body)
            case CarrierBody():
                self._carrier(record, body, member)
            case RevokeBody():
                self._revoke(record, body)
            case UnlinkBody():
                self._unlink(record, body, member)

    def _check_device(self, record: Record, device: Device) -> None:
        """A device's record after its revocation, or after its member's removal, is refused."""
        if device.last_seq is not None and record.seq > device.last_seq:
            raise RecordError(Reason.DEVICE_REVOKED, f"revoked after its record {device.last_seq}")
        if (self.members[device.member].status is MemberStatus.REMOVED
                and record.seq > self.device_cut.get(device.key, 0)):
            raise RecordError(Reason.DEVICE_OF_REMOVED)

    def _certify(self, record: Record, body: DeviceBody) -> None:
        """Rule 12: a device's certificate, its first record in the space."""
        author, member = record.author, body.member
        if author in self.members or author in self.devices:
            raise RecordError(Reason.DEVICE_CLAIMED, "the key belongs to a member already")
        if not verify_certificate(member, author, body.signature):
            raise RecordError(Reason.DEVICE_UNPROVEN)
        if record.seq != 1:
            raise RecordError(Reason.NOT_ALLOWED, "a device's certificate is its first record "
                              "in the space")
        known = self.members.get(member)
        if known is not None and known.status is MemberStatus.REMOVED:
            raise RecordError(Reason.DEVICE_OF_REMOVED)
        if member not in self.active or member in self.pending:
            raise RecordError(Reason.NOT_MEMBER, "the certificate names no current member")
        self.devices[author] = Device(author, member, record.id)
        self.changes.append(MembershipChange(record.id, ChangeKind.LINKED, member))

    def _unlink(self, record: Record, body: UnlinkBody, member: bytes) -> None:
        """Rule 13: a member revokes one of their devices."""
        if body.member != member or body.device == record.author:
            raise RecordError(Reason.NOT_ALLOWED, "only another device of the same member may "
                              "revoke a device")
        if not verify_revocation(member, body.device, body.signature):
            raise RecordError(Reason.DEVICE_UNPROVEN)
        device = self.devices.get(body.device)
        if device is None or device.member != member:
            raise RecordError(Reason.BAD_REFERENCE, "it names no device of that member")
        last = self.by_id[body.last_id]
        if last.author != body.device or last.seq != body.last_seq:
            raise RecordError(Reason.BAD_REFERENCE,
                              "the named last record is not that device's record at that seq")
        if device.revoked_by is not None:
            return  # revoked already: the first revocation stands
        cut = max(body.last_seq, self.applied_seq.get(body.device, 0))
        self.devices[body.device] = replace(device, revoked_by=record.id, last_seq=cut)
        self.changes.append(MembershipChange(record.id, ChangeKind.UNLINKED, member))

    def _genesis(self, record: Record, body: GenesisBody) -> None:
        if set(body.shares) != {record.author}:
            raise RecordError(Reason.BAD_BODY, "epoch 0 is sealed to the founder only")
        self.kind, self.founder, self.history = body.space_kind, record.author, body.history
        self.members[record.author] = Member(record.author, MemberStatus.ACTIVE, record.id,
                                             record.ts, None)
        self.active.add(record.author)
        self.changes.append(MembershipChange(record.id, ChangeKind.FOUNDED, record.author))
        self.epochs[record.id] = Epoch(record.id, 0, record.author, None, body.shares, None,
                                       body.meta_key, len(self.changes))
        self.floor[record.author] = 0

    def _join(self, record: Record, body: JoinBody) -> None:
        author = record.author
        if body.joiner != author:
            raise RecordError(Reason.JOIN_FORGED, "the join names another key than its signer")
        if author in self.active:
            raise RecordError(Reason.ALREADY_MEMBER)
        invite = self.invites.get(body.invite)
        if invite is None:
            raise RecordError(Reason.INVITE_UNKNOWN, "it names no accepted invite")
        if invite.revoked:
            raise RecordError(Reason.INVITE_REVOKED)
        if not verify_invite_proof(invite.public_key, self.space_id, author, body.proof):
            raise RecordError(Reason.INVITE_BAD_PROOF)
        if record.ts > invite.expires_ms:
            raise RecordError(Reason.INVITE_EXPIRED,
                              f"signed {record.ts - invite.expires_ms} ms after expiry")
        if len(invite.used_by) >= invite.uses:
            raise RecordError(Reason.INVITE_EXHAUSTED, f"{invite.uses} use(s)")
        assert self.kind is not None
        if len(self.active) >= self.kind.max_members:
            raise RecordError(Reason.SPACE_FULL, f"a {self.kind} has at most "
                              f"{self.kind.max_members} members")
        self.invites[invite.id] = replace(invite, used_by=(*invite.used_by, record.id))
        self.before_join[author] = self.members.get(author)
        self.members[author] = Member(author, MemberStatus.ACTIVE, record.id, record.ts,
                                      invite.author)
        self.active.add(author)
        self.pending[author] = record.id
        self.changes.append(MembershipChange(record.id, ChangeKind.JOINED, author))

    def _depart(self, member: bytes, by: bytes, last_seq: int, status: MemberStatus) -> None:
        self.members[member] = replace(self.members[member], status=status, ended_id=by,
                                       last_seq=last_seq)
        self.active.discard(member)
        self.pending.pop(member, None)
        self.before_join.pop(member, None)
        change = ChangeKind.LEFT if status is MemberStatus.LEFT else ChangeKind.REMOVED
        self.changes.append(MembershipChange(by, change, member))

    def _propose(self, record: Record, body: RemoveBody, proposer: bytes) -> None:
        if body.member == proposer:
            raise RecordError(Reason.NOT_ALLOWED, "to leave, write a leave record")
        if body.member not in self.members:
            raise RecordError(Reason.BAD_REFERENCE, "that key was never a member")
        last = self.by_id[body.last_id]
        if last.author != body.member or last.seq != body.last_seq:
            raise RecordError(Reason.BAD_REFERENCE,
                              "the named last record is not that member's record at that seq")
        for device, seq, last_id in body.devices:
            head = self.by_id[last_id]
            if (self.devices.get(device) is None or self.devices[device].member != body.member
                    or head.author != device or head.seq != seq):
                raise RecordError(Reason.BAD_REFERENCE, "a named device is not that member's, "
                                  "or the record named is not its record at that seq")
        # The electorate is fixed here: the members the proposer saw (named by their joins) and
        # whoever else is a member now. Later joins and departures neither add nor lower the bar.
        named = {self.by_id[i].author for i in body.after
                 if self.by_id[i].kind in (RecordKind.JOIN, RecordKind.GENESIS)}
        electorate = (((named & self.members.keys()) | self.active) - {body.member}
                      - self.pending.keys())  # a joiner not yet let in has no say yet
        self.removals[record.id] = Removal(record.id, proposer, body.member, body.last_seq,
                                           body.last_id, frozenset({proposer}),
                                           frozenset(electorate))
        self._count(record.id, record.id)

    def _consent(self, record: Record, body: ConsentBody, member: bytes) -> None:
        proposal = self.removals.get(body.proposal)
        if proposal is None:
            raise RecordError(Reason.BAD_REFERENCE, "it names no accepted removal proposal")
        if member == proposal.member:
            raise RecordError(Reason.NOT_ALLOWED, "a member cannot consent to their own removal")
        self.removals[proposal.id] = replace(proposal, consents=proposal.consents | {member})
        self._count(proposal.id, record.id)

    def _count(self, proposal_id: bytes, by: bytes) -> None:
        """Make the removal take effect if its consent now suffices."""
        proposal = self.removals[proposal_id]
        target = proposal.member
        if proposal.effective or target not in self.active:
            return
        if self.applied_seq.get(target, 0) > proposal.last_seq:
            return  # overtaken: the target's later records were applied (see rule 6)
        if len(proposal.consents & proposal.electorate) < proposal.needed:
            return
        self.removals[proposal_id] = replace(proposal, effective_by=by)
        self.cutoff[target] = proposal.last_seq
        body = self.bodies[proposal_id]
        assert isinstance(body, RemoveBody)
        for device, seq, _ in body.devices:
            self.device_cut.setdefault(device, seq)
        self._depart(target, by, proposal.last_seq, MemberStatus.REMOVED)
        for invite in list(self.invites.values()):
            if invite.author == target:
                self.invites[invite.id] = replace(invite, revoked=True)

    def _keys(self, record: Record, body: KeysBody) -> None:
        prev = self.epochs.get(body.prev)
        if prev is None:
            raise RecordError(Reason.BAD_EPOCH, "the previous epoch is not an accepted epoch")
        if body.number != prev.number + 1:
            raise RecordError(Reason.BAD_EPOCH, f"epoch {body.number} cannot follow epoch "
                              f"{prev.number}")
        if record.author not in body.shares:
            raise RecordError(Reason.BAD_EPOCH, "the author did not seal the key to themself")
        joiners = {self.by_id[i].author for i in body.after
                   if self.by_id[i].kind == RecordKind.JOIN}
        # Only recipients new since the previous epoch need vouching for: someone who lost a
        # join race may already hold the previous key, and refusing every later rotation that
        # still includes them would wipe out honest members' work.
        if any(k not in self.members and k not in joiners and k not in prev.shares
               and k not in self.devices for k in body.shares):
            raise RecordError(Reason.BAD_EPOCH, "the key is sealed to someone who never joined")
        if self.history != (body.history is not None):
            raise RecordError(Reason.BAD_EPOCH, "a history link must be present exactly when "
                              "the space lets joiners read history")
        admitted, lapsing = self._admissions(record, body)
        for key in admitted:
            del self.pending[key]
            self.before_join.pop(key, None)
        for key in lapsing:
            self._lapse(key, record.id)
        self.epochs[record.id] = Epoch(record.id, body.number, record.author, body.prev,
                                       body.shares, body.history, body.meta_key,
                                       len(self.changes), body.settings)
        self.floor[record.author] = max(body.number, self.floor.get(record.author, 0))

    def _admissions(self, record: Record, body: KeysBody) -> tuple[list[bytes], list[bytes]]:
        """Rule 7: which pending joiners this rotation lets in, and which lapse.

        The rotation's own signed time is its author's clock: a member's, not the joiner's.
        It lets in the pending joiners it seals the key to, if signed no later than their
        invite's expiry (else it is refused, ``invite_expired``); and a pending joiner whose
        join it names but leaves out lapses if it is signed after their invite expired.
        """
        named = set(body.after)
        admitted, lapsing = [], []
        for key, join_id in sorted(self.pending.items()):
            join = self.bodies[join_id]
            assert isinstance(join, JoinBody)
            expired = record.ts > self.invites[join.invite].expires_ms
            if key in body.shares:
                if expired:
                    raise RecordError(Reason.INVITE_EXPIRED, "the rotation lets a joiner in "
                                      "after their invite expired")
                admitted.append(key)
            elif expired and join_id in named:
                lapsing.append(key)
        return admitted, lapsing

    def _lapse(self, key: bytes, by: bytes) -> None:
        """A pending join lapses: the joiner is no member (as before their join)."""
        join_id = self.pending.pop(key)
        previous = self.before_join.pop(key, None)
        self.active.discard(key)
        if previous is None:
            del self.members[key]
        else:
            self.members[key] = previous
        self.lapsed[join_id] = by
        self.changes.append(MembershipChange(by, ChangeKind.LAPSED, key))

    def _revoke(self, record: Record, body: RevokeBody) -> None:
        """Rule 11: any current member revokes an invite; the joins it does not name are
        ordered after it (see ``_soft_deps``), so they meet a revoked invite."""
        invite = self.invites.get(body.invite)
        if invite is None:
            raise RecordError(Reason.BAD_REFERENCE, "it names no accepted invite")
        if not invite.revoked:
            self.invites[invite.id] = replace(invite, revoked=True, revoked_by=record.id)

    def _sealed(self, record: Record, body: SealedBody) -> None:
        epoch = self.epochs.get(body.epoch)
        author = record.author
        if epoch is None:
            raise RecordError(Reason.BAD_REFERENCE, "it names no accepted epoch")
        if author not in epoch.shares:
            raise RecordError(Reason.STALE_EPOCH, f"epoch {epoch.number} was not sealed to "
                              "the author")
        floor = self.floor.get(author, 0)
        if epoch.number < floor:
            raise RecordError(Reason.STALE_EPOCH, f"epoch {epoch.number} is older than epoch "
                              f"{floor}, which the author already used")
        self.floor[author] = max(epoch.number, floor)

    def _carrier(self, record: Record, body: CarrierBody, member: bytes) -> None:
        """Rule 10: any current member names or drops a carrier; at most MAX_CARRIERS."""
        if not body.add:
            if body.carrier not in self.carriers:
                raise RecordError(Reason.BAD_REFERENCE, "that key is not a carrier here")
            del self.carriers[body.carrier]
            return
        if body.carrier in self.carriers:
            return  # named already: the first naming stands
        if len(self.carriers) >= MAX_CARRIERS:
            raise RecordError(Reason.NOT_ALLOWED, f"a space has at most {MAX_CARRIERS} carriers")
        self.carriers[body.carrier] = Carrier(body.carrier, member, record.id, record.ts)

    def result(self, sequence: tuple[bytes, ...], stalled: bool) -> SpaceState:
        """The state after every record has been applied."""
        version = len(self.changes)
        recipients = self.active | {d.key for d in self.devices.values()
                                    if d.revoked_by is None and d.member in self.active}
        clean = [e for e in self.epochs.values()
                 if e.version == version and e.recipients == recipients]
        current = min(clean, key=lambda e: (-e.number, e.id)).id if clean else None
        order = self.order
        if self.lapsed:  # a lapsed join never counted: refused, with the reason the rule gives
            for join_id in self.lapsed:
                self.statuses[join_id] = _refused(
                    Reason.INVITE_EXPIRED, "no member let the joiner in before the invite "
                    "expired")
            order = [rid for rid in order if rid not in self.lapsed]
        return SpaceState(
            space_id=self.space_id, kind=self.kind, founder=self.founder, history=self.history,
            members=self.members, epochs=self.epochs, current_epoch_id=current,
            invites=self.invites, removals=self.removals, changes=tuple(self.changes),
            statuses=self.statuses, order=tuple(order), sequence=sequence,
            bodies=self.bodies, stalled=stalled, floors=self.floor,
            records=self.by_id, carriers=self.carriers, pending=self.pending,
            devices=self.devices)
