"""Every reason the replica gives for not accepting a record, each produced by a real case.

Each case appends a batch with a good record before and after the bad one: the bad one is
logged with its reason, sender and time (and, for the chain rules, its space and author), and
the good ones are accepted regardless.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from meshcrew.home import Home
from meshcrew.reasons import Reason
from meshcrew.records import MAX_BODY_BYTES, MAX_CLOCK_SKEW_MS, MAX_RECORD_BYTES, record_id
from meshcrew.store import Replica
from store_factory import NOW_MS, Chain, craft, fields_of, key, space

SENDER = "12D3KooWPeer"


@pytest.fixture
def replica(home: Home) -> Iterator[Replica]:
    with Replica.open(home, pending_cap=3) as opened:
        yield opened


def _not_canonical() -> bytes:
    good = craft(key(0), fields_of(key(0)))
    # "test.note" as a str 8 (0xd9, length) instead of the shortest form, a fixstr (0xa9).
    return good.replace(b"\xa9test.note", b"\xd9\x09test.note", 1)


def _bad_signature() -> bytes:
    good = craft(key(0), fields_of(key(0)))
    return good[:-1] + bytes([good[-1] ^ 1])


ENVELOPE_CASES: dict[Reason, Callable[[], bytes]] = {
    Reason.TOO_LARGE: lambda: b"\x00" * (MAX_RECORD_BYTES + 1),
    Reason.MALFORMED: lambda: b"\xc1 is never valid msgpack",
    Reason.NOT_CANONICAL: _not_canonical,
    Reason.UNKNOWN_VERSION: lambda: craft(key(0), fields_of(key(0), version=2)),
    Reason.BAD_FIELD: lambda: craft(key(0), fields_of(key(0), author=b"a" * 31)),
    Reason.BAD_KIND: lambda: craft(key(0), fields_of(key(0), kind="Not A Kind")),
    Reason.BAD_SEQ: lambda: craft(key(0), fields_of(key(0), seq=0)),
    Reason.BODY_TOO_LARGE: lambda: craft(key(0), fields_of(key(0),
                                                          body=b"b" * (MAX_BODY_BYTES + 1))),
    Reason.BAD_SIGNATURE: _bad_signature,
    Reason.FROM_FUTURE: lambda: craft(key(0), fields_of(
        key(0), ts=NOW_MS + MAX_CLOCK_SKEW_MS + 1)),
}


@pytest.mark.parametrize("reason", list(ENVELOPE_CASES), ids=str)
def test_envelope_reason_is_logged_and_the_batch_goes_on(replica: Replica, reason: Reason) -> None:
    bad = ENVELOPE_CASES[reason]()
    good = Chain(key(1), space(0)).extend(2)
    report = replica.append([good[0].raw, bad, good[1].raw], sender=SENDER, now_ms=NOW_MS)
    assert report.accepted == [good[0].id, good[1].id]
    [entry] = report.rejected
    assert entry.reason is reason
    expected_id = None if reason is Reason.TOO_LARGE else record_id(bad)
    assert (entry.record_id, entry.sender, entry.at_ms) == (expected_id, SENDER, NOW_MS)
    assert (entry.space, entry.author) == (None, None)  # unverified claims are not logged
    assert replica.rejects() == [entry]
    assert replica.rejects(space_id=space(0)) == []


def _fork(replica: Replica, chain: Chain) -> bytes:
    replica.append([chain.records[0].raw, chain.records[1].raw], now_ms=NOW_MS)
    return chain.at(2).raw


def _chain_broken(replica: Replica, chain: Chain) -> bytes:
    replica.append([chain.records[0].raw, chain.records[1].raw], now_ms=NOW_MS)
    return chain.at(2, prev=b"\x09" * 32).raw


def _author_forked(replica: Replica, chain: Chain) -> bytes:
    replica.append([chain.records[0].raw, chain.records[1].raw, chain.at(2).raw],
                   now_ms=NOW_MS)
    return chain.records[2].raw


def _time_travel(replica: Replica, chain: Chain) -> bytes:
    replica.append([chain.records[0].raw, chain.records[1].raw], now_ms=NOW_MS)
    return chain.at(3, ts=chain.records[1].ts - 1).raw


def _pending_full(replica: Replica, chain: Chain) -> bytes:
    more = chain.extend(4)  # the fixture's cap is 3 waiting records per chain
    replica.append([r.raw for r in more[:3]], now_ms=NOW_MS)
    assert replica.pending_count() == 3
    return more[3].raw


CHAIN_CASES: dict[Reason, Callable[[Replica, Chain], bytes]] = {
    Reason.FORK: _fork,
    Reason.CHAIN_BROKEN: _chain_broken,
    Reason.AUTHOR_FORKED: _author_forked,
    Reason.TIME_TRAVEL: _time_travel,
    Reason.PENDING_FULL: _pending_full,
}


@pytest.mark.parametrize("reason", list(CHAIN_CASES), ids=str)
def test_chain_reason_is_logged_and_the_batch_goes_on(replica: Replica, reason: Reason) -> None:
    chain = Chain(key(0), space(0))
    chain.extend(3)
    bad = CHAIN_CASES[reason](replica, chain)
    good = Chain(key(1), space(0)).extend(2)
    report = replica.append([good[0].raw, bad, good[1].raw], sender=SENDER, now_ms=NOW_MS)
    assert report.accepted == [good[0].id, good[1].id]
    [entry] = report.rejected
    assert (entry.reason, entry.record_id, entry.sender, entry.at_ms) == (
        reason, record_id(bad), SENDER, NOW_MS)
    assert entry.detail
    assert (entry.space, entry.author) == (space(0), bytes(key(0).verify_key))
    assert replica.rejects(limit=1) == [entry]
    assert replica.rejects(space_id=space(0), limit=1) == [entry]
    assert replica.rejects(space_id=space(1)) == []
    # Fork evidence is stored; every other refusal is only logged.
    kept = reason in {Reason.FORK, Reason.CHAIN_BROKEN}
    assert (replica.state_of(record_id(bad)) is not None) == kept
    assert (report.forks == [record_id(bad)]) == kept


def test_every_reason_of_the_store_has_a_case() -> None:
    store_reasons = {Reason.FORK, Reason.CHAIN_BROKEN, Reason.AUTHOR_FORKED, Reason.TIME_TRAVEL,
                     Reason.PENDING_FULL}
    members = list(Reason)
    envelope = set(members[: members.index(Reason.FORK)])  # the block records.py produces
    assert set(ENVELOPE_CASES) == envelope
    assert set(CHAIN_CASES) == store_reasons


def test_the_reject_log_keeps_the_newest_entries(home: Home) -> None:
    with Replica.open(home, reject_log_size=4) as replica:
        for n in range(3):
            replica.append([b"junk %d" % n, b"junk %d." % n], sender=f"peer-{n}", now_ms=n)
        entries = replica.rejects()
        assert [(e.sender, e.at_ms) for e in entries] == [
            ("peer-2", 2), ("peer-2", 2), ("peer-1", 1), ("peer-1", 1)]
        assert [e.record_id for e in entries[:2]] == [record_id(b"junk 2."), record_id(b"junk 2")]
        assert len(replica.rejects(limit=3)) == 3
    with Replica.open(home, read_only=True) as reader:
        assert reader.rejects() == entries
