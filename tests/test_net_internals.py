"""Pins every py-libp2p 0.8.1 internal that reach relies on (src/meshcrew/net/internals.py and
net/reach.py name them and say why), so an upgrade that moves one fails here, loudly, instead
of quietly breaking relays and hole punching. Behaviour is tested in test_net_relay.py and
test_netlab.py; these check the shapes and the known bugs worked around."""

from __future__ import annotations

import inspect

import pytest
import trio
from multiaddr import Multiaddr

from hosts_on_loopback import open_hosts
from meshcrew.net import internals


def params(fn: object) -> list[str]:
    return list(inspect.signature(fn).parameters)  # type: ignore[arg-type]


def test_the_circuit_relay_v2_wire_messages_are_where_we_import_them() -> None:
    from libp2p.relay.circuit_v2.pb import circuit_pb2 as pb

    hop = pb.HopMessage(type=pb.HopMessage.CONNECT, peer=pb.PeerId(id=b"x"),
                        limit=pb.Limit(duration=1, data=2),
                        reservation=pb.Reservation(expire=3, addrs=[b"a"], voucher=b"v"))
    assert pb.HopMessage.FromString(hop.SerializeToString()) == hop
    stop = pb.StopMessage(type=pb.StopMessage.CONNECT, peer=pb.PeerId(id=b"y"))
    assert stop.type == pb.StopMessage.CONNECT
    assert {internals.HOP_RESERVE, internals.HOP_CONNECT} == {pb.HopMessage.RESERVE,
                                                              pb.HopMessage.CONNECT}
    assert pb.Voucher(relay=b"r", peer=b"p", expiration=1).expiration == 1
    # The spec's status numbers.
    assert int(internals.Status.OK) == 100
    assert int(internals.Status.RESERVATION_REFUSED) == 200
    assert int(internals.Status.NO_RESERVATION) == 204


def test_the_upgrade_and_connection_apis_keep_their_shape() -> None:
    from libp2p.connection_types import ConnectionType
    from libp2p.host.basic_host import BasicHost
    from libp2p.network.connection.raw_connection import RawConnection
    from libp2p.network.connection.swarm_connection import SwarmConn
    from libp2p.network.swarm import Swarm

    assert params(RawConnection.__init__)[:5] == ["self", "stream", "initiator",
                                                  "connection_type", "addresses"]
    assert ConnectionType.RELAYED != ConnectionType.DIRECT
    assert params(BasicHost.upgrade_outbound_connection) == ["self", "raw_conn", "peer_id"]
    assert params(BasicHost.upgrade_inbound_connection) == ["self", "raw_conn", "maddr"]
    assert params(SwarmConn.set_transport_info) == ["self", "addresses", "conn_type"]
    assert hasattr(SwarmConn, "get_connection_type")
    assert params(Swarm.unblock_peer)[:2] == ["self", "peer_id"]
    assert params(Swarm.dial_addr_as_responder) == ["self", "addr", "peer_id", "source"]
    from libp2p.peer.envelope import Envelope, make_unsigned

    assert callable(make_unsigned)
    assert "marshal_envelope" in dir(Envelope)


def test_dcutr_keeps_the_methods_meshcrew_overrides_and_calls() -> None:
    from libp2p.relay.circuit_v2.dcutr import DCUtRProtocol

    assert params(DCUtRProtocol._perform_hole_punch) == ["self", "peer_id", "addrs",
                                                         "as_responder"]
    assert params(DCUtRProtocol._close_relayed_conns_after_grace) == ["self", "peer_id",
                                                                      "grace"]
    for name in ("_auto_drive_loop", "_schedule_relay_close", "initiate_hole_punch"):
        assert callable(getattr(DCUtRProtocol, name)), name


@pytest.mark.trio
async def test_get_addrs_still_mangles_circuit_addresses_so_they_are_appended_after_it() -> None:
    """libp2p strips from the first /p2p/ and appends the host's own id: a circuit address
    given through addrs_factory would come out as a wrong direct one. When this fails, libp2p
    fixed it and internals.announce_also can go."""
    from libp2p.peer.id import ID

    async with open_hosts(1, first=360) as (host,):
        lp = host._lp
        relay = "12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp"
        circuit = Multiaddr(f"/ip4/198.51.100.2/tcp/1/p2p/{relay}/p2p-circuit")
        factory = lp._addrs_factory
        lp._addrs_factory = lambda addrs: [*factory(addrs), circuit]
        try:
            out = [str(a) for a in lp.get_addrs()]
        finally:
            lp._addrs_factory = factory
        assert f"/ip4/198.51.100.2/tcp/1/p2p/{ID.from_base58(host.peer_id)}" in out
        assert not any("p2p-circuit" in a for a in out)


