"""A clock that only moves when the test says so, for the router service and its shells.

``RouterService(center, clock=ManualClock())`` reads the router's time from this clock and
schedules the router's timers on it, so a test goes past a ring timeout, a wrap-up or a
queue's maximum wait with ``clock.advance(seconds)`` instead of sleeping, and the test's
config keeps its real values::

    clock = ManualClock()
    service = RouterService(center, clock)
    ...
    clock.advance(15.0)                       # the ring timer fires, in order, right here
    await clock.advance_and_settle(30.0)      # and let the tasks the commands started run

Callbacks run on the caller's thread inside :meth:`ManualClock.advance`, in the order of their
instants (scheduling order for equal instants), with :meth:`ManualClock.now` reading each
callback's own instant while it runs. A callback scheduled for an instant already past runs at
the next ``advance`` (``advance(0)`` runs only those).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable

__all__ = ["ManualClock", "ManualTimer"]


class ManualTimer:
    """A callback scheduled on a :class:`ManualClock`; ``cancel()`` keeps it from running."""

    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        """Do not run the callback (no effect once it has run)."""
        self.cancelled = True


class ManualClock:
    """Monotonic time that advances only through :meth:`advance`; a ``Clock`` for the service."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._heap: list[tuple[float, int, ManualTimer]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        """The clock's current time, in seconds."""
        return self._now

    def call_at(self, when: float, callback: Callable[[], None]) -> ManualTimer:
        """Run ``callback`` when :meth:`advance` reaches ``when``."""
        timer = ManualTimer(when, callback)
        heapq.heappush(self._heap, (when, next(self._seq), timer))
        return timer

    def next_at(self) -> float | None:
        """The instant of the next callback still scheduled, if any."""
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def advance(self, seconds: float) -> int:
        """Move the clock ``seconds`` on, running every callback due on the way (including
        those the callbacks schedule within the span); return how many ran."""
        if seconds < 0:
            raise ValueError(f"a monotonic clock cannot go back {-seconds} s")
        target = self._now + seconds
        ran = 0
        while (when := self.next_at()) is not None and when <= target:
            _, _, timer = heapq.heappop(self._heap)
            self._now = max(self._now, when)
            timer.cancelled = True  # a cancel() from inside the callback changes nothing
            timer.callback()
            ran += 1
        self._now = target
        return ran

    async def settle(self, rounds: int = 20) -> None:
        """Give the event loop ``rounds`` turns, so the tasks that the callbacks started (an
        owner carrying out a command) run as far as they can without waiting on I/O."""
        for _ in range(rounds):
            await asyncio.sleep(0)

    async def advance_and_settle(self, seconds: float, rounds: int = 20) -> int:
        """:meth:`advance`, then :meth:`settle`; return how many callbacks ran."""
        ran = self.advance(seconds)
        await self.settle(rounds)
        return ran
