"""How a command reaches the member service.

If a node (``meshcrew node``, or the TUI) is running for the home folder, every call goes to it
over the control socket (:class:`~meshcrew.cli.node_link.NodeMember`), so what the command
writes is published at once. Otherwise the command opens the replica as its writer (taking the
home folder's lock), makes a member service (:class:`~meshcrew.cli.node_link.OfflineMember`),
does one thing and closes; only ``join`` then goes to the network, through a node started for
the length of the join.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast

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
    from meshcrew.cli.node_link import NodeMember, OfflineMember, progress_to
    from meshcrew.node.control_client import ControlClient, control_types
    from meshcrew.store import Replica

    client = ControlClient.if_running(session.home, control_types())
    if client is not None:
        # The same method names and results as a Member; calls run in the node.
        yield cast(Member, NodeMember(client, progress_to(session.err)))
        return
    person = session.load_identity()
    with Replica.open(session.home) as replica:
        yield OfflineMember(replica, person, clock=wall_clock_ms,
                            on_progress=progress_to(session.err))
