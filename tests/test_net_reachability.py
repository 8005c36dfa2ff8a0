"""Reachability by AutoNAT dial-backs: real hosts on loopback, then the pure rules.

The key regression (LIBP2P.md, AutoNAT): py-libp2p's server "dials back" over the connection the
request came on, so every node concluded "public". Here a dial-back must open a new TCP
connection to the announced address and authenticate the asker's key there.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from functools import partial

import pytest
import trio
from libp2p.connection_types import ConnectionType
from libp2p.host.autonat.autonat import AutoNATService
from libp2p.host.autonat.pb.autonat_pb2 import Message
from libp2p.peer.id import ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from multiaddr import Multiaddr

from hosts_on_loopback import open_hosts, wait_until
from meshcrew.errors import InputError, RemoteProtocolError
from meshcrew.net import Host, Stream
from meshcrew.net.autonat_wire import (
    AUTONAT_PROTOCOL,
    TcpAddress,
    decode_dial_request,
    decode_dial_response,
    dialable_tcp_addrs,
    encode_dial_request,
    encode_dial_response,
    frame,
    frame_length,
    parse_ip,
    read_frame,
    tcp_address,
)
from meshcrew.net.dial_back import (
    DialBackLimiter,
    DialBackPolicy,
    DialBackServer,
    dial_back,
    dial_back_candidates,
    observed_origin,
)
from meshcrew.net.reachability import (
    FORCED_REASON,
    ProbeResult,
    Reachability,
    ReachabilityReport,
    ReachabilitySettings,
    judge,
)
from meshcrew.net.relay import circuit_addr
from meshcrew.net.scores import PROTOCOL_VIOLATION
from raw_peer import open_raw_peer

FAST = ReachabilitySettings(retry_s=0.2, settled_s=60.0, probe_timeout_s=5.0)
"""Loop settings for tests: a peer may be asked again after 0.2 s."""
NO_WINDOW = DialBackPolicy(per_peer_interval_s=0.0)
"""A server that dials back every request (the rate limit has its own test)."""


def addr_of(host: Host) -> str:
    """The host's loopback TCP address without the /p2p part."""
    return f"/ip4/127.0.0.1/tcp/{host.listen_port()}"


@dataclass
class CountingListener:
    """A TCP listener that counts connections and may forward them to another port."""

    ip: str
    port: int = 0
    accepted: list[tuple[str, int]] = field(default_factory=list)

    @property
    def addr(self) -> str:
        return f"/ip4/{self.ip}/tcp/{self.port}"


async def _pump(source: trio.SocketStream, sink: trio.SocketStream,
                done: trio.CancelScope) -> None:
    try:
        while data := await source.receive_some(65536):
            await sink.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        done.cancel()


@asynccontextmanager
async def counting_listener(ip: str = "127.0.0.1",
                            forward_to: int | None = None) -> AsyncIterator[CountingListener]:
    """Listen on ``ip`` (port 0); count every accepted connection; forward each to
    ``127.0.0.1:forward_to`` if given, else close it at once."""
    listener = CountingListener(ip)

    async def handle(client: trio.SocketStream) -> None:
        listener.accepted.append(client.socket.getpeername())
        async with client:
            if forward_to is None:
                return
            async with await trio.open_tcp_stream("127.0.0.1", forward_to) as upstream, \
                    trio.open_nursery() as nursery:
                nursery.start_soon(_pump, client, upstream, nursery.cancel_scope)
                nursery.start_soon(_pump, upstream, client, nursery.cancel_scope)

    async with trio.open_nursery() as nursery:
        [server] = await nursery.start(partial(trio.serve_tcp, handle, 0, host=ip))
        listener.port = server.socket.getsockname()[1]
        yield listener
        nursery.cancel_scope.cancel()


