"""A new post costs the same in a space of any size (issue 15: the delivery stall).

In the long soak a founder's node at 100,000 records spent 0.25-1 s of its trio thread on each
check-in of its own: the fold's extension and the opening of the new post went over every record
of the space. At four check-ins a second nothing else ran; its network tasks moved one step per
check-in, its GossipSub queue to the member (32 messages) overflowed, and the member's replica
held a hole in its chain that no sync could fill, since no stream could be opened in time.

The work is counted in lines of Python run (``sys.settrace``), not timed: a pass over every
record runs a line per record, and the checks below allow far less than that.
"""

from __future__ import annotations

import gc
import os
import random
import sys
import weakref
from collections.abc import Callable
from types import FrameType
from typing import Any

import pytest

from meshcrew import spaces
from meshcrew.records import sign_record
from meshcrew.service import Member
from meshcrew.service import views as service_views
from meshcrew.spaces import CheckIn, PostKind, Profile, seal_post
from meshcrew.spaces.extend import extend
from meshcrew.spaces.state import SpaceState
from spaces_world import World, person
from test_service_support import Town, crew_of


def lines_run(action: Callable[[], object]) -> int:
    """How many lines of Python ``action()`` runs (each turn of a loop counts)."""
    count = 0

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line":
            count += 1
        return local

    def calls(frame: FrameType, event: str, arg: Any) -> Any:
        return local

    previous = sys.gettrace()
    sys.settrace(calls)
    try:
        action()
    finally:
        sys.settrace(previous)
    return count


def add_posts(member: Member, space: bytes, count: int) -> None:
    """``count`` check-ins by ``member`` appended to its replica in one go (signed and sealed
    as the service does, without the service's work per post)."""
    state = member.view(space).state
    head = member.replica.frontier(space)[member.me]
    prev, seq, raws = head.id, head.seq, []
    for n in range(count):
        made = seal_post(state, member.identity.signing_key,
                         CheckIn(text=f"earlier {n}", energy=1 + n % 5), os.urandom)
        seq += 1
        record = sign_record(member.identity.signing_key, kind=made.kind, space=space, seq=seq,
                             prev=prev, ts=member.now(), body=made.body)
        prev = record.id
        raws.append(record.raw)
    report = member.replica.append(raws, sender="local", now_ms=member.now())
    assert len(report.accepted) == count


def checkin_lines(town: Town, name: str, history: int) -> int:
    """Lines run by one check-in through the member service (what the node's control socket
    calls) in a crew of two holding ``history`` earlier posts of the same member.

    (A post lands in the canonical order after its author's previous record, at the first
    larger id: for a member who wrote last, among the last records. The records after it are
    gone over again, so a quiet member's post costs more, up to :data:`TAIL_MAX`, past which
    every post is: see :func:`meshcrew.spaces.sealing.open_more`.)"""
    space, (ada, _bo) = crew_of(town, f"{name} A", f"{name} B")
    add_posts(ada, space, history)  # her chain runs to the end of the canonical order
    ada.checkin(space, text="the fold", energy=3)
    ada.checkin(space, text="an extension, ahead of the one measured", energy=3)
    return lines_run(lambda: ada.checkin(space, text="measured", energy=4))


def test_a_checkin_runs_no_more_python_in_a_space_ten_times_larger(town: Town) -> None:
    small = checkin_lines(town, "Small", 300)
    large = checkin_lines(town, "Large", 3_000)
    # Before: about twenty lines more per record of the space (54,000 more here).
    assert large - small < 300, (small, large)


def test_extending_by_one_post_runs_no_more_python_in_a_larger_space() -> None:
    def extend_lines(posts: int) -> int:
        w, space, _ = crew_of_world(0)
        b = person("b")
        sealed = spaces.seal_post(w.state(space), b, CheckIn("earlier", 1), w.rng)
        for _ in range(posts):  # b's chain runs to the end of the order (see checkin_lines)
            w.sign(b, space, sealed)  # one sealed body, signed anew: no fold per post
        held = w.of(space)
        state = spaces.fold(space, held)
        keyring = spaces.unlock(state, b)
        opened = spaces.open_posts(state, keyring)
        first = extend(state, [w.post(b, space, CheckIn("ahead", 2))])  # works out its places
        assert first is not None
        opened = spaces.open_more(opened, first, keyring)
        post = w.post(b, space, CheckIn("measured", 3))
        return lines_run(lambda: spaces.open_more(opened, extend(first, [post]) or state,
                                                  keyring))

    assert extend_lines(3_000) - extend_lines(300) < 300


