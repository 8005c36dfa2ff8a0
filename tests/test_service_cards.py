"""Crew cards through the member service: a crew member's card is proven as it is posted; a
congregation member outside the crew is refused before anything is signed; a card forged by a
modified client is refused alike by every member (``card_unproven``) and not shown."""

from __future__ import annotations

import pytest

from meshcrew.errors import SpaceError
from meshcrew.reasons import Reason
from meshcrew.spaces import CrewCard
from test_service_support import Town, admit, sync


def test_only_the_crews_members_post_its_card(town: Town) -> None:
    ada, bob, cy = town.person("Ada"), town.person("Bob"), town.person("Cy")
    hall = ada.create_space("Town hall", kind="congregation")
    admit(ada, bob, hall)
    admit(ada, cy, hall)
    moon = bob.create_space("Moon", parent=hall)
    admit(bob, cy, moon)
    sync(hall, ada, bob, cy)
    sync(moon, bob, cy)
    by_cy = cy.post(hall, cy.make_post("crew_card", crew=moon, name="Moon", open=True,
                                       note="Cy says: come"))
    held = len(ada.export(hall))
    with pytest.raises(SpaceError, match="Only a member of the crew"):
        ada.post(hall, ada.make_post("crew_card", crew=moon, name="Moon", open=False))
    assert len(ada.export(hall)) == held
    # A modified client signs a card with a made-up proof: every member refuses it.
    forged = ada.post(hall, CrewCard(moon, "Moon", False, "closed!", genesis=b"\x01" * 40,
                                     proof=b"\x02" * 64))
    sync(hall, ada, bob, cy)
    for member in (ada, bob, cy):
        cards = member.board(hall).crew_cards
        assert [(c.id, c.fields["open"]) for c in cards] == [(by_cy, True)]
        assert set(cards[0].fields) == {"crew", "name", "open", "note"}  # no proof in entries
        refused = {r.record_id: r for r in member.rejected(hall)}
        assert refused[forged].reason == Reason.CARD_UNPROVEN.value
        assert by_cy not in refused
