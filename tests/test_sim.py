"""The simulator's parts: event order, the network and its NAT rules, gossip and relay defaults,
in-sync costs, isolation."""

from __future__ import annotations

import inspect
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from meshcrew.sim import GossipParams, Nat, NetParams, NodeParams, RelayParams, congregation
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
    net = _network(2, NetParams(loss=0.0, public=1.0))
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
    net = _network(2, NetParams(loss=0.2, public=1.0))
    net.dial(0, 1)
    net.loop.run(5.0)
    conn = net.conns[0][1]
    sent = sum(net.send(conn, 0, 10, Traffic.GOSSIP, lambda: None) for _ in range(5000))
    assert 3800 < sent < 4200
    assert net.stats.lost_messages == 5000 - sent


def test_partitions_cut_connections_and_block_dials_until_healed() -> None:
    net = _network(4, NetParams(loss=0.0, public=1.0, keepalive_s=30.0))
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


PUBLIC, CONE, SYMMETRIC = Nat.PUBLIC, Nat.CONE, Nat.SYMMETRIC


def _nat_network(nat: list[Nat], online: list[bool] | None = None,
                 shares_space: Callable[[int, int], bool] | None = None,
                 **params: Any) -> Network:
    """A lossless network whose nodes have the NAT types given."""
    up = online if online is not None else [True] * len(nat)
    net = Network(EventLoop(), NetParams(loss=0.0, **params), len(nat), seed=7,
                  is_online=lambda n: up[n], shares_space=shares_space)
    net.set_nat(nat)
    return net


def _connect(net: Network, *pairs: tuple[int, int]) -> None:
    for a, b in pairs:
        net.dial(a, b)
    net.loop.run(net.loop.now + 5.0)


def test_natted_members_with_no_public_member_online_cannot_reach_each_other() -> None:
    # Even a cone pair: a hole punch is coordinated over a relay's circuit, and only a public
    # member relays.
    online = [False, True, True, True, True]
    net = _nat_network([PUBLIC, SYMMETRIC, SYMMETRIC, CONE, CONE], online)
    _connect(net, (1, 2), (2, 1), (3, 4), (4, 3), (1, 3))
    assert not any(net.conns[n] for n in range(5))
    assert net.stats.no_relay == net.stats.dials == 5
    online[0] = True
    _connect(net, *((n, 0) for n in range(1, 5)))
    assert all(net.relays_of[n] == [0] for n in range(1, 5))
    _connect(net, (1, 2), (3, 4))
    symmetric, cone = net.conns[1][2], net.conns[3][4]
    assert (symmetric.relay, symmetric.punched) == (0, False)
    assert (cone.relay, cone.punched) == (None, True)
    assert (net.stats.punched, net.stats.punches_failed) == (1, 1)
    # The relay goes: the symmetric pair loses its circuit and cannot dial again; the cone pair
    # keeps its punched connection.
    online[0] = False
    net.drop_node(0, notice=1.0)
    net.loop.run(net.loop.now + 5.0)
    assert not symmetric.alive
    assert cone.alive
    assert net.relays_of[1] == net.relays_of[2] == []
    _connect(net, (1, 2), (2, 1))
    assert 2 not in net.conns[1]


def test_a_public_dialler_reaches_a_natted_member_through_its_relay_then_directly() -> None:
    net = _nat_network([PUBLIC, PUBLIC, SYMMETRIC])
    net.dial(0, 2)
    net.loop.run(5.0)
    assert 2 not in net.conns[0]  # no reservation yet: the NAT drops the dial
    _connect(net, (2, 1))
    _connect(net, (0, 2))
    conn = net.conns[0][2]
    assert (conn.relay, conn.punched) == (None, True)  # the callee dialled back
    assert net.stats.reversed == 1
    assert net.stats.sent[1][Traffic.RELAY] > 0  # the relay carried the set-up


def test_a_natted_member_keeps_two_reservations_and_replaces_a_lost_relay() -> None:
    net = _nat_network([PUBLIC, PUBLIC, PUBLIC, CONE, CONE])
    _connect(net, (4, 2))
    _connect(net, (3, 4))
    assert net.conns[3][4].punched
    assert net.relays_of[3] == []  # a NATed peer never relays, even on a direct connection
    _connect(net, (3, 0), (3, 1), (3, 2))
    first, second = net.relays_of[3]
    spare = ({0, 1, 2} - {first, second}).pop()
    assert net.relays_of[4] == [2]
    assert sorted(net.reservations(r) for r in (first, second, spare)) == [0, 1, 2]
    assert net.reservations(spare) == (spare == 2)
    net.drop_node(first, notice=2.0)
    assert net.relays_of[3] == [first, second]  # not noticed yet
    net.loop.run(net.loop.now + 3.0)
    assert net.relays_of[3] == [second, spare]
    assert net.reservations(first) == 0


def test_a_relay_keeps_to_its_caps() -> None:
    relay = RelayParams()
    count = 2 * relay.max_circuits // relay.max_circuits_per_peer + 10
    net = _nat_network([PUBLIC] + [SYMMETRIC] * count)
    _connect(net, *((n, 0) for n in range(1, count + 1)))
    for a in range(1, count + 1):
        for b in range(1, count + 1):
            net.dial(a, b)
    net.loop.run(net.loop.now + 5.0)
    assert net.circuits(0) == relay.max_circuits
    ends = Counter(n for conn in net._via[0] for n in (conn.a, conn.b))
    assert max(ends.values()) == relay.max_circuits_per_peer
    assert net.stats.circuits_refused > 0
    assert net.stats.peak_circuits == relay.max_circuits

    many = relay.max_reservations + 3
    crowd = _nat_network([PUBLIC] + [CONE] * many)
    _connect(crowd, *((n, 0) for n in range(1, many + 1)))
    assert crowd.reservations(0) == relay.max_reservations
    assert crowd.stats.reservations_refused == 3
    assert sum(not crowd.relays_of[n] for n in range(1, many + 1)) == 3


