"""Callbacks over ARI: ring the customer, run the ``callback`` flow, queue the call.

:class:`AriCallbacks` is the dialler's :class:`~acd.callbacks.dialler.Outbound` for the
Stasis application. It originates to the customer through the configured trunk template
(``PJSIP/{number}@trunk``) into Stasis with ``appArgs=callback,<task id>`` and a channel id of
its own (``cb-<task>-<attempt>-<n>``). When the customer answers, the leg's StasisStart reaches
this module through :attr:`StasisApp.outbound`; the customer hears the ``callback`` flow in
the task's language and, on "1", is held and offered like an inbound caller, with the task's
priority raised by the flow. A leg destroyed unanswered is no answer (cause 19, 18) or busy
(17); the dialler retries it later.

Channel ids do not start with ``acd-``, so a callback waiting in the queue is adopted after
a cold start like any caller (its queue, language and raised priority are on the channel).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import count

from acd.asterisk.ari.app import StasisApp
from acd.asterisk.ari.calls import AriCall, QueueSlot, quietly, retry
from acd.asterisk.ari.channel import AriIvrChannel
from acd.asterisk.ari.client import AriConflict, AriError
from acd.asterisk.ari.models import Channel
from acd.callbacks.dialler import AttemptResult, dial_string
from acd.runtime.records import StoredCallback
from ivr.channel import run_flow
from ivr.engine import CallContext

log = logging.getLogger(__name__)

#: First Stasis argument of an answered callback leg.
CALLBACK_ARG = "callback"
#: Prefix of the customer legs the engine originates.
CALLBACK_PREFIX = "cb-"
#: Q.850 causes of an unanswered customer leg.
_CAUSES = {17: AttemptResult.BUSY, 18: AttemptResult.NO_ANSWER, 19: AttemptResult.NO_ANSWER,
           21: AttemptResult.BUSY}


@dataclass
class _Attempt:
    callback: StoredCallback
    result: asyncio.Future[AttemptResult]
    answered: bool = False
    call: AriCall | None = None


@dataclass(frozen=True)
class OutboundOptions:
    """How customer legs are dialled and how long an attempt may take."""

    trunk: str = "PJSIP/{number}@trunk"
    caller_id: str | None = None
    ring_timeout_s: float = 30.0
    #: Longest the callback flow may take after the answer before the attempt counts as failed.
    flow_timeout_s: float = 120.0
    flow: str = "callback"


@dataclass
class OutboundStats:
    """Counters of customer legs."""

    originated: int = 0
    answered: int = 0
    refused_legs: int = 0
    results: dict[str, int] = field(default_factory=dict)


class AriCallbacks:
    """Calls customers back through the Stasis application (registers itself on ``app``)."""

    def __init__(
        self,
        app: StasisApp,
        options: OutboundOptions | None = None,
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.options = options or OutboundOptions()
        self.wall_clock = wall_clock
        self.stats = OutboundStats()
        #: Attempts in progress by customer channel id.
        self.attempts: dict[str, _Attempt] = {}
        self._seq = count(1)
        self._tasks: set[asyncio.Task[bool]] = set()
        app.outbound[CALLBACK_ARG] = self

    # ------------------------------------------------------------ the dialler's side

    async def call_back(self, callback: StoredCallback) -> AttemptResult:
        """Ring the customer and wait until the attempt is decided (queued, declined, ...)."""
        try:
            endpoint = dial_string(self.options.trunk, callback.task.number)
        except ValueError:
            return AttemptResult.INVALID
        if self.options.flow not in self.app.setup.flows:
            log.error("no %r flow is loaded; callbacks cannot run", self.options.flow)
            return AttemptResult.FAILED
        channel_id = f"{CALLBACK_PREFIX}{callback.id}-{callback.attempts}-{next(self._seq)}"
        future: asyncio.Future[AttemptResult] = asyncio.get_running_loop().create_future()
        attempt = _Attempt(callback, future)
        self.attempts[channel_id] = attempt
        try:
            try:
                await retry(lambda: self.app.client.originate(
                    endpoint,
                    app=self.app.app,
                    app_args=[CALLBACK_ARG, str(callback.id)],
                    caller_id=self.options.caller_id,
                    timeout=max(1, round(self.options.ring_timeout_s)),
                    channel_id=channel_id,
                ))
            except AriConflict:
                pass  # our channel id exists: an earlier, timed-out try got through
            except AriError as exc:
                log.warning("callback originate for task %d failed: %s", callback.id, exc)
                return self._count(AttemptResult.FAILED)
            self.stats.originated += 1
            budget = self.options.ring_timeout_s + self.options.flow_timeout_s + 10.0
            try:
                result = await asyncio.wait_for(asyncio.shield(future), budget)
            except TimeoutError:
                log.warning("callback attempt for task %d undecided after %.0f s",
                            callback.id, budget)
                await quietly(lambda: self.app.client.hangup(channel_id))
                result = AttemptResult.FAILED
            return self._count(result)
        except asyncio.CancelledError:
            if not attempt.answered:
                # The dialler stops: do not leave the customer's phone ringing for nobody.
                with contextlib.suppress(AriError):
                    await asyncio.shield(self.app.client.hangup(channel_id))
            raise
        finally:
            self.attempts.pop(channel_id, None)

    def _count(self, result: AttemptResult) -> AttemptResult:
        self.stats.results[result.value] = self.stats.results.get(result.value, 0) + 1
        return result

    # ------------------------------------------------------------ the Stasis side

    def stasis_start(self, channel: Channel, args: tuple[str, ...]) -> None:
        """The customer answered: run the callback flow on the leg (unknown legs are hung up)."""
        attempt = self.attempts.get(channel.id)
        if attempt is None or args != (str(attempt.callback.id),) or attempt.answered:
            self.stats.refused_legs += 1
            task = asyncio.create_task(quietly(lambda: self.app.client.hangup(channel.id)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        attempt.answered = True
        self.stats.answered += 1
        attempt.call = self.app.adopt_outbound(
            channel.id, attempt.callback.task.number,
            lambda call: self._converse(call, attempt))

    def channel_gone(self, channel_id: str, cause: int) -> None:
        """A customer leg ended before it was answered: busy or no answer."""
        attempt = self.attempts.get(channel_id)
        if attempt is not None and not attempt.answered and not attempt.result.done():
            attempt.result.set_result(_CAUSES.get(cause, AttemptResult.NO_ANSWER))

    async def _converse(self, call: AriCall, attempt: _Attempt) -> QueueSlot | None:
        """The callback flow in the task's language; a queue outcome raises the priority."""
        task = attempt.callback.task
        slot: QueueSlot | None = None
        try:
            channel = AriIvrChannel(self.app.client, call, self.app.setup, self.app.service,
                                    transfer_context=self.app.transfer_context)
            ctx = CallContext(task.number, self.wall_clock(), country=task.country,
                              language=task.language, variables={"queue": task.queue})
            flow = self.app.setup.flows[self.options.flow]
            outcome = await asyncio.wait_for(run_flow(flow, ctx, channel),
                                             self.options.flow_timeout_s)
            if not call.hung_up:
                # The flow's raise (priority_add) comes on top of the task's own priority.
                slot = QueueSlot.from_outcome(outcome, self.wall_clock(),
                                              base_priority=task.priority,
                                              customer_id=task.customer_id)
        except TimeoutError:
            await quietly(lambda: self.app.client.hangup(call.call_id))
        finally:
            if not attempt.result.done():
                result = AttemptResult.QUEUED if slot is not None else AttemptResult.DECLINED
                attempt.result.set_result(result)
        return slot
