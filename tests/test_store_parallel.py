"""Records checked in other threads: the replica ends the same as when it checks them itself.

``verify_batch`` (any thread) then ``Replica.append_verified`` is ``Replica.append`` split in
two; ``append_in_parallel`` runs the first step on several threads and the second in order, in
several transactions. Each is compared with the reference model of ``test_store_order`` over
record sets with gaps, forks, broken links and duplicates, in any order.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshcrew.home import Home
from meshcrew.reasons import Reason
from meshcrew.records import Record
from meshcrew.store import Replica, append_in_parallel, verify_batch
from store_factory import NOW_MS, Chain, key, space
from test_store_order import model, record_sets, replica_state


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), records=record_sets())
def test_parallel_append_gives_the_model_state(data: st.DataObject,
                                               records: list[Record]) -> None:
    order = data.draw(st.permutations(records))
    workers = data.draw(st.integers(1, 3))
    chunk = data.draw(st.integers(1, 5))
    transaction = data.draw(st.integers(1, 12))
    with (tempfile.TemporaryDirectory(prefix="meshcrew-parallel-") as tmp,
          Replica.open(Home(Path(tmp) / "home")) as replica):
        report = append_in_parallel(replica, [r.raw for r in order], now_ms=NOW_MS,
                                    workers=workers, chunk_records=chunk,
                                    transaction_records=transaction, in_flight_chunks=2)
        state = replica_state(replica)
    expected = model(records)
    assert state == expected
    assert set(report.accepted) == expected.accepted
    assert len(report.accepted) == len(expected.accepted)
    assert len(report.pending) == sum(expected.pending.values())


def test_append_verified_logs_what_verification_refused(tmp_path: Path) -> None:
    chain = Chain(key(0), space(0))
    good = chain.extend(3)
    forged = bytearray(chain.next().raw)
    forged[-1] ^= 1  # the signature's last byte
    raws = [good[0].raw, bytes(forged), good[1].raw, b"not a record", good[2].raw]
    with Replica.open(Home(tmp_path / "a")) as a, Replica.open(Home(tmp_path / "b")) as b:
        batch = verify_batch(raws, now_ms=NOW_MS)
        assert [r.id for r in batch.records] == [r.id for r in good]
        assert len(batch) == len(raws)
        split = b.append_verified(batch, sender="peer", now_ms=NOW_MS)
        whole = a.append(raws, sender="peer", now_ms=NOW_MS)
        assert split.accepted == whole.accepted == [r.id for r in good]
        assert [e.reason for e in split.rejected] == [e.reason for e in whole.rejected] == [
            Reason.BAD_SIGNATURE, Reason.MALFORMED]
        assert b.rejects() == a.rejects()


def test_parallel_append_of_a_long_chain_keeps_its_order(tmp_path: Path) -> None:
    chain = Chain(key(1), space(1))
    records = chain.extend(600)
    with Replica.open(Home(tmp_path / "home")) as replica:
        report = append_in_parallel(replica, [r.raw for r in records], now_ms=NOW_MS,
                                    workers=2, chunk_records=64, transaction_records=200)
        assert report.accepted == [r.id for r in records]
        assert not report.pending
        assert replica.frontier(space(1))[chain.author].seq == 600
