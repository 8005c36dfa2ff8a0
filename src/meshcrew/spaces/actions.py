"""Builders of the membership records a member signs.

Each builder returns a :class:`~meshcrew.spaces.bodies.Draft` (``kind``, ``body``) for
:func:`meshcrew.records.sign_record`; the caller picks ``space``, ``seq``, ``prev`` and ``ts``
(for a genesis, ``space=NEW_SPACE, seq=1, prev=None``). Builders check what the member can know
locally and raise :class:`~meshcrew.errors.SpaceError` rather than make a record every replica
would refuse. Randomness comes from ``rng`` (``os.urandom`` in production).
"""

from __future__ import annotations

import msgpack
from nacl.signing import SigningKey

from meshcrew.crypto import SEALED_KEY_BYTES, Rng, encrypt, new_key, seal_to_member
from meshcrew.errors import SpaceError
from meshcrew.reasons import Reason
from meshcrew.records import MAX_BODY_BYTES, Record
from meshcrew.spaces.bodies import (
    MAX_INVITE_USES,
    CarrierBody,
    ConsentBody,
    Draft,
    GenesisBody,
    InviteBody,
    JoinBody,
    KeysBody,
    LeaveBody,
    RemoveBody,
    RevokeBody,
    draft,
)
from meshcrew.spaces.cards import card_public_key
from meshcrew.spaces.invites import (
    SECRET_BYTES,
    InviteCode,
    encode_invite_code,
    invite_public_key,
    prove_invite,
)
from meshcrew.spaces.kinds import MAX_CARRIERS, RecordKind, SpaceKind
from meshcrew.spaces.sealing import (
    HISTORY_AD,
    META_AD,
    META_KEY_AD,
    Keyring,
    epoch_ad,
    seal_settings,
    unlock,
)
from meshcrew.spaces.settings import SettingsSnapshot, SpaceMeta
from meshcrew.spaces.state import Invite, SpaceState
from meshcrew.spaces.transit import transit_key

# Sizes on the wire, for fitting a rotation into one record: a share is a 32-byte key and an
# 80-byte sealed key with their msgpack headers; an id is 32 bytes and its header; the rest
# (number, prev, the latest change, history link, meta-key blob, map headers) stays under 1 KiB.
_SHARE_BYTES = 2 + 32 + 2 + SEALED_KEY_BYTES
_ID_BYTES = 2 + 32
_KEYS_OVERHEAD = 1024


def _public(key: SigningKey) -> bytes:
    return bytes(key.verify_key)


_NOT_LET_IN = ("Your join has not been let in yet: a member's key rotation admits you (usually "
               "the inviter's, as soon as your join reaches them).")


def _require_member(state: SpaceState, member: bytes) -> None:
    """``member`` (a member key, or a device of a member) is a current member let in."""
    if not state.is_member(member):
        raise SpaceError("You are not a member of this space.")
    if state.member_of(member) in state.pending:
        raise SpaceError(_NOT_LET_IN)


def create_space(founder: SigningKey, kind: SpaceKind, meta: SpaceMeta, rng: Rng, *,
                 history: bool = True) -> Draft:
    """The genesis of a new space, with epoch 0's key sealed to the founder.

    Sign it with ``space=NEW_SPACE, seq=1, prev=None``; the record's id is the space id.

    Args:
        founder: the founder's identity key.
        kind: crew, dyad or congregation.
        meta: name, purpose, rhythm, and the parent congregation for a crew or dyad.
        rng: random bytes.
        history: whether joiners may read what was written before they joined.
    """
    if kind is SpaceKind.CONGREGATION and meta.parent is not None:
        raise SpaceError("A congregation cannot belong to another space.")
    me = _public(founder)
    epoch_key, meta_key = new_key(rng), new_key(rng)
    meta_bytes: bytes = msgpack.packb(meta.to_wire(), use_bin_type=True)
    return draft(GenesisBody(
        space_kind=kind, history=history, shares={me: seal_to_member(me, epoch_key, rng)},
        meta_key=encrypt(epoch_key, meta_key, epoch_ad(META_KEY_AD, me, 0), rng),
        meta=encrypt(meta_key, meta_bytes, META_AD + me, rng),
        card_key=None if kind is SpaceKind.CONGREGATION else card_public_key(meta_key)))


