"""A node's member service answers membership and retention without folding every post.

``Member.expire_due`` of a service that holds no view of the space decides from the lean
membership state whether anything can expire: nothing when the settings keep every post and no
member took theirs away; otherwise (a settings post, a leave that takes the posts) it asks the
whole view, as before, and deletes what is due. ``Member.lean`` keeps its state until a record
that is not a post arrives. Each test runs twice: with few new records at a time, and with
every arrival past two taken as a catch-up (read one at a time from the replica's stream).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from meshcrew.records import Record
from meshcrew.service import Member, lean_spaces
from meshcrew.spaces import Period, Rhythm, SettingsChange
from meshcrew.spaces.retention import Expiry
from test_service_support import DAY, Town, admit, sync, town_at

NOTHING = Expiry(frozenset(), frozenset(), None)


@pytest.fixture(params=[lean_spaces.FOLLOW_UP_TO, 2], ids=["few-new", "catch-up"])
def town(tmp_path: Path, request: pytest.FixtureRequest,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[Town]:
    """Each test twice: new records read at once, and (past two) from the replica's stream."""
    monkeypatch.setattr(lean_spaces, "FOLLOW_UP_TO", request.param)
    yield from town_at(tmp_path)


def node_of(town: Town, member: Member) -> Member:
    """Another service over the member's replica, holding no view (as a node's, which serves
    no screen)."""
    return Member(member.replica, member.identity, clock=town.clock)


def crew_with_posts(town: Town) -> tuple[bytes, Member, Member]:
    ada, bob = town.person("Ada"), town.person("Bob")
    space = ada.create_space("Moon", rhythm=Rhythm(Period.DAILY))  # kept forever
    admit(ada, bob, space)
    for n in range(5):
        ada.checkin(space, text=f"day {n}", energy=3)
    sync(space, ada, bob)
    return space, ada, bob


def test_a_pass_where_everything_is_kept_folds_no_post(town: Town) -> None:
    space, _, bob = crew_with_posts(town)
    node = node_of(town, bob)
    town.clock.advance(3 * DAY)
    assert node.expire_due(space) == NOTHING
    assert space not in node.views.views  # no view was made
    assert bob.expire_due(space) == NOTHING  # the whole view's answer


def test_a_settings_post_arriving_later_sends_the_pass_to_the_whole_view(town: Town) -> None:
    space, ada, bob = crew_with_posts(town)
    old = ada.checkin(space, text="long ago", energy=4)
    sync(space, ada, bob)
    node = node_of(town, bob)
    town.clock.advance(3 * DAY)
    assert node.expire_due(space) == NOTHING  # the posts are scanned once here
    pid = ada.propose(space, title="Keep a day", change=SettingsChange(keep_checkins=1))
    sync(space, ada, bob)
    bob.answer(pid, position="consent")
    sync(space, ada, bob)  # Ada carries it out: a settings post, which only decryption tells
    found = node.expire_due(space)
    assert found is not None
    assert old in found.due
    assert bob.replica.get(old).expired  # type: ignore[union-attr]


def test_a_member_leaving_with_their_posts_sends_the_pass_to_the_whole_view(
        town: Town) -> None:
    space, ada, bob = crew_with_posts(town)
    cy = town.person("Cy")
    admit(ada, cy, space)
    sync(space, ada, bob, cy)
    cys = cy.checkin(space, text="CY-GOES", energy=2)
    sync(space, ada, bob, cy)
    node = node_of(town, bob)
    assert node.expire_due(space) == NOTHING
    cy.leave(space, expire_posts=True)
    ada.checkin(space, text="after Cy", energy=3)  # so Cy's post is not Cy's newest record
    sync(space, ada, bob, cy)
    found = node.expire_due(space)
    assert found is not None
    assert cys in found.due


def test_the_lean_state_is_kept_through_posts_and_folded_again_for_membership(
        town: Town) -> None:
    space, ada, bob = crew_with_posts(town)
    node = node_of(town, bob)
    before = node.lean.state(space)
    assert before.recipients == bob.view(space).state.recipients
    ada.checkin(space, text="one more", energy=3)
    sync(space, ada, bob)
    assert node.lean.state(space) is before  # posts change no membership
    bob_key = bob.me
    bob.leave(space)
    for n in range(3):  # the leave among posts (a catch-up, in the second run)
        ada.checkin(space, text=f"after {n}", energy=3)
    sync(space, ada, bob)
    after = node.lean.state(space)
    assert bob_key not in after.recipients
    assert after.recipients == bob.view(space).state.recipients
    assert space not in node.views.views


def test_a_pass_after_arrivals_reads_only_what_arrived(town: Town,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A catch-up runs a pass before each sync session: each must read the records that
    arrived since the last, not the whole space again (which made a catch-up quadratic)."""
    space, ada, bob = crew_with_posts(town)
    node = node_of(town, bob)
    assert node.expire_due(space) == NOTHING
    whole_reads: list[bytes] = []
    streamed = node.replica.each_space_record

    def spied(space_id: bytes) -> Iterator[Record]:
        whole_reads.append(space_id)
        return streamed(space_id)

    monkeypatch.setattr(node.replica, "each_space_record", spied)
    for _ in range(2):
        for n in range(6):
            ada.checkin(space, text=f"later {n}", energy=3)
        sync(space, ada, bob)
        assert node.expire_due(space) == NOTHING
    assert whole_reads == []
    assert space not in node.views.views
