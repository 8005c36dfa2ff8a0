"""Whether peers can dial this node at the addresses it announces: AutoNAT v1 dial-backs.

The node asks connected peers to dial it back (``/libp2p/autonat/1.0.0``, with libp2p's standard
``autonat.pb.Message`` so other libp2p stacks can ask and answer) and turns their answers into a
verdict, "public", "private" or "unknown", that ``meshcrew status`` shows as one sentence.

py-libp2p 0.8.1's own ``AutoNATService`` cannot be used (LIBP2P.md, AutoNAT): its server dials
back with ``host.connect``, which returns at once because the asker is always connected already,
so every probe "succeeds"; and its client wants four agreeing servers, which a crew of three to
eight with one public member never has.

The server side, dialling others back on a fresh connection under rate limits, is
:mod:`.dial_back`; the messages and addresses are :mod:`.autonat_wire`.

**Verdict** (:func:`judge`), over the answers of the last ``memory_s`` seconds, where an answer
is *conclusive* if it is OK (reachable) or E_DIAL_ERROR (unreachable); refusals, timeouts and
peers that do not speak the protocol count for nothing:

- **private** at the first failure whose answer says peers see this node at an IP it does not
  offer (it is behind a NAT, and asking again would only repeat it: a forwarded port is what
  ``--reachability public`` is for), when no peer ever dialled back;
- **private** once two conclusive failures have come since the last success, from two
  different peers, or from the only peer that gave conclusive answers at all (a crew with a
  single public member asks it twice);
- otherwise **public** if any peer dialled back (one success is strong evidence: a real dial
  authenticated this node's key; a single failure after it does not flip the verdict);
- otherwise **unknown**.

"Public" means "the peers that asked could reach this node at an announced address": a peer on
the same LAN or the same machine dialling back a private or loopback address counts too (crews
on one network, and the tests, need it). The reason sentence says when the address reached is
on this machine or not a global internet address (Python's ``ipaddress``: RFC 1918, ULA and the
TEST-NET documentation ranges are "private"), so a person can tell.

Modes "public" and "private" force the verdict ("set by --reachability") and ask nobody; the
server keeps answering others in every mode.
"""

from __future__ import annotations

import math
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

import trio
from libp2p.host.autonat.pb.autonat_pb2 import Message

from meshcrew.errors import InputError, NetError, RemoteProtocolError
from meshcrew.net.autonat_wire import (
    AUTONAT_PROTOCOL,
    DialResponse,
    IPAddress,
    decode_dial_response,
    dialable_tcp_addrs,
    encode_dial_request,
    parse_ip,
    printable,
    read_frame,
    tcp_address,
)
from meshcrew.net.dial_back import DialBackPolicy, DialBackServer
from meshcrew.net.host import Host, PeerConnected, PeerEvent
from meshcrew.net.scores import PROTOCOL_VIOLATION
from meshcrew.net.seam import log
from meshcrew.net.stream import Stream

if TYPE_CHECKING:
    from trio_typing import TaskStatus

ReachabilityMode = Literal["auto", "public", "private"]
ReachabilityVerdict = Literal["public", "private", "unknown"]
ProbeOutcome = Literal["reachable", "unreachable", "inconclusive"]
"""What one peer's answer says: it dialled back (reachable), it tried and could not
(unreachable), or nothing about reachability (refused, timed out, no AutoNAT, garbled)."""

FORCED_REASON = "set by --reachability"

_MAX_RESULTS = 32
"""Probe results remembered for the verdict (besides the age limit)."""
_SEEN_FROM = re.compile(r"seen from ([0-9A-Fa-f:.]+)$")


# --- settings ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReachabilitySettings:
    """How often and how widely the node asks (defaults for crews of 3-8)."""

    peers_per_round: int = 3
    """Peers asked at once."""
    retry_s: float = 35.0
    """Least time before the same peer is asked again (above the server's per-peer window of
    30 s, so the second request is not refused). Doubles per peer while its answers say
    nothing, up to ``max_backoff_s``."""
    settled_s: float = 600.0
    """Time between rounds once the verdict is public or private (to notice a change)."""
    max_backoff_s: float = 1800.0
    probe_timeout_s: float = 20.0
    """Longest one probe may take (above the server's dial budget); the stream's own read
    deadline applies to each read as well."""
    memory_s: float = 3600.0
    """Answers older than this no longer count for the verdict."""






