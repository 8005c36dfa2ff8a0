"""The fold's membership rules: genesis, joins, leaves, epochs, waiting, forks."""

from __future__ import annotations

import dataclasses
import random

import pytest

from meshcrew import crypto, spaces
from meshcrew.errors import SpaceError
from meshcrew.reasons import Reason
from meshcrew.records import sign_record
from meshcrew.spaces import CheckIn, MemberStatus, Outcome, SpaceKind
from meshcrew.spaces.bodies import ConsentBody, GenesisBody, LeaveBody, draft, parse_body
from meshcrew.spaces.state import ACCEPTED, ChangeKind
from spaces_world import T0, World, person, pk

ADA, BO, CY, DAN = (person(n) for n in ("ada", "bo", "cy", "dan"))
HELLO = CheckIn("arriving", 3)


def test_a_genesis_alone_makes_a_space_of_its_founder() -> None:
    w = World()
    space = w.found(ADA, SpaceKind.DYAD, history=False)
    state = w.state(space)
    assert state.exists
    assert state.kind is SpaceKind.DYAD
    assert not state.history
    assert state.founder == pk(ADA)
    assert state.active == {pk(ADA)}
    assert state.current_epoch_id == space
    assert state.epochs[space].number == 0
    assert not state.needs_rekey
    assert [c.change for c in state.changes] == [ChangeKind.FOUNDED]


def test_join_then_rotation_makes_a_new_current_epoch() -> None:
    w = World()
    space = w.found(ADA)
    join = w.join(BO, w.invite(ADA, space))
    state = w.state(space)
    assert state.is_member(pk(BO))
    assert state.members[pk(BO)].invited_by == pk(ADA)
    assert state.needs_rekey
    assert spaces.writable_epoch(state, pk(ADA)) is None
    with pytest.raises(SpaceError, match="rotate the keys"):
        spaces.seal_post(state, ADA, HELLO, w.rng)
    keys = w.rotate(ADA, space)
    state = w.state(space)
    assert state.current_epoch_id == keys.id
    assert state.current_epoch is not None
    assert state.current_epoch.recipients == {pk(ADA), pk(BO)}
    assert state.current_epoch.number == 1
    body = parse_body(keys.kind, keys.body)
    assert isinstance(body, spaces.bodies.KeysBody)
    assert join.id in body.after


def test_leaving_is_always_allowed_and_later_records_do_not_count() -> None:
    w = World()
    space = w.found(ADA)
    w.admit(ADA, BO, space)
    w.admit(ADA, CY, space)
    leave = w.leave(BO, space)
    after = w.sign(BO, space, draft(LeaveBody()))
    state = w.state(space)
    assert state.status(leave.id) == ACCEPTED
    assert state.members[pk(BO)].status is MemberStatus.LEFT
    assert state.members[pk(BO)].last_seq == leave.seq
    status = state.status(after.id)
    assert status is not None
    assert status.reason is Reason.NOT_MEMBER
    assert state.needs_rekey
    w.rotate(CY, space)
    epoch = w.state(space).current_epoch
    assert epoch is not None
    assert epoch.recipients == {pk(ADA), pk(CY)}


def test_a_member_who_left_may_rejoin_with_a_new_invite() -> None:
    w = World()
    space = w.found(ADA)
    w.admit(ADA, BO, space)
    w.leave(BO, space)
    rejoin = w.join(BO, w.invite(ADA, space))
    assert rejoin.seq > 1
    state = w.state(space)
    assert state.is_member(pk(BO))
    assert state.members[pk(BO)].joined_id == rejoin.id
    assert [c.change for c in state.changes] == [
        ChangeKind.FOUNDED, ChangeKind.JOINED, ChangeKind.LEFT, ChangeKind.JOINED]


def test_a_founder_may_leave_and_the_space_goes_on() -> None:
    w = World()
    space = w.found(ADA)
    w.admit(ADA, BO, space)
    w.leave(ADA, space)
    post = w.post(BO, space, HELLO)  # bo rotates first, then writes
    state = w.state(space)
    assert state.active == {pk(BO)}
    assert state.status(post.id) == ACCEPTED


def test_a_dyad_is_full_at_two_and_invites_may_allow_several_uses() -> None:
    w = World()
    dyad = w.found(ADA, SpaceKind.DYAD)
    code = w.invite(ADA, dyad, uses=3)
    joins = sorted((w.join(BO, code), w.join(CY, code)), key=lambda r: r.id)
    state = w.state(dyad)
    assert state.status(joins[0].id) == ACCEPTED  # concurrent joins: the lower id goes first
    assert state.status(joins[1].id).reason is Reason.SPACE_FULL  # type: ignore[union-attr]
    assert len(state.active) == 2
    crew = w.found(ADA, SpaceKind.CREW, "Crew")
    code = w.invite(ADA, crew, uses=2)
    joins = sorted((w.join(person(n), code) for n in ("bo", "cy", "dan")), key=lambda r: r.id)
    state = w.state(crew)
    assert [state.status(j.id).reason for j in joins] == [  # type: ignore[union-attr]
        None, None, Reason.INVITE_EXHAUSTED]


