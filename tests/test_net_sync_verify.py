"""Sync sessions that check records on worker threads (issue 15, part 1), over real hosts.

The verifier runs ``verify_batch`` in threads; the session hands ``RecordsVerified`` on in
arrival order; between the stream and the workers a bounded queue stops the session reading
(and so, by flow control, the peer sending) while the handler is behind.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest
import trio

from hosts_on_loopback import open_hosts, wait_until
from meshcrew.net import PoolVerifier, RecordsVerified, SessionEvent, SyncService, Verifier
from meshcrew.records import Record, record_id
from meshcrew.store import VerifiedBatch, VerifyPool, verify_batch
from meshcrew.store.verify import IN_WORKERS_FROM
from meshcrew.sync import MAX_BATCH_RECORDS, PeerFrontier
from replica_in_memory import MemoryReplica, make_chain, signing_key, space_id

pytestmark = pytest.mark.trio
S1 = space_id(1)
NOW_MS = 1_800_000_000_000


def checked(raws: Sequence[bytes]) -> VerifiedBatch:
    return verify_batch(raws, now_ms=NOW_MS)


async def test_verified_batches_arrive_in_order_and_all_before_the_session_ends() -> None:
    chains = [make_chain(signing_key(n), S1, 700) for n in (1, 2)]
    source = MemoryReplica([r for chain in chains for r in chain])
    sink = MemoryReplica()
    threads: set[str] = set()
    arrived: list[bytes] = []

    def verify(raws: Sequence[bytes]) -> VerifiedBatch:
        threads.add(threading.current_thread().name)
        return checked(raws)

    async def on_event(peer_id: str, event: SessionEvent) -> None:
        assert isinstance(event, RecordsVerified | PeerFrontier)
        if isinstance(event, RecordsVerified):
            assert not event.batch.refused
            arrived.extend(r.id for r in event.batch.records)
            sink.append(r.raw for r in event.batch.records)

    with trio.fail_after(30):
        async with open_hosts(2) as [a, b], trio.open_nursery() as nursery:
            server = SyncService(b, source, lambda: [S1], lambda s, k: True, on_event)
            client = SyncService(a, sink, lambda: [S1], lambda s, k: True, on_event,
                                 verifier=Verifier(verify, workers=2, ahead=3))
            await nursery.start(server.run)
            await a.connect(b.listen_addrs()[0])
            stats = await client.sync_with(b.peer_id)
            # Everything was handed on before sync_with returned.
            assert stats.records_received == 1400
            assert len(arrived) == 1400
            nursery.cancel_scope.cancel()
    assert threading.current_thread().name not in threads
    # Each author's records came in chain order (the order the peer sent them).
    for chain in chains:
        positions = [arrived.index(r.id) for r in chain]
        assert positions == sorted(positions)
    assert sink.ids() == source.ids()


async def test_a_slow_handler_stops_the_session_reading_instead_of_buffering() -> None:
    source = MemoryReplica(make_chain(signing_key(3), S1, 20 * MAX_BATCH_RECORDS))
    started = 0
    delivered = 0
    let_go = trio.Event()

    def verify(raws: Sequence[bytes]) -> VerifiedBatch:
        nonlocal started
        started += 1
        return checked(raws)

    async def on_event(peer_id: str, event: SessionEvent) -> None:
        nonlocal delivered
        if isinstance(event, RecordsVerified):
            await let_go.wait()  # the replica is "busy"
            delivered += 1

    ahead = 2
    with trio.fail_after(30):
        async with open_hosts(2) as [a, b], trio.open_nursery() as nursery:
            server = SyncService(b, source, lambda: [S1], lambda s, k: True, on_event)
            client = SyncService(a, MemoryReplica(), lambda: [S1], lambda s, k: True, on_event,
                                 verifier=Verifier(verify, workers=2, ahead=ahead))
            await nursery.start(server.run)
            await a.connect(b.listen_addrs()[0])
            done: list[int] = []

            async def sync() -> None:
                done.append((await client.sync_with(b.peer_id)).records_received)

            nursery.start_soon(sync)
            await wait_until(lambda: started >= ahead)
            await trio.testing.wait_all_tasks_blocked(cushion=0.2)
            # One batch in the handler, `ahead` queued, one being queued: no more were read.
            assert started <= ahead + 2
            assert delivered == 0
            let_go.set()
            await wait_until(lambda: bool(done), within=20)
            assert done == [20 * MAX_BATCH_RECORDS]
            assert delivered == started == 20
            nursery.cancel_scope.cancel()


async def test_refused_records_are_handed_on_with_their_reasons() -> None:
    chain = make_chain(signing_key(4), S1, 5)
    forged = bytearray(chain[2].raw)
    forged[-1] ^= 1
    bad = Record(*[getattr(chain[2], f) for f in
                   ("version", "kind", "space", "author", "seq", "prev", "ts", "body", "sig")],
                 bytes(forged), record_id(bytes(forged)))

    class Lying(MemoryReplica):
        def records_after(self, space: bytes, theirs: object, *, limit: int) -> list[Record]:
            sent = super().records_after(space, theirs, limit=limit)  # type: ignore[arg-type]
            return [bad if r.id == chain[2].id else r for r in sent]

    source = Lying(chain)
    batches: list[VerifiedBatch] = []

    async def on_event(peer_id: str, event: SessionEvent) -> None:
        if isinstance(event, RecordsVerified):
            batches.append(event.batch)

    with trio.fail_after(30):
        async with open_hosts(2) as [a, b], trio.open_nursery() as nursery:
            server = SyncService(b, source, lambda: [S1], lambda s, k: True, on_event)
            client = SyncService(a, MemoryReplica(), lambda: [S1], lambda s, k: True, on_event,
                                 verifier=Verifier(checked))
            await nursery.start(server.run)
            await a.connect(b.listen_addrs()[0])
            await client.sync_with(b.peer_id)
            nursery.cancel_scope.cancel()
    records = [r for batch in batches for r in batch.records]
    refused = [(raw, error) for batch in batches for raw, error in batch.refused]
    assert [r.seq for r in records] == [1, 2, 4, 5]
    assert [raw for raw, _ in refused] == [bytes(forged)]
    assert refused[0][1].reason.value == "bad_signature"


async def test_a_failing_verifier_ends_the_session_for_both_sides() -> None:
    source = MemoryReplica(make_chain(signing_key(5), S1, 10))

    def broken(raws: Sequence[bytes]) -> VerifiedBatch:
        raise RuntimeError("the verifier broke")

    async def ignore(peer_id: str, event: SessionEvent) -> None:
        pass

    with trio.fail_after(30):
        async with open_hosts(2) as [a, b], trio.open_nursery() as nursery:
            server = SyncService(b, source, lambda: [S1], lambda s, k: True, ignore)
            client = SyncService(a, MemoryReplica(), lambda: [S1], lambda s, k: True, ignore,
                                 verifier=Verifier(broken))
            await nursery.start(server.run)
            await a.connect(b.listen_addrs()[0])
            with pytest.raises(RuntimeError, match="the verifier broke"):
                await client.sync_with(b.peer_id)
            # A local failure is not the peer's fault: neither side lost points.
            assert b.peer_id not in client.last_stats
            assert a.scores.points(b.peer_id, time.monotonic()) == 0
            assert b.scores.points(a.peer_id, time.monotonic()) == 0
            nursery.cancel_scope.cancel()


async def test_the_nodes_verifier_checks_in_worker_processes_and_keeps_the_order() -> None:
    """PoolVerifier (the node's): large batches are checked by a VerifyPool's worker process,
    small ones at once; the records that passed come back in their order, a forged one refused
    with its reason, whichever path it took."""
    chains = [make_chain(signing_key(n), S1, 650) for n in (6, 7)]
    forged_ids = {chains[0][300].id}  # in a full batch; and the last of a small one, below

    def forge(record: Record) -> Record:
        raw = bytearray(record.raw)
        raw[-1] ^= 1
        return Record(*[getattr(record, f) for f in
                        ("version", "kind", "space", "author", "seq", "prev", "ts", "body",
                         "sig")], bytes(raw), record_id(bytes(raw)))

    class Lying(MemoryReplica):
        def records_after(self, space: bytes, theirs: object, *, limit: int) -> list[Record]:
            sent = super().records_after(space, theirs, limit=limit)  # type: ignore[arg-type]
            if 0 < len(sent) < IN_WORKERS_FROM:
                forged_ids.add(sent[-1].id)
            return [forge(r) if r.id in forged_ids else r for r in sent]

    source = Lying([r for chain in chains for r in chain])
    batches: list[VerifiedBatch] = []

    async def on_event(peer_id: str, event: SessionEvent) -> None:
        if isinstance(event, RecordsVerified):
            batches.append(event.batch)

    with trio.fail_after(60), VerifyPool(workers=1) as pool:
        async with open_hosts(2) as [a, b], trio.open_nursery() as nursery:
            server = SyncService(b, source, lambda: [S1], lambda s, k: True, on_event)
            client = SyncService(a, MemoryReplica(), lambda: [S1], lambda s, k: True, on_event,
                                 verifier=PoolVerifier(pool, lambda: NOW_MS))
            await nursery.start(server.run)
            await a.connect(b.listen_addrs()[0])
            stats = await client.sync_with(b.peer_id)
            nursery.cancel_scope.cancel()
        assert pool.submitted >= 1300 // MAX_BATCH_RECORDS  # the full batches went to a worker
    assert stats.records_received == 1300
    assert [len(b.refused) for b in batches if len(b) < IN_WORKERS_FROM] == [1]  # small
    records = [r for batch in batches for r in batch.records]
    refused = [(raw, error) for batch in batches for raw, error in batch.refused]
    assert sorted(record_id(raw) for raw, _ in refused) == sorted(
        forge(r).id for chain in chains for r in chain if r.id in forged_ids)
    assert {error.reason.value for _, error in refused} == {"bad_signature"}
    assert len(records) == 1298
    for chain in chains:
        passed = [r.raw for r in records if r.author == chain[0].author]
        assert passed == [r.raw for r in chain if r.id not in forged_ids]
