"""Set up the demo crew and tear it down: one folder, three demo nodes, you as a member.

:class:`DemoCrew` is a context manager. :meth:`DemoCrew.set_up` makes the demo folder, writes
the crew's history (:mod:`.seed`), starts the demo members' ``meshcrew node`` processes on
loopback, has the founder's node invite you and lets you join over the network, exactly as a
real invite code works; then the demo members start checking in now and then (:mod:`.live`).
Leaving the block, however it is left, stops the crew's thread and every process it started (by
pid: SIGTERM, then SIGKILL after a deadline) and removes the demo folder.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from meshcrew import identity
from meshcrew.demo.cast import MEMBERS, SPARE_NAMES, members_beside
from meshcrew.demo.live import LiveCrew
from meshcrew.demo.processes import LOOPBACK, NodeProcess, stop_all, wait_all_ready
from meshcrew.demo.seed import SeededCrew, make_home, seed_crew
from meshcrew.errors import DemoError
from meshcrew.home import Home
from meshcrew.node.control_client import ControlClient, control_types
from meshcrew.node.reports import JoinResult

INVITE_VALID_MS = 60 * 60 * 1000
"""How long your invite to the demo crew stays usable."""

MAX_SOCKET_PATH = 100
"""Unix socket paths are limited to 108 bytes; the demo folder must leave room for them."""

HISTORY_WEEKS = 4


LOG_FILE = "demo.log"
"""The demo process's log, in the demo folder (each node logs to node.log in its home)."""

Progress = Callable[[str], None]


