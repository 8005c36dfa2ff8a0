"""The fold's rules (``spaces.rules.Machine``): every refusal whole, and what an accepted
record leaves in the state. Pure.

Each refusal is checked as the members' apps show it, reason and detail together, and each
fact as the state holds it (a member's record, a removal's electorate, an epoch, a change):
mutation testing (``scripts/mutants``) found most of them checked by reason alone, or not at
all, so a rule could say the wrong thing, or record the wrong member, with every test green.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from nacl.signing import SigningKey

from meshcrew import spaces
from meshcrew.reasons import Reason
from meshcrew.records import NEW_SPACE, Record, sign_record
from meshcrew.spaces import CheckIn, MemberStatus, SpaceKind, Status
from meshcrew.spaces.bodies import (
    CarrierBody,
    ConsentBody,
    GenesisBody,
    JoinBody,
    KeysBody,
    LeaveBody,
    RemoveBody,
    RevokeBody,
    SealedBody,
    UnlinkBody,
    draft,
    parse_body,
)
from meshcrew.spaces.devices import (
    certify_device,
    device_certificate,
    revoke_device,
    unlink_device,
)
from meshcrew.spaces.kinds import MAX_CARRIERS
from meshcrew.spaces.settings import SettingsSnapshot, SpaceMeta
from meshcrew.spaces.state import (
    ACCEPTED,
    Carrier,
    ChangeKind,
    Device,
    Member,
    MembershipChange,
    Outcome,
    Removal,
)
from spaces_world import HOUR, World, person, pk

ADA, BO, CY, DEE, EVE, FAY = (person(n) for n in ("ada", "bo", "cy", "dee", "eve", "fay"))
ADA2, BO2 = person("ada's other laptop"), person("bo's other laptop")


def crew(w: World, *others: SigningKey) -> bytes:
    """Ada's crew with Bo, Cy and ``others``, everyone let in."""
    space = w.found(ADA)
    for key in (BO, CY, *others):
        w.admit(ADA, key, space)
    return space


def refused(detail: str, reason: Reason) -> Status:
    return Status(Outcome.REJECTED, reason, detail)


def status(w: World, space: bytes, record: Record) -> Status | None:
    return w.state(space).status(record.id)


def body_of(record: Record) -> object:
    return parse_body(record.kind, record.body)


def link(w: World, space: bytes, member: SigningKey, device: SigningKey) -> Record:
    cert = w.sign(device, space, device_certificate(w.state(space), pk(member),
                                                   certify_device(member, pk(device))))
    w.rotate(member, space)
    return cert


def racing(w: World, key: SigningKey, space: bytes, made: spaces.Draft,
           ahead: Iterable[Record]) -> Record:
    """``made`` signed as ``key``'s next record with an id below every id of ``ahead``."""
    bound = min(r.id for r in ahead)
    for step in range(1, 1000):
        record = w.sign(key, space, made, ts=w.now + step, record=False)
        if record.id < bound:
            w.keep(record)
            return record
    raise AssertionError("no timestamp gave an id below the others")  # pragma: no cover


# The genesis, and who may write. ----------------------------------------------------------


def test_a_refused_genesis_leaves_no_space_and_refuses_what_follows() -> None:
    w = World()
    space = w.found(ADA)
    genesis = w.of(space)[0]
    body = body_of(genesis)
    assert isinstance(body, GenesisBody)
    shared = dataclasses.replace(body, shares={**body.shares, pk(BO): body.shares[pk(ADA)]})
    bad = sign_record(ADA, kind=genesis.kind, space=NEW_SPACE, seq=1, prev=None, ts=w.tick(),
                      body=draft(shared).body)
    after = sign_record(BO, kind="leave", space=bad.id, seq=1, prev=None, ts=w.tick(),
                        body=draft(LeaveBody()).body)
    state = spaces.fold(bad.id, [bad, after])
    assert state.status(bad.id) == refused("epoch 0 is sealed to the founder only",
                                           Reason.BAD_BODY)
    assert state.status(after.id) == refused("the space's genesis was refused",
                                             Reason.BAD_REFERENCE)
    assert state.kind is None
    assert state.founder is None
    assert state.history is False
    assert state.members == {}


