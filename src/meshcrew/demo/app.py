"""The demo's app: the meshcrew app on your demo home, with your node inside it.

Your node runs in the app as a trio guest (as with ``meshcrew`` alone), on loopback, without
mDNS, told where the demo members' nodes are. SIGTERM or SIGHUP (the terminal closing) make the
app exit normally, so the demo still stops its processes and removes its folder.

This module imports Textual; only ``meshcrew demo`` with the app loads it.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from meshcrew.demo.crew import DemoCrew
from meshcrew.demo.processes import LOOPBACK
from meshcrew.node.config import NodeConfig
from meshcrew.tui import app as app_module
from meshcrew.tui.app import MeshcrewApp
from meshcrew.tui.launch import open_home

_EXIT_SIGNALS = (signal.SIGTERM, signal.SIGHUP)

Handler = Callable[[int, FrameType | None], Any] | int | None


class DemoApp(MeshcrewApp):
    """The meshcrew app, titled for the demo, that greets with what the demo does and exits
    cleanly on SIGTERM and SIGHUP.

    Args:
        greeting: shown as a notification when the app opens.
        **kwargs: as :class:`~meshcrew.tui.app.MeshcrewApp`.
    """

    TITLE = "meshcrew demo"
    CSS_PATH = str(Path(app_module.__file__).with_name("app.tcss"))  # the app's own styles

    def __init__(self, *args: Any, greeting: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.greeting = greeting

    def on_mount(self) -> None:
        """Exit on SIGTERM or SIGHUP; greet (MeshcrewApp's own on_mount runs as well)."""
        loop = asyncio.get_running_loop()

        def exit_soon(_signum: int, _frame: FrameType | None) -> None:
            # A signal handler runs between bytecodes; let the loop exit the app in its turn.
            loop.call_soon_threadsafe(self.exit)

        for signum in _EXIT_SIGNALS:
            signal.signal(signum, exit_soon)
        self.notify(self.greeting, title="The demo crew", timeout=30)


def greeting(demo: DemoCrew) -> str:
    """What the app says first: who is in the crew and what to try."""
    assert demo.crew is not None
    first, *rest = demo.crew.names
    return (f"{first}, {', '.join(rest[:-1]) + ' and ' if rest[:-1] else ''}{rest[-1]} run "
            "their own nodes on this machine. They check in now and then, and say \"heard "
            "you\" when you check in: open the crew with enter, check in with c. "
            "q quits and cleans everything up.")


def run_demo_app(demo: DemoCrew) -> int:
    """Run the app on your demo home until you quit (after :meth:`DemoCrew.set_up`).

    Returns:
        The app's return code: 0, or 1 if it ended with an error (Textual printed it).
    """
    assert demo.your_home is not None
    config = NodeConfig(listen_addrs=(LOOPBACK,), mdns=False,
                        bootstrap=tuple(demo.member_addrs()))
    opened = open_home(demo.your_home, passphrase=demo.plan.passphrase, config=config)
    previous: dict[int, Handler] = {s: signal.getsignal(s) for s in _EXIT_SIGNALS}
    try:
        app = DemoApp(opened.backend, node=opened.node, read_marks=opened.read_marks,
                      greeting=greeting(demo))
        app.run()
        return app.return_code or 0
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        opened.close()
