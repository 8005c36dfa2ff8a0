"""Circuit relay v2: serving as a relay (hop), being reached through one (stop), dialling
through one, and keeping reservations on relays.

The wire protocol is libp2p's (``/libp2p/circuit/relay/0.2.0/hop`` and ``.../stop``, the
protobuf messages of py-libp2p's ``relay/circuit_v2/pb``), so any libp2p relay or client
interoperates; the policy is meshcrew's. py-libp2p 0.8.1's own ``CircuitV2Protocol`` applies one
set of limits to everyone and its transport cannot be reached from ``host.connect``, so this
module speaks the protocol itself and hands finished circuits to libp2p's public
``upgrade_outbound_connection`` / ``upgrade_inbound_connection``, which secure them with Noise and
yamux end to end and register them with the swarm (:mod:`meshcrew.net.internals` names every
internal relied on).

Policy of a relay (:class:`RelayService`):

- it serves only while the node is publicly reachable (the node says so with ``enabled``);
- a peer that shares a space with this node (a *member*) gets a reservation and circuits with
  :data:`MEMBER_LIMITS`, enough for a waking laptop's whole catch-up; any other peer gets at
  most the spec's default limited relay (:data:`STRANGER_LIMITS`: 2 min, 128 KiB, enough to
  coordinate a hole punch or a join), or nothing when strangers are off;
- reservations, circuits per peer, circuits in all and relayed bytes per day are capped;
- abuse costs points like any misbehaviour: a malformed message, a reservation flood, a circuit
  to a peer that holds no reservation here.

The relay only ever sees Noise ciphertext between the two ends, their peer ids, sizes and timing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio
from multiaddr import Multiaddr

from meshcrew.errors import DialError
from meshcrew.net import internals
from meshcrew.net.scores import PROTOCOL_VIOLATION

log = logging.getLogger("meshcrew.net")

HOP_PROTOCOL = "/libp2p/circuit/relay/0.2.0/hop"
STOP_PROTOCOL = "/libp2p/circuit/relay/0.2.0/stop"

MESSAGE_TIMEOUT_S = 10.0
"""Longest wait for one control message of the relay protocol."""
PIPE_CHUNK = 64 * 1024

RESERVATION_FLOOD = 10.0
"""Points for asking for reservations faster than :attr:`RelayServiceConfig.reserve_per_minute`."""


@dataclass(frozen=True, slots=True)
class CircuitLimits:
    """What one relayed connection may use before the relay cuts it."""

    duration_s: int
    data_bytes: int


STRANGER_LIMITS = CircuitLimits(duration_s=120, data_bytes=128 * 1024)
"""The circuit relay v2 spec's default limited relay: enough to coordinate a hole punch."""

MEMBER_LIMITS = CircuitLimits(duration_s=3600, data_bytes=64 * 1024 * 1024)
"""For peers with whom the relay shares a space. docs/performance.md: a 200-member
congregation's catch-up after a week away is a few MiB; 64 MiB holds many of them."""


@dataclass(frozen=True, slots=True)
class RelayServiceConfig:
    """Caps of the relay service (``status --json`` shows them with their current use)."""

    strangers: bool = True
    """Serve peers that share no space with this node (limited), or refuse them."""
    max_reservations: int = 128
    max_circuits: int = 64
    max_circuits_per_peer: int = 4
    bytes_per_day: int = 2 * 1024 * 1024 * 1024
    reservation_ttl_s: int = 3600
    reserve_per_minute: int = 6
    member_limits: CircuitLimits = MEMBER_LIMITS
    stranger_limits: CircuitLimits = STRANGER_LIMITS


@dataclass(frozen=True, slots=True)
class RelayServiceStats:
    """The relay's caps and what is in use now."""

    enabled: bool
    strangers: bool
    reservations: int
    max_reservations: int
    circuits: int
    max_circuits: int
    max_circuits_per_peer: int
    bytes_today: int
    bytes_per_day: int
    circuits_served: int
    refused: int


@dataclass(slots=True)
class _Reservation:
    expires: float
    member: bool