def test_a_genesis_makes_its_author_the_founding_member_writing_under_epoch_0() -> None:
    w = World()
    space = w.found(ADA)
    genesis = w.of(space)[0]
    post = w.sign(ADA, space, draft(SealedBody(space, w.rng(60))))
    state = w.state(space)
    assert state.members[pk(ADA)] == Member(pk(ADA), MemberStatus.ACTIVE, genesis.id,
                                            genesis.ts, None)
    assert state.changes == (MembershipChange(genesis.id, ChangeKind.FOUNDED, pk(ADA)),)
    assert state.status(post.id) == ACCEPTED
    assert state.floors[pk(ADA)] == 0


def test_a_record_whose_prev_is_not_its_authors_previous_record_is_refused_plainly() -> None:
    w = World()
    space = crew(w)
    head = w.heads[(pk(BO), space)]
    broken = sign_record(BO, kind="leave", space=space, seq=head.seq + 2,  # after a gap
                         prev=w.heads[(pk(ADA), space)].id, ts=w.tick(),
                         body=draft(LeaveBody()).body)
    state = w.state(space, [*w.of(space), broken])
    assert state.status(broken.id) == refused("", Reason.CHAIN_BROKEN)
    assert state.members[pk(BO)].status is MemberStatus.ACTIVE


def test_a_stranger_a_leaver_and_a_joiner_not_let_in_are_told_apart() -> None:
    w = World()
    space = crew(w)
    stranger = w.sign(DEE, space, draft(LeaveBody()))
    leave = w.leave(BO, space)
    after = w.sign(BO, space, draft(LeaveBody()))
    w.join(EVE, w.invite(ADA, space))
    waiting = w.sign(EVE, space, draft(LeaveBody()))
    state = w.state(space)
    assert state.status(stranger.id) == refused("", Reason.NOT_MEMBER)
    assert state.status(leave.id) == ACCEPTED
    assert state.status(after.id) == refused("the author has left", Reason.NOT_MEMBER)
    assert state.status(waiting.id) == refused(
        "their join awaits admission: no key rotation has let them in yet", Reason.NOT_MEMBER)
    assert state.members[pk(BO)] == dataclasses.replace(
        state.members[pk(BO)], status=MemberStatus.LEFT, ended_id=leave.id, last_seq=leave.seq)
    assert MembershipChange(leave.id, ChangeKind.LEFT, pk(BO)) in state.changes


# Rule 4: joins. ---------------------------------------------------------------------------


def test_a_join_makes_the_joiner_a_member_invited_by_the_inviter() -> None:
    w = World()
    space = crew(w)
    join = w.join(DEE, w.invite(BO, space))
    state = w.state(space)
    assert state.members[pk(DEE)] == Member(pk(DEE), MemberStatus.ACTIVE, join.id, join.ts,
                                            pk(BO))
    assert MembershipChange(join.id, ChangeKind.JOINED, pk(DEE)) in state.changes
    assert pk(DEE) in state.pending


def test_every_refused_join_says_why() -> None:
    w = World()
    space = crew(w)
    code = w.invite(ADA, space)
    forged = w.sign(DEE, space, spaces.join_space(code, EVE))  # names Eve, signed by Dee
    again = w.join(BO, code)  # a member already
    not_an_invite = w.sign(DEE, space, draft(JoinBody(w.state(space).members[pk(BO)].joined_id,
                                                      pk(DEE), bytes(64))))
    wrong_secret = dataclasses.replace(code, secret=bytes(32))
    bad_proof = w.join(DEE, wrong_secret)
    late_code = w.invite(ADA, space, ttl=HOUR)
    expiry = w.state(space).invites[late_code.invite_id].expires_ms
    late = w.join(EVE, late_code, ts=expiry + 5)
    used = w.join(FAY, code)
    exhausted = w.join(person("gus"), code)
    revoked_code = w.invite(ADA, space)
    w.sign(CY, space, spaces.revoke_invite(w.state(space), pk(CY), revoked_code.invite_id))
    revoked = w.join(person("hal"), revoked_code)
    state = w.state(space)
    assert state.status(forged.id) == refused("the join names another key than its signer",
                                              Reason.JOIN_FORGED)
    assert state.status(again.id) == refused("", Reason.ALREADY_MEMBER)
    assert state.status(not_an_invite.id) == refused("it names no accepted invite",
                                                     Reason.INVITE_UNKNOWN)
    assert state.status(bad_proof.id) == refused("", Reason.INVITE_BAD_PROOF)
    assert state.status(late.id) == refused("signed 5 ms after expiry", Reason.INVITE_EXPIRED)
    assert state.status(used.id) == ACCEPTED
    assert state.status(exhausted.id) == refused("1 use(s)", Reason.INVITE_EXHAUSTED)
    assert state.status(revoked.id) == refused("", Reason.INVITE_REVOKED)


