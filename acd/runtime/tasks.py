"""Stopping a background task at shutdown: cancel it and wait until it has really ended.

The shells and the service each run long-lived tasks (a session's reader, the dialler, the
summary mailer, the ARI application, the wallboard's ticker). Stopping one must not return
while it still runs, and must not eat the cancellation of whoever is stopping it: a stop
cancelled from outside (a shutdown timeout, ``asyncio.timeout``) has to raise, or the
caller's own ``finally`` and timeouts stop working.
"""

from __future__ import annotations

import asyncio


async def cancel_and_wait(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait until it has ended; its ``CancelledError`` is absorbed, but a
    cancellation of the caller itself and any other error the task raised propagate."""
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # we are being cancelled ourselves: never swallow that
