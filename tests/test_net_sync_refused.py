"""A peer whose view of a space is ahead of a node's (it counts the node as a member, the node
does not count it) is refused as a stranger, a charge each time: after a refusal it does not ask
that node again until a pause is over, so the charges never add up to a ban (docs/sync.md, 'Who
can incur each charge')."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
import trio

from hosts_on_loopback import LOOPBACK, member, wait_until
from meshcrew.errors import DialError
from meshcrew.identity import Identity
from meshcrew.net import Host, NetConfig, open_host
from meshcrew.net.scores import STRANGER_STREAM, PeerScores
from meshcrew.net.syncing import refusal_pause_s, starts_sessions
from meshcrew.sync import SYNC_VERSIONS
from replica_in_memory import MemoryReplica, make_chain, signing_key, space_id
from test_net_sync import service

S1 = space_id(1)
WEEK_S = 7 * 24 * 3600.0


@pytest.mark.parametrize("period_s", [1.0, 10.0, 60.0, 300.0])
def test_a_refused_peer_asking_once_a_pause_is_never_banned(period_s: float) -> None:
    config = NetConfig()  # the release's threshold and decay, on both sides
    versions = len(SYNC_VERSIONS)
    pause_s = refusal_pause_s(period_s, config.penalty_decay_per_s, versions)
    assert pause_s >= period_s
    scores = PeerScores(config.ban_threshold, config.penalty_decay_per_s)
    # Worst case: every attempt comes as soon as the pause is over and before identify, so it
    # tries every version and each refused stream is a charge.
    now, highest = 0.0, 0.0
    while now < WEEK_S:
        for _ in range(versions):
            assert not scores.penalize("P", STRANGER_STREAM, now)
        highest = max(highest, scores.points("P", now))
        now += pause_s
    assert highest <= versions * STRANGER_STREAM


def test_without_the_pause_a_busy_space_bans_the_peer_within_minutes() -> None:
    config = NetConfig()
    scores = PeerScores(config.ban_threshold, config.penalty_decay_per_s)
    # One attempt after each batch of records taken, up to one per 2 s (propagate_delay_s).
    banned_at = next(t for t in range(0, 3600, 2) if scores.penalize("P", STRANGER_STREAM, t))
    assert banned_at < 5 * 60


async def refused_on_connecting(p: Host, n: Host) -> None:
    """Connect ``p`` to ``n``; return once ``n`` has refused ``p``'s sync (its stranger charge)."""
    await p.connect(n.listen_addrs()[0])
    await wait_until(lambda: n.scores.points(p.peer_id, time.monotonic()) > 0)


def ordered() -> tuple[Identity, Identity]:
    """Two members, the one that starts the automatic sessions first."""
    one, other = member(0), member(1)
    return (one, other) if starts_sessions(one.public_key, other.public_key) else (other, one)