@pytest.mark.trio
async def test_the_swarm_still_cannot_dial_a_circuit_address_itself() -> None:
    """host.connect drops /p2p-circuit addresses (swarm.py ~818): meshcrew dials circuits
    itself. When this fails, libp2p can dial circuits and net/relay's dialling can be reviewed."""
    from libp2p.peer.peerinfo import info_from_p2p_addr

    async with open_hosts(2, first=362) as (relay, ana):
        circuit = f"{relay.listen_addrs()[0]}/p2p-circuit/p2p/{ana.peer_id}"
        info = info_from_p2p_addr(Multiaddr(circuit))
        with pytest.raises(Exception), trio.fail_after(10):  # noqa: B017, PT011
            await relay._lp.connect(info)


def test_the_pubsub_methods_the_gate_overrides_keep_their_shape() -> None:
    """net/pubsub_gate.py overrides these py-libp2p 0.8.1 Pubsub/GossipSub methods and reads
    these attributes; each must still be where and what the gate expects."""
    from libp2p.pubsub.gossipsub import GossipSub
    from libp2p.pubsub.pb import rpc_pb2
    from libp2p.pubsub.pubsub import Pubsub
    from libp2p.pubsub.rpc_queue import RpcQueue

    assert params(Pubsub.get_hello_packet) == ["self"]
    assert params(Pubsub._handle_new_peer) == ["self", "peer_id"]
    assert params(Pubsub.write_msg) == ["self", "stream", "rpc_msg"]
    assert params(Pubsub.handle_subscription) == ["self", "origin_id", "sub_message"]
    assert params(Pubsub.push_msg) == ["self", "msg_forwarder", "msg"]
    assert params(Pubsub._handle_dead_peer) == ["self", "peer_id"]
    assert params(Pubsub._forget_subscription) == ["self", "peer_id", "topic"]
    assert isinstance(Pubsub.topic_ids, property)
    assert params(GossipSub.handle_rpc) == ["self", "rpc", "sender_peer_id"]
    assert params(RpcQueue.push) == ["self", "rpc", "priority"]
    # Every topic-bearing control entry names its topic in topicID; IWANT/IDONTWANT name none.
    control = {f.name: f.message_type for f in rpc_pb2.ControlMessage.DESCRIPTOR.fields}
    assert set(control) == {"ihave", "iwant", "graft", "prune", "idontwant", "extensions",
                            "observe", "unobserve"}
    for name in ("ihave", "graft", "prune", "observe", "unobserve"):
        assert "topicID" in control[name].fields_by_name
    for name in ("iwant", "idontwant"):
        assert "topicID" not in control[name].fields_by_name
    assert {f.name for f in rpc_pb2.RPC.DESCRIPTOR.fields} >= {"subscriptions", "publish",
                                                                "control", "senderRecord"}


def test_the_publish_wait_reads_libp2p_queues_where_they_are() -> None:
    """net/gossip.py waits for room in each topic peer's outbound queue before a publish
    (libp2p drops an RPC a full queue does not take): it reads Pubsub.peer_topics and
    Pubsub.peer_queues, and an RpcQueue's length against OutBoundQueueSize."""
    from libp2p.pubsub.pb import rpc_pb2
    from libp2p.pubsub.pubsub import Pubsub
    from libp2p.pubsub.rpc_queue import OutBoundQueueSize, RpcQueue

    assert {"peer_topics", "peer_queues"} <= set(Pubsub.__annotations__)
    queue = RpcQueue()
    for count in range(1, OutBoundQueueSize + 1):
        assert queue.push(rpc_pb2.RPC())
        assert len(queue) == count
    assert not queue.push(rpc_pb2.RPC())  # full: dropped, as the wait is there to prevent
    assert len(queue) == OutBoundQueueSize
