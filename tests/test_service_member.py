"""The member service over real replicas: creating, inviting, joining, posting, reading.

Every member has their own home folder and replica; records move only by the service's own
export and ingest, as they would by file between laptops.
"""

from __future__ import annotations

import pytest

from meshcrew.errors import InputError, ReplicaError, SpaceError
from meshcrew.records import Record
from meshcrew.service import Member, MemberReads
from meshcrew.spaces import PostKind, Rhythm
from meshcrew.spaces.settings import Period
from meshcrew.store import Replica
from test_service_support import (
    WEEK,
    Town,
    admit,
    crew_of,
    logs,
    send,
    sync,
)


def test_create_shows_the_space_and_posts_the_founders_profile(town: Town) -> None:
    ada = town.person("Ada")
    space = ada.create_space("Moon", purpose="weekly practice",
                             rhythm=Rhythm(Period.WEEKLY, 2, 60))
    [summary] = ada.spaces()
    assert (summary.id, summary.name, summary.kind, summary.purpose) == (
        space, "Moon", "crew", "weekly practice")
    assert summary.rhythm == "weekly:wed+01:00"
    assert (summary.members, summary.my_status, summary.waiting_for_keys) == (1, "active", False)
    assert summary.needs_checkin
    [me] = ada.members(space)
    assert (me.name, me.is_me, me.is_founder, me.status) == ("Ada", True, True, "active")
    assert [e.kind for e in ada.log(space, events=True)] == ["genesis", "profile"]
    assert [e.kind for e in ada.log(space)] == ["profile"]


def test_join_waits_for_the_inviters_rotation_then_reads_and_posts(town: Town) -> None:
    ada, bob = town.person("Ada"), town.person("Bob")
    space = ada.create_space("Moon")
    ada.checkin(space, text="first in", energy=4)
    code = ada.invite(space, expires_ms=ada.now() + WEEK)

    send(ada, bob, space)
    assert bob.summary(space).my_status == "outsider"
    assert bob.join(code) == space
    waiting = bob.summary(space)
    assert (waiting.my_status, waiting.waiting_for_keys, waiting.name) == ("active", True, None)
    assert [e.kind for e in bob.log(space, events=True)].count("locked") == 2
    with pytest.raises(SpaceError, match="key"):
        bob.checkin(space, text="hello", energy=3)

    report = ada.ingest(bob.export(space), sender="bob")
    assert report.rotated == (space,)
    assert ada.ingest(bob.export(space), sender="bob").rotated == ()  # once is enough

    report = bob.ingest(ada.export(space), sender="ada")
    assert len(report.accepted) == 1  # the rotation
    summary = bob.summary(space)
    assert (summary.name, summary.waiting_for_keys, summary.members) == ("Moon", False, 2)
    # History is on: Bob reads what Ada wrote before he joined; his profile went out at once.
    assert [(e.kind, e.author_name) for e in bob.log(space)] == [
        ("profile", "Ada"), ("checkin", "Ada"), ("profile", "Bob")]
    bob.checkin(space, text="glad to be here", energy=5)
    send(bob, ada, space)
    assert logs(space, ada) == logs(space, bob)


