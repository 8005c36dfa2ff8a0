"""Run the simulator's named scenarios: summary table, JSON and convergence plot for each.

Use ``scripts/simulate`` (it installs matplotlib). ``--table`` prints a Markdown table of the
scenarios' saved JSON files, for docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from meshcrew.sim import SCENARIOS, run_scenario
from meshcrew.sim.plot import plot_convergence

OUT = Path(__file__).resolve().parent.parent / "docs" / "sim"

_TABLE = (
    ("members / crews", lambda s: f"{s['members']} / {s['crews']}"),
    ("posts (setup records)", lambda s: f"{s['posts']:,} ({s['setup_records']:,})"),
    ("deliveries", lambda s: f"{s['deliveries']:,}"),
    ("records lost", lambda s: f"{s['lost_records']}"),
    ("records undelivered at the end", lambda s: f"{sum(s.get('undelivered', {}).values())}"),
    ("delivery p50 / p95", lambda s: f"{_t(s['delay_p50_s'])} / {_t(s['delay_p95_s'])}"),
    ("ready delay p50 / p99 / max", lambda s: f"{_t(s['ready_p50_s'])} / "
                                              f"{_t(s['ready_p99_s'])} / {_t(s['ready_max_s'])}"),
    ("record held by all p50 / max", lambda s: f"{_t(s['full_p50_s'])} / {_t(s['full_max_s'])}"),
    ("  bound: last member first up, p50",
     lambda s: _t(s["bound_p50_s"]) if "bound_p50_s" in s else "—"),
    ("last post to convergence", lambda s: _t(s["drain_s"]) if s["converged"]
     else f"not in {_t(s['drain_s'])}"),
    ("sent / node / day: mean", lambda s: _b(s["bytes_per_node_day"]["total"])),
    ("  of which gossip / control / sync",
     lambda s: " / ".join(_b(s["bytes_per_node_day"][k]) for k in ("gossip", "control", "sync"))),
    ("sent / node / day: max", lambda s: _b(s["bytes_per_node_day_max"])),
    ("busiest relay / day", lambda s: _b(s["relay_bytes_per_day_max"])),
    ("sync sessions run / counted in sync",
     lambda s: f"{s['sync']['run for real']:,} / {s['sync']['counted in sync']:,}"),
    ("records sent by sync / deliveries",
     lambda s: f"{s['sync']['records sent'] / max(s['deliveries'], 1):.2f}"),
    ("replica per node: mean / max",
     lambda s: f"{_b(s['replica_bytes_mean'])} / {_b(s['replica_bytes_max'])}"),
    ("carriers: records taken / refused",
     lambda s: f"{s['carriers']['records_taken']:,.0f} / {s['carriers']['refused_over_quota']:,.0f}"
     if s.get("carriers") else "—"),
    ("peak RSS per node", lambda s: f"{s['measured']['rss_per_node_kib']:.0f} KiB"),
    ("wall time (run)", lambda s: f"{s['measured']['run_s']:.0f} s"),
)


def _t(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _b(n: float) -> str:
    if n < 1024:
        return f"{n:.0f} B"
    if n < 1024**2:
        return f"{n / 1024:.0f} KiB"
    return f"{n / 1024**2:.1f} MiB"


def table(names: list[str], out: Path) -> str:
    """A Markdown table comparing saved runs."""
    runs = [json.loads((out / f"{name}.json").read_text())["summary"] for name in names]
    lines = ["| | " + " | ".join(f"`{n}`" for n in names) + " |",
             "| --- |" + " ---: |" * len(names)]
    lines += [f"| {label} | " + " | ".join(cell(run) for run in runs) + " |"
              for label, cell in _TABLE]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="scenarios to run (see --list)")
    parser.add_argument("--all", action="store_true", help="run every scenario")
    parser.add_argument("--list", action="store_true", help="list the scenarios")
    parser.add_argument("--seed", type=int, help="override the scenario's seed")
    parser.add_argument("--days", type=float, help="override the days of posting")
    parser.add_argument("--out", type=Path, default=OUT, help="folder for .json and .png")
    parser.add_argument("--no-plot", action="store_true", help="write no PNG")
    parser.add_argument("--table", action="store_true",
                        help="print a Markdown table of the named scenarios' saved JSON")
    args = parser.parse_args(argv)
    if args.list:
        for name, scenario in SCENARIOS.items():
            print(f"{name:<26} {scenario.description}")
        return 0
    names = list(SCENARIOS) if args.all else args.names
    unknown = [n for n in names if n not in SCENARIOS]
    if not names or unknown:
        parser.error(f"unknown scenario {unknown[0]!r}" if unknown else "name a scenario")
    if args.table:
        print(table(names, args.out))
        return 0
    if len(names) > 1:
        # One process per scenario, so each one's peak memory is its own.
        flags = [f for f, v in (("--no-plot", args.no_plot),) if v]
        flags += [f"--out={args.out}"] + ([f"--seed={args.seed}"] if args.seed is not None else [])
        flags += [f"--days={args.days}"] if args.days is not None else []
        codes = [subprocess.run([sys.executable, __file__, name, *flags], check=False).returncode
                 for name in names]
        return max(codes)
    failed = False
    for name in names:
        scenario = SCENARIOS[name]
        if args.seed is not None:
            scenario = replace(scenario, seed=args.seed)
        if args.days is not None:
            scenario = replace(scenario, behaviour=replace(scenario.behaviour, days=args.days))
        print(f"== {name}: {scenario.description}", flush=True)
        summary, simulation = run_scenario(scenario)
        print(summary.table(), flush=True)
        args.out.mkdir(parents=True, exist_ok=True)
        data: dict[str, Any] = {"scenario": asdict(scenario), "summary": summary.to_json(),
                                "curve": [[p.at, p.expected, p.done]
                                          for p in simulation.metrics.curve]}
        (args.out / f"{name}.json").write_text(json.dumps(data, indent=1) + "\n")
        if not args.no_plot:
            plot_convergence(name, scenario.description, simulation.metrics.curve,
                             args.out / f"{name}.png")
        failed |= summary.lost_records > 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
