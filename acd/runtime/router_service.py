"""The router in an asyncio program: one owner, woken at its deadlines, outputs fanned out.

:class:`RouterService` is the only thing in the live service that touches the
:class:`~acd.core.router.Router`. It reads its :class:`Clock` (the event loop's monotonic clock
unless a test gives a manual one), calls the router, wakes it with ``clock.call_at`` at
``next_deadline()``, and hands every output on:

- **commands** (``Offer``, ``CancelOffer``, ``Overflow``, ``OfferCallback``) go to the
  :class:`CallOwner` that registered the call (a FastAGI session, the ARI application, a test);
- **events** go to every observer (metrics, logs, call records), with the call's owner
  already notified, so observers see the world after the telephony side has reacted.

Everything runs on the event loop thread; the router is never entered twice at once because
owners that react to a command call back into the service only after the fan-out is done.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Literal, Protocol, get_args

from acd.config.load import LoadedCenter
from acd.config.policy import center_policy
from acd.core.model import (
    CallEnded,
    CancelOffer,
    Command,
    Offer,
    OfferCallback,
    Output,
    Overflow,
    QueueSnapshot,
)
from acd.core.pbx import PbxMap
from acd.core.router import Router

log = logging.getLogger(__name__)

__all__ = ["CallOwner", "Clock", "Command", "EntryPoint", "LoopClock", "Observer",
           "RouterService", "TimerHandle"]

_COMMANDS = (Offer, CancelOffer, Overflow, OfferCallback)
Observer = Callable[[Output, float], None]
#: The router's entry points the service calls (the label of the latency metric).
EntryPoint = Literal["call_arrived", "offer_answered", "offer_failed", "hangup", "withdraw",
                     "callback_accepted", "login", "logout", "pause", "ready", "advance",
                     "adopt_call", "adopt_wrap_up"]
ENTRY_POINTS: frozenset[str] = frozenset(get_args(EntryPoint))
LatencyObserver = Callable[[EntryPoint, float], None]


class TimerHandle(Protocol):
    """A callback scheduled on a :class:`Clock`."""

    def cancel(self) -> None:
        """Do not run the callback (no effect once it has run)."""


class Clock(Protocol):
    """The router's time source: monotonic seconds, and callbacks at a given instant."""

    def now(self) -> float:
        """The current time, in seconds, on a clock that never goes back."""

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        """Run ``callback`` (on the event loop thread) once the clock reaches ``when``."""


class LoopClock:
    """The event loop's monotonic clock: the service's clock in production."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop (the running loop, on first use)."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def now(self) -> float:
        """The loop's ``time()``."""
        return self.loop.time()

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        """``loop.call_at``."""
        return self.loop.call_at(when, callback)


class CallOwner(Protocol):
    """The telephony side that holds a call; it carries out the router's commands for it."""

    def handle_command(self, command: Command) -> None:
        """Carry out ``command`` (must not block; schedule I/O as a task)."""


