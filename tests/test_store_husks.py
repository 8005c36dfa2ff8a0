"""Husks from a peer (the ingest's rule 6): what is left of expired posts is taken when the
record above names it, in any order; it never proves a fork; a husk alone is checked for its
shape. Order independence with husks mixed in is in test_store_order.py."""

from __future__ import annotations

from collections.abc import Iterator

import msgpack
import pytest

from meshcrew.home import Home
from meshcrew.reasons import Reason
from meshcrew.records import (
    HUSK_VERSION,
    Head,
    Record,
    RecordError,
    decode_and_check_husk,
    encode_husk,
)
from meshcrew.store import RecordState, Replica
from meshcrew.store.verify import rebuilt, refusals_of, verify_batch
from store_factory import NOW_MS, Chain, key, space

SPACE = space(0)


@pytest.fixture
def replica(home: Home) -> Iterator[Replica]:
    with Replica.open(home) as opened:
        yield opened


def sealed_chain(length: int, n: int = 0) -> Chain:
    chain = Chain(key(n), SPACE)
    for _ in range(length):
        chain.next(kind="sealed")
    return chain


def husk(record: Record) -> bytes:
    return encode_husk(record, b"stub")


def test_a_run_of_husks_is_taken_from_its_signed_top_down_in_any_order(
        replica: Replica) -> None:
    chain = sealed_chain(6)
    one, two, three, four, five, six = chain.records
    sent = [husk(five), husk(three), six.raw, one.raw, husk(four), two.raw]  # 3-5 expired
    report = replica.append(sent, now_ms=NOW_MS)
    assert report.accepted == [one.id, two.id, three.id, four.id, five.id, six.id]
    assert replica.frontier(SPACE) == {chain.author: Head(6, six.id)}
    assert replica.pending_count() == 0
    assert replica.expired_count(SPACE) == 3
    held = replica.get(four.id)
    assert held is not None
    assert held.expired
    assert (held.seq, held.prev, held.ts) == (4, three.id, four.ts)
    assert replica.forked_authors(SPACE) == set()


def test_a_husk_waits_until_the_record_above_names_it(replica: Replica) -> None:
    chain = sealed_chain(4)
    one, two, three, four = chain.records
    report = replica.append([one.raw, two.raw, husk(three)], now_ms=NOW_MS)
    assert report.pending == [three.id]  # the newest: nothing vouches for its id yet
    assert replica.state_of(three.id) is RecordState.PENDING
    assert replica.append([husk(three)], now_ms=NOW_MS).duplicates == 1  # sent again
    assert replica.pending_count() == 1
    assert replica.append([four.raw], now_ms=NOW_MS).accepted == [three.id, four.id]
    assert replica.pending_count() == 0


def test_the_record_takes_a_waiting_husks_place(replica: Replica) -> None:
    chain = sealed_chain(2)
    one, two = chain.records
    replica.append([one.raw, husk(two)], now_ms=NOW_MS)
    assert replica.append([two.raw], now_ms=NOW_MS).accepted == [two.id]
    held = replica.get(two.id)
    assert held is not None
    assert not held.expired  # signed: nothing vouched for the husk, the record came instead
    assert replica.expired_count(SPACE) == 0


def test_a_husk_never_proves_a_fork(replica: Replica) -> None:
    chain = sealed_chain(4)
    one, two, three, four = chain.records
    replica.append([one.raw, two.raw, husk(three), four.raw], now_ms=NOW_MS)
    other = chain.at(3, body=b"another three", kind="sealed")
    forged = encode_husk(other, b"stub")  # a second record at seq 3: only a husk says so
    wrong_prev = msgpack.packb([HUSK_VERSION, "sealed", SPACE, chain.author, 3, bytes(32),
                                three.ts, b"stub", bytes(range(32))], use_bin_type=True)
    after_other = chain.at(4, prev=other.id, ts=four.ts, body=b"after another three",
                           kind="sealed")  # names another seq 3 than the husk held there
    report = replica.append([forged, wrong_prev, other.raw, after_other.raw], now_ms=NOW_MS)
    assert {entry.reason for entry in report.rejected} == {Reason.HUSK_CONFLICT}
    assert len(report.rejected) == 4
    assert report.forks == []
    assert replica.forked_authors(SPACE) == set()
    assert replica.frontier(SPACE) == {chain.author: Head(4, four.id)}


def test_a_husk_that_does_not_follow_the_record_below_is_refused(replica: Replica) -> None:
    chain = sealed_chain(3)
    one, two, three = chain.records
    wrong_prev = msgpack.packb([HUSK_VERSION, "sealed", SPACE, chain.author, 2, bytes(32),
                                two.ts, b"stub", two.id], use_bin_type=True)
    report = replica.append([one.raw, wrong_prev, three.raw], now_ms=NOW_MS)
    assert [entry.reason for entry in report.rejected] == [Reason.HUSK_CONFLICT]
    assert replica.pending_count() == 1  # seq 3 still waits, for the true seq 2
    assert replica.append([husk(two)], now_ms=NOW_MS).accepted == [two.id, three.id]


def test_a_fork_lets_the_husks_above_it_go(replica: Replica) -> None:
    chain = sealed_chain(4)
    one, two, three, four = chain.records
    replica.append([one.raw, two.raw, husk(three), four.raw], now_ms=NOW_MS)
    assert replica.expired_count(SPACE) == 1
    report = replica.append([chain.at(2, body=b"second two", kind="sealed").raw],
                            now_ms=NOW_MS)
    assert report.forks  # two signed records at seq 2
    assert replica.forked_authors(SPACE) == {chain.author}
    assert replica.state_of(three.id) is None  # not evidence: a husk proves nothing
    assert replica.state_of(four.id) is RecordState.EVIDENCE
    assert replica.expired_count(SPACE) == 0


def test_a_husk_alone_is_checked_for_its_shape() -> None:
    chain = Chain(key(0), SPACE)
    first = chain.next(kind="sealed")
    note = chain.next(kind="test.note")
    post = chain.next(kind="sealed")
    assert decode_and_check_husk(husk(post)).id == post.id
    cases = {
        husk(note): Reason.BAD_KIND,  # only posts expire
        husk(first): Reason.BAD_SEQ,  # an author's first record is never a post
        encode_husk(post, bytes(300)): Reason.BODY_TOO_LARGE,
        husk(post)[:-34] + msgpack.packb(bytes(31)): Reason.BAD_FIELD,  # id of 31 bytes
        post.raw: Reason.UNKNOWN_VERSION,  # a record is not a husk
    }
    for raw, reason in cases.items():
        with pytest.raises(RecordError) as refused:
            decode_and_check_husk(raw)
        assert refused.value.reason is reason
    with pytest.raises(RecordError) as refused:
        decode_and_check_husk(husk(post), now_ms=post.ts - 11 * 60 * 1000)
    assert refused.value.reason is Reason.FROM_FUTURE


def test_every_way_of_checking_a_batch_takes_husks_alike() -> None:
    chain = sealed_chain(3)
    raws = [chain.records[0].raw, husk(chain.records[1]), husk(chain.records[0])]
    direct = verify_batch(raws, now_ms=NOW_MS)
    assert [r.id for r in direct.records] == [chain.records[0].id, chain.records[1].id]
    assert [e.reason for _, e in direct.refused] == [Reason.BAD_SEQ]
    again = rebuilt(raws, refusals_of(raws, NOW_MS))  # what a worker process's answer gives
    assert again.records == direct.records
    assert [e.reason for _, e in again.refused] == [Reason.BAD_SEQ]