def test_checkins_replies_reactions_read_the_same_on_every_replica(town: Town) -> None:
    space, (ada, bob, cy) = crew_of(town, "Ada", "Bob", "Cy")
    bob_in = bob.checkin(space, text="arriving tired", energy=2,
                         compass={"belonging": 4, "time": 1}, ask="someone to pair on the grant?")
    cy.checkin(space, text="bright", energy=5)
    sync(space, ada, bob, cy)
    reply = ada.reply(bob_in, text="I can pair on Thursday")
    ada.react(bob_in, emoji="💚")
    cy.react(bob_in, emoji="heard")
    sync(space, ada, bob, cy)

    ada_log, bob_log, cy_log = logs(space, ada, bob, cy)
    assert ada_log == bob_log == cy_log
    checkin = next(e for e in ada_log if e["id"] == bob_in.hex())
    assert checkin["kind"] == "checkin"
    assert checkin["author_name"] == "Bob"
    assert checkin["compass"] == {"belonging": 4, "time": 1}
    assert checkin["ask"] == "someone to pair on the grant?"
    assert {"id", "kind", "author", "author_name", "seq", "ts", "text", "energy"} <= set(checkin)
    assert [e["ts"] for e in ada_log] == sorted(e["ts"] for e in ada_log)

    thread = cy.thread(bob_in)
    assert [r.id for r in thread.replies] == [reply]
    assert sorted(r.fields["text"] for r in thread.reactions) == ["heard", "💚"]
    board = ada.board(space)
    assert [(i.title, i.closed) for i in board.items] == [("someone to pair on the grant?", False)]
    cycle = ada.cycle(space)
    assert {c.author_name for c in cycle.checkins} == {"Bob", "Cy"}
    assert [m.name for m in cycle.missing] == ["Ada"]
    assert ada.energy(space) == {bob.me: [(checkin["ts"], 2)],
                                 cy.me: [(cycle.checkins[0 if cycle.checkins[0].author == cy.me
                                                         else 1].ts, 5)]}
    assert ada.compass(space, bob.me) == {"belonging": [(checkin["ts"], 4)],
                                          "time": [(checkin["ts"], 1)]}
    assert not bob.summary(space).needs_checkin
    assert ada.summary(space).needs_checkin


def test_reads_reuse_the_view_until_the_spaces_records_change(town: Town) -> None:
    space, (ada, bob) = crew_of(town, "Ada", "Bob")
    other = ada.create_space("Mars")
    view = ada.view(space)
    assert ada.view(space) is view
    ada.checkin(other, text="elsewhere", energy=3)
    assert ada.view(space) is view, "a write in another space keeps this space's view"
    bob.checkin(space, text="hi", energy=3)
    send(bob, ada, space)
    assert ada.view(space) is not view
    fresh = ada.view(space)
    assert ada.log(space)[-1].fields["text"] == "hi"
    assert ada.view(space) is fresh


def test_a_reader_over_a_read_only_replica_sees_the_writers_records(town: Town) -> None:
    space, (ada, bob) = crew_of(town, "Ada", "Bob")
    with Replica.open(ada.replica.home, read_only=True) as replica:
        reader = MemberReads(replica, ada.identity, clock=town.clock)
        assert logs(space, reader) == logs(space, ada)
        view = reader.view(space)
        bob.checkin(space, text="seen by the reader", energy=4)
        send(bob, ada, space)
        assert reader.log(space)[-1].fields["text"] == "seen by the reader"
        assert reader.view(space) is not view
        with pytest.raises(ReplicaError, match="read-only"):
            reader.replica.append([], now_ms=town.clock())


def test_on_records_hears_every_signed_and_ingested_record(town: Town) -> None:
    heard: list[Record] = []
    plain = town.person("Ada")
    ada = Member(plain.replica, plain.identity, clock=town.clock, on_records=heard.extend)
    ada.create_space("Moon")
    assert [r.kind for r in heard] == ["genesis", "sealed"]  # the genesis and Ada's profile
    bob = town.person("Bob")
    mars = bob.create_space("Mars")
    heard.clear()
    report = ada.ingest(bob.export(mars), sender="bob")
    assert len(report.accepted) == 2
    assert sorted(r.id for r in heard) == sorted(report.accepted)


def test_bad_posts_are_refused_with_a_sentence_and_write_nothing(town: Town) -> None:
    space, (ada,) = crew_of(town, "Ada")
    congregation = ada.create_space("Town hall", kind="congregation")
    before = ada.replica.record_count()
    with pytest.raises(InputError, match="energy is not a whole number from 1 to 5"):
        ada.checkin(space, text="hi", energy=7)
    with pytest.raises(InputError, match="'courage' is not a compass scale"):
        ada.checkin(space, text="hi", energy=3, compass={"courage": 3})
    with pytest.raises(InputError, match="compass belonging"):
        ada.checkin(space, text="hi", energy=3, compass={"belonging": 0})
    with pytest.raises(InputError, match="text is empty"):
        ada.checkin(space, text="   ", energy=3)
    with pytest.raises(InputError, match="longer than 2000"):
        ada.checkin(space, text="x" * 2001, energy=3)
    with pytest.raises(SpaceError, match=r"is a congregation: a check-in belongs in a crew or "
                       r"dyad; post it in one of yours \(meshcrew spaces lists them\)\.$"):
        ada.checkin(congregation, text="hi", energy=3)
    with pytest.raises(InputError, match="not a kind of post"):
        ada.make_post("poll", title="x")
    with pytest.raises(InputError, match="not a kind of space"):
        ada.create_space("X", kind="tribe")
    with pytest.raises(InputError, match="name is empty"):
        ada.create_space("  ")
    assert ada.replica.record_count() == before