class RouterService:
    """Serialises access to the router, drives its timers and fans its outputs out."""

    def __init__(self, center: LoadedCenter, clock: Clock | None = None) -> None:
        self.center = center
        self.router = Router(center_policy(center.config), center.agents)
        self.clock: Clock = clock if clock is not None else LoopClock()
        self._owners: dict[str, CallOwner] = {}
        self._observers: list[Observer] = []
        self._latency_observers: list[LatencyObserver] = []
        self._timer: TimerHandle | None = None
        self._timer_at: float | None = None
        self._pending: deque[list[Output]] = deque()
        self._dispatching = False
        #: Where the agents' phones are and the trunks between PBXs (None: one PBX).
        self.pbx_map: PbxMap | None = None
        #: The PBX each call arrived on (multi-PBX setups), while it is in the router.
        self._pbx_of_call: dict[str, str] = {}
        #: The priority each call was queued with (the driver's, before the queue's base
        #: priority is added), while it is in the router: the records keep it for a re-entry.
        self._priority_of_call: dict[str, int] = {}
        #: PBXs that are down (site outage): no offer rings an agent whose phone is there.
        self.pbxs_down: set[str] = set()

    # ----------------------------------------------------------------------- wiring

    def now(self) -> float:
        """The router's time: every shell reads it here, never from the loop directly."""
        return self.clock.now()

    def observe(self, observer: Observer) -> None:
        """Call ``observer(output, wall_time)`` for every output (events and commands)."""
        self._observers.append(observer)

    def unobserve(self, observer: Observer) -> None:
        """Stop calling ``observer`` (one registration of it)."""
        self._observers.remove(observer)

    def observe_latency(self, observer: LatencyObserver) -> None:
        """Call ``observer(entry_point, seconds)`` after every router call."""
        self._latency_observers.append(observer)

    def owner_of(self, call_id: str) -> CallOwner | None:
        """The owner registered for a call still in the router."""
        return self._owners.get(call_id)

    def arrived_on(self, call_id: str, pbx: str) -> None:
        """Note that a call in the router is held by ``pbx`` (a call restored before its PBX
        was known): its next offers carry dial strings from there."""
        if self.router.call_state(call_id) is not None:
            self._pbx_of_call[call_id] = pbx

    def pbx_of(self, call_id: str) -> str | None:
        """The PBX a call still in the router arrived on (None: unknown, or one PBX)."""
        return self._pbx_of_call.get(call_id)

    def priority_of(self, call_id: str) -> int | None:
        """The priority a call still in the router was queued with (None: not queued here
        through :meth:`call_arrived`, e.g. adopted after a restart)."""
        return self._priority_of_call.get(call_id)

    # ----------------------------------------------------------------------- calls

    def call_arrived(self, owner: CallOwner, call_id: str, queue: str, language: str,
                     country: str, priority: int = 0, customer_id: str | None = None,
                     arrived_at: float | None = None, pbx: str | None = None) -> None:
        """Queue a call owned by ``owner``; its commands will be sent to that owner. ``pbx``:
        the PBX it arrived on, whose dial strings its offers carry (kept when None)."""
        now, t0 = self.now(), time.perf_counter()
        out = self.router.call_arrived(now, call_id, queue, language, country, priority,
                                       customer_id, arrived_at)
        # Only once the router took it: a refused duplicate leaves the first call's owner.
        self._owners[call_id] = owner
        self._priority_of_call[call_id] = priority
        if pbx is not None:
            self._pbx_of_call[call_id] = pbx
        self._done("call_arrived", t0, out)

    def adopt_call(self, owner: CallOwner, call_id: str, queue: str, language: str,
                   country: str, agent_id: str, *, arrived_at: float,
                   answered_at: float | None = None, endpoint: str | None = None,
                   ring_timeout_s: float | None = None, pbx: str | None = None) -> None:
        """After a restart: put a ringing (``answered_at`` None) or talking call back on its
        logged-out agent; its commands go to ``owner`` (see ``Router.adopt_call``)."""
        now, t0 = self.now(), time.perf_counter()
        out = self.router.adopt_call(now, call_id, queue, language, country, agent_id,
                                     arrived_at=arrived_at, answered_at=answered_at,
                                     endpoint=endpoint, ring_timeout_s=ring_timeout_s)
        self._owners[call_id] = owner
        if pbx is not None:
            self._pbx_of_call[call_id] = pbx
        self._done("adopt_call", t0, out)

    def adopt_wrap_up(self, agent_id: str, remaining_s: float,
                      endpoint: str | None = None) -> None:
        """After a restart: a logged-out agent goes back into its wrap-up for ``remaining_s``."""
        now, t0 = self.now(), time.perf_counter()
        self._done("adopt_wrap_up", t0,
                   self.router.adopt_wrap_up(now, agent_id, remaining_s, endpoint))

    def offer_answered(self, call_id: str, agent_id: str | None = None) -> None:
        """The agent answered the offer (give ``agent_id`` so a late answer is not misread)."""
        now, t0 = self.now(), time.perf_counter()
        self._done("offer_answered", t0, self.router.offer_answered(now, call_id, agent_id))

    def offer_failed(self, call_id: str, reason: str = "no_answer",
                     agent_id: str | None = None) -> None:
        """The offer was not answered (ring-no-answer, busy, unavailable)."""
        now, t0 = self.now(), time.perf_counter()
        self._done("offer_failed", t0, self.router.offer_failed(now, call_id, reason, agent_id))

    def hangup(self, call_id: str) -> None:
        """Caller or agent hung up (an abandon when the call was not yet talking)."""
        now, t0 = self.now(), time.perf_counter()
        self._done("hangup", t0, self.router.hangup(now, call_id))

    def withdraw(self, call_id: str, reason: str) -> None:
        """The telephony side handed a waiting call back (e.g. at shutdown): overflowed."""
        now, t0 = self.now(), time.perf_counter()
        self._done("withdraw", t0, self.router.withdraw(now, call_id, reason))

    def callback_accepted(self, call_id: str) -> None:
        """The caller took the callback offer."""
        now, t0 = self.now(), time.perf_counter()
        self._done("callback_accepted", t0, self.router.callback_accepted(now, call_id))

    # ----------------------------------------------------------------------- agents

    def login(self, agent_id: str, endpoint: str | None = None,
              paused_reason: str | None = None) -> None:
        """Log an agent in; raises AgentAlreadyLoggedIn on a double login."""
        now, t0 = self.now(), time.perf_counter()
        self._done("login", t0, self.router.login(now, agent_id, endpoint, paused_reason))

    def logout(self, agent_id: str) -> None:
        """Log an agent out (after the current call, if any)."""
        now, t0 = self.now(), time.perf_counter()
        self._done("logout", t0, self.router.logout(now, agent_id))

    def pause(self, agent_id: str, reason: str) -> None:
        """Pause an agent with a configured reason."""
        now, t0 = self.now(), time.perf_counter()
        self._done("pause", t0, self.router.pause(now, agent_id, reason))

    def ready(self, agent_id: str) -> None:
        """Make an agent ready."""
        now, t0 = self.now(), time.perf_counter()
        self._done("ready", t0, self.router.ready(now, agent_id))

    # ----------------------------------------------------------------------- queries

    def queue_snapshot(self) -> list[QueueSnapshot]:
        """Every queue at this instant."""
        return self.router.queue_snapshot(self.now())

    def ewt(self, call_id: str) -> float:
        """Estimated remaining wait of a queued call, now."""
        return self.router.ewt(call_id, self.now())

    def ewt_new(self, queue: str, language: str | None = None, country: str | None = None
                ) -> float:
        """Estimated wait for a call arriving now at ``queue`` in ``language`` from
        ``country`` (zero while an agent eligible for it is ready)."""
        return self.router.ewt_new(queue, language, country, self.now())

    def replace_router(self, center: LoadedCenter, router: Router) -> None:
        """Swap in a router built from ``center`` (config reload); its timer is re-armed."""
        self.close()
        self.center = center
        self.router = router
        self._timer_at = None
        self._reschedule()

    def close(self) -> None:
        """Stop the router's timer (at shutdown)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # ----------------------------------------------------------------------- internals

    def _done(self, name: EntryPoint, t0: float, out: list[Output]) -> None:
        """Report the latency of the router call started at ``t0`` and fan its outputs out."""
        elapsed = time.perf_counter() - t0
        for observe in self._latency_observers:
            observe(name, elapsed)
        self._dispatch(out)

    def _dispatch(self, out: list[Output]) -> None:
        # An owner may react to a command by calling the service again (e.g. answer at once);
        # those outputs queue up behind the current ones so every observer sees them in order.
        self._pending.append(out)
        if self._dispatching:
            return
        self._dispatching = True
        try:
            while self._pending:
                batch = self._pending.popleft()
                wall = time.time()
                for o in batch:
                    if isinstance(o, Offer) and self.pbx_map is not None:
                        self._dial_from_callers_pbx(o)
                    if isinstance(o, _COMMANDS):
                        owner = self._owners.get(o.call_id)
                        if owner is None:
                            log.warning("command for a call with no owner: %r", o)
                        else:
                            try:
                                owner.handle_command(o)
                            except Exception:  # an owner's bug must not stop the router
                                log.exception("call owner failed on %r", o)
                    for observe in self._observers:
                        try:
                            observe(o, wall)
                        except Exception:
                            log.exception("observer failed on %r", o)
                    if isinstance(o, CallEnded):
                        self._owners.pop(o.call_id, None)
                        self._pbx_of_call.pop(o.call_id, None)
                        self._priority_of_call.pop(o.call_id, None)
        finally:
            self._dispatching = False
        self._reschedule()

    def _dial_from_callers_pbx(self, offer: Offer) -> None:
        """Give the offer the dial string that rings its agent from the caller's PBX: the
        agent's endpoint on the same PBX, the inter-site trunk otherwise (empty when there is
        none: the call machine then reports the offer undialable)."""
        assert self.pbx_map is not None
        if self.pbx_map.agent_pbx.get(offer.agent_id) in self.pbxs_down:
            # The agent is being paused site_down in this same fan-out (a login or an
            # auto-ready while the PBX was down): ring nothing.
            offer.endpoint = ""
            return
        dial = self.pbx_map.dial_string(offer.agent_id, offer.endpoint,
                                        self._pbx_of_call.get(offer.call_id))
        if dial is None:
            log.warning("no dial string for agent %s from the PBX of call %s (%s)",
                        offer.agent_id, offer.call_id, self._pbx_of_call.get(offer.call_id))
        offer.endpoint = dial or ""

    def _reschedule(self) -> None:
        deadline = self.router.next_deadline()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            self._timer = self.clock.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        now, t0 = self.now(), time.perf_counter()
        self._done("advance", t0, self.router.advance(now))
