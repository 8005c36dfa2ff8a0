"""Relays and their askers that stall or leave halfway, with real hosts on loopback.

- A relay that grants a circuit and then carries nothing is a failed dial, not the end of the
  node: dialling a circuit runs the relay's answer and the Noise handshake through it under
  ``dial_timeout_s``; when that ran out, trio's ``TooSlowError`` left ``Host.connect``
  untranslated, and the node's dialer, which takes ``NetError``, let it end the node.
- An asker that resets its hop stream while the relay waits for the target: the relay's answer
  failed in its handler, and libp2p, given a handler's error, served no further stream of that
  asker's connection (the node's own protocols included) and left the target's stream open.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
import trio
from libp2p.peer.id import ID

from hosts_on_loopback import open_hosts, wait_until
from meshcrew.net import Host, internals
from meshcrew.net.relay import HOP_PROTOCOL, STOP_PROTOCOL, circuit_addr
from meshcrew.node.dialer import Dialer
from meshcrew.node.peerbook import PeerBook
from test_net_relay import ECHO, echo, loopback_addr, round_trip

pytestmark = pytest.mark.trio


async def grant_and_stall(raw: Any) -> None:
    """A hop handler that says OK to a circuit and then carries nothing (for at most 30 s):
    the handshake through it waits for its own deadline (10 s), the dial's (5 s here) runs out
    first."""
    await internals.read_hop(raw)
    await internals.write_hop_status(raw, internals.Status.OK)
    await trio.sleep(30)  # the dialler's handshake waits for an answer that never comes
    await internals.reset(raw)


async def test_a_circuit_that_never_completes_is_a_failed_dial(tmp_path: Path) -> None:
    async with open_hosts(3, first=390) as (relay, ana, bo):
        internals.set_raw_handler(relay._lp, HOP_PROTOCOL, grant_and_stall)
        relay_addr = next(a for a in relay.listen_addrs() if "/ip4/127.0.0.1/" in a)
        circuit = circuit_addr(relay_addr, relay.peer_id, bo.peer_id)
        dialer = Dialer(ana, PeerBook(tmp_path / "peers.json"), lambda: [], low_s=1.0,
                        high_s=2.0, max_dials=2)
        with trio.fail_after(ana.config.dial_timeout_s + 10):
            assert not await dialer.dial(bo.peer_id, [circuit])
        assert dialer.failures(bo.peer_id) == 1
        assert relay.peer_id in ana.connected_peers()  # the host itself carries on


def hop_streams_open(relay: Host, asker: str) -> int:
    """The asker's hop streams at the relay that it has not reset (libp2p's own state: nothing
    else tells when its reset arrived)."""
    conns = relay._lp.get_network().connections.get(ID.from_base58(asker), [])
    return sum(1 for conn in (conns if isinstance(conns, list) else [conns])
               for stream in conn.get_streams() if str(stream.get_protocol()) == HOP_PROTOCOL
               and not stream.muxed_stream.reset_received)


async def test_an_asker_that_leaves_while_the_relay_waits_keeps_its_connection_served() -> None:
    async with open_hosts(3, first=393) as (relay, ana, bo):
        relay.reach.set_public(True)
        relay.is_member = lambda peer_id: True
        relay.set_stream_handler(ECHO, echo)
        ana.reach.set_public(False)
        ana.reach.punching = False
        ana.reach.reservations.pin(relay.peer_id, [loopback_addr(relay)])
        await wait_until(lambda: relay.peer_id in ana.reach.reservations.active, within=10)
        asked, answer, ended = trio.Event(), trio.Event(), trio.Event()

        async def stop_when_told(raw: Any) -> None:  # Ana's side answers when the test says
            await internals.read_stop(raw)
            asked.set()
            await answer.wait()
            await internals.write_stop_status(raw, internals.Status.OK)
            with trio.move_on_after(30), contextlib.suppress(Exception):
                await internals.read_some(raw, 1)  # until the relay ends the circuit
            ended.set()
            await internals.reset(raw)

        internals.set_raw_handler(ana._lp, STOP_PROTOCOL, stop_when_told)
        with trio.fail_after(30):
            await bo.connect(loopback_addr(relay))
            raw = await internals.open_stream(bo._lp, relay.peer_id, HOP_PROTOCOL)
            await internals.write_hop_connect(raw, ana.peer_id)
            await asked.wait()  # the relay waits for Ana's answer...
            await internals.reset(raw)  # ...and Bo gives up meanwhile
            await wait_until(lambda: hop_streams_open(relay, bo.peer_id) == 0)
            answer.set()
            await wait_until(ended.is_set)  # the relay ended the circuit's other half too
            assert await round_trip(bo, relay.peer_id, b"still served") == b"still served"
