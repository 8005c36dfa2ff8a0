"""Opening a home folder for the app: the backend (and, once there is one, the node).

:func:`open_home` opens the identity, then either attaches to the node already running for the
home folder (:mod:`.attached`) or opens the replica (taking the writer lock) with a node to run
inside the app (:mod:`.node_backend`), or none (offline). On a first run there is no identity
yet: :class:`HomeSetup` creates it from the name the person types, then opens the home folder.

This module imports no Textual; :mod:`meshcrew.tui.app` runs the app with what it opens.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from meshcrew import identity
from meshcrew.errors import HomeError, IdentityError
from meshcrew.home import Home
from meshcrew.node.config import NodeConfig
from meshcrew.node.control_client import ControlClient, control_types
from meshcrew.node.home_backup import RestoreReport, restore
from meshcrew.node.log_file import logging_to_home
from meshcrew.store import Replica
from meshcrew.tui.backend import Backend
from meshcrew.tui.node_runner import NodeMain
from meshcrew.tui.read_marks import FILE_NAME, ReadMarks
from meshcrew.tui.service_backend import LocalBackend

if TYPE_CHECKING:
    from meshcrew.node.reports import LinkResult

NEW_DEVICE_NAME = "new device"
"""The name a new laptop's key has until it is linked (then it takes the member's)."""


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

    def create_device(self, name: str = "") -> Opened:
        """Create this laptop's own key, to be linked to a member that another laptop holds
        (``init --link``), and open the home folder with it (its node links it).

        Raises:
            MeshcrewError: if the name is refused or the home folder cannot be used.
        """
        ...

    def linked(self, result: LinkResult) -> None:
        """The link is done: the key file takes the member's name, as ``init --link`` does
        (it is what the device posts a profile with).

        Raises:
            MeshcrewError: if the key file cannot be written.
        """
        ...

    def restore(self, path: Path, passphrase: bytes,
                on_progress: Callable[[int, int], None] | None = None) -> RestoreReport:
        """Restore a backup file into the home folder (identity, records, peer book); may run
        in a worker thread.

        Raises:
            MeshcrewError: if the file does not open, or the home folder cannot be used.
        """
        ...

    def open(self, passphrase: bytes | None = None) -> Opened:
        """Open the home folder with the identity it holds (after :meth:`restore`).

        Raises:
            MeshcrewError: if the key file needs a passphrase not given, or the folder cannot
                be used.
        """
        ...


def open_home(home: Home, *, passphrase: bytes | None = None,
              clock: Callable[[], int] = wall_clock, network: bool = True,
              config: NodeConfig | None = None) -> Opened:
    """Open ``home`` for the app: attach to its running node, or run one in the app.

    Args:
        home: the home folder.
        passphrase: the key file's passphrase, if it is sealed.
        clock: UTC milliseconds.
        network: run a node in the app (else the app works on the replica alone, offline).
        config: the in-process node's settings.

    Raises:
        IdentityError: if there is no identity, or it is damaged or locked.
        HomeError: if another process holds the home folder but no node answers there.
    """
    person = identity.load(home.key_file, passphrase=passphrase)
    marks = ReadMarks(home.path / FILE_NAME)
    client = ControlClient.if_running(home, control_types())
    if client is not None:
        from meshcrew.tui.attached import AttachedBackend

        attached = AttachedBackend(home, person, client, clock=clock)
        return Opened(attached, attached.run, marks, attached.close)
    replica = Replica.open(home)
    if not network:
        local = LocalBackend(replica, person, clock=clock)
        return Opened(local, None, marks, _closing(local, replica))
    from meshcrew.tui.node_backend import NodeBackend

    backend = NodeBackend(replica, person, clock=clock, config=config)
    return Opened(backend, backend.run, marks, _closing(backend, replica))


def _closing(backend: LocalBackend, replica: Replica) -> Callable[[], None]:
    """Closing the app: keep the views of big spaces for the next start, release the replica."""
    def close() -> None:
        try:
            backend.reads.keep_snapshots()
        finally:
            replica.close()

    return close


class HomeSetup:
    """The first run in a home folder: make the identity, then open the folder.

    Args:
        home: the home folder (it may not exist yet).
        clock: the service's clock.
        network: run a node in the app once the identity exists.
        config: that node's settings (default: every interface, mDNS on).
        log_to_home: once the home folder is opened, send the log to its ``node.log`` until
            :meth:`close` (what the app's node does when it starts with an identity).
    """

    def __init__(self, home: Home, *, clock: Callable[[], int] = wall_clock,
                 network: bool = True, config: NodeConfig | None = None,
                 log_to_home: bool = False) -> None:
        self.home = home
        self._clock = clock
        self._network = network
        self._config = config
        self._log_to_home = log_to_home
        self._logging = ExitStack()
        self._logging_started = False
        self.opened: Opened | None = None

    @property
    def home_path(self) -> Path:
        """Where everything will live."""
        return self.home.path

    def create(self, name: str) -> Opened:
        """Create the identity (key file mode 0600) and open the home folder with it."""
        clean = identity.check_name(name)
        self._ready_for_an_identity()
        identity.save(identity.Identity.generate(clean), self.home.key_file)
        return self.open()

    def create_device(self, name: str = "") -> Opened:
        """This laptop's own key (mode 0600), named ``name`` until it is linked."""
        return self.create(name.strip() or NEW_DEVICE_NAME)

    def linked(self, result: LinkResult) -> None:
        """Rename the key to the member's name: a fresh key file beside it, then replaced."""
        device = identity.load(self.home.key_file)
        fresh = self.home.key_file.with_name(self.home.key_file.name + ".new")
        fresh.unlink(missing_ok=True)
        identity.save(identity.Identity.from_seed(device.seed, result.member_name), fresh)
        try:
            os.replace(fresh, self.home.key_file)
        except OSError as exc:
            fresh.unlink(missing_ok=True)
            raise IdentityError(f"Cannot rename the key file {self.home.key_file}: "
                                f"{exc.strerror or exc}.") from None

    def restore(self, path: Path, passphrase: bytes,
                on_progress: Callable[[int, int], None] | None = None) -> RestoreReport:
        """Restore the backup at ``path`` into the (new) home folder; see
        :func:`meshcrew.node.home_backup.restore`. A home that already holds the backup's own
        identity (a restore cut short, or done twice) takes the records again, merged; any
        other identity is refused."""
        self._ready_for_an_identity(keep_same=True)
        return restore(self.home, path, passphrase, key_passphrase=None, now_ms=self._clock(),
                       on_progress=on_progress)

    def open(self, passphrase: bytes | None = None) -> Opened:
        """Open the home folder with its identity (made by :meth:`create` or restored)."""
        if self._log_to_home and not self._logging_started:
            # the folder exists by now; its node logs where `meshcrew node` would
            self._logging.enter_context(logging_to_home(self.home))
            self._logging_started = True
        self.opened = open_home(self.home, passphrase=passphrase, clock=self._clock,
                                network=self._network, config=self._config)
        return self.opened

    def _ready_for_an_identity(self, *, keep_same: bool = False) -> None:
        if self.home.key_file.exists() and not keep_same:
            raise IdentityError(f"The home folder {self.home.path} already holds an identity.")
        if self.home.replica_file.exists() and not keep_same and not self.home.key_file.exists():
            # a lost key file: a new identity would be in none of these spaces, and a restore
            # would then refuse the folder (it holds another identity)
            raise IdentityError(f"The home folder {self.home.path} holds a replica but no key "
                                "file: restore your identity with \"Restore from a backup\", or "
                                "start meshcrew with another --home for a new one.")
        self.home.ensure()
        if self.home.open_to_others():
            mode = stat.S_IMODE(self.home.path.stat().st_mode)
            raise HomeError(f"The home folder {self.home.path} is open to others (mode "
                            f"{mode:04o}); run: chmod 700 {self.home.path}")

    def close(self) -> None:
        """Close what :meth:`create` opened (if anything), then stop logging to the home."""
        try:
            if self.opened is not None:
                self.opened.close()
        finally:
            self._logging.close()
