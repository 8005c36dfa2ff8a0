"""What the reject log says about records refused *after* they waited (``store.ingest`` rules 2,
4 and 6): the refused record's id, its reason and detail, who sent it (the peer it came from
when it waited, not whoever sent the record that let it be judged), and its space and author.
This is what ``meshcrew doctor`` and the sync health screen show, and what scores a peer.

Mutation testing (``scripts/mutants``) found these paths' log entries unchecked: a wrong id, the
wrong sender, or no space and author passed every test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from meshcrew.home import Home
from meshcrew.reasons import Reason
from meshcrew.records import MAX_RECORD_BYTES, Head, encode_husk, record_id
from meshcrew.store import Replica
from meshcrew.store.ingest import RejectEntry
from store_factory import NOW_MS, Chain, key, space

SPACE = space(0)


@pytest.fixture
def replica(home: Home) -> Iterator[Replica]:
    with Replica.open(home) as opened:
        yield opened


def test_a_waiting_husk_refused_when_a_signed_record_takes_its_place(replica: Replica) -> None:
    chain = Chain(key(0), SPACE)
    one, two, three = (chain.next(kind="sealed") for _ in range(3))
    other = chain.at(2, body=b"another two", kind="sealed")
    assert replica.append([encode_husk(other, b"stub")], sender="peer-a",
                          now_ms=NOW_MS).pending == [other.id]
    report = replica.append([one.raw, two.raw, three.raw], sender="peer-b", now_ms=NOW_MS + 1)
    entry = RejectEntry(other.id, Reason.HUSK_CONFLICT,
                        "a husk at seq 2, where another record was taken", "peer-a",
                        NOW_MS + 1, SPACE, chain.author)
    assert report.rejected == [entry]
    assert replica.rejects(limit=1) == [entry]
    assert report.forks == []
    assert replica.state_of(other.id) is None
    assert replica.pending_count() == 0
    assert replica.frontier(SPACE) == {chain.author: Head(3, three.id)}


def test_a_waiting_record_that_proves_a_fork_is_logged_as_its_senders(replica: Replica) -> None:
    chain = Chain(key(1), SPACE)
    one, two = chain.next(), chain.next()
    stray = chain.at(3, prev=b"x" * 32, body=b"names another seq 2")
    replica.append([stray.raw], sender="peer-a", now_ms=NOW_MS)
    report = replica.append([one.raw, two.raw], sender="peer-b", now_ms=NOW_MS + 1)
    assert report.forks == [stray.id]
    (entry,) = report.rejected
    assert (entry.record_id, entry.reason, entry.sender, entry.space, entry.author) == (
        stray.id, Reason.CHAIN_BROKEN, "peer-a", SPACE, chain.author)
    assert entry.detail == ("seq 3 links to another record at seq 2 than the one held, which "
                            "proves a fork there; kept as evidence")
    assert replica.forked_authors(SPACE) == {chain.author}
    assert replica.frontier(SPACE) == {chain.author: Head(1, one.id)}


def test_a_waiting_record_refused_when_its_turn_comes_is_logged_as_its_senders(
        replica: Replica) -> None:
    chain = Chain(key(2), SPACE)
    one, two = chain.next(), chain.next()
    early = chain.at(3, ts=two.ts - 1, body=b"dated before seq 2")  # rule 3b: time travel
    replica.append([early.raw], sender="peer-a", now_ms=NOW_MS)
    report = replica.append([one.raw, two.raw], sender="peer-b", now_ms=NOW_MS + 1)
    (entry,) = report.rejected
    assert (entry.record_id, entry.reason, entry.sender, entry.space, entry.author) == (
        early.id, Reason.TIME_TRAVEL, "peer-a", SPACE, chain.author)
    assert entry.detail == f"seq 3 at {two.ts - 1} ms, seq 2 at {two.ts} ms"
    assert report.accepted == [one.id, two.id]
    assert replica.state_of(early.id) is None
    assert replica.pending_count() == 0
    # Refused, not held: the true seq 3 is taken when it comes.
    three = chain.next()
    assert replica.append([three.raw], now_ms=NOW_MS + 2).accepted == [three.id]


@pytest.mark.parametrize(("size", "named"), [(MAX_RECORD_BYTES, True),
                                             (MAX_RECORD_BYTES + 1, False)])
def test_refused_bytes_are_named_by_id_up_to_the_record_limit(replica: Replica, size: int,
                                                              named: bool) -> None:
    """Bytes a record could be are logged under the id they would have; past the limit, no id
    is worked out (hashing a peer's megabytes for a log line is not worth it)."""
    junk = b"\x99" + bytes(size - 1)
    (entry,) = replica.append([junk], sender="peer-a", now_ms=NOW_MS).rejected
    assert entry.record_id == (record_id(junk) if named else None)
    assert entry.sender == "peer-a"


def test_a_husk_that_does_not_follow_is_logged_as_its_senders(replica: Replica) -> None:
    chain = Chain(key(3), SPACE)
    one, two, three = (chain.next(kind="sealed") for _ in range(3))
    early = chain.at(2, ts=one.ts - 1, kind="sealed")
    replica.append([encode_husk(early, b"stub")], sender="peer-a", now_ms=NOW_MS)  # waits
    report = replica.append([one.raw, three.raw], sender="peer-b", now_ms=NOW_MS + 1)
    (entry,) = report.rejected
    assert (entry.record_id, entry.reason, entry.sender, entry.space, entry.author) == (
        early.id, Reason.HUSK_CONFLICT, "peer-a", SPACE, chain.author)
    assert entry.detail == ("a husk at seq 2 that does not follow the record held at seq 1 "
                            "(its prev or its time)")
    assert replica.append([encode_husk(two, b"stub")], now_ms=NOW_MS + 2).accepted == [
        two.id, three.id]


def test_a_husk_dated_like_the_record_below_is_taken(replica: Replica) -> None:
    """Rule 3b refuses only a time before the record below; the same millisecond follows."""
    chain = Chain(key(4), SPACE)
    one = chain.next(kind="sealed")
    two = chain.next(kind="sealed", ts=one.ts)
    three = chain.next(kind="sealed")
    report = replica.append([one.raw, encode_husk(two, b"stub"), three.raw], now_ms=NOW_MS)
    assert report.accepted == [one.id, two.id, three.id]
    assert report.rejected == []


def test_a_record_that_names_another_than_the_husk_held_is_no_fork(replica: Replica) -> None:
    chain = Chain(key(5), SPACE)
    one, two, three = (chain.next(kind="sealed") for _ in range(3))
    replica.append([one.raw, encode_husk(two, b"stub"), three.raw], now_ms=NOW_MS)
    other = chain.at(3, prev=b"o" * 32, body=b"names another seq 2", kind="sealed")
    report = replica.append([other.raw], sender="peer-a", now_ms=NOW_MS + 1)
    (entry,) = report.rejected
    assert (entry.record_id, entry.reason, entry.sender) == (
        other.id, Reason.HUSK_CONFLICT, "peer-a")
    assert entry.detail == "seq 3 links to another record at seq 2 than the husk held there"
    assert report.forks == []
    assert replica.forked_authors(SPACE) == set()


def _taken_by(entry: RejectEntry, husked: bytes, sender: str, author: bytes) -> None:
    assert entry == RejectEntry(husked, Reason.HUSK_CONFLICT,
                                "a husk at seq 2, where another record was taken", sender,
                                entry.at_ms, SPACE, author)


def test_a_husk_waiting_beside_a_signed_record_goes_when_the_gap_below_fills(
        replica: Replica) -> None:
    chain = Chain(key(6), SPACE)
    one, two = chain.next(kind="sealed"), chain.next(kind="sealed")
    other = chain.at(2, body=b"another two", kind="sealed")
    replica.append([encode_husk(other, b"stub")], sender="peer-a", now_ms=NOW_MS)
    replica.append([two.raw], sender="peer-c", now_ms=NOW_MS)
    assert replica.pending_count() == 2
    report = replica.append([one.raw], sender="peer-b", now_ms=NOW_MS + 1)
    assert report.accepted == [one.id, two.id]
    (entry,) = report.rejected
    _taken_by(entry, other.id, "peer-a", chain.author)
    assert replica.pending_count() == 0
    assert replica.state_of(other.id) is None


def test_of_two_husks_at_one_place_the_one_named_above_is_taken(replica: Replica) -> None:
    chain = Chain(key(7), SPACE)
    one, two, three = (chain.next(kind="sealed") for _ in range(3))
    other = next(r for r in (chain.at(2, body=b"another two %d" % n, kind="sealed")
                             for n in range(64)) if r.id > two.id)  # judged after two's husk
    replica.append([encode_husk(other, b"stub")], sender="peer-a", now_ms=NOW_MS)
    report = replica.append([encode_husk(two, b"stub"), three.raw, one.raw], sender="peer-b",
                            now_ms=NOW_MS + 1)
    assert report.accepted == [one.id, two.id, three.id]
    (entry,) = report.rejected
    _taken_by(entry, other.id, "peer-a", chain.author)
    assert replica.pending_count() == 0
    assert replica.expired_count(SPACE) == 1
