"""``meshcrew`` with no command opens the app in a terminal (and prints help without one)."""

from __future__ import annotations

import contextlib
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

MESHCREW = str(Path(sys.executable).with_name("meshcrew"))
_ESCAPES = re.compile(rb"\x1b(\[[0-9;?<>=]*[ -/]*[@-~]|\][^\x07]*\x07|[@-Z\\-_])")


def read_until(fd: int, wanted: bytes, within: float) -> bytes:
    """Read the terminal until ``wanted`` shows (escape sequences removed), or fail."""
    seen = b""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                seen += os.read(fd, 65536)
            except OSError:
                break
            if wanted in _ESCAPES.sub(b"", seen).replace(b" ", b""):
                return seen
    pytest.fail(f"{wanted!r} did not show within {within} s; the terminal showed "
                f"{_ESCAPES.sub(b'', seen)[-500:]!r}")


@pytest.mark.timeout(60)
def test_meshcrew_alone_opens_the_app_in_a_terminal(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "MESHCREW_HOME": str(home), "TERM": "xterm-256color",
           "COLUMNS": "100", "LINES": "30"}
    pid, fd = pty.fork()
    if pid == 0:  # the child: meshcrew on a terminal
        os.execve(MESHCREW, [MESHCREW], env)
    try:
        read_until(fd, b"Welcometomeshcrew", within=30)  # the first run: no identity yet
        os.write(fd, b"\x11")  # ctrl+q
        deadline = time.monotonic() + 15
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                pytest.fail("meshcrew did not quit on ctrl+q")
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                with contextlib.suppress(OSError):  # the terminal closes as the app exits
                    os.read(fd, 65536)
        assert os.waitstatus_to_exitcode(status) == 0
        assert not (home / "identity.key").exists()  # nothing made without a name
    finally:
        os.close(fd)
        with contextlib.suppress(ProcessLookupError, ChildProcessError):  # already ended
            os.kill(pid, 9)
            os.waitpid(pid, 0)


def test_meshcrew_alone_without_a_terminal_prints_help(tmp_path: Path) -> None:
    done = subprocess.run([MESHCREW], capture_output=True, text=True, timeout=60, check=False,
                          stdin=subprocess.DEVNULL,
                          env={**os.environ, "MESHCREW_HOME": str(tmp_path / "home")})
    assert done.returncode == 2
    assert "usage: meshcrew" in done.stdout


def test_cli_commands_do_not_load_textual() -> None:
    code = ("import sys, meshcrew.cli.app; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'textual'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("module", ["meshcrew.tui.backend", "meshcrew.tui.health",
                                    "meshcrew.tui.node_runner", "meshcrew.tui.node_backend",
                                    "meshcrew.tui.attached", "meshcrew.tui.launch"])
def test_the_backend_side_of_the_app_does_not_load_textual(module: str) -> None:
    code = (f"import sys, {module}; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'textual'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.strip() == "[]"
