"""When the node's retention pass (:func:`meshcrew.node.retention.expire_posts`) runs again,
on real member services and replicas; the node's event channel is a plain trio channel the
test writes to, as the node's record intake does."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from hosts_on_loopback import wait_until
from meshcrew.node.reports import NodeEvent, RecordsChanged
from meshcrew.node.retention import CHECK_EVERY_S, ExpiredFirst, expire_posts
from meshcrew.records import Head
from meshcrew.service import Member
from meshcrew.store import Replica
from test_service_retention import daily_crew
from test_service_support import DAY, Town, sync, town_at

pytestmark = pytest.mark.trio


@pytest.fixture
def town(tmp_path: Path) -> Iterator[Town]:
    yield from town_at(tmp_path)


class Watched:
    """A member service with the node's event channel, which the test feeds."""

    def __init__(self, member: Member) -> None:
        self.member = member
        self._send, self._receive = trio.open_memory_channel[NodeEvent](16)

    @property
    def replica(self) -> Replica:
        return self.member.replica

    def subscribe(self, buffer: int = 256) -> trio.MemoryReceiveChannel[NodeEvent]:
        return self._receive

    def records_arrived(self, space: bytes) -> None:
        self._send.send_nowait(RecordsChanged(frozenset({space}), (), False, 0))


async def test_a_waiting_post_goes_as_soon_as_its_authors_next_record_arrives(
        town: Town) -> None:
    """Ada's check-in expires while it is her newest record, so Bob's node keeps it (rule 4);
    her node re-posts her profile and deletes it. When that profile reaches Bob, his node's
    pass runs at once, not at its next timer (a minute)."""
    space, ada, bob = daily_crew(town, keep_checkins=1)
    marker = ada.checkin(space, text="MARKER-waiting", energy=3)
    sync(space, ada, bob)
    town.clock.advance(2 * DAY)
    bobs_node = Watched(bob)

    def expired() -> bool:
        held = bob.replica.get(marker)
        return held is not None and held.expired

    assert CHECK_EVERY_S >= 30  # so only the wake can beat the deadline below
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(expire_posts, bobs_node)
            assert not expired()  # Ada's newest record: it waits
            ada.expire_due(space)  # her profile again, then her check-in goes
            sync(space, ada, bob)
            bobs_node.records_arrived(space)
            await wait_until(expired, within=5)
            nursery.cancel_scope.cancel()


async def test_sync_applies_the_retention_to_a_space_before_it_serves_it(town: Town) -> None:
    """A settings change or an expired post that arrived since the last pass is not sent on
    until the next timer: the pass for that space runs when a session reads its frontier."""
    space, ada, _bob = daily_crew(town, keep_checkins=1)
    marker = ada.checkin(space, text="MARKER-served", energy=3)
    town.clock.advance(2 * DAY)
    served = ExpiredFirst(ada.replica, ada.expire_due)
    assert served.frontier(space) == ada.replica.frontier(space)
    assert not expired(ada, marker)  # nothing arrived since the last pass: no pass
    served.arrived(frozenset({space}))
    served.frontier(space)  # her newest record: her profile is posted again, then it goes
    assert expired(ada, marker)
    sent = {r.id: r for r in served.records_after(space, {}, limit=100)}
    assert sent[marker].expired  # the husk, not the post


async def test_during_a_catch_up_the_pass_waits_until_records_are_sent(town: Town) -> None:
    """Past a few arrivals (a catch-up under way) a session's start runs no pass: each would
    open every post since the one before, while the peer, which sends them, lacks nothing.
    The pass runs before records go to a peer that lacks some."""
    space, ada, bob = daily_crew(town, keep_checkins=1)
    served = ExpiredFirst(ada.replica, ada.expire_due, few=2)
    served.frontier(space)
    marker = ada.checkin(space, text="MARKER-caught-up", energy=3)
    for n in range(2):
        ada.checkin(space, text=f"after the marker {n}", energy=2)
    town.clock.advance(2 * DAY)
    served.arrived(frozenset({space}))  # three records: more than few
    assert served.frontier(space) == ada.replica.frontier(space)
    assert not expired(ada, marker)
    in_sync = dict(ada.replica.frontier(space))
    assert served.records_after(space, in_sync, limit=100) == []
    assert not expired(ada, marker)  # a peer that lacks nothing is sent nothing: no pass
    ahead = {author: Head(head.seq + 5, head.id) for author, head in in_sync.items()}
    assert served.records_after(space, ahead, limit=100) == []
    assert not expired(ada, marker)  # nor one ahead of this replica (the one it catches up from)
    sent = {r.id: r for r in served.records_after(space, bob.replica.frontier(space), limit=100)}
    assert expired(ada, marker)
    assert sent[marker].expired  # the husk, not the post


def expired(member: Member, record_id: bytes) -> bool:
    held = member.replica.get(record_id)
    assert held is not None
    return held.expired