@contextmanager
def port_nobody_listens_on() -> Iterator[int]:
    """A loopback port held (bound, not listening) for the block: connecting to it is refused."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


async def ask_raw(asker: Host, server: Host, request: bytes) -> Message:
    """Send raw bytes on an AutoNAT stream and decode the one message that comes back."""
    stream = await asker.open_stream(server.peer_id, AUTONAT_PROTOCOL)
    try:
        await stream.send_all(request)
        answer = Message()
        answer.ParseFromString(await read_frame(stream, 4096))
        return answer
    finally:
        await stream.reset()


# --- dial-backs on real hosts ------------------------------------------------------------------


@pytest.mark.trio
async def test_a_dial_back_opens_a_new_connection_to_the_announced_address() -> None:
    """The server reaches the asker through a listener it has never used: the connection the
    request came on cannot be the one that answers."""
    with trio.fail_after(15):
        async with open_hosts(2) as [asker, server_host]:
            server = DialBackServer(server_host)
            server.register()
            await asker.connect(server_host.listen_addrs()[0])
            async with counting_listener(forward_to=asker.listen_port()) as proxy:
                reach = Reachability(asker, serve=False, addresses=lambda: [proxy.addr])
                result = await reach.probe(server_host.peer_id)
                assert result.outcome == "reachable", result.detail
                assert result.address == proxy.addr
                assert len(proxy.accepted) == 1
                [(source_ip, source_port)] = proxy.accepted
                assert source_ip == "127.0.0.1"
                assert source_port != server_host.listen_port()  # an ephemeral port
            assert server.statistics().dials == 1
            assert reach.report().verdict == "public"


@pytest.mark.trio
async def test_a_dial_back_must_authenticate_the_askers_key() -> None:
    """A TCP connection is not enough: another peer answering at the address is a failure."""
    with trio.fail_after(15):
        async with open_hosts(3) as [asker, server_host, stranger]:
            DialBackServer(server_host, NO_WINDOW).register()
            await asker.connect(server_host.listen_addrs()[0])
            async with counting_listener(forward_to=stranger.listen_port()) as proxy:
                reach = Reachability(asker, serve=False, addresses=lambda: [proxy.addr])
                result = await reach.probe(server_host.peer_id)
                assert len(proxy.accepted) == 1
            assert result.outcome == "unreachable"
            assert "handshake" in result.detail
            async with counting_listener() as closes_at_once:
                reach = Reachability(asker, serve=False, addresses=lambda: [closes_at_once.addr])
                result = await reach.probe(server_host.peer_id)
                assert len(closes_at_once.accepted) == 1
            assert result.outcome == "unreachable"


@pytest.mark.trio
async def test_a_node_whose_announced_address_is_unreachable_concludes_private() -> None:
    """The key regression: connected to two servers, announcing a port nobody listens on."""
    with trio.fail_after(20), port_nobody_listens_on() as port:
        async with open_hosts(3) as [asker, b, c]:
            for server_host in (b, c):
                DialBackServer(server_host).register()
                await asker.connect(server_host.listen_addrs()[0])
            changes: list[ReachabilityReport] = []
            reach = Reachability(asker, serve=False, settings=FAST, on_change=changes.append,
                                 addresses=lambda: [f"/ip4/127.0.0.1/tcp/{port}"])
            async with trio.open_nursery() as nursery:
                await nursery.start(reach.run)
                await wait_until(lambda: reach.report().verdict != "unknown")
                nursery.cancel_scope.cancel()
            report = reach.report()
            assert report.verdict == "private", report
            assert report.reason == f"2 peers could not dial back 127.0.0.1:{port}"
            assert report.probes.successes == 0
            assert report.probes.failures == 2
            assert [c.verdict for c in changes] == ["private"]


@pytest.mark.trio
async def test_a_node_listening_on_loopback_concludes_public() -> None:
    with trio.fail_after(20):
        async with open_hosts(2) as [asker, server_host]:
            DialBackServer(server_host).register()
            await asker.connect(server_host.listen_addrs()[0])
            changes: list[ReachabilityReport] = []
            reach = Reachability(asker, serve=False, settings=FAST, on_change=changes.append)
            assert reach.report().verdict == "unknown"
            async with trio.open_nursery() as nursery:
                await nursery.start(reach.run)
                await wait_until(lambda: reach.report().verdict != "unknown")
                nursery.cancel_scope.cancel()
            report = reach.report()
            assert report.verdict == "public"
            assert not report.forced
            port = asker.listen_port()
            assert report.reason == f"1 peer dialled back 127.0.0.1:{port} (on this machine)"
            assert report.reachable_at == (f"127.0.0.1:{port}",)
            assert report.observed == ("127.0.0.1",)
            assert report.probes.successes == 1
            assert report.probes.last_probe_at is not None
            assert [c.verdict for c in changes] == ["public"]


@pytest.mark.trio
async def test_the_loop_waits_for_a_peer_and_skips_peers_without_autonat() -> None:
    with trio.fail_after(20):
        async with open_hosts(3) as [asker, mute, server_host]:
            DialBackServer(server_host).register()
            reach = Reachability(asker, serve=False, settings=FAST)
            async with trio.open_nursery() as nursery:
                await nursery.start(reach.run)
                assert reach.report().reason == "no peer connected to ask yet"
                await asker.connect(mute.listen_addrs()[0])  # serves no AutoNAT
                await wait_until(lambda: reach.report().probes.inconclusive >= 1)
                assert reach.report().verdict == "unknown"
                await asker.connect(server_host.listen_addrs()[0])  # wakes the loop
                await wait_until(lambda: reach.report().verdict == "public")
                nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_the_only_peer_failing_twice_makes_the_node_private() -> None:
    """A crew with one public member: its two failures are enough."""
    now = [1000.0]
    with trio.fail_after(15), port_nobody_listens_on() as port:
        async with open_hosts(2) as [asker, server_host]:
            DialBackServer(server_host, clock=lambda: now[0]).register()
            await asker.connect(server_host.listen_addrs()[0])
            reach = Reachability(asker, serve=False,
                                 addresses=lambda: [f"/ip4/127.0.0.1/tcp/{port}"])
            first = await reach.probe(server_host.peer_id)
            assert first.outcome == "unreachable"
            assert reach.report().verdict == "unknown"
            assert reach.report().reason == (f"1 peer could not dial back 127.0.0.1:{port}; "
                                              "waiting for a second answer")
            too_soon = await reach.probe(server_host.peer_id)
            assert too_soon.outcome == "inconclusive"  # refused: within the 30 s window
            assert reach.report().verdict == "unknown"
            now[0] += 31
            await reach.probe(server_host.peer_id)
            report = reach.report()
            assert report.verdict == "private"
            assert report.reason == (f"the only peer that answered could not dial back "
                                     f"127.0.0.1:{port}, 2 times")


@pytest.mark.trio
async def test_the_server_dials_only_the_ip_the_request_came_from() -> None:
    """Addresses at other IPs are never dialled, not even a listening one on 127.0.0.2."""
    with trio.fail_after(15):
        async with open_hosts(2) as [asker, server_host], \
                counting_listener("127.0.0.2") as elsewhere:
            server = DialBackServer(server_host, NO_WINDOW)
            server.register()
            await asker.connect(server_host.listen_addrs()[0])
            others = ["/ip4/10.0.0.1/tcp/4001", "/ip4/192.0.2.1/tcp/4001", elsewhere.addr]
            reach = Reachability(asker, serve=False, addresses=lambda: others)
            result = await reach.probe(server_host.peer_id)
            assert result.outcome == "unreachable"
            assert result.observed_ip == "127.0.0.1"
            assert result.detail.startswith("E_DIAL_ERROR: no TCP address offered is at the IP")
            assert server.statistics().dials == 0
            assert elsewhere.accepted == []
            # with a good address among them, only that one is dialled
            mixed = [*others, addr_of(asker)]
            reach = Reachability(asker, serve=False, addresses=lambda: mixed)
            result = await reach.probe(server_host.peer_id)
            assert result.outcome == "reachable"
            assert result.address == addr_of(asker)
            assert server.statistics().dials == 1
            assert elsewhere.accepted == []
            report = reach.report()
            assert report.verdict == "public"


@pytest.mark.trio
async def test_a_second_request_within_the_window_is_refused() -> None:
    with trio.fail_after(15):
        async with open_hosts(2) as [asker, server_host]:
            server = DialBackServer(server_host)
            server.register()
            await asker.connect(server_host.listen_addrs()[0])
            reach = Reachability(asker, serve=False)
            assert (await reach.probe(server_host.peer_id)).outcome == "reachable"
            again = await reach.probe(server_host.peer_id)
            assert again.outcome == "inconclusive"
            assert again.detail == "E_DIAL_REFUSED: one dial-back per 30 s per peer"
            assert reach.report().verdict == "public"  # a refusal says nothing
            stats = server.statistics()
            assert (stats.requests, stats.refused, stats.dials) == (2, 1, 1)
            assert server_host.scores.points(asker.peer_id, time.monotonic()) == 0


def _message(**fields: object) -> Message:
    message = Message()
    for name, value in fields.items():
        setattr(message, name, value)
    return message


def _dial_for(peer_id: str) -> bytes:
    message = Message()
    message.type = Message.DIAL
    message.dial.peer.id = ID.from_base58(peer_id).to_bytes()
    return frame(message.SerializeToString())


MALFORMED = {
    "garbage": frame(b"\xff\xff\xff"),
    "a response instead of a request": encode_dial_response(Message.OK),
    "no dial part": frame(_message(type=Message.DIAL).SerializeToString()),
    "another peer's id": _dial_for("12D3KooWNxhAL5GLY5ALo66DaqJWnNzzUPdDHncQpazwpSzhViNz"),
    "a length over the limit": b"\x80\x80\x40",  # 1 MiB announced
    "a malformed length": b"\xff" * 12,
}


@pytest.mark.trio
@pytest.mark.parametrize("request_bytes", MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_malformed_request_is_answered_bad_request_and_penalized(
        request_bytes: bytes) -> None:
    with trio.fail_after(15):
        async with open_hosts(3) as [asker, server_host, honest]:
            server = DialBackServer(server_host)
            server.register()
            await asker.connect(server_host.listen_addrs()[0])
            answer = await ask_raw(asker, server_host, request_bytes)
            assert answer.type == Message.DIAL_RESPONSE
            assert answer.dialResponse.status == Message.E_BAD_REQUEST
            points = server_host.scores.points(asker.peer_id, time.monotonic())
            assert points == pytest.approx(PROTOCOL_VIOLATION, abs=1)
            assert server.statistics().bad_requests == 1
            assert server.statistics().dials == 0
            # the server carries on: an honest request is served, and the asker's window
            # was not used up by its malformed one
            await honest.connect(server_host.listen_addrs()[0])
            for peer in (honest, asker):
                result = await Reachability(peer, serve=False).probe(server_host.peer_id)
                assert result.outcome == "reachable", result.detail


@pytest.mark.trio
async def test_an_empty_stream_is_abandoned_without_an_answer(
        caplog: pytest.LogCaptureFixture) -> None:
    """Not a bad request: a probe given up, or a node that stopped (test_honest_charges.py)."""
    caplog.set_level(logging.DEBUG, logger="meshcrew.net")
    with trio.fail_after(15):
        async with open_hosts(2) as [asker, server_host]:
            server = DialBackServer(server_host)
            server.register()
            await asker.connect(server_host.listen_addrs()[0])
            stream = await asker.open_stream(server_host.peer_id, AUTONAT_PROTOCOL)
            await stream.aclose()
            await wait_until(lambda: any("abandoned" in r.getMessage() for r in caplog.records))
            assert server.statistics().bad_requests == 0
            assert server.statistics().dials == 0


@pytest.mark.trio
@pytest.mark.parametrize("mode", ["public", "private"])
async def test_a_forced_mode_sets_the_verdict_asks_nobody_and_still_serves(mode: str) -> None:
    with trio.fail_after(15):
        async with open_hosts(3) as [node, other, third]:
            other_server = DialBackServer(other)
            other_server.register()
            await node.connect(other.listen_addrs()[0])
            reach = Reachability(node, mode)
            report = reach.report()
            assert (report.verdict, report.forced, report.reason) == (mode, True, FORCED_REASON)
            async with trio.open_nursery() as nursery:
                await nursery.start(reach.run)
                await third.connect(node.listen_addrs()[0])
                result = await Reachability(third, serve=False).probe(node.peer_id)
                assert result.outcome == "reachable"  # the forced node serves others
                nursery.cancel_scope.cancel()
            assert reach.report().verdict == mode
            assert other_server.statistics().requests == 0


def test_an_unknown_mode_is_an_input_error() -> None:
    with pytest.raises(InputError, match="auto, public or private"):
        Reachability(None, "sometimes")  # type: ignore[arg-type]


@pytest.mark.trio
async def test_a_request_over_a_relayed_connection_is_refused() -> None:
    """Over a circuit the remote address is the relay's: nothing there may be dialled."""
    with trio.fail_after(30):
        async with open_hosts(3, first=360) as [relay, ana, bo]:
            server = DialBackServer(ana)
            server.register()
            relay.reach.set_public(True)
            ana.reach.set_public(False)
            ana.reach.punching = False  # keep the circuit: no hole punch to a direct connection
            relay_addr = f"{addr_of(relay)}/p2p/{relay.peer_id}"
            ana.reach.reservations.pin(relay.peer_id, [relay_addr])
            await wait_until(lambda: relay.peer_id in ana.reach.reservations.active)
            await bo.connect(circuit_addr(relay_addr, relay.peer_id, ana.peer_id))
            assert bo.link(ana.peer_id).link == "relayed"
            result = await Reachability(bo, serve=False).probe(ana.peer_id)
            assert result.outcome == "inconclusive"
            assert result.detail == ("E_DIAL_REFUSED: dial-backs are refused over relayed "
                                     "connections")
            assert server.statistics().dials == 0