@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One peer's answer to "dial me back"."""

    peer_id: str
    outcome: ProbeOutcome
    at: float
    """When the answer came (the Reachability's clock: wall-clock seconds by default)."""
    detail: str
    """The status and the peer's text, or what went wrong asking ("E_DIAL_ERROR: ...")."""
    address: str | None = None
    """The multiaddr the peer reached (reachable only)."""
    observed_ip: str | None = None
    """The IP the peer sees this node at, when its answer says."""
    asked: tuple[str, ...] = ()
    """The addresses offered for dialling."""


@dataclass(frozen=True, slots=True)
class ProbeSummary:
    """Counts of every probe since the node started."""

    successes: int = 0
    failures: int = 0
    inconclusive: int = 0
    last_probe_at: float | None = None


@dataclass(frozen=True, slots=True)
class ReachabilityReport:
    """What the node knows about its reachability, for ``meshcrew status`` and for reacting."""

    verdict: ReachabilityVerdict
    forced: bool
    """The verdict was set by the person (``--reachability``), not measured."""
    reason: str
    """One sentence for a person: "3 of 3 peers dialled back 198.51.100.2:4001"."""
    probes: ProbeSummary
    observed: tuple[str, ...] = ()
    """IPs peers saw this node's connections come from, newest first."""
    reachable_at: tuple[str, ...] = ()
    """Addresses (``ip:port``) peers reached this node at, newest first."""


# --- the verdict (pure) ----------------------------------------------------------------------


def _scope_note(ip: IPAddress) -> str:
    if ip.is_loopback:
        return " (on this machine)"
    if not ip.is_global:
        return " (not a global internet address)"
    return ""


def _peers(n: int) -> str:
    return f"{n} peer" if n == 1 else f"{n} peers"


def _first_host_port(texts: Iterable[str]) -> str:
    for text in texts:
        addr = tcp_address(text)
        if addr is not None:
            return addr.host_port
    return "any announced address"


def _unseen_ips(failures: Sequence[ProbeResult]) -> list[str]:
    """IPs peers see this node at that are none of the IPs it offered (the NAT's, usually)."""
    offered = {str(a.ip) for r in failures for a in map(tcp_address, r.asked) if a is not None}
    seen = [r.observed_ip for r in reversed(failures) if r.observed_ip]
    return [ip for ip in dict.fromkeys(seen) if ip not in offered]


def judge(results: Iterable[ProbeResult], now: float, *,
          memory_s: float) -> tuple[ReachabilityVerdict, str]:
    """The verdict and its reason from probe results (oldest first); see the module docstring."""
    recent = [r for r in results if now - r.at <= memory_s]
    conclusive = [r for r in recent if r.outcome != "inconclusive"]
    if not conclusive:
        if recent:
            return "unknown", f"no peer could answer yet (last: {recent[-1].detail})"
        return "unknown", "no peer has answered yet"
    successes = [i for i, r in enumerate(conclusive) if r.outcome == "reachable"]
    since = conclusive[successes[-1] + 1:] if successes else conclusive
    failing = {r.peer_id for r in since}
    answering = {r.peer_id for r in conclusive}
    nat = _unseen_ips(since)
    hint = f"; peers see this node at {', '.join(nat)}" if nat else ""
    if len(since) >= 2 and (len(failing) >= 2 or failing == answering):
        asked = _first_host_port(since[-1].asked)
        if len(failing) >= 2:
            return "private", f"{_peers(len(failing))} could not dial back {asked}{hint}"
        return "private", (f"the only peer that answered could not dial back {asked}, "
                           f"{len(since)} times{hint}")
    if nat and not successes:
        # Peers see this node at an IP it does not listen on: it is behind a NAT, and asking
        # again would give the same answer (a forwarded port is what --reachability is for).
        asked = _first_host_port(since[-1].asked)
        return "private", f"{_peers(len(failing))} could not dial back {asked}{hint}"
    if successes:
        last = conclusive[successes[-1]]
        latest: dict[str, ProbeResult] = {r.peer_id: r for r in conclusive}
        reached = sum(1 for r in latest.values() if r.outcome == "reachable")
        addr = tcp_address(last.address or "")
        where = f" {addr.host_port}{_scope_note(addr.ip)}" if addr else ""
        who = _peers(reached) if len(latest) == 1 else f"{reached} of {len(latest)} peers"
        after = f"; {len(since)} dial-back{'s' if len(since) > 1 else ''} failed since" \
            if since else ""
        return "public", f"{who} dialled back{where}{after}"
    asked = _first_host_port(since[-1].asked)
    return "unknown", (f"1 peer could not dial back {asked}{hint}; "
                       "waiting for a second answer")


