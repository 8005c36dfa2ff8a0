"""How ``meshcrew demo`` stops its nodes (``meshcrew.demo.processes.stop_all``): SIGTERM, then
SIGKILL once a node has had its time to stop counted as its own watchdog counts it (wall time
less its waits for a CPU), so on a busy machine SIGKILL does not cut a stop short; one that
hangs is still killed.

The processes stopped here stand in for nodes (a real node's stop is covered by
tests/test_node_stopping.py and the process tests): each does what a stop does to the clock,
work on a CPU or a hang, and says whether it finished.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshcrew.demo.processes import NodeProcess, stop_all
from meshcrew.home import Home

STOPPING = """
import os, signal, sys, time
os.sched_setaffinity(0, {int(sys.argv[1])})  # beside the busy loops, at a lower priority
os.nice(5)
def stop(*_):
    started = time.thread_time()
    while time.thread_time() - started < 0.3:  # 0.3 s of CPU: the last work of a stop
        pass
    print("finished", flush=True)
    os._exit(0)
signal.signal(signal.SIGTERM, stop)
print("ready", flush=True)
signal.pause()  # until the test's signal, or its kill by pid
"""

HOGS = 3
"""Busy loops beside the stop on its CPU: at equal priority it gets a quarter of it."""

HANGING = """
import signal
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a stop that hangs
print("ready", flush=True)
signal.pause()  # until the test's signal, or its kill by pid
"""


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[str]]]:
    """The processes a test starts; any still running at its end is killed by its pid."""
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def node_running(started: list[subprocess.Popen[str]], tmp_path: Path, script: str,
                 *args: str) -> NodeProcess:
    """A demo NodeProcess whose process runs ``script``, once it says it is ready."""
    process = subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE,
                               text=True)
    started.append(process)
    assert process.stdout is not None
    assert process.stdout.readline() == "ready\n"
    node = NodeProcess("Amara", Home(tmp_path / "amara"))
    node.process = process  # type: ignore[assignment]
    return node


def rest_of_output(node: NodeProcess) -> str:
    """What the process printed after "ready" (its pipe closed)."""
    assert node.process is not None
    assert node.process.stdout is not None
    with node.process.stdout as out:
        return str(out.read())


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.skipif(not Path(f"/proc/self/task/{os.getpid()}/schedstat").exists(),
                    reason="the kernel keeps no schedstat: the demo counts wall time")
def test_a_stop_that_waits_for_a_cpu_is_not_killed(started: list[subprocess.Popen[str]],
                                                   tmp_path: Path) -> None:
    """On one CPU beside three busy loops (of higher priority unless the test already runs at
    the lowest), the stop's 0.3 s of work takes over a second of wall time (past the 0.8 s
    given) but well under 0.8 s of its own."""
    cpu = min(os.sched_getaffinity(0))
    for _ in range(HOGS):
        started.append(subprocess.Popen(
            [sys.executable, "-c", "while True: pass"], text=True,
            preexec_fn=lambda: os.sched_setaffinity(0, {cpu})))  # noqa: PLW1509
    node = node_running(started, tmp_path, STOPPING, str(cpu))
    since = time.monotonic()
    stop_all([node], within=0.8)
    took = time.monotonic() - since
    for hog in started[:HOGS]:
        hog.kill()
    assert rest_of_output(node) == "finished\n", "SIGKILL cut the stop short"
    assert node.process is not None
    assert node.process.returncode == 0
    assert took > 0.8, f"the stop never waited for the CPU ({took:.2f} s): this proved nothing"


@pytest.mark.timeout(60)
def test_a_stop_that_hangs_is_killed(started: list[subprocess.Popen[str]],
                                     tmp_path: Path) -> None:
    node = node_running(started, tmp_path, HANGING)
    since = time.monotonic()
    stop_all([node], within=0.5)
    took = time.monotonic() - since
    assert rest_of_output(node) == ""
    assert node.process is not None
    assert node.process.returncode == -9  # SIGKILL
    assert 0.5 <= took < 10, f"killed after {took:.2f} s"


@pytest.mark.timeout(60)
def test_a_stop_gets_no_more_than_the_ceiling_of_wall_time(started: list[subprocess.Popen[str]],
                                                           tmp_path: Path) -> None:
    """However much of its own time a node still has (here 100 s), the demo ends."""
    node = node_running(started, tmp_path, HANGING)
    since = time.monotonic()
    stop_all([node], within=100, ceiling=0.5)
    took = time.monotonic() - since
    assert node.process is not None
    assert node.process.returncode == -9  # SIGKILL
    assert 0.5 <= took < 10, f"killed after {took:.2f} s"
