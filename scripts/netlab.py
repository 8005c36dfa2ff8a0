"""Run the NAT lab's scenarios and print what each found (``scripts/netlab --help``)."""

from __future__ import annotations

import argparse
import json
import sys

from meshcrew.netlab import missing
from meshcrew.netlab.scenarios import SCENARIOS, run


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/netlab", description="Run meshcrew nodes behind NATs in network "
        "namespaces (a relay on the 'internet', Ana and Bo behind two routers) and report how "
        "they connected. Needs root. Exits 1 if a scenario failed.")
    parser.add_argument("scenarios", nargs="*", choices=[[], *SCENARIOS], default=[],
                        metavar="SCENARIO", help=f"any of {', '.join(SCENARIOS)} (default: all)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="run each scenario N times and report the rates")
    args = parser.parse_args()
    reason = missing()
    if reason is not None:
        print(f"netlab: cannot run here: {reason}", file=sys.stderr)
        return 2
    failed = 0
    for name in args.scenarios or SCENARIOS:
        outcomes = []
        for number in range(1, args.repeat + 1):
            outcome = run(name)
            outcomes.append(outcome)
            failed += not outcome.ok
            if args.json:
                print(json.dumps(outcome.to_json()), flush=True)
            else:
                first = "-" if outcome.first_record_s is None else f"{outcome.first_record_s} s"
                if outcome.connect_record_s is not None:
                    first += f" ({outcome.connect_record_s} s after connecting)"
                print(f"{name:<14} run {number}: {'ok' if outcome.ok else 'FAILED'}  "
                      f"{outcome.connection}, hole punch {outcome.hole_punch}, first record "
                      f"{first}, records agree: {outcome.records_agree}  {outcome.detail}",
                      flush=True)
        if args.repeat > 1 and not args.json:
            punched = sum(o.hole_punch == "succeeded" for o in outcomes)
            firsts = sorted(o.first_record_s for o in outcomes if o.first_record_s is not None)
            print(f"{name}: {sum(o.ok for o in outcomes)}/{len(outcomes)} ok, hole punch "
                  f"succeeded {punched}/{len(outcomes)}, first record median "
                  f"{firsts[len(firsts) // 2] if firsts else '-'} s, max "
                  f"{firsts[-1] if firsts else '-'} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