def test_records_whose_dependencies_are_absent_wait_and_then_apply() -> None:
    w = World()
    space = w.found(ADA)
    code = w.invite(ADA, space)
    join = w.join(BO, code)
    rotation = w.rotate(ADA, space)
    post = w.post(BO, space, HELLO)
    invite = w.records[1]
    without = [r for r in w.of(space) if r.id != invite.id]
    state = w.state(space, without)
    for rec in (join, rotation, post):
        status = state.status(rec.id)
        assert status is not None
        assert status.outcome is Outcome.WAITING
        assert status.missing == {invite.id}
    assert state.waiting().keys() == {join.id, rotation.id, post.id}
    assert all(s.accepted for s in w.state(space).statuses.values())
    # without the genesis, everything waits for the space itself
    nothing = w.state(space, w.of(space)[1:])
    assert all(s.missing == {space} for s in nothing.statuses.values())
    assert not nothing.exists
    assert not nothing.needs_rekey


def test_a_fork_refuses_both_branches_and_what_follows() -> None:
    w = World()
    space = w.found(ADA)
    w.admit(ADA, BO, space)
    base = w.heads[(pk(BO), space)]
    one = w.post(BO, space, HELLO)
    two = sign_record(BO, kind=one.kind, space=space, seq=one.seq, prev=base.id,
                      ts=one.ts + 1, body=one.body)
    w.keep(two)
    after = w.post(BO, space, HELLO)
    state = w.state(space)
    for rec in (one, two, after):
        status = state.status(rec.id)
        assert status is not None
        assert status.reason is Reason.FORK
    assert state.status(base.id) == ACCEPTED


def test_a_record_chained_onto_another_authors_record_is_refused() -> None:
    w = World()
    space = w.found(ADA)
    w.admit(ADA, BO, space)
    ada_head = w.heads[(pk(ADA), space)]
    rec = sign_record(BO, kind="leave", space=space, seq=ada_head.seq + 1, prev=ada_head.id,
                      ts=w.tick(), body=draft(LeaveBody()).body)
    state = w.state(space, [*w.of(space), rec])
    status = state.status(rec.id)
    assert status is not None
    assert status.reason is Reason.CHAIN_BROKEN


def test_concurrent_rotations_are_all_accepted_and_one_is_current() -> None:
    w = World()
    space = w.found(ADA)
    w.admit(ADA, BO, space)
    w.admit(ADA, CY, space)
    w.leave(CY, space)
    state = w.state(space)
    one = w.sign(ADA, space, spaces.rotate_keys(state, ADA, w.rng))
    two = w.sign(BO, space, spaces.rotate_keys(state, BO, w.rng))
    after = w.state(space)
    assert after.status(one.id) == ACCEPTED
    assert after.status(two.id) == ACCEPTED
    assert after.current_epoch_id == min(one.id, two.id)
    # each may keep writing under their own rotation: same number, not stale
    for key, rec in ((ADA, one), (BO, two)):
        keyring = spaces.unlock(after, key)
        assert rec.id in keyring.epoch_keys
    posted = w.post(ADA, space, HELLO)
    assert w.state(space).status(posted.id) == ACCEPTED


def test_an_older_epoch_with_the_same_members_is_not_current_after_a_departure() -> None:
    """cy held epoch 1's key through history; after cy leaves, epoch 1 must not come back."""
    w = World()
    space = w.found(ADA)
    w.admit(ADA, BO, space)  # epoch 1: ada, bo
    w.admit(ADA, CY, space)  # epoch 2: ada, bo, cy (history links back to epoch 1)
    w.leave(CY, space)
    state = w.state(space)
    assert state.needs_rekey
    assert state.current_epoch_id is None


def test_a_genesis_must_seal_epoch_zero_to_its_founder_only() -> None:
    w = World()
    made = spaces.create_space(ADA, SpaceKind.CREW, spaces.SpaceMeta("Crew"), w.rng)
    body = parse_body(made.kind, made.body)
    assert isinstance(body, GenesisBody)
    bad = dataclasses.replace(body, shares={**body.shares, pk(BO): bytes(80)})
    genesis = w.sign(ADA, None, draft(bad))
    later = w.sign(ADA, genesis.id, draft(LeaveBody()))
    state = w.state(genesis.id)
    assert not state.exists
    assert state.status(genesis.id).reason is Reason.BAD_BODY  # type: ignore[union-attr]
    assert state.status(later.id).reason is Reason.BAD_REFERENCE  # type: ignore[union-attr]


def test_unknown_kinds_count_for_members_only_and_bad_bodies_are_refused() -> None:
    w = World()
    space = w.found(ADA)
    poll = w.sign(ADA, space, spaces.Draft("poll", b"\x01future"))
    stranger = w.sign(BO, space, spaces.Draft("poll", b"\x01future"))
    garbage = w.sign(ADA, space, spaces.Draft("invite", b"\xc1"))
    state = w.state(space)
    assert state.status(poll.id) == ACCEPTED
    assert state.status(stranger.id).reason is Reason.NOT_MEMBER  # type: ignore[union-attr]
    assert state.status(garbage.id).reason is Reason.BAD_BODY  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="another space"):
        spaces.fold(bytes(32), w.of(space))


