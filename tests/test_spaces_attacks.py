"""Attacks on a crew's membership rules, each refused with its reason on every delivery order."""

from __future__ import annotations

import dataclasses
import random

import pytest
from nacl.signing import SigningKey

from meshcrew import crypto, spaces
from meshcrew.errors import SpaceError
from meshcrew.reasons import Reason
from meshcrew.records import Record
from meshcrew.spaces import CheckIn, InviteCode, Outcome, SpaceState
from meshcrew.spaces.bodies import Draft, InviteBody, JoinBody, SealedBody, draft
from meshcrew.spaces.invites import invite_public_key, prove_invite
from meshcrew.spaces.posts import encode_post
from meshcrew.spaces.sealing import post_ad
from spaces_world import DAY, World, person, pk

ADA, BO, CY, DAN, EVE = (person(n) for n in ("ada", "bo", "cy", "dan", "eve"))
MALLORY = person("mallory")
HELLO = CheckIn("arriving", 3)


def crew(*members: str) -> tuple[World, bytes]:
    """A crew founded by ada with the named members admitted in turn (keys rotated)."""
    w = World()
    space = w.found(ADA)
    for name in members:
        w.admit(ADA, person(name), space)
    return w, space


def refused(state: SpaceState, rec: Record, reason: Reason) -> None:
    status = state.status(rec.id)
    assert status is not None
    assert (status.outcome, status.reason) == (Outcome.REJECTED, reason), status


def in_every_order(w: World, space: bytes, rec: Record, reason: Reason, rounds: int = 12) -> None:
    """The record is refused with ``reason`` whatever order the records arrive in."""
    shuffler = random.Random(rec.id)
    records = w.of(space)
    first = w.state(space, records)
    refused(first, rec, reason)
    for _ in range(rounds):
        shuffler.shuffle(records)
        assert w.state(space, records) == first


def seal_with_epoch(w: World, state: SpaceState, author: SigningKey, epoch_id: bytes) -> Draft:
    """A post sealed under a chosen epoch (bypassing the builder's choice of the current one)."""
    keyring = spaces.unlock(state, author)
    blob = crypto.encrypt(keyring.epoch_keys[epoch_id], encode_post(HELLO),
                          post_ad(state.space_id, pk(author), epoch_id), w.rng)
    return draft(SealedBody(epoch_id, blob))


def test_a_non_member_cannot_post_invite_or_rotate() -> None:
    w, space = crew("bo")
    state = w.state(space)
    epoch = state.current_epoch_id
    assert epoch is not None
    post = w.sign(EVE, space, draft(SealedBody(epoch, w.rng(64))))
    invite = w.sign(EVE, space, draft(InviteBody(invite_public_key(w.rng(32)), w.now + DAY, 1)))
    rotation = w.sign(EVE, space, spaces.rotate_keys(state, BO, w.rng))
    for rec in (post, invite, rotation):
        in_every_order(w, space, rec, Reason.NOT_MEMBER)
    assert pk(EVE) not in w.state(space).members


def test_a_removed_member_cannot_post_after_removal() -> None:
    w, space = crew("bo", "cy", "dan")
    before = w.post(DAN, space, HELLO)
    proposal = w.propose(ADA, space, DAN)  # names `before` as dan's last counting record
    # dan, not yet aware, posts concurrently; then consent arrives and the removal takes effect
    concurrent = w.post(DAN, space, HELLO)
    w.consent(BO, space, proposal)  # ada + bo = 2 of the 3 others: a majority
    state = w.state(space)
    assert state.removals[proposal.id].effective
    assert state.members[pk(DAN)].status is spaces.MemberStatus.REMOVED
    assert state.status(before.id) == spaces.state.ACCEPTED
    in_every_order(w, space, concurrent, Reason.REMOVED_MEMBER)
    # and after the removal, with the key dan still holds
    later = w.sign(DAN, space, seal_with_epoch(w, state, DAN, _epoch_of(state, before)))
    in_every_order(w, space, later, Reason.REMOVED_MEMBER)
    # a removed member cannot come back with a fresh invite either
    rejoin = w.join(DAN, w.invite(BO, space))
    in_every_order(w, space, rejoin, Reason.REMOVED_MEMBER)


def _epoch_of(state: SpaceState, rec: Record) -> bytes:
    body = spaces.bodies.parse_body(rec.kind, rec.body)
    assert isinstance(body, SealedBody)
    return body.epoch


