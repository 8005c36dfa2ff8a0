"""Reach across NATs: reservations on relays, circuits, hole punching, and how each peer is
connected.

:class:`Reach` is owned by the host (``open_host``) and put together from:

- :class:`~meshcrew.net.relay.RelayService`, the hop side, enabled while the node is publicly
  reachable;
- :class:`~meshcrew.net.relay.StopHandler`, which takes circuits relays bring;
- :class:`Reservations`, the node's own loop that keeps reservations on up to two relays while
  it is not publicly reachable (py-libp2p's refresher renews only what its ``reserve()`` made,
  retries with no pause and stops for good once one lapses: LIBP2P.md), renews them at half
  their life, replaces a relay that goes away and redials one that comes back;
- :class:`HolePunch`, py-libp2p's DCUtR with its own drive loop switched off: the callee of a
  relayed connection (the spec's DCUtR initiator) starts it, once per circuit, and the outcome
  per peer is kept for ``meshcrew peers``.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import trio
from libp2p.peer.id import ID
from libp2p.relay.circuit_v2.dcutr import DCUtRProtocol

from meshcrew.errors import DialError, NetError, PeerBanned
from meshcrew.net import internals
from meshcrew.net.relay import (
    HOP_PROTOCOL,
    Granted,
    RelayService,
    RelayServiceConfig,
    StopHandler,
    circuit_addr,
    reserve,
)

log = logging.getLogger("meshcrew.net")

PunchOutcome = Literal["succeeded", "failed", "not tried"]
Link = Literal["direct", "relayed", "hole-punched", "none"]

RELAY_GRACE_S = 3.0
"""After a hole punch, the relayed connection is closed this much later (streams move on)."""


@dataclass(frozen=True, slots=True)
class ReservationState:
    """One relay this node holds a reservation on."""

    relay: str
    expire_unix: int
    limit_duration: int | None
    limit_data: int | None


@dataclass(frozen=True, slots=True)
class PeerLink:
    """How a peer is connected now."""

    link: Link
    via: str | None
    """The relay, when relayed."""
    hole_punch: PunchOutcome


class Reservations:
    """Keeps reservations on up to ``max_relays`` relays while ``wanted()`` says so.

    Args:
        lp_host: the libp2p host.
        pinned: relay peer ids to prefer (``--relay`` and ``--bootstrap`` peers), with where to
            dial them.
        connect: dials a multiaddr (the host's ``connect``).
        wanted: whether reservations are needed now (not publicly reachable).
        max_relays: how many relays to hold at once.
    """

    def __init__(self, lp_host: Any, connect: Callable[[str], Any],
                 wanted: Callable[[], bool], *, max_relays: int = 2,
                 tick_s: float = 1.0, low_s: float = 1.0, high_s: float = 30.0) -> None:
        self._lp = lp_host
        self._connect = connect
        self._wanted = wanted
        self.max_relays = max_relays
        self._tick = tick_s
        self._low, self._high = low_s, high_s
        self.pinned: dict[str, list[str]] = {}
        self.active: dict[str, Granted] = {}
        self._renew_at: dict[str, float] = {}
        self._failures: dict[str, int] = {}
        self._due: dict[str, float] = {}
        self.refusals: dict[str, str] = {}
        """Per relay, why it last refused or could not be reached."""
        self._wake = trio.Event()
        self.on_change: Callable[[], None] = lambda: None

    def pin(self, relay_id: str, addrs: list[str]) -> None:
        """Prefer this relay (dial it at ``addrs`` when not connected)."""
        self.pinned[relay_id] = list(dict.fromkeys([*addrs, *self.pinned.get(relay_id, [])]))
        self.wake()

    def wake(self) -> None:
        self._wake.set()

    def states(self) -> list[ReservationState]:
        return [ReservationState(g.relay, g.expire_unix, g.limit_duration_s, g.limit_data)
                for g in self.active.values()]

    def circuit_addrs(self, me: str) -> list[str]:
        """This node's addresses through each relay it holds a reservation on."""
        out = []
        for relay in self.active:
            for addr in self._relay_addrs(relay)[:3]:
                out.append(circuit_addr(addr, relay, me))
        return out

    def _relay_addrs(self, relay: str) -> list[str]:
        known = [str(a) for a in self._peerstore_addrs(relay)]
        addrs = [a for a in [*self.pinned.get(relay, []), *known] if "/p2p-circuit" not in a]
        addrs = [a.removesuffix(f"/p2p/{relay}") for a in addrs]
        unique = list(dict.fromkeys(addrs))
        return sorted(unique, key=lambda a: a.startswith(("/ip4/127.", "/ip6/::1")))

    def _peerstore_addrs(self, relay: str) -> list[Any]:
        try:
            return list(self._lp.get_peerstore().addrs(ID.from_base58(relay)))
        except Exception:
            return []

    def candidates(self) -> list[str]:
        """Relays to try: pinned ones first, then peers connected directly (a relay never hops
        over a relayed connection) that speak the hop protocol."""
        connected = [str(p) for p in self._lp.get_connected_peers()]
        speakers = [p for p in connected
                    if any(not relayed for relayed, _ in internals.connection_kinds(self._lp, p))
                    and HOP_PROTOCOL in internals.peer_protocols(self._lp, p)]
        return list(dict.fromkeys([*self.pinned, *speakers]))

    async def run(self) -> None:
        """Keep reservations until cancelled (bounded: one pass per tick or wake-up)."""
        while True:
            if self._wanted():
                await self._tend()
            elif self.active:
                self.active.clear()
                self.on_change()
            with trio.move_on_after(self._tick):
                await self._wake.wait()
            self._wake = trio.Event()

    async def _tend(self) -> None:
        now = trio.current_time()
        connected = {str(p) for p in self._lp.get_connected_peers()}
        lost = [r for r in self.active if r not in connected]
        for relay in lost:
            log.info("relay %s went away; its reservation is void", relay)
            del self.active[relay]
        changed = bool(lost)
        for relay in [r for r, at in self._renew_at.items() if r in self.active and at <= now]:
            changed |= not await self._reserve(relay, renewing=True)
        for relay in self.candidates():
            if len(self.active) >= self.max_relays:
                break
            if relay in self.active or self._due.get(relay, 0.0) > now:
                continue
            changed |= await self._reserve(relay, renewing=False)
        if changed:
            self.on_change()

    async def _reserve(self, relay: str, *, renewing: bool) -> bool:
        connected = {str(p) for p in self._lp.get_connected_peers()}
        try:
            if relay not in connected:
                await self._dial(relay)
            granted = await reserve(self._lp, relay)
        except NetError as exc:  # unreachable, banned here since it was pinned, too slow
            self._failed(relay, str(exc))
            if renewing:
                self.active.pop(relay, None)
                self._renew_at.pop(relay, None)
            return renewing
        fresh = relay not in self.active
        self.active[relay] = granted
        self._failures.pop(relay, None)
        self.refusals.pop(relay, None)
        life = max(10.0, granted.expire_unix - _unix_now())
        self._renew_at[relay] = trio.current_time() + life / 2
        if fresh:
            log.info("reservation on relay %s (until unix %d)", relay, granted.expire_unix)
        return fresh

    async def _dial(self, relay: str) -> None:
        internals.unblock(self._lp, relay)
        addrs = self.pinned.get(relay) or [f"{a}/p2p/{relay}" for a in self._relay_addrs(relay)]
        last: Exception | None = None
        for addr in addrs:
            try:
                await self._connect(addr if addr.endswith(relay) else f"{addr}/p2p/{relay}")
                return
            except PeerBanned:
                raise
            except NetError as exc:
                last = exc
        raise DialError(f"No relay reachable: {relay} ({last or 'no address'})")

    def _failed(self, relay: str, why: str) -> None:
        failures = self._failures.get(relay, 0) + 1
        self._failures[relay] = failures
        # A peer merely found speaking the protocol (every meshcrew node does, and refuses while
        # not public) is asked again rarely; a relay we were told to use, soon.
        low, high = (self._low, self._high) if relay in self.pinned else (30.0, 600.0)
        wait = min(high, low * 2.0 ** (failures - 1)) * random.uniform(0.5, 1.0)
        self._due[relay] = trio.current_time() + wait
        if self.refusals.get(relay) != why:
            log.info("%s (next try in %.0f s)", why, wait)
        self.refusals[relay] = why


def _unix_now() -> float:
    import time

    return time.time()


class HolePunch(DCUtRProtocol):
    """py-libp2p's DCUtR, driven by meshcrew: started by the callee of each new circuit (the
    spec's initiator), never by libp2p's own two-second loop (which makes both sides start at
    once). Outcomes are kept per peer."""

    def __init__(self, lp_host: Any, on_direct: Callable[[str], None]) -> None:
        super().__init__(lp_host)
        self.outcomes: dict[str, PunchOutcome] = {}
        self._on_direct = on_direct

    async def _auto_drive_loop(self) -> None:
        return None  # meshcrew starts punches itself (see punch())

    async def _perform_hole_punch(self, peer_id: ID, addrs: list[Any],
                                  as_responder: bool = False) -> bool:
        ok = bool(await super()._perform_hole_punch(peer_id, addrs, as_responder))
        self.outcomes[str(peer_id)] = "succeeded" if ok else "failed"
        log.info("hole punch with %s %s", peer_id, "succeeded" if ok else "failed")
        if ok:
            self._on_direct(str(peer_id))
        return ok

    def _schedule_relay_close(self, peer_id: ID) -> None:
        if self._nursery is not None:
            self._nursery.start_soon(self._close_relayed_conns_after_grace, peer_id,
                                     RELAY_GRACE_S)

    async def punch(self, peer_id: str) -> bool:
        """Try to turn a relayed connection into a direct one."""
        try:
            ok = bool(await self.initiate_hole_punch(ID.from_base58(peer_id)))
        except Exception as exc:  # libp2p raises assorted types; the link stays relayed
            log.info("hole punch with %s failed: %s", peer_id, exc)
            ok = False
        if not ok and self.outcomes.get(peer_id) != "succeeded":
            self.outcomes[peer_id] = "failed"  # also when it ended before any dial
        return ok


class Reach:
    """Relay service, circuits, reservations and hole punching for one host.

    Args:
        lp_host: the libp2p host.
        peer_id: this node's peer id.
        connect: the host's ``connect`` (dials a multiaddr, circuits included).
        is_member: whether a peer shares a space with this node (relay limits).
        penalize: the host's scoring.
        relay_config: the relay service's caps.
    """

    def __init__(self, lp_host: Any, peer_id: str, connect: Callable[[str], Any],
                 is_member: Callable[[str], bool], penalize: Callable[[str, float, str], None],
                 relay_config: RelayServiceConfig | None = None) -> None:
        self._lp = lp_host
        self.peer_id = peer_id
        self.public = False
        """Whether the node is publicly reachable now (the reachability verdict)."""
        self.service = RelayService(lp_host, peer_id, is_member, penalize, relay_config)
        self.reservations = Reservations(lp_host, connect, lambda: not self.public)
        self.holepunch = HolePunch(lp_host, self._direct)
        self._stop = StopHandler(lp_host, self._accept_circuit_from, self._circuit_arrived)
        self._nursery: trio.Nursery | None = None
        self.punching = True
        """Try hole punching on new circuits (tests of the relay itself turn it off)."""
        self.on_direct: Callable[[str], None] = lambda peer_id: None
        """Called when a hole punch gave a direct connection to a peer."""

    def set_public(self, public: bool) -> None:
        """The reachability verdict changed: serve as a relay, or hold reservations."""
        self.public = public
        self.service.enabled = public
        self.reservations.wake()

    def install(self) -> None:
        self.service.install()
        self._stop.install()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        from libp2p.tools.anyio_service import background_trio_service

        async with background_trio_service(self.holepunch), trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self.reservations.run)
            task_status.started()
            await trio.sleep_forever()

    def link(self, peer_id: str) -> PeerLink:
        """How a peer is connected now, and what hole punching gave."""
        kinds = internals.connection_kinds(self._lp, peer_id)
        outcome = self.holepunch.outcomes.get(peer_id, "not tried")
        if not kinds:
            return PeerLink("none", None, outcome)
        if any(not relayed for relayed, _ in kinds):
            punched = outcome == "succeeded"
            return PeerLink("hole-punched" if punched else "direct", None, outcome)
        via = next((relay for _, relay in kinds if relay), None)
        return PeerLink("relayed", via, outcome)

    def _accept_circuit_from(self, relay: str) -> bool:
        return relay in self.reservations.active

    def _circuit_arrived(self, source: str, relay: str) -> None:
        if self._nursery is not None and self.punching:
            self._nursery.start_soon(self.holepunch.punch, source)

    def _direct(self, peer_id: str) -> None:
        self.on_direct(peer_id)
