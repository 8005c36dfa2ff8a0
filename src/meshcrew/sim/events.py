"""The discrete-event loop: callbacks run at simulated times, in time order.

Time is a float of simulated seconds from the start of the run; nothing here reads a clock.
Events at the same time run in the order they were scheduled, so a run is a pure function of
its inputs and its seeded random streams.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any

Callback = Callable[..., None]


class EventLoop:
    """A heap of ``(time, order, callback, args)``; :meth:`run` pops and calls them in order."""

    def __init__(self) -> None:
        self.now = 0.0
        self.processed = 0
        self._heap: list[tuple[float, int, Callback, tuple[Any, ...]]] = []
        self._order = 0

    def at(self, when: float, callback: Callback, *args: Any) -> None:
        """Call ``callback(*args)`` at simulated time ``when`` (now, if ``when`` is past)."""
        self._order += 1
        heapq.heappush(self._heap, (max(when, self.now), self._order, callback, args))

    def after(self, delay: float, callback: Callback, *args: Any) -> None:
        """Call ``callback(*args)`` ``delay`` simulated seconds from now."""
        self.at(self.now + delay, callback, *args)

    def __len__(self) -> int:
        return len(self._heap)

    def run(self, until: float, *, stop: Callable[[], bool] | None = None,
            poll_s: float = 60.0) -> float:
        """Run events up to time ``until``, or until ``stop()`` is true.

        ``stop`` is asked at most once per ``poll_s`` of simulated time (it may be costly).
        Returns the time the run stopped at.
        """
        heap = self._heap
        pop = heapq.heappop
        next_poll = self.now + poll_s
        while heap and heap[0][0] <= until:
            when, _, callback, args = pop(heap)
            self.now = when
            callback(*args)
            self.processed += 1
            if stop is not None and when >= next_poll:
                next_poll = when + poll_s
                if stop():
                    return when
        self.now = max(self.now, until)
        return self.now
