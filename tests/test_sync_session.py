"""The sync session, two instances joined by in-memory bytes: outcomes, costs and every refusal."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from meshcrew.errors import ConnectionLost, LocalProtocolError, RemoteProtocolError
from meshcrew.home import Home
from meshcrew.records import Head, Record
from meshcrew.store import Replica
from meshcrew.sync import (
    MAX_BATCH_BYTES,
    MAX_BATCH_RECORDS,
    PeerFrontier,
    RecordsReceived,
    SyncEvent,
    SyncSession,
)
from meshcrew.sync import session as session_module
from meshcrew.sync.wire import (
    DoneMsg,
    FrontierMsg,
    Hello,
    Offer,
    RecordsMsg,
    encode_frontier,
    encode_message,
    frontier_digest,
    space_token,
)
from replica_in_memory import MemoryReplica, make_chain, signing_key, space_id

KEY_A = bytes(signing_key(1000).verify_key)
KEY_B = bytes(signing_key(1001).verify_key)
S1, S2, S3 = space_id(1), space_id(2), space_id(3)
NOW_MS = 1_800_000_000_000


@pytest.fixture(params=[1, 2], ids=["v1", "v2"])
def version(request: pytest.FixtureRequest) -> int:
    """Each outcome holds for both protocol versions."""
    return int(request.param)


def pair(ra: MemoryReplica, rb: MemoryReplica, spaces_a: Iterable[bytes] = (S1,),
         spaces_b: Iterable[bytes] | None = None, *,
         version: int) -> tuple[SyncSession, SyncSession]:
    spaces_b = spaces_a if spaces_b is None else spaces_b
    return (SyncSession(KEY_A, KEY_B, spaces_a, ra, version=version),
            SyncSession(KEY_B, KEY_A, spaces_b, rb, version=version))


def apply(events: list[SyncEvent], replica: MemoryReplica, log: list[SyncEvent]) -> None:
    log.extend(events)
    for event in events:
        if isinstance(event, RecordsReceived):
            replica.append(event.raws)


def run(a: SyncSession, b: SyncSession, ra: MemoryReplica, rb: MemoryReplica,
        *, chunk: int | None = None) -> tuple[list[SyncEvent], list[SyncEvent], int]:
    """Shuttle bytes both ways until neither side has anything to say; return events and flights."""
    got_a: list[SyncEvent] = []
    got_b: list[SyncEvent] = []
    flights = 0
    while True:
        out_a, out_b = a.data_to_send(), b.data_to_send()
        if not out_a and not out_b:
            break
        flights += 1
        for data, receiver, replica, log in ((out_a, b, rb, got_b), (out_b, a, ra, got_a)):
            step = chunk or max(len(data), 1)
            for at in range(0, len(data), step):
                apply(receiver.receive_data(data[at : at + step]), replica, log)
    assert a.complete
    assert b.complete
    a.receive_eof()
    b.receive_eof()
    return got_a, got_b, flights


def chains(space: bytes, authors: Iterable[int], count: int) -> list[Record]:
    return [r for n in authors for r in make_chain(signing_key(n), space, count)]


def test_in_sync_pair_takes_one_round_trip_and_few_bytes_per_member(version: int) -> None:
    records = chains(S1, range(200), 1)  # a 200-member congregation, one record each
    ra, rb = MemoryReplica(records), MemoryReplica(records)
    a, b = pair(ra, rb, version=version)
    _, _, flights = run(a, b, ra, rb)
    assert flights == 1  # hello crossed hello; nothing else
    total = a.stats.bytes_sent + b.stats.bytes_sent
    assert total == a.stats.bytes_received + b.stats.bytes_received
    assert total <= 64 * 200
    assert total < 100  # in fact O(1) per space: a token and a digest each way
    assert a.stats.spaces_in_sync == b.stats.spaces_in_sync == 1


def test_in_sync_pair_reports_the_peer_frontier(version: int) -> None:
    records = chains(S1, range(3), 2)
    ra, rb = MemoryReplica(records), MemoryReplica(records)
    a, b = pair(ra, rb, version=version)
    got_a, _, _ = run(a, b, ra, rb)
    assert got_a == [PeerFrontier(S1, rb.frontier(S1))]


def test_empty_side_receives_everything_in_chain_order(version: int) -> None:
    records = chains(S1, range(4), 5)
    ra, rb = MemoryReplica(records), MemoryReplica()
    a, b = pair(ra, rb, version=version)
    _, got_b, _ = run(a, b, ra, rb)
    assert rb.ids() == ra.ids()
    assert not rb.pending  # nothing arrived ahead of its predecessor
    assert a.stats.records_sent == b.stats.records_received == 20
    frontiers = [e for e in got_b if isinstance(e, PeerFrontier)]
    assert frontiers == [PeerFrontier(S1, ra.frontier(S1))]


def test_both_sides_end_with_the_union(version: int) -> None:
    full = {n: make_chain(signing_key(n), S1, 6) for n in range(5)}
    ra = MemoryReplica(r for n in (0, 1, 2) for r in full[n][:4])
    rb = MemoryReplica(r for n in (1, 2, 3, 4) for r in full[n][: 2 + n])
    a, b = pair(ra, rb, version=version)
    run(a, b, ra, rb)
    assert ra.ids() == rb.ids()
    assert ra.frontier(S1) == rb.frontier(S1)
    assert len(ra.ids()) == 4 + 4 + 4 + 5 + 6


def test_one_byte_at_a_time_gives_the_same_result(version: int) -> None:
    records = chains(S1, range(3), 4)
    ra, rb = MemoryReplica(records[:5]), MemoryReplica(records[3:])
    a, b = pair(ra, rb, version=version)
    run(a, b, ra, rb, chunk=1)
    assert ra.ids() == rb.ids() == {r.id for r in records}


def test_long_chains_go_in_bounded_batches(version: int) -> None:
    records = make_chain(signing_key(7), S1, 2 * MAX_BATCH_RECORDS + 10)
    ra, rb = MemoryReplica(records), MemoryReplica()
    a, b = pair(ra, rb, version=version)
    _, got_b, _ = run(a, b, ra, rb)
    batches = [e for e in got_b if isinstance(e, RecordsReceived)]
    assert len(batches) == 3
    assert all(len(batch.raws) <= MAX_BATCH_RECORDS for batch in batches)
    assert rb.ids() == ra.ids()


def test_large_records_go_in_batches_bounded_by_bytes(version: int) -> None:
    records = make_chain(signing_key(8), S1, 20, body_bytes=60_000)
    ra, rb = MemoryReplica(records), MemoryReplica()
    a, b = pair(ra, rb, version=version)
    _, got_b, _ = run(a, b, ra, rb)
    batches = [e for e in got_b if isinstance(e, RecordsReceived)]
    assert len(batches) >= 3
    assert all(sum(map(len, batch.raws)) <= MAX_BATCH_BYTES for batch in batches)
    assert rb.ids() == ra.ids()


def test_several_spaces_sync_together(version: int) -> None:
    ra = MemoryReplica(chains(S1, [1], 3) + chains(S2, [2], 3))
    rb = MemoryReplica(chains(S2, [3], 2) + chains(S3, [4], 2))
    a, b = pair(ra, rb, [S1, S2, S3], version=version)
    run(a, b, ra, rb)
    assert ra.ids() == rb.ids()
    assert a.stats.spaces_in_common == 3
    assert a.stats.spaces_synced == b.stats.spaces_synced == {S1, S2, S3}


def test_a_space_only_one_side_offers_is_neither_synced_nor_named(version: int) -> None:
    secret_records = chains(S1, [1], 3)
    ra = MemoryReplica(secret_records + chains(S2, [2], 2))
    rb = MemoryReplica()
    a, b = pair(ra, rb, spaces_a=[S1, S2], spaces_b=[S2], version=version)
    sent_by_a = bytearray()
    while True:
        out_a, out_b = a.data_to_send(), b.data_to_send()
        if not out_a and not out_b:
            break
        sent_by_a += out_a
        rb.append(r for e in b.receive_data(out_a) if isinstance(e, RecordsReceived)
                  for r in e.raws)
        a.receive_data(out_b)
    assert a.complete
    assert b.complete
    assert rb.ids() == ra.ids(S2)
    assert S1 not in sent_by_a
    assert all(r.raw not in sent_by_a for r in secret_records)
    assert a.stats.spaces_offered == 2
    assert a.stats.spaces_in_common == 1
    assert a.stats.spaces_synced == b.stats.spaces_synced == {S2}


def test_the_same_space_has_a_different_token_with_every_peer() -> None:
    assert space_token(S1, KEY_A, KEY_B) == space_token(S1, KEY_B, KEY_A)
    assert space_token(S1, KEY_A, KEY_B) != space_token(S1, KEY_A, bytes(32))
    assert space_token(S1, KEY_A, KEY_B) != space_token(S2, KEY_A, KEY_B)


def test_a_session_stops_at_the_per_space_cap_and_says_more(
        monkeypatch: pytest.MonkeyPatch, version: int) -> None:
    monkeypatch.setattr(session_module, "MAX_RECORDS_PER_SPACE", 50)
    records = make_chain(signing_key(9), S1, 120)
    ra, rb = MemoryReplica(records), MemoryReplica()
    a, b = pair(ra, rb, version=version)
    run(a, b, ra, rb)
    assert len(rb.ids()) == 50
    assert b.stats.more_from_peer == frozenset({S1})
    # Neither side counts the space as level: one stopped at the cap, the other was told "more".
    assert a.stats.spaces_synced == b.stats.spaces_synced == frozenset()
    a, b = pair(ra, rb, version=version)
    run(a, b, ra, rb)
    a, b = pair(ra, rb, version=version)
    run(a, b, ra, rb)
    assert rb.ids() == ra.ids()
    assert b.stats.more_from_peer == frozenset()
    assert a.stats.spaces_synced == b.stats.spaces_synced == {S1}


def test_a_source_that_repeats_itself_cannot_make_the_session_loop(version: int) -> None:
    records = make_chain(signing_key(10), S1, 3)

    class Stuck(MemoryReplica):
        def records_after(self, space: bytes, theirs: object, *, limit: int) -> list[Record]:
            return list(records)  # ignores what the peer has

    ra, rb = Stuck(records), MemoryReplica()
    a, b = pair(ra, rb, version=version)
    run(a, b, ra, rb)
    assert rb.ids() == ra.ids()
    assert a.stats.records_sent == 3


def test_a_fork_at_the_head_is_shown_to_both_sides(version: int) -> None:
    key = signing_key(11)
    left = make_chain(key, S1, 2)
    right = make_chain(key, S1, 2, start_ts=1)  # same seqs, different records
    ra, rb = MemoryReplica(left), MemoryReplica(right)
    a, b = pair(ra, rb, version=version)
    run(a, b, ra, rb)
    assert a.stats.records_sent == b.stats.records_sent == 1  # each side's head, as evidence
    assert ra.forks == [right[1]]
    assert rb.forks == [left[1]]


def test_two_real_replicas_converge(tmp_path: Path, version: int) -> None:
    """The store's Replica is a RecordSource; its fork evidence passes the session's checks."""
    key = signing_key(14)
    mine, forked = make_chain(key, S2, 2), make_chain(key, S2, 2, start_ts=5)
    records = chains(S1, range(3), 4)
    with Replica.open(Home(tmp_path / "a")) as store_a, \
            Replica.open(Home(tmp_path / "b")) as store_b:
        store_a.append([r.raw for r in records[:7] + mine], now_ms=NOW_MS)
        store_b.append([r.raw for r in records[5:] + forked], now_ms=NOW_MS)  # author 1 from seq 2
        a = SyncSession(KEY_A, KEY_B, [S1, S2], store_a, version=version)
        b = SyncSession(KEY_B, KEY_A, [S1, S2], store_b, version=version)
        forks: dict[str, list[bytes]] = {"a": [], "b": []}
        while out := (a.data_to_send(), b.data_to_send()):
            if not any(out):
                break
            for data, receiver, store, name in ((out[0], b, store_b, "b"),
                                                (out[1], a, store_a, "a")):
                for event in receiver.receive_data(data):
                    if isinstance(event, RecordsReceived):
                        report = store.append(event.raws, sender="peer", now_ms=NOW_MS)
                        forks[name] += report.forks
        assert a.complete
        assert b.complete
        assert store_a.frontier(S1) == store_b.frontier(S1)
        assert len(store_a.frontier(S1)) == 3
        # A: authors 0 and 1 (7) and its S2 head as fork evidence. B: author 2 (4), author 1's
        # seq 4 (pending at B until A's records arrived: batches are fetched as they go) and
        # its own S2 head.
        assert (a.stats.records_sent, b.stats.records_sent) == (7 + 1, 4 + 1 + 1)
        # each side now holds the other's conflicting head as evidence of the fork
        assert forks == {"a": [forked[1].id], "b": [mine[1].id]}


def test_eof_before_completion_is_a_lost_connection(version: int) -> None:
    ra, rb = MemoryReplica(chains(S1, [1], 2)), MemoryReplica()
    a, b = pair(ra, rb, version=version)
    b.receive_data(a.data_to_send())
    with pytest.raises(ConnectionLost):
        b.receive_eof()
    with pytest.raises(LocalProtocolError):
        b.data_to_send()


def test_eof_inside_a_frame_is_a_lost_connection_too(version: int) -> None:
    """A node that stops, or loses its network, in the middle of a batch ends the stream there
    (test_honest_charges.py: a peer paid 50 points for it)."""
    ra, rb = MemoryReplica(chains(S1, [1], 2)), MemoryReplica()
    a, b = pair(ra, rb, version=version)
    b.receive_data(a.data_to_send()[:-1])
    with pytest.raises(ConnectionLost, match="middle of a frame"):
        b.receive_eof()


# --- a lying or broken peer ------------------------------------------------------------------


def fresh_b(records: Iterable[Record] = ()) -> SyncSession:
    """B, offering S1 and S2, after its own hello was sent."""
    b = SyncSession(KEY_B, KEY_A, [S1, S2], MemoryReplica(records), version=1)
    b.data_to_send()
    return b


TOKEN = space_token(S1, KEY_A, KEY_B)
TOKEN2 = space_token(S2, KEY_A, KEY_B)
EMPTY_DIGEST = frontier_digest(b"")


def frame(*msgs: object) -> bytes:
    return b"".join(encode_message(m) for m in msgs)  # type: ignore[arg-type]


def mismatch_hello(frontier_blob: bytes = b"\x00") -> bytes:
    """A's hello offering S1 with a digest unlike B's (B holds nothing)."""
    return frame(Hello(1, (Offer(TOKEN, frontier_digest(frontier_blob)),)))


BUSY_HELLO = frame(Hello(1, (Offer(TOKEN2, frontier_digest(b"\x00")),)))
"""A's hello offering only S2, out of sync: B is mid-exchange afterwards."""


