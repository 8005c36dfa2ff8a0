"""Circuit relay v2 between real libp2p hosts on loopback: reservations, circuits that carry
meshcrew streams end to end under Noise, limits for members and strangers, refusals, abuse."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
import trio

from hosts_on_loopback import LOOPBACK, open_hosts, wait_until
from meshcrew.errors import DialError
from meshcrew.net import Host, Stream
from meshcrew.net.relay import (
    CircuitLimits,
    RelayServiceConfig,
    circuit_addr,
    dial_through,
    reserve,
    split_circuit,
)

ECHO = "/meshcrew/test-echo/1.0.0"


def loopback_addr(host: Host) -> str:
    return next(a for a in host.listen_addrs() if "/ip4/127.0.0.1/" in a)


async def read_exactly(stream: Stream, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = await stream.receive_some()
        if not chunk:
            break
        data += chunk
    return data


async def echo(stream: Stream) -> None:
    """Echo one message framed by a 4-byte length."""
    data = await read_exactly(stream, 4)
    size = int.from_bytes(data[:4], "big")
    data += await read_exactly(stream, 4 + size - len(data))
    await stream.send_all(data[4:])
    await stream.aclose()


async def round_trip(host: Host, peer_id: str, payload: bytes) -> bytes:
    stream = await host.open_stream(peer_id, ECHO)
    try:
        await stream.send_all(len(payload).to_bytes(4, "big") + payload)
        return await read_exactly(stream, len(payload))
    finally:
        await stream.aclose()


async def relayed_pair(relay: Host, ana: Host) -> str:
    """Make ``relay`` public, give ``ana`` a reservation on it; return ana's circuit address."""
    relay.reach.set_public(True)
    ana.reach.set_public(False)
    ana.reach.punching = False  # the relay itself is under test here
    ana.reach.reservations.pin(relay.peer_id, [loopback_addr(relay)])
    await wait_until(lambda: relay.peer_id in ana.reach.reservations.active, within=10)
    return circuit_addr(loopback_addr(relay), relay.peer_id, ana.peer_id)


def test_circuit_addresses_split_and_join() -> None:
    relay = "12D3KooWRelay"
    addr = circuit_addr(f"/ip4/198.51.100.2/tcp/4001/p2p/{relay}", relay, "12D3KooWAna")
    assert addr == f"/ip4/198.51.100.2/tcp/4001/p2p/{relay}/p2p-circuit/p2p/12D3KooWAna"
    assert split_circuit(addr) == (f"/ip4/198.51.100.2/tcp/4001/p2p/{relay}", relay,
                                   "12D3KooWAna")
    assert split_circuit("/ip4/1.2.3.4/tcp/1/p2p/12D3KooWAna") is None
    assert split_circuit("/p2p-circuit/p2p/x") is None


@pytest.mark.trio
async def test_a_peer_reaches_another_through_a_relay_and_streams_work_end_to_end() -> None:
    async with open_hosts(3, first=300) as (relay, ana, bo):
        seen: list[bytes] = []
        relay.reach.service.on_bytes = seen.append
        relay.is_member = lambda peer_id: True  # member limits: the echo is over 128 KiB
        ana.set_stream_handler(ECHO, echo)
        # Bo reachable: a host not known to be public holds reservations on the relays it
        # meets, and under load Bo's loop took one before the end (reservations == 2)
        bo.reach.set_public(True)
        circuit = await relayed_pair(relay, ana)
        assert circuit in ana.listen_addrs()  # announced (identify, codes, exchange)

        assert await bo.connect(circuit) == ana.peer_id
        assert bo.link(ana.peer_id).link == "relayed"
        assert bo.link(ana.peer_id).via == relay.peer_id
        await wait_until(lambda: ana.link(bo.peer_id).link == "relayed")

        payload = b"meshcrew-plaintext-marker " * 4000
        got = await round_trip(bo, ana.peer_id, payload)
        assert len(got) == len(payload), (len(got), len(payload))
        assert got == payload
        relayed = b"".join(seen)
        assert len(relayed) > len(payload)  # the echo crossed the relay both ways...
        assert b"meshcrew-plaintext-marker" not in relayed  # ...as Noise ciphertext only
        assert ECHO.encode() not in relayed  # even the protocol names are inside Noise
        stats = relay.reach.service.statistics()
        assert stats.reservations == 1
        assert stats.circuits_served == 1
        assert stats.bytes_today >= len(relayed)


