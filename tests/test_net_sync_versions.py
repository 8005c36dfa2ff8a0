"""Sync versions over real hosts: two new nodes reconcile (version 2); a node of an older release
(which serves and opens only ``/meshcrew/sync/1.0.0``) still syncs with a new one, whichever
side opens the stream, and nobody is penalized for the refused protocol."""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest
import trio

from hosts_on_loopback import open_hosts
from meshcrew.net import Host, SessionEvent, SyncService
from meshcrew.sync import SYNC_VERSIONS, RecordsReceived
from replica_in_memory import MemoryReplica, make_chain, signing_key, space_id

pytestmark = pytest.mark.trio
S1 = space_id(1)
OLD = (1,)


def service(host: Host, replica: MemoryReplica,
            versions: Sequence[int] = SYNC_VERSIONS) -> SyncService:
    async def on_event(peer_id: str, event: SessionEvent) -> None:
        if isinstance(event, RecordsReceived):
            replica.append(event.raws)

    return SyncService(host, replica, lambda: [S1], lambda s, k: True, on_event,
                       versions=versions)


@pytest.mark.parametrize(("versions_a", "versions_b", "spoken"), [
    (SYNC_VERSIONS, SYNC_VERSIONS, 2),
    (SYNC_VERSIONS, OLD, 1),  # the new side opens: version 2 refused, then version 1
    (OLD, SYNC_VERSIONS, 1),  # the old side opens version 1, which the new side serves
])
async def test_every_pair_of_releases_syncs(versions_a: Sequence[int],
                                            versions_b: Sequence[int], spoken: int) -> None:
    ra = MemoryReplica(make_chain(signing_key(1), S1, 30) + make_chain(signing_key(2), S1, 3))
    rb = MemoryReplica(make_chain(signing_key(2), S1, 9) + make_chain(signing_key(3), S1, 12))
    with trio.fail_after(20):
        async with open_hosts(2) as [a, b], trio.open_nursery() as nursery:
            sa, sb = service(a, ra, versions_a), service(b, rb, versions_b)
            await nursery.start(sb.run)
            await a.connect(b.listen_addrs()[0])
            stats = await sa.sync_with(b.peer_id)
            assert stats.version == spoken
            assert ra.ids() == rb.ids()
            assert len(ra.ids()) == 30 + 9 + 12
            # Again: the version the peer speaks is remembered for the connection.
            again = await sa.sync_with(b.peer_id)
            assert again.version == spoken
            assert again.records_sent == again.records_received == 0
            now = time.monotonic()
            assert a.scores.points(b.peer_id, now) == b.scores.points(a.peer_id, now) == 0
            nursery.cancel_scope.cancel()
