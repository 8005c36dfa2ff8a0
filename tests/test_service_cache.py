"""The member service keeps a view per space and extends it as posts arrive.

Whatever path a view took (extended post by post, or folded anew after a membership change),
every read must equal what a fresh reader with no cache computes from the same replica.
"""

from __future__ import annotations

import gc
import threading
import weakref
from typing import Any

from meshcrew.service import Member, MemberReads
from meshcrew.spaces import Profile
from test_service_support import Town, admit, crew_of, send, sync


def reads(reader: MemberReads, space: bytes) -> dict[str, Any]:
    """Everything a screen shows of a space, as plain data."""
    checkins = [e for e in reader.log(space) if e.kind == "checkin"]
    return {
        "log": [e.to_json() for e in reader.log(space, events=True)],
        "members": [m.to_json() for m in reader.members(space)],
        "energy": reader.energy(space),
        "board": reader.board(space),
        "rejected": reader.rejected(space),
        "thread": reader.thread(checkins[0].id) if checkins else None,
        "status": reader.summary(space).my_status,
    }


def fresh(member: Member) -> MemberReads:
    """A reader of the same replica with nothing cached."""
    return MemberReads(member.replica, member.identity, clock=member.now)


def test_posts_extend_the_view_and_every_read_matches_a_fresh_reader(
        town: Town, folds: list[bytes]) -> None:
    space, (ada, bob, cy) = crew_of(town, "Ada", "Bob", "Cy")
    for member in (ada, bob, cy):
        member.log(space)
    own_folds = 0
    for n in range(12):
        folds.clear()
        author = (ada, bob, cy)[n % 3]
        first = author.checkin(space, text=f"arriving {n}", energy=1 + n % 5)
        if n % 4 == 1:
            author.reply(first, text=f"answering myself {n}")
        sync(space, ada, bob, cy)
        mine = reads(ada, space)
        own_folds += len(folds)
        assert mine == reads(fresh(ada), space)
        assert folds == [space], "the fresh reader folded once, the members not at all"
    assert own_folds == 0, "posts alone extend the members' views; nothing is folded anew"


def test_a_rename_and_a_membership_change_are_seen_exactly(town: Town) -> None:
    space, (ada, bob) = crew_of(town, "Ada", "Bob")
    for n in range(4):
        ada.checkin(space, text=f"before {n}", energy=3)
    send(ada, bob, space)
    bob.log(space)
    ada.post(space, Profile("Ada Lovelace", bio="counting"))  # a rename: entries change
    send(ada, bob, space)
    assert {e.author_name for e in bob.log(space) if e.author == ada.me} == {"Ada Lovelace"}
    assert reads(bob, space) == reads(fresh(bob), space)
    dee = town.person("Dee")
    admit(ada, dee, space)  # a join and a key rotation: the fold runs again
    send(ada, bob, space)
    dee.checkin(space, text="new here", energy=4)
    send(dee, bob, space)
    assert reads(bob, space) == reads(fresh(bob), space)
    assert any(e.author == dee.me for e in bob.log(space))
    bob.leave(space)
    assert reads(bob, space) == reads(fresh(bob), space)
    assert bob.summary(space).my_status == "left"


def test_prepare_in_a_thread_leaves_nothing_to_fold_for_the_reads(
        town: Town, folds: list[bytes]) -> None:
    space, (ada, bob) = crew_of(town, "Ada", "Bob")
    for n in range(6):
        bob.checkin(space, text=f"arriving {n}", energy=2)
    send(bob, ada, space)
    reader = fresh(ada)
    folds.clear()
    progress: list[tuple[int, int, str | None]] = []
    worker = threading.Thread(target=reader.prepare, args=(lambda *p: progress.append(p),))
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive()
    assert progress == [(1, 1, "Moon")]
    assert folds == [space], "the worker folded the space"
    folds.clear()
    assert reads(reader, space) == reads(fresh(ada), space)
    assert folds == [space], "only the second, fresh reader folded"
    ada.checkin(space, text="after the prepare", energy=5)  # through the writer
    folds.clear()
    assert any(e.fields.get("text") == "after the prepare" for e in reader.log(space))
    assert folds == [], "the prepared view was extended by the new post"


def test_an_extended_view_lets_the_one_before_it_go(town: Town) -> None:
    space, (ada, bob) = crew_of(town, "Ada", "Bob")
    ada.log(space)
    before = weakref.ref(ada.view(space))
    bob.checkin(space, text="one more", energy=3)
    send(bob, ada, space)
    assert ada.log(space)[-1].fields["text"] == "one more"  # extended: took what it could
    gc.collect()
    assert before() is None, "the previous view (the whole space, decrypted) was kept"
