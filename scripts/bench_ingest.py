"""Benchmark: how fast the replica verifies and stores records, next to raw signature checks.

Run with ``scripts/bench-ingest`` (it uses the project's .venv). It signs N records (a few
authors writing in a few spaces, interleaved as sync would deliver them), then in the same run:

1. measures the raw pynacl verify rate: ``VerifyKey(author).verify(signed message)`` on exactly
   the messages those records sign (one VerifyKey per author, made before the clock starts);
2. appends them to a fresh replica in a temporary home folder, in batches, as the node would;
3. measures the raw rate again, and prints both rates and ingest / raw (against the faster raw
   run, so a machine that speeds up meanwhile does not flatter the ratio).

Target (issue 2): ingest >= 70% of the raw verify rate. This is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import tempfile
import time
from pathlib import Path

from nacl.signing import SigningKey, VerifyKey

from meshcrew.home import Home
from meshcrew.records import NEW_SPACE, SIG_BYTES, SIGN_DOMAIN, Record, sign_record
from meshcrew.store import Replica

START_MS = 1_700_000_000_000
TARGET = 0.70


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
        if len(out) % 10_000 == 0:
            progress(f"signing {len(out):,}/{count:,}")
    return out


def raw_verify_rate(records: list[Record]) -> float:
    """Signatures checked per second by pynacl alone, on the records' own signed messages."""
    keys = {r.author: VerifyKey(r.author) for r in records}
    # The signed message is the domain prefix and the eight-field array (see records.py).
    smessages = [(keys[r.author], r.sig + SIGN_DOMAIN + b"\x98" + r.raw[1:-SIG_BYTES - 2])
                 for r in records]
    started = time.perf_counter()
    for key, smessage in smessages:
        key.verify(smessage)
    return len(smessages) / (time.perf_counter() - started)


def ingest_rate(records: list[Record], batch: int) -> tuple[float, int]:
    """Records verified and stored per second into a fresh replica; and how many it accepted."""
    raws = [r.raw for r in records]
    with tempfile.TemporaryDirectory(prefix="meshcrew-bench-") as tmp:
        home = Home(Path(tmp) / "home")
        with Replica.open(home) as replica:
            now_ms = START_MS + len(records)
            started = time.perf_counter()
            for i in range(0, len(raws), batch):
                replica.append(raws[i : i + batch], now_ms=now_ms)
                if (i // batch) % 10 == 9:
                    progress(f"ingest {i + batch:,}/{len(raws):,}")
            elapsed = time.perf_counter() - started
            accepted = replica.record_count()
    return len(raws) / elapsed, accepted


def progress(text: str) -> None:
    """Overwrite one status line on stderr."""
    sys.stderr.write(f"\r{text:<40}")
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 0 when the target is met, 1 when it is not."""
    parser = argparse.ArgumentParser(prog="bench-ingest", description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1_000, help="records per append")
    parser.add_argument("--authors", type=int, default=5)
    parser.add_argument("--spaces", type=int, default=4)
    parser.add_argument("--body-bytes", type=int, default=200)
    args = parser.parse_args(argv)

    records = make_records(args.records, args.authors, args.spaces, args.body_bytes)
    progress("raw verify (1/2)")
    raw_before = raw_verify_rate(records)
    ingest, accepted = ingest_rate(records, args.batch)
    progress("raw verify (2/2)")
    raw_after = raw_verify_rate(records)
    sys.stderr.write("\r" + " " * 40 + "\r")
    if accepted != len(records):
        print(f"error: the replica accepted {accepted:,} of {len(records):,} records")
        return 2
    raw = max(raw_before, raw_after)
    ratio = ingest / raw
    print(f"records:            {len(records):,} ({args.authors} authors x {args.spaces} spaces, "
          f"{args.body_bytes}-byte bodies, {args.batch:,} per append)")
    print(f"raw pynacl verify:  {raw_before:,.0f} /s before, {raw_after:,.0f} /s after")
    print(f"ingest (verify + store): {ingest:,.0f} records/s")
    print(f"ratio ingest / raw: {ratio:.1%} (target >= {TARGET:.0%}: "
          f"{'met' if ratio >= TARGET else 'NOT met'})")
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