# --- other libp2p stacks speak the same messages -----------------------------------------------


@pytest.mark.trio
async def test_py_libp2ps_autonat_client_gets_a_real_dial_back() -> None:
    with trio.fail_after(15):
        async with open_hosts(1) as [server_host], open_raw_peer("autonat client") as raw:
            server = DialBackServer(server_host)
            server.register()
            # the server dials (a raw py-libp2p host leaks the socket of a connection it dialled)
            await server_host.connect(str(raw.host.get_addrs()[0]))
            client = AutoNATService(raw.host, serve=False)
            status, addr = await client.query_server(ID.from_base58(server_host.peer_id))
            assert status == Message.OK
            assert addr is not None
            listen = str(raw.host.get_addrs()[0]).split("/p2p/")[0]
            assert tcp_address(listen) == tcp_address(str(Multiaddr(addr)))
            assert server.statistics().dials == 1


@pytest.mark.trio
async def test_a_probe_is_understood_by_py_libp2ps_autonat_server() -> None:
    """Wire compatibility only: that server's verdict is worthless (it never dials)."""
    with trio.fail_after(15):
        async with open_hosts(1) as [asker], open_raw_peer("autonat server") as raw:
            AutoNATService(raw.host, serve=True)
            await asker.connect(str(raw.host.get_addrs()[0]))
            result = await Reachability(asker, serve=False).probe(raw.peer_id)
            assert result.outcome == "reachable"
            assert result.address == addr_of(asker)


