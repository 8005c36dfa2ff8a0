"""Run the real-network chaos test (tests/test_chaos.py) for N seeds and print a table.

Each seed starts eight (``--nodes``) ``meshcrew node`` processes on loopback in fresh homes,
runs the seeded kill / restart / partition / check-in loop, heals, and waits for every replica
of each space to agree and hold every acknowledged check-in. Exit status 1 if any seed failed.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from node_processes import Fleet
from test_chaos import ChaosResult, run_chaos


def one(seed: int, steps: int, size: int) -> tuple[ChaosResult, float]:
    """One seed in its own fleet, always stopped by pid."""
    started = time.monotonic()
    fleet = Fleet()
    try:
        result = run_chaos(fleet, seed, steps=steps, size=size)
    except BaseException as error:  # pytest.fail raises outside BaseException's Exception tree
        if isinstance(error, KeyboardInterrupt):
            raise
        result = ChaosResult(seed=seed, problem=f"{type(error).__name__}: {error}"[:200])
    finally:
        fleet.close()
    return result, time.monotonic() - started


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    # SIGTERM, and SIGINT even when started in the background (where it is ignored), end the
    # run through KeyboardInterrupt, so the current fleet is stopped by pid.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=10, help="how many seeds (default 10)")
    parser.add_argument("--first", type=int, default=1, help="the first seed (default 1)")
    parser.add_argument("--steps", type=int, default=30, help="chaos steps a seed (default 30)")
    parser.add_argument("--nodes", type=int, default=8, choices=range(4, 9),
                        help="node processes (4-8, default 8)")
    args = parser.parse_args()
    print("| seed | steps | kills | restarts | partitions | freezes | check-ins posted "
          "| acknowledged | converged in | penalty bans | total | result |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    failed = 0
    for seed in range(args.first, args.first + args.seeds):
        r, total = one(seed, args.steps, args.nodes)
        failed += not r.ok
        verdict = "pass" if r.ok else f"FAIL ({r.problem})"
        print(f"| {seed} | {r.steps} | {r.kills} | {r.restarts} | {r.partitions} | {r.freezes} "
              f"| {r.posted} | {r.acknowledged} | {r.converge_s:.1f} s | {r.penalty_bans} "
              f"| {total:.0f} s | {verdict} |",
              flush=True)
        if not r.ok:
            print("\n".join(r.log), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