# --- client ------------------------------------------------------------------------------------


def _result_of(peer_id: str, response: DialResponse, asked: tuple[str, ...],
               at: float) -> ProbeResult:
    detail = printable(f"{response.status_name}: {response.text}" if response.text
                       else response.status_name)
    if response.status == Message.OK:
        addr = tcp_address(response.addr or "")
        return ProbeResult(peer_id, "reachable", at, detail, address=response.addr,
                           observed_ip=str(addr.ip) if addr else None, asked=asked)
    if response.status == Message.E_DIAL_ERROR:
        seen = _SEEN_FROM.search(response.text)
        ip = parse_ip(seen.group(1)) if seen else None
        return ProbeResult(peer_id, "unreachable", at, detail,
                           observed_ip=str(ip) if ip else None, asked=asked)
    return ProbeResult(peer_id, "inconclusive", at, detail, asked=asked)


async def request_dial_back(host: Host, peer_id: str, addrs: Sequence[str], *,
                            timeout_s: float, max_message_bytes: int = 4096,
                            clock: Callable[[], float] = time.time) -> ProbeResult:
    """Ask a connected peer to dial this node back at ``addrs``; never raises for the peer's
    faults (a malformed answer costs the peer :data:`PROTOCOL_VIOLATION` points)."""
    asked = tuple(addrs)
    if not asked:
        return ProbeResult(peer_id, "inconclusive", clock(), "no TCP address to offer")
    stream: Stream | None = None
    try:
        with trio.fail_after(timeout_s):
            stream = await host.open_stream(peer_id, AUTONAT_PROTOCOL)
            await stream.send_all(encode_dial_request(host.peer_id, asked))
            response = decode_dial_response(await read_frame(stream, max_message_bytes))
            await stream.aclose()
    except RemoteProtocolError as exc:
        host.penalize(peer_id, PROTOCOL_VIOLATION, str(exc))
        return ProbeResult(peer_id, "inconclusive", clock(), f"a malformed answer: {exc}",
                           asked=asked)
    except NetError as exc:
        return ProbeResult(peer_id, "inconclusive", clock(), str(exc), asked=asked)
    except trio.TooSlowError:
        return ProbeResult(peer_id, "inconclusive", clock(),
                           f"no answer within {timeout_s:g} s", asked=asked)
    finally:
        if stream is not None:
            await stream.reset()  # a no-op once closed
    return _result_of(peer_id, response, asked, clock())


# --- the verdict service -----------------------------------------------------------------------