def test_duplicates_and_input_order_change_nothing() -> None:
    w = World()
    space = w.found(ADA)
    w.admit(ADA, BO, space)
    w.post(BO, space, HELLO)
    records = w.of(space)
    state = w.state(space, records)
    shuffled = records * 2
    random.Random(1).shuffle(shuffled)
    assert w.state(space, shuffled) == state
    assert state.order[0] == space
    assert len(state.order) == len(records)


def test_the_removal_names_the_last_counting_record() -> None:
    w = World()
    space = w.found(ADA)
    for name in ("bo", "cy"):
        w.admit(ADA, person(name), space)
    last = w.post(CY, space, HELLO)
    proposal = w.propose(ADA, space, CY)
    body = parse_body(proposal.kind, proposal.body)
    assert isinstance(body, spaces.bodies.RemoveBody)
    assert (body.member, body.last_seq, body.last_id) == (pk(CY), last.seq, last.id)
    w.consent(BO, space, proposal)
    state = w.state(space)
    assert state.members[pk(CY)].status is MemberStatus.REMOVED
    assert state.members[pk(CY)].last_seq == last.seq
    assert state.status(last.id) == ACCEPTED


def test_two_members_removing_each_other_resolve_the_same_everywhere() -> None:
    """Each removal needs a consent written after the other target's cut: a deadlock."""
    w = World()
    space = w.found(ADA)
    for name in ("bo", "cy", "dan"):
        w.admit(ADA, person(name), space)
    # ada proposes removing cy; bo proposes removing dan: each needs 2 consents of 3 others
    p_cy = w.propose(ADA, space, CY)
    p_dan = w.propose(BO, space, DAN)
    # cy consents to removing dan, dan consents to removing cy: both after their own cut
    c_by_cy = w.sign(CY, space, draft(ConsentBody(p_dan.id)))
    c_by_dan = w.sign(DAN, space, draft(ConsentBody(p_cy.id)))
    records = w.of(space)
    first = w.state(space, records)
    shuffler = random.Random(2)
    for _ in range(10):
        shuffler.shuffle(records)
        assert w.state(space, records) == first
    removed = {k for k, m in first.members.items() if m.status is MemberStatus.REMOVED}
    assert len(removed) == 1  # exactly one of them goes, decided by record id
    loser = removed.pop()
    voided = c_by_cy if loser == pk(CY) else c_by_dan
    assert first.status(voided.id).reason is Reason.REMOVED_MEMBER  # type: ignore[union-attr]


def test_a_rotation_for_a_full_congregation_fits_in_one_record() -> None:
    """500 key shares, a history link and a few answered changes stay under the body limit."""
    w = World()
    recipients = [person(f"m{i}") for i in range(SpaceKind.CONGREGATION.max_members)]
    key = crypto.new_key(w.rng)
    body = spaces.bodies.KeysBody(
        number=7, prev=bytes(32),
        shares={pk(r): crypto.seal_to_member(pk(r), key, w.rng) for r in recipients},
        after=tuple(bytes([i]) * 32 for i in range(4)),
        history=crypto.encrypt(key, bytes(200), b"", w.rng),
        meta_key=crypto.encrypt(key, bytes(32), b"", w.rng))
    made = draft(body)
    rec = sign_record(recipients[0], kind=made.kind, space=bytes(range(32)), seq=2,
                      prev=bytes(32), ts=T0, body=made.body)
    assert parse_body(rec.kind, rec.body) == body


def test_a_crowd_of_joiners_is_keyed_in_rotations_that_each_fit() -> None:
    w = World()
    hall = w.found(ADA, SpaceKind.CONGREGATION, "Hall")
    code = w.invite(ADA, hall, uses=SpaceKind.CONGREGATION.max_members)
    for i in range(SpaceKind.CONGREGATION.max_members - 1):
        w.join(person(f"m{i}"), code)
    rotations = []
    while w.state(hall).needs_rekey:
        rotations.append(w.rotate(ADA, hall))
        assert len(rotations) < 4
    state = w.state(hall)
    assert len(rotations) == 2
    assert all(state.status(r.id) == ACCEPTED for r in rotations)
    assert len(state.active) == SpaceKind.CONGREGATION.max_members
    assert state.current_epoch_id == rotations[-1].id
    # One more join, concurrent with the crowd's: someone is refused, the same one everywhere.
    w.join(person("one too many"), w.invite(person("m0"), hall))
    state = w.state(hall)
    full = [rid for rid, s in state.statuses.items() if s.reason is Reason.SPACE_FULL]
    assert len(full) == 1
    assert len(state.active) == SpaceKind.CONGREGATION.max_members
