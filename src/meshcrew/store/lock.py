"""The single-writer lock of a home folder.

Only one process may write a home folder's replica. The writer holds an exclusive ``flock`` on
``home.lock_file`` for as long as it runs and writes its pid into the file, so a second writer can
say who is in the way. The kernel drops the lock when the process ends, however it ends, so a
crashed node never leaves a stale lock behind; the file itself stays (removing it would let two
processes lock two different files of the same name).
"""

from __future__ import annotations

import fcntl
import os

from meshcrew.errors import HomeError
from meshcrew.home import Home

_PID_BYTES = 32


class WriterLock:
    """An acquired writer lock; :meth:`release` it (or let the process end)."""

    def __init__(self, home: Home, fd: int) -> None:
        self.home = home
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, home: Home) -> WriterLock:
        """Take the lock of ``home`` at once, without waiting.

        Raises:
            HomeError: if another process (or another replica in this process) holds it, or the
                lock file cannot be opened.
        """
        home.ensure()
        try:
            fd = os.open(home.lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except PermissionError:
            raise HomeError(f"Cannot open the lock file {home.lock_file}: permission denied. "
                            f"{home.must_be_yours()}") from None
        except OSError as exc:
            raise HomeError(f"Cannot open the lock file {home.lock_file}: "
                            f"{exc.strerror}.") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise HomeError(f"Another meshcrew (pid {holder}) is using {home.path}; stop it "
                            "first, or give this one another home folder with --home.") from None
        except OSError as exc:
            os.close(fd)
            raise HomeError(f"Cannot lock {home.lock_file}: {exc.strerror}.") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        return cls(home, fd)

    @property
    def held(self) -> bool:
        """Whether this lock is still held."""
        return self._fd is not None

    def release(self) -> None:
        """Let go of the lock; harmless to call twice."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _read_pid(fd: int) -> str:
    """The pid the holder wrote, or "unknown" while it has not written it yet."""
    try:
        text = os.pread(fd, _PID_BYTES, 0).decode("ascii", "replace").strip()
    except OSError:
        return "unknown"
    return text if text.isdigit() else "unknown"