# --- the libp2p internals the module relies on (fail here first after an upgrade) --------------


@pytest.mark.trio
async def test_libp2p_internals_the_dial_back_relies_on() -> None:
    seen: list[tuple[object, object, object]] = []

    async def look(stream: Stream) -> None:
        muxed = stream._raw.muxed_conn
        seen.append((muxed.get_connection_type(), muxed.get_remote_address(),
                     observed_origin(stream)))
        await stream.aclose()

    with trio.fail_after(15):
        async with open_hosts(2) as [a, b]:
            # open_host keeps its Noise transport on the host (Host._noise)
            assert isinstance(b._noise, NoiseTransport)
            b.set_stream_handler("/meshcrew/test-look/1.0.0", look)
            await a.connect(b.listen_addrs()[0])
            stream = await a.open_stream(b.peer_id, "/meshcrew/test-look/1.0.0")
            await wait_until(lambda: bool(seen))
            await stream.reset()
            [(kind, remote, ip)] = seen
            # NetStream.muxed_conn: DIRECT, and the TCP socket's (ip, port)
            assert kind == ConnectionType.DIRECT
            assert isinstance(remote, tuple)
            assert remote[0] == "127.0.0.1"
            assert isinstance(remote[1], int)
            assert remote[1] != a.listen_port()  # a's outbound connection: an ephemeral port
            assert ip == parse_ip("127.0.0.1")
            # RawConnection(TrioTCPStream) + MultiselectClient + NoiseTransport.secure_outbound
            addr = tcp_address(addr_of(a))
            assert addr is not None
            assert await dial_back(b._noise, addr, a.peer_id, timeout_s=5) is None
            failure = await dial_back(b._noise, addr, b.peer_id, timeout_s=5)
            assert failure is not None
            assert "handshake" in failure


