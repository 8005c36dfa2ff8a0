"""Derived views: members, the rhythm cycle, energy series, asks, threads, congregation life."""

from __future__ import annotations

from meshcrew import spaces
from meshcrew.identity import fingerprint
from meshcrew.spaces import (
    Ask,
    CheckIn,
    CrewCard,
    Followup,
    Gathering,
    LookingForCrew,
    MemberStatus,
    Offer,
    Profile,
    Reaction,
    Reply,
    Rhythm,
    SpaceKind,
    views,
)
from spaces_world import DAY, HOUR, T0, WEEK, World, person, pk

ADA, BO, CY, DAN = (person(n) for n in ("ada", "bo", "cy", "dan"))


def crew_world() -> tuple[World, bytes]:
    w = World()
    space = w.found(ADA, rhythm=Rhythm(spaces.Period.WEEKLY, weekday=0))
    for friend in (BO, CY, DAN):
        w.admit(ADA, friend, space)
    return w, space


def test_members_show_their_latest_profile_and_status() -> None:
    w, space = crew_world()
    w.post(BO, space, Profile("Bo", "first"))
    w.post(BO, space, Profile("Bo B.", "second"))
    w.post(CY, space, Profile("Cy"))
    w.leave(DAN, space)
    rows = views.member_views(w.opened(ADA, space))
    active = sorted(["Bo B.", "Cy", fingerprint(pk(ADA))], key=str.casefold)
    assert [(r.name, r.status) for r in rows] == [
        *((name, MemberStatus.ACTIVE) for name in active),
        (fingerprint(pk(DAN)), MemberStatus.LEFT)]
    by_key = {r.key: r for r in rows}
    assert by_key[pk(BO)].bio == "second"
    assert by_key[pk(BO)].invited_by == pk(ADA)
    assert not by_key[pk(BO)].is_founder
    assert by_key[pk(ADA)].is_founder
    assert views.display_name(w.opened(CY, space), pk(BO)) == "Bo B."


def test_the_cycle_shows_who_checked_in_and_who_has_not() -> None:
    w, space = crew_world()
    w.now = T0 + WEEK  # the Monday a week after T0
    w.post(BO, space, CheckIn("last week", 2), ts=T0 + WEEK - HOUR)
    w.post(BO, space, CheckIn("monday", 3), ts=T0 + WEEK + HOUR)
    latest = w.post(BO, space, CheckIn("tuesday", 4), ts=T0 + WEEK + DAY)
    cy = w.post(CY, space, CheckIn("here", 5), ts=T0 + WEEK + 2 * DAY)
    w.now = T0 + WEEK + 3 * DAY
    opened = w.opened(ADA, space)
    cycle = views.checkin_cycle(opened, Rhythm(), w.now)
    assert (cycle.cycle.start_ms, cycle.cycle.end_ms) == (T0 + WEEK, T0 + 2 * WEEK)
    assert {k: p.record_id for k, p in cycle.checkins.items()} == {pk(BO): latest.id,
                                                                    pk(CY): cy.id}
    assert set(cycle.missing) == {pk(ADA), pk(DAN)}
    # next week everyone is missing again
    assert set(views.checkin_cycle(opened, Rhythm(), T0 + 2 * WEEK).missing) == opened.state.active


def test_energy_and_compass_series() -> None:
    w, space = crew_world()
    for day, energy in enumerate((2, 4, 3)):
        w.post(BO, space, CheckIn("x", energy, {"belonging": energy, "time": 1}),
               ts=T0 + day * DAY + HOUR)
    w.post(CY, space, CheckIn("x", 5), ts=T0 + HOUR)
    opened = w.opened(ADA, space)
    series = views.energy_series(opened)
    assert series[pk(BO)] == [(T0 + HOUR, 2), (T0 + DAY + HOUR, 4), (T0 + 2 * DAY + HOUR, 3)]
    assert series[pk(CY)] == [(T0 + HOUR, 5)]
    compass = views.compass_series(opened, pk(BO))
    assert [s for _, s in compass["belonging"]] == [2, 4, 3]
    assert [s for _, s in compass["time"]] == [1, 1, 1]


def test_open_asks_close_only_by_their_author() -> None:
    w, space = crew_world()
    checkin = w.post(BO, space, CheckIn("tired", 2, ask="someone to cook thursday?"))
    ask = w.post(CY, space, Ask("a lift to the station", "friday 8am"))
    offer = w.post(DAN, space, Offer("spare tent"))
    w.post(ADA, space, Followup(checkin.id, "I can!", closes=True))  # not bo: still open
    w.post(CY, space, Followup(ask.id, "sorted, thank you", closes=True))
    opened = w.opened(ADA, space)
    open_ids = [item.post.record_id for item in views.open_asks(opened)]
    assert open_ids == [checkin.id]
    board = {item.post.record_id: item for item in views.board(opened)}
    assert board[ask.id].closed
    assert board[checkin.id].title == "someone to cook thursday?"
    assert len(board[checkin.id].followups) == 1
    assert offer.id in board


def test_threads_collect_replies_and_reactions() -> None:
    w, space = crew_world()
    checkin = w.post(BO, space, CheckIn("big news", 5))
    r1 = w.post(CY, space, Reply(checkin.id, "yay"))
    r2 = w.post(ADA, space, Reaction(checkin.id, "heard"))
    w.post(DAN, space, Reply(r1.id, "nested, not direct"))
    thread = views.thread(w.opened(DAN, space), checkin.id)
    assert [p.record_id for p in thread.replies] == [r1.id]
    assert [p.record_id for p in thread.reactions] == [r2.id]


def test_congregation_views() -> None:
    w = World()
    hall = w.found(ADA, SpaceKind.CONGREGATION, "Hall")
    for friend in (BO, CY, DAN):
        w.admit(ADA, friend, hall)
    crew_id = w.found(BO, SpaceKind.CREW, "Moon", parent=hall)
    w.admit(BO, CY, crew_id)
    sun = w.found(DAN, SpaceKind.CREW, "Sun", parent=hall)
    w.card(BO, hall, crew_id, "Moon", open=True, ts=w.now + 10)
    newer = w.card(CY, hall, crew_id, "Moon", open=False, ts=w.now + 20)
    other = w.card(DAN, hall, sun, "Sun", open=True, ts=w.now + 30)
    # Not from a member of the crew: not shown (see test_spaces_cards for every way to fail).
    w.post(DAN, hall, CrewCard(crew_id, "Moon", open=True, note="come!"), ts=w.now + 40)
    soon = w.post(ADA, hall, Gathering("Soon", T0 + WEEK, "Town hall"))
    later = w.post(ADA, hall, Gathering("Later", T0 + 4 * WEEK, "https://meet.example"))
    w.post(ADA, hall, Gathering("Past", T0 - WEEK, "Park"))
    w.post(CY, hall, LookingForCrew(True, "food"))
    w.post(DAN, hall, LookingForCrew(True))
    w.post(DAN, hall, LookingForCrew(False))
    opened = w.opened(DAN, hall)
    assert [p.record_id for p in views.crew_cards(opened)] == [other.id, newer.id]
    assert [p.record_id for p in views.gatherings(opened, T0)] == [soon.id, later.id]
    assert len(views.gatherings(opened, T0, past=True)) == 3
    assert [p.author for p in views.looking_for_crew(opened)] == [pk(CY)]
    meta = spaces.open_meta(w.state(crew_id), spaces.unlock(w.state(crew_id), BO))
    assert meta is not None
    assert meta.parent == hall