def create_invite(state: SpaceState, inviter: bytes, *, expires_ms: int, rng: Rng,
                  uses: int = 1) -> tuple[Draft, bytes]:
    """An invite record and its secret (which goes only into the invite code).

    Args:
        state: the space as the inviter sees it.
        inviter: the inviter's public key.
        expires_ms: the last instant (UTC ms) a join may be signed at.
        rng: random bytes.
        uses: how many joins it admits (1 unless the member chooses otherwise).

    Returns:
        The draft, and the 32-byte secret to pass to :func:`invite_code` once signed.
    """
    _require_member(state, inviter)
    if not 1 <= uses <= MAX_INVITE_USES:
        raise SpaceError(f"An invite admits 1 to {MAX_INVITE_USES} people.")
    secret = rng(SECRET_BYTES)
    if len(secret) != SECRET_BYTES:
        raise ValueError(f"rng({SECRET_BYTES}) must return {SECRET_BYTES} bytes")
    return draft(InviteBody(invite_public_key(secret), expires_ms, uses)), secret


def invite_code(invite: Record, secret: bytes, addrs: tuple[str, ...] = ()) -> str:
    """The one-line invite code for a signed invite record and its secret."""
    return encode_invite_code(InviteCode(invite.space_id, invite.id, secret, addrs))


def invite_problem(state: SpaceState, invite_id: bytes, at_ms: int) -> Reason | None:
    """Why a join with this invite signed at ``at_ms`` would be refused, as far as ``state``
    shows (None if it looks usable). Lets a joiner's node say "this invite was already used"
    before sending anything; a concurrent join may still win the race."""
    invite = state.invites.get(invite_id)
    if invite is None:
        return Reason.INVITE_UNKNOWN
    if invite.revoked:
        return Reason.INVITE_REVOKED
    if at_ms > invite.expires_ms:
        return Reason.INVITE_EXPIRED
    if len(invite.used_by) >= invite.uses:
        return Reason.INVITE_EXHAUSTED
    if state.kind is not None and len(state.active) >= state.kind.max_members:
        return Reason.SPACE_FULL
    return None


def join_space(code: InviteCode, joiner: SigningKey) -> Draft:
    """A join proving possession of the invite secret; sign it as the joiner's first record
    in the space (``space=code.space_id``; ``seq=1, prev=None`` unless rejoining)."""
    me = _public(joiner)
    return draft(JoinBody(code.invite_id, me, prove_invite(code.secret, code.space_id, me)))


def leave_space(state: SpaceState, member: bytes, *, expire_posts: bool = False) -> Draft:
    """A leave: always allowed for a current member. With ``expire_posts`` their past
    check-ins and conversation posts expire at once on every member's node."""
    _require_member(state, member)
    return draft(LeaveBody(expire_posts, _device_heads(state, member)))


def _device_heads(state: SpaceState, signer: bytes) -> tuple[tuple[bytes, int, bytes], ...]:
    """The last counting record of each current device of ``signer``'s member other than
    ``signer`` (the member key included): a leave or removal names them (fold rule 12)."""
    member = state.member_of(signer)
    if member is None:
        return ()
    heads = []
    for device in state.devices_of(member):
        head = state.last_counting_record(device) if device != signer else None
        if head is not None:
            heads.append((device, head.seq, head.id))
    return tuple(heads)


