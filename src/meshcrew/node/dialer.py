"""Keeping in touch: redial members from the peer book with exponential backoff.

The node wants a connection to every member of its spaces (and to every ``--bootstrap``
address). The :class:`Dialer` tries those it is not connected to, at most ``max_dials`` at once;
after a failure it waits ``redial_min_s``, doubling after each further failure up to
``redial_max_s`` (with jitter, so nodes that lost a peer together do not redial together). A
connection, from either side, resets the wait. Peers heard of on the LAN or in an invite code
are dialled at once.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import trio

from meshcrew.errors import NetError
from meshcrew.net import Host
from meshcrew.node.peerbook import PeerBook

log = logging.getLogger("meshcrew.node")

_TICK_S = 1.0


def peer_of(addr: str) -> str | None:
    """The peer id an address ends with (``.../p2p/<peer id>``), or None."""
    head, sep, peer_id = addr.rpartition("/p2p/")
    return peer_id if sep and head and peer_id and "/" not in peer_id else None


def backoff_s(failures: int, *, low: float, high: float, jitter: float) -> float:
    """The wait after ``failures`` failed dials in a row: doubling from ``low``, at most ``high``,
    scaled by ``jitter`` (between 0.5 and 1)."""
    return min(high, low * 2.0 ** max(0, failures - 1)) * jitter


@dataclass(slots=True)
class _Attempts:
    failures: int = 0
    due: float = 0.0


class Dialer:
    """Dials wanted peers it is not connected to.

    Args:
        host: the running host.
        book: where addresses come from (and successful addresses go).
        wanted: the peer ids to stay connected to (members of this member's spaces).
        low_s, high_s: the first and the longest wait between redials of one peer.
        max_dials: most dials at once.
    """

    def __init__(self, host: Host, book: PeerBook, wanted: Callable[[], Iterable[str]], *,
                 low_s: float, high_s: float, max_dials: int) -> None:
        self._host = host
        self._book = book
        self._wanted = wanted
        self._low = low_s
        self._high = high_s
        self._limit = trio.CapacityLimiter(max_dials)
        self._attempts: dict[str, _Attempts] = {}
        self._dialling: set[str] = set()
        self._pinned: set[str] = set()
        self._wake = trio.Event()
        self.relay_delay_s = 1.0
        """Head start of direct addresses before circuits through relays are dialled too."""

    def pin(self, addrs: Iterable[str], *, source: str) -> None:
        """Always keep dialling these addresses' peers (``--bootstrap``)."""
        for addr in addrs:
            peer_id = peer_of(addr)
            if peer_id is not None:
                self._book.learn(peer_id, [addr], source=source)
                self._pinned.add(peer_id)
        self.wake()

    def connected(self, peer_id: str) -> None:
        """A connection opened: the next disconnection may be redialled at once."""
        self._attempts.pop(peer_id, None)

    def failures(self, peer_id: str) -> int:
        """How many dials of ``peer_id`` failed in a row (0 since it was last connected)."""
        attempt = self._attempts.get(peer_id)
        return 0 if attempt is None else attempt.failures

    def wake(self) -> None:
        """Look for peers to dial now rather than at the next tick."""
        self._wake.set()

    async def dial(self, peer_id: str, addrs: Iterable[str] = (), *,
                   source: str = "connection") -> bool:
        """Dial a peer at the given addresses, then at its known ones; True once connected.

        ``source`` says where the given addresses came from (``invite``, ``mdns``...), for the
        peer book.
        """
        addrs = list(addrs)
        if addrs:
            self._book.learn(peer_id, addrs, source=source)
        if peer_id in self._host.connected_peers():
            return True
        known = self._book.get(peer_id)
        tried = list(dict.fromkeys([*addrs, *(known.addrs if known else [])]))
        async with self._limit:
            won = await self._race(peer_id, tried)
        if won is not None:
            self._book.learn(peer_id, [won], source=source)  # newest first now
            self._attempts.pop(peer_id, None)
            return True
        attempt = self._attempts.setdefault(peer_id, _Attempts())
        attempt.failures += 1
        attempt.due = trio.current_time() + backoff_s(
            attempt.failures, low=self._low, high=self._high, jitter=random.uniform(0.5, 1.0))
        return False

    async def _race(self, peer_id: str, addrs: list[str]) -> str | None:
        """Dial direct addresses one by one and, after a head start of ``relay_delay_s`` (or as
        soon as they all failed), circuits through relays; the first connection wins and the
        other attempts are cancelled. Returns the address that connected, or None."""
        direct = [a for a in addrs if "/p2p-circuit" not in a]
        relayed = [a for a in addrs if "/p2p-circuit" in a]
        won: list[str] = []
        direct_done = trio.Event()

        async def attempt(batch: list[str], scope: trio.CancelScope) -> None:
            for addr in batch:
                try:
                    await self._host.connect(addr)
                except NetError as exc:
                    log.debug("dialling %s at %s failed: %s", peer_id, addr, exc)
                    continue
                won.append(addr)
                scope.cancel()
                return

        async def directly(scope: trio.CancelScope) -> None:
            try:
                await attempt(direct, scope)
            finally:
                direct_done.set()

        async def through_relays(scope: trio.CancelScope) -> None:
            with trio.move_on_after(self.relay_delay_s if direct else 0):
                await direct_done.wait()
            await attempt(relayed, scope)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(directly, nursery.cancel_scope)
            if relayed:
                nursery.start_soon(through_relays, nursery.cancel_scope)
        return won[0] if won else None

    async def run(self) -> None:
        """Redial wanted peers whose wait is over, until cancelled."""
        async with trio.open_nursery() as nursery:
            while True:
                connected = set(self._host.connected_peers())
                now = trio.current_time()
                for peer_id in {*self._wanted(), *self._pinned} - connected - self._dialling:
                    entry = self._book.get(peer_id)
                    attempt = self._attempts.get(peer_id)
                    if (entry is None or not entry.addrs or self._host.scores.is_banned(peer_id)
                            or (attempt is not None and attempt.due > now)):
                        continue
                    self._dialling.add(peer_id)
                    nursery.start_soon(self._dial_once, peer_id)
                with trio.move_on_after(_TICK_S):
                    await self._wake.wait()
                self._wake = trio.Event()

    async def _dial_once(self, peer_id: str) -> None:
        try:
            await self.dial(peer_id)
        finally:
            self._dialling.discard(peer_id)