@pytest.mark.trio
async def test_a_peer_asked_often_after_a_refusal_pays_once_and_syncs_once_counted() -> None:
    period_s = 3.0
    # The peer's decay drains the charges of an attempt within its period, so the pause is the
    # period (at the default decay it is two minutes); the node keeps the default decay, so its
    # points count the charges.
    fast = replace(LOOPBACK, penalty_decay_per_s=len(SYNC_VERSIONS) * STRANGER_STREAM / period_s)
    assert refusal_pause_s(period_s, fast.penalty_decay_per_s, len(SYNC_VERSIONS)) == period_s
    records = make_chain(signing_key(1), S1, 3)
    rp, rn = MemoryReplica(records), MemoryReplica()
    members: dict[bytes, set[bytes]] = {S1: set()}  # the node does not count the peer (yet)
    peer_id, node_id = ordered()
    with trio.fail_after(40):
        async with open_host(peer_id, fast) as p, open_host(node_id, LOOPBACK) as n, \
                trio.open_nursery() as nursery:
            sp = service(p, rp, [S1], period_s=period_s)
            await nursery.start(service(n, rn, [S1], members=members).run)
            await nursery.start(sp.run)
            started = time.monotonic()
            await p.connect(n.listen_addrs()[0])  # the peer asks on connection: refused

            def points() -> float:
                return n.scores.points(p.peer_id, time.monotonic())

            await wait_until(lambda: points() > 0)
            for _ in range(50):  # as after 50 batches of records taken, one per 2 s at most
                sp.sync_soon(n.peer_id)
                await trio.sleep(0.01)  # the batches' pace, not a wait for a state
            asks = 1 + int((time.monotonic() - started) / period_s)  # under load, more periods
            assert points() <= asks * len(SYNC_VERSIONS) * STRANGER_STREAM
            assert not n.scores.is_banned(p.peer_id)
            assert n.peer_id in p.connected_peers()

            members[S1].add(p.public_key)  # the record that settles the views arrives
            # The node does not start sessions with this peer: the peer's next period does.
            await wait_until(lambda: rn.ids() == rp.ids(), within=3 * period_s + 5)
            nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_a_session_the_node_completes_with_the_peer_ends_the_pause() -> None:
    # The node came to count the peer (a carrier was just brought the space) and a session
    # between them ran to the end: the peer's next records go at once, not after the pause
    # (a carrier missed its drop from the crew for two minutes).
    first, later = make_chain(signing_key(3), S1, 5)[:3], make_chain(signing_key(3), S1, 5)[3:]
    rp, rn = MemoryReplica(first), MemoryReplica()
    members: dict[bytes, set[bytes]] = {S1: set()}
    peer_id, node_id = ordered()
    with trio.fail_after(40):
        async with open_host(peer_id, LOOPBACK) as p, open_host(node_id, LOOPBACK) as n, \
                trio.open_nursery() as nursery:
            sp = service(p, rp, [S1])  # a period of 60 s and a pause of 120 s
            sn = service(n, rn, [S1], members=members)
            await nursery.start(sn.run)
            await nursery.start(sp.run)
            await refused_on_connecting(p, n)
            members[S1].add(p.public_key)
            await sn.sync_with(p.peer_id)  # the node asks the peer itself, once
            assert rn.ids() == rp.ids()
            rp.append(r.raw for r in later)
            sp.sync_soon(n.peer_id)  # new records: they go now
            await wait_until(lambda: rn.ids() == rp.ids())
            nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_the_node_that_refused_asks_the_peer_once_it_counts_it() -> None:
    # The refusing node learns the record that makes the peer a member (a joiner's join, by
    # gossip from the inviter): it opens the session itself, at once, though the peer holds
    # back for its pause and the node's own period is a minute away.
    records = make_chain(signing_key(4), S1, 4)
    rp, rn = MemoryReplica(records), MemoryReplica()
    members: dict[bytes, set[bytes]] = {S1: set()}
    peer_id, node_id = ordered()
    with trio.fail_after(40):
        async with open_host(peer_id, LOOPBACK) as p, open_host(node_id, LOOPBACK) as n, \
                trio.open_nursery() as nursery:
            sn = service(n, rn, [S1], members=members)
            await nursery.start(sn.run)
            await nursery.start(service(p, rp, [S1]).run)
            await refused_on_connecting(p, n)
            members[S1].add(p.public_key)
            sn.membership_changed()
            await wait_until(lambda: rn.ids() == rp.ids())
            nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_a_failed_dial_is_no_refusal_and_the_connection_syncs_at_once() -> None:
    records = make_chain(signing_key(2), S1, 3)
    rp, rn = MemoryReplica(records), MemoryReplica()
    peer_id, node_id = ordered()
    with trio.fail_after(30):
        async with open_host(peer_id, LOOPBACK) as p, open_host(node_id, LOOPBACK) as n, \
                trio.open_nursery() as nursery:
            sp = service(p, rp, [S1])  # a period of 60 s: a pause would outlast the test
            await nursery.start(service(n, rn, [S1]).run)
            await nursery.start(sp.run)
            with pytest.raises(DialError):  # not connected: no stream opens, no one refused
                await sp.sync_with(n.peer_id)
            await p.connect(n.listen_addrs()[0])
            await wait_until(lambda: rn.ids() == rp.ids())
            nursery.cancel_scope.cancel()