# --- pure parts --------------------------------------------------------------------------------

A, B, C = "peer-a", "peer-b", "peer-c"
HOME = ("/ip4/192.168.1.5/tcp/4001",)


def ok(peer: str, at: float, addr: str = "/ip4/198.51.100.2/tcp/4001") -> ProbeResult:
    return ProbeResult(peer, "reachable", at, "OK", address=addr, observed_ip="198.51.100.2",
                       asked=(addr,))


def no(peer: str, at: float, seen: str | None = "203.0.113.7") -> ProbeResult:
    return ProbeResult(peer, "unreachable", at, "E_DIAL_ERROR", observed_ip=seen, asked=HOME)


def refused(peer: str, at: float) -> ProbeResult:
    return ProbeResult(peer, "inconclusive", at, "E_DIAL_REFUSED: busy", asked=HOME)


@pytest.mark.parametrize(("results", "verdict", "reason"), [
    ([], "unknown", "no peer has answered yet"),
    ([refused(A, 1)], "unknown", "no peer could answer yet (last: E_DIAL_REFUSED: busy)"),
    ([ok(A, 1)], "public", "1 peer dialled back 198.51.100.2:4001 (not a global internet address)"),
    ([ok(A, 1), ok(B, 2), ok(C, 3)], "public",
     "3 of 3 peers dialled back 198.51.100.2:4001 (not a global internet address)"),
    ([ok(A, 1, "/ip4/8.8.8.8/tcp/4001")], "public", "1 peer dialled back 8.8.8.8:4001"),
    ([no(A, 1)], "private",  # seen from an IP it does not offer: behind a NAT at once
     "1 peer could not dial back 192.168.1.5:4001; peers see this node at 203.0.113.7"),
    ([no(A, 1, None), no(B, 2, None)], "private", "2 peers could not dial back 192.168.1.5:4001"),
    ([no(A, 1), no(B, 2)], "private",
     "2 peers could not dial back 192.168.1.5:4001; peers see this node at 203.0.113.7"),
    ([no(A, 1), refused(A, 2), no(A, 3)], "private",
     "the only peer that answered could not dial back 192.168.1.5:4001, 2 times; "
     "peers see this node at 203.0.113.7"),
    # one failure after a success does not flip the verdict ...
    ([ok(A, 1), no(B, 2)], "public",
     "1 of 2 peers dialled back 198.51.100.2:4001 (not a global internet address); "
     "1 dial-back failed since"),
    # ... nor do two from the same peer while another peer dialled back
    ([ok(A, 1), no(B, 2), no(B, 3)], "public",
     "1 of 2 peers dialled back 198.51.100.2:4001 (not a global internet address); "
     "2 dial-backs failed since"),
    ([ok(A, 1), no(B, 2), no(A, 3)], "private",
     "2 peers could not dial back 192.168.1.5:4001; peers see this node at 203.0.113.7"),
    ([ok(A, 1), no(A, 2), no(A, 3)], "private",
     "the only peer that answered could not dial back 192.168.1.5:4001, 2 times; "
     "peers see this node at 203.0.113.7"),
    ([no(A, 1), no(B, 2), ok(C, 3)], "public",
     "1 of 3 peers dialled back 198.51.100.2:4001 (not a global internet address)"),
])
def test_the_verdict_rule(results: list[ProbeResult], verdict: str, reason: str) -> None:
    assert judge(results, 10.0, memory_s=3600) == (verdict, reason)


