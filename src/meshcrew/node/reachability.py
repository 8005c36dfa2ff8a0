"""Whether this node is publicly reachable, and what follows from it.

A publicly reachable node serves as a relay for others; one that is not keeps reservations on
relays and announces its circuit addresses. ``--reachability public|private`` settles it;
``auto`` (the default) asks connected peers to dial back (:mod:`meshcrew.net.reachability`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from meshcrew.net import Host
from meshcrew.net.reachability import Reachability, ReachabilityReport

if TYPE_CHECKING:
    from trio_typing import TaskStatus

log = logging.getLogger("meshcrew.node")

MODES = ("auto", "public", "private")


@dataclass(frozen=True, slots=True)
class Verdict:
    """``public``, ``private`` or ``unknown``, and why."""

    verdict: str
    reason: str


class ReachabilityWatch:
    """Runs the reachability check and tells the host's relay parts the verdict.

    Args:
        host: the running host.
        mode: ``auto``, ``public`` or ``private``.
    """

    def __init__(self, host: Host, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"reachability must be one of {', '.join(MODES)}, not {mode!r}")
        self._host = host
        self._check = Reachability(host, mode, on_change=self._changed)
        self._current = describe(self._check.report())

    def verdict(self) -> Verdict:
        self._current = describe(self._check.report())
        return self._current

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._apply(self._current)
        await self._check.run(task_status=task_status)

    def _changed(self, report: ReachabilityReport) -> None:
        self._apply(describe(report))

    def _apply(self, verdict: Verdict) -> None:
        self._current = verdict
        self._host.reach.set_public(verdict.verdict == "public")
        log.info("reachability: %s (%s)", verdict.verdict, verdict.reason)


def describe(report: ReachabilityReport) -> Verdict:
    """The verdict and its reason, as ``status`` shows them."""
    return Verdict(str(report.verdict), report.reason)