def test_a_join_to_a_full_space_says_how_many_it_holds() -> None:
    w = World()
    dyad = w.found(ADA, SpaceKind.DYAD)
    code = w.invite(ADA, dyad, uses=2)
    first, second = sorted((w.join(BO, code), w.join(CY, code)), key=lambda r: r.id)
    state = w.state(dyad)
    assert state.status(first.id) == ACCEPTED
    assert state.status(second.id) == refused("a dyad has at most 2 members", Reason.SPACE_FULL)


# Rule 7: letting joiners in, and lapses. ---------------------------------------------------


def test_a_rejoin_that_lapses_gives_back_the_membership_it_replaced() -> None:
    """Bo left, joined again with an invite that expired before anyone let him in; Ada's
    rotation names the join and leaves him out: he is as he was, a member who left."""
    w = World()
    space = crew(w)
    leave = w.leave(BO, space)
    w.rotate(ADA, space)
    left = w.state(space).members[pk(BO)]
    rejoin = w.join(BO, w.invite(ADA, space, ttl=HOUR))
    ts = w.tick(2 * HOUR)
    rotation = w.sign(ADA, space, spaces.rotate_keys(w.state(space), ADA, w.rng, now_ms=ts),
                      ts=ts)
    state = w.state(space)
    assert state.status(rejoin.id) == refused(
        "no member let the joiner in before the invite expired", Reason.INVITE_EXPIRED)
    assert state.members[pk(BO)] == left
    assert left.status is MemberStatus.LEFT
    assert left.ended_id == leave.id
    assert state.changes[-1] == MembershipChange(rotation.id, ChangeKind.LAPSED, pk(BO))
    assert pk(BO) not in state.pending


def test_a_rotation_signed_at_the_expiry_itself_still_lets_the_joiner_in() -> None:
    w = World()
    space = crew(w)
    code = w.invite(ADA, space, ttl=HOUR)
    w.join(DEE, code)
    expiry = w.state(space).invites[code.invite_id].expires_ms
    rotation = w.sign(ADA, space, spaces.rotate_keys(w.state(space), ADA, w.rng, now_ms=expiry),
                      ts=expiry)
    state = w.state(space)
    assert state.status(rotation.id) == ACCEPTED
    assert state.is_admitted(pk(DEE))


def test_a_rotation_letting_a_joiner_in_after_the_expiry_is_refused() -> None:
    w = World()
    space = crew(w)
    w.join(DEE, w.invite(ADA, space, ttl=HOUR))
    late = w.sign(ADA, space, spaces.rotate_keys(w.state(space), ADA, w.rng), ts=w.tick(2 * HOUR))
    assert status(w, space, late) == refused(
        "the rotation lets a joiner in after their invite expired", Reason.INVITE_EXPIRED)


# Rule 6: removals and consents. ------------------------------------------------------------


def test_a_removal_records_who_proposed_whom_up_to_which_record_and_by_what() -> None:
    w = World()
    space = crew(w)
    last = w.heads[(pk(BO), space)]
    proposal = w.propose(ADA, space, BO)
    consent = w.consent(CY, space, proposal)
    state = w.state(space)
    assert state.removals[proposal.id] == Removal(
        proposal.id, pk(ADA), pk(BO), last.seq, last.id, frozenset({pk(ADA), pk(CY)}),
        frozenset({pk(ADA), pk(CY)}), consent.id)
    assert state.members[pk(BO)] == dataclasses.replace(
        state.members[pk(BO)], status=MemberStatus.REMOVED, ended_id=consent.id,
        last_seq=last.seq)
    assert MembershipChange(consent.id, ChangeKind.REMOVED, pk(BO)) in state.changes


