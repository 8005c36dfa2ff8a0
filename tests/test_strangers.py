"""What a peer that is not a member learns from a node (issue 17): nothing of its spaces.

The peer is a raw py-libp2p host (no meshcrew code on its side) that records every byte the node
sends it on pubsub and every other stream the node opens to it. A member's raw peer, recorded the
same way, is the control: the same recording does see the space while the peer is a member.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import msgpack
import pytest
import trio
import trio.testing

from hosts_on_loopback import wait_until
from meshcrew.home import Home
from meshcrew.identity import Identity
from meshcrew.net.gossip import topic_name
from meshcrew.node import open_node
from meshcrew.node.addr_exchange import ADDRS_PROTOCOL
from meshcrew.node.carrying import CARRY_PROTOCOL
from meshcrew.records import Record
from meshcrew.service import Member
from meshcrew.spaces.sealing import unlock
from meshcrew.spaces.transit import open_transit, transit_keys
from meshcrew.sync import PROTOCOL_IDS
from node_world import LOOPBACK_NODE, crew_by_file
from raw_peer import Inbound, open_raw_peer

HOUR_MS = 3_600_000
NODE_PROTOCOLS = [ADDRS_PROTOCOL, CARRY_PROTOCOL, *PROTOCOL_IDS.values()]


def heartbeats(node: Any) -> list[int]:
    """Count the node's GossipSub heartbeats (its IHAVE gossip goes out on each)."""
    router = node.host._pubsub.router
    count = [0]
    tick = router.gossip_heartbeat

    def counted() -> Any:
        count[0] += 1
        return tick()

    router.gossip_heartbeat = counted
    return count


async def after_heartbeats(count: list[int], n: int = 3) -> None:
    """Wait until the node has gossiped ``n`` more times (a window in which anything the node
    would tell a peer about a topic has been sent)."""
    start = count[0]
    await wait_until(lambda: count[0] >= start + n, within=n * 2 + 5)


def secrets_of(records: list[Record]) -> list[bytes]:
    """What must not reach a stranger: the spaces' ids and topics, the authors' keys, and the
    records' timestamps as they are encoded."""
    found: list[bytes] = []
    for record in records:
        found += [record.space_id, topic_name(record.space_id).encode(), record.author,
                  msgpack.packb(record.ts), record.ts.to_bytes(8, "big")]
    return found


def leaked(inbound: bytes | bytearray, secrets: list[bytes]) -> list[bytes]:
    return [s for s in secrets if bytes(s) in inbound]


def crew_of_two(root: Path) -> tuple[Home, Identity, Identity, list[bytes]]:
    """Ada in three spaces, Bo (offline) with her in the first, which holds his check-in."""

    def bo_checks_in(ada: Member, bo: Member, spaces: list[bytes]) -> None:
        bo.ingest(ada.export(spaces[0]), sender="file")
        bo.checkin(spaces[0], text="marker from Bo", energy=2)
        ada.ingest(bo.export(spaces[0]), sender="file")

    ada_home, ada_who, _, bo_who, spaces = crew_by_file(root, "Crew", "Pals", "Book club",
                                                        then=bo_checks_in)
    return ada_home, ada_who, bo_who, spaces


@pytest.mark.trio
async def test_a_stranger_learns_no_space_topic_member_or_time(tmp_path: Path) -> None:
    ada_home, ada_who, bo_who, spaces = crew_of_two(tmp_path)
    with trio.fail_after(60):
        async with open_node(ada_home, ada_who, LOOPBACK_NODE) as ada:
            count = heartbeats(ada)
            async with open_raw_peer("stranger") as stranger:
                inbound = stranger.record_inbound(NODE_PROTOCOLS)
                await stranger.connect(ada.addrs()[0])
                # handed a topic name, the stranger subscribes to it
                await stranger.pubsub.subscribe(topic_name(spaces[0]))
                pubsub = ada.host._pubsub

                def subscription_came() -> bool:  # held back by the gate, or taken (no gate)
                    return pubsub.refused >= 1 or any(
                        str(p) == stranger.peer_id
                        for p in pubsub.peer_topics.get(topic_name(spaces[0]), ()))

                await wait_until(subscription_came)
                made = [ada.member.checkin(s, text=f"marker {i}", energy=3)
                        for i, s in enumerate(spaces)]
                await after_heartbeats(count)
                records = [r for r in (ada.replica.get(i) for i in made) if r is not None]
                records += ada.replica.space_records(spaces[0])  # Bo's among them
                assert any(r.author == bo_who.public_key for r in records)
                # (The node's own key is its peer id, which the stranger dialled: not a secret.)
                secrets = [s for s in secrets_of(records) if s != ada_who.public_key]
                assert inbound.pubsub, "the recording saw nothing at all (not even the hello)"
                assert leaked(inbound.pubsub, secrets) == []
                assert b"marker" not in inbound.pubsub
                # no sync offer, no address exchange, no carry
                assert inbound.opened == [], inbound.opened
                told = {t for t, peers in stranger.pubsub.peer_topics.items()
                        if any(str(p) == ada.host.peer_id for p in peers)}
                assert told == set()
                assert ada.host.peer_id not in {
                    str(p) for p in stranger.router.mesh.get(topic_name(spaces[0]), ())}


