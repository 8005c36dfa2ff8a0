"""Invites, finished (fold rules 4, 7 and 11): a join counts once a member's key rotation, signed
by the member's clock before the invite expired, lets the joiner in, so a backdated join after
expiry fails; a member revokes an invite and every join with it that the revocation does not
name is refused, in any delivery order."""

from __future__ import annotations

import random

import pytest

from meshcrew import crypto, spaces
from meshcrew.errors import SpaceError
from meshcrew.reasons import Reason
from meshcrew.records import Record
from meshcrew.spaces import CheckIn, MemberStatus, SpaceState
from meshcrew.spaces.bodies import KeysBody, RevokeBody, SealedBody, draft
from meshcrew.spaces.extend import extend
from meshcrew.spaces.posts import encode_post
from meshcrew.spaces.sealing import post_ad
from spaces_world import DAY, HOUR, World, person, pk

ADA, BO, CY, DEE = (person(n) for n in ("ada", "bo", "cy", "dee"))


def any_order(w: World, space: bytes, seed: int = 0) -> SpaceState:
    """The fold of every record, checked to be the same in a few delivery orders."""
    records = w.of(space)
    state = spaces.fold(space, records)
    shuffler = random.Random(seed)
    for _ in range(4):
        mixed = records + shuffler.sample(records, k=len(records) // 2)
        shuffler.shuffle(mixed)
        assert spaces.fold(space, mixed) == state
    return state


def crew() -> tuple[World, bytes]:
    w = World(5)
    space = w.found(ADA)
    w.admit(ADA, BO, space)
    return w, space


def test_a_join_counts_once_a_rotation_signed_before_the_expiry_lets_the_joiner_in() -> None:
    w, space = crew()
    code = w.invite(ADA, space, ttl=DAY)
    join = w.join(CY, code)
    early = w.sign(CY, space, spaces.bodies.draft(spaces.bodies.LeaveBody()))
    state = w.state(space)
    assert state.is_member(pk(CY))  # counted as a member (a rotation must include or drop Cy)
    assert not state.is_admitted(pk(CY))
    assert state.pending == {pk(CY): join.id}
    assert state.statuses[early.id].reason is Reason.NOT_MEMBER
    assert "awaits admission" in state.statuses[early.id].detail
    rotation = w.rotate(ADA, space)  # Ada's clock: well before the expiry
    state = any_order(w, space)
    assert state.statuses[rotation.id].accepted
    assert pk(CY) in state.epochs[rotation.id].shares
    # Cy's leave, signed before Ada let Cy in, is put after the rotation that names the join
    # (a soft rule), so it now counts, whatever order the records arrive in.
    assert state.sequence.index(rotation.id) < state.sequence.index(early.id)
    assert state.statuses[early.id].accepted
    assert state.members[pk(CY)].status is MemberStatus.LEFT
    assert not state.pending


def test_a_backdated_join_after_the_expiry_lapses_when_the_inviter_rotates() -> None:
    w, space = crew()
    code = w.invite(ADA, space, ttl=HOUR)
    expiry = w.now + HOUR  # the invite's expires_ms (the invite was signed at w.now)
    w.tick(2 * HOUR)
    # Cy found the old code and dates the join before the expiry.
    join = w.join(CY, code, ts=expiry - 60_000)
    state = w.state(space)
    assert state.statuses[join.id].accepted
    assert pk(CY) in state.pending
    now = w.tick()
    rotation = w.sign(ADA, space, spaces.rotate_keys(state, ADA, w.rng, now_ms=now), ts=now)
    state = any_order(w, space)
    assert state.statuses[join.id].reason is Reason.INVITE_EXPIRED
    assert "before the invite expired" in state.statuses[join.id].detail
    assert pk(CY) not in state.members
    assert state.current_epoch_id == rotation.id
    assert not state.needs_rekey
    assert pk(CY) not in state.epochs[rotation.id].shares
    assert join.id not in state.order
    assert state.changes[-1].change.value == "lapsed"
    # Nothing Cy signs afterwards counts; Cy may join again with a new, valid invite.
    after = w.sign(CY, space, spaces.bodies.draft(spaces.bodies.LeaveBody()))
    assert w.state(space).statuses[after.id].reason is Reason.NOT_MEMBER
    w.join(CY, w.invite(BO, space))
    w.rotate(BO, space)
    assert w.state(space).is_admitted(pk(CY))


def test_a_rotation_that_lets_a_joiner_in_after_the_expiry_is_refused() -> None:
    """Whoever signs it: the admitting member's own clock says it is too late."""
    w, space = crew()
    code = w.invite(ADA, space, ttl=HOUR)
    join = w.join(CY, code)
    state = w.state(space)
    late = w.now + 2 * HOUR
    rotation = w.sign(BO, space, spaces.rotate_keys(state, BO, w.rng), ts=late)  # takes Cy in
    state = any_order(w, space)
    assert state.statuses[rotation.id].reason is Reason.INVITE_EXPIRED
    assert state.statuses[join.id].accepted  # still waiting: no one has let Cy in or out
    assert pk(CY) in state.pending
    assert state.needs_rekey


def test_a_rotation_letting_a_rejoiner_in_after_the_expiry_is_refused() -> None:
    """Bo left and joined again before anyone rotated, so he still holds the previous epoch;
    Dee joined after him. The rotation names Bo's join all the same, and letting him in late
    is refused as for a newcomer."""
    w, space = crew()
    w.leave(BO, space)
    rejoin = w.join(BO, w.invite(ADA, space, ttl=HOUR))
    w.join(DEE, w.invite(ADA, space))  # the latest change, so it is named anyway
    state = w.state(space)
    assert state.changes[-1].record_id != rejoin.id
    assert all(pk(BO) in epoch.shares for epoch in state.epochs.values() if epoch.number == 1)
    late = w.sign(ADA, space, spaces.rotate_keys(state, ADA, w.rng), ts=w.now + 2 * HOUR)
    state = any_order(w, space)
    assert state.statuses[late.id].reason is Reason.INVITE_EXPIRED
    keys = state.bodies[late.id]
    assert isinstance(keys, KeysBody)
    assert rejoin.id in keys.after  # though Bo still held the previous epoch
    assert pk(BO) in state.pending
    assert state.needs_rekey


def rejoined_behind_a_stale_rotation() -> tuple[World, bytes, Record, Record]:
    """Ada, Bo and Cy; Ada makes a rotation while Bo is a member, Bo leaves and rejoins with
    her one-hour invite, and she signs the rotation two hours later. Returns the world, the
    space, Bo's rejoin and the stale rotation."""
    w = World(1)  # a seed whose ids put the rotation after the rejoin
    space = w.found(ADA)
    w.admit(ADA, BO, space)
    w.admit(ADA, CY, space)
    code = w.invite(ADA, space, ttl=HOUR)
    made_before = spaces.rotate_keys(w.state(space), ADA, w.rng)
    w.leave(BO, space)
    rejoin = w.join(BO, code)
    stale = w.sign(ADA, space, made_before, ts=w.now + 2 * HOUR)
    return w, space, rejoin, stale


def test_a_rotation_made_before_a_member_left_lets_no_one_in_when_they_rejoin() -> None:
    """Ada's rotation, made while Bo was a member and so sealed to him, is signed after the
    invite he rejoins with expired, and the order puts it after his rejoin. It names no join of
    his: no late admission, and not refused (the thorough profile found it refused). Bo waits
    until a rotation lets him in; until then no epoch is current."""
    w, space, rejoin, stale = rejoined_behind_a_stale_rotation()
    state = any_order(w, space)
    assert state.sequence.index(rejoin.id) < state.sequence.index(stale.id)
    assert state.statuses[stale.id].accepted
    assert pk(BO) in state.epochs[stale.id].shares
    assert state.pending == {pk(BO): rejoin.id}
    assert state.current_epoch_id is None
    assert state.needs_rekey
    rotation = w.rotate(CY, space)  # Cy's clock: before the expiry
    state = any_order(w, space)
    assert state.statuses[rotation.id].accepted
    assert state.is_admitted(pk(BO))
    assert state.current_epoch_id == rotation.id


def test_a_joiner_awaiting_admission_has_no_say_in_a_removal() -> None:
    w, space = crew()
    w.admit(ADA, DEE, space)
    w.join(CY, w.invite(ADA, space))  # not let in yet
    proposal = w.propose(ADA, space, DEE)
    state = w.state(space)
    removal = state.removals[proposal.id]
    assert removal.electorate == {pk(ADA), pk(BO)}
    assert removal.needed == 2


def test_a_revoked_invite_admits_no_one_in_any_order() -> None:
    w, space = crew()
    code = w.invite(ADA, space, uses=3)
    first = w.join(CY, code)  # seen by Bo before he revokes: it stands
    w.rotate(ADA, space)
    revoke = w.sign(BO, space, spaces.revoke_invite(w.state(space), pk(BO), code.invite_id))
    # Dee's node had the invite from before: Dee joins with it, not having seen the revoke.
    late = w.join(DEE, code)
    state = any_order(w, space)
    assert state.statuses[revoke.id].accepted
    assert state.invites[code.invite_id].revoked_by == revoke.id
    assert state.statuses[first.id].accepted
    assert state.is_admitted(pk(CY))
    assert state.statuses[late.id].reason is Reason.INVITE_REVOKED
    assert spaces.invite_problem(state, code.invite_id, w.now) is Reason.INVITE_REVOKED
    # A join the revocation did not name waits behind it even if signed "before" it.
    assert state.sequence.index(revoke.id) < state.sequence.index(late.id)


def test_a_revocation_by_a_non_member_or_of_a_non_invite_is_refused() -> None:
    w, space = crew()
    code = w.invite(ADA, space)
    leave_of_bo = w.leave(BO, space)
    stranger = w.sign(DEE, space, draft(RevokeBody(code.invite_id)))
    not_an_invite = w.sign(ADA, space, draft(RevokeBody(leave_of_bo.id)))
    state = any_order(w, space)
    assert state.statuses[stranger.id].reason is Reason.NOT_MEMBER
    assert state.statuses[not_an_invite.id].reason is Reason.BAD_REFERENCE
    assert not state.invites[code.invite_id].revoked


def test_the_builders_refuse_what_the_rules_would() -> None:
    w, space = crew()
    code = w.invite(ADA, space, uses=2)
    w.join(CY, code)
    state = w.state(space)
    with pytest.raises(SpaceError, match="not been let in"):
        spaces.revoke_invite(state, pk(CY), code.invite_id)
    with pytest.raises(SpaceError, match="not been let in"):
        spaces.create_invite(state, pk(CY), expires_ms=w.now + DAY, rng=w.rng)
    with pytest.raises(SpaceError, match="not been let in"):
        spaces.leave_space(state, pk(CY))
    w.rotate(ADA, space)
    w.sign(BO, space, spaces.revoke_invite(w.state(space), pk(BO), code.invite_id))
    with pytest.raises(SpaceError, match="revoked already"):
        spaces.revoke_invite(w.state(space), pk(BO), code.invite_id)
    used = w.invite(ADA, space)
    w.join(DEE, used)
    with pytest.raises(SpaceError, match="nothing left to revoke"):  # its one use is taken
        spaces.revoke_invite(w.state(space), pk(BO), used.invite_id)


def test_extend_places_a_joiners_first_post_after_every_rotation_naming_the_join() -> None:
    """Two members let Cy in at once; Cy's first post is ordered behind both rotations by a
    soft rule, which the fast path must follow to give the fold's state."""
    for seed in range(12):
        w = World(seed)
        space = w.found(ADA)
        w.admit(ADA, BO, space)
        w.join(CY, w.invite(ADA, space))
        seen = w.state(space)
        w.sign(ADA, space, spaces.rotate_keys(seen, ADA, w.rng))
        w.sign(BO, space, spaces.rotate_keys(seen, BO, w.rng))
        for n in range(seed % 4):
            w.post(BO, space, CheckIn(f"meanwhile {n}", 2))
        held = w.of(space)
        state = spaces.fold(space, held)
        first = w.post(CY, space, CheckIn("hello", 4))
        extended = extend(state, [first])
        assert extended is not None  # Cy is let in: the fast path takes the post
        assert extended == spaces.fold(space, [*held, first])


def test_extend_leaves_a_post_by_a_joiner_not_let_in_to_the_fold() -> None:
    w, space = crew()
    w.post(BO, space, CheckIn("before", 3))
    old_keys = spaces.unlock(w.state(space), BO)
    w.leave(BO, space)
    w.rotate(ADA, space)
    w.join(BO, w.invite(ADA, space))  # Bo rejoins: not let in yet, but holds old keys
    state = w.state(space)
    assert pk(BO) in state.pending
    epoch = max(old_keys.epoch_keys, key=lambda e: state.epochs[e].number)
    blob = crypto.encrypt(old_keys.epoch_keys[epoch], encode_post(CheckIn("sneaky", 1)),
                          post_ad(space, pk(BO), epoch), w.rng)
    post = w.sign(BO, space, draft(SealedBody(epoch, blob)))
    assert extend(state, [post]) is None
    assert spaces.fold(space, w.of(space)).statuses[post.id].reason is Reason.NOT_MEMBER