def propose_removal(state: SpaceState, proposer: bytes, member: bytes) -> Draft:
    """A proposal to remove ``member``, naming their last record that still counts.

    It also names the joins (or genesis) of the other current members: they are the electorate
    whose majority must agree, on every replica. The proposer's own proposal counts as one consent.
    """
    _require_member(state, proposer)
    if member == state.member_of(proposer):
        raise SpaceError("To leave a space, leave it; a removal is of someone else.")
    if member not in state.active:
        raise SpaceError("That key is not a current member of this space.")
    last = state.last_counting_record(member)
    if last is None:  # pragma: no cover - a member has at least their genesis or join
        raise SpaceError("That member has no accepted record to name.")
    electorate = sorted(state.members[k].joined_id for k in state.active if k != member)
    return draft(RemoveBody(member, last.seq, last.id, tuple(electorate),
                            _device_heads(state, member)))  # every device goes with them


def consent_to_removal(state: SpaceState, member: bytes, proposal_id: bytes) -> Draft:
    """Consent to a removal proposal."""
    _require_member(state, member)
    proposal = state.removals.get(proposal_id)
    if proposal is None:
        raise SpaceError("There is no such removal proposal in this space.")
    if proposal.member == state.member_of(member):
        raise SpaceError("You cannot consent to your own removal.")
    return draft(ConsentBody(proposal_id))


def name_carrier(state: SpaceState, member: bytes, carrier: bytes) -> Draft:
    """Name a carrier of the space (any member may; see rule 10 of the fold)."""
    _require_member(state, member)
    if len(carrier) != 32:
        raise SpaceError("A carrier is named by its 32-byte public key.")
    if state.is_carrier(carrier):
        raise SpaceError("That node already carries this space.")
    if state.is_member(carrier):
        raise SpaceError("That key is a member of this space; members hold its records anyway.")
    if len(state.carriers) >= MAX_CARRIERS:
        raise SpaceError(f"A space names at most {MAX_CARRIERS} carriers; drop one first.")
    return draft(CarrierBody(carrier, add=True, after=_last_about(state, carrier)))


def drop_carrier(state: SpaceState, member: bytes, carrier: bytes) -> Draft:
    """Stop a carrier carrying the space (any member may)."""
    _require_member(state, member)
    if not state.is_carrier(carrier):
        raise SpaceError("That node does not carry this space.")
    return draft(CarrierBody(carrier, add=False, after=state.carriers[carrier].record_id))


def _last_about(state: SpaceState, carrier: bytes) -> bytes | None:
    """The latest accepted carrier record about ``carrier`` (a new naming follows it)."""
    last = None
    for record in state.accepted(RecordKind.CARRIER):
        body = state.bodies.get(record.id)
        if isinstance(body, CarrierBody) and body.carrier == carrier:
            last = record.id
    return last


