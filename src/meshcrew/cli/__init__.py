"""The ``meshcrew`` command line.

One module per group of commands; :mod:`meshcrew.cli.app` builds the parser from the groups listed
in :data:`meshcrew.cli.app.COMMAND_GROUPS` and runs the chosen command. A command group is a module
with a ``register(commands)`` function that adds its commands with
:func:`meshcrew.cli.parsing.add_command`; each command's handler takes the parsed arguments and a
:class:`meshcrew.cli.session.Session` and returns the exit status.
"""

from meshcrew.cli.app import build_parser, main

__all__ = ["build_parser", "main"]