def test_every_refused_removal_and_consent_says_why() -> None:
    w = World()
    space = crew(w)
    link(w, space, ADA, ADA2)
    link(w, space, BO, BO2)
    ada_last = w.heads[(pk(ADA), space)]
    self_removal = w.sign(ADA, space, draft(RemoveBody(pk(ADA), ada_last.seq, ada_last.id)))
    bo_last = w.heads[(pk(BO), space)]
    never = w.sign(ADA, space, draft(RemoveBody(pk(DEE), bo_last.seq, bo_last.id)))
    wrong_seq = w.sign(ADA, space, draft(RemoveBody(pk(BO), bo_last.seq - 1, bo_last.id)))
    ada2 = w.heads[(pk(ADA2), space)]
    bo2 = w.heads[(pk(BO2), space)]
    others_device = w.sign(CY, space, draft(RemoveBody(pk(BO), bo_last.seq, bo_last.id,
                                                       devices=((pk(ADA2), ada2.seq, ada2.id),))))
    device_wrong_seq = w.sign(CY, space, draft(RemoveBody(
        pk(BO), bo_last.seq, bo_last.id, devices=((pk(BO2), bo2.seq + 1, bo2.id),))))
    no_proposal = w.sign(CY, space, draft(ConsentBody(bo_last.id)))
    proposal = w.propose(ADA, space, CY)
    own = w.sign(CY, space, draft(ConsentBody(proposal.id)))
    state = w.state(space)
    assert state.status(self_removal.id) == refused("to leave, write a leave record",
                                                    Reason.NOT_ALLOWED)
    assert state.status(never.id) == refused("that key was never a member",
                                             Reason.BAD_REFERENCE)
    assert state.status(wrong_seq.id) == refused(
        "the named last record is not that member's record at that seq", Reason.BAD_REFERENCE)
    device_refusal = refused("a named device is not that member's, or the record named is "
                             "not its record at that seq", Reason.BAD_REFERENCE)
    assert state.status(others_device.id) == device_refusal
    assert state.status(device_wrong_seq.id) == device_refusal
    assert state.status(no_proposal.id) == refused("it names no accepted removal proposal",
                                                   Reason.BAD_REFERENCE)
    assert state.status(own.id) == refused("a member cannot consent to their own removal",
                                           Reason.NOT_ALLOWED)
    assert state.active == {pk(ADA), pk(BO), pk(CY)}


def test_the_electorate_is_who_the_proposer_named_and_whoever_is_a_member_now() -> None:
    """Fay left before the proposal (not named, not a member: out); Bo, named, leaves just
    before it is applied (in); Dee and Cy are members; Eve is the target."""
    w = World(3)
    space = crew(w, DEE, FAY, EVE)
    w.leave(FAY, space)
    w.rotate(ADA, space)
    view = w.state(space)
    proposal = w.propose(ADA, space, EVE)
    leave = racing(w, BO, space, spaces.leave_space(view, pk(BO)), [proposal])
    consent = w.consent(CY, space, proposal)
    state = w.state(space)
    assert state.sequence.index(leave.id) < state.sequence.index(proposal.id)
    removal = state.removals[proposal.id]
    assert removal.electorate == {pk(ADA), pk(BO), pk(CY), pk(DEE)}
    assert removal.consents == {pk(ADA), pk(CY)}
    assert not removal.effective  # 2 of 4: Bo's leaving did not lower the bar
    assert state.status(consent.id) == ACCEPTED
    assert state.members[pk(EVE)].status is MemberStatus.ACTIVE


def test_two_removals_of_one_member_take_effect_once() -> None:
    w = World(4)
    space = crew(w)
    view = w.state(space)
    by_ada = w.sign(ADA, space, spaces.propose_removal(view, pk(ADA), pk(BO)))
    by_cy = w.sign(CY, space, spaces.propose_removal(view, pk(CY), pk(BO)))
    w.consent(CY, space, by_ada)
    w.consent(ADA, space, by_cy)
    state = w.state(space)
    assert state.members[pk(BO)].status is MemberStatus.REMOVED
    assert sum(r.effective for r in state.removals.values()) == 1
    assert [c.change for c in state.changes].count(ChangeKind.REMOVED) == 1


