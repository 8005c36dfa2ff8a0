"""A start from the view snapshots in the home folder reads exactly what a fold reads.

A snapshot may be used only when it was made for exactly the records the replica holds, by
this member, by this code; anything else (corrupt, stale, another member's, another version's)
is folded again. Every test compares what a reader shows with a reader that has no snapshots.
"""

from __future__ import annotations

import stat
from typing import Any

import pytest

from meshcrew.service import Member, MemberReads
from meshcrew.service import snapshots as service_snapshots
from meshcrew.service import views as service_views
from meshcrew.service.snapshots import SnapshotView, ViewSnapshots
from meshcrew.spaces import Period, Rhythm, SpaceState, open_posts
from meshcrew.tui.service_backend import LocalBackend
from test_service_support import DAY, WEEK, Town, admit, crew_of, sync


def started(member: Member, now: int, *, snapshots: bool = True) -> MemberReads:
    """A new reader of the member's replica at a fixed time, prepared as the app starts (it
    lists the spaces before the fold behind the snapshots)."""
    reader = MemberReads(member.replica, member.identity, clock=lambda: now,
                         snapshots=snapshots)
    reader.prepare(complete=False)
    return reader


def first_screens(reader: MemberReads, space: bytes) -> dict[str, Any]:
    """What the home screen and the space screen read when they first show a space."""
    return {
        "spaces": reader.spaces(),
        "summary": reader.summary(space),
        "log": reader.log(space),
        "members": reader.members(space),
        "cycle": reader.cycle(space),
        "energy": reader.energy(space),
        "removals": reader.removals(space),
        "proposals": reader.proposals(space),
    }


def every_read(reader: MemberReads, space: bytes) -> dict[str, Any]:
    """The first screens and the reads that need the fold (events, threads, board, refusals)."""
    checkins = [e for e in reader.log(space) if e.kind == "checkin"]
    return {**first_screens(reader, space),
            "events": reader.log(space, events=True), "board": reader.board(space),
            "rejected": reader.rejected(space), "thread": reader.thread(checkins[0].id),
            "invites": reader.invites(space), "settings": reader.settings(space)}


def busy_crew(town: Town) -> tuple[bytes, list[Member]]:
    """Ada, Bo and Cy with check-ins, a reply, a proposal and a removal proposal."""
    space, people = crew_of(town, "Ada", "Bo", "Cy")
    ada, bo, cy = people
    first = bo.checkin(space, text="Arriving rested", energy=4)
    sync(space, *people)
    ada.reply(first, text="glad you are here")
    cy.checkin(space, text="tired", energy=2)
    ada.propose(space, title="Meet on Thursdays")
    bo.propose_removal(space, cy.me)
    sync(space, *people)
    return space, people


def test_a_start_from_a_snapshot_reads_what_the_fold_reads_without_folding(
        town: Town, folds: list[bytes]) -> None:
    space, (ada, _bo, _cy) = busy_crew(town)
    now = town.clock.now
    folds.clear()
    started(ada, now)  # folds, and writes the snapshot
    assert folds == [space]
    folds.clear()
    reader = started(ada, now)
    assert isinstance(reader.view(space), SnapshotView)
    shown = first_screens(reader, space)
    assert folds == [], "the first screens need no fold"
    assert shown == first_screens(started(ada, now, snapshots=False), space)
    folds.clear()
    assert every_read(reader, space) == every_read(started(ada, now, snapshots=False), space)
    assert folds.count(space) == 2, "the snapshot's reader folded once for the other reads"


def test_a_later_cycle_is_worked_out_from_the_kept_check_ins(
        town: Town, folds: list[bytes]) -> None:
    space, (ada, bo, _cy) = busy_crew(town)
    ada.checkin(space, text="this week", energy=3)
    sync(space, ada, bo)
    now = town.clock.now
    town.clock.advance(WEEK)
    bo.checkin(space, text="next week", energy=5)
    sync(space, ada, bo)
    started(ada, now)  # the snapshot is made as if a week before (a clock that runs late)
    folds.clear()
    at_next_week = started(ada, now + WEEK)  # the same snapshot, read a week later
    assert isinstance(at_next_week.view(space), SnapshotView)
    cycle, summary = at_next_week.cycle(space), at_next_week.summary(space)
    assert folds == []
    assert [e.fields["text"] for e in cycle.checkins] == ["next week"]
    assert summary.needs_checkin, "Ada checked in last week, not this week"
    assert not started(ada, now).summary(space).needs_checkin
    folded = started(ada, now + WEEK, snapshots=False)
    assert (cycle, summary) == (folded.cycle(space), folded.summary(space))


