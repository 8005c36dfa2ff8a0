"""The demo's ``meshcrew node`` processes: start them on loopback, wait until they answer,
reach them over their control sockets, and stop every one of them by its pid.

Each node runs in its own session (so a Ctrl-C on the terminal reaches only the demo, which then
stops them in order) and, on Linux, asks the kernel to send it SIGTERM if the demo process dies
without cleaning up, so no node outlives a killed demo.

A node stopped by SIGTERM gets :data:`STOP_WITHIN_S` of its own time before SIGKILL, counted as
its own watchdog counts (``meshcrew.node.stopping``: wall time less its waits for a CPU), so on
a busy machine SIGKILL never cuts a stop the node would finish itself (its last act saves the
views it keeps for the next start).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from meshcrew.errors import DemoError
from meshcrew.home import Home
from meshcrew.node.control_client import ControlClient, control_types
from meshcrew.node.stopping import OwnClock

LOOPBACK = "/ip4/127.0.0.1/tcp/0"
"""Where demo nodes listen: loopback only, a port the system picks."""

READY_WITHIN_S = 30.0
"""How long a node may take to answer on its control socket after it is started."""

STOP_WITHIN_S = 3.0
"""How much of its own time a node gets after SIGTERM before SIGKILL (its watchdog ends its stop
at 1.8 s of its own time)."""

STOP_CEILING_S = 30.0
"""Most wall time a node gets after SIGTERM, however long it waits for a CPU: the demo ends."""

_PR_SET_PDEATHSIG = 1
_POLL_S = 0.05


def _die_with_parent() -> None:  # pragma: no cover - runs in the child, between fork and exec
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class NodeProcess:
    """One member's home folder and its ``meshcrew node`` process (once launched).

    Args:
        name: the member's display name (for messages).
        home: the member's home folder, holding an identity.
        passphrase_file: the key file's passphrase, if it is sealed.
    """

    def __init__(self, name: str, home: Home, *, passphrase_file: str | None = None) -> None:
        self.name = name
        self.home = home
        self.process: subprocess.Popen[bytes] | None = None
        self._passphrase_file = passphrase_file
        self._client: ControlClient | None = None

    @property
    def output_file(self) -> os.PathLike[str]:
        """Where the process's stdout and stderr go."""
        return self.home.path / "node.out"

    def launch(self, *, bootstrap: Sequence[str] = ()) -> None:
        """Start ``meshcrew node`` on loopback, without mDNS; do not wait for it."""
        command = [sys.executable, "-m", "meshcrew", "--home", str(self.home.path)]
        if self._passphrase_file:
            command += ["--passphrase-file", self._passphrase_file]
        command += ["node", "--listen", LOOPBACK, "--no-mdns"]
        for addr in bootstrap:
            command += ["--bootstrap", addr]
        with open(self.output_file, "ab") as out:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_die_with_parent)  # noqa: PLW1509

    @property
    def pid(self) -> int | None:
        """The process id, once launched."""
        return None if self.process is None else self.process.pid

    def running(self) -> bool:
        """Whether the process was launched and has not ended."""
        return self.process is not None and self.process.poll() is None

    def answers(self) -> bool:
        """Whether the node answers on its control socket.

        Raises:
            DemoError: the process has ended (its output is in the message).
        """
        if self.process is not None and self.process.poll() is not None:
            raise DemoError(f"{self.name}'s node exited with status {self.process.returncode}: "
                            f"{self._last_output()}")
        self._client = ControlClient.if_running(self.home, control_types())
        return self._client is not None

    def _last_output(self) -> str:
        try:
            with open(self.output_file, "rb") as out:
                text = out.read().decode(errors="replace")
        except OSError:
            return "no output"
        return " ".join(text.split()[-60:]) or "no output"

    def call(self, op: str, *args: Any, **kwargs: Any) -> Any:
        """Run ``op`` in the node over its control socket (as ``meshcrew --home H ...`` does).

        Raises:
            MeshcrewError: what the node raised, or HomeError when it cannot be reached.
        """
        client = self._client or ControlClient(self.home.socket_file, control_types())
        self._client = client
        return client.call(op, *args, **kwargs)

    def addrs(self) -> list[str]:
        """The node's dialable addresses (multiaddrs ending in ``/p2p/<peer id>``)."""
        return list(self.call("status").addrs)


def wait_all_ready(nodes: Sequence[NodeProcess], within: float = READY_WITHIN_S) -> None:
    """Wait until every node answers on its control socket.

    Raises:
        DemoError: a node exited, or did not answer within ``within`` seconds.
    """
    deadline = time.monotonic() + within
    waiting = list(nodes)
    while waiting:
        waiting = [node for node in waiting if not node.answers()]
        if not waiting:
            return
        if time.monotonic() > deadline:
            names = ", ".join(node.name for node in waiting)
            raise DemoError(f"The demo node of {names} did not start within {within:.0f} s.")
        time.sleep(_POLL_S)


def stop_all(nodes: Sequence[NodeProcess], within: float = STOP_WITHIN_S,
             ceiling: float = STOP_CEILING_S) -> None:
    """SIGTERM every node at once and wait until each has ended: SIGKILL one once it has had
    ``within`` seconds of its own time (:class:`~meshcrew.node.stopping.OwnClock`) since, or
    ``ceiling`` seconds of wall time."""
    stopping = [(node.process, OwnClock(node.process.pid)) for node in nodes
                if node.process is not None and node.process.poll() is None]
    for process, _ in stopping:
        process.send_signal(signal.SIGTERM)
    started = time.monotonic()
    while stopping := [(p, clock) for p, clock in stopping if p.poll() is None]:
        for process, clock in stopping:
            if clock.seconds() > within or time.monotonic() - started > ceiling:
                process.kill()
        time.sleep(_POLL_S)
