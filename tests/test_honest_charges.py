"""What an honest peer does that must cost it no points (real nodes and hosts on loopback).

Two protocol violations (50 points each) ban a peer; a banned crewmate, carrier or relay is
refused unread from then on. Each test here plays what an honest node does on the wire (goes
away mid-protocol, dials an address that went stale, reads over a slow link) and checks the peer
keeps a clean slate; ``docs/sync.md`` ("Who can incur each charge") has the whole table.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import pytest
import trio

from hosts_on_loopback import open_hosts, wait_until
from meshcrew.errors import DialError
from meshcrew.net import Host, Stream
from meshcrew.net.autonat_wire import AUTONAT_PROTOCOL
from meshcrew.net.dial_back import DialBackServer
from meshcrew.net.reachability import request_dial_back
from meshcrew.net.relay import circuit_addr
from meshcrew.node import Node, open_node
from meshcrew.node.carrying import CARRY_PROTOCOL
from meshcrew.node.join import (
    ASK,
    HISTORY,
    JOIN_PROTOCOL,
    JOIN_VERSION,
    RECORDS,
    Messages,
    encode_frame,
)
from meshcrew.spaces import decode_invite_code
from meshcrew.spaces.invites import prove_invite
from meshcrew.sync import PROTOCOL_IDS, SYNC_VERSION
from node_world import LOOPBACK_NODE, crew_by_file, make_home, open_nodes, wall_ms

pytestmark = pytest.mark.trio
HOUR_MS = 3_600_000


def clean(host: Host, peer_id: str) -> bool:
    """Whether ``host`` holds nothing against ``peer_id``."""
    return host.scores.points(peer_id, time.monotonic()) == 0.0 and \
        not host.scores.is_banned(peer_id)


CHARGED = ("penalized", "banning")
"""What the host logs when it charges or bans a peer (``Host.penalize``)."""


def logged(caplog: pytest.LogCaptureFixture, peer_id: str, *words: str) -> int:
    """How many log lines name ``peer_id`` and one of ``words``: the tests wait until each
    stream was judged, whichever way, before looking at the points."""
    return sum(1 for r in caplog.records if peer_id in r.getMessage() and any(
        word in r.getMessage() for word in words))


async def read_history(stream: Stream) -> None:
    """Read a join's history up to its ``sent`` (what a joiner takes before signing its join)."""
    messages = Messages(stream)
    assert (await messages.next())[0] == HISTORY
    while (await messages.next())[0] == RECORDS:
        pass


