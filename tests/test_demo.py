"""``meshcrew demo``: headless end to end, in a real terminal (tmux), and cleaning up after
itself when stopped by a signal or killed outright.

Every test runs the demo as a real process with its own ``--dir`` and finds the demo's node
processes by that folder in their command lines (``--home DIR/amara`` ...), so it can check
that each one is gone afterwards; every wait polls a condition with a deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from meshcrew.cli import main
from meshcrew.demo.cast import members_beside
from meshcrew.errors import MeshcrewError
from meshcrew.home import Home
from meshcrew.node import ControlClient, control_types
from node_processes import POLL_S, wait_for

MESHCREW = str(Path(sys.executable).with_name("meshcrew"))
DEMO_NAMES = ("Amara", "Bo", "Chen")


def node_pids(folder: Path) -> set[int]:
    """The processes whose command line names a home folder inside ``folder``."""
    marker = os.fsencode(f"{folder}/")
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # ended meanwhile
            continue
        if marker in cmdline and b"\0node\0" in cmdline:
            found.add(int(entry.name))
    return found


class PidWatch:
    """Records every demo node process seen while the demo runs (polled on a thread)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.seen: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PidWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.seen |= node_pids(self.folder)


@pytest.fixture
def demo_dir() -> Iterator[Path]:
    """A short path for a demo folder (not created: the demo makes it); afterwards, any node
    still running there is killed and the folder removed, whatever the test did."""
    parent = Path(tempfile.mkdtemp(prefix="mcd-"))
    folder = parent / "demo"
    try:
        yield folder
    finally:
        for pid in node_pids(folder):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(parent, ignore_errors=True)


def environment() -> dict[str, str]:
    """The environment without MESHCREW_HOME (the demo ignores it anyway)."""
    return {k: v for k, v in os.environ.items() if k != "MESHCREW_HOME"}


