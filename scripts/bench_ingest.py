"""Benchmark: how fast the replica verifies and stores records, next to raw signature checks.

Run with ``scripts/bench-ingest`` (it uses the project's .venv). It signs N records (a few
authors writing in a few spaces, interleaved as sync would deliver them), then in the same run:

1. measures the raw pynacl verify rate: ``VerifyKey(author).verify(signed message)`` on exactly
   the messages those records sign (one VerifyKey per author, made before the clock starts), on
   one thread;
2. measures the ingest rate: appending them to a fresh replica in a temporary home folder, in
   batches (1,000 per append by default), as the node would; with ``--workers N``, the parallel
   mode: ``store.append_in_parallel``, the checks in N worker processes (``store.VerifyPool``,
   as the node's sync does) while this thread applies the chain rules in order;

alternating the two part by part (a batch; in the parallel mode a segment of 10,000 records,
so the workers' pipeline fills), and prints both rates and their ratio, in wall-clock time.

Targets: ingest >= 70% of the raw verify rate (issue 2); in the parallel mode on a machine of
more than one core, >= 130% of it (issue 15): beyond what one core can do. This is a benchmark,
not a test: it exits 1 when the target is missed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from nacl.signing import SigningKey, VerifyKey

from meshcrew.home import Home
from meshcrew.records import NEW_SPACE, SIG_BYTES, SIGN_DOMAIN, Record, sign_record
from meshcrew.store import Replica, VerifyPool, append_in_parallel

START_MS = 1_700_000_000_000
TARGET = 0.70
PARALLEL_TARGET = 1.30
SEGMENT = 25_000
PROGRESS_EVERY = 10_000 if sys.stderr.isatty() else 25_000


def make_records(count: int, authors: int, spaces: int, body_bytes: int) -> list[Record]:
    """``count`` records: each author has a chain in each space, delivered round-robin."""
    keys = [SigningKey(hashlib.sha256(b"bench author %d" % n).digest()) for n in range(authors)]
    space_ids = []
    for n in range(spaces):
        genesis = sign_record(keys[0], kind="space.create", space=NEW_SPACE, seq=1, prev=None,
                              ts=START_MS, body=b"bench space %d" % n)
        space_ids.append(genesis.id)
    heads: dict[tuple[int, int], tuple[int, bytes | None]] = {}
    out: list[Record] = []
    chains = [(a, s) for s in range(spaces) for a in range(authors)]
    rng = random.Random(1)
    while len(out) < count:
        a, s = chains[len(out) % len(chains)]
        seq, prev = heads.get((a, s), (0, None))
        if a == 0 and seq == 0:
            record = sign_record(keys[0], kind="space.create", space=NEW_SPACE, seq=1, prev=None,
                                 ts=START_MS, body=b"bench space %d" % s)
            assert record.id == space_ids[s]
        else:
            body = rng.randbytes(body_bytes)
            record = sign_record(keys[a], kind="checkin", space=space_ids[s], seq=seq + 1,
                                 prev=prev, ts=START_MS + len(out), body=body)
        heads[(a, s)] = (record.seq, record.id)
        out.append(record)
        if len(out) % PROGRESS_EVERY == 0:
            progress(f"signing {len(out):,}/{count:,}")
    return out


def signed_messages(records: list[Record]) -> list[tuple[VerifyKey, bytes]]:
    """Each record's author key and signed message, as pynacl's ``VerifyKey.verify`` takes them.

    One VerifyKey per author, made here, before any clock starts. The signed message is the
    domain prefix and the eight-field array (see records.py), behind the signature.
    """
    keys = {r.author: VerifyKey(r.author) for r in records}
    return [(keys[r.author], r.sig + SIGN_DOMAIN + b"\x98" + r.raw[1 : -SIG_BYTES - 2])
            for r in records]


def measure(records: list[Record], batch: int,
            workers: int) -> tuple[float, float, int, float, float]:
    """Raw verify rate, ingest rate, how many records the replica accepted, and the CPU time
    per record (µs: this process's threads, and the worker processes) of the raw checks and of
    the ingest.

    The two are measured part by part, alternately (verify part n with pynacl alone, then
    append part n to the replica), so both see the same machine: a load spike from another
    process slows both instead of skewing the ratio. A part is a batch, or with ``workers`` a
    segment of :data:`SEGMENT` records appended by ``append_in_parallel`` in transactions of
    ``batch``.
    """
    smessages = signed_messages(records)
    raws = [r.raw for r in records]
    now_ms = START_MS + len(records)
    raw_s = ingest_s = raw_cpu = ingest_cpu = 0.0
    part = SEGMENT if workers else batch
    with (tempfile.TemporaryDirectory(prefix="meshcrew-bench-") as tmp,
          Replica.open(Home(Path(tmp) / "home")) as replica, VerifyPool(workers or 1) as pool):
        if workers:  # start the workers before any clock runs
            pool.result(pool.submit(raws[:1], now_ms=now_ms))
        for i in range(0, len(raws), part):
            started, cpu_started = time.perf_counter(), time.process_time()
            for key, smessage in smessages[i : i + part]:
                key.verify(smessage)
            verified, cpu_verified = time.perf_counter(), time.process_time()
            workers_before = workers_cpu(pool)
            if workers:
                append_in_parallel(replica, raws[i : i + part], now_ms=now_ms, pool=pool,
                                   transaction_records=batch)
            else:
                replica.append(raws[i : i + part], now_ms=now_ms)
            raw_s += verified - started
            ingest_s += time.perf_counter() - verified
            raw_cpu += cpu_verified - cpu_started
            ingest_cpu += time.process_time() - cpu_verified + workers_cpu(pool) - workers_before
            done = min(i + part, len(raws))
            if done % PROGRESS_EVERY < part:
                progress(f"verify + ingest {done:,}/{len(raws):,}")
        accepted = replica.record_count()
    per_record = 1e6 / len(raws)
    return (len(raws) / raw_s, len(raws) / ingest_s, accepted, raw_cpu * per_record,
            ingest_cpu * per_record)


def workers_cpu(pool: VerifyPool) -> float:
    """CPU seconds the pool's worker processes have used so far (Linux; 0 before they start)."""
    total = 0.0
    executor = pool._pool  # the benchmark looks inside: CPU of processes it did not start
    for pid in list(executor._processes) if executor is not None else []:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def progress(text: str) -> None:
    """Overwrite one status line on a terminal; elsewhere, print it as a line."""
    if sys.stderr.isatty():
        sys.stderr.write(f"\r{text:<40}")
    else:
        sys.stderr.write(f"{text}\n")
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 0 when the target is met, 1 when it is not."""
    parser = argparse.ArgumentParser(prog="bench-ingest", description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1_000, help="records per append")
    parser.add_argument("--authors", type=int, default=5)
    parser.add_argument("--spaces", type=int, default=4)
    parser.add_argument("--body-bytes", type=int, default=200)
    parser.add_argument("--shuffle", action="store_true",
                        help="deliver in random order (exercises pending records), not chain order")
    parser.add_argument("--workers", type=int, default=0, metavar="N",
                        help="parallel mode: checks in N worker processes (0: Replica.append)")
    args = parser.parse_args(argv)

    records = make_records(args.records, args.authors, args.spaces, args.body_bytes)
    if args.shuffle:
        random.Random(2).shuffle(records)
    raw, ingest, accepted, raw_cpu, ingest_cpu = measure(records, args.batch, args.workers)
    if sys.stderr.isatty():
        sys.stderr.write("\r" + " " * 40 + "\r")
    if accepted != len(records):
        print(f"error: the replica accepted {accepted:,} of {len(records):,} records")
        return 2
    ratio = ingest / raw
    cores = os.cpu_count() or 1
    target = PARALLEL_TARGET if args.workers and cores > 1 else TARGET
    mode = (f"checks in {args.workers} worker process{'es' if args.workers > 1 else ''}"
            if args.workers else "one thread")
    print(f"records:            {len(records):,} ({args.authors} authors x {args.spaces} spaces, "
          f"{args.body_bytes}-byte bodies, {args.batch:,} per append, "
          f"{'shuffled' if args.shuffle else 'chain order'})")
    print(f"raw pynacl verify:  {raw:,.0f} signatures/s (one thread)")
    print(f"ingest:             {ingest:,.0f} records/s (decode, verify, chain rules, store; "
          f"{mode}; {cores} cores)")
    print(f"CPU per record:     raw {raw_cpu:.1f} µs, ingest {ingest_cpu:.1f} µs (workers "
          f"included; load average {os.getloadavg()[0]:.1f})")
    print(f"ratio ingest / raw: {ratio:.1%} (target >= {target:.0%}: "
          f"{'met' if ratio >= target else 'NOT met'})")
    return 0 if ratio >= target else 1

if __name__ == "__main__":
    sys.exit(main())
