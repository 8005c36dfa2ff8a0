"""The home folder: every file a node keeps lives under one folder.

Several nodes can run side by side on one machine by giving each its own home folder
(``--home DIR`` or ``MESHCREW_HOME``); the default comes from platformdirs.
"""

from __future__ import annotations

import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from meshcrew.errors import HomeError

HOME_ENV = "MESHCREW_HOME"


@dataclass(frozen=True)
class Home:
    """Paths of one node's files."""

    path: Path

    @classmethod
    def resolve(cls, given: str | os.PathLike[str] | None = None) -> Home:
        """The home folder from an argument, else ``MESHCREW_HOME``, else the platform default."""
        if given is None:
            given = os.environ.get(HOME_ENV) or platformdirs.user_data_dir(
                "meshcrew", appauthor=False
            )
        return cls(Path(given).expanduser().absolute())

    @property
    def key_file(self) -> Path:
        """The identity key file (mode 0600)."""
        return self.path / "identity.key"

    @property
    def certificate_file(self) -> Path:
        """On a linked device: its member key's certificate of this device's key."""
        return self.path / "device.cert"

    @property
    def replica_file(self) -> Path:
        """The SQLite replica."""
        return self.path / "replica.sqlite3"

    @property
    def lock_file(self) -> Path:
        """Held by the single writer of this home folder."""
        return self.path / "writer.lock"

    @property
    def log_file(self) -> Path:
        """The node's log."""
        return self.path / "node.log"

    @property
    def socket_file(self) -> Path:
        """The local control socket of a running node."""
        return self.path / "control.sock"

    def ensure(self) -> None:
        """Create the folder (mode 0700) if missing; refuse a folder that is not a directory."""
        if self.path.exists() and not self.path.is_dir():
            raise HomeError(f"The home folder {self.path} is a file, not a folder.")
        try:
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise HomeError(f"Cannot create the home folder {self.path}: {exc.strerror}.") from None

    def not_mine(self) -> list[Path]:
        """The folder and the files in it that belong to another user than this process's
        (after a run with sudo, root's)."""
        me = os.geteuid()
        try:
            files = sorted(self.path.iterdir())
        except OSError:  # a folder we may not list is not ours either (its own owner says so)
            files = []
        return [p for p in (self.path, *files) if p.lstat().st_uid != me]

    def take_back(self) -> str:
        """The command that gives the folder and its files back to this process's user."""
        try:
            user = pwd.getpwuid(os.geteuid()).pw_name
        except KeyError:
            user = str(os.geteuid())
        return f"sudo chown -R {user} {self.path}"

    def must_be_yours(self) -> str:
        """The advice that ends a refusal to use a folder or file another user owns."""
        return ("The home folder and its files must be yours; if meshcrew ran there as another "
                f"user (with sudo), run: {self.take_back()}")

    def open_to_others(self) -> bool:
        """Whether others may read or enter the folder."""
        return bool(stat.S_IMODE(self.path.stat().st_mode) & 0o077)
