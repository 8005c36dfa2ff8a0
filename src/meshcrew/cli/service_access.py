"""How a command reaches the member service.

There is no running node yet, so each command opens the replica as its writer (taking the home
folder's lock), makes a :class:`~meshcrew.service.Member`, does one thing and closes. When the
node lands, this is the one place that changes: the same calls go to the node's control socket.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from meshcrew.cli.session import Session
from meshcrew.service import Member


def wall_clock_ms() -> int:
    """The current time in UTC milliseconds."""
    return time.time_ns() // 1_000_000


@contextmanager
def open_member(session: Session) -> Iterator[Member]:
    """The member service over this home folder's replica, for the length of a command.

    Raises:
        HomeError: if there is no home folder, or another process holds it.
        IdentityError: if the identity cannot be loaded.
        ReplicaError: if the replica cannot be opened.
    """
    # Imported here so that init, whoami and doctor do not load the replica's code.
    from meshcrew.store import Replica

    person = session.load_identity()
    with Replica.open(session.home) as replica:
        yield Member(replica, person, clock=wall_clock_ms)
