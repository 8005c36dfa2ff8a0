"""``meshcrew demo``: a crew of three demo members on this machine, and you in it.

The work is in :mod:`meshcrew.demo` (imported when the command runs, so other commands do not
load it); this module parses the options, shows progress and prints the headless summary.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TextIO

from meshcrew.cli.parsing import (
    EXIT_FAILURE,
    EXIT_OK,
    Commands,
    UsageError,
    add_command,
    with_examples,
)
from meshcrew.cli.session import Session
from meshcrew.home import Home

DEFAULT_SECONDS = 20.0
DEFAULT_EVERY_S = 30.0
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def register(commands: Commands) -> None:
    """Add ``demo``."""
    demo = add_command(
        commands, "demo", summary="try meshcrew: a demo crew on this machine, and you in it",
        description="Start three demo members (Amara, Bo, Chen) as meshcrew node processes on "
        "loopback, each with its own home folder in a temporary demo folder; write a few "
        "weeks of their crew's check-ins; invite you and join over the network; then open "
        "the app. The demo members keep checking in now and then, and say 'heard you' when "
        "you check in, so you can watch live sync. Quitting the app stops every process and "
        "removes the demo folder. Your own identity is not touched: you get a temporary one, "
        "unless you give --home explicitly, outside the demo folder (then the crew stays in "
        "that replica). A demo member whose name is yours takes another.",
        handler=run_demo)
    with_examples(demo,
                  "meshcrew demo",
                  "meshcrew demo --headless --seconds 20")
    demo.add_argument("--headless", action="store_true",
                      help="no app: run your node as a process too, check in once, run "
                      "--seconds, then print a summary; exit 1 unless every replica agrees")
    demo.add_argument("--seconds", type=float, metavar="N",
                      help=f"with --headless, how long to run (default: {DEFAULT_SECONDS:g})")
    demo.add_argument("--every", type=float, metavar="SECONDS",
                      help=f"mean time between two check-ins by demo members (default: "
                      f"{DEFAULT_EVERY_S:g} with the app, a fifth of --seconds headless)")
    demo.add_argument("--dir", metavar="DIR",
                      help="make the demo folder here (a new or empty folder; default: a "
                      "new temporary folder); it is removed at the end")
    demo.add_argument("--keep", action="store_true",
                      help="keep the demo folder at the end (the nodes stop anyway)")
    demo.add_argument("--name", default="You",
                      help="your display name in the demo crew (default: You)")
    demo.add_argument("--seed", type=int, metavar="N",
                      help="seed the crew's history and check-ins (default: a new demo each "
                      "time)")
    demo.add_argument("--json", action="store_true",
                      help="with --headless, print the summary as one JSON object")
    for action in demo._actions:  # the global option means something else here
        if "--home" in action.option_strings:
            action.help = ("your home folder in the demo crew, outside the demo folder (default: "
                           "a temporary one in the demo folder; $MESHCREW_HOME is not used)")


def run_demo(args: argparse.Namespace, session: Session) -> int:
    """Set up the demo crew, run the app (or run headless and sum up), clean up."""
    seconds = _check_options(args)
    from meshcrew.demo.crew import DemoCrew, DemoPlan

    every = args.every or (max(1.0, seconds / 5) if args.headless else DEFAULT_EVERY_S)
    plan = DemoPlan(
        folder=Path(args.dir) if args.dir else None,
        # Only an explicit --home: the demo never uses $MESHCREW_HOME or the default folder.
        home=Home.resolve(args.home) if args.home else None,
        name=args.name, passphrase=session.passphrase() if args.home else None,
        passphrase_file=session.passphrase_file if args.home else None,
        seed=args.seed, every_s=every, keep=args.keep)
    progress = ProgressLine(session.err)
    with _stop_on_signals(), DemoCrew(plan, progress) as demo:
        if args.headless:
            from meshcrew.demo.headless import run_headless

            summary = run_headless(demo, seconds)
            progress.done()
            if session.json:
                session.print_json(summary.to_json())
            else:
                for line in summary.lines():
                    session.print(line)
            return EXIT_OK if summary.agree else EXIT_FAILURE
        from meshcrew.demo.app import run_demo_app

        demo.set_up(your_node_process=False)
        progress.done()
        session.print(f"Demo folder {demo.root} "
                      f"({'kept' if args.keep else 'removed'} when you quit).")
        session.out.flush()
        status = EXIT_OK if run_demo_app(demo) == 0 else EXIT_FAILURE
    session.print("The demo has ended: its nodes are stopped"
                  f"{'' if args.keep else ' and its folder removed'}.")
    return status


@contextmanager
def _stop_on_signals() -> Iterator[None]:
    """Make SIGTERM and SIGHUP end the demo like Ctrl-C, so it still stops its processes and
    removes its folder (the app installs its own handlers while it runs)."""

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = {signum: signal.signal(signum, interrupt) for signum in _STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _check_options(args: argparse.Namespace) -> float:
    prog = "meshcrew demo"
    if not args.headless:
        if args.seconds is not None or args.json:
            raise UsageError("--seconds and --json go with --headless", prog)
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            raise UsageError("the demo app needs a terminal; without one, use --headless", prog)
    seconds = DEFAULT_SECONDS if args.seconds is None else float(args.seconds)
    if not 0 < seconds <= 24 * 3600:
        raise UsageError("--seconds is more than 0 and at most a day", prog)
    if args.every is not None and not 0.5 <= args.every <= 3600:
        raise UsageError("--every is 0.5 to 3600 seconds", prog)
    return seconds


class ProgressLine:
    """One line of progress on a terminal (rewritten in place); plain lines elsewhere."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.terminal = stream.isatty()
        self._shown = False

    def __call__(self, text: str) -> None:
        """Show what is happening now."""
        if self.terminal:
            self.stream.write(f"\r\x1b[Kmeshcrew demo: {text}…")
        else:
            self.stream.write(f"meshcrew demo: {text}\n")
        self.stream.flush()
        self._shown = True

    def done(self) -> None:
        """End the progress line."""
        if self.terminal and self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
        self._shown = False
