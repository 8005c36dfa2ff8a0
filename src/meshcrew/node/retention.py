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


FEW_ARRIVALS = 1_000
"""Up to how many records arrived since a space's last pass a session runs the pass as it
starts; past it (a catch-up under way) only before it sends records."""


class ExpiredFirst:
    """The replica as sync reads it, with a space's retention applied before it is served.

    A record that arrived since the last pass (a settings change that shortens the retention,
    a post that had expired already on the node it came from) would otherwise be sent on until
    the next pass. So if records arrived in a space since its last pass, the pass for that
    space runs (``expire``, which deletes what is due, and has the carriers told) when a
    session or a join reads the space's frontier, or, if more than :data:`FEW_ARRIVALS`
    arrived, when it is about to send records the peer lacks. A node catching up, whose peer
    lacks nothing, then runs no pass per session while the records pour in (each would open
    every post that arrived since the one before); its timer's pass comes soon enough.

    Args:
        replica: the replica.
        expire: runs the retention pass for one space.
        few: the most arrivals for which a session's start runs the pass.
    """

    def __init__(self, replica: Replica, expire: Callable[[bytes], object], *,
                 few: int = FEW_ARRIVALS) -> None:
        self._replica = replica
        self._expire = expire
        self._few = few
        self._arrived: set[bytes] = set()
        self._passed: dict[bytes, Mapping[bytes, Head]] = {}
        """Each space's frontier when nothing had arrived since a pass, as last seen."""

    def arrived(self, spaces: frozenset[bytes]) -> None:
        """Records were added to these spaces."""
        self._arrived |= spaces

    def frontier(self, space_id: bytes) -> Mapping[bytes, Head]:
        now: Mapping[bytes, Head] = self._replica.frontier(space_id)
        if space_id in self._arrived and _added(self._passed.get(space_id), now) <= self._few:
            now = self._run_pass(space_id)
        if space_id not in self._arrived:
            self._passed[space_id] = now
        return now

    def records_after(self, space_id: bytes, theirs: Frontier, *, limit: int
                      ) -> Sequence[Record]:
        if space_id in self._arrived and _lacks_any(theirs, self._replica.frontier(space_id)):
            self._passed[space_id] = self._run_pass(space_id)
        return self._replica.records_after(space_id, theirs, limit=limit)

    def _run_pass(self, space_id: bytes) -> Mapping[bytes, Head]:
        """Run the space's pass; its frontier after (the pass may post this member's profile
        again)."""
        self._arrived.discard(space_id)
        try:
            self._expire(space_id)
        except MeshcrewError as exc:
            log.warning("could not expire the posts of %s: %s", space_id.hex()[:12], exc)
        return self._replica.frontier(space_id)


def _added(before: Mapping[bytes, Head] | None, now: Mapping[bytes, Head]) -> int:
    """How many records ``now`` has beyond ``before`` (none known: 0)."""
    if before is None:
        return 0
    return sum(max(0, head.seq - before.get(author, Head(0, b"")).seq)
               for author, head in now.items())


def _lacks_any(theirs: Frontier, ours: Mapping[bytes, Head]) -> bool:
    """Whether a peer at ``theirs`` lacks a record a replica at ``ours`` would send it: a chain
    that is longer here, or whose record at the peer's head differs (a fork)."""
    for author, head in ours.items():
        their = theirs.get(author)
        if their is None or their.seq < head.seq or (their.seq == head.seq
                                                      and their.id != head.id):
            return True
    return False