@pytest.mark.parametrize("member", [True, False])
def test_a_circuit_is_cut_at_its_data_limit_and_a_stranger_relay_carries_little(
        member: bool) -> None:
    # Member circuits hold 64 MiB: a 4 MiB catch-up crosses. A stranger's hold 128 KiB: the
    # relay cuts the circuit, both ends see the reset at once, and a redial starts afresh.
    net = _nat_network([PUBLIC, SYMMETRIC, SYMMETRIC],
                       shares_space=lambda a, b: member or 0 not in (a, b))
    _connect(net, (1, 0), (2, 0))
    _connect(net, (1, 2))
    conn = net.conns[1][2]
    assert conn.relay == 0
    got: list[int] = []
    sent = [net.send(conn, 1, 16 * 1024, Traffic.SYNC, got.append, i) for i in range(256)]
    net.loop.run(net.loop.now + 60.0)
    if member:
        assert all(sent)
        assert len(got) == 256
        assert conn.alive
        assert net.stats.cut_at_data_limit == 0
        return
    assert got == list(range(7))  # 7 x 16 KiB and the handshake fit in 128 KiB
    assert sum(sent) == 7
    assert not conn.alive
    assert 2 not in net.conns[1]
    assert 1 not in net.conns[2]
    assert net.stats.cut_at_data_limit == 1
    _connect(net, (1, 2))
    assert net.connected(1, 2)
    assert net.conns[1][2].budget > 100 * 1024


@pytest.mark.parametrize(("member", "limit_s"), [(True, 3600.0), (False, 120.0)])
def test_a_circuit_is_cut_at_its_time_limit(member: bool, limit_s: float) -> None:
    net = _nat_network([PUBLIC, CONE, SYMMETRIC],
                       shares_space=lambda a, b: member or 0 not in (a, b))
    _connect(net, (1, 0), (2, 0))
    opened = net.loop.now
    _connect(net, (1, 2))
    assert net.conns[1][2].relay == 0
    net.loop.run(opened + limit_s - 1.0)
    assert net.connected(1, 2)
    net.loop.run(opened + limit_s + 10.0)
    assert not net.connected(1, 2)
    assert net.stats.cut_at_time_limit == 1


def test_relay_and_punch_defaults_are_the_nodes() -> None:
    from meshcrew.net.reach import Reservations
    from meshcrew.net.relay import MEMBER_LIMITS, STRANGER_LIMITS, RelayServiceConfig

    sim, node = RelayParams(), RelayServiceConfig()
    assert (sim.member_duration_s, sim.member_data_bytes) == (
        MEMBER_LIMITS.duration_s, MEMBER_LIMITS.data_bytes)
    assert (sim.stranger_duration_s, sim.stranger_data_bytes) == (
        STRANGER_LIMITS.duration_s, STRANGER_LIMITS.data_bytes)
    assert node.member_limits == MEMBER_LIMITS
    assert node.stranger_limits == STRANGER_LIMITS
    assert (sim.strangers, sim.max_reservations, sim.max_circuits, sim.max_circuits_per_peer,
            sim.bytes_per_day) == (node.strangers, node.max_reservations, node.max_circuits,
                                   node.max_circuits_per_peer, node.bytes_per_day)
    relays = inspect.signature(Reservations.__init__).parameters["max_relays"].default
    assert sim.reservations_per_node == relays
    # What the NAT lab measured (docs/netlab.md): cone-cone punches work, symmetric ones fail.
    assert (NetParams().punch_cone_cone, NetParams().punch_with_symmetric) == (1.0, 0.0)


def test_the_nat_mix_keeps_each_seeds_public_members() -> None:
    old_rule = random.Random("meshcrew-sim network 7")
    size = 400
    for _ in range(2 * size):
        old_rule.random()  # latency and uplink come first
    public_before = [old_rule.random() < 0.3 for _ in range(size)]
    net = Network(EventLoop(), NetParams(), size, seed=7, is_online=lambda n: True)
    assert net.reachable == public_before
    shares = Counter(net.nat)
    assert 0.24 < shares[PUBLIC] / size < 0.36
    assert 0.08 < shares[SYMMETRIC] / size < 0.17
    assert shares[CONE] == size - shares[PUBLIC] - shares[SYMMETRIC]


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



def test_the_simulators_modules_import_no_circle() -> None:
    # Issue 16: run.py and report.py imported each other. Every import counts, those under
    # TYPE_CHECKING too.
    import ast
    from pathlib import Path

    import meshcrew.sim

    paths = [p for p in Path(meshcrew.sim.__file__).parent.glob("*.py") if p.stem != "__init__"]
    names = {f"meshcrew.sim.{p.stem}" for p in paths}
    imports: dict[str, set[str]] = {}
    for path in paths:
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
        imports[f"meshcrew.sim.{path.stem}"] = found & names

    def reachable(start: str) -> set[str]:
        seen: set[str] = set()
        todo = [start]
        while todo:
            for module in imports[todo.pop()] - seen:
                seen.add(module)
                todo.append(module)
        return seen

    assert sorted(m for m in names if m in reachable(m)) == []
    assert "meshcrew.sim.run" not in imports["meshcrew.sim.report"]