def assert_cleaned_up(folder: Path, seen: set[int]) -> None:
    """Every node process seen has ended and the demo folder is gone."""
    assert len(seen) >= len(DEMO_NAMES)
    wait_for(lambda: not seen & node_pids(folder), within=5, what="the demo's nodes to end")
    assert not folder.exists()


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_headless_demo_syncs_live_and_the_replicas_agree(demo_dir: Path) -> None:
    """Run as Bo: the demo member Bo then takes a spare name (Dara), so no two are called
    alike (the app's default name, You, is the terminal test's)."""
    demo_names = ("Amara", "Dara", "Chen")
    with PidWatch(demo_dir) as watch:
        done = subprocess.run(
            [MESHCREW, "demo", "--headless", "--seconds", "6", "--every", "1.5", "--seed", "7",
             "--dir", str(demo_dir), "--name", "Bo", "--json"],
            capture_output=True, text=True, timeout=80, check=False, env=environment(),
            stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["agree"] is True
    assert summary["crew"] == "Riverside crew"
    assert sorted(summary["members"]) == sorted([*demo_names, "Bo"])
    assert summary["live_checkins"] >= 2
    assert summary["live_received"] == summary["live_checkins"]
    assert set(summary["seen_by"]) == {*demo_names, "Bo"}
    assert summary["heard_by"] in demo_names
    replicas = summary["replicas"]
    assert [r["name"] for r in replicas] == [*demo_names, "Bo"]
    assert len({r["digest"] for r in replicas}) == 1
    assert len({r["records"] for r in replicas}) == 1
    # seeded history (weeks of check-ins, answers, joins, keys) plus the live part
    assert replicas[0]["records"] > 30 + summary["live_checkins"]
    assert "Starting the nodes of Amara, Dara and Chen" in done.stderr
    assert_cleaned_up(demo_dir, watch.seen)


def test_the_demo_app_without_a_terminal_is_refused(tmp_path: Path) -> None:
    done = subprocess.run([MESHCREW, "demo", "--dir", str(tmp_path / "d")], capture_output=True,
                          text=True, timeout=60, check=False, stdin=subprocess.DEVNULL,
                          env=environment())
    assert done.returncode == 2
    assert "--headless" in done.stderr
    assert not (tmp_path / "d").exists()


def test_a_demo_folder_that_holds_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    done = subprocess.run([MESHCREW, "demo", "--headless", "--dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=60, check=False,
                          stdin=subprocess.DEVNULL, env=environment())
    assert done.returncode == 1
    assert "not empty" in done.stderr
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_a_home_inside_the_demo_folder_is_refused_before_anything_starts(tmp_path: Path
                                                                         ) -> None:
    """The demo folder is removed at the end: a --home in it (say --dir D --home D/bo) lost
    the crew the help promises stays there, and D/bo was also where Bo's home goes."""
    folder = tmp_path / "d"
    done = subprocess.run([MESHCREW, "demo", "--headless", "--dir", str(folder), "--home",
                           str(folder / "bo")], capture_output=True, text=True, timeout=60,
                          check=False, stdin=subprocess.DEVNULL, env=environment())
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        f"meshcrew: error: Your --home {folder / 'bo'} is inside the demo folder {folder}, "
        "which the demo removes at the end: give a --home outside it (or none, for a "
        "temporary identity).")
    assert "Traceback" not in done.stderr
    assert not folder.exists()


def test_the_demos_help_says_what_its_home_is(capsys: pytest.CaptureFixture[str]) -> None:
    """It showed the global --home help: '(default: $MESHCREW_HOME, else the platform's data
    folder)', which the demo does not use (it makes a temporary identity)."""
    assert main(["demo", "--help"]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert ("--home DIR your home folder in the demo crew, outside the demo folder (default: a "
            "temporary one in the demo folder; $MESHCREW_HOME is not used)") in shown
    assert main(["init", "--help"]) == 0  # the other commands keep theirs
    assert "(default: $MESHCREW_HOME, else" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize(("yours", "demo_members"), [
    ("You", ("Amara", "Bo", "Chen")),
    ("bo", ("Amara", "Dara", "Chen")),
    ("Amara", ("Dara", "Bo", "Chen")),
    ("Dara", ("Amara", "Bo", "Chen")),
])
def test_no_demo_member_has_your_name(yours: str, demo_members: tuple[str, ...]) -> None:
    """--name Bo (or a --home whose identity is Bo) listed the crew as "Amara, Bo, Bo, Chen"."""
    assert members_beside(yours) == demo_members


def _start_headless(folder: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [MESHCREW, "demo", "--headless", "--seconds", "600", "--dir", str(folder)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment(),
        stdin=subprocess.DEVNULL)


@pytest.mark.timeout(60)
def test_sigterm_stops_every_node_and_removes_the_folder(demo_dir: Path) -> None:
    demo = _start_headless(demo_dir)
    try:
        with PidWatch(demo_dir) as watch:
            # Running: the three demo members' nodes and yours.
            wait_for(lambda: len(node_pids(demo_dir)) == 4, within=40,
                     what="four demo nodes")
            demo.send_signal(signal.SIGTERM)
            status = demo.wait(timeout=20)
        assert status == 130
        assert_cleaned_up(demo_dir, watch.seen)
    finally:
        demo.kill()
        demo.communicate()


@pytest.mark.timeout(60)
def test_nodes_do_not_outlive_a_killed_demo(demo_dir: Path) -> None:
    demo = _start_headless(demo_dir)
    try:
        wait_for(lambda: len(node_pids(demo_dir)) == 4, within=40, what="four demo nodes")
        demo.kill()  # no chance to clean up: the kernel tells each node (PDEATHSIG)
        demo.wait(timeout=10)
        wait_for(lambda: not node_pids(demo_dir), within=10,
                 what="the nodes of a killed demo to end")
    finally:
        demo.kill()
        demo.communicate()


# --- a real terminal ---------------------------------------------------------------------------


class Tmux:
    """A private tmux server (its own socket) with one session of 160x48."""

    def __init__(self, name: str) -> None:
        self.socket = name
        self.session = name

    def run(self, *args: str) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True,
                              text=True, timeout=10, check=False)
        if done.returncode != 0:
            pytest.fail(f"tmux {' '.join(args)}: {done.stderr}")
        return done.stdout

    def start(self, command: list[str]) -> None:
        self.run("new-session", "-d", "-x", "160", "-y", "48", "-s", self.session,
                 shlex.join(["env", "-u", "MESHCREW_HOME", "-u", "COLUMNS", "-u", "LINES",
                             "TERM=xterm-256color", *command]))

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", self.session)

    def keys(self, *keys: str, literal: bool = False) -> None:
        self.run("send-keys", "-t", self.session, *(["-l"] if literal else []), *keys)

    def wait_until(self, condition: Callable[[str], bool], within: float, what: str) -> str:
        """Poll the screen until ``condition(screen)``; fail with the screen after ``within``."""
        deadline = time.monotonic() + within
        while True:
            screen = self.screen()
            if condition(screen):
                return screen
            if time.monotonic() > deadline:
                pytest.fail(f"gave up after {within:.0f} s waiting for {what}; the screen:\n"
                            f"{screen}")
            time.sleep(POLL_S)

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True,
                       timeout=10, check=False)


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_demo_in_a_real_terminal_check_in_reaches_a_demo_member(demo_dir: Path) -> None:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (scripts/install test installs it)")
    token = f"tmux-zebra-{os.getpid()}"
    tmux = Tmux(f"meshcrew-demo-test-{os.getpid()}")
    done_marker = "DEMO-EXITED-"
    try:
        with PidWatch(demo_dir) as watch:
            # The pane's shell outlives the demo, so its exit status stays on the screen.
            demo = shlex.join([MESHCREW, "demo", "--dir", str(demo_dir), "--seed", "11",
                               "--every", "600"])
            tmux.start(["sh", "-c", f"{demo}; echo {done_marker}$?; sleep 60"])
            tmux.wait_until(lambda s: "Riverside crew" in s and "connected to 3 peers" in s,
                            within=45, what="the home screen with the crew and 3 peers")
            tmux.keys("Enter")  # open the highlighted crew
            tmux.wait_until(lambda s: "c Check in" in s and "Members" in s, within=10,
                            what="the crew's screen")
            tmux.keys("c")
            tmux.wait_until(lambda s: "How are you arriving?" in s, within=10,
                            what="the check-in form")
            tmux.keys(f"Arriving through a real terminal {token}", literal=True)
            tmux.wait_until(lambda s: token in s, within=10, what="the typed text")
            tmux.keys("Tab")  # to the energy
            _open_choices(tmux)
            tmux.keys("Down", "Down", "Enter")
            tmux.wait_until(lambda s: "choose 1 to 5" not in s and "full of energy" not in s,
                            within=10, what="an energy to be chosen")
            tmux.keys("C-s")
            # The form closes and the timeline shows the check-in.
            tmux.wait_until(lambda s: token in s and "How are you arriving?" not in s,
                            within=10, what="the check-in in the timeline")
            wait_for(lambda: token in _texts_of(demo_dir / "amara"), within=20,
                     what="Amara's replica to hold the check-in")
            # A demo member answers it, and the answer reaches the app.
            tmux.wait_until(lambda s: _heard_under(s, token), within=20,
                            what="a demo member's 'heard you' under the check-in")
            tmux.keys("Escape")
            tmux.wait_until(lambda s: "n New space" in s, within=10, what="the home screen")
            tmux.keys("q")
            screen = tmux.wait_until(lambda s: done_marker in s, within=20,
                                     what="the demo to exit")
        assert f"{done_marker}0" in screen
        assert_cleaned_up(demo_dir, watch.seen)
    finally:
        tmux.kill()


def _texts_of(home: Path) -> str:
    """The texts of the crew's posts in a demo member's replica, asked of its running node over
    its control socket as ``log "Riverside crew" --json`` asks it (without a Python per poll);
    empty until the node answers with the crew."""
    client = ControlClient.if_running(Home(home), control_types())
    if client is None:
        return ""
    try:
        found = client.call("log", client.call("resolve_space", "Riverside crew"), events=True)
    except MeshcrewError:
        return ""
    return " ".join(str(e.to_json().get("text", "")) for e in found)


def _heard_under(screen: str, token: str) -> bool:
    """Whether the timeline line after the check-in's text is a "heard you" reaction."""
    lines = screen.splitlines()
    at = next((n for n, line in enumerate(lines) if token in line), None)
    return at is not None and at + 1 < len(lines) and "││   heard you" in lines[at + 1]


def _open_choices(tmux: Tmux) -> None:
    """Open the focused energy choice with Enter (again if the focus had not moved yet: an
    early Enter only adds a trailing newline to the text, which the form strips)."""
    for _ in range(10):
        tmux.keys("Enter")
        try:
            tmux.wait_until(lambda s: "5 · full of energy" in s, within=1,
                            what="the energy choices")
        except pytest.fail.Exception:
            continue
        return
    pytest.fail("the energy choices did not open")