def test_a_corrupt_snapshot_is_folded_again_and_rewritten(
        town: Town, folds: list[bytes]) -> None:
    space, (ada, _bo, _cy) = busy_crew(town)
    now = town.clock.now
    started(ada, now)
    path = ViewSnapshots(ada.replica.home, ada.identity).path(space)
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    path.write_bytes(bytes(blob))
    folds.clear()
    reader = started(ada, now)
    assert not isinstance(reader.view(space), SnapshotView)
    assert folds == [space]
    assert every_read(reader, space) == every_read(started(ada, now, snapshots=False), space)
    assert path.read_bytes() != bytes(blob), "the snapshot was written again"
    assert isinstance(started(ada, now).view(space), SnapshotView)


def test_a_stale_snapshot_is_folded_again_and_shows_what_came_since(
        town: Town, folds: list[bytes]) -> None:
    space, (ada, bo, _cy) = busy_crew(town)
    started(ada, town.clock.now)
    bo.checkin(space, text="one more", energy=3)
    sync(space, ada, bo)
    now = town.clock.now
    folds.clear()
    reader = started(ada, now)
    assert not isinstance(reader.view(space), SnapshotView)
    assert folds == [space]
    assert reader.log(space)[-1].fields["text"] == "one more"
    assert every_read(reader, space) == every_read(started(ada, now, snapshots=False), space)
    assert isinstance(started(ada, now).view(space), SnapshotView), "and written again"


def test_a_snapshot_made_for_other_records_another_member_or_other_code_is_not_used(
        town: Town, monkeypatch: pytest.MonkeyPatch) -> None:
    space, (ada, bo, _cy) = busy_crew(town)
    now = town.clock.now
    started(ada, now)
    started(bo, now)
    mine = ViewSnapshots(ada.replica.home, ada.identity)
    frontier, expired = ada.replica.frontier(space), ada.replica.expired_count(space)
    assert mine.load(space, frontier, expired) is not None
    assert mine.load(space, frontier, expired + 1) is None, "a post expired since"
    fewer = dict(list(frontier.items())[1:])
    assert mine.load(space, fewer, expired) is None
    with monkeypatch.context() as patch:
        patch.setattr(service_snapshots, "code_version", lambda: b"another version")
        assert mine.load(space, frontier, expired) is None
    theirs = ViewSnapshots(bo.replica.home, bo.identity).path(space)
    mine.path(space).write_bytes(theirs.read_bytes())
    assert mine.load(space, frontier, expired) is None, "Bo's snapshot does not open for Ada"
    assert not isinstance(started(ada, now).view(space), SnapshotView)


def test_records_arriving_after_a_start_from_a_snapshot_read_as_a_fold(town: Town) -> None:
    space, (ada, bo, cy) = busy_crew(town)
    started(ada, town.clock.now)
    reader = started(ada, town.clock.now)
    held = reader.view(space)
    assert isinstance(held, SnapshotView)
    first_screens(reader, space)
    as_folded = started(ada, town.clock.now, snapshots=False).view(space)
    bo.checkin(space, text="arriving later", energy=2)
    cy.checkin(space, text="me too", energy=3)
    sync(space, ada, bo, cy)
    now = town.clock.now
    reader = MemberReads(ada.replica, ada.identity, clock=lambda: now, views=reader.views)
    assert every_read(reader, space) == every_read(started(ada, now, snapshots=False), space)
    assert reader.log(space)[-1].fields["text"] == "me too"
    # The view from the snapshot folded after the arrivals: the records of its own frontier.
    assert held.state.records.keys() == as_folded.state.records.keys()
    assert [p.record_id for p in held.opened.posts] == [
        p.record_id for p in as_folded.opened.posts]


def test_complete_folds_ahead_and_reads_then_need_no_fold(
        town: Town, folds: list[bytes]) -> None:
    space, (ada, _bo, _cy) = busy_crew(town)
    now = town.clock.now
    started(ada, now)
    reader = started(ada, now)
    view = reader.view(space)
    assert isinstance(view, SnapshotView)
    complete_before = view.complete
    folds.clear()
    reader.complete()
    assert not complete_before
    assert view.complete
    assert folds == [space]
    every_read(reader, space)
    assert folds == [space]


def test_a_post_after_the_fold_behind_a_snapshot_decrypts_only_itself(
        town: Town, monkeypatch: pytest.MonkeyPatch) -> None:
    space, (ada, bo, _cy) = busy_crew(town)
    started(ada, town.clock.now)
    reader = started(ada, town.clock.now)
    reader.complete()
    opened_all: list[bytes] = []

    def counting(state: SpaceState, keyring: Any) -> Any:
        opened_all.append(b"every post")
        return open_posts(state, keyring)

    monkeypatch.setattr(service_views.__name__ + ".open_posts", counting)
    bo.checkin(space, text="just one more", energy=3)
    sync(space, ada, bo)
    assert reader.log(space)[-1].fields["text"] == "just one more"
    assert opened_all == [], "the new post was opened alone (open_more), not every post"