def agreed_b(blob: bytes = b"") -> SyncSession:
    """B after hello and A's frontier crossed, with S1 out of sync (B has one record)."""
    b = fresh_b(make_chain(signing_key(12), S1, 1))
    b.receive_data(frame(Hello(1, (Offer(TOKEN, frontier_digest(blob)),))))
    b.receive_data(frame(FrontierMsg(TOKEN, blob)))
    return b


OTHER_SPACE_RECORD = make_chain(signing_key(13), S2, 1)[0].raw
SAME_SPACE_RECORD = make_chain(signing_key(13), S1, 1)[0].raw


@pytest.mark.parametrize(("data", "says"), [
    (b"\x01\xc1", "not valid msgpack"),
    (b"\x01\x05", "not a message array"),
    (frame(DoneMsg(TOKEN, False)).replace(b"\x93\x03", b"\x93\x09", 1), "Unknown"),
    (b"\x00", "outside"),
    (b"\xff\xff\xff\x7f", "outside"),
    (b"\xff\xff\xff\xff\x01", "too long"),
    (b"\x81\x00", "minimally"),
    (frame(DoneMsg(TOKEN, False)), "first sync message is not hello"),
    (frame(Hello(2, ())), "version 2"),
    (BUSY_HELLO + frame(Hello(1, ())), "hello twice"),
    (frame(Hello(1, (Offer(TOKEN, EMPTY_DIGEST),) * 2)), "same space twice"),
    (b"\x06\x93\x00\x01\xc4\x01x", "bad number of spaces"),
    (BUSY_HELLO + frame(RecordsMsg(TOKEN, (b"x",))), "not agreed"),
    (mismatch_hello() + frame(RecordsMsg(TOKEN, (b"x",))), "out of turn"),
    (mismatch_hello() + frame(DoneMsg(TOKEN, False)), "out of turn"),
    (mismatch_hello() + frame(FrontierMsg(TOKEN, bytes(72))), "does not match its digest"),
    (frame(Hello(1, (Offer(TOKEN, EMPTY_DIGEST), Offer(TOKEN2, b"x" * 16))),
           FrontierMsg(TOKEN, b"")), "not agreed"),
], ids=lambda value: value if isinstance(value, str) else "")
def test_a_broken_first_exchange_is_the_peers_fault(data: bytes, says: str) -> None:
    b = fresh_b()
    with pytest.raises(RemoteProtocolError, match=says):
        b.receive_data(data)
    with pytest.raises(LocalProtocolError):
        b.receive_data(b"")