def test_congregation_board_asks_offers_gatherings_and_a_crew_inside(town: Town) -> None:
    ada, bob = town.person("Ada"), town.person("Bob")
    hall = ada.create_space("Town hall", kind="congregation")
    admit(ada, bob, hall)
    ask = bob.post(hall, bob.make_post(PostKind.ASK, title="Need a venue", text="for 20"))
    ada.post(hall, ada.make_post("offer", title="Spare room", text=""))
    ada.post(hall, ada.make_post("gathering", title="Spring meet", when_ms=ada.now() + WEEK,
                                 where="the library"))
    ada.post(hall, ada.make_post("followup", to=ask, text="try the library"))
    crew = ada.create_space("Moon", parent=hall)
    ada.post(hall, ada.make_post("crew_card", crew=crew, name="Moon", open=True,
                                 note="two seats"))
    bob.post(hall, bob.make_post("looking_for_crew", looking=True, note="Tuesdays"))
    sync(hall, ada, bob)

    board = bob.board(hall)
    assert [(i.post.kind, i.title, len(i.followups), i.closed) for i in board.items] == [
        ("ask", "Need a venue", 1, False), ("offer", "Spare room", 0, False)]
    assert [g.fields["title"] for g in board.gatherings] == ["Spring meet"]
    assert [c.fields["crew"] for c in board.crew_cards] == [crew]
    assert [p.author_name for p in board.looking_for_crew] == ["Bob"]
    bob.post(hall, bob.make_post("followup", to=ask, text="found one", closes=True))
    assert bob.board(hall).items[0].closed
    assert ada.summary(crew).parent == hall
    gathering = ada.make_post("gathering", title="Picnic", when_ms=ada.now() + WEEK, where="")
    with pytest.raises(SpaceError, match=r"^Moon is a crew: a gathering is for a whole "
                       r"congregation; post it in Town hall, the congregation Moon belongs to\.$"):
        ada.post(crew, gathering)
    alone = ada.create_space("Sun")
    with pytest.raises(SpaceError, match=r"^Sun is a crew: a gathering is for a whole "
                       r"congregation; post it in a congregation of yours \(meshcrew spaces"):
        ada.post(alone, gathering)
    with pytest.raises(SpaceError, match="only belong to a congregation"):
        ada.create_space("Sub", parent=crew)
    with pytest.raises(SpaceError, match="cannot belong to another space"):
        ada.create_space("Hall 2", kind="congregation", parent=hall)


def test_without_history_a_joiner_reads_only_what_comes_after(town: Town) -> None:
    ada, bob = town.person("Ada"), town.person("Bob")
    space = ada.create_space("Moon", history=False)
    ada.checkin(space, text="before Bob", energy=3)
    admit(ada, bob, space)
    ada.checkin(space, text="after Bob", energy=3)
    sync(space, ada, bob)
    assert [e.fields.get("text") for e in bob.log(space) if e.kind == "checkin"] == ["after Bob"]
    kinds = [e.kind for e in bob.log(space, events=True)]
    assert kinds.count("locked") == 2  # Ada's profile and her first check-in
    assert bob.summary(space).name == "Moon"  # settings are readable without history


def test_an_invite_for_two_admits_two_and_then_no_one(town: Town) -> None:
    ada, bob, cy, dee = (town.person(n) for n in ("Ada", "Bob", "Cy", "Dee"))
    space = ada.create_space("Moon")
    code = ada.invite(space, uses=2, expires_ms=ada.now() + WEEK)
    for joiner in (bob, cy):
        send(ada, joiner, space)
        joiner.join(code)
        send(joiner, ada, space)
    sync(space, ada, bob, cy)
    assert ada.summary(space).members == 3
    assert not ada.view(space).state.needs_rekey
    send(ada, dee, space)
    with pytest.raises(SpaceError, match="already been used"):
        dee.join(code)
    assert dee.summary(space).my_status == "outsider"
