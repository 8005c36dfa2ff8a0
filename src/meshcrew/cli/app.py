"""Build the ``meshcrew`` parser from the command groups and run one command.

To add a group of commands, write a module with ``register(commands)`` and list it in
:data:`COMMAND_GROUPS`; nothing else here changes.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from meshcrew import __version__
from meshcrew.cli import (
    backup_commands,
    carrier_commands,
    demo_commands,
    device_commands,
    doctor,
    identity_commands,
    invite_commands,
    node_commands,
    post_commands,
    proposal_commands,
    space_commands,
    transfer_commands,
)
from meshcrew.cli.parsing import (
    EXAMPLES,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    CliParser,
    Commands,
    Handler,
    HelpFormatter,
    UsageError,
    add_global_options,
)
from meshcrew.cli.session import Session
from meshcrew.errors import MeshcrewError

PROG = "meshcrew"

COMMAND_GROUPS: Sequence[Callable[[Commands], None]] = (
    identity_commands.register,
    doctor.register,
    space_commands.register,
    invite_commands.register,
    post_commands.register,
    proposal_commands.register,
    transfer_commands.register,
    backup_commands.register,
    node_commands.register,
    carrier_commands.register,
    device_commands.register,
    demo_commands.register,
)
"""Each adds its commands to the top-level parser, in this order in ``--help``."""


def build_parser() -> argparse.ArgumentParser:
    """The parser for the whole command line."""
    parser = CliParser(
        prog=PROG,
        description="A peer-to-peer node for microsolidarity crews. With no command, meshcrew "
        "opens the app (the first time, it asks your name). Every file lives in one home "
        "folder; run several nodes side by side by giving each its own --home.",
        epilog="\n".join([
            EXAMPLES,
            "  meshcrew demo    # try it: a demo crew on this machine, and you in it",
            "  meshcrew    # the app: your crews, check-ins, the board",
            "  meshcrew init --name Ada",
            "  meshcrew join mc1-...    # the invite code a member gave you",
            '  meshcrew checkin "Tuesday crew" --text "Glad to be here" --energy 4',
            "  meshcrew checkin --help    # what a command does, with examples",
            "",
            "Exit status: 0 success, 1 refused or a problem found, 2 bad command line, 130",
            "interrupted. See docs/cli.md."]),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}",
                        help="print the version and exit")
    add_global_options(parser, top_level=True)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", dest="command")
    for register in COMMAND_GROUPS:
        register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default: the process's arguments); return the exit status.

    A refusal (any :class:`~meshcrew.errors.MeshcrewError`) or a bad command line prints one
    line, ``meshcrew: error: <sentence>``, on stderr and returns 1 or 2; Ctrl-C returns 130.
    Output whose reader has gone (``meshcrew log SPACE | head``) ends the command quietly,
    status 1, as it does other command-line tools (it ended in a traceback).
    """
    try:
        status = _run_command(argv)
        sys.stdout.flush()  # a reader gone is found here, else only as Python exits
    except BrokenPipeError:
        # Nothing more can be written; point stdout at /dev/null so the flush at exit is quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_FAILURE
    return status


def _run_command(argv: list[str] | None) -> int:
    parser = build_parser()
    try:
        try:
            args = _parse(parser, argv)
        except SystemExit as exc:  # --help and --version: printed, nothing more to do
            return exc.code if isinstance(exc.code, int) else EXIT_FAILURE
        handler: Handler | None = getattr(args, "handler", None)
        if handler is None:
            if not (sys.stdin.isatty() and sys.stdout.isatty()):
                parser.print_help()  # no terminal to show the app in
                return EXIT_USAGE
            return _run_app(Session.from_args(args))
        return handler(args, Session.from_args(args))
    except UsageError as exc:
        _print_error(str(exc))
        return EXIT_USAGE
    except MeshcrewError as exc:
        _print_error(str(exc))
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """``parse_args``, except that arguments no command takes point to the command's own
    ``--help`` (argparse names the top-level one, which does not list the command's options).

    Raises:
        UsageError: if the command line is wrong.
    """
    args, extra = parser.parse_known_args(argv)
    if extra:
        raise UsageError(f"unrecognized arguments: {' '.join(extra)}",
                         getattr(args, "help_prog", PROG))
    return args


def _run_app(session: Session) -> int:
    """``meshcrew`` alone: the app, with the node inside it (or attached to a running one)."""
    from meshcrew.tui.app import run_app  # only the app imports Textual

    if session.home.path.is_dir():
        session.require_home()  # one this user may use (the first run makes it otherwise)
    run_app(session.home, passphrase=session.passphrase())
    return EXIT_OK


def _print_error(sentence: str) -> None:
    # One line, whatever the sentence holds, so scripts can read the first line of stderr.
    print(f"{PROG}: error: {' '.join(sentence.split())}", file=sys.stderr)