def test_an_oversize_frame_is_refused_from_its_prefix_alone() -> None:
    b = fresh_b()
    with pytest.raises(RemoteProtocolError, match="outside"):
        b.receive_data(b"\x81\x80\x80\x01")  # 2**21 + 1: over the limit, no payload needed


def test_an_unsorted_frontier_is_refused() -> None:
    low, high = bytes(32), b"\xff" * 32
    entry = b"\x00" * 7 + b"\x01" + bytes(32)
    blob = high + entry + low + entry
    b = fresh_b()
    b.receive_data(mismatch_hello(blob))
    with pytest.raises(RemoteProtocolError, match="sorted"):
        b.receive_data(frame(FrontierMsg(TOKEN, blob)))


@pytest.mark.parametrize(("msgs", "says"), [
    ([FrontierMsg(TOKEN, b"")], "frontier twice"),
    ([RecordsMsg(TOKEN, (OTHER_SPACE_RECORD,))], "another space"),
    ([RecordsMsg(TOKEN, (b"\x01\x02",))], "another space"),
    ([DoneMsg(TOKEN, False), RecordsMsg(TOKEN, (SAME_SPACE_RECORD,))], "out of turn"),
    ([DoneMsg(TOKEN, False), DoneMsg(TOKEN, False)], "out of turn"),
], ids=lambda value: value if isinstance(value, str) else "")
def test_a_broken_stream_of_records_is_the_peers_fault(msgs: list[object], says: str) -> None:
    b = agreed_b()
    with pytest.raises(RemoteProtocolError, match=says):
        b.receive_data(frame(*msgs))