@pytest.mark.trio
async def test_a_member_sees_its_space_and_after_removal_and_rotation_nothing_new(
        tmp_path: Path) -> None:
    ada_home, ada_who, _, bo_who, [space, other] = crew_by_file(
        tmp_path, "Crew", "Pals", then=lambda ada, bo, spaces: ada.rotate(spaces[0]))
    with trio.fail_after(60):
        async with open_node(ada_home, ada_who, LOOPBACK_NODE) as ada:
            count = heartbeats(ada)
            async with open_raw_peer("Bo's runaway node", bo_who.signing_key.encode()) as bo:
                inbound: Inbound = bo.record_inbound(NODE_PROTOCOLS)
                await bo.connect(ada.addrs()[0])
                subscription = await bo.pubsub.subscribe(topic_name(space))
                await bo.pubsub.subscribe(topic_name(other))  # a space Bo is not in
                # While Bo is a member he is told the space and sent its records, sealed in
                # transit under a key his keyring opens: the control.
                await wait_until(lambda: ada.host.peer_id in {
                    str(p) for p in bo.pubsub.peer_topics.get(topic_name(space), ())})
                before = ada.replica.get(ada.member.checkin(space, text="hello", energy=3))
                assert before is not None
                state = ada.member.view(space).state
                keys = transit_keys(state, unlock(state, bo_who.signing_key))
                with trio.fail_after(10):  # older records may come first
                    while True:
                        message = await subscription.receive_channel.receive()
                        if open_transit(keys, space, bytes(message.data)) == before.raw:
                            break
                # ... and even a member's wire shows no space id or time in the clear (he is
                # told the topic, and Ada's key is the id of the peer he dialled).
                assert leaked(inbound.pubsub, [before.space_id, msgpack.packb(before.ts),
                                               before.ts.to_bytes(8, "big")]) == []
                assert ada.host.peer_id not in {
                    str(p) for p in bo.pubsub.peer_topics.get(topic_name(other), ())}
                # Ada removes Bo (hers is the only consent a crew of two needs), the
                # keys rotate with her next post.
                ada.member.propose_removal(space, bo_who.public_key)
                assert not ada.membership.is_member(space, bo_who.public_key)
                # The gate closes for Bo: Ada says she left the topic, so his node stops
                # sending on it (and does not pile up penalty points for it).
                await wait_until(lambda: ada.host.peer_id not in {
                    str(p) for p in bo.pubsub.peer_topics.get(topic_name(space), ())})
                seen = len(inbound.pubsub)
                after = ada.replica.get(ada.member.checkin(space, text="after", energy=3))
                assert after is not None
                await after_heartbeats(count)
                assert leaked(inbound.pubsub[seen:], secrets_of([after])) == []


@pytest.mark.trio
async def test_a_member_peer_that_speaks_no_sync_is_noted_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    ada_home, ada_who, bo_who, _ = crew_of_two(tmp_path)
    with trio.fail_after(60):
        # Bo's key on a plain libp2p host: a member, so the node tries to sync with it
        async with open_node(ada_home, ada_who, LOOPBACK_NODE) as ada, \
                open_raw_peer("Bo's other program", bo_who.signing_key.encode()) as bo:
            await bo.connect(ada.addrs()[0])

            def noted() -> list[logging.LogRecord]:
                return [r for r in caplog.records if "speaks no sync version" in r.message]

            def asked_until_noted() -> bool:
                # Only what identify said proves a missing version: an attempt before it has
                # said anything fails without a note (it did once in a CI run), so ask again.
                if noted():
                    return True
                ada.sync.sync_soon(bo.peer_id)
                return False

            await wait_until(asked_until_noted)
            for _ in range(3):
                ada.sync.sync_soon(bo.peer_id)
            await trio.testing.wait_all_tasks_blocked(cushion=0.2)
            assert len(noted()) == 1
            assert [r.message for r in caplog.records if r.levelno >= logging.WARNING
                    and "Failed to open stream" in r.message] == []


def test_libp2p_seven_line_stream_failures_become_one_debug_line() -> None:
    from meshcrew.net.seam import OneLineStreamFailures

    lines = ["Failed to open stream to peer 12D3KooX:", "  Error: protocol read failed",
             "  Protocols: ['/meshcrew/sync/2.0.0']", "  Timeout: 30s"]
    record = logging.LogRecord("libp2p.host.basic_host", logging.ERROR, __file__, 1,
                               "\n".join(lines), None, None)
    logger = logging.getLogger("libp2p.host.basic_host")
    level = logger.level
    try:
        logger.setLevel(logging.WARNING)
        assert OneLineStreamFailures().filter(record) is False  # not shown at all
        logger.setLevel(logging.DEBUG)
        assert OneLineStreamFailures().filter(record) is True
    finally:
        logger.setLevel(level)
    assert record.levelno == logging.DEBUG
    assert record.getMessage() == "Failed to open stream to peer 12D3KooX:   Error: protocol " \
                                  "read failed"
    other = logging.LogRecord("libp2p.host.basic_host", logging.ERROR, __file__, 1,
                              "something else", None, None)
    assert OneLineStreamFailures().filter(other) is True
    assert other.levelno == logging.ERROR