def crew_of_world(posts: int, seed: int = 0) -> tuple[World, bytes, list[Any]]:
    """A crew of three and ``posts`` posts by them in turn (in memory, no replica)."""
    w = World(seed)
    a, b, c = person("a"), person("b"), person("c")
    space = w.found(a)
    w.admit(a, b, space)
    w.admit(a, c, space)
    made = [w.post((a, b, c)[n % 3], space, CheckIn(f"check-in {n}", 1 + n % 5))
            for n in range(posts)]
    return w, space, made


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_opening_new_posts_alone_gives_every_answer_opening_all_gives(seed: int) -> None:
    """Posts arriving out of turn land among the last ones of the order: what was opened
    before them is kept and the rest gone over again; every index answers as a fresh open."""
    w, space, posts = crew_of_world(40, seed)
    rng = random.Random(seed)
    held = w.of(space)[:-len(posts)]
    state = spaces.fold(space, held)
    reader = person("c")
    keyring = spaces.unlock(state, reader)
    opened = spaces.open_posts(state, keyring)
    arriving = list(posts)
    inserted = 0
    while arriving:  # in chain order per author, but the authors' turns shuffled
        authors = sorted({p.author for p in arriving})
        author = rng.choice(authors)
        post = next(p for p in arriving if p.author == author)
        arriving.remove(post)
        extended = extend(state, [post])
        assert extended is not None
        inserted += extended.order[-1] != post.id
        state = extended
        opened = spaces.open_more(opened, state, keyring)
        fresh = spaces.open_posts(state, spaces.unlock(state, reader))
        assert opened == fresh
        assert list(opened.refused) == list(fresh.refused)
        for kind in PostKind:
            assert opened.of_kind(kind) == fresh.of_kind(kind)
        for record_id in state.order:
            assert opened.post(record_id) == fresh.post(record_id)
    assert inserted, "some posts were put in before the newest ones"


def test_the_settings_read_once_a_minute_opens_only_the_posts_since(
        town: Town, monkeypatch: pytest.MonkeyPatch) -> None:
    """A node's retention pass reads the settings (posts) once a minute; the posts that
    arrive between are taken in without being opened. The pass after them opens those alone,
    not every post of the space again (the soak's steps of memory each minute)."""
    space, (ada, bo) = crew_of(town, "Ada", "Bo")
    ada.expire_due(space)  # the first pass opens every post
    opened_all: list[bytes] = []

    def counting(state: SpaceState, keyring: Any) -> Any:
        opened_all.append(b"every post")
        return spaces.open_posts(state, keyring)

    monkeypatch.setattr(service_views.__name__ + ".open_posts", counting)
    for n in range(3):
        record = bo.replica.get(bo.checkin(space, text=f"between passes {n}", energy=3))
        assert record is not None
        # As the node takes a gossiped post: straight into the replica, then its judge reads
        # the state of the space for the next message (no post opened).
        assert ada.replica.append([record.raw], sender="gossip", now_ms=ada.now()).accepted
        ada.view(space)
    ada.expire_due(space)
    assert opened_all == [], "only the three new posts were opened"
    texts = [p.post.text for p in ada.view(space).opened.of_kind(PostKind.CHECKIN)]
    assert texts[-3:] == [f"between passes {n}" for n in range(3)]


def test_an_extended_view_takes_the_posts_over_at_once_and_lets_the_last_one_go(
        town: Town) -> None:
    """One generation of the space's mappings in memory, not two (the soak's memory)."""
    space, (ada, bo) = crew_of(town, "Ada", "Bo")
    ada.expire_due(space)  # the node's first retention pass opens the posts
    before = weakref.ref(ada.view(space))
    record = bo.replica.get(bo.checkin(space, text="one more", energy=2))
    assert record is not None
    assert ada.replica.append([record.raw], sender="gossip", now_ms=ada.now()).accepted
    after = ada.view(space)
    assert "opened" in after.__dict__, "taken over as it was made, not at a later read"
    gc.collect()
    assert before() is None, "the view before it is let go"


def test_a_new_name_rewrites_only_its_authors_entries(
        town: Town, monkeypatch: pytest.MonkeyPatch) -> None:
    """A profile post that renames a member in a large space keeps every other entry of the
    log as it was: only the new posts are turned into entries (each costs a ``post_fields``),
    not the whole space again (a sender's catch-up paid that for a joiner's first profile)."""
    space, (ada, bo) = crew_of(town, "Ada", "Bo")
    add_posts(ada, space, 500)
    assert len(ada.log(space)) > 500  # the log is built: the next view extends it
    made: list[object] = []

    def counting(post: Any) -> Any:
        made.append(post)
        return post_fields(post)

    post_fields = service_views.post_fields
    monkeypatch.setattr(service_views.__name__ + ".post_fields", counting)
    record = bo.replica.get(bo.post(space, Profile("Bo Renamed")))
    assert record is not None
    assert ada.replica.append([record.raw], sender="gossip", now_ms=ada.now()).accepted
    log = ada.log(space)
    assert len(made) == 1, "only the profile post became a new entry"
    assert {e.author_name for e in log if e.author == bo.me} == {"Bo Renamed"}
    assert log == ada.log(space)
    assert log == fresh_log(ada, space)


def fresh_log(member: Member, space: bytes) -> list[Any]:
    """The log as a reader with no view yet folds it."""
    return Member(member.replica, member.identity, clock=member.now).log(space)