def test_too_many_records_in_a_session_is_the_peers_fault(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session_module, "MAX_RECORDS_PER_SPACE", 2)
    b = agreed_b()
    events = b.receive_data(frame(RecordsMsg(TOKEN, (SAME_SPACE_RECORD,) * 2)))
    assert [len(e.raws) for e in events if isinstance(e, RecordsReceived)] == [2]
    with pytest.raises(RemoteProtocolError, match="more records"):
        b.receive_data(frame(RecordsMsg(TOKEN, (SAME_SPACE_RECORD,))))


def test_data_after_completion_is_the_peers_fault(version: int) -> None:
    records = chains(S1, [1], 1)
    ra, rb = MemoryReplica(records), MemoryReplica(records)
    a, b = pair(ra, rb, version=version)
    run(a, b, ra, rb)
    with pytest.raises(RemoteProtocolError, match="after"):
        b.receive_data(frame(Hello(1, ())))


def test_a_batch_larger_than_the_limit_is_refused() -> None:
    b = agreed_b()
    with pytest.raises(RemoteProtocolError, match="records"):
        b.receive_data(frame(RecordsMsg(TOKEN, (SAME_SPACE_RECORD,) * (MAX_BATCH_RECORDS + 1))))


def test_keys_must_be_public_keys() -> None:
    with pytest.raises(LocalProtocolError):
        SyncSession(b"short", KEY_B, [], MemoryReplica())


def test_a_malformed_local_frontier_is_a_local_fault(version: int) -> None:
    class Broken(MemoryReplica):
        def frontier(self, space: bytes) -> dict[bytes, Head]:
            return {KEY_A: Head(1, b"short id")}

    with pytest.raises(LocalProtocolError):
        SyncSession(KEY_A, KEY_B, [S1], Broken(), version=version)


def test_the_frontier_encoding_is_canonical() -> None:
    records = chains(S1, range(3), 2)
    frontier = MemoryReplica(records).frontier(S1)
    blob = encode_frontier(frontier)
    assert len(blob) == 3 * 72
    assert encode_frontier(dict(reversed(list(frontier.items())))) == blob
