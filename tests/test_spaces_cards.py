"""Crew cards are accepted only from members of the crew they describe
(``meshcrew.spaces.cards``): the card key in the crew's genesis, its signature over the card,
the congregation and the author; every way a card can fail is refused with ``card_unproven``."""

from __future__ import annotations

import random
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hypothesis_profiles import examples
from meshcrew import spaces
from meshcrew.reasons import Reason
from meshcrew.records import NEW_SPACE, sign_record
from meshcrew.spaces import CrewCard, SpaceKind, views
from meshcrew.spaces.bodies import GenesisBody, draft, parse_body
from meshcrew.spaces.cards import card_problem, card_public_key, prove_card, unproven_cards
from spaces_world import World, person, pk

ADA, BO, CY, DAN = (person(n) for n in ("ada", "bo", "cy", "dan"))


def hall_with_a_crew() -> tuple[World, bytes, bytes]:
    """A congregation of four; Bo's crew Moon (Cy in it) belongs to it; Dan is in no crew."""
    w = World(3)
    hall = w.found(ADA, SpaceKind.CONGREGATION, "Hall")
    for friend in (BO, CY, DAN):
        w.admit(ADA, friend, hall)
    moon = w.found(BO, SpaceKind.CREW, "Moon", parent=hall)
    w.admit(BO, CY, moon)
    return w, hall, moon


def test_the_genesis_of_a_crew_holds_its_card_key_and_a_congregations_none() -> None:
    w, hall, moon = hall_with_a_crew()
    crew_genesis = parse_body("genesis", w.state(moon).records[moon].body)
    hall_genesis = parse_body("genesis", w.state(hall).records[hall].body)
    assert isinstance(crew_genesis, GenesisBody)
    assert isinstance(hall_genesis, GenesisBody)
    assert hall_genesis.card_key is None
    meta_key = spaces.unlock(w.state(moon), CY).meta_key  # a joiner holds it too
    assert meta_key is not None
    assert crew_genesis.card_key == card_public_key(meta_key)


def test_cards_from_the_crews_members_count_and_every_forgery_is_refused() -> None:
    w, hall, moon = hall_with_a_crew()
    sun = w.found(DAN, SpaceKind.CREW, "Sun", parent=hall)
    other_hall = w.found(DAN, SpaceKind.CONGREGATION, "Elsewhere")
    by_bo = w.card(BO, hall, moon, "Moon", open=True, note="Mondays")
    by_cy = w.card(CY, hall, moon, "Moon", open=False)
    moon_genesis = w.state(moon).records[moon].raw
    meta_key = spaces.unlock(w.state(moon), BO).meta_key
    assert meta_key is not None
    honest = prove_card(CrewCard(moon, "Moon", True), congregation=hall, author=pk(BO),
                        meta_key=meta_key, genesis=moon_genesis)
    dan_meta = spaces.unlock(w.state(sun), DAN).meta_key
    assert dan_meta is not None
    # A crew made before card keys: its genesis has none.
    old_style = w.state(sun).records[sun]
    body = parse_body("genesis", old_style.body)
    assert isinstance(body, GenesisBody)
    keyless = sign_record(DAN, kind="genesis", space=NEW_SPACE, seq=1, prev=None,
                          ts=old_style.ts, body=draft(replace(body, card_key=None)).body)
    # A congregation whose founder put a card key in its genesis is still not a crew.
    hall_body = parse_body("genesis", w.state(other_hall).records[other_hall].body)
    assert isinstance(hall_body, GenesisBody)
    keyed_hall = sign_record(DAN, kind="genesis", space=NEW_SPACE, seq=1, prev=None,
                             ts=old_style.ts, body=draft(replace(
                                 hall_body, card_key=card_public_key(dan_meta))).body)
    # Why each fails: the problem card_problem names.
    problems = {
        "a congregation with a card key": "not a crew or dyad",
        "no proof": "no proof",
        "Dan signs with his own crew's key": "signature",
        "Dan's crew's genesis for Moon": "not the crew's",
        "Bo's card re-posted by Dan": "signature",
        "Bo's card made for another congregation": "signature",
        "a field changed after signing": "signature",
        "the congregation as the crew": "not a crew or dyad",
        "a crew without a card key": "no card key",
        "a damaged genesis": "refused (bad_signature)",
    }
    forgeries = {
        "a congregation with a card key": prove_card(
            CrewCard(keyed_hall.id, "Elsewhere", True), congregation=hall, author=pk(DAN),
            meta_key=dan_meta, genesis=keyed_hall.raw),
        "no proof": CrewCard(moon, "Moon", True),
        "Dan signs with his own crew's key": prove_card(
            CrewCard(moon, "Moon", True), congregation=hall, author=pk(DAN),
            meta_key=dan_meta, genesis=moon_genesis),
        "Dan's crew's genesis for Moon": prove_card(
            CrewCard(moon, "Moon", True), congregation=hall, author=pk(DAN),
            meta_key=dan_meta, genesis=w.state(sun).records[sun].raw),
        "Bo's card re-posted by Dan": honest,
        "Bo's card made for another congregation": prove_card(
            CrewCard(moon, "Moon", True), congregation=other_hall, author=pk(DAN),
            meta_key=meta_key, genesis=moon_genesis),
        "a field changed after signing": replace(
            prove_card(CrewCard(moon, "Moon", True), congregation=hall, author=pk(DAN),
                       meta_key=meta_key, genesis=moon_genesis), open=False),
        "the congregation as the crew": prove_card(
            CrewCard(hall, "Hall", True), congregation=hall, author=pk(DAN),
            meta_key=meta_key, genesis=w.state(hall).records[hall].raw),
        "a crew without a card key": prove_card(
            CrewCard(keyless.id, "Sun", True), congregation=hall, author=pk(DAN),
            meta_key=dan_meta, genesis=keyless.raw),
        "a damaged genesis": prove_card(
            CrewCard(moon, "Moon", True), congregation=hall, author=pk(DAN),
            meta_key=meta_key, genesis=moon_genesis[:-1] + b"\x00"),
    }
    posted = {why: w.post(DAN, hall, card) for why, card in forgeries.items()}
    for reader in (ADA, BO, CY, DAN):
        opened = w.opened(reader, hall)
        refused = unproven_cards(opened)
        for why, record in posted.items():
            assert refused[record.id].reason is Reason.CARD_UNPROVEN, why
            assert problems[why] in refused[record.id].detail, (why, refused[record.id])
        assert by_bo.id not in refused
        assert by_cy.id not in refused
        assert [c.record_id for c in views.crew_cards(opened)] == [by_cy.id]  # the latest
    assert card_problem(hall, pk(BO), honest) is None  # the same card, by its own author


