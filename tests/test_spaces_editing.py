"""Editing a space (``meshcrew.spaces.editing``): in a crew only a passed proposal changes the
settings; in a congregation any member may unless it decided otherwise; once per proposal; the
quorum of a proposal is the one in force when it was made; any delivery order gives the same
settings and history."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from hypothesis_profiles import examples
from meshcrew import spaces
from meshcrew.reasons import Reason
from meshcrew.records import Record
from meshcrew.spaces import (
    Answer,
    Position,
    Proposal,
    Rhythm,
    Settings,
    SettingsChange,
    SpaceKind,
)
from meshcrew.spaces.editing import SettingsHistory, settings_history
from meshcrew.spaces.settings import Period
from spaces_world import DAY, World, person, pk

ADA, BO, CY = (person(n) for n in ("ada", "bo", "cy"))
RENAME = SettingsChange(name="Thursday crew")


def history(w: World, space: bytes, reader: SigningKey = ADA,
            records: list[Record] | None = None) -> SettingsHistory:
    state = w.state(space, records)
    keyring = spaces.unlock(state, reader)
    genesis = spaces.open_meta(state, keyring)
    assert genesis is not None
    return settings_history(spaces.open_posts(state, keyring), genesis)


def crew(kind: SpaceKind = SpaceKind.CREW) -> tuple[World, bytes]:
    w = World(11)
    space = w.found(ADA, kind, "Tuesday crew")
    for joiner in (BO, CY):
        w.admit(ADA, joiner, space)
    return w, space


def passed(w: World, space: bytes, change: SettingsChange, *, by: SigningKey = ADA,
           objector: SigningKey | None = None) -> Record:
    """A proposal of ``change`` that everyone else consents to (or that ``objector`` blocks)."""
    ts = w.tick()
    proposal = w.post(by, space, Proposal("change", "", ts + 7 * DAY, change.to_wire()), ts=ts)
    for member in (ADA, BO, CY):
        if member is by:
            continue
        if member is objector:
            w.post(member, space, Answer(proposal.id, Position.OBJECT, "no"))
        else:
            w.post(member, space, Answer(proposal.id, Position.CONSENT))
    return proposal


def test_in_a_crew_only_a_passed_proposal_changes_the_settings() -> None:
    w, space = crew()
    alone = w.post(BO, space, Settings(RENAME.to_wire()))
    result = history(w, space)
    assert result.refused[alone.id].reason is Reason.NOT_CONSENTED
    assert result.current.name == "Tuesday crew"
    proposal = passed(w, space, RENAME)
    made = w.post(CY, space, Settings(RENAME.to_wire(), proposal.id))  # any member carries it
    result = history(w, space)
    assert result.current.name == "Thursday crew"
    assert [a.post.record_id for a in result.applied] == [made.id]
    assert result.applied[0].by == proposal.id
    assert result.applied[0].before.name == "Tuesday crew"
    assert result.carried_out == {proposal.id}
    # Every member sees the same settings.
    assert history(w, space, BO).current == history(w, space, CY).current == result.current


def test_a_change_the_proposal_did_not_propose_or_before_it_passed_is_refused() -> None:
    w, space = crew()
    ts = w.tick()
    proposal = w.post(ADA, space, Proposal("rename", "", ts + DAY, RENAME.to_wire()), ts=ts)
    early = w.post(ADA, space, Settings(RENAME.to_wire(), proposal.id))  # before it passed
    w.post(BO, space, Answer(proposal.id, Position.CONSENT))
    w.post(CY, space, Answer(proposal.id, Position.CONSENT))
    other = w.post(ADA, space, Settings(SettingsChange(name="Moon").to_wire(), proposal.id))
    checkin = w.post(BO, space, spaces.CheckIn("here", 3))
    not_a_proposal = w.post(BO, space, Settings(RENAME.to_wire(), checkin.id))
    blocked = passed(w, space, SettingsChange(quorum=50), objector=CY)
    on_blocked = w.post(ADA, space, Settings(SettingsChange(quorum=50).to_wire(), blocked.id))
    result = history(w, space)
    assert "had not passed" in result.refused[early.id].detail
    assert "another change" in result.refused[other.id].detail
    assert "not one of this space" in result.refused[not_a_proposal.id].detail
    assert "had not passed" in result.refused[on_blocked.id].detail
    assert all(s.reason is Reason.NOT_CONSENTED for s in result.refused.values())
    assert result.current == history(w, space, BO).genesis  # nothing changed


def test_a_proposal_is_carried_out_once() -> None:
    w, space = crew()
    rename = passed(w, space, RENAME)
    first = w.post(BO, space, Settings(RENAME.to_wire(), rename.id))
    back = passed(w, space, SettingsChange(name="Tuesday crew"))
    w.post(ADA, space, Settings(SettingsChange(name="Tuesday crew").to_wire(), back.id))
    late_duplicate = w.post(CY, space, Settings(RENAME.to_wire(), rename.id))
    result = history(w, space)
    assert result.current.name == "Tuesday crew"  # the late duplicate does not rename again
    assert late_duplicate.id not in result.refused
    assert next(a.post.record_id for a in result.applied) == first.id
    assert len(result.applied) == 2


def test_in_a_congregation_any_member_edits_unless_it_decided_otherwise() -> None:
    w, hall = crew(SpaceKind.CONGREGATION)
    purpose = SettingsChange(purpose="neighbours who grow food")
    w.post(BO, hall, Settings(purpose.to_wire()))
    lock = w.post(CY, hall, Settings(SettingsChange(edit_by_proposal=True).to_wire()))
    refused = w.post(BO, hall, Settings(SettingsChange(edit_by_proposal=False).to_wire()))
    result = history(w, hall)
    assert result.current.purpose == "neighbours who grow food"
    assert result.current.edit_by_proposal
    assert lock.id not in result.refused
    assert result.refused[refused.id].reason is Reason.NOT_CONSENTED
    unlock = SettingsChange(edit_by_proposal=False)
    proposal = passed(w, hall, unlock, by=BO)
    w.post(BO, hall, Settings(unlock.to_wire(), proposal.id))
    assert not history(w, hall).current.edit_by_proposal


def test_the_quorum_of_a_proposal_is_the_one_in_force_when_it_was_made() -> None:
    w, space = crew()
    half = SettingsChange(quorum=50)
    before = w.post(ADA, space, Proposal("made before", "", w.now + 2 * DAY), ts=w.tick())
    lower = passed(w, space, half)
    made = w.post(ADA, space, Settings(half.to_wire(), lower.id))
    same = w.post(BO, space, Proposal("made with it", "", w.now + 2 * DAY), ts=made.ts)
    after = w.post(ADA, space, Proposal("made after", "", w.now + 2 * DAY), ts=w.tick())
    w.post(BO, space, Answer(before.id, Position.CONSENT))
    w.post(BO, space, Answer(after.id, Position.CONSENT))
    result = history(w, space)
    opened = w.opened(ADA, space)
    outcome = spaces.decide(opened, w.now + 3 * DAY, result.quorum_of)
    by_title = {p.title: p for p in outcome.proposals}
    assert by_title["made before"].quorum == 100
    assert by_title["made before"].status.value == "expired"  # 2 of 3 is not everyone
    assert by_title["made with it"].quorum == 100  # strictly before: not the same instant
    assert same.ts == made.ts
    assert by_title["made after"].quorum == 50
    assert by_title["made after"].status.value == "passed"  # 2 of 3 is over half
    # A change proposed after the quorum was lowered passes on 2 of 3 answers at its
    # deadline, and is carried out: the settings post is judged with the quorum then.
    ts = w.tick()
    rename = w.post(ADA, space, Proposal("rename", "", ts + DAY, RENAME.to_wire()), ts=ts)
    w.post(BO, space, Answer(rename.id, Position.CONSENT))
    carried = w.post(ADA, space, Settings(RENAME.to_wire(), rename.id), ts=ts + DAY + 1)
    result = history(w, space)
    assert carried.id not in result.refused
    assert result.current.name == "Thursday crew"


def test_a_settings_change_is_a_bad_body_when_it_is_empty_or_unknown() -> None:
    import pytest

    from meshcrew.records import RecordError

    with pytest.raises(RecordError, match="empty"):
        Settings({})
    with pytest.raises(RecordError, match="no setting 'colour'"):
        Settings({"colour": "red"})
    with pytest.raises(RecordError, match="quorum"):
        Settings({"quorum": 0})
    assert SettingsChange.from_wire(SettingsChange(
        rhythm=Rhythm(Period.WEEKLY, 3)).to_wire()).rhythm == Rhythm(Period.WEEKLY, 3)


@settings(max_examples=examples(25), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(moves=st.lists(st.tuples(st.sampled_from(["propose", "consent", "object", "carry",
                                                 "alone"]),
                                st.integers(0, 2), st.integers(0, 5)), max_size=14),
       seed=st.integers(0, 2**32 - 1))
@example(moves=[("alone", 0, 0)], seed=0)  # a change in a crew without a proposal
def test_any_order_gives_the_same_settings(moves: list[tuple[str, int, int]],
                                           seed: int) -> None:
    w, space = crew()
    people = (ADA, BO, CY)
    proposals: list[tuple[Record, SettingsChange]] = []
    for name, who, n in moves:
        key = people[who]
        if name == "propose":
            change = SettingsChange(name=f"Crew {n}", quorum=50 + n)
            ts = w.tick()
            proposals.append((w.post(key, space, Proposal("p", "", ts + DAY, change.to_wire()),
                                     ts=ts), change))
        elif proposals and name in ("consent", "object"):
            target, _ = proposals[n % len(proposals)]
            if target.author != pk(key):
                position = Position.CONSENT if name == "consent" else Position.OBJECT
                w.post(key, space, Answer(target.id, position, "" if name == "consent" else "x"))
        elif proposals and name == "carry":
            target, change = proposals[n % len(proposals)]
            w.post(key, space, Settings(change.to_wire(), target.id))
        elif name == "alone":
            w.post(key, space, Settings(SettingsChange(purpose=f"p{n}").to_wire()))
    records = w.of(space)
    expected = history(w, space, records=records)
    shuffler = random.Random(seed)
    for reader in people:
        mixed = records + shuffler.sample(records, k=len(records) // 3)
        shuffler.shuffle(mixed)
        assert history(w, space, reader, mixed) == expected
    for applied in expected.applied:
        assert applied.by is not None  # a crew: nothing changes without a proposal