@dataclass(slots=True)
class _Usage:
    circuits: dict[str, int] = field(default_factory=dict)
    bytes_today: int = 0
    day: int = 0
    served: int = 0
    refused: int = 0
    asks: dict[str, list[float]] = field(default_factory=dict)


class RelayService:
    """The hop side: reservations and circuits for other peers.

    Args:
        lp_host: the libp2p host.
        peer_id: this node's peer id.
        is_member: whether a peer id shares a space with this node.
        penalize: ``(peer id, points, why)``, the host's scoring.
        config: the caps.
    """

    def __init__(self, lp_host: Any, peer_id: str, is_member: Callable[[str], bool],
                 penalize: Callable[[str, float, str], None],
                 config: RelayServiceConfig | None = None) -> None:
        self._lp = lp_host
        self._peer_id = peer_id
        self._is_member = is_member
        self._penalize = penalize
        self.config = config or RelayServiceConfig()
        self.enabled = False
        """Serve reservations and circuits (the node sets it while it is publicly reachable)."""
        self._reservations: dict[str, _Reservation] = {}
        self._usage = _Usage()
        self.on_bytes: Callable[[bytes], None] | None = None
        """Sees every relayed chunk (tests use it to prove the relay sees only ciphertext)."""

    def install(self) -> None:
        """Serve the hop protocol (always registered: refuses while not enabled)."""
        internals.set_raw_handler(self._lp, HOP_PROTOCOL, self._serve)

    def statistics(self) -> RelayServiceStats:
        """Caps and current use."""
        self._expire()
        c = self.config
        return RelayServiceStats(
            enabled=self.enabled, strangers=c.strangers, reservations=len(self._reservations),
            max_reservations=c.max_reservations,
            circuits=sum(self._usage.circuits.values()), max_circuits=c.max_circuits,
            max_circuits_per_peer=c.max_circuits_per_peer,
            bytes_today=self._bytes_today(), bytes_per_day=c.bytes_per_day,
            circuits_served=self._usage.served, refused=self._usage.refused)

    def reserved(self, peer_id: str) -> bool:
        """Whether a peer holds a live reservation here."""
        self._expire()
        return peer_id in self._reservations

    # --- the hop stream ------------------------------------------------------------------------

    async def _serve(self, raw: Any) -> None:
        peer_id = internals.stream_peer(raw)
        try:
            with trio.fail_after(MESSAGE_TIMEOUT_S):
                msg = await internals.read_hop(raw)
        except internals.MALFORMED as exc:
            self._penalize(peer_id, PROTOCOL_VIOLATION, f"malformed relay message: {exc}")
            await self._status(raw, internals.Status.MALFORMED_MESSAGE)
            await internals.reset(raw)
            return
        except Exception:  # timeout or a closed stream: nothing to answer
            await internals.reset(raw)
            return
        if internals.is_relayed(raw):  # spec: never hop over a relayed connection
            await self._refuse(raw, peer_id, internals.Status.PERMISSION_DENIED, "relayed")
            return
        if msg.type == internals.HOP_RESERVE:
            await self._reserve(raw, peer_id)
        elif msg.type == internals.HOP_CONNECT:
            await self._connect(raw, peer_id, msg)
        else:
            self._penalize(peer_id, PROTOCOL_VIOLATION, "unexpected relay message")
            await self._status(raw, internals.Status.UNEXPECTED_MESSAGE)
            await internals.reset(raw)

    async def _reserve(self, raw: Any, peer_id: str) -> None:
        now = time.monotonic()
        asks = [t for t in self._usage.asks.get(peer_id, []) if now - t < 60.0] + [now]
        self._usage.asks[peer_id] = asks
        if len(asks) > self.config.reserve_per_minute:
            self._penalize(peer_id, RESERVATION_FLOOD, "reservation flood")
            await self._refuse(raw, peer_id, internals.Status.RESOURCE_LIMIT_EXCEEDED, "flood")
            return
        member = self._is_member(peer_id)
        why = self._reservation_problem(peer_id, member)
        if why is not None:
            await self._refuse(raw, peer_id, internals.Status.RESERVATION_REFUSED, why)
            return
        ttl = self.config.reservation_ttl_s
        self._reservations[peer_id] = _Reservation(now + ttl, member)
        limits = self._limits(member)
        expire = int(time.time()) + ttl
        if not await internals.write_reservation(raw, self._lp, peer_id, expire,
                                                 limits.duration_s, limits.data_bytes):
            log.info("relay: %s left before its reservation was granted", peer_id)
            return
        log.info("relay: reservation for %s (%s) until +%d s", peer_id,
                 "member" if member else "stranger", ttl)
        await internals.close(raw)

    def _reservation_problem(self, peer_id: str, member: bool) -> str | None:
        if not self.enabled:
            return "not serving (not publicly reachable)"
        if not member and not self.config.strangers:
            return "strangers are not relayed here"
        self._expire()
        if peer_id not in self._reservations and \
                len(self._reservations) >= self.config.max_reservations:
            return "too many reservations"
        return None

    async def _connect(self, raw: Any, source: str, msg: Any) -> None:
        target = internals.peer_of_message(msg)
        if target is None:
            self._penalize(source, PROTOCOL_VIOLATION, "relay connect without a target")
            await self._refuse(raw, source, internals.Status.MALFORMED_MESSAGE, "no target")
            return
        why, status = self._circuit_problem(source, target)
        if why is not None:
            await self._refuse(raw, source, status, why)
            return
        member = self._reservations[target].member and self._is_member(source)
        limits = self._limits(member)
        usage = self._usage
        usage.circuits[source] = usage.circuits.get(source, 0) + 1
        usage.circuits[target] = usage.circuits.get(target, 0) + 1
        try:
            try:
                with trio.fail_after(MESSAGE_TIMEOUT_S):
                    dst = await internals.open_stop(self._lp, target, source,
                                                    limits.duration_s, limits.data_bytes)
            except Exception as exc:
                log.info("relay: %s unreachable for a circuit from %s: %s", target, source, exc)
                await self._refuse(raw, source, internals.Status.CONNECTION_FAILED, "target gone")
                return
            if not await internals.write_hop_ok(raw, limits.duration_s, limits.data_bytes):
                log.info("relay: %s left before its circuit to %s was ready", source, target)
                await internals.reset(dst)
                return
            usage.served += 1
            log.info("relay: circuit %s -> %s (%s limits)", source, target,
                     "member" if member else "stranger")
            await self._pipe(raw, dst, source, limits)
        finally:
            for peer in (source, target):
                usage.circuits[peer] -= 1
                if usage.circuits[peer] <= 0:
                    del usage.circuits[peer]

    def _circuit_problem(self, source: str, target: str) -> tuple[str | None, Any]:
        status = internals.Status
        if not self.enabled:
            return "not serving (not publicly reachable)", status.PERMISSION_DENIED
        if not self.reserved(target):
            # No points: an honest dialler asks for one at every redial of a peer whose circuit
            # address went stale (its reservation lapsed overnight, or it moved to another
            # relay), and 5 points a time banned it from its relay within hours.
            return "no reservation", status.NO_RESERVATION
        member = self._reservations[target].member and self._is_member(source)
        if not member and not self.config.strangers:
            return "strangers are not relayed here", status.PERMISSION_DENIED
        usage = self._usage
        if sum(usage.circuits.values()) // 2 >= self.config.max_circuits:
            return "too many circuits", status.RESOURCE_LIMIT_EXCEEDED
        per_peer = self.config.max_circuits_per_peer
        if usage.circuits.get(source, 0) >= per_peer or usage.circuits.get(target, 0) >= per_peer:
            return "too many circuits for this peer", status.RESOURCE_LIMIT_EXCEEDED
        if self._bytes_today() >= self.config.bytes_per_day:
            return "daily relay budget spent", status.RESOURCE_LIMIT_EXCEEDED
        return None, status.OK

    async def _pipe(self, a: Any, b: Any, source: str, limits: CircuitLimits) -> None:
        budget = [limits.data_bytes]
        cut = [False]

        async def one_way(src: Any, dst: Any) -> None:
            while True:
                data = await internals.read_some(src, PIPE_CHUNK)
                if not data:
                    return
                budget[0] -= len(data)
                self._count(len(data))
                if budget[0] < 0:
                    cut[0] = True
                    return
                if self.on_bytes is not None:
                    self.on_bytes(data)
                await internals.write(dst, data)

        with trio.move_on_after(limits.duration_s):
            async with trio.open_nursery() as nursery:
                for src, dst in ((a, b), (b, a)):
                    nursery.start_soon(_then_cancel, one_way, src, dst, nursery.cancel_scope)
        if cut[0]:
            log.info("relay: circuit from %s cut at its data limit", source)
        await internals.reset(a)
        await internals.reset(b)

    async def _refuse(self, raw: Any, peer_id: str, status: Any, why: str) -> None:
        self._usage.refused += 1
        log.info("relay: refused %s: %s", peer_id, why)
        await self._status(raw, status)
        await internals.close(raw)

    async def _status(self, raw: Any, status: Any) -> None:
        try:
            with trio.fail_after(MESSAGE_TIMEOUT_S):
                await internals.write_hop_status(raw, status)
        except Exception:  # the asker is gone; nothing to tell
            log.debug("relay: could not answer", exc_info=True)

    def _limits(self, member: bool) -> CircuitLimits:
        return self.config.member_limits if member else self.config.stranger_limits

    def _expire(self) -> None:
        now = time.monotonic()
        for peer_id in [p for p, r in self._reservations.items() if r.expires <= now]:
            del self._reservations[peer_id]

    def _count(self, n: int) -> None:
        day = int(time.time() // 86400)
        if day != self._usage.day:
            self._usage.day, self._usage.bytes_today = day, 0
        self._usage.bytes_today += n

    def _bytes_today(self) -> int:
        return self._usage.bytes_today if self._usage.day == int(time.time() // 86400) else 0


async def _then_cancel(fn: Callable[[Any, Any], Any], src: Any, dst: Any,
                       scope: trio.CancelScope) -> None:
    """Run one direction of a pipe; when it ends (EOF, error, cap) the circuit ends."""
    try:
        await fn(src, dst)
    except Exception as exc:  # a reset or closed side ends the circuit like an EOF
        log.debug("relay: pipe ended: %s", exc)
    finally:
        scope.cancel()


# --- the client side --------------------------------------------------------------------------


def circuit_addr(relay_addr: str, relay_id: str, target: str) -> str:
    """``<relay addr>/p2p/<relay>/p2p-circuit/p2p/<target>`` (``relay_addr`` with or without
    its ``/p2p/<relay>``)."""
    base = relay_addr.removesuffix(f"/p2p/{relay_id}")
    return f"{base}/p2p/{relay_id}/p2p-circuit/p2p/{target}"


def split_circuit(addr: str) -> tuple[str, str, str] | None:
    """``(relay addr ending in /p2p/<relay>, relay id, target id)`` of a circuit address, or None
    if ``addr`` is not one."""
    head, sep, tail = addr.partition("/p2p-circuit")
    if not sep or not tail.startswith("/p2p/"):
        return None
    target = tail.removeprefix("/p2p/")
    _, sep2, relay_id = head.rpartition("/p2p/")
    if not sep2 or not relay_id or "/" in relay_id or "/" in target or not target:
        return None
    return head, relay_id, target


def is_circuit(addr: str) -> bool:
    """Whether a multiaddr goes through a relay."""
    return "/p2p-circuit" in addr


@dataclass(frozen=True, slots=True)
class Granted:
    """A reservation a relay granted."""

    relay: str
    expire_unix: int
    limit_duration_s: int | None
    limit_data: int | None


async def reserve(lp_host: Any, relay_id: str) -> Granted:
    """Ask a connected relay for a reservation (one hop stream, one exchange).

    Raises:
        DialError: the relay refused (with its reason) or did not answer.
    """
    try:
        with trio.fail_after(MESSAGE_TIMEOUT_S):
            raw = await internals.open_stream(lp_host, relay_id, HOP_PROTOCOL)
            try:
                await internals.write_hop_reserve(raw)
                resp = await internals.read_hop(raw)
            finally:
                await internals.close(raw)
    except trio.TooSlowError:
        raise DialError(f"Relay {relay_id} did not answer a reservation in time.") from None
    except Exception as exc:
        raise DialError(f"No reservation on relay {relay_id}: {exc}") from None
    status = internals.status_of(resp)
    if status != internals.Status.OK:
        raise DialError(f"Relay {relay_id} refused a reservation ({status.name.lower()}).")
    expire, duration, data = internals.reservation_terms(resp)
    return Granted(relay_id, expire, duration, data)


async def dial_through(lp_host: Any, relay_id: str, target: str) -> None:
    """Open a circuit to ``target`` through a connected relay; the swarm then holds a Noise +
    yamux connection to ``target`` (marked relayed) that ``new_stream`` uses.

    Raises:
        DialError: the relay refused (its reason in the sentence) or the upgrade failed.
    """
    try:
        with trio.fail_after(MESSAGE_TIMEOUT_S):
            raw = await internals.open_stream(lp_host, relay_id, HOP_PROTOCOL)
            await internals.write_hop_connect(raw, target)
            resp = await internals.read_hop(raw)
    except trio.TooSlowError:
        raise DialError(f"Relay {relay_id} did not answer in time.") from None
    except Exception as exc:
        raise DialError(f"No circuit through relay {relay_id}: {exc}") from None
    status = internals.status_of(resp)
    if status != internals.Status.OK:
        await internals.reset(raw)
        raise DialError(f"Peer {target} is only reachable through a relay that refused us "
                        f"({status.name.lower().replace('_', ' ')}).")
    addr = Multiaddr(f"/p2p/{relay_id}/p2p-circuit/p2p/{target}")
    try:
        with trio.fail_after(MESSAGE_TIMEOUT_S):
            await internals.upgrade_outbound(lp_host, raw, target, addr)
    except Exception as exc:
        await internals.reset(raw)
        raise DialError(f"Circuit to {target} through {relay_id} failed its handshake: "
                        f"{type(exc).__name__}") from None


class StopHandler:
    """The stop side: a relay brings a circuit from another peer.

    Args:
        lp_host: the libp2p host.
        accept_from: whether to take circuits from this relay (one we hold a reservation on).
        on_circuit: called with ``(peer id, relay id)`` once a circuit is upgraded (the node
            starts a hole punch from here: the spec's DCUtR initiator is the callee).
    """

    def __init__(self, lp_host: Any, accept_from: Callable[[str], bool],
                 on_circuit: Callable[[str, str], None]) -> None:
        self._lp = lp_host
        self._accept_from = accept_from
        self._on_circuit = on_circuit

    def install(self) -> None:
        internals.set_raw_handler(self._lp, STOP_PROTOCOL, self._serve)

    async def _serve(self, raw: Any) -> None:
        relay_id = internals.stream_peer(raw)
        try:
            with trio.fail_after(MESSAGE_TIMEOUT_S):
                msg = await internals.read_stop(raw)
        except Exception:
            await internals.reset(raw)
            return
        source = internals.peer_of_message(msg)
        if msg.type != internals.STOP_CONNECT or source is None:
            await internals.write_stop_status(raw, internals.Status.MALFORMED_MESSAGE)
            await internals.reset(raw)
            return
        if not self._accept_from(relay_id):
            await internals.write_stop_status(raw, internals.Status.PERMISSION_DENIED)
            await internals.close(raw)
            return
        await internals.write_stop_status(raw, internals.Status.OK)
        addr = Multiaddr(f"/p2p/{relay_id}/p2p-circuit/p2p/{source}")
        try:
            with trio.fail_after(MESSAGE_TIMEOUT_S):
                await internals.upgrade_inbound(self._lp, raw, source, addr)
        except Exception as exc:
            log.info("relayed circuit from %s via %s failed its handshake: %s", source,
                     relay_id, exc)
            await internals.reset(raw)
            return
        log.info("relayed connection from %s via %s", source, relay_id)
        self._on_circuit(source, relay_id)
