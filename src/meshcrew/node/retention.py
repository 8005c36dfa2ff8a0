"""The node's side of retention: delete expired posts when they expire.

Every member's node runs :meth:`meshcrew.service.Member.expire_due` for each space it holds, at
the moment the next post expires (and at least every :data:`CHECK_EVERY_S`, so records that
arrived meanwhile and settings that changed are taken into account). See
:mod:`meshcrew.spaces.retention` for the rule.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

import trio

from meshcrew.errors import MeshcrewError
from meshcrew.service import Member
from meshcrew.store import Replica

if TYPE_CHECKING:
    from trio_typing import TaskStatus

log = logging.getLogger("meshcrew.node")

CHECK_EVERY_S = 60.0
"""The longest wait between two passes."""


class HoldsSpaces(Protocol):
    """What retention needs of a node (``Node`` has both; typed so, this module does not import
    the node's)."""

    @property
    def replica(self) -> Replica: ...

    @property
    def member(self) -> Member: ...


async def expire_posts(node: HoldsSpaces, *,
                       task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Delete each space's expired posts, pass after pass, until cancelled.

    Started with ``nursery.start``, it reports ready after its first pass, so that a node
    that was off while posts expired can delete them before it serves any sync.
    """
    first = True
    while True:
        next_ms: int | None = None
        for space_id in node.replica.spaces():
            try:
                found = node.member.expire_due(space_id)
            except MeshcrewError as exc:
                log.warning("could not expire the posts of %s: %s", space_id.hex()[:12], exc)
                continue
            if found is not None and found.next_ms is not None:
                next_ms = found.next_ms if next_ms is None else min(next_ms, found.next_ms)
            await trio.lowlevel.checkpoint()
        if first:
            task_status.started()
            first = False
        wait_s = CHECK_EVERY_S if next_ms is None else \
            min(CHECK_EVERY_S, max(0.05, (next_ms - node.member.now()) / 1000))
        await trio.sleep(wait_s)  # a timer for scheduled work, not a wait for another task
