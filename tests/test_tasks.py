"""Stopping a background task: ``cancel_and_wait`` cancels, waits for the task's clean-up, and
never eats the stopper's own cancellation or the task's other errors."""

from __future__ import annotations

import asyncio

import pytest

from acd.runtime.tasks import cancel_and_wait


async def _until_cancelled(steps: list[str], cleanup: asyncio.Event | None = None) -> None:
    """Runs until cancelled; its clean-up takes extra turns of the loop (or waits on
    ``cleanup``) before it notes that it ended."""
    steps.append("started")
    try:
        await asyncio.Event().wait()
    finally:
        steps.append("cleaning up")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        if cleanup is not None:
            await cleanup.wait()
        steps.append("ended")


async def test_it_cancels_the_task_and_returns_only_after_its_clean_up() -> None:
    """The task is cancelled, its clean-up (several turns of the loop) has run to the end
    when the helper returns, and the task's own cancellation is not raised to the stopper."""
    steps: list[str] = []
    task = asyncio.create_task(_until_cancelled(steps))
    await asyncio.sleep(0)
    assert steps == ["started"]
    await cancel_and_wait(task)
    assert steps == ["started", "cleaning up", "ended"]
    assert task.cancelled()


async def test_a_task_that_already_ended_is_left_as_it_is() -> None:
    """A task that finished on its own is awaited and nothing is raised."""
    steps: list[str] = []

    async def quick() -> None:
        steps.append("done")

    task = asyncio.create_task(quick())
    await task
    await cancel_and_wait(task)
    assert steps == ["done"] and not task.cancelled()


async def test_the_stoppers_own_cancellation_is_raised() -> None:
    """A stopper cancelled while it waits for the task's clean-up ends cancelled itself
    (the task is cancelled with it): the cancellation is not swallowed."""
    steps: list[str] = []
    slow_cleanup = asyncio.Event()
    task = asyncio.create_task(_until_cancelled(steps, slow_cleanup))
    await asyncio.sleep(0)
    stopper = asyncio.create_task(cancel_and_wait(task))
    for _ in range(5):  # the stopper is now waiting on the task's clean-up
        await asyncio.sleep(0)
    assert steps == ["started", "cleaning up"] and not stopper.done()
    stopper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopper
    assert stopper.cancelled()
    assert task.cancelled() and steps == ["started", "cleaning up"]


async def test_a_timeout_around_the_stop_still_fires() -> None:
    """``asyncio.timeout`` around a stop whose clean-up hangs raises ``TimeoutError``, which
    only works because the helper re-raises the cancellation the timeout sent it."""
    steps: list[str] = []
    task = asyncio.create_task(_until_cancelled(steps, asyncio.Event()))
    await asyncio.sleep(0)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await cancel_and_wait(task)
    assert task.cancelled() and steps == ["started", "cleaning up"]


async def test_an_error_of_the_task_is_raised_to_the_stopper() -> None:
    """An error the task raises while it is being stopped reaches the stopper (only the
    task's own ``CancelledError`` is absorbed)."""

    async def fails_on_cancel() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise RuntimeError("the clean-up failed") from None

    task = asyncio.create_task(fails_on_cancel())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="the clean-up failed"):
        await cancel_and_wait(task)
