"""The simulator's parts: event order, the network, gossip defaults, in-sync costs, isolation."""

from __future__ import annotations

import inspect
import subprocess
import sys
from dataclasses import replace

import pytest

from meshcrew.sim import GossipParams, NetParams, NodeParams, congregation
from meshcrew.sim.events import EventLoop
from meshcrew.sim.metrics import OnlineLog, first_together
from meshcrew.sim.network import Network, Traffic
from meshcrew.sim.syncing import hello_bytes
from meshcrew.sync import SyncSession
from replica_in_memory import MemoryReplica, make_chain, signing_key, space_id


def test_events_run_in_time_order_then_in_the_order_scheduled() -> None:
    loop = EventLoop()
    seen: list[str] = []
    loop.at(2.0, seen.append, "late")
    loop.at(1.0, seen.append, "first")
    loop.at(1.0, seen.append, "second")
    loop.after(0.5, seen.append, "early")
    assert loop.run(10.0) == 10.0
    assert seen == ["early", "first", "second", "late"]
    assert loop.processed == 4


def test_event_loop_stops_when_asked() -> None:
    loop = EventLoop()
    count = [0]

    def tick() -> None:
        count[0] += 1
        loop.after(1.0, tick)

    loop.at(0.0, tick)
    stopped = loop.run(1000.0, stop=lambda: count[0] >= 50, poll_s=10.0)
    assert 50 <= count[0] <= 61
    assert stopped < 1000.0


def _network(size: int, params: NetParams, online: list[bool] | None = None) -> Network:
    up = online or [True] * size
    return Network(EventLoop(), params, size, seed=7, is_online=lambda n: up[n])


def test_a_connection_delivers_in_order_after_latency_and_uplink_time() -> None:
    net = _network(2, NetParams(loss=0.0, reachable=1.0))
    net.dial(0, 1)
    net.loop.run(5.0)
    conn = net.conns[0][1]
    assert net.conns[1][0] is conn
    got: list[tuple[float, int]] = []
    start = net.loop.now
    for i in range(5):
        assert net.send(conn, 0, 100_000, Traffic.SYNC, lambda i=i: got.append((net.loop.now, i)))
    net.loop.run(start + 10.0)
    assert [i for _, i in got] == [0, 1, 2, 3, 4]
    transmit = 100_000 * 8 / net.uplink[0]
    assert got[0][0] - start == pytest.approx(transmit + conn.latency)
    assert abs((got[4][0] - got[0][0]) - 4 * transmit) < 1e-9
    assert net.stats.sent[0][Traffic.SYNC] == 500_000


def test_loss_drops_about_the_share_asked() -> None:
    net = _network(2, NetParams(loss=0.2, reachable=1.0))
    net.dial(0, 1)
    net.loop.run(5.0)
    conn = net.conns[0][1]
    sent = sum(net.send(conn, 0, 10, Traffic.GOSSIP, lambda: None) for _ in range(5000))
    assert 3800 < sent < 4200
    assert net.stats.lost_messages == 5000 - sent


def test_partitions_cut_connections_and_block_dials_until_healed() -> None:
    net = _network(4, NetParams(loss=0.0, reachable=1.0, keepalive_s=30.0))
    for a, b in ((0, 1), (0, 2), (2, 3)):
        net.dial(a, b)
    net.loop.run(5.0)
    net.split([0, 0, 1, 1], notice=30.0)
    assert not net.connected(0, 2)
    assert 2 in net.conns[0]  # not noticed yet
    net.loop.run(40.0)
    assert 2 not in net.conns[0]
    assert net.connected(0, 1)
    assert net.connected(2, 3)
    net.dial(1, 3)
    net.loop.run(50.0)
    assert not net.connected(1, 3)
    net.split([0, 0, 0, 0], notice=30.0)
    net.dial(1, 3)
    net.loop.run(60.0)
    assert net.connected(1, 3)


def test_nated_peers_without_a_hole_punch_talk_through_a_relay() -> None:
    net = _network(3, NetParams(loss=0.0, reachable=0.0, hole_punch=0.0))
    net.reachable[:] = [True, False, False]
    net.dial(1, 0)
    net.dial(2, 0)
    net.loop.run(5.0)
    assert net.relay_of[1] == 0
    assert net.relay_of[2] == 0
    net.dial(1, 2)
    net.loop.run(10.0)
    conn = net.conns[1][2]
    assert conn.relay == 0
    assert net.send(conn, 1, 1000, Traffic.GOSSIP, lambda: None)
    assert net.stats.sent[0][Traffic.RELAY] == 1000
    net.drop_node(0, notice=1.0)
    assert not conn.alive


def test_online_log_measures_time_up_and_finds_overlaps() -> None:
    a, b = OnlineLog(), OnlineLog()
    a.up(0.0)
    a.down(10.0)
    a.up(20.0)
    b.up(12.0)
    b.down(25.0)
    assert a.online_before(5.0) == 5.0
    assert a.online_before(15.0) == 10.0
    assert a.online_before(30.0) == 20.0
    assert first_together(a, b, 0.0) == 20.0
    assert first_together(b, a, 24.0) == 24.0
    assert first_together(b, a, 25.0) == float("inf")


def test_gossip_defaults_are_the_nodes() -> None:
    from meshcrew.net.config import GossipConfig
    from meshcrew.net.syncing import SyncService

    node = GossipConfig()
    sim = GossipParams()
    assert (sim.degree, sim.degree_low, sim.degree_high, sim.heartbeat_s) == (
        node.degree, node.degree_low, node.degree_high, node.heartbeat_s)
    period = inspect.signature(SyncService.__init__).parameters["period_s"].default
    assert NodeParams().sync_period_s == period


def test_counted_in_sync_sessions_cost_what_real_ones_send() -> None:
    space_a, space_b = space_id(1), space_id(2)
    records = [r for n in range(20) for s in (space_a, space_b)
               for r in make_chain(signing_key(n), s, 2)]
    left, right = MemoryReplica(records), MemoryReplica(records)
    key_a, key_b = bytes(signing_key(100).verify_key), bytes(signing_key(101).verify_key)
    a = SyncSession(key_a, key_b, [space_a, space_b], left)
    b = SyncSession(key_b, key_a, [space_a, space_b], right)
    out_a, out_b = a.data_to_send(), b.data_to_send()
    b.receive_data(out_a)
    a.receive_data(out_b)
    assert a.complete
    assert b.complete
    assert not a.data_to_send()
    assert not b.data_to_send()
    assert len(out_a) == len(out_b) == hello_bytes(2)


def test_the_node_and_the_cli_do_not_load_the_simulator() -> None:
    code = ("import sys, importlib\n"
            "for name in ('meshcrew.cli', 'meshcrew.node', 'meshcrew.net', 'meshcrew.tui'):\n"
            "    try:\n"
            "        importlib.import_module(name)\n"
            "    except ModuleNotFoundError as exc:\n"
            "        if exc.name != name:\n"
            "            raise\n"
            "print(sorted(m for m in sys.modules if m.startswith('meshcrew.sim')))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("bad", [{"crews": 5}, {"members": 2}, {"crews": 0}])
def test_scenarios_refuse_impossible_settings(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="3 members per crew"):
        replace(congregation(12), **bad)  # type: ignore[arg-type]