@pytest.mark.trio
async def test_a_relay_not_publicly_reachable_refuses_reservations() -> None:
    async with open_hosts(2, first=310) as (relay, ana):
        await ana.connect(loopback_addr(relay))
        with pytest.raises(DialError, match="reservation_refused"):
            await reserve(ana._lp, relay.peer_id)
        relay.reach.set_public(True)
        granted = await reserve(ana._lp, relay.peer_id)
        assert granted.relay == relay.peer_id
        assert granted.limit_data == 128 * 1024  # a stranger's limits


@pytest.mark.trio
async def test_members_get_raised_limits_and_strangers_the_spec_default() -> None:
    async with open_hosts(3, first=320) as (relay, ana, bo):
        relay.is_member = lambda peer_id: peer_id == ana.peer_id
        relay.reach.set_public(True)
        for host in (ana, bo):
            await host.connect(loopback_addr(relay))
        assert (await reserve(ana._lp, relay.peer_id)).limit_data == 64 * 1024 * 1024
        assert (await reserve(bo._lp, relay.peer_id)).limit_data == 128 * 1024


@pytest.mark.trio
async def test_strangers_off_refuses_them_and_a_circuit_to_an_unreserved_peer_fails() -> None:
    async with open_hosts(3, first=330) as (relay, ana, bo):
        relay.reach.service.config = RelayServiceConfig(strangers=False)
        relay.reach.set_public(True)
        await ana.connect(loopback_addr(relay))
        with pytest.raises(DialError, match="reservation_refused"):
            await reserve(ana._lp, relay.peer_id)
        await bo.connect(loopback_addr(relay))
        with pytest.raises(DialError, match="refused us \\(no reservation\\)"):
            await dial_through(bo._lp, relay.peer_id, ana.peer_id)
        assert relay.scores.points(bo.peer_id, time.monotonic()) == 0  # a stale address


@pytest.mark.trio
async def test_a_circuit_past_its_data_limit_is_cut_and_can_be_dialled_again() -> None:
    async with open_hosts(3, first=340) as (relay, ana, bo):
        relay.reach.service.config = RelayServiceConfig(
            stranger_limits=CircuitLimits(duration_s=60, data_bytes=64 * 1024))
        ana.set_stream_handler(ECHO, echo)
        circuit = await relayed_pair(relay, ana)
        await bo.connect(circuit)
        small = b"x" * 1000
        assert await round_trip(bo, ana.peer_id, small) == small
        with pytest.raises(Exception):  # noqa: B017, PT011 - any loss of the circuit
            await round_trip(bo, ana.peer_id, b"y" * 200_000)
        await wait_until(lambda: ana.peer_id not in bo.connected_peers(), within=10)
        await bo.connect(circuit)  # a new circuit, a new budget
        assert await round_trip(bo, ana.peer_id, small) == small


@pytest.mark.trio
async def test_reservations_follow_a_relay_that_restarts() -> None:
    async with open_hosts(1, first=350) as (ana,):
        ana.reach.set_public(False)
        async with open_hosts(1, first=351) as (relay,):
            relay.reach.set_public(True)
            addr = loopback_addr(relay)
            ana.reach.reservations.pin(relay.peer_id, [addr])
            await wait_until(lambda: relay.peer_id in ana.reach.reservations.active)
        await wait_until(lambda: relay.peer_id not in ana.reach.reservations.active)
        port = int(addr.split("/tcp/")[1].split("/")[0])
        config = replace(LOOPBACK, listen_addrs=(f"/ip4/127.0.0.1/tcp/{port}",))
        async with open_hosts(1, first=351, config=config) as (relay,):
            relay.reach.set_public(True)
            with trio.fail_after(40):
                await wait_until(lambda: relay.peer_id in ana.reach.reservations.active,
                                 within=40)


@pytest.mark.trio
async def test_a_pinned_relay_banned_here_is_a_failed_reservation_not_a_crash() -> None:
    """A node exited in a clean-clone CI run of the NAT lab's carrier scenario: Host.connect
    refused its pinned relay as banned (PeerBanned), and the reservation loop took only
    DialError, so the error ended the node. Now it is a failed reservation, retried later."""
    async with open_hosts(2, first=380) as (relay, ana):
        relay.reach.set_public(True)
        ana.reach.set_public(False)
        ana.reach.punching = False
        ana.penalize(relay.peer_id, ana.config.ban_threshold, "banned for the test")
        ana.reach.reservations.pin(relay.peer_id, [loopback_addr(relay)])
        await wait_until(lambda: relay.peer_id in ana.reach.reservations.refusals, within=10)
        assert "banned" in ana.reach.reservations.refusals[relay.peer_id]
        assert relay.peer_id not in ana.reach.reservations.active
        ana.forgive(relay.peer_id)  # and once forgiven, the same loop reserves
        ana.reach.reservations.wake()
        await wait_until(lambda: relay.peer_id in ana.reach.reservations.active, within=30)