def test_a_removal_overtaken_by_its_targets_next_record_does_not_take_effect() -> None:
    """Ada proposes removing Bo while Bo proposes removing Ada: each is the other's target's
    next record, a cycle the order breaks with the lower id, here Bo's. Ada's proposal then
    comes after Bo's record past the one it names: overtaken, Cy's consent does not make it
    take effect (and Bo's alone is not a majority)."""
    w = World(5)
    space = crew(w)
    view = w.state(space)
    by_ada = w.sign(ADA, space, spaces.propose_removal(view, pk(ADA), pk(BO)))
    by_bo = racing(w, BO, space, spaces.propose_removal(view, pk(BO), pk(ADA)), [by_ada])
    w.consent(CY, space, by_ada)
    state = w.state(space)
    assert state.stalled is True
    assert state.sequence.index(by_bo.id) < state.sequence.index(by_ada.id)
    assert state.status(by_ada.id) == ACCEPTED
    assert not state.removals[by_ada.id].effective
    assert not state.removals[by_bo.id].effective
    assert state.active == {pk(ADA), pk(BO), pk(CY)}


def test_a_joiner_removed_before_being_let_in_is_no_longer_waiting() -> None:
    w = World()
    space = crew(w)
    w.join(DEE, w.invite(ADA, space))
    proposal = w.propose(ADA, space, DEE)
    w.consent(CY, space, proposal)
    state = w.state(space)
    assert state.members[pk(DEE)].status is MemberStatus.REMOVED
    assert pk(DEE) not in state.pending


# Rule 7: key rotations. ------------------------------------------------------------------


def test_every_refused_rotation_says_why() -> None:
    w = World()
    space = crew(w)
    state = w.state(space)
    honest = body_of(w.sign(BO, space, spaces.rotate_keys(state, BO, w.rng), record=False))
    assert isinstance(honest, KeysBody)
    not_an_epoch = dataclasses.replace(honest, prev=state.members[pk(BO)].joined_id)
    skipping = dataclasses.replace(honest, number=honest.number + 1)
    not_to_self = dataclasses.replace(
        honest, shares={k: v for k, v in honest.shares.items() if k != pk(BO)})
    outsider = dataclasses.replace(honest, shares={**honest.shares, pk(EVE): bytes(80)})
    no_history = dataclasses.replace(honest, history=None)
    made = [w.sign(BO, space, draft(forged))
            for forged in (not_an_epoch, skipping, not_to_self, outsider, no_history)]
    state = w.state(space)
    number = honest.number
    assert state.status(made[0].id) == refused(
        "the previous epoch is not an accepted epoch", Reason.BAD_EPOCH)
    assert state.status(made[1].id) == refused(
        f"epoch {number + 1} cannot follow epoch {number - 1}", Reason.BAD_EPOCH)
    assert state.status(made[2].id) == refused(
        "the author did not seal the key to themself", Reason.BAD_EPOCH)
    assert state.status(made[3].id) == refused(
        "the key is sealed to someone who never joined", Reason.BAD_EPOCH)
    assert state.status(made[4].id) == refused(
        "a history link must be present exactly when the space lets joiners read history",
        Reason.BAD_EPOCH)


def test_an_epoch_keeps_what_its_rotation_says() -> None:
    w = World()
    space = w.found(ADA, history=False)
    w.admit(ADA, BO, space)
    before = w.state(space)
    settings = SettingsSnapshot(SpaceMeta("Crew", "the Crew purpose"))
    rotation = w.sign(ADA, space, spaces.rotate_keys(before, ADA, w.rng, settings=settings))
    body = body_of(rotation)
    assert isinstance(body, KeysBody)
    assert body.settings is not None
    epoch = w.state(space).epochs[rotation.id]
    assert (epoch.number, epoch.author, epoch.prev) == (2, pk(ADA), before.current_epoch_id)
    assert epoch.settings == body.settings


def test_of_two_rotations_after_the_latest_change_the_newer_epoch_is_current() -> None:
    w = World()
    space = crew(w)
    first = w.rotate(ADA, space)
    second = w.rotate(BO, space)
    state = w.state(space)
    assert state.epochs[second.id].number == state.epochs[first.id].number + 1
    assert state.current_epoch_id == second.id


