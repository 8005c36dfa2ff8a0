"""LAN discovery with mDNS: announce this host and hear of others on the local network.

libp2p's mDNS (zeroconf) only *discovers*: it puts addresses in the peerstore and calls the
handlers of a process-wide singleton, from zeroconf's own thread. :func:`open_lan_discovery`
hops each discovery back into trio through the run's token and hands it over as a
:class:`LanPeer` on a channel; the node decides whether to dial.

Registration, goodbye and zeroconf's sockets are blocking calls, so they run in worker threads
under deadlines; shutting discovery down never takes longer than ``stop_timeout_s``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import trio
from libp2p.discovery.events.peerDiscovery import peerDiscovery
from libp2p.discovery.mdns.mdns import MDNSDiscovery

from meshcrew.errors import NetError
from meshcrew.net.host import Host
from meshcrew.net.seam import log


@dataclass(frozen=True, slots=True)
class LanPeer:
    """A peer announced on the LAN."""

    peer_id: str
    addrs: tuple[str, ...]
    """Its announced addresses, each ending in ``/p2p/<peer id>``."""


@asynccontextmanager
async def open_lan_discovery(host: Host, *, queue: int = 64, stop_timeout_s: float = 1.0,
                             ) -> AsyncIterator[trio.MemoryReceiveChannel[LanPeer]]:
    """Announce ``host`` on the LAN and yield a channel of the peers heard of, until exit.

    Raises:
        NetError: mDNS could not start (e.g. no multicast-capable interface, port 5353 refused).
    """
    port = host.listen_port()
    addrs = [a for a in host.listen_addrs() if "/tcp/" in a]
    token = trio.lowlevel.current_trio_token()
    send, receive = trio.open_memory_channel[LanPeer](queue)

    def deliver(peer: LanPeer) -> None:  # runs in trio, scheduled from zeroconf's thread
        # discovery repeats; a dropped sighting costs nothing
        with suppress(trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            send.send_nowait(peer)

    def on_discovered(info: Any) -> None:  # runs on zeroconf's thread
        peer_id = str(info.peer_id)
        if peer_id == host.peer_id:
            return
        suffix = f"/p2p/{peer_id}"
        texts = (str(a) for a in info.addrs)
        found = LanPeer(peer_id, tuple(t if t.endswith(suffix) else t + suffix for t in texts))
        with suppress(trio.RunFinishedError):
            token.run_sync_soon(deliver, found)

    def start() -> MDNSDiscovery:
        discovery = MDNSDiscovery(host._lp.get_network(), port=port or 0, listen_addrs=addrs)
        discovery.broadcaster.register()
        return discovery

    peerDiscovery.register_peer_discovered_handler(on_discovered)
    try:
        try:
            # trio-typing's stubs predate abandon_on_cancel
            discovery = await trio.to_thread.run_sync(start, abandon_on_cancel=True)  # type: ignore[call-arg]
        except OSError as exc:
            raise NetError(f"LAN discovery (mDNS) could not start: {exc.strerror or exc}.") \
                from None
        log.info("announcing %s on the LAN (mDNS)", host.peer_id)
        try:
            with receive:
                yield receive
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(stop_timeout_s):
                await trio.to_thread.run_sync(  # type: ignore[call-arg]
                    _stop_quietly, discovery, abandon_on_cancel=True)
    finally:
        peerDiscovery.unregister_peer_discovered_handler(on_discovered)
        send.close()


def _stop_quietly(discovery: MDNSDiscovery) -> None:
    try:
        discovery.broadcaster.unregister()
        discovery.listener.stop()
        discovery.zeroconf.close()
    except Exception:  # shutting down: a failed goodbye only delays others' cleanup
        log.debug("stopping mDNS failed", exc_info=True)
