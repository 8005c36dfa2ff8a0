"""A session asked for while one with the same peer runs (``sync_soon``) runs after it, also
when the running one fails on the network: a hole punch asks so when its direct connection comes
up, and the session then running on the relayed connection is cut when that closes, 3 s later
(node.py ``_hole_punched``, net/reach.py RELAY_GRACE_S). Here the cut is the node's event
handler raising the ConnectionLost a closed connection gives (a second connection between two
loopback hosts, one of which closes, cannot be made here)."""

from __future__ import annotations

import pytest
import trio

from hosts_on_loopback import LOOPBACK, wait_until
from meshcrew.errors import ConnectionLost
from meshcrew.net import SessionEvent, open_host
from meshcrew.net.syncing import SyncService
from meshcrew.sync import RecordsReceived
from replica_in_memory import MemoryReplica, make_chain, signing_key, space_id
from test_net_sync_refused import ordered

S1 = space_id(1)


@pytest.mark.trio
async def test_a_session_asked_for_during_one_that_fails_still_runs() -> None:
    records = make_chain(signing_key(5), S1, 4)
    rn, rp = MemoryReplica(), MemoryReplica(records)
    node_id, peer_id = ordered()  # the node starts the session on connection
    first_seen, cut = trio.Event(), trio.Event()

    async def on_node_event(_peer: str, event: SessionEvent) -> None:
        if not first_seen.is_set():  # the first session: held, then cut (the relay closes)
            first_seen.set()
            await cut.wait()
            raise ConnectionLost("The relayed connection closed.")
        if isinstance(event, RecordsReceived):
            rn.append(event.raws)

    async def on_peer_event(_peer: str, event: SessionEvent) -> None:
        pass  # the node holds nothing the peer lacks

    with trio.fail_after(30):
        async with open_host(node_id, LOOPBACK) as n, open_host(peer_id, LOOPBACK) as p, \
                trio.open_nursery() as nursery:
            # Periods of 60 s: the next periodic session comes after the test's wait.
            sn = SyncService(n, rn, lambda: [S1], lambda s, k: True, on_node_event)
            sp = SyncService(p, rp, lambda: [S1], lambda s, k: True, on_peer_event)
            await nursery.start(sn.run)
            await nursery.start(sp.run)
            await n.connect(p.listen_addrs()[0])
            with trio.fail_after(10):
                await first_seen.wait()
            sn.sync_soon(p.peer_id)  # the direct connection is up: a session over it
            cut.set()
            await wait_until(lambda: rn.ids() == rp.ids())
            assert p.peer_id in n.connected_peers()
            nursery.cancel_scope.cancel()
