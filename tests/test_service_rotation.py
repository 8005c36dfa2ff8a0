"""Who rotates the keys for a joiner (``SpaceView.should_rotate``), on spaces folded in memory."""

from __future__ import annotations

from meshcrew.identity import Identity
from meshcrew.records import Head, Record
from meshcrew.service.views import SpaceView
from spaces_world import person, pk
from test_spaces_admission import rejoined_behind_a_stale_rotation

ADA, BO, CY = (person(n) for n in ("ada", "bo", "cy"))


def view_of(records: list[Record], space: bytes, me: Identity) -> SpaceView:
    frontier: dict[bytes, Head] = {}
    for record in records:
        head = frontier.get(record.author)
        if head is None or record.seq > head.seq:
            frontier[record.author] = Head(record.seq, record.id)
    return SpaceView.folded(space, records, frontier, me)


def test_the_inviter_rotates_for_a_rejoiner_a_stale_rotation_let_no_one_in() -> None:
    """Ada's rotation, made while Bo was a member and signed after the invite he rejoins with
    expired, is sealed to him but lets no one in (fold rule 7): he waits. Ada, who invited
    him, rotates at once, as for any joiner, rather than leave him to the next who writes."""
    w, space, rejoin, stale = rejoined_behind_a_stale_rotation()
    ada = view_of(w.of(space), space, Identity(ADA, "Ada"))
    assert ada.state.pending == {pk(BO): rejoin.id}
    assert pk(BO) in ada.state.epochs[stale.id].shares
    assert ada.should_rotate()
    cy = view_of(w.of(space), space, Identity(CY, "Cy"))
    assert not cy.should_rotate()  # the inviter is a member: only she answers