def test_a_crew_member_who_left_can_still_sign_a_card() -> None:
    """The stated limit: the meta key never changes, so a former member still holds it. The
    board shows the latest card, so the crew answers with a newer one."""
    w, hall, moon = hall_with_a_crew()
    w.leave(CY, moon)
    stale = w.card(CY, hall, moon, "Moon", open=True, note="still me")
    assert stale.id not in unproven_cards(w.opened(ADA, hall))
    newer = w.card(BO, hall, moon, "Moon", open=False, note="Cy left")
    assert [c.record_id for c in views.crew_cards(w.opened(ADA, hall))] == [newer.id]



@settings(max_examples=examples(25), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cards=st.lists(st.tuples(st.sampled_from(["bo", "cy", "dan", "ada"]), st.booleans(),
                                st.booleans()), min_size=1, max_size=8),
       seed=st.integers(0, 2**32 - 1))
def test_any_order_and_duplicates_give_the_same_cards_and_refusals(
        cards: list[tuple[str, bool, bool]], seed: int) -> None:
    """Cards by the crew's members and by others (a member's proof re-posted, or none),
    delivered in any order and some twice: every reader refuses exactly the cards not proven
    by their author, and shows the same latest card."""
    w, hall, moon = hall_with_a_crew()
    people = {"ada": ADA, "bo": BO, "cy": CY, "dan": DAN}
    meta_key = spaces.unlock(w.state(moon), BO).meta_key
    assert meta_key is not None
    genesis = w.state(moon).records[moon].raw
    unproven = set()
    for name, is_open, proven in cards:
        key = people[name]
        if proven and name in ("bo", "cy"):
            w.card(key, hall, moon, "Moon", open=is_open)
        elif proven:  # Bo's proof, posted by someone else
            copied = prove_card(CrewCard(moon, "Moon", is_open), congregation=hall,
                                author=pk(BO), meta_key=meta_key, genesis=genesis)
            unproven.add(w.post(key, hall, copied).id)
        else:
            unproven.add(w.post(key, hall, CrewCard(moon, "Moon", is_open)).id)
    records = w.of(hall)
    shuffler = random.Random(seed)
    shuffled = records + shuffler.sample(records, k=len(records) // 3)
    shuffler.shuffle(shuffled)
    shown = None
    for reader in (ADA, BO, DAN):
        for delivered in (records, shuffled):
            opened = w.opened(reader, hall, delivered)
            refused = unproven_cards(opened)
            assert set(refused) == unproven
            assert all(s.reason is Reason.CARD_UNPROVEN for s in refused.values())
            latest = [c.record_id for c in views.crew_cards(opened)]
            assert shown is None or latest == shown
            shown = latest