def test_a_rotation_sealing_the_key_to_a_joiner_who_lost_the_race_still_counts() -> None:
    """Cy rotated having seen only Dee's join; Eve's, with the same single-use invite and a
    lower id, won. The rotation names Dee's join, so sealing to Dee is not sealing to
    someone who never joined: it is accepted (and not current: Dee is no member)."""
    w = World(6)
    space = crew(w)
    code = w.invite(ADA, space)
    dee = w.join(DEE, code)
    rotation = w.rotate(CY, space)
    eve = racing(w, EVE, space, spaces.join_space(code, EVE), [dee])
    state = w.state(space)
    assert state.status(eve.id) == ACCEPTED
    assert state.status(dee.id) == refused("1 use(s)", Reason.INVITE_EXHAUSTED)
    assert state.status(rotation.id) == ACCEPTED
    assert pk(DEE) in state.epochs[rotation.id].shares


def test_an_author_rotating_from_an_old_view_keeps_the_floor_it_wrote_under() -> None:
    """Ada made epochs 3 and 4; a rotation she signs from an older view opens another epoch 4
    beside them, but she already wrote under 4: a post under an older epoch stays stale."""
    w = World()
    space = crew(w)
    old = w.state(space)
    w.rotate(ADA, space)
    w.rotate(ADA, space)
    floor = w.state(space).floors[pk(ADA)]
    stale = w.sign(ADA, space, spaces.rotate_keys(old, ADA, w.rng))
    state = w.state(space)
    assert state.status(stale.id) == ACCEPTED
    number = state.epochs[stale.id].number
    assert number < floor
    post = w.sign(ADA, space, draft(SealedBody(stale.id, w.rng(60))))
    assert status(w, space, post) == refused(
        f"epoch {number} is older than epoch {floor}, which the author already used",
        Reason.STALE_EPOCH)
    assert w.state(space).floors[pk(ADA)] == floor


# Rule 8: sealed posts. -------------------------------------------------------------------


def test_every_refused_post_says_why() -> None:
    w = World()
    space = crew(w)
    join = w.state(space).members[pk(BO)].joined_id
    no_epoch = w.sign(BO, space, draft(SealedBody(join, w.rng(60))))
    not_sealed_to_bo = w.sign(BO, space, draft(SealedBody(space, w.rng(60))))  # epoch 0
    state = w.state(space)
    assert state.status(no_epoch.id) == refused("it names no accepted epoch",
                                                Reason.BAD_REFERENCE)
    assert state.status(not_sealed_to_bo.id) == refused("epoch 0 was not sealed to the author",
                                                        Reason.STALE_EPOCH)


# Rules 10 and 11: carriers and revocations. ----------------------------------------------


def test_carriers_named_and_refused_say_why() -> None:
    w = World()
    space = crew(w)
    carriers = [person(f"carrier {n}") for n in range(MAX_CARRIERS + 1)]
    named = [w.sign(ADA, space, spaces.name_carrier(w.state(space), pk(ADA), pk(c)))
             for c in carriers[:MAX_CARRIERS]]
    one_more = w.sign(BO, space, draft(CarrierBody(pk(carriers[-1]), add=True,
                                                   after=named[-1].id)))
    not_named = w.sign(BO, space, draft(CarrierBody(pk(DEE), add=False)))
    no_invite = w.sign(CY, space, draft(RevokeBody(named[0].id)))
    state = w.state(space)
    first = named[0]
    assert state.carriers[pk(carriers[0])] == Carrier(pk(carriers[0]), pk(ADA), first.id,
                                                      first.ts)
    assert state.status(one_more.id) == refused(
        f"a space has at most {MAX_CARRIERS} carriers", Reason.NOT_ALLOWED)
    assert state.status(not_named.id) == refused("that key is not a carrier here",
                                                 Reason.BAD_REFERENCE)
    assert state.status(no_invite.id) == refused("it names no accepted invite",
                                                 Reason.BAD_REFERENCE)


# Rules 12 and 13: devices. ---------------------------------------------------------------


def test_a_certificate_links_the_device_to_its_member() -> None:
    w = World()
    space = crew(w)
    cert = link(w, space, ADA, ADA2)
    state = w.state(space)
    assert state.devices[pk(ADA2)] == Device(pk(ADA2), pk(ADA), cert.id)
    assert MembershipChange(cert.id, ChangeKind.LINKED, pk(ADA)) in state.changes