def test_a_reused_invite_is_exhausted() -> None:
    w, space = crew()
    code = w.invite(ADA, space)
    first = w.join(BO, code)
    second = w.join(CY, code)
    assert w.state(space).is_member(pk(BO))
    in_every_order(w, space, second, Reason.INVITE_EXHAUSTED)
    assert w.state(space).invites[code.invite_id].used_by == (first.id,)


def test_concurrent_uses_of_a_single_use_invite_pick_one_winner_everywhere() -> None:
    w, space = crew()
    code = w.invite(ADA, space)
    joins = [w.join(person(name), code) for name in ("bo", "cy", "dan", "eve")]
    winner = min(joins, key=lambda r: r.id)
    for rec in joins:
        if rec is winner:
            assert w.state(space).status(rec.id) == spaces.state.ACCEPTED
        else:
            in_every_order(w, space, rec, Reason.INVITE_EXHAUSTED)


def test_an_expired_invite_is_refused_by_the_joins_own_timestamp() -> None:
    w, space = crew()
    code = w.invite(ADA, space, ttl=DAY)
    expires = w.state(space).invites[code.invite_id].expires_ms
    late = w.join(BO, code, ts=expires + 1)
    in_every_order(w, space, late, Reason.INVITE_EXPIRED)
    on_time = w.join(CY, code, ts=expires)  # the expiry instant itself still counts
    assert w.state(space).status(on_time.id) == spaces.state.ACCEPTED


def test_a_join_with_the_wrong_secret_is_refused() -> None:
    w, space = crew()
    code = w.invite(ADA, space)
    guessed = InviteCode(code.space_id, code.invite_id, bytes(32), code.addrs)
    bad = w.join(BO, guessed)
    in_every_order(w, space, bad, Reason.INVITE_BAD_PROOF)
    assert w.state(space).invites[code.invite_id].used_by == ()


def test_a_join_naming_no_invite_is_refused() -> None:
    w, space = crew()
    code = w.invite(ADA, space)
    not_an_invite = InviteCode(space, space, code.secret)  # names the genesis
    bad = w.join(BO, not_an_invite)
    in_every_order(w, space, bad, Reason.INVITE_UNKNOWN)


def test_a_removed_members_invites_are_revoked() -> None:
    w, space = crew("bo", "cy")
    code = w.invite(CY, space)
    w.consent(BO, space, w.propose(ADA, space, CY))
    late = w.join(DAN, code)
    in_every_order(w, space, late, Reason.INVITE_REVOKED)


def test_a_removal_without_enough_consent_does_not_take_effect() -> None:
    w, space = crew("bo", "cy", "dan", "eve")  # five members: removing eve needs 3 of 4
    proposal = w.propose(ADA, space, EVE)
    by_target = w.sign(EVE, space, draft(spaces.bodies.ConsentBody(proposal.id)))
    by_outsider = w.sign(MALLORY, space, draft(spaces.bodies.ConsentBody(proposal.id)))
    w.consent(BO, space, proposal)
    w.consent(BO, space, proposal)  # consenting twice counts once
    eve_post = w.post(EVE, space, HELLO)
    state = w.state(space)
    removal = state.removals[proposal.id]
    assert removal.reason is Reason.CONSENT_INSUFFICIENT
    assert not removal.effective
    assert state.is_member(pk(EVE))
    assert state.status(eve_post.id) == spaces.state.ACCEPTED
    in_every_order(w, space, by_target, Reason.NOT_ALLOWED)
    in_every_order(w, space, by_outsider, Reason.NOT_MEMBER)
    # A third consent reaches the majority: eve's records after the named one stop counting.
    w.consent(CY, space, proposal)
    assert w.state(space).removals[proposal.id].effective
    in_every_order(w, space, eve_post, Reason.REMOVED_MEMBER)


def test_members_who_join_after_a_removal_is_proposed_cannot_tip_it() -> None:
    """Who may consent: the electorate is fixed when the removal is proposed (docs/spaces.md);
    newcomers' consents neither count towards the bar nor lower it."""
    w, space = crew("bo", "cy", "dan", "eve")  # removing eve needs 3 of ada, bo, cy, dan
    proposal = w.propose(ADA, space, EVE)
    w.consent(BO, space, proposal)
    fay, gus = person("fay"), person("gus")
    for newcomer in (fay, gus):
        w.admit(ADA, newcomer, space)
        w.consent(newcomer, space, proposal)
    state = w.state(space)
    assert state.removals[proposal.id].reason is Reason.CONSENT_INSUFFICIENT
    assert state.is_member(pk(EVE))
    w.consent(CY, space, proposal)  # the third of the four who could see the proposal
    assert w.state(space).removals[proposal.id].effective
    assert not w.state(space).is_member(pk(EVE))


