"""The fold's ordering hints (``spaces.fold._soft_deps``), one test per hint. Pure.

The canonical order takes the ready record with the smallest id, so a hint shows only when
the record it holds back has the smaller id: shuffling the records a replica receives changes
nothing (the fold reads a set). Each test here signs the record that must come last, the one
that raced the others, with the first timestamp that gives it an id below those of every
record that must come before it: the ids alone would then put it first, and only the hint
puts it after them. Every test also checks the order never had to break a cycle
(``stalled``: ``extend`` declines every state that did).

Mutation testing (``scripts/mutants``) found each hint could be dropped with every test
green; each test here fails when its hint is dropped (checked by breaking the code by hand).
"""

from __future__ import annotations

from collections.abc import Iterable

from nacl.signing import SigningKey

from meshcrew import spaces
from meshcrew.reasons import Reason
from meshcrew.records import Record, sign_record
from meshcrew.spaces import CheckIn, Draft, MemberStatus, SpaceState, Status
from meshcrew.spaces.devices import (
    certify_device,
    device_certificate,
    revoke_device,
    unlink_device,
)
from meshcrew.spaces.extend import extend
from meshcrew.spaces.state import ACCEPTED, Outcome
from spaces_world import World, person, pk

ADA, BO, CY, DEE = (person(n) for n in ("ada", "bo", "cy", "dee"))
ADA2, ADA3 = person("ada's other laptop"), person("ada's third")
BO2 = person("bo's other laptop")


def racing(w: World, key: SigningKey, space: bytes, made: Draft, ahead: Iterable[Record]
           ) -> Record:
    """``made`` signed as ``key``'s next record with the first timestamp (from the clock on)
    that gives it an id below every id of ``ahead``."""
    bound = min(r.id for r in ahead)
    for step in range(1, 1000):
        record = w.sign(key, space, made, ts=w.now + step, record=False)
        if record.id < bound:
            w.keep(record)
            return record
    raise AssertionError("no timestamp gave an id below the others")  # pragma: no cover


def crew(w: World) -> bytes:
    """Ada's crew with Bo and Cy, everyone let in."""
    space = w.found(ADA)
    w.admit(ADA, BO, space)
    w.admit(ADA, CY, space)
    return space


def link(w: World, space: bytes, member: SigningKey, device: SigningKey) -> Record:
    """``device`` posts ``member``'s certificate of it, then ``member`` rotates the keys."""
    cert = w.sign(device, space, device_certificate(w.state(space), pk(member),
                                                   certify_device(member, pk(device))))
    w.rotate(member, space)
    return cert


def a_post(w: World, space: bytes, key: SigningKey, text: str) -> Draft:
    """A check-in sealed as ``key`` sees the space now (signed later, to race)."""
    return spaces.seal_post(w.state(space), key, CheckIn(text, 3), w.rng)


def folded(w: World, space: bytes) -> SpaceState:
    state = w.state(space)
    assert state.stalled is False
    return state


# Rule 6: a removal and its consents come before the target's next record. ----------------


def test_a_removal_comes_before_the_targets_next_record_even_with_a_lower_id() -> None:
    """Ada and Bo: Ada's proposal alone is a majority of the electorate (Ada), so the removal
    takes effect at the proposal. Bo's post, signed not having seen it, comes after it."""
    w = World(1)
    space = w.found(ADA)
    w.admit(ADA, BO, space)
    unseen = a_post(w, space, BO, "not having seen the removal")
    last = w.heads[(pk(BO), space)]
    proposal = w.propose(ADA, space, BO)
    late = racing(w, BO, space, unseen, [proposal])
    state = folded(w, space)
    assert state.removals[proposal.id].effective_by == proposal.id
    assert state.members[pk(BO)].status is MemberStatus.REMOVED
    assert state.status(late.id) == Status(Outcome.REJECTED, Reason.REMOVED_MEMBER,
                                           f"removed after their record {last.seq}")


def test_the_consents_also_come_before_the_targets_next_record() -> None:
    """Ada, Bo and Cy: the removal of Bo takes effect at Cy's consent. Bo's post signed
    meanwhile comes after the proposal and the consent, so it does not overtake the removal."""
    w = World(2)
    space = crew(w)
    unseen = a_post(w, space, BO, "not having seen the removal")
    last = w.heads[(pk(BO), space)]
    proposal = w.propose(ADA, space, BO)
    consent = w.consent(CY, space, proposal)
    late = racing(w, BO, space, unseen, [proposal, consent])
    state = folded(w, space)
    assert state.removals[proposal.id].effective_by == consent.id
    assert state.members[pk(BO)].status is MemberStatus.REMOVED
    assert state.status(late.id) == Status(Outcome.REJECTED, Reason.REMOVED_MEMBER,
                                           f"removed after their record {last.seq}")
    # The consent must come first too, not only the proposal: with it last, Bo's post would
    # sit between them (its id is below the consent's) and overtake the removal.
    assert state.sequence.index(consent.id) < state.sequence.index(late.id)


