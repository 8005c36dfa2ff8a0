"""Every ``scripts/bench-*`` runs after the README's set-up, test tools or not (issue 15, part 5).

``scripts/demo`` installs no pytest or hypothesis, so each bench runs here through its own shell
script with both made unimportable (a folder on PYTHONPATH whose ``pytest`` and ``hypothesis``
raise ModuleNotFoundError), at sizes small enough for a test. A bench may miss its speed target
at these sizes (exit 1); what must not happen is a crash (a traceback, or any other status).
Speed is never asserted here.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def without_test_tools(tmp_path: Path) -> dict[str, str]:
    """An environment in which ``import pytest`` and ``import hypothesis`` fail."""
    for name in ("pytest", "hypothesis", "_pytest"):
        (tmp_path / f"{name}.py").write_text(
            f"raise ModuleNotFoundError(\"No module named '{name}'\", name={name!r})\n")
    env = {k: v for k, v in os.environ.items() if k not in ("MESHCREW_HOME", "PYTHONPATH")}
    env["PYTHONPATH"] = str(tmp_path)
    return env


def run_bench(env: dict[str, str], name: str, *args: str, within: float) -> str:
    done = subprocess.run([str(ROOT / "scripts" / name), *args], capture_output=True, text=True,
                          env=env, timeout=within, check=False, cwd=ROOT)
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output
    assert done.returncode in (0, 1), output  # 1: a target missed at this size
    return done.stdout


def test_the_shadow_really_hides_pytest(without_test_tools: dict[str, str]) -> None:
    done = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-c", "import pytest"],
                          capture_output=True, text=True, env=without_test_tools, timeout=60,
                          check=False)
    assert "No module named 'pytest'" in done.stderr


def test_bench_ingest_runs_without_test_tools(without_test_tools: dict[str, str]) -> None:
    out = run_bench(without_test_tools, "bench-ingest", "--records", "400", "--batch", "100",
                    within=120)
    assert "ratio ingest / raw" in out


@pytest.mark.slow
def test_bench_sync_runs_without_test_tools(without_test_tools: dict[str, str]) -> None:
    out = run_bench(without_test_tools, "bench-sync", "--members", "20", "--records", "50",
                    "--apart-members", "30",
                    "--node-records", "60", "--crew", "2", "--posts", "4", "--interval", "0.05",
                    within=240)
    assert "node catch-up (2 processes" in out
    assert "the ceiling: 2 processes verifying side by side" in out
    assert "records apart, 30 members" in out
    assert "publish-to-replica latency" in out


@pytest.mark.slow
def test_bench_tui_runs_without_test_tools(without_test_tools: dict[str, str]) -> None:
    out = run_bench(without_test_tools, "bench-tui", "--records", "60", "--presses", "2",
                    within=240)
    assert out.strip()


@pytest.mark.slow
def test_bench_flood_runs_without_test_tools(without_test_tools: dict[str, str]) -> None:
    out = run_bench(without_test_tools, "bench-flood", "--records", "200", "--copies", "100",
                    "--junk", "200", within=240)
    assert "runaway member: 200 records written" in out


@pytest.mark.slow
def test_bench_soak_runs_without_test_tools(without_test_tools: dict[str, str],
                                            tmp_path: Path) -> None:
    curve = tmp_path / "soak.png"
    out = run_bench(without_test_tools, "bench-soak", "--records", "200", "--posts", "5",
                    "--rate", "5", "--idle", "1", "--png", str(curve), within=240)
    assert "memory of the node and its verify workers" in out
    assert curve.exists()
    assert curve.with_suffix(".json").exists()
