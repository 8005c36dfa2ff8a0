"""The node's side of retention: delete expired posts when they expire.

Every member's node runs :meth:`meshcrew.service.Member.expire_due` for each space it holds, at
the moment the next post expires (and at least every :data:`CHECK_EVERY_S`, so records that
arrived meanwhile and settings that changed are taken into account), and, through
:class:`ExpiredFirst`, for a space in which records arrived since, before sync or a join serves
it. See :mod:`meshcrew.spaces.retention` for the rule.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

import trio

from meshcrew.errors import MeshcrewError
from meshcrew.node.reports import NodeEvent, RecordsChanged
from meshcrew.records import Frontier, Head, Record
from meshcrew.service import Member
from meshcrew.store import Replica

if TYPE_CHECKING:
    from trio_typing import TaskStatus

log = logging.getLogger("meshcrew.node")

CHECK_EVERY_S = 60.0
"""The longest wait between two passes."""
WOKEN_GAP_S = 1.0
"""The shortest time between two passes when arriving records wake one (a busy space with a
waiting post must not run a pass per record)."""


class HoldsSpaces(Protocol):
    """What retention needs of a node (``Node`` has these; typed so, this module does not
    import the node's)."""

    @property
    def replica(self) -> Replica: ...

    @property
    def member(self) -> Member: ...

    def subscribe(self, buffer: int = 256) -> trio.MemoryReceiveChannel[NodeEvent]: ...


async def expire_posts(node: HoldsSpaces, on_expired: Callable[[bytes], None] | None = None, *,
                       task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Delete each space's expired posts, pass after pass, until cancelled; ``on_expired`` is
    told each space where posts became husks (the node tells the space's carriers).

    Started with ``nursery.start``, it reports ready after its first pass, so that a node
    that was off while posts expired can delete them before it serves any sync. A post that
    expired while it was its author's newest record waits for the author's next record (rule
    4): a pass runs as soon as records arrive in a space where one waits, not a minute later.
    """
    first = True
    with node.subscribe() as events:
        while True:
            next_ms: int | None = None
            waiting: set[bytes] = set()
            for space_id in node.replica.spaces():
                try:
                    found = node.member.expire_due(space_id)
                except MeshcrewError as exc:
                    log.warning("could not expire the posts of %s: %s", space_id.hex()[:12],
                                exc)
                    continue
                if found is not None and found.next_ms is not None:
                    next_ms = found.next_ms if next_ms is None else min(next_ms, found.next_ms)
                if found is not None and found.waiting:
                    waiting.add(space_id)
                if found is not None and found.due and on_expired is not None:
                    on_expired(space_id)
                await trio.lowlevel.checkpoint()
            if first:
                task_status.started()
                first = False
            wait_s = CHECK_EVERY_S if next_ms is None else \
                min(CHECK_EVERY_S, max(0.05, (next_ms - node.member.now()) / 1000))
            # a timer for scheduled work, cut short by records that may free a waiting post
            earliest = trio.current_time() + WOKEN_GAP_S
            with trio.move_on_after(wait_s):
                async for event in events:
                    if isinstance(event, RecordsChanged) and event.spaces & waiting:
                        await trio.sleep_until(earliest)
                        break


class ExpiredFirst:
    """The replica as sync reads it, with a space's retention applied before it is served.

    A record that arrived since the last pass (a settings change that shortens the retention,
    a post that had expired already on the node it came from) would otherwise be sent on until
    the next pass. Each session reads a space's frontier first: if records arrived in it since
    its last pass, the pass for that space runs then (``expire``, which deletes what is due).

    Args:
        replica: the replica.
        expire: runs the retention pass for one space.
    """

    def __init__(self, replica: Replica, expire: Callable[[bytes], object]) -> None:
        self._replica = replica
        self._expire = expire
        self._arrived: set[bytes] = set()

    def arrived(self, spaces: frozenset[bytes]) -> None:
        """Records were added to these spaces."""
        self._arrived |= spaces

    def frontier(self, space_id: bytes) -> Mapping[bytes, Head]:
        if space_id in self._arrived:
            self._arrived.discard(space_id)
            try:
                self._expire(space_id)
            except MeshcrewError as exc:
                log.warning("could not expire the posts of %s: %s", space_id.hex()[:12], exc)
        return self._replica.frontier(space_id)

    def records_after(self, space_id: bytes, theirs: Frontier, *, limit: int
                      ) -> Sequence[Record]:
        return self._replica.records_after(space_id, theirs, limit=limit)