# Rule 6: a removal comes before every join with the target's invites it does not name. ---


def test_a_join_with_the_targets_invite_comes_after_the_removal_and_is_refused() -> None:
    w = World(3)
    space = crew(w)
    code = w.invite(BO, space)
    proposal = w.propose(ADA, space, BO)  # names Bo's invite as his last record
    consent = w.consent(CY, space, proposal)
    join = racing(w, DEE, space, spaces.join_space(code, DEE), [proposal, consent])
    state = folded(w, space)
    assert state.members[pk(BO)].status is MemberStatus.REMOVED
    assert state.invites[code.invite_id].revoked
    assert state.status(join.id) == Status(Outcome.REJECTED, Reason.INVITE_REVOKED)
    assert not state.is_member(pk(DEE))


def test_a_join_the_proposer_had_seen_stands_and_closes_no_cycle() -> None:
    """The proposal names the joins its author saw (its electorate): one made with the
    target's invite stays before it, and the order does not stall on a cycle."""
    w = World(4)
    space = crew(w)
    join = w.join(DEE, w.invite(BO, space))
    w.rotate(BO, space)
    proposal = w.propose(ADA, space, BO)
    body = spaces.bodies.parse_body(proposal.kind, proposal.body)
    assert isinstance(body, spaces.bodies.RemoveBody)
    assert join.id in body.after
    w.consent(CY, space, proposal)
    state = folded(w, space)
    assert state.members[pk(BO)].status is MemberStatus.REMOVED
    assert state.status(join.id) == ACCEPTED
    assert state.is_admitted(pk(DEE))


def test_an_invite_made_by_the_targets_device_counts_as_the_targets() -> None:
    w = World(5)
    space = crew(w)
    link(w, space, BO, BO2)
    code = w.invite(BO2, space)
    proposal = w.propose(ADA, space, BO)
    consent = w.consent(CY, space, proposal)
    join = racing(w, DEE, space, spaces.join_space(code, DEE), [proposal, consent])
    state = folded(w, space)
    assert state.invites[code.invite_id].author == pk(BO)
    assert state.members[pk(BO)].status is MemberStatus.REMOVED
    assert state.status(join.id) == Status(Outcome.REJECTED, Reason.INVITE_REVOKED)


# Rule 7: a rotation naming a join comes before the joiner's next record. ------------------


def test_a_rotation_letting_a_joiner_in_comes_before_their_next_record() -> None:
    """Bo, let in by Ada's rotation, makes an invite; it does not name the rotation, but it
    comes after it, so it meets a member let in (not one still waiting)."""
    w = World(6)
    space = w.found(ADA)
    w.join(BO, w.invite(ADA, space))
    rotation = w.rotate(ADA, space)
    made, _ = spaces.create_invite(w.state(space), pk(BO), expires_ms=w.now + 10**8,
                                   rng=w.rng)
    invite = racing(w, BO, space, made, [rotation])
    state = folded(w, space)
    assert state.is_admitted(pk(BO))
    assert state.status(invite.id) == ACCEPTED
    assert state.invites[invite.id].author == pk(BO)


# Rule 11: a revocation comes before every join with its invite that it does not name. ----


def test_a_join_the_revocation_did_not_name_comes_after_it_and_is_refused() -> None:
    w = World(7)
    space = w.found(ADA)
    w.admit(ADA, BO, space)
    code = w.invite(ADA, space, uses=3)
    seen = w.join(CY, code)
    w.rotate(ADA, space)
    revoke = w.sign(BO, space, spaces.revoke_invite(w.state(space), pk(BO), code.invite_id))
    late = racing(w, DEE, space, spaces.join_space(code, DEE), [revoke])
    state = folded(w, space)
    assert state.invites[code.invite_id].revoked_by == revoke.id
    assert state.status(seen.id) == ACCEPTED  # named by the revocation: it stands
    assert state.is_admitted(pk(CY))
    assert state.status(late.id) == Status(Outcome.REJECTED, Reason.INVITE_REVOKED)


# Rule 13: a device's revocation comes before the device's next record. --------------------


