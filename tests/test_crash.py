"""Crash safety: a writer SIGKILLed mid-append keeps every committed batch and a sound file.

A child process (this file run as a script) appends up to 100k records in transactions of 1,000
and prints each batch's number and last id, flushed, after the commit. The parent kills it with
SIGKILL (by pid) once a few batches are reported, reopens the replica and checks: integrity_check
is ok, every record of every reported batch is accepted, and the batch in flight is there
entirely or not at all. It does this for a few rounds, each child resuming where the replica
stands; each kill is aimed at the moment the child next writes its WAL.
"""

from __future__ import annotations

import itertools
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import IO

import pytest

from meshcrew.home import Home
from meshcrew.records import Record
from meshcrew.store import RecordState, Replica
from store_factory import NOW_MS, Chain, key, raws, space

BATCH = 1_000
TOTAL = 100_000
AUTHORS = 4
BODY_BYTES = 2_000
ROUNDS = 3
REPORTS_BEFORE_KILL = (4, 2, 3)
DEADLINE_S = 60
WRITE_WAIT_S = 2


def batches(start: int = 0) -> Iterator[list[Record]]:
    """The child's batches, from number ``start`` on; the same in every process.

    Batch n holds seqs ``n*250+1 .. (n+1)*250`` of each of the four authors' chains, in chain
    order, so every batch extends chains the replica already holds up to batch n - 1.
    """
    per_chain = BATCH // AUTHORS
    chains = [Chain(key(a), space(0)) for a in range(AUTHORS)]
    for number in range(TOTAL // BATCH):
        batch = [chain.next(body=b"%d:%d:" % (number, a) + b"x" * BODY_BYTES)
                 for _ in range(per_chain) for a, chain in enumerate(chains)]
        if number >= start:
            yield batch


def child(home_path: str) -> None:
    """Append the batches the replica lacks, reporting each after its commit."""
    with Replica.open(Home.resolve(home_path)) as replica:
        start = replica.record_count() // BATCH
        for number, batch in enumerate(batches(start), start):
            replica.append(raws(batch), now_ms=NOW_MS)
            print(number, batch[-1].id.hex(), flush=True)


def _pump(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _wait_for_a_write(home: Home) -> None:
    """Return as soon as the child writes its WAL again (its next commit), or after a while.

    Killing right then makes the kill likely to land while a commit is being written, the case
    that matters, rather than while the child is checking signatures.
    """
    wal = home.replica_file.with_name(home.replica_file.name + "-wal")

    def stamp() -> tuple[int, int]:
        try:
            info = wal.stat()
        except FileNotFoundError:
            return (0, 0)
        return (info.st_size, info.st_mtime_ns)

    before = stamp()
    deadline = time.monotonic() + WRITE_WAIT_S
    while stamp() == before and time.monotonic() < deadline:
        pass


def _run_and_kill(home: Home, reports_before_kill: int) -> dict[int, bytes]:
    """Start a child, SIGKILL it after that many reports; every batch it reported."""
    reported: dict[int, bytes] = {}
    with subprocess.Popen([sys.executable, __file__, str(home.path)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        lines: queue.Queue[str | None] = queue.Queue()
        reader = threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True)
        reader.start()
        try:
            deadline = time.monotonic() + DEADLINE_S
            while len(reported) < reports_before_kill:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
                if line is None:
                    pytest.fail(f"the child ended early: {proc.stderr.read()}")
                number, last_id = line.split()
                reported[int(number)] = bytes.fromhex(last_id)
            _wait_for_a_write(home)
            os.kill(proc.pid, signal.SIGKILL)
            assert proc.wait(timeout=DEADLINE_S) == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=DEADLINE_S)
        reader.join(timeout=DEADLINE_S)
        # Lines written before the kill are committed batches too.
        while (line := lines.get_nowait()) is not None:
            number, last_id = line.split()
            reported[int(number)] = bytes.fromhex(last_id)
    return reported


@pytest.mark.slow
def test_a_killed_writer_keeps_every_committed_batch(home: Home) -> None:
    reported: dict[int, bytes] = {}
    for round_ in range(ROUNDS):
        reported |= _run_and_kill(home, REPORTS_BEFORE_KILL[round_])
        conn = sqlite3.connect(home.replica_file)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        finally:
            conn.close()

    last = max(reported)
    assert sorted(reported) == list(range(last + 1))
    expected = list(itertools.islice(batches(), last + 2))
    with Replica.open(home) as replica:
        for number in range(last + 1):
            batch = expected[number]
            assert batch[-1].id == reported[number]
            assert all(replica.state_of(r.id) is RecordState.ACCEPTED for r in batch)
        # The batch in flight when the child died: all of it or none of it.
        in_flight = {replica.state_of(r.id) for r in expected[last + 1]}
        assert in_flight in ({RecordState.ACCEPTED}, {None})
        assert replica.record_count() in {(last + 1) * BATCH, (last + 2) * BATCH}
        # And the replica carries on.
        after = replica.record_count() // BATCH
        nxt = next(batches(after))
        assert len(replica.append(raws(nxt), now_ms=NOW_MS).accepted) == BATCH


if __name__ == "__main__":
    child(sys.argv[1])
