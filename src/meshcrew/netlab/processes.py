"""Processes and signals around the NAT lab: finding and signalling what runs in its
namespaces (by pid, through a pidfd), and signals that unwind or wait while it is built or
taken down (only the main thread can hold or handle signals; elsewhere these do nothing)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType


def pids_inside(identities: set[tuple[int, int]]) -> list[int]:
    """The live processes whose network namespace is one of ``identities`` (zombies are not)."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                ns = os.stat(f"/proc/{entry.name}/ns/net")
            except OSError:
                continue
            if (ns.st_dev, ns.st_ino) in identities:
                found.append(int(entry.name))
    return found


def signal_if_inside(pid: int, sig: signal.Signals, identities: set[tuple[int, int]]) -> None:
    """Signal a process through a pidfd, only if it is (still) in one of the namespaces.

    The pidfd is opened first, then the namespace checked, so a pid reused by a process outside
    the lab in the meantime is never signalled.
    """
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return
    try:
        ns = os.stat(f"/proc/{pid}/ns/net")
        if (ns.st_dev, ns.st_ino) in identities:
            signal.pidfd_send_signal(pidfd, sig)
    except OSError:
        pass  # it exited meanwhile
    finally:
        os.close(pidfd)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold Ctrl-C, SIGTERM and SIGHUP until the block is done (only the main thread can)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    before = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def termination_unwinds() -> Iterator[None]:
    """Make SIGTERM and SIGHUP raise SystemExit while the block runs, where nothing else handles
    them, so ``finally`` blocks run as they do for Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    installed = []
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) == signal.SIG_DFL:
            signal.signal(sig, _exit_on_signal)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            if signal.getsignal(sig) == _exit_on_signal:
                signal.signal(sig, signal.SIG_DFL)