def test_old_answers_stop_counting() -> None:
    results = [ok(A, 0), no(B, 5000), no(C, 5001)]
    assert judge(results, 5002, memory_s=3600)[0] == "private"
    assert judge([ok(A, 0)], 3601, memory_s=3600)[0] == "unknown"


def test_the_limiter_allows_one_dial_back_per_peer_per_window_and_caps_the_minute() -> None:
    limiter = DialBackLimiter(DialBackPolicy(per_peer_interval_s=30, global_per_minute=3))
    assert limiter.admit(A, 100) is None
    assert limiter.admit(A, 110) == "one dial-back per 30 s per peer"
    assert limiter.admit(A, 130) is None
    assert limiter.admit(B, 131) is None
    assert limiter.admit(C, 132) == "too many dial-backs this minute"
    assert limiter.admit(C, 161) is None  # the dial-back at 100 is a minute old
    assert limiter.admit(A, 50) is None  # a clock that went back opens the window


def test_a_crowd_of_peer_ids_keeps_the_limiters_memory_bounded() -> None:
    limiter = DialBackLimiter(DialBackPolicy(per_peer_interval_s=30, global_per_minute=10))
    for i in range(1000):
        limiter.admit(f"peer-{i}", float(i * 10))
    assert len(limiter._last) < 200


def tcp(ip: str, port: int) -> TcpAddress:
    return TcpAddress(ipaddress.ip_address(ip), port)


