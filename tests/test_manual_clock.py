"""The manual clock that service, AGI and ARI tests drive instead of sleeping."""

from __future__ import annotations

import asyncio

import pytest

from acd.testing.clock import ManualClock


def test_advance_runs_due_callbacks_in_order_at_their_instants() -> None:
    """Callbacks run by instant (then scheduling order), each seeing its own instant as now."""
    clock = ManualClock(100.0)
    seen: list[tuple[str, float]] = []
    clock.call_at(105.0, lambda: seen.append(("b", clock.now())))
    clock.call_at(102.0, lambda: seen.append(("a", clock.now())))
    clock.call_at(105.0, lambda: seen.append(("c", clock.now())))
    clock.call_at(110.0, lambda: seen.append(("late", clock.now())))
    assert clock.advance(5.0) == 3
    assert seen == [("a", 102.0), ("b", 105.0), ("c", 105.0)]
    assert clock.now() == 105.0 and clock.next_at() == 110.0


def test_cancelled_callback_never_runs() -> None:
    """A cancelled timer is skipped and no longer reported as the next instant."""
    clock = ManualClock()
    ran: list[str] = []
    handle = clock.call_at(1.0, lambda: ran.append("cancelled"))
    clock.call_at(2.0, lambda: ran.append("kept"))
    handle.cancel()
    assert clock.next_at() == 2.0
    clock.advance(3.0)
    assert ran == ["kept"]


def test_callbacks_scheduled_while_advancing_run_within_the_span() -> None:
    """A callback that schedules another inside the span sees it run in the same advance."""
    clock = ManualClock()
    ran: list[float] = []

    def first() -> None:
        ran.append(clock.now())
        clock.call_at(clock.now() + 1.0, lambda: ran.append(clock.now()))
        clock.call_at(clock.now() + 10.0, lambda: ran.append(clock.now()))

    clock.call_at(1.0, first)
    assert clock.advance(5.0) == 2
    assert ran == [1.0, 2.0]
    assert clock.next_at() == 11.0


def test_past_instant_runs_at_the_next_advance_and_time_never_goes_back() -> None:
    """A callback for an instant already past runs at advance(0); going back is refused."""
    clock = ManualClock(50.0)
    ran: list[float] = []
    clock.call_at(10.0, lambda: ran.append(clock.now()))
    assert ran == []
    assert clock.advance(0) == 1
    assert ran == [50.0]
    with pytest.raises(ValueError):
        clock.advance(-1.0)


async def test_advance_and_settle_lets_started_tasks_run() -> None:
    """Tasks a callback starts have run by the time advance_and_settle returns."""
    clock = ManualClock()
    done = asyncio.Event()

    async def work() -> None:
        await asyncio.sleep(0)
        done.set()

    tasks: list[asyncio.Task[None]] = []
    clock.call_at(3.0, lambda: tasks.append(asyncio.create_task(work())))
    assert await clock.advance_and_settle(3.0) == 1
    assert done.is_set() and tasks[0].done()