def test_an_unlink_comes_before_the_devices_next_record() -> None:
    w = World(8)
    space = crew(w)
    link(w, space, ADA, ADA2)
    one = w.post(ADA2, space, CheckIn("one", 3))
    unseen = a_post(w, space, ADA2, "two, not having seen the unlink")
    view = w.state(space)
    unlink = w.sign(ADA, space, unlink_device(view, pk(ADA), pk(ADA2),
                                              revoke_device(ADA, pk(ADA2))))
    two = racing(w, ADA2, space, unseen, [unlink])
    state = folded(w, space)
    assert state.status(one.id) == ACCEPTED
    assert state.devices[pk(ADA2)].revoked_by == unlink.id
    assert state.status(two.id) == Status(Outcome.REJECTED, Reason.DEVICE_REVOKED,
                                          f"revoked after its record {one.seq}")


def test_a_record_refused_before_ordering_changes_no_hint_whatever_comes_first() -> None:
    """A body that does not parse is skipped by the hints, not the end of them: given first,
    the removal below still comes before Bo's racing post."""
    w = World(1)
    space = w.found(ADA)
    w.admit(ADA, BO, space)
    unseen = a_post(w, space, BO, "not having seen the removal")
    proposal = w.propose(ADA, space, BO)
    late = racing(w, BO, space, unseen, [proposal])
    junk = w.sign(CY, space, Draft("join", b"\x93\x01\x02\x03"), record=False)
    for records in ([junk, *w.of(space)], [*w.of(space), junk]):
        state = spaces.fold(space, records)
        assert state.status(junk.id).reason is Reason.BAD_BODY  # type: ignore[union-attr]
        assert state.status(late.id).reason is Reason.REMOVED_MEMBER  # type: ignore[union-attr]


def test_a_rotation_naming_a_devices_certificate_and_its_consent_closes_no_cycle() -> None:
    """Only a join named by a rotation orders its author's next record after the rotation.
    Ada's laptop consents (for Ada) before any rotation reached it; Bo's rotation names its
    certificate and that consent (the latest change): the laptop's record after its
    certificate is the consent, which the rotation follows, not precedes."""
    w = World(17)
    space = crew(w)
    cert = w.sign(ADA2, space, device_certificate(w.state(space), pk(ADA),
                                                  certify_device(ADA, pk(ADA2))))
    proposal = w.propose(BO, space, CY)
    consent = w.consent(ADA2, space, proposal)
    rotation = w.rotate(BO, space)
    body = spaces.bodies.parse_body(rotation.kind, rotation.body)
    assert isinstance(body, spaces.bodies.KeysBody)
    assert {cert.id, consent.id} <= set(body.after)
    state = folded(w, space)
    assert state.members[pk(CY)].status is MemberStatus.REMOVED
    assert state.status(rotation.id) == ACCEPTED
    assert state.current_epoch_id == rotation.id


# Rules 12 and 13: a leave or removal comes before the next record of each device it names,
# and before the certificate of every device of the member it does not name. --------------


def test_a_leave_comes_before_the_next_record_of_each_device_it_names() -> None:
    w = World(9)
    space = crew(w)
    link(w, space, ADA, ADA2)
    one = w.post(ADA2, space, CheckIn("one", 3))
    unseen = a_post(w, space, ADA2, "two, not having seen the leave")
    leave = w.leave(ADA, space)
    two = racing(w, ADA2, space, unseen, [leave])
    state = folded(w, space)
    assert state.members[pk(ADA)].status is MemberStatus.LEFT
    assert state.status(one.id) == ACCEPTED
    assert state.status(two.id) == Status(Outcome.REJECTED, Reason.NOT_MEMBER,
                                          "the author has left")


def test_a_leave_comes_before_the_certificate_of_a_device_it_does_not_name() -> None:
    w = World(10)
    space = crew(w)
    made = device_certificate(w.state(space), pk(ADA), certify_device(ADA, pk(ADA3)))
    leave = w.leave(ADA, space)  # names no device: Ada has none yet
    cert = racing(w, ADA3, space, made, [leave])
    state = folded(w, space)
    assert state.members[pk(ADA)].status is MemberStatus.LEFT
    assert state.status(cert.id) == Status(Outcome.REJECTED, Reason.NOT_MEMBER,
                                           "the certificate names no current member")
    assert pk(ADA3) not in state.devices


def test_a_leave_from_a_device_is_its_members_for_the_devices_it_does_not_name() -> None:
    """Ada leaves from her second laptop; a third, certified meanwhile, is hers too."""
    w = World(11)
    space = crew(w)
    link(w, space, ADA, ADA2)
    made = device_certificate(w.state(space), pk(ADA), certify_device(ADA, pk(ADA3)))
    leave = w.leave(ADA2, space)
    cert = racing(w, ADA3, space, made, [leave])
    state = folded(w, space)
    assert state.members[pk(ADA)].status is MemberStatus.LEFT
    assert state.status(cert.id) == Status(Outcome.REJECTED, Reason.NOT_MEMBER,
                                           "the certificate names no current member")