def test_a_node_prepares_with_the_fold_done(town: Town, folds: list[bytes]) -> None:
    space, (ada, _bo, _cy) = busy_crew(town)
    started(ada, town.clock.now)
    reader = MemberReads(ada.replica, ada.identity, clock=ada.now)
    folds.clear()
    reader.prepare()  # as the node does before it serves anyone
    view = reader.view(space)
    assert isinstance(view, SnapshotView)
    assert view.complete
    assert folds == [space]


def test_a_snapshot_is_for_its_member_only(town: Town) -> None:
    space, (ada, _bo, _cy) = busy_crew(town)
    started(ada, town.clock.now)
    snapshots = ViewSnapshots(ada.replica.home, ada.identity)
    path = snapshots.path(space)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(snapshots.folder.stat().st_mode) == 0o700
    blob = path.read_bytes()
    assert b"Arriving rested" not in blob
    assert b"glad you are here" not in blob
    assert [p.name for p in snapshots.folder.iterdir()] == [path.name], "no temporary left"


def test_an_expiry_deletes_the_snapshot_holding_the_expired_posts(town: Town) -> None:
    ada, bob = town.person("Ada"), town.person("Bob")
    space = ada.create_space("Moon", rhythm=Rhythm(Period.DAILY), keep_checkins=1)
    admit(ada, bob, space)
    marker = ada.checkin(space, text="MARKER-snapshot-2c9e", energy=3)
    sync(space, ada, bob)
    started(ada, town.clock.now)
    path = ViewSnapshots(ada.replica.home, ada.identity).path(space)
    assert path.exists()
    town.clock.advance(2 * DAY)
    ada.expire_due(space)
    assert ada.replica.get(marker).expired  # type: ignore[union-attr]
    assert not path.exists()
    reader = started(ada, town.clock.now)
    assert "MARKER-snapshot-2c9e" not in {e.fields.get("text") for e in reader.log(space)}
    assert started(ada, town.clock.now).log(space) == reader.log(space)


def test_closing_keeps_the_views_that_changed_for_the_next_start(
        town: Town, folds: list[bytes]) -> None:
    space, (ada, bo, _cy) = busy_crew(town)
    started(ada, town.clock.now)
    reader = started(ada, town.clock.now)
    assert reader.keep_snapshots(above=1) == 0, "nothing changed since the snapshot was read"
    bo.checkin(space, text="while the app ran", energy=4)
    sync(space, ada, bo)
    reader.log(space)  # the app follows the arrival: the view is extended
    assert reader.keep_snapshots(above=10_000) == 0, "a small space is not worth it"
    assert reader.keep_snapshots(above=1) == 1
    now = town.clock.now
    folds.clear()
    after = started(ada, now)
    assert isinstance(after.view(space), SnapshotView)
    assert after.log(space)[-1].fields["text"] == "while the app ran"
    assert first_screens(after, space) == first_screens(started(ada, now, snapshots=False),
                                                        space)
    assert folds == [space], "only the reader without snapshots folded"
    bo.checkin(space, text="read by the app", energy=2)
    sync(space, ada, bo)
    after.log(space)
    bo.checkin(space, text="after the last read", energy=2)
    sync(space, ada, bo)
    assert after.keep_snapshots(above=1) == 0, "not the replica's records any more"


def test_a_linked_laptops_snapshot_reads_what_its_fold_reads(
        town: Town, folds: list[bytes]) -> None:
    space, (ada, bo, cy) = busy_crew(town)
    laptop = town.person("Ada's laptop")
    sync(space, ada, laptop)
    assert laptop.adopt_certificate(ada.me, ada.certify_device(laptop.me))
    sync(space, ada, bo, cy, laptop)
    ada.checkin(space, text="from the desk", energy=3)  # the member checked in this cycle
    sofa = laptop.checkin(space, text="from the sofa", energy=4)
    sync(space, ada, bo, cy, laptop)
    now = town.clock.now
    for reader_of in (laptop, bo):
        started(reader_of, now)  # folds, and writes the snapshot
        folds.clear()
        reader = started(reader_of, now)
        assert isinstance(reader.view(space), SnapshotView)
        shown = first_screens(reader, space)
        assert folds == []
        assert shown == first_screens(started(reader_of, now, snapshots=False), space)
        [entry] = [e for e in shown["log"] if e.id == sofa]
        assert (entry.author, entry.chain) == (ada.me, laptop.me)  # its receipt's chain
    assert not started(laptop, now).summary(space).needs_checkin, "Ada checked in, from the desk"
    folds.clear()
    for reader_of in (laptop, bo):  # receipts count Ada's laptop as Ada's, without the fold
        app = LocalBackend(reader_of.replica, reader_of.identity, clock=lambda: now)
        app.service.prepare(complete=False)
        assert isinstance(app.reads.view(space), SnapshotView)
        assert app.device_members(space) == {laptop.me: ada.me}
        assert app.holdings(space).keys() == {ada.me if reader_of is laptop else bo.me}
    assert folds == []