def wall_clock_ms() -> int:
    """The current time in UTC milliseconds."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class DemoPlan:
    """What the person asked of ``meshcrew demo``.

    Attributes:
        folder: the demo folder to make (None: a new temporary folder).
        home: your home folder (None: a temporary one in the demo folder, so your real
            identity and replica are never touched).
        name: your display name when a new identity is made for you.
        passphrase: your key file's passphrase, for a ``home`` whose key is sealed.
        passphrase_file: the file it came from (handed to your node process, if headless).
        seed: seeds the history and the live check-ins (None: a different demo every time).
        every_s: the mean time between two live check-ins by demo members.
        keep: leave the demo folder in place at the end.
    """

    folder: Path | None = None
    home: Home | None = None
    name: str = "You"
    passphrase: bytes | None = None
    passphrase_file: Path | None = None
    seed: int | None = None
    every_s: float = 30.0
    keep: bool = False


class DemoCrew:
    """Everything the demo started, owned until the block exits.

    Args:
        plan: what to set up.
        progress: told what is happening, a sentence at a time (setting up takes seconds).
    """

    def __init__(self, plan: DemoPlan, progress: Progress = lambda _: None) -> None:
        self.plan = plan
        self.progress = progress
        self.rng = random.Random(plan.seed)
        self.root: Path | None = None
        self.crew: SeededCrew | None = None
        self.members: list[NodeProcess] = []
        self.your_home: Home | None = None
        self.you: identity.Identity | None = None
        self.your_node: NodeProcess | None = None
        self.live: LiveCrew | None = None
        self._log_handler: logging.Handler | None = None

    def __enter__(self) -> DemoCrew:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- setting up ---------------------------------------------------------------------------

    @property
    def space_id(self) -> bytes:
        """The demo crew (after :meth:`set_up`)."""
        assert self.crew is not None
        return self.crew.space_id

    @property
    def nodes(self) -> list[NodeProcess]:
        """Every node process the demo started: the demo members', then yours if headless."""
        return self.members + ([self.your_node] if self.your_node is not None else [])

    def set_up(self, *, your_node_process: bool) -> JoinResult:
        """Make the folder, the crew and its nodes; join it as you; start the live check-ins.

        Args:
            your_node_process: run your node as a ``meshcrew node`` process too (headless);
                else you join through a node run in this process for the join, and the app's
                own node takes over afterwards.

        Raises:
            DemoError: the folder cannot be used, or a node did not start.
            MeshcrewError: your home folder or identity cannot be used, or the join failed.
        """
        self.root = self._make_root()
        self._log_to(self.root / LOG_FILE)
        self.your_home, self.you = self._your_identity()
        self.progress(f"Writing {HISTORY_WEEKS} weeks of the crew's history")
        self.crew = seed_crew(self.root, self.rng, wall_clock_ms(),
                              names=members_beside(self.you.name),
                              weeks=HISTORY_WEEKS)
        self.progress(f"Starting the nodes of {_names(self.crew.names)}")
        self.members = [NodeProcess(name, home)
                        for name, home in zip(self.crew.names, self.crew.homes, strict=True)]
        for node in self.members:
            node.launch()
        wait_all_ready(self.members)
        founder = self.members[0]
        for node in self.members[1:]:
            node.call("connect", founder.addrs()[0])
        self.progress(f"Joining the crew with an invite from {founder.name}'s node")
        code: str = founder.call("invite", self.space_id,
                                 expires_ms=wall_clock_ms() + INVITE_VALID_MS)
        if your_node_process:
            passphrase = self.plan.passphrase_file
            self.your_node = NodeProcess(
                self.you.name, self.your_home,
                passphrase_file=str(passphrase) if passphrase else None)
            self.your_node.launch(bootstrap=self.member_addrs())
            wait_all_ready([self.your_node])
            joined: JoinResult = self.your_node.call("join_network", code)
        else:
            joined = join_in_process(self.your_home, self.you, code, self.member_addrs())
        every = self.plan.every_s
        self.live = LiveCrew(self.members, self.space_id, self.you.public_key, rng=self.rng,
                             every_s=every, first_after_s=min(every / 2, 8.0))
        self.live.start()
        return joined

    def member_addrs(self) -> list[str]:
        """Where the demo members' nodes can be dialled."""
        return [addr for node in self.members for addr in node.addrs()]

    def _make_root(self) -> Path:
        folder = self.plan.folder
        if folder is None:
            root = Path(tempfile.mkdtemp(prefix="meshcrew-demo-"))
        else:
            root = folder.expanduser().absolute()
            if root.exists() and (not root.is_dir() or any(root.iterdir())):
                raise DemoError(f"The demo folder {root} exists and is not empty; give a new "
                                "or empty folder (the demo removes it at the end).")
            home = self.plan.home
            if home is not None and home.path.absolute().is_relative_to(root):
                raise DemoError(f"Your --home {home.path} is inside the demo folder {root}, "
                                "which the demo removes at the end: give a --home outside it "
                                "(or none, for a temporary identity).")
            root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.root = root
        longest = max([*MEMBERS, *SPARE_NAMES, "you"], key=len).lower()
        if len(os.fsencode(root / longest / "control.sock")) > MAX_SOCKET_PATH:
            raise DemoError(f"The demo folder path {root} is too long for the nodes' control "
                            "sockets; give a shorter --dir.")
        return root

    def _your_identity(self) -> tuple[Home, identity.Identity]:
        assert self.root is not None
        home = self.plan.home or Home(self.root / "you")
        if ControlClient.if_running(home, control_types()) is not None:
            raise DemoError(f"A node is already running for {home.path}; stop it first (the "
                            "demo runs your node itself).")
        if not home.key_file.exists():
            make_home(home.path, self.plan.name)
        return home, identity.load(home.key_file, passphrase=self.plan.passphrase)

    def _log_to(self, path: Path) -> None:
        """Send this process's log (the in-process node's, libp2p's) to a file, not the
        terminal the app draws on."""
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
        handler = logging.FileHandler(path, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger().addHandler(handler)
        logging.getLogger().setLevel(logging.INFO)
        for noisy in ("libp2p", "multiaddr", "async_service"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        self._log_handler = handler

    # -- tearing down -------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the live check-ins and every process, then remove the demo folder."""
        try:
            if self.live is not None:
                self.live.stop()
        finally:
            stop_all(self.nodes)
            if self._log_handler is not None:
                logging.getLogger().removeHandler(self._log_handler)
                self._log_handler.close()
            if self.root is not None and not self.plan.keep:
                shutil.rmtree(self.root, ignore_errors=True)


def join_in_process(home: Home, you: identity.Identity, code: str,
                    bootstrap: list[str]) -> JoinResult:
    """Join with ``code`` through a node run here for the length of the join (on loopback;
    :func:`~meshcrew.node.opening.run_node_work` says what its close may raise and what is
    only logged).

    Raises:
        MeshcrewError: the node could not start, or the join failed.
    """
    from meshcrew.node import NodeConfig, open_node
    from meshcrew.node.opening import run_node_work

    async def join() -> JoinResult:
        config = NodeConfig(listen_addrs=(LOOPBACK,), mdns=False, bootstrap=tuple(bootstrap))
        async with open_node(home, you, config, control=False) as node:
            return await node.join(code)

    return run_node_work(join, what="the node that joined")


def _names(names: tuple[str, ...]) -> str:
    return ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else "".join(names)