def test_every_refused_certificate_says_why() -> None:
    w = World()
    space = crew(w)
    link(w, space, ADA, ADA2)
    cy_as_device = w.sign(CY, space, device_certificate(w.state(space), pk(ADA),
                                                        certify_device(ADA, pk(CY))))
    by_another = w.sign(DEE, space, device_certificate(w.state(space), pk(ADA),
                                                       certify_device(BO, pk(DEE))))
    w.sign(EVE, space, draft(SealedBody(space, w.rng(60))))
    not_first = w.sign(EVE, space, device_certificate(w.state(space), pk(ADA),
                                                      certify_device(ADA, pk(EVE))))
    device_joins = w.join(ADA2, w.invite(BO, space))
    state = w.state(space)
    assert state.status(cy_as_device.id) == refused("the key belongs to a member already",
                                                    Reason.DEVICE_CLAIMED)
    assert state.status(by_another.id) == refused("", Reason.DEVICE_UNPROVEN)
    assert state.status(not_first.id) == refused(
        "a device's certificate is its first record in the space", Reason.NOT_ALLOWED)
    assert state.status(device_joins.id) == refused("the key is a member's device",
                                                    Reason.DEVICE_CLAIMED)


def test_an_unlink_revokes_the_device_and_every_refused_one_says_why() -> None:
    w = World()
    space = crew(w)
    link(w, space, ADA, ADA2)
    link(w, space, BO, BO2)
    ada2 = w.heads[(pk(ADA2), space)]
    bo2 = w.heads[(pk(BO2), space)]
    itself = w.sign(ADA2, space, draft(UnlinkBody(pk(ADA), pk(ADA2), revoke_device(ADA, pk(ADA2)),
                                                  ada2.seq, ada2.id)))
    unproven = w.sign(ADA, space, draft(UnlinkBody(pk(ADA), pk(ADA2),
                                                   revoke_device(BO, pk(ADA2)), ada2.seq,
                                                   ada2.id)))
    others = w.sign(ADA, space, draft(UnlinkBody(pk(ADA), pk(BO2), revoke_device(ADA, pk(BO2)),
                                                 bo2.seq, bo2.id)))
    wrong_seq = w.sign(ADA, space, draft(UnlinkBody(pk(ADA), pk(ADA2),
                                                    revoke_device(ADA, pk(ADA2)), ada2.seq + 1,
                                                    ada2.id)))
    state = w.state(space)
    assert state.status(itself.id) == refused(
        "only another device of the same member may revoke a device", Reason.NOT_ALLOWED)
    assert state.status(unproven.id) == refused("", Reason.DEVICE_UNPROVEN)
    assert state.status(others.id) == refused("it names no device of that member",
                                              Reason.BAD_REFERENCE)
    assert state.status(wrong_seq.id) == refused(
        "the named last record is not that device's record at that seq", Reason.BAD_REFERENCE)
    assert state.devices[pk(BO2)].revoked_by is None
    assert state.devices[pk(ADA2)].revoked_by is None
    unlink = w.sign(ADA, space, unlink_device(state, pk(ADA), pk(ADA2),
                                              revoke_device(ADA, pk(ADA2))))
    state = w.state(space)
    assert state.status(unlink.id) == ACCEPTED
    assert state.devices[pk(ADA2)] == dataclasses.replace(
        state.devices[pk(ADA2)], revoked_by=unlink.id, last_seq=ada2.seq)
    assert MembershipChange(unlink.id, ChangeKind.UNLINKED, pk(ADA)) in state.changes


def test_a_leave_from_a_device_ends_its_member_at_the_member_keys_last_record() -> None:
    w = World()
    space = crew(w)
    link(w, space, ADA, ADA2)
    w.post(ADA, space, CheckIn("from the desk", 3))
    ada_last = w.heads[(pk(ADA), space)]
    leave = w.leave(ADA2, space)
    assert leave.seq != ada_last.seq
    state = w.state(space)
    assert state.members[pk(ADA)] == dataclasses.replace(
        state.members[pk(ADA)], status=MemberStatus.LEFT, ended_id=leave.id,
        last_seq=ada_last.seq)
    assert MembershipChange(leave.id, ChangeKind.LEFT, pk(ADA)) in state.changes
