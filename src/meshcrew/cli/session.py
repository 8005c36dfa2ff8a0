"""What a command runs with: the home folder, the passphrase source, the output streams and
whether the output is to be JSON (``--json``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from meshcrew import identity
from meshcrew.errors import HomeError, IdentityError
from meshcrew.home import Home

PASSPHRASE_FILE_ENV = "MESHCREW_PASSPHRASE_FILE"


@dataclass
class Session:
    """The context of one command run.

    Attributes:
        home: the home folder (it may not exist yet).
        passphrase_file: where the key file's passphrase is, if anywhere.
        out: where results go (stdout).
        err: where errors go (stderr).
        json: whether the command was asked for one JSON object instead of text (``--json``).
    """

    home: Home
    passphrase_file: Path | None = None
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    json: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Session:
        """The session described by the global options and the environment."""
        given_home: str | None = args.home
        if given_home is not None and not given_home.strip():
            raise HomeError("The --home option is empty; give a folder, e.g. --home ~/meshcrew.")
        given_passphrase: str | None = args.passphrase_file or os.environ.get(PASSPHRASE_FILE_ENV)
        return cls(
            home=Home.resolve(given_home),
            passphrase_file=Path(given_passphrase).expanduser() if given_passphrase else None,
            out=sys.stdout,
            err=sys.stderr,
            json=getattr(args, "json", False),  # only commands added with json=True take it
        )

    def passphrase(self) -> bytes | None:
        """The passphrase from the passphrase file, or None when no file was given.

        One trailing newline (``\\n`` or ``\\r\\n``) is not part of the passphrase, so a file
        written by ``echo`` or an editor works.

        Raises:
            IdentityError: if the file cannot be read or holds an empty passphrase.
        """
        if self.passphrase_file is None:
            return None
        try:
            data = self.passphrase_file.read_bytes()
        except OSError as exc:
            raise IdentityError(f"Cannot read the passphrase file {self.passphrase_file}: "
                                f"{exc.strerror or exc}.") from None
        for ending in (b"\r\n", b"\n"):
            if data.endswith(ending):
                data = data[: -len(ending)]
                break
        if not data:
            raise IdentityError(f"The passphrase file {self.passphrase_file} is empty.")
        return data

    def require_home(self) -> None:
        """Raise HomeError unless the home folder exists."""
        if self.home.path.exists() and not self.home.path.is_dir():
            raise HomeError(f"The home folder {self.home.path} is a file, not a folder; give "
                            "--home the folder that holds your identity.")
        if not self.home.path.is_dir():
            raise HomeError(f"No home folder at {self.home.path}; create one with: "
                            "meshcrew init --name NAME")
        if not os.access(self.home.path, os.R_OK | os.W_OK | os.X_OK):
            raise HomeError(not_yours(self.home))

    def load_identity(self) -> identity.Identity:
        """The identity in the home folder, unlocked with the passphrase if one was given.

        Raises:
            HomeError: if there is no home folder.
            IdentityError: if the key file is missing, unsafe, damaged or locked.
        """
        self.require_home()
        if not self.home.key_file.exists() and self.home.replica_file.exists():
            raise IdentityError(orphan_replica(self))
        return identity.load(self.home.key_file, passphrase=self.passphrase())

    def print(self, text: str = "") -> None:
        """Write one line of output."""
        print(text, file=self.out)

    def print_json(self, value: dict[str, Any]) -> None:
        """Write one JSON object on one line."""
        print(json.dumps(value, sort_keys=True), file=self.out)

    def answer(self, value: dict[str, Any], *lines: str) -> None:
        """Write a command's answer: ``value`` with ``--json``, else the ``lines`` of text."""
        if self.json:
            self.print_json(value)
        else:
            for line in lines:
                self.print(line)

    def answer_written(self, space_id: bytes, record: bytes, done: str = "") -> None:
        """Write the answer of a command that wrote one record: its id (and space with
        ``--json``). On a terminal, where a person reads it, ``done`` says what happened and
        the id's start is given to reply or react with; a script reading a pipe gets the id
        alone (a bare 64-digit id was all a member saw after a check-in)."""
        text = record.hex()
        if done and self.out.isatty():
            text = f"{done} (id {record.hex()[:8]}; meshcrew log shows it)."  # as log shortens
        self.answer({"id": record.hex(), "space": space_id.hex()}, text)


def orphan_replica(session: Session) -> str:
    """What to do about a home folder that holds a replica but no key file (the key was lost or
    moved): restore it, since a new identity there would be in none of the replica's spaces and
    ``restore`` would then refuse that home folder."""
    home = session.home.path
    return (f"The home folder {home} holds a replica but no key file; restore your identity "
            f"from a backup with: meshcrew --home {home} restore FILE (a new identity here "
            "would be in none of its spaces), or use another --home for a new one.")


def not_yours(home: Home) -> str:
    """What to do about a home folder this user may not use (made by a run with sudo)."""
    return f"Cannot use the home folder {home.path}: permission denied. {home.must_be_yours()}"
