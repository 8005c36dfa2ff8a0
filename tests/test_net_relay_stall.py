"""A relay that grants a circuit and then carries nothing is a failed dial, not the end of the node.

Dialling a circuit runs the relay's answer and the Noise handshake through it under
``dial_timeout_s``; when that ran out, trio's ``TooSlowError`` left ``Host.connect`` untranslated,
and the node's dialer, which takes ``NetError``, let it end the node. Real hosts on loopback: the
relay is a meshcrew host whose hop handler answers OK and then sends nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from hosts_on_loopback import open_hosts
from meshcrew.net import internals
from meshcrew.net.relay import HOP_PROTOCOL, circuit_addr
from meshcrew.node.dialer import Dialer
from meshcrew.node.peerbook import PeerBook

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
