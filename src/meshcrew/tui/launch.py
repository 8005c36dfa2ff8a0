"""Opening a home folder for the app: the backend (and, once there is one, the node).

:func:`open_home` opens the identity and the replica (taking the home folder's writer lock) and
wraps them in a :class:`~meshcrew.tui.backend.LocalBackend`. On a first run there is no identity
yet: :class:`HomeSetup` creates it from the name the person types, then opens the home folder.

This module imports no Textual; :mod:`meshcrew.tui.app` runs the app with what it opens.
"""

from __future__ import annotations

import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from meshcrew import identity
from meshcrew.errors import HomeError, IdentityError
from meshcrew.home import Home
from meshcrew.store import Replica
from meshcrew.tui.backend import Backend, LocalBackend
from meshcrew.tui.node_runner import NodeMain
from meshcrew.tui.read_marks import FILE_NAME, ReadMarks


def wall_clock() -> int:
    """The current time in UTC milliseconds."""
    return time.time_ns() // 1_000_000


@dataclass
class Opened:
    """What the app runs with, and how to close it after the app ends.

    Attributes:
        backend: the screens' backend.
        node: the node to run as a trio guest while the app runs (None: no network).
        read_marks: the unread marks of this home folder.
        close: releases the replica (and the writer lock); call it once the app has ended.
    """

    backend: Backend
    node: NodeMain | None = None
    read_marks: ReadMarks = field(default_factory=ReadMarks)
    close: Callable[[], None] = lambda: None


class Setup(Protocol):
    """What the first-run screen uses before an identity exists."""

    @property
    def home_path(self) -> Path:
        """Where everything will live."""
        ...

    def create(self, name: str) -> Opened:
        """Create the identity called ``name`` and open the home folder with it.

        Raises:
            MeshcrewError: if the name is refused or the home folder cannot be used.
        """
        ...


def open_home(home: Home, *, passphrase: bytes | None = None,
              clock: Callable[[], int] = wall_clock) -> Opened:
    """Open the identity and the replica of ``home`` for the app.

    Raises:
        IdentityError: if there is no identity, or it is damaged or locked.
        HomeError: if another meshcrew (a headless node) holds the home folder. Attaching to
            it through its control socket needs the node's socket client, which is not built
            yet; until then the message says what to do.
    """
    person = identity.load(home.key_file, passphrase=passphrase)
    replica = Replica.open(home)
    backend = LocalBackend(replica, person, clock=clock)
    return Opened(backend, None, ReadMarks(home.path / FILE_NAME), replica.close)


class HomeSetup:
    """The first run in a home folder: make the identity, then open the folder.

    Args:
        home: the home folder (it may not exist yet).
        clock: the service's clock.
    """

    def __init__(self, home: Home, *, clock: Callable[[], int] = wall_clock) -> None:
        self.home = home
        self._clock = clock
        self.opened: Opened | None = None

    @property
    def home_path(self) -> Path:
        """Where everything will live."""
        return self.home.path

    def create(self, name: str) -> Opened:
        """Create the identity (key file mode 0600) and open the home folder with it."""
        clean = identity.check_name(name)
        if self.home.key_file.exists():
            raise IdentityError(f"The home folder {self.home.path} already holds an identity.")
        self.home.ensure()
        if self.home.open_to_others():
            mode = stat.S_IMODE(self.home.path.stat().st_mode)
            raise HomeError(f"The home folder {self.home.path} is open to others (mode "
                            f"{mode:04o}); run: chmod 700 {self.home.path}")
        identity.save(identity.Identity.generate(clean), self.home.key_file)
        self.opened = open_home(self.home, clock=self._clock)
        return self.opened

    def close(self) -> None:
        """Close what :meth:`create` opened (if anything)."""
        if self.opened is not None:
            self.opened.close()
