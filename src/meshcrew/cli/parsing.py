"""Argument parsing shared by every command: one-line usage errors, global options, registration.

argparse's own error path prints the whole usage and exits the process; meshcrew instead raises
:class:`UsageError`, which :func:`meshcrew.cli.app.main` turns into one line on stderr and exit
status 2, so a caller of ``main()`` always gets a status back.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn, TypeAlias

if TYPE_CHECKING:
    from meshcrew.cli.session import Session

Handler = Callable[[argparse.Namespace, "Session"], int]
"""A command: takes the parsed arguments and the session, returns the exit status."""


EXIT_OK = 0
EXIT_FAILURE = 1
"""A MeshcrewError, or a check that found a problem."""
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """The command line itself is wrong (unknown command, missing or bad option)."""

    def __init__(self, message: str, prog: str) -> None:
        super().__init__(message)
        self.message = message
        self.prog = prog

    def __str__(self) -> str:
        return f"{self.message} (see: {self.prog} --help)"


EXAMPLES = "examples:"
"""The first line of a help's epilog of example command lines (kept line by line)."""


class HelpFormatter(argparse.HelpFormatter):
    """argparse's, except that an epilog of examples keeps one command line per line."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith(EXAMPLES):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def with_examples(parser: argparse.ArgumentParser, *examples: str) -> None:
    """Show ``examples`` (whole command lines, a ``# comment`` after one if it helps) under
    "examples:" at the end of the parser's ``--help``. Each must parse: tests/test_cli.py runs
    them through the parser."""
    parser.epilog = "\n".join([EXAMPLES, *(f"  {line}" for line in examples)])


class CliParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are exceptions, not a printed usage and an exit."""

    def error(self, message: str) -> NoReturn:
        """Raise UsageError instead of printing the usage and exiting."""
        raise UsageError(message, self.prog)


def positive_number(text: str) -> float:
    """An argparse ``type``: a number above zero (seconds, MiB), else a usage error."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number above zero")
    return value


Commands: TypeAlias = "argparse._SubParsersAction[CliParser]"
"""The object commands are added to (what ``CliParser.add_subparsers`` returns)."""


def add_global_options(parser: argparse.ArgumentParser, *, top_level: bool) -> None:
    """Add the options every command accepts, before or after the command name.

    On the top-level parser they default to None; on each command's parser they default to
    ``SUPPRESS`` so that leaving them out after the command keeps the value given before it.
    """
    default = None if top_level else argparse.SUPPRESS
    parser.add_argument(
        "--home",
        metavar="DIR",
        default=default,
        help="the home folder that holds the identity and replica "
        "(default: $MESHCREW_HOME, else the platform's data folder)",
    )
    parser.add_argument(
        "--passphrase-file",
        metavar="FILE",
        default=default,
        help="a file holding the key file's passphrase, one trailing newline ignored "
        "(default: $MESHCREW_PASSPHRASE_FILE); with init, protects the new key with it",
    )


def add_command(commands: Commands, name: str, *, summary: str, description: str,
                handler: Handler, json: bool = False) -> argparse.ArgumentParser:
    """Add a command to the parser and return its parser for the command's own options.

    Args:
        commands: what ``add_subparsers`` returned (top level, or a group such as ``crew``).
        name: the command's name on the command line.
        summary: one line for the list of commands.
        description: what the command does, shown by ``meshcrew NAME --help``.
        handler: the function that runs the command.
        json: the command takes ``--json``: it prints one JSON object instead of text (a
            stable contract, see docs/cli.md), through :meth:`Session.answer
            <meshcrew.cli.session.Session.answer>` or by testing ``session.json``.
    """
    parser = commands.add_parser(name, help=summary, description=description,
                                 formatter_class=HelpFormatter)
    add_global_options(parser, top_level=False)
    if json:
        parser.add_argument("--json", action="store_true",
                            help="print one JSON object instead of text (keys as in docs/cli.md)")
    parser.set_defaults(handler=handler, help_prog=parser.prog)  # the deepest command's wins
    return parser


def add_space_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``SPACE``, the space the command is about: its name, or its id or the id's start."""
    parser.add_argument("space", metavar="SPACE", help="the space (name, or id or its start)")