def rotate_keys(state: SpaceState, author: SigningKey, rng: Rng,
                keyring: Keyring | None = None, *, now_ms: int | None = None,
                settings: SettingsSnapshot | None = None) -> Draft:
    """A ``keys`` record opening a new epoch sealed to the current members, its transit key
    sealed to the carriers named now.

    Make one after a join (the inviter does), after naming or dropping a carrier (whoever did),
    and after a departure (anyone who wants to write and finds :attr:`SpaceState.needs_rekey`
    true). A rotation names the join of every recipient waiting to be let in, and so lets
    them in (fold rule 7); if more people joined since the last rotation than one record can
    name (at least 190 fit, even in a congregation of 500), it takes in the first ones only,
    and ``needs_rekey`` stays true: rotate again.

    Args:
        state: the space as the author sees it.
        author: the author's identity key.
        rng: random bytes.
        keyring: the author's keys (computed with :func:`unlock` if not given).
        now_ms: the time the record will be signed at (its ``ts``). A joiner waiting to be
            let in whose invite had expired by then is left out, and their join named, so
            it lapses; without it, every waiting joiner is taken in (and the fold refuses the
            rotation if one's invite had expired when it was signed).
        settings: the settings as the author knows them; carried (in a space without
            history) for joiners, who cannot read the changes made before they joined.
    """
    me = _public(author)
    _require_member(state, me)
    keyring = keyring if keyring is not None else unlock(state, author)
    held = [state.epochs[eid] for eid in keyring.epoch_keys]
    if not held or keyring.meta_key is None:
        raise SpaceError("No key of this space has been shared with you yet; wait for a "
                         "member to rotate the keys.")
    prev = min(held, key=lambda e: (-e.number, e.id))
    number = prev.number + 1
    # Wait for (and so be ordered after) the joins of new recipients and the latest change.
    expired = set() if now_ms is None else {
        key for key in state.pending if now_ms > _invite_of_join(state, key).expires_ms}
    # A joiner waiting to be let in has their join named even if they still hold the previous
    # epoch (a member who left and joined again): the fold orders their next record after
    # this rotation, and refuses it if it lets them in late (rule 7).
    staying = [key for key in state.active if key not in state.pending and (
        key in prev.shares
        or state.records[state.members[key].joined_id].kind != RecordKind.JOIN)]
    # Every current device of a current member (fold rule 12); a new one's certificate is
    # named, so the rotation is ordered after it.
    devices = [d for d in state.devices.values()
               if d.revoked_by is None and d.member in state.active and d.member not in expired]
    staying += [d.key for d in devices]
    joining = sorted((state.members[key].joined_id, key) for key in state.active
                     if key not in staying and key not in expired)
    carriers = sorted(state.carriers)  # each gets the transit key (opens gossip, not posts)
    room = (MAX_BODY_BYTES - _KEYS_OVERHEAD - _SHARE_BYTES * (len(staying) + len(carriers))) // (
        _SHARE_BYTES + _ID_BYTES)
    joining = joining[:max(room, 0)]
    recipients = sorted([*staying, *(key for _, key in joining)])
    after = ({join_id for join_id, _ in joining} | {state.changes[-1].record_id}
             | {state.pending[key] for key in expired}  # named and left out: they lapse
             | {d.cert_id for d in devices if d.key not in prev.shares})
    new = new_key(rng)
    history = None
    if state.history:
        older = {e.id: keyring.epoch_keys[e.id] for e in held if e.number == prev.number}
        history = encrypt(new, msgpack.packb(older, use_bin_type=True),
                          epoch_ad(HISTORY_AD, me, number), rng)
    snapshot = (None if state.history or settings is None
                else seal_settings(new, settings, me, number, rng))
    return draft(KeysBody(
        number=number, prev=prev.id,
        shares={key: seal_to_member(key, new, rng) for key in recipients},
        after=tuple(sorted(after)), history=history,
        meta_key=encrypt(new, keyring.meta_key, epoch_ad(META_KEY_AD, me, number), rng),
        settings=snapshot,
        carriers={key: seal_to_member(key, transit_key(new), rng) for key in carriers}))


def _invite_of_join(state: SpaceState, joiner: bytes) -> Invite:
    """The invite a joiner waiting to be let in joined with."""
    body = state.bodies[state.pending[joiner]]
    assert isinstance(body, JoinBody)
    return state.invites[body.invite]


def revoke_invite(state: SpaceState, member: bytes, invite_id: bytes) -> Draft:
    """Revoke an invite that still admits someone (any current member may; fold rule 11).

    The record names the joins with the invite that ``state`` holds: they stand. Any other join
    with it, wherever it sits in the order, is refused ``invite_revoked``.
    """
    _require_member(state, member)
    invite = state.invites.get(invite_id)
    if invite is None:
        raise SpaceError("There is no such invite in this space.")
    if invite.revoked:
        raise SpaceError("This invite is revoked already.")
    if len(invite.used_by) >= invite.uses:
        raise SpaceError("This invite has been used as many times as it allows; there is "
                         "nothing left to revoke.")
    return draft(RevokeBody(invite_id, tuple(sorted(invite.used_by))))
