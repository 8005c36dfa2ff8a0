"""Mutation testing: mutmut 3 over the modules that guard security and data (issue 19).

Run with ``scripts/mutants`` (it installs the test tools, mutmut among them, and runs at
``nice -n 10``). For each module, in a fresh copy of ``src/``, ``tests/``, ``docs/`` and
``pyproject.toml`` in a temporary folder (mutmut 3 writes its mutated copy to ``mutants/`` under
the folder it runs in; the repository's tree is never touched), mutmut mutates that one module
and runs only the tests listed for it below, under the ``mutants`` Hypothesis profile (a
quarter of each property's examples, derandomized: ``--profile`` to choose another). Then, per
module: mutants made, killed, survived, timed out, other (no tests, suspicious), the share
killed, and each survivor's diff.

The share killed counts killed mutants over all mutants made; a timeout is not counted as killed.
docs/testing.md holds the figures and the survivors judged equivalent, with why. Exit status 1
if a module is below ``--target`` percent killed.
"""

from __future__ import annotations

import argparse
import configparser
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTMUT = ROOT / ".venv" / "bin" / "mutmut"

MODULES: dict[str, list[str]] = {
    "src/meshcrew/records.py": ["tests/test_records.py", "tests/test_parse_speed_equivalence.py"],
    "src/meshcrew/crypto.py": ["tests/test_crypto.py", "tests/test_kdf_strength.py"],
    "src/meshcrew/identity.py": ["tests/test_identity.py", "tests/test_kdf_strength.py",
                                 "tests/test_backup_file.py"],
    "src/meshcrew/spaces/sealing.py": ["tests/test_crypto.py",
                                       "tests/test_spaces_confidentiality.py",
                                       "tests/test_spaces_admission.py",
                                       "tests/test_spaces_attacks.py",
                                       "tests/test_spaces_posts.py", "tests/test_spaces_extend.py",
                                       "tests/test_spaces_views.py",
                                       "tests/test_spaces_editing.py",
                                       "tests/test_spaces_settings.py",
                                       "tests/test_spaces_transit.py",
                                       "tests/test_spaces_sealing.py",
                                       "tests/test_spaces_devices.py",
                                       "tests/test_service_settings.py",
                                       # open_more's tail (not the cost tests: 90 s, and
                                       # they count lines, which a mutant changes)
                                       "tests/test_post_cost.py::"
                                       "test_opening_new_posts_alone_gives_every_answer_opening"
                                       "_all_gives",
                                       "tests/test_post_cost.py::"
                                       "test_the_settings_read_once_a_minute_opens_only_the"
                                       "_posts_since"],
    "src/meshcrew/spaces/fold.py": ["tests/test_spaces_fold.py", "tests/test_spaces_admission.py",
                                    "tests/test_spaces_attacks.py", "tests/test_spaces_invites.py",
                                    "tests/test_spaces_properties.py",
                                    "tests/test_spaces_devices.py",
                                    "tests/test_spaces_devices_properties.py",
                                    "tests/test_spaces_carriers.py",
                                    "tests/test_spaces_fold_refusals.py",
                                    "tests/test_spaces_fold_hints.py"],
    "src/meshcrew/spaces/rules.py": ["tests/test_spaces_fold.py",
                                     "tests/test_spaces_admission.py",
                                     "tests/test_spaces_attacks.py",
                                     "tests/test_spaces_invites.py",
                                     "tests/test_spaces_properties.py",
                                     "tests/test_spaces_devices.py",
                                     "tests/test_spaces_devices_properties.py",
                                     "tests/test_spaces_carriers.py",
                                     "tests/test_spaces_fold_hints.py",
                                     "tests/test_spaces_rules.py"],
    "src/meshcrew/sync/wire.py": ["tests/test_sync_doc.py", "tests/test_sync_properties.py",
                                  "tests/test_sync_reconcile.py", "tests/test_sync_session.py",
                                  "tests/test_sync_record_space.py",
                                  "tests/test_sync_wire_refusals.py"],
    "src/meshcrew/store/ingest.py": ["tests/test_store.py", "tests/test_store_order.py",
                                     "tests/test_store_reasons.py", "tests/test_store_husks.py",
                                     "tests/test_store_reject_log.py"],
    "src/meshcrew/net/scores.py": ["tests/test_net_units.py"],
    "src/meshcrew/node/membership.py": ["tests/test_node_membership.py"],
}
"""Each module mutated, and the tests that cover it (pure and replica tests, no processes)."""

KILLED = {"killed", "caught by type check"}
IGNORED = ("__pycache__", "*.pyc", ".hypothesis", "*.egg-info", ".pytest_cache", "mutants")


