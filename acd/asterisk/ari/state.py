"""What every part of the Stasis application shares: the router, ARI, its calls and agent legs.

:class:`~acd.asterisk.ari.app.StasisApp` is built in layers, one module per seam, each a class
on top of the one before: this state and its task bookkeeping, the machine's actions as ARI
requests (:mod:`acd.asterisk.ari.commands`), inbound calls and hold
(:mod:`acd.asterisk.ari.inbound`), reconnect and adoption (:mod:`acd.asterisk.ari.adoption`),
and the event loop (:mod:`acd.asterisk.ari.app`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from acd.asterisk.ari.calls import AgentLeg, AriCall, retry
from acd.asterisk.ari.channel import TRANSFER_CONTEXT
from acd.asterisk.ari.client import AriClient, AriConflict, AriError
from acd.asterisk.ari.models import Channel, Event
from acd.runtime.ivrsetup import IvrSetup
from acd.runtime.router_service import RouterService
from ivr.channel import CallerHungUp

log = logging.getLogger(__name__)

#: Dialplan context the router's overflow targets continue in (``voicemail``, ``callback``).
OVERFLOW_CONTEXT = "acd-stasis-overflow"


class OutboundLegs(Protocol):
    """Legs the engine originates to customers (callbacks), by their first Stasis argument."""

    def stasis_start(self, channel: Channel, args: tuple[str, ...]) -> None:
        """An originated leg was answered and entered Stasis (``args`` after the first)."""

    def channel_gone(self, channel_id: str, cause: int) -> None:
        """A channel the application does not know ended (maybe an unanswered leg)."""


class AppState:
    """The Stasis application's shared state and its call tasks."""

    #: The PBX this application's client speaks to (multi-PBX setups): the calls it queues
    #: arrived there, and their offers carry dial strings from there. None: the one PBX.
    pbx: str | None = None

    def __init__(
        self,
        service: RouterService,
        client: AriClient,
        setup: IvrSetup,
        app: str = "acd",
        *,
        flow: str = "main",
        moh_class: str = "default",
        overflow_context: str = OVERFLOW_CONTEXT,
        transfer_context: str = TRANSFER_CONTEXT,
        callback_timeout_s: float = 6.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.service = service
        self.client = client
        self.setup = setup
        self.app = app
        self.flow = flow
        self.moh_class = moh_class
        self.overflow_context = overflow_context
        self.transfer_context = transfer_context
        self.callback_timeout_s = callback_timeout_s
        self.wall_clock = wall_clock
        #: Callers in Stasis by channel id (= the router's call id); agent legs by channel id.
        self.calls: dict[str, AriCall] = {}
        self.legs: dict[str, AgentLeg] = {}
        #: Callers gone while a recording of theirs (a voicemail) was still being made: its
        #: report comes after the hangup and must still reach the waiting IVR.
        self._recording_after_hangup: dict[str, AriCall] = {}
        #: Outbound leg handlers by first Stasis argument (``callback``: ari/outbound.py).
        self.outbound: dict[str, OutboundLegs] = {}
        #: Set once the first connection's adoption is done; tests and the service wait on it.
        self.ready = asyncio.Event()
        self.reconciliations = 0
        #: Times the event stream failed and was opened again, and the last event handled.
        self.restarts = 0
        self.last_event: Event | None = None
        self._restart_rng = random.Random(0)
        self._failures = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def _spawn(
        self, call: AriCall | None, coro: Coroutine[Any, Any, object]
    ) -> asyncio.Task[None]:
        task = asyncio.create_task(self._guard(coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if call is not None:
            call.tasks.add(task)
            task.add_done_callback(call.tasks.discard)
        return task

    @staticmethod
    async def _guard(coro: Coroutine[Any, Any, object]) -> None:
        try:
            await coro
        except CallerHungUp:
            pass
        except AriError as exc:
            log.warning("ari call task stopped: %s", exc)
        except Exception:  # a task's bug is logged; the call's events still clean it up
            log.exception("ari call task failed")

    async def idle(self, timeout: float = 5.0) -> None:
        """Wait until no call task is running (for tests and orderly shutdown)."""
        async with asyncio.timeout(timeout):
            while self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _create_bridge(self, kind: str, prefix: str, call: AriCall) -> str:
        bridge_id = prefix + call.next_id("b").removeprefix("acd-b-")
        # A conflict means an earlier, timed-out try got through: the bridge is ours already.
        with contextlib.suppress(AriConflict):
            await retry(lambda: self.client.create_bridge(kind, name=bridge_id,
                                                          bridge_id=bridge_id))
        return bridge_id
