"""A session asked for while one with the same peer runs (``sync_soon``) runs after it, also
when the running one fails on the network: a hole punch asks so when its direct connection comes
up, and the session then running on the relayed connection is cut when that closes, 3 s later
(node.py ``_hole_punched``, net/reach.py RELAY_GRACE_S). Here the cut is the node's event
handler raising the ConnectionLost a closed connection gives (a second connection between two
loopback hosts, one of which closes, cannot be made here).

A member a busy node turns away (its inbound sessions are full) asks again at its next trigger:
that is no stranger's refusal, which holds the asker back for a pause (test_net_sync_refused.py).
"""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
import trio

from hosts_on_loopback import LOOPBACK, member, wait_until
from meshcrew.errors import ConnectionLost
from meshcrew.net import SessionEvent, open_host
from meshcrew.net.syncing import SyncService
from meshcrew.sync import PROTOCOL_IDS, SYNC_VERSION, RecordsReceived
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


@pytest.mark.trio
async def test_a_member_turned_away_as_busy_asks_again_at_the_next_trigger(
        caplog: pytest.LogCaptureFixture) -> None:
    # A node at its limit of inbound sessions turns a member away; that is no stranger's
    # refusal (which holds the asker back for two minutes, refusal_pause_s): once a slot is
    # free, the member's next trigger (a new record, two seconds later) syncs at once.
    records = make_chain(signing_key(6), S1, 3)
    rp, rn = MemoryReplica(records), MemoryReplica()
    peer_id, node_id = ordered()  # the peer starts the session on connection
    patient = replace(LOOPBACK, read_timeout_s=30.0)  # the slot's holder is not timed out

    async def on_node_event(_peer: str, event: SessionEvent) -> None:
        if isinstance(event, RecordsReceived):
            rn.append(event.raws)

    async def on_peer_event(_peer: str, event: SessionEvent) -> None:
        pass

    caplog.set_level(logging.INFO, logger="meshcrew.net")

    def logged(*words: str) -> bool:
        return any(all(w in r.getMessage() for w in words) for r in caplog.records)

    with trio.fail_after(30):
        async with open_host(node_id, patient) as n, open_host(peer_id, LOOPBACK) as p, \
                open_host(member(7), LOOPBACK) as holder, trio.open_nursery() as nursery:
            sn = SyncService(n, rn, lambda: [S1], lambda s, k: True, on_node_event,
                             max_inbound=1)
            sp = SyncService(p, rp, lambda: [S1], lambda s, k: True, on_peer_event)
            await nursery.start(sn.run)
            await nursery.start(sp.run)
            await holder.connect(n.listen_addrs()[0])
            held = await holder.open_stream(n.peer_id, PROTOCOL_IDS[SYNC_VERSION])
            assert await held.receive_some()  # the node's hello: its one slot is taken
            await p.connect(n.listen_addrs()[0])  # the peer asks on connection: busy
            await wait_until(lambda: logged(p.peer_id, "too many sessions"))
            await held.reset()
            await wait_until(lambda: logged("sync with", holder.peer_id, "failed"))
            sp.sync_soon(n.peer_id)  # a new record here
            await wait_until(lambda: rn.ids() == rp.ids())
            nursery.cancel_scope.cancel()
