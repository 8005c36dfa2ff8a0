"""The replica's chain rules and queries, case by case."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from meshcrew.home import Home
from meshcrew.reasons import Reason
from meshcrew.records import NEW_SPACE, Head, sign_record
from meshcrew.store import RecordState, Replica
from store_factory import NOW_MS, START_MS, Chain, key, raws, space


@pytest.fixture
def replica(home: Home) -> Iterator[Replica]:
    with Replica.open(home) as opened:
        yield opened


def test_a_chain_in_order_is_accepted(replica: Replica) -> None:
    chain = Chain(key(0), space(0))
    records = chain.extend(4)
    report = replica.append(raws(records), now_ms=NOW_MS)
    assert report.accepted == [r.id for r in records]
    assert (report.pending, report.duplicates, report.forks, report.rejected) == ([], 0, [], [])
    assert replica.frontier(space(0)) == {chain.author: Head(4, records[-1].id)}
    assert replica.record_count() == 4
    assert replica.spaces() == [space(0)]
    assert replica.get(records[2].id) == records[2]
    assert replica.state_of(records[2].id) is RecordState.ACCEPTED


def test_a_genesis_creates_a_space_named_by_its_own_id(replica: Replica) -> None:
    genesis = sign_record(key(0), kind="space.create", space=NEW_SPACE, seq=1, prev=None,
                          ts=START_MS, body=b"crew")
    follow = Chain(key(0), genesis.id)
    follow.records.append(genesis)
    second = follow.next()
    joiner = Chain(key(1), genesis.id).next()
    replica.append([genesis.raw, second.raw, joiner.raw], now_ms=NOW_MS)
    assert replica.spaces() == [genesis.id]
    assert replica.frontier(genesis.id) == {follow.author: Head(2, second.id),
                                            joiner.author: Head(1, joiner.id)}


def test_records_wait_for_their_predecessor_and_then_cascade(replica: Replica) -> None:
    chain = Chain(key(0), space(0))
    one, two, three, four = chain.extend(4)
    report = replica.append(raws([four, three]), sender="peer-a", now_ms=NOW_MS)
    assert sorted(report.pending) == sorted([four.id, three.id])
    assert report.accepted == []
    assert replica.pending_count() == replica.pending_count(space(0)) == 2
    assert replica.frontier(space(0)) == {}
    assert replica.get(three.id) is None
    assert replica.get(three.id, include_held=True) == three
    assert replica.state_of(three.id) is RecordState.PENDING

    report = replica.append([two.raw], now_ms=NOW_MS)
    assert report.pending == [two.id]
    report = replica.append([one.raw], now_ms=NOW_MS)
    assert report.accepted == [one.id, two.id, three.id, four.id]
    assert report.pending == []
    assert replica.pending_count() == 0
    assert replica.frontier(space(0)) == {chain.author: Head(4, four.id)}


def test_a_long_chain_delivered_backwards_converges(replica: Replica) -> None:
    records = Chain(key(0), space(0)).extend(300)
    for record in reversed(records):
        replica.append([record.raw], now_ms=NOW_MS)
    assert [r.id for r in replica.author_records(records[0].author)] == [r.id for r in records]


def test_pending_records_survive_a_reopen(home: Home) -> None:
    one, two = Chain(key(0), space(0)).extend(2)
    with Replica.open(home) as replica:
        replica.append([two.raw], now_ms=NOW_MS)
    with Replica.open(home) as replica:
        assert replica.pending_count() == 1
        assert replica.append([one.raw], now_ms=NOW_MS).accepted == [one.id, two.id]


def test_duplicates_are_counted_not_logged(replica: Replica) -> None:
    one, two, three = Chain(key(0), space(0)).extend(3)
    replica.append([one.raw, three.raw], now_ms=NOW_MS)
    report = replica.append([one.raw, one.raw, three.raw, two.raw, two.raw], now_ms=NOW_MS)
    assert report.duplicates == 4
    assert report.accepted == [two.id, three.id]
    assert report.rejected == []
    assert replica.rejects() == []


def test_a_second_record_at_a_seq_is_a_fork(replica: Replica) -> None:
    chain = Chain(key(0), space(0))
    other = Chain(key(1), space(0))
    records = chain.extend(4)
    replica.append(raws(records + other.extend(2)), now_ms=NOW_MS)
    variant = chain.at(3)
    report = replica.append([variant.raw], sender="peer-b", now_ms=NOW_MS)
    assert report.forks == [variant.id]
    assert [(e.reason, e.record_id, e.sender) for e in report.rejected] == [
        (Reason.FORK, variant.id, "peer-b")]
    # Everything at or after the fork is evidence; the chain below it stays accepted.
    assert replica.frontier(space(0)) == {chain.author: Head(2, records[1].id),
                                          other.author: Head(2, other.records[-1].id)}
    assert replica.forked_authors(space(0)) == {chain.author}
    for record in [*records[2:], variant]:
        assert replica.state_of(record.id) is RecordState.EVIDENCE
        assert replica.get(record.id) is None
    assert replica.record_count() == 4


def test_a_link_to_an_unknown_predecessor_proves_a_fork_below_it(replica: Replica) -> None:
    chain = Chain(key(0), space(0))
    records = chain.extend(3)
    replica.append(raws(records), now_ms=NOW_MS)
    broken = chain.at(3, prev=b"\x07" * 32)
    report = replica.append([broken.raw], now_ms=NOW_MS)
    assert report.rejected[0].reason is Reason.CHAIN_BROKEN
    assert replica.frontier(space(0)) == {chain.author: Head(1, records[0].id)}


def test_a_forked_chain_is_frozen_and_its_pending_records_become_evidence(
        replica: Replica) -> None:
    chain = Chain(key(0), space(0))
    records = chain.extend(6)
    replica.append(raws([records[0], records[1], records[4]]), now_ms=NOW_MS)
    assert replica.pending_count() == 1
    replica.append([chain.at(2).raw], now_ms=NOW_MS)
    assert replica.pending_count() == 0
    assert replica.state_of(records[4].id) is RecordState.EVIDENCE
    report = replica.append(raws(records[2:4] + records[5:]), now_ms=NOW_MS)
    assert {e.reason for e in report.rejected} == {Reason.AUTHOR_FORKED}
    assert len(report.rejected) == 3
    assert replica.frontier(space(0)) == {chain.author: Head(1, records[0].id)}


def test_a_fork_found_lower_down_lowers_the_frontier(replica: Replica) -> None:
    chain = Chain(key(0), space(0))
    records = chain.extend(4)
    replica.append([*raws(records), chain.at(4).raw], now_ms=NOW_MS)
    assert replica.frontier(space(0)) == {chain.author: Head(3, records[2].id)}
    replica.append([chain.at(1).raw], now_ms=NOW_MS)
    assert replica.frontier(space(0)) == {}
    assert replica.forked_authors(space(0)) == {chain.author}
    assert replica.spaces() == []


def test_waiting_records_at_one_level_reveal_the_lowest_fork(replica: Replica) -> None:
    chain = Chain(key(0), space(0))
    one = chain.next()
    forks = [chain.at(2, body=b"a"), chain.at(2, body=b"b")]
    # Waiting records are applied in id order: make the telling one come last.
    broken = next(r for n in range(100)
                  if (r := chain.at(2, prev=b"\x05" * 32, body=b"%d" % n)).id > max(
                      f.id for f in forks))
    waiting = [*forks, broken]
    replica.append(raws(waiting), now_ms=NOW_MS)
    report = replica.append([one.raw], now_ms=NOW_MS)
    # Two records at seq 2 are a fork at 2, but the one linking elsewhere proves one at 1.
    assert report.accepted == []
    assert replica.frontier(space(0)) == {}
    assert replica.forked_authors(space(0)) == {chain.author}
    assert Reason.CHAIN_BROKEN in {e.reason for e in report.rejected}


def test_a_fork_inside_one_batch_leaves_no_demoted_id_in_the_report(replica: Replica) -> None:
    chain = Chain(key(0), space(0))
    records = chain.extend(3)
    report = replica.append([*raws(records), chain.at(2).raw], now_ms=NOW_MS)
    assert report.accepted == [records[0].id]


def test_a_pending_record_dated_too_early_is_refused_when_applied(replica: Replica) -> None:
    chain = Chain(key(0), space(0))
    one, two = chain.extend(2)
    early = chain.at(3, ts=two.ts - 1)
    assert replica.append([early.raw], sender="peer-c", now_ms=NOW_MS).pending == [early.id]
    report = replica.append([one.raw, two.raw], sender="local", now_ms=NOW_MS)
    assert [(e.reason, e.record_id, e.sender) for e in report.rejected] == [
        (Reason.TIME_TRAVEL, early.id, "peer-c")]
    assert replica.state_of(early.id) is None
    assert replica.pending_count() == 0
    assert replica.forked_authors(space(0)) == set()


def test_space_records_are_ordered_by_time_and_filtered_by_kind(replica: Replica) -> None:
    ada, bo = Chain(key(0), space(0)), Chain(key(1), space(0))
    a1 = ada.next(ts=START_MS + 10, kind="checkin")
    b1 = bo.next(ts=START_MS + 5, kind="reply")
    a2 = ada.next(ts=START_MS + 20, kind="reply")
    b2 = bo.next(ts=START_MS + 20, kind="checkin")
    elsewhere = Chain(key(0), space(1)).next()
    replica.append(raws([a1, a2, b1, b2, elsewhere]), now_ms=NOW_MS)
    same_ts = sorted([a2, b2], key=lambda r: r.id)
    assert replica.space_records(space(0)) == [b1, a1, *same_ts]
    assert replica.space_records(space(0), kinds={"checkin"}) == [a1, b2]
    assert replica.space_records(space(0), kinds=[]) == []
    assert replica.space_records(space(9)) == []
    assert replica.spaces() == sorted([space(0), space(1)])


def test_author_records_go_space_by_space_in_chain_order(replica: Replica) -> None:
    here, there = Chain(key(0), space(0)), Chain(key(0), space(1))
    replica.append(raws(there.extend(2) + here.extend(3)), now_ms=NOW_MS)
    by_space = sorted([here, there], key=lambda c: c.space)
    assert replica.author_records(here.author) == by_space[0].records + by_space[1].records
    assert replica.author_records(here.author, space(1)) == there.records
    assert replica.author_records(bytes(key(5).verify_key)) == []


def test_records_after_serves_what_a_peer_lacks(replica: Replica) -> None:
    ada, bo = Chain(key(0), space(0)), Chain(key(1), space(0))
    replica.append(raws(ada.extend(5) + bo.extend(3)), now_ms=NOW_MS)
    first, second = sorted([ada, bo], key=lambda c: c.author)
    theirs = {ada.author: Head(2, ada.records[1].id)}
    lacked = replica.records_after(space(0), theirs, limit=100)
    expected = {ada.author: ada.records[2:], bo.author: bo.records}
    assert lacked == expected[first.author] + expected[second.author]
    assert replica.records_after(space(0), replica.frontier(space(0)), limit=100) == []
    assert replica.records_after(space(0), {}, limit=4) == first.records[:4]
    assert replica.records_after(space(1), {}, limit=10) == []


def test_records_after_sends_the_held_record_where_a_peer_holds_another(
        replica: Replica) -> None:
    chain = Chain(key(0), space(0))
    records = chain.extend(3)
    replica.append(raws(records), now_ms=NOW_MS)
    theirs = {chain.author: Head(2, chain.at(2).id)}
    assert replica.records_after(space(0), theirs, limit=10) == records[1:]


def test_other_chains_carry_on_past_a_bad_record(replica: Replica) -> None:
    ada, bo = Chain(key(0), space(0)), Chain(key(1), space(0))
    a1, a2 = ada.extend(2)
    b1, b2 = bo.extend(2)
    early = ada.at(2, ts=a1.ts - 5, body=b"early")
    report = replica.append([a1.raw, early.raw, b1.raw, b"junk", a2.raw, b2.raw], now_ms=NOW_MS)
    assert sorted(report.accepted) == sorted([a1.id, a2.id, b1.id, b2.id])
    assert {e.reason for e in report.rejected} == {Reason.TIME_TRAVEL, Reason.MALFORMED}