async def test_a_joiner_that_goes_away_mid_join_loses_no_points(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Its user cancelled, its join timed out, its node stopped: the member's node charged it
    50 points each time (two banned it, and its next join was refused unread)."""
    caplog.set_level(logging.INFO, logger="meshcrew")
    with trio.fail_after(60):
        async with open_nodes(tmp_path, "Ada", "Bo") as [ada, bo]:
            space = ada.member.create_space("Crew")
            text = ada.member.invite(space, expires_ms=wall_ms() + HOUR_MS, addrs=ada.addrs())
            code = decode_invite_code(text)
            proof = prove_invite(code.secret, space, bo.identity.public_key)
            await bo.host.connect(ada.addrs()[0])
            for _ in range(3):
                stream = await bo.host.open_stream(ada.host.peer_id, JOIN_PROTOCOL)
                await stream.aclose()  # before asking
                stream = await bo.host.open_stream(ada.host.peer_id, JOIN_PROTOCOL)
                await stream.send_all(encode_frame([ASK, JOIN_VERSION, space, code.invite_id,
                                                    proof]))
                await read_history(stream)
                await stream.aclose()  # the history came; the join is never signed
            await wait_until(lambda: logged(caplog, bo.host.peer_id, "went away", *CHARGED) >= 6)
            assert clean(ada.host, bo.host.peer_id)
            assert (await bo.join(text)).space == space  # and the join still works


async def test_a_joiner_whose_node_stops_mid_join_loses_no_points(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The member's node reads the end of a connection as the stream's end."""
    caplog.set_level(logging.INFO, logger="meshcrew")
    with trio.fail_after(60):
        async with open_nodes(tmp_path, "Ada") as [ada]:
            space = ada.member.create_space("Crew")
            code = decode_invite_code(
                ada.member.invite(space, uses=3, expires_ms=wall_ms() + HOUR_MS))
            home, who = make_home(tmp_path, "Bo")
            for _ in range(3):
                bo: Node
                async with open_node(home, who, LOOPBACK_NODE) as bo:
                    await bo.host.connect(ada.addrs()[0])
                    stream = await bo.host.open_stream(ada.host.peer_id, JOIN_PROTOCOL)
                    proof = prove_invite(code.secret, space, who.public_key)
                    await stream.send_all(encode_frame([ASK, JOIN_VERSION, space,
                                                        code.invite_id, proof]))
                    await read_history(stream)
                # Bo's node has stopped with the join stream open
            await wait_until(lambda: logged(caplog, who.peer_id, "went away", *CHARGED) >= 3)
            assert clean(ada.host, who.peer_id)


# --- AutoNAT: a probe given up, a server that stops mid-dial-back ------------------------------


async def test_an_asker_that_gives_up_before_its_request_loses_no_points(
        caplog: pytest.LogCaptureFixture) -> None:
    """A probe cancelled (its deadline, its node stopping) between opening the stream and
    sending the request: the server charged it 50 points as a malformed request."""
    caplog.set_level(logging.DEBUG, logger="meshcrew.net")
    with trio.fail_after(30):
        async with open_hosts(2, first=600) as [asker, server_host]:
            server = DialBackServer(server_host)
            server.register()
            await asker.connect(server_host.listen_addrs()[0])
            for _ in range(3):
                stream = await asker.open_stream(server_host.peer_id, AUTONAT_PROTOCOL)
                await stream.aclose()
            await wait_until(lambda: logged(caplog, asker.peer_id, "abandoned", *CHARGED) >= 3)
            assert clean(server_host, asker.peer_id)
            assert server.statistics().bad_requests == 0


async def test_a_server_whose_node_stops_before_answering_loses_no_points() -> None:
    """Its connection closes while it dials back: the asker read that as an AutoNAT stream cut
    short and charged the server (a crewmate, a relay) 50 points."""
    with trio.fail_after(30):
        async with open_hosts(2, first=602) as [asker, server_host]:

            async def stop_before_answering(stream: Stream) -> None:
                await stream.receive_some()  # the request came
                await server_host.disconnect(asker.peer_id)  # as when its node stops

            server_host.set_stream_handler(AUTONAT_PROTOCOL, stop_before_answering)
            for _ in range(3):
                await asker.connect(server_host.listen_addrs()[0])
                result = await request_dial_back(asker, server_host.peer_id,
                                                 ["/ip4/127.0.0.1/tcp/9"], timeout_s=10)
                assert result.outcome == "inconclusive", result
            assert clean(asker, server_host.peer_id)


# --- carry: a bringer that goes away before naming the space -----------------------------------


async def test_a_bringer_that_goes_away_before_its_request_loses_no_points(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A member's node bringing a space to a carrier (or a carrier to a member) whose node stops
    or whose bringing is cancelled: the other side charged it 50 points as a malformed carry
    request."""
    caplog.set_level(logging.INFO, logger="meshcrew")
    with trio.fail_after(60):
        async with open_nodes(tmp_path, "Ada", "Bo") as [ada, bo]:
            await bo.host.connect(ada.addrs()[0])
            for _ in range(3):
                stream = await bo.host.open_stream(ada.host.peer_id, CARRY_PROTOCOL)
                await stream.aclose()
            await wait_until(lambda: logged(caplog, bo.host.peer_id, "no request", *CHARGED) >= 3)
            assert clean(ada.host, bo.host.peer_id)


# --- relay: a circuit address gone stale -------------------------------------------------------


async def test_redialling_a_stale_circuit_address_costs_nothing_at_the_relay() -> None:
    """A crewmate offline overnight: its reservation lapsed, and every member's dialler redials
    its circuit address (backing off to 5 minutes, once per relay address it announced). At 5
    points a time twenty refusals banned the dialler from its relay."""
    with trio.fail_after(60):
        async with open_hosts(3, first=604) as [relay, ana, bo]:
            relay.reach.set_public(True)
            relay_addr = next(a for a in relay.listen_addrs() if "/ip4/127.0.0.1/" in a)
            stale = circuit_addr(relay_addr, relay.peer_id, ana.peer_id)  # no reservation
            for _ in range(21):
                with pytest.raises(DialError, match="no reservation"):
                    await bo.connect(stale)
            assert clean(relay, bo.peer_id)


# --- sync: a node that stops in the middle of a frame ------------------------------------------


async def test_a_peer_whose_connection_closes_inside_a_sync_frame_loses_no_points(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A node that stops, or loses its network, while it sends a batch (up to 512 KiB, many
    yamux frames) ends the stream inside a sync frame: the other side charged it 50 points as a
    protocol violation."""
    caplog.set_level(logging.INFO, logger="meshcrew")
    ada_home, ada_who, bo_home, bo_who, _ = crew_by_file(tmp_path)
    with trio.fail_after(60):
        async with open_node(ada_home, ada_who, LOOPBACK_NODE) as ada:
            for _ in range(3):
                async with open_node(bo_home, bo_who, LOOPBACK_NODE) as bo:
                    await bo.host.connect(ada.addrs()[0])
                    stream = await bo.host.open_stream(ada.host.peer_id,
                                                       PROTOCOL_IDS[SYNC_VERSION])
                    hello = bo.sync.new_session(ada_who.public_key).data_to_send()
                    await stream.send_all(hello[:-1])
                # Bo's node has stopped inside the frame: Ada reads the stream's end inside it,
                # or (the connection's close arriving first) a reset; either way a failed session
            await wait_until(lambda: logged(caplog, bo_who.peer_id, "sync with", "banning") >= 3)
            assert clean(ada.host, bo_who.peer_id)


# --- a slow link is no stalled peer --------------------------------------------------------------

SINK = "/meshcrew/test-sink/1.0.0"
LINK_BYTES_PER_S = 1 << 20


async def _forward(source: trio.SocketStream, sink: trio.SocketStream, per_s: float | None,
                   done: trio.CancelScope) -> None:
    try:
        while data := await source.receive_some(16 * 1024):
            await sink.send_all(data)
            if per_s is not None:
                await trio.sleep(len(data) / per_s)  # the link's pace, not a wait for a state
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        done.cancel()


@asynccontextmanager
async def slow_link(to_port: int) -> AsyncIterator[int]:
    """A TCP link to ``127.0.0.1:to_port`` that carries 1 MiB/s towards it (and replies at
    once); yields the port to dial instead."""

    async def carry(client: trio.SocketStream) -> None:
        async with client, await trio.open_tcp_stream("127.0.0.1", to_port) as upstream, \
                trio.open_nursery() as nursery:
            nursery.start_soon(_forward, client, upstream, LINK_BYTES_PER_S, nursery.cancel_scope)
            nursery.start_soon(_forward, upstream, client, None, nursery.cancel_scope)

    async with trio.open_nursery() as nursery:
        [listener] = await nursery.start(partial(trio.serve_tcp, carry, 0, host="127.0.0.1"))
        yield listener.socket.getsockname()[1]
        nursery.cancel_scope.cancel()


async def test_a_peer_on_a_slow_link_takes_a_big_write_without_it_timing_out() -> None:
    """The write deadline (2 s here, 15 s in a node) covers each 64 KiB, not a whole write:
    over a 1 MiB/s link, 6 MiB written at once to a reader that takes all it gets outlast the
    buffers on the way (a MiB or two) and take the link about 6 s. A deadline on the whole
    write cut it off, as in a node it cut every sync batch (512 KiB) over a link below 35 KB/s,
    each costing the catching-up peer 10 points as a stall."""
    size = 6 << 20
    got: list[int] = []

    async def sink(stream: Stream) -> None:
        while data := await stream.receive_some():
            got.append(len(data))

    with trio.fail_after(60):
        async with open_hosts(2, first=606) as [sender, reader]:
            reader.set_stream_handler(SINK, sink)
            port = reader.listen_port()
            assert port is not None
            async with slow_link(port) as via:
                await sender.connect(f"/ip4/127.0.0.1/tcp/{via}/p2p/{reader.peer_id}")
                stream = await sender.open_stream(reader.peer_id, SINK)
                await stream.send_all(bytes(size))
                await stream.aclose()
                await wait_until(lambda: sum(got) == size, within=40)