class Reachability:
    """Learns whether peers can dial this node, and keeps the verdict.

    Run it with ``await nursery.start(reachability.run)``: it serves dial-backs to others and,
    in mode "auto", asks a few connected peers at a time, rotating and backing off.

    Args:
        host: the running host.
        mode: "auto" measures; "public" or "private" forces the verdict and asks nobody.
        clock: seconds (wall-clock by default): time stamps in reports, the age of answers, the
            server's rate windows.
        settings: how often and how widely to ask.
        policy: the server's limits.
        addresses: the addresses to offer for dialling (default: the host's listen addresses).
        on_change: called with the new report whenever the verdict changes (from the task
            running :meth:`run` or :meth:`probe`; it must not block).
        serve: answer other peers' requests (``run`` registers the handler).

    Raises:
        InputError: ``mode`` is not one of auto, public, private.
    """

    def __init__(self, host: Host, mode: str = "auto", *,
                 clock: Callable[[], float] = time.time,
                 settings: ReachabilitySettings | None = None,
                 policy: DialBackPolicy | None = None,
                 addresses: Callable[[], Iterable[str]] | None = None,
                 on_change: Callable[[ReachabilityReport], None] | None = None,
                 serve: bool = True) -> None:
        if mode not in get_args(ReachabilityMode):
            raise InputError(f"Reachability must be auto, public or private, not {mode!r}.")
        self._host = host
        self._mode: ReachabilityMode = mode  # type: ignore[assignment]  # checked just above
        self._clock = clock
        self._settings = settings or ReachabilitySettings()
        self._policy = policy or DialBackPolicy()
        self._addresses = addresses
        self._on_change = on_change
        self.server: DialBackServer | None = (
            DialBackServer(host, self._policy, clock=clock) if serve else None)
        """The dial-back server (None when not serving)."""
        self._results: deque[ProbeResult] = deque(maxlen=_MAX_RESULTS)
        self._summary = ProbeSummary()
        self._verdict = self.report().verdict
        self._next_ask: dict[str, float] = {}
        self._backoff: dict[str, float] = {}

    @property
    def mode(self) -> ReachabilityMode:
        return self._mode

    def report(self) -> ReachabilityReport:
        """The verdict now, its reason, and what the probes found."""
        if self._mode != "auto":
            return ReachabilityReport(self._mode, True, FORCED_REASON, self._summary)
        now = self._clock()
        verdict, reason = judge(self._results, now, memory_s=self._settings.memory_s)
        recent = [r for r in reversed(self._results) if now - r.at <= self._settings.memory_s]
        if not recent and not self._host.connected_peers():
            reason = "no peer connected to ask yet"
        observed = tuple(dict.fromkeys(r.observed_ip for r in recent if r.observed_ip))
        reached = (tcp_address(r.address or "") for r in recent if r.outcome == "reachable")
        reachable_at = tuple(dict.fromkeys(a.host_port for a in reached if a is not None))
        return ReachabilityReport(verdict, False, reason, self._summary, observed, reachable_at)

    def own_addresses(self) -> list[str]:
        """The addresses offered to peers for dialling back."""
        texts = self._addresses() if self._addresses is not None else self._host.listen_addrs()
        return dialable_tcp_addrs(texts)

    async def probe(self, peer_id: str) -> ProbeResult:
        """Ask one connected peer to dial this node back now, and count its answer."""
        result = await request_dial_back(
            self._host, peer_id, self.own_addresses(), timeout_s=self._settings.probe_timeout_s,
            max_message_bytes=self._policy.max_message_bytes, clock=self._clock)
        self._record(result)
        return result

    def _record(self, result: ProbeResult) -> None:
        log.info("reachability probe via %s: %s (%s)", result.peer_id, result.outcome,
                 result.detail)
        self._results.append(result)
        s = self._summary
        self._summary = ProbeSummary(
            s.successes + (result.outcome == "reachable"),
            s.failures + (result.outcome == "unreachable"),
            s.inconclusive + (result.outcome == "inconclusive"), result.at)
        report = self.report()
        if report.verdict != self._verdict:
            log.info("reachability: %s (%s)", report.verdict, report.reason)
            self._verdict = report.verdict
            if self._on_change is not None:
                self._on_change(report)

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve dial-backs and, in mode "auto", ask peers, until cancelled."""
        if self.server is not None:
            self.server.register()
        if self._mode != "auto":
            task_status.started()
            await trio.sleep_forever()
        with self._host.watch_connections() as events:
            task_status.started()
            while True:
                await self._round()
                await self._wait(events, self._delay())

    async def _round(self) -> None:
        """Ask the peers that are due, longest-unasked first, a few at once."""
        now = trio.current_time()
        connected = self._host.connected_peers()
        for gone in set(self._next_ask) - set(connected):
            del self._next_ask[gone]
            self._backoff.pop(gone, None)
        due = sorted((p for p in connected if self._next_ask.get(p, -math.inf) <= now),
                     key=lambda p: self._next_ask.get(p, -math.inf))
        chosen = due[:self._settings.peers_per_round]
        async with trio.open_nursery() as nursery:
            for peer_id in chosen:
                nursery.start_soon(self._probe_and_schedule, peer_id)

    async def _probe_and_schedule(self, peer_id: str) -> None:
        result = await self.probe(peer_id)
        retry = self._settings.retry_s
        if result.outcome == "inconclusive":
            wait = self._backoff.get(peer_id, retry / 2) * 2
            self._backoff[peer_id] = min(wait, self._settings.max_backoff_s)
        else:
            self._backoff.pop(peer_id, None)
        self._next_ask[peer_id] = trio.current_time() + self._backoff.get(peer_id, retry)

    def _delay(self) -> float:
        """Seconds until the next round: long once settled, else until a peer is due."""
        if self.report().verdict != "unknown":
            return self._settings.settled_s
        connected = self._host.connected_peers()
        if not connected:
            return self._settings.settled_s  # a connection wakes the loop
        due = min(self._next_ask.get(p, -math.inf) for p in connected)
        return max(0.0, min(due - trio.current_time(), self._settings.settled_s))

    async def _wait(self, events: trio.MemoryReceiveChannel[PeerEvent], delay: float) -> None:
        """Sleep ``delay``, or less if a new peer connects while the verdict is unknown."""
        with trio.move_on_after(delay):
            async for event in events:
                if isinstance(event, PeerConnected) and self.report().verdict == "unknown" \
                        and event.peer_id not in self._next_ask:
                    return
