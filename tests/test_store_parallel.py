"""Records checked elsewhere: the replica ends the same as when it checks them itself.

``verify_batch`` then ``Replica.append_verified`` is ``Replica.append`` split in two; a
``VerifyPool`` runs the first step in worker processes and ``append_in_parallel`` the second in
order, in several transactions. Each is compared with the reference model of
``test_store_order`` over record sets with gaps, forks, broken links and duplicates, in any
order.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshcrew.errors import ReplicaError
from meshcrew.home import Home
from meshcrew.reasons import Reason
from meshcrew.records import Record
from meshcrew.store import Replica, VerifyPool, append_in_parallel, verify_batch
from meshcrew.store.verify import rebuilt
from store_factory import NOW_MS, Chain, key, space
from test_store_order import model, record_sets, replica_state


@pytest.fixture(scope="module")
def pools() -> Iterator[dict[int, VerifyPool]]:
    """Pools of 1, 2 and 3 worker processes, shared by the tests of this module."""
    made = {n: VerifyPool(n) for n in (1, 2, 3)}
    try:
        yield made
    finally:
        for pool in made.values():
            pool.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), records=record_sets())
def test_parallel_append_gives_the_model_state(data: st.DataObject, records: list[Record],
                                               pools: dict[int, VerifyPool]) -> None:
    order = data.draw(st.permutations(records))
    workers = data.draw(st.integers(1, 3))
    chunk = data.draw(st.integers(1, 5))
    transaction = data.draw(st.integers(1, 12))
    with (tempfile.TemporaryDirectory(prefix="meshcrew-parallel-") as tmp,
          Replica.open(Home(Path(tmp) / "home")) as replica):
        report = append_in_parallel(replica, [r.raw for r in order], now_ms=NOW_MS,
                                    pool=pools[workers], chunk_records=chunk,
                                    transaction_records=transaction, in_flight_chunks=2)
        state = replica_state(replica)
    expected = model(records)
    assert state == expected
    assert set(report.accepted) == expected.accepted
    assert len(report.accepted) == len(expected.accepted)
    assert len(report.pending) == sum(expected.pending.values())


def mixed_raws() -> tuple[list[Record], list[bytes]]:
    """Three good records with a forged one and junk between them."""
    chain = Chain(key(0), space(0))
    good = chain.extend(3)
    forged = bytearray(chain.next().raw)
    forged[-1] ^= 1  # the signature's last byte
    return good, [good[0].raw, bytes(forged), good[1].raw, b"not a record", good[2].raw]


def test_append_verified_logs_what_verification_refused(tmp_path: Path,
                                                        pools: dict[int, VerifyPool]) -> None:
    good, raws = mixed_raws()
    batch = verify_batch(raws, now_ms=NOW_MS)
    assert [r.id for r in batch.records] == [r.id for r in good]
    assert len(batch) == len(raws)
    pool = pools[2]
    from_workers = rebuilt(raws, pool.result(pool.submit(raws, now_ms=NOW_MS)))
    assert from_workers.records == batch.records
    assert [(raw, e.reason, e.detail) for raw, e in from_workers.refused] == [
        (raw, e.reason, e.detail) for raw, e in batch.refused]
    with Replica.open(Home(tmp_path / "a")) as a, Replica.open(Home(tmp_path / "b")) as b:
        split = b.append_verified(batch, sender="peer", now_ms=NOW_MS)
        whole = a.append(raws, sender="peer", now_ms=NOW_MS)
        assert split.accepted == whole.accepted == [r.id for r in good]
        assert [e.reason for e in split.rejected] == [e.reason for e in whole.rejected] == [
            Reason.BAD_SIGNATURE, Reason.MALFORMED]
        assert b.rejects() == a.rejects()


def test_a_dead_worker_fails_its_batch_and_the_next_gets_new_workers() -> None:
    _, raws = mixed_raws()
    with VerifyPool(1) as pool:
        assert len(pool.result(pool.submit(raws, now_ms=NOW_MS))) == 2
        executor = pool._pool
        assert executor is not None
        for pid in list(executor._processes):  # the worker, as an OOM kill would
            os.kill(pid, signal.SIGKILL)
        with pytest.raises(ReplicaError, match="Checking records failed"):
            pool.result(pool.submit(raws, now_ms=NOW_MS))
        assert pool.result(pool.submit(raws, now_ms=NOW_MS)) == [
            (1, "bad_signature", ""), (3, "malformed", "ExtraData")]
    with pytest.raises(ReplicaError, match="stopped"):
        pool.submit(raws, now_ms=NOW_MS)


def test_small_batches_are_checked_without_the_workers() -> None:
    good, raws = mixed_raws()
    with VerifyPool(2) as pool:
        assert [r.id for r in pool.verify(raws, now_ms=NOW_MS).records] == [r.id for r in good]
        assert pool._pool is None  # no process was started for five records


def test_parallel_append_of_a_long_chain_keeps_its_order(tmp_path: Path,
                                                         pools: dict[int, VerifyPool]) -> None:
    chain = Chain(key(1), space(1))
    records = chain.extend(600)
    with Replica.open(Home(tmp_path / "home")) as replica:
        report = append_in_parallel(replica, [r.raw for r in records], now_ms=NOW_MS,
                                    pool=pools[2], chunk_records=64, transaction_records=200)
        assert report.accepted == [r.id for r in records]
        assert not report.pending
        assert replica.frontier(space(1))[chain.author].seq == 600


_OWNER = """
import sys, time
from meshcrew.store import VerifyPool
pool = VerifyPool(2)
for future in [pool.submit([b"x"], now_ms=0) for _ in range(4)]:
    pool.result(future)
print(*pool._pool._processes, flush=True)
time.sleep(60)
"""


def test_workers_end_when_their_process_is_killed() -> None:
    # (its stderr is dropped: the killed owner's resource tracker warns about its semaphores)
    with subprocess.Popen([sys.executable, "-c", _OWNER], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True) as owner:
        try:
            _check_workers_end(owner)
        finally:
            owner.kill()
            owner.wait(timeout=10)


def _check_workers_end(owner: subprocess.Popen[str]) -> None:
    assert owner.stdout is not None
    workers = [int(pid) for pid in owner.stdout.readline().split()]
    assert workers
    owner.kill()  # no shutdown message reaches the workers
    owner.wait(timeout=10)
    deadline = time.monotonic() + 10
    while any(_running(pid) for pid in workers):
        assert time.monotonic() < deadline, "a worker outlived its owner"
        time.sleep(0.05)  # polled: another process's end signals nothing here


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


_UNGUARDED = """
from meshcrew.store import VerifyPool
print("started", flush=True)
pool = VerifyPool(2)
print(pool.result(pool.submit([b"x"] * 64, now_ms=0))[:1], flush=True)
pool.close()
"""


def test_workers_do_not_import_the_main_module(tmp_path: Path) -> None:
    # Under the `meshcrew` script the main module is the whole command line (about 0.2 s of CPU
    # per worker to import). Imported in a worker, this one, without the __main__ guard, would
    # start a pool of its own there, which multiprocessing refuses.
    script = tmp_path / "owner.py"
    script.write_text(_UNGUARDED)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == "started\n[(0, 'malformed', 'not an array')]\n"
