"""The fold's rules applied one record at a time: :class:`Machine` holds the working state
of one fold while :func:`meshcrew.spaces.fold.fold` feeds it records in canonical order.

The rules are numbered and written down in :mod:`meshcrew.spaces.fold`; each method here says
which one it applies.
"""

from __future__ import annotations

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
)
from meshcrew.spaces.devices import verify_certificate, verify_revocation
from meshcrew.spaces.invites import verify_invite_proof
from meshcrew.spaces.kinds import MAX_CARRIERS, RecordKind, SpaceKind
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


def refused(reason: Reason, detail: str = "") -> Status:
    """A refusal for ``reason``."""
    return Status(Outcome.REJECTED, reason, detail)



class Machine:
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
                status = refused(exc.reason, exc.detail)
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
                                       len(self.changes), body.settings, body.carriers)
        self.floor[record.author] = max(body.number, self.floor.get(record.author, 0))

    def _admissions(self, record: Record, body: KeysBody) -> tuple[list[bytes], list[bytes]]:
        """Rule 7: which pending joiners this rotation lets in, and which lapse.

        The rotation's own signed time is its author's clock: a member's, not the joiner's.
        It lets in the pending joiners it seals the key to, if signed no later than their
        invite's expiry. Signed later, it is refused (``invite_expired``) if it names their
        join; if it does not, it was made before the join (sealed to the member they were
        before they left) and lets no one in: they keep waiting. A pending joiner whose join
        it names but leaves out lapses if it is signed after their invite expired.
        """
        named = set(body.after)
        admitted, lapsing = [], []
        for key, join_id in sorted(self.pending.items()):
            join = self.bodies[join_id]
            assert isinstance(join, JoinBody)
            expired = record.ts > self.invites[join.invite].expires_ms
            if key in body.shares:
                if not expired:
                    admitted.append(key)
                elif join_id in named:
                    raise RecordError(Reason.INVITE_EXPIRED, "the rotation lets a joiner in "
                                      "after their invite expired")
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
        ordered after it (see ``_soft_deps`` in :mod:`meshcrew.spaces.fold`), so they meet a
        revoked invite."""
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
        carriers = frozenset(self.carriers)  # a carrier named or dropped: rotate (rule 10)
        # While a joiner waits to be let in, no epoch is current: someone must rotate (rule 7).
        clean = [] if self.pending else [
            e for e in self.epochs.values() if e.version == version
            and e.recipients == recipients and frozenset(e.carriers) == carriers]
        current = min(clean, key=lambda e: (-e.number, e.id)).id if clean else None
        order = self.order
        if self.lapsed:  # a lapsed join never counted: refused, with the reason the rule gives
            for join_id in self.lapsed:
                self.statuses[join_id] = refused(
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