@pytest.mark.parametrize(("text", "expected"), [
    ("/ip4/1.2.3.4/tcp/4001", tcp("1.2.3.4", 4001)),
    ("/ip4/1.2.3.4/tcp/4001/p2p/me", tcp("1.2.3.4", 4001)),
    ("/ip6/::1/tcp/5", tcp("::1", 5)),
    ("/ip4/1.2.3.4/tcp/4001/p2p/someone-else", None),
    ("/ip4/1.2.3.4/tcp/0", None),
    ("/ip4/1.2.3.4/tcp/70000", None),
    ("/ip4/::1/tcp/5", None),
    ("/ip4/1.2.3.4/udp/4001/quic-v1", None),
    ("/ip4/1.2.3.4/tcp/4001/ws", None),
    ("/dns4/example.org/tcp/4001", None),
    ("/ip4/1.2.3.4/tcp/4001/p2p/relay/p2p-circuit/p2p/me", None),
])
def test_only_plain_tcp_addresses_are_dialled(text: str, expected: TcpAddress | None) -> None:
    assert tcp_address(text, "me") == expected


def test_candidates_are_at_the_observed_ip_deduplicated_and_few() -> None:
    observed = parse_ip("::ffff:127.0.0.1")
    assert observed == parse_ip("127.0.0.1")
    assert observed is not None
    offered = ["/ip4/10.0.0.1/tcp/1", "/ip4/127.0.0.1/tcp/1", "/ip4/127.0.0.1/tcp/1/p2p/me",
               "/ip4/127.0.0.1/tcp/2/p2p/other", *(f"/ip4/127.0.0.1/tcp/{p}" for p in range(3, 9))]
    found = dial_back_candidates(offered, "me", observed, limit=4)
    assert [a.port for a in found] == [1, 3, 4, 5]


def test_the_offered_addresses_are_plain_tcp_without_the_peer_id() -> None:
    assert dialable_tcp_addrs([
        "/ip4/192.168.1.5/tcp/4001/p2p/me", "/ip4/127.0.0.1/tcp/4001/p2p/me",
        "/ip4/192.168.1.5/tcp/4001", "/ip4/1.2.3.4/udp/1/quic-v1",
        "/ip4/9.9.9.9/tcp/1/p2p/relay/p2p-circuit/p2p/me",
    ]) == ["/ip4/192.168.1.5/tcp/4001", "/ip4/127.0.0.1/tcp/4001"]


def test_frames_round_trip_and_bad_prefixes_are_refused() -> None:
    for size in (0, 1, 127, 128, 300, 4096):
        framed = frame(b"x" * size)
        header, length = frame_length(framed, 4096) or (0, -1)
        assert length == size
        assert framed[header:] == b"x" * size
    assert frame_length(b"\x80", 4096) is None  # incomplete
    with pytest.raises(RemoteProtocolError, match="over 4096"):
        frame_length(frame(b"x" * 4097), 4096)
    with pytest.raises(RemoteProtocolError):
        frame_length(b"\x80" * 10, 10**30)


def test_requests_and_responses_round_trip() -> None:
    me = "12D3KooWJWc3d2Ep1s4RV8wP199WCrVr1jW8yoZCfuupuVMBFgR5"
    request = encode_dial_request(me, ["/ip4/127.0.0.1/tcp/4001"])
    header, _ = frame_length(request, 4096) or (0, 0)
    assert decode_dial_request(request[header:], me) == ["/ip4/127.0.0.1/tcp/4001"]
    response = encode_dial_response(Message.E_DIAL_ERROR, "nope; seen from 1.2.3.4")
    header, _ = frame_length(response, 4096) or (0, 0)
    decoded = decode_dial_response(response[header:])
    assert (decoded.status_name, decoded.text, decoded.addr) == (
        "E_DIAL_ERROR", "nope; seen from 1.2.3.4", None)


def test_a_response_with_a_status_this_node_does_not_know_is_malformed() -> None:
    # field 3 (dialResponse) holding field 1 (status) = 999: proto2 keeps it out of the field,
    # which would otherwise read as its default, OK
    message = bytes([0x08, 0x01, 0x1A, 0x03, 0x08, 0xE7, 0x07])
    with pytest.raises(RemoteProtocolError, match="status"):
        decode_dial_response(message)