@dataclass
class Outcome:
    """What mutmut made of one module."""

    module: str
    status: dict[str, str] = field(default_factory=dict)  # mutant name -> mutmut's status
    seconds: float = 0.0

    def count(self, *statuses: str) -> int:
        return sum(1 for s in self.status.values() if s in statuses)

    @property
    def killed_share(self) -> float:
        return 100.0 * self.count(*KILLED) / len(self.status) if self.status else 0.0

    def line(self) -> str:
        made = len(self.status)
        killed, survived = self.count(*KILLED), self.count("survived")
        timeout = self.count("timeout")
        other = made - killed - survived - timeout
        return (f"{self.module:34} made {made:4}  killed {killed:4}  survived {survived:3}  "
                f"timed out {timeout:2}  other {other:2}  killed {self.killed_share:5.1f}%  "
                f"({self.seconds / 60:.1f} min)")


def prepare(work: Path, module: str, tests: list[str]) -> None:
    """Copy the tree's sources and tests to ``work`` and point mutmut at ``module``."""
    ignore = shutil.ignore_patterns(*IGNORED)
    shutil.copytree(ROOT / "src", work / "src", ignore=ignore)
    shutil.copytree(ROOT / "tests", work / "tests", ignore=ignore)
    shutil.copytree(ROOT / "docs", work / "docs", ignore=ignore)  # tests read the docs
    shutil.copy2(ROOT / "pyproject.toml", work / "pyproject.toml")
    # pyproject.toml has no [tool.mutmut]: mutmut then reads setup.cfg, written here only.
    cfg = configparser.ConfigParser()
    cfg["mutmut"] = {
        "source_paths": "src",
        "also_copy": "\ndocs",
        "only_mutate": module,
        "pytest_add_cli_args_test_selection": "\n".join(["", *tests]),
        "pytest_add_cli_args": "\n".join(["", "-p", "no:cacheprovider", "-q"]),
    }
    with (work / "setup.cfg").open("w") as f:
        cfg.write(f)


def run_module(module: str, tests: list[str], *, jobs: int, keep: bool, verbose: bool,
               profile: str) -> Outcome:
    work = Path(tempfile.mkdtemp(prefix="meshcrew-mutants-"))
    outcome = Outcome(module)
    started = time.monotonic()
    try:
        prepare(work, module, tests)
        log = work / "mutmut.log"
        print(f"\n== {module}: mutating, tests {' '.join(tests)}", flush=True)
        print(f"   (work folder {work}, log {log})", flush=True)
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "HYPOTHESIS_PROFILE": profile}
        with log.open("w") as out:
            ran = subprocess.run([str(MUTMUT), "run", "--max-children", str(jobs)], cwd=work,
                                 env=env, stdout=None if verbose else out,
                                 stderr=subprocess.STDOUT, check=False)
        listed = subprocess.run([str(MUTMUT), "results", "--all", "true"], cwd=work, env=env,
                                capture_output=True, text=True, check=False)
        for match in re.finditer(r"^\s+(\S+): (.+)$", listed.stdout, re.MULTILINE):
            outcome.status[match.group(1)] = match.group(2).strip()
        if ran.returncode != 0 or not outcome.status:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            print(f"   mutmut failed (exit {ran.returncode}):\n{tail}", file=sys.stderr)
        outcome.seconds = time.monotonic() - started
        print("   " + outcome.line())
        for name, status in sorted(outcome.status.items()):
            if status in KILLED or status == "not checked":  # not checked: mutmut failed
                continue
            shown = subprocess.run([str(MUTMUT), "show", name], cwd=work, env=env,
                                   capture_output=True, text=True, check=False)
            diff = [ln for ln in shown.stdout.splitlines()
                    if ln.startswith(("+", "-")) and not ln.startswith(("+++", "---"))]
            print(f"   {status}: {name}")
            for ln in diff:
                print(f"      {ln}")
    finally:
        if keep:
            print(f"   kept {work} (mutmut show NAME / mutmut run NAME there)")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return outcome


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("modules", nargs="*", help="module paths (default: every module)")
    parser.add_argument("--list", action="store_true", help="show the modules and their tests")
    parser.add_argument("-j", "--jobs", type=int, default=1,
                        help="mutants tested at once (default 1: the machine is shared)")
    parser.add_argument("--target", type=float, default=90.0, help="percent killed per module")
    parser.add_argument("--keep", action="store_true", help="keep each module's work folder")
    parser.add_argument("--verbose", action="store_true", help="show mutmut's own output")
    parser.add_argument("--profile", default="mutants",
                        help="Hypothesis profile of the tests (default mutants: a quarter of "
                             "the examples, the same for every mutant; see "
                             "tests/hypothesis_profiles.py)")
    args = parser.parse_args()
    if args.list:
        for module, tests in MODULES.items():
            print(f"{module}\n    {' '.join(tests)}")
        return 0
    chosen = [str(Path(m)) for m in args.modules] or list(MODULES)
    unknown = [m for m in chosen if m not in MODULES]
    if unknown:
        parser.error(f"no tests listed for {', '.join(unknown)}: see --list")
    outcomes = [run_module(m, MODULES[m], jobs=args.jobs, keep=args.keep, verbose=args.verbose,
                           profile=args.profile)
                for m in chosen]
    print("\n== summary")
    for outcome in outcomes:
        print("   " + outcome.line())
    return 0 if all(o.killed_share >= args.target for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
