"""A carrier takes gossip: each rotation seals the epoch's transit key to the carriers a space
names, so a carrier opens, verifies and forwards the space's gossip (issue 17, item 2), and a
dropped carrier opens nothing sealed after the rotation that follows its drop. In-process nodes
with real libp2p hosts on loopback."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import msgpack
import pytest
import trio

from hosts_on_loopback import wait_until
from meshcrew.net.gossip import topic_name
from meshcrew.node import open_node
from meshcrew.node.config import CarrierConfig
from meshcrew.spaces.sealing import unlock
from meshcrew.spaces.transit import TransitUnknown, open_transit, transit_keys
from node_world import LOOPBACK_NODE, crew_by_file, open_nodes, wall_ms
from raw_peer import open_raw_peer

pytestmark = pytest.mark.trio
HOUR_MS = 3_600_000
CARRIER = replace(LOOPBACK_NODE, carrier=CarrierConfig(enabled=True))


async def test_a_carrier_opens_verifies_and_forwards_gossip(tmp_path: Path) -> None:
    """Ada's node and Bo's runaway node (a raw libp2p peer with his key) are connected only
    through the carrier: Ada's post reaches Bo as gossip the carrier opened, verified and
    forwarded."""
    ada_home, ada_who, _, bo_who, [space] = crew_by_file(tmp_path)
    with trio.fail_after(60):
        async with open_nodes(tmp_path / "c", "Pi", config=CARRIER) as [pi], \
                open_node(ada_home, ada_who, LOOPBACK_NODE) as ada:
            ada.member.add_carrier(space, pi.identity.public_key)  # and rotates: Pi's key
            await ada.connect(pi.addrs()[0])
            await wait_until(lambda: space in pi.serving.carried()
                             and pi.transit.keys(space).current
                             == ada.transit.keys(space).current, within=20)
            async with open_raw_peer("Bo's node", bo_who.signing_key.encode()) as bo, \
                    open_raw_peer("stranger") as stranger:
                inbound = stranger.record_inbound([])
                await stranger.connect(pi.addrs()[0])
                await stranger.pubsub.subscribe(topic_name(space))  # handed the topic
                await bo.connect(pi.addrs()[0])
                subscription = await bo.pubsub.subscribe(topic_name(space))
                # Pi is in the topic and tells Bo so (a member); Ada has Pi in her mesh.
                await wait_until(lambda: pi.host.peer_id in {
                    str(p) for p in bo.pubsub.peer_topics.get(topic_name(space), ())}
                    and pi.host.peer_id in ada.host.gossip.mesh_peers(space)
                    and bo.peer_id in pi.host.gossip.mesh_peers(space), within=20)
                judged = pi.judge.accepted
                post = ada.replica.get(ada.member.checkin(space, text="carried", energy=4))
                assert post is not None
                state = ada.member.view(space).state
                keys = transit_keys(state, unlock(state, bo_who.signing_key))
                with trio.fail_after(10):  # older records may come first
                    while True:
                        message = await subscription.receive_channel.receive()
                        try:
                            if open_transit(keys, space, bytes(message.data)) == post.raw:
                                break
                        except TransitUnknown:
                            pass  # sealed under an epoch before Bo's
                assert not bo.connected_to(ada.host.peer_id)  # so it came through Pi
                assert pi.judge.accepted > judged  # Pi's validator opened and accepted it
                assert pi.replica.get(post.id) is not None
                assert pi.member.view(space).keyring.epoch_keys == {}  # and reads no post
                # A carrier is a public node: a stranger who connects to it and subscribes to
                # the topic is told nothing and sent nothing of it.
                assert stranger.peer_id not in pi.host.gossip.topic_peers(space)
                assert not any(str(p) == pi.host.peer_id for p in
                               stranger.pubsub.peer_topics.get(topic_name(space), ()))
                for secret in (space, topic_name(space).encode(), ada_who.public_key,
                               bo_who.public_key, post.ts.to_bytes(8, "big"),
                               msgpack.packb(post.ts)):
                    assert secret not in inbound.pubsub


async def test_a_dropped_carrier_opens_no_gossip_after_the_rotation(tmp_path: Path) -> None:
    with trio.fail_after(90):
        async with open_nodes(tmp_path / "c", "Pi", config=CARRIER) as [pi], \
                open_nodes(tmp_path / "m", "Ana", "Bo") as [ana, bo]:
            space = ana.member.create_space("Crew")
            await bo.join(ana.member.invite(space, expires_ms=wall_ms() + HOUR_MS,
                                            addrs=ana.addrs()))
            ana.member.add_carrier(space, pi.identity.public_key)  # and rotates
            for member in (ana, bo):
                await member.connect(pi.addrs()[0])
            # The control: named, Pi holds the current transit key and is in both topics.
            await wait_until(lambda: pi.transit.keys(space).current
                             == bo.transit.keys(space).current is not None
                             and all(pi.host.peer_id in m.host.gossip.topic_peers(space)
                                     for m in (ana, bo)), within=20)
            held = pi.transit.keys(space)
            ana.member.drop_carrier(space, pi.identity.public_key)
            rotation = ana.member.view(space).state.current_epoch_id  # the drop rotated at once
            assert rotation is not None
            assert ana.transit.keys(space).current not in held.by_id
            # Pi learns of its drop by sync (it is synced with for a grace period).
            await wait_until(lambda: space not in pi.serving.carried()
                             and bo.replica.get(rotation) is not None, within=20)
            # Neither member lets it into the topic any more...
            for member in (ana, bo):
                await wait_until(lambda m=member: pi.host.peer_id  # type: ignore[misc]
                                 not in m.host.gossip.topic_peers(space), within=10)
                assert not member.serving.sees_gossip(space, pi.identity.public_key)
            # ...and what is sealed after the rotation does not open with anything it held or
            # could get from the records it holds.
            checkin = ana.member.checkin(space, text="after the drop", energy=2)
            record = ana.replica.get(checkin)
            assert record is not None
            sealed = ana.transit.seal(space, record.raw)
            assert sealed is not None
            pi.transit.changed()
            for keys in (held, pi.transit.keys(space)):
                assert keys.by_id
                with pytest.raises(TransitUnknown):
                    open_transit(keys, space, sealed)
            assert bo.transit.open(space, sealed) == record.raw  # a member opens it