def test_a_member_joining_again_is_refused_and_keeps_the_invite_unused() -> None:
    w, space = crew("bo")
    code = w.invite(ADA, space)
    again = w.join(BO, code)  # bo is still an active member
    in_every_order(w, space, again, Reason.ALREADY_MEMBER)
    state = w.state(space)
    assert state.invites[code.invite_id].used_by == ()
    # the invite still admits someone new
    cy_join = w.join(CY, code)
    assert w.state(space).status(cy_join.id) == spaces.state.ACCEPTED


def test_a_member_cannot_forge_another_members_join() -> None:
    w, space = crew("mallory")
    code = w.invite(MALLORY, space)
    # mallory holds the secret; she signs a join "for bo" with a valid proof for bo's key
    forged = w.sign(MALLORY, space, draft(JoinBody(
        code.invite_id, pk(BO), prove_invite(code.secret, space, pk(BO)))))
    in_every_order(w, space, forged, Reason.JOIN_FORGED)
    assert not w.state(space).is_member(pk(BO))
    # an outsider who copies bo's genuine join body into their own record fares no better
    genuine = spaces.join_space(code, BO)
    lifted = w.sign(EVE, space, genuine)
    in_every_order(w, space, lifted, Reason.JOIN_FORGED)
    # and rewriting the joiner to themself breaks the proof
    body = spaces.bodies.parse_body(genuine.kind, genuine.body)
    assert isinstance(body, JoinBody)
    rewritten = w.sign(CY, space, draft(dataclasses.replace(body, joiner=pk(CY))))
    in_every_order(w, space, rewritten, Reason.INVITE_BAD_PROOF)


def test_a_body_encrypted_with_a_stale_epoch_key_is_refused() -> None:
    w, space = crew("bo")
    old = w.state(space).current_epoch_id
    w.admit(ADA, CY, space)
    state = w.state(space)
    new = state.current_epoch_id
    assert old is not None
    assert new is not None
    assert old != new
    w.post(BO, space, HELLO)  # bo writes under the new epoch ...
    stale = w.sign(BO, space, seal_with_epoch(w, state, BO, old))  # ... then under the old
    in_every_order(w, space, stale, Reason.STALE_EPOCH)
    # cy, who joined later, may hold the old key through history but may not write under it
    by_joiner = w.sign(CY, space, seal_with_epoch(w, state, CY, old))
    in_every_order(w, space, by_joiner, Reason.STALE_EPOCH)


def test_after_a_removal_nobody_writes_until_the_keys_rotate() -> None:
    w, space = crew("bo", "cy")
    before = w.state(space).current_epoch_id
    w.consent(BO, space, w.propose(ADA, space, CY))
    state = w.state(space)
    assert state.needs_rekey
    assert spaces.writable_epoch(state, pk(BO)) is None
    with pytest.raises(SpaceError, match="rotate the keys"):
        spaces.seal_post(state, BO, HELLO, w.rng)
    rotation = w.rotate(BO, space)
    state = w.state(space)
    assert state.current_epoch_id == rotation.id != before
    assert state.epochs[rotation.id].recipients == {pk(ADA), pk(BO)}
    # once bo has written under the rotation, the old epoch is stale for him
    w.post(BO, space, HELLO)
    assert before is not None
    stale = w.sign(BO, space, seal_with_epoch(w, state, BO, before))
    in_every_order(w, space, stale, Reason.STALE_EPOCH)


def test_a_sealed_record_naming_a_non_epoch_is_refused() -> None:
    w, space = crew("bo")
    join = w.state(space).members[pk(BO)].joined_id
    bad = w.sign(BO, space, draft(SealedBody(join, w.rng(64))))
    in_every_order(w, space, bad, Reason.BAD_REFERENCE)


def test_forged_keys_records_are_refused() -> None:
    w, space = crew("bo")
    state = w.state(space)
    honest = spaces.rotate_keys(state, BO, w.rng)
    body = spaces.bodies.parse_body(honest.kind, honest.body)
    assert isinstance(body, spaces.bodies.KeysBody)
    with_outsider = dataclasses.replace(body, shares={**body.shares, pk(EVE): bytes(80)})
    skipping = dataclasses.replace(body, number=body.number + 1)
    no_history = dataclasses.replace(body, history=None)
    for forged in (with_outsider, skipping, no_history):
        rec = w.sign(BO, space, draft(forged))
        in_every_order(w, space, rec, Reason.BAD_EPOCH, rounds=3)