def test_leaving_from_a_device_closes_no_cycle_and_keeps_the_fast_path() -> None:
    """The leaving device's own certificate is not ordered after its leave (the leave
    follows it in the device's chain): a cycle there made every later fold of the space
    break it, and ``extend`` decline every new post, for good."""
    w = World(16)
    space = crew(w)
    link(w, space, ADA, ADA2)
    leave = w.leave(ADA2, space)
    w.rotate(BO, space)
    before = folded(w, space)
    assert before.status(leave.id) == ACCEPTED
    post = w.post(CY, space, CheckIn("after Ada left", 3))
    extended = extend(before, [post])
    assert extended is not None
    assert extended == w.state(space)


def test_a_removal_comes_before_the_next_record_of_each_device_it_names() -> None:
    w = World(12)
    space = crew(w)
    link(w, space, ADA, ADA2)
    one = w.post(ADA2, space, CheckIn("one", 3))
    unseen = a_post(w, space, ADA2, "two, not having seen the removal")
    proposal = w.propose(BO, space, ADA)  # names Ada's laptop and its last record, "one"
    consent = w.consent(CY, space, proposal)
    two = racing(w, ADA2, space, unseen, [proposal, consent])
    state = folded(w, space)
    assert state.members[pk(ADA)].status is MemberStatus.REMOVED
    assert state.status(one.id) == ACCEPTED
    assert state.status(two.id) == Status(Outcome.REJECTED, Reason.DEVICE_OF_REMOVED)


def test_a_removal_comes_before_the_certificate_of_a_device_it_does_not_name() -> None:
    w = World(13)
    space = crew(w)
    made = device_certificate(w.state(space), pk(ADA), certify_device(ADA, pk(ADA3)))
    proposal = w.propose(BO, space, ADA)
    consent = w.consent(CY, space, proposal)
    cert = racing(w, ADA3, space, made, [proposal, consent])
    state = folded(w, space)
    assert state.members[pk(ADA)].status is MemberStatus.REMOVED
    assert state.status(cert.id) == Status(Outcome.REJECTED, Reason.DEVICE_OF_REMOVED)
    assert pk(ADA3) not in state.devices


# The order says when it broke a cycle. ---------------------------------------------------


def test_two_members_removing_each_other_stall_the_order_and_the_lower_id_goes_first() -> None:
    """Each proposal is the other's target's next record: the hints form a cycle, which the
    order breaks by taking the lower id; the fold says it did (``stalled``)."""
    w = World(14)
    space = w.found(ADA)
    w.admit(ADA, BO, space)
    view = w.state(space)
    by_ada = w.sign(ADA, space, spaces.propose_removal(view, pk(ADA), pk(BO)))
    by_bo = w.sign(BO, space, spaces.propose_removal(view, pk(BO), pk(ADA)))
    state = w.state(space)
    assert state.stalled is True
    first, second = sorted((by_ada, by_bo), key=lambda r: r.id)
    assert state.status(first.id) == ACCEPTED
    assert state.removals[first.id].effective
    assert state.members[second.author].status is MemberStatus.REMOVED
    assert state.status(second.id).reason is Reason.REMOVED_MEMBER  # type: ignore[union-attr]


# Rule 1: a fork is refused from the lowest seq the author forked at. ----------------------


def test_an_author_forking_twice_is_refused_from_the_lower_fork_in_any_order() -> None:
    w = World(15)
    space = w.found(ADA)

    def chained(seq: int, prev: Record | None, tag: int) -> Record:
        return sign_record(BO, kind="leave", space=space, seq=seq,
                           prev=None if prev is None else prev.id, ts=w.now + tag, body=b"\x80")

    one = chained(1, None, 1)
    two = chained(2, one, 2)
    three, three_twin = chained(3, two, 3), chained(3, two, 4)
    four = chained(4, three, 5)
    five, five_twin = chained(5, four, 6), chained(5, four, 7)
    forked = [three, three_twin, four, five, five_twin]
    for records in ([one, two, *forked], [one, two, *reversed(forked)]):
        state = w.state(space, [*w.of(space), *records])
        for record in forked:
            assert state.status(record.id) == Status(Outcome.REJECTED, Reason.FORK,
                                                     "the author forked at seq 3")
        for record in (one, two):
            assert state.status(record.id).reason is not Reason.FORK  # type: ignore[union-attr]
