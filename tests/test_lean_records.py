"""A space's records loaded lean for the fold a view keeps (issue 15: the soak's memory).

``Replica.space_records(..., lean=True)`` gives posts without their encoding and signature and
one object for each field the records share; the fold and every read made from it must be
exactly what the full records give.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from meshcrew import spaces
from meshcrew.service import MemberReads, reading
from meshcrew.service.views import SpaceView
from meshcrew.spaces import RecordKind
from test_service_snapshots import busy_crew, every_read
from test_service_support import Town, send


def test_the_fold_of_lean_records_is_the_fold_of_the_full_ones(town: Town) -> None:
    space, (ada, bo, _cy) = busy_crew(town)
    for n in range(5):
        bo.checkin(space, text=f"more {n}", energy=3)
    full = ada.replica.space_records(space)
    lean = ada.replica.space_records(space, lean=True)
    assert [r.id for r in lean] == [r.id for r in full]
    state = spaces.fold(space, lean)
    folded = spaces.fold(space, full)
    assert replace(state, records={}) == replace(folded, records={})  # records: below
    assert state.records.keys() == folded.records.keys()
    assert state.bodies == folded.bodies
    for record, whole in zip(lean, full, strict=True):
        assert (record.version, record.kind, record.space, record.author, record.seq,
                record.prev, record.ts, record.body) == (
                whole.version, whole.kind, whole.space, whole.author, whole.seq, whole.prev,
                whole.ts, whole.body)
        if record.kind == RecordKind.SEALED:
            assert (record.raw, record.sig) == (b"", b"")
        else:
            assert (record.raw, record.sig) == (whole.raw, whole.sig)
    posts = [r for r in lean if r.kind == RecordKind.SEALED]
    assert all(r.space is posts[0].space and r.kind is posts[0].kind for r in posts)
    by_id = {r.id: r for r in lean}
    followed = [r for r in lean if r.prev in by_id]
    assert followed
    assert all(r.prev is by_id[r.prev].id for r in followed if r.prev is not None)


def test_a_view_folded_from_lean_records_reads_as_one_from_the_full_ones(town: Town) -> None:
    space, (ada, _bo, _cy) = busy_crew(town)
    full = SpaceView.folded(space, ada.replica.space_records(space),
                            ada.replica.frontier(space), ada.identity)
    reader = MemberReads(ada.replica, ada.identity, clock=ada.now, snapshots=False)
    lean = reader.view(space).state  # its own fold
    assert replace(lean, records={}) == replace(full.state, records={})
    assert all(r.raw == b"" for r in lean.records.values() if r.kind == RecordKind.SEALED)
    given = MemberReads(ada.replica, ada.identity, clock=ada.now, snapshots=False)
    given.views.views[space] = full
    given.views.expired[space] = 0
    assert given.view(space) is full
    assert every_read(reader, space) == every_read(given, space)


def test_a_view_after_a_catch_up_is_folded_lean_not_extended(
        town: Town, monkeypatch: pytest.MonkeyPatch) -> None:
    """A node's view from before a catch-up by sync is not extended by every record it
    brought (an extension keeps them whole): the space is folded again, lean."""
    monkeypatch.setattr(reading, "EXTEND_UP_TO", 3)
    space, (ada, bo, _cy) = busy_crew(town)
    ada.view(space)
    for n in range(2):
        bo.checkin(space, text=f"few {n}", energy=3)
    send(bo, ada, space)
    few = ada.view(space).state
    assert any(r.raw for r in few.records.values() if r.kind == RecordKind.SEALED), \
        "two arrivals extend the view: their records come whole"
    for n in range(4):
        bo.checkin(space, text=f"many {n}", energy=3)
    send(bo, ada, space)
    many = ada.view(space).state
    assert all(r.raw == b"" for r in many.records.values() if r.kind == RecordKind.SEALED)
    assert replace(many, records={}) == replace(
        spaces.fold(space, ada.replica.space_records(space)), records={})
