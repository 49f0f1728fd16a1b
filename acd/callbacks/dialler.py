"""The callback dialler: calls customers back for stored callback tasks, paced and retried.

Callback tasks (voicemail after hours, accepted callback offers) wait in the
:class:`~acd.runtime.records.CallbackStore`. :class:`CallbackDialer` picks the due ones and
hands each to an :class:`Outbound` (ARI: :mod:`acd.asterisk.ari.outbound`; AMI for AGI-only
deployments: :mod:`acd.asterisk.ami`), which rings the customer, runs the ``callback`` flow and
queues the call with raised priority when the customer presses 1. The shells implement
:class:`Outbound` and this module never imports them: :mod:`acd.service.dialler` plugs the one
the settings choose into the dialler.

Rules, in the order they are applied to each due task:

- the number must be a plain E.164 number (anything else fails the task at once: it is
  never put into a dial string);
- the task's queue must be open (business hours of the ``main`` flow, in the site's zone,
  holidays of the task's country); a closed queue defers the task to its next opening;
- pacing: the estimated wait of the customer's call (its queue, language and country, from
  the router's live state) must be below ``max_ewt_s``: zero while an agent who may take it
  is ready; infinite when no logged-in agent could, so nobody is called back into it;
- at most ``concurrency`` attempts run at once.

An attempt that reaches the customer and queues the call ends the task (``done``). No
answer, busy, a decline or a failure to dial is retried ``retry_delay_s`` later, until
``max_attempts`` attempts have been made (``failed``). Every state change is committed at
once, so tasks survive a restart; attempts cut short by a stop are open again at the next
start (:meth:`CallbackStore.recover`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from typing import Protocol

from acd.core.dialstring import dial_string_problem
from acd.runtime.ivrsetup import IvrSetup
from acd.runtime.records import CallbackStore, StoredCallback
from ivr.hours import OpenState

log = logging.getLogger(__name__)

#: What a callback number must look like before it goes anywhere near a dial string.
E164 = re.compile(r"\+[1-9][0-9]{5,14}")
#: The longest number E164 admits: a template that fits the grammar with it fits with any.
_LONGEST_NUMBER = "+123456789012345"


class AttemptResult(StrEnum):
    """How one attempt to call a customer back ended."""

    QUEUED = "queued"  # reached, accepted, queued with raised priority: the task is done
    DECLINED = "declined"  # answered but did not accept (or hung up in the flow)
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"  # could not dial (trunk, ARI/AMI error, no result in time)
    INVALID = "invalid"  # the number cannot be dialled: never retried


class Outbound(Protocol):
    """A telephony shell that can call a customer back (ARI or AMI)."""

    async def call_back(self, callback: StoredCallback) -> AttemptResult:
        """Ring the customer, run the callback flow, queue on acceptance; say how it ended."""


def _fill(template: str, number: str) -> str:
    return template.replace("{number}", number).replace("{digits}", number[1:])


def trunk_problem(template: str) -> str | None:
    """Why ``template`` is not a trunk template, or None: it must hold ``{number}`` (E.164)
    or ``{digits}`` (no plus) and, filled in, be a dial string of :mod:`acd.core.dialstring`,
    the grammar every driver dials with."""
    if "{number}" not in template and "{digits}" not in template:
        return "the trunk must contain {number} or {digits}, such as 'PJSIP/{number}@trunk'"
    why = dial_string_problem(_fill(template, _LONGEST_NUMBER))
    return None if why is None else f"filled with a number, {why}"


def dial_string(template: str, number: str) -> str:
    """The trunk template filled with a checked E.164 number; ValueError for anything else."""
    if not E164.fullmatch(number):
        raise ValueError(f"not an E.164 number: {number!r}")
    why = trunk_problem(template)
    if why is not None:
        raise ValueError(f"not a trunk template such as 'PJSIP/{{number}}@trunk' "
                         f"({why}): {template!r}")
    return _fill(template, number)


@dataclass(frozen=True)
class DialPolicy:
    """How the dialler paces and retries callbacks."""

    retry_delay_s: float = 900.0
    max_attempts: int = 3
    concurrency: int = 2
    #: Dial only while the queue's estimated wait is below this (None: no pacing).
    max_ewt_s: float | None = 120.0
    poll_interval_s: float = 5.0
    #: Due tasks read per poll (the rest wait for the next poll).
    batch: int = 100


@dataclass
class DialStats:
    """Counters of the dialler, for logs and tests."""

    attempts: int = 0
    results: dict[str, int] = field(default_factory=dict)
    deferred_closed: int = 0
    held_by_pacing: int = 0


class CallbackDialer:
    """Picks due callback tasks and runs attempts on an :class:`Outbound`, within the policy."""

    def __init__(
        self,
        store: CallbackStore,
        outbound: Outbound,
        policy: DialPolicy | None = None,
        *,
        ewt: Callable[[str, str, str], float] | None = None,
        hours: Callable[[str, float, str], OpenState] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.outbound = outbound
        self.policy = policy or DialPolicy()
        self.ewt = ewt
        self.hours = hours
        self.clock = clock
        self.stats = DialStats()
        #: Attempts running now, by task id.
        self.in_flight: dict[int, asyncio.Task[AttemptResult]] = {}
        self._wake = asyncio.Event()

    # ------------------------------------------------------------------ decisions

    def plan(self, now: float) -> list[StoredCallback]:
        """The due tasks to dial now; defers those whose queue is closed, fails bad numbers."""
        free = self.policy.concurrency - len(self.in_flight)
        if free <= 0:
            return []
        chosen: list[StoredCallback] = []
        for cb in self.store.due(now, self.policy.batch):
            if len(chosen) >= free:
                break
            if cb.id in self.in_flight:
                continue
            task = cb.task
            if not E164.fullmatch(task.number):
                self._give_up(cb, now)
                continue
            if self.hours is not None:
                state = self.hours(task.queue, now, task.country)
                if not state.open:
                    self.stats.deferred_closed += 1
                    # Closed until `until`; never defer into the past or forever.
                    self.store.defer(cb.id, max(now + 1.0, min(state.until, now + 86_400)),
                                     now)
                    continue
            limit = self.policy.max_ewt_s
            if self.ewt is not None and limit is not None \
                    and self.ewt(task.queue, task.language, task.country) >= limit:
                self.stats.held_by_pacing += 1
                continue
            chosen.append(cb)
        return chosen

    def _give_up(self, cb: StoredCallback, now: float) -> None:
        log.warning("callback task %d has an undiallable number; giving up", cb.id)
        self.store.finish_attempt(cb.id, AttemptResult.INVALID.value, now, done=False,
                                  retry_at=None)
        self._count(AttemptResult.INVALID)

    def retry_at(self, cb: StoredCallback, result: AttemptResult, now: float) -> float | None:
        """When to try again after ``result`` (None: never, the task is done or failed)."""
        if result in (AttemptResult.QUEUED, AttemptResult.INVALID):
            return None
        if cb.attempts >= self.policy.max_attempts:
            return None
        return now + self.policy.retry_delay_s

    # ------------------------------------------------------------------ running

    def start_due(self) -> list[int]:
        """Start an attempt for every task :meth:`plan` picks; return their ids."""
        now = self.clock()
        started = []
        for cb in self.plan(now):
            claimed = self.store.start_attempt(cb.id, now)
            if claimed is None:
                continue  # someone else took it (a second engine on the same database)
            self.stats.attempts += 1
            task = asyncio.get_running_loop().create_task(self._attempt(claimed))
            self.in_flight[claimed.id] = task
            task.add_done_callback(partial(self._done, claimed.id))
            started.append(claimed.id)
        return started

    def _done(self, task_id: int, _task: asyncio.Task[AttemptResult]) -> None:
        self.in_flight.pop(task_id, None)
        self._wake.set()  # a free slot: look for more work without waiting a whole poll

    async def _attempt(self, cb: StoredCallback) -> AttemptResult:
        try:
            result = await self.outbound.call_back(cb)
        except asyncio.CancelledError:
            raise  # the dialler stops: recover() reopens the task at the next start
        except Exception:  # a shell's bug must not stop the dialler: count a failed attempt
            log.exception("callback attempt for task %d failed", cb.id)
            result = AttemptResult.FAILED
        self.finish(cb, result)
        return result

    def finish(self, cb: StoredCallback, result: AttemptResult) -> str:
        """Record an attempt's result in the store; returns the task's new status."""
        now = self.clock()
        status = self.store.finish_attempt(
            cb.id, result.value, now, done=result is AttemptResult.QUEUED,
            retry_at=self.retry_at(cb, result, now))
        self._count(result)
        log.info("callback task %d attempt %d: %s -> %s", cb.id, cb.attempts, result.value,
                 status)
        return status

    def _count(self, result: AttemptResult) -> None:
        self.stats.results[result.value] = self.stats.results.get(result.value, 0) + 1

    def wake(self) -> None:
        """Look for due tasks now (e.g. a task was just stored or an agent became ready)."""
        self._wake.set()

    async def run(self) -> None:
        """Dial until cancelled; attempts still running are cancelled and reopened."""
        recovered = self.store.recover(self.clock())
        if recovered:
            log.info("callback dialler reopened %d interrupted attempts", recovered)
        try:
            while True:
                self._wake.clear()
                self.start_due()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.policy.poll_interval_s)
        finally:
            await self.close()

    async def close(self) -> None:
        """Cancel running attempts; their tasks are open again for the next start."""
        tasks = list(self.in_flight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.store.recover(self.clock())


class AttemptBoard:
    """Attempts waiting for a result that arrives by another path (the AGI ``callback`` script).

    The AMI shell registers the task before it originates; the AGI script claims it by id
    when the answered customer reaches the dialplan, and reports how the flow ended. A task
    id nobody expects is refused, so a dialplan cannot start work the dialler did not ask for.
    """

    def __init__(self) -> None:
        self._waiting: dict[int, tuple[StoredCallback, asyncio.Future[AttemptResult]]] = {}
        self._claimed: set[int] = set()

    def expect(self, cb: StoredCallback) -> asyncio.Future[AttemptResult]:
        """Register an attempt about to be dialled; the future resolves with its result."""
        future: asyncio.Future[AttemptResult] = asyncio.get_running_loop().create_future()
        self._waiting[cb.id] = (cb, future)
        self._claimed.discard(cb.id)
        return future

    def claim(self, task_id: int) -> StoredCallback | None:
        """The attempt for ``task_id`` if one is waiting and not yet claimed (once only)."""
        entry = self._waiting.get(task_id)
        if entry is None or task_id in self._claimed or entry[1].done():
            return None
        self._claimed.add(task_id)
        return entry[0]

    def report(self, task_id: int, result: AttemptResult) -> bool:
        """Resolve the attempt's future; False when nobody waits for it any more."""
        entry = self._waiting.get(task_id)
        if entry is None or entry[1].done():
            return False
        entry[1].set_result(result)
        return True

    def forget(self, task_id: int) -> None:
        """The dialler stopped waiting for this attempt."""
        self._waiting.pop(task_id, None)
        self._claimed.discard(task_id)


def business_hours(setup: IvrSetup) -> Callable[[str, float, str], OpenState] | None:
    """When a queue is open for callbacks: the ``main`` flow's calendar (None without one).

    Call it again after a reload, so the dialler follows the hours of the flows in force.
    """
    main = setup.flows.get("main")
    return main.calendar.state if main is not None else None
