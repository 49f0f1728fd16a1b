"""The router in an asyncio program: one owner, woken at its deadlines, outputs fanned out.

:class:`RouterService` is the only thing in the live service that touches the
:class:`~acd.core.router.Router`. It reads the event loop's monotonic clock, calls the router,
wakes it with ``loop.call_at`` at ``next_deadline()``, and hands every output on:

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
from typing import Protocol

from acd.config.load import LoadedCenter
from acd.config.policy import center_policy
from acd.core.model import (
    CallEnded,
    CancelOffer,
    Offer,
    OfferCallback,
    Output,
    Overflow,
    QueueSnapshot,
)
from acd.core.router import Router

log = logging.getLogger(__name__)

Command = Offer | CancelOffer | Overflow | OfferCallback
_COMMANDS = (Offer, CancelOffer, Overflow, OfferCallback)
Observer = Callable[[Output, float], None]


class CallOwner(Protocol):
    """The telephony side that holds a call; it carries out the router's commands for it."""

    def handle_command(self, command: Command) -> None:
        """Carry out ``command`` (must not block; schedule I/O as a task)."""


class RouterService:
    """Serialises access to the router, drives its timers and fans its outputs out."""

    def __init__(self, center: LoadedCenter, loop: asyncio.AbstractEventLoop | None = None
                 ) -> None:
        self.center = center
        self.router = Router(center_policy(center.config), center.agents)
        self._loop = loop
        self._owners: dict[str, CallOwner] = {}
        self._observers: list[Observer] = []
        self._latency_observers: list[Callable[[str, float], None]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._pending: deque[list[Output]] = deque()
        self._dispatching = False

    # ----------------------------------------------------------------------- wiring

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the service runs on (the running loop, on first use)."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def now(self) -> float:
        """The router's clock: the event loop's monotonic time."""
        return self.loop.time()

    def observe(self, observer: Observer) -> None:
        """Call ``observer(output, wall_time)`` for every output (events and commands)."""
        self._observers.append(observer)

    def observe_latency(self, observer: Callable[[str, float], None]) -> None:
        """Call ``observer(entry_point, seconds)`` after every router call."""
        self._latency_observers.append(observer)

    def owner_of(self, call_id: str) -> CallOwner | None:
        """The owner registered for a call still in the router."""
        return self._owners.get(call_id)

    # ----------------------------------------------------------------------- calls

    def call_arrived(self, owner: CallOwner, call_id: str, queue: str, language: str,
                     country: str, priority: int = 0, customer_id: str | None = None,
                     arrived_at: float | None = None) -> None:
        """Queue a call owned by ``owner``; its commands will be sent to that owner."""
        self._owners[call_id] = owner
        self._call("call_arrived", call_id, queue, language, country, priority, customer_id,
                   arrived_at)

    def offer_answered(self, call_id: str, agent_id: str | None = None) -> None:
        """The agent answered the offer (give ``agent_id`` so a late answer is not misread)."""
        self._call("offer_answered", call_id, agent_id)

    def offer_failed(self, call_id: str, reason: str = "no_answer",
                     agent_id: str | None = None) -> None:
        """The offer was not answered (ring-no-answer, busy, unavailable)."""
        self._call("offer_failed", call_id, reason, agent_id)

    def hangup(self, call_id: str) -> None:
        """Caller or agent hung up (an abandon when the call was not yet talking)."""
        self._call("hangup", call_id)

    def withdraw(self, call_id: str, reason: str) -> None:
        """The telephony side handed a waiting call back (e.g. at shutdown): overflowed."""
        self._call("withdraw", call_id, reason)

    def callback_accepted(self, call_id: str) -> None:
        """The caller took the callback offer."""
        self._call("callback_accepted", call_id)

    # ----------------------------------------------------------------------- agents

    def login(self, agent_id: str, endpoint: str | None = None,
              paused_reason: str | None = None) -> None:
        """Log an agent in; raises AgentAlreadyLoggedIn on a double login."""
        self._call("login", agent_id, endpoint, paused_reason)

    def logout(self, agent_id: str) -> None:
        """Log an agent out (after the current call, if any)."""
        self._call("logout", agent_id)

    def pause(self, agent_id: str, reason: str) -> None:
        """Pause an agent with a configured reason."""
        self._call("pause", agent_id, reason)

    def ready(self, agent_id: str) -> None:
        """Make an agent ready."""
        self._call("ready", agent_id)

    # ----------------------------------------------------------------------- queries

    def queue_snapshot(self) -> list[QueueSnapshot]:
        """Every queue at this instant."""
        return self.router.queue_snapshot(self.now())

    def ewt(self, call_id: str) -> float:
        """Estimated remaining wait of a queued call."""
        return self.router.ewt(call_id)

    def ewt_new(self, queue: str) -> float:
        """Estimated wait for a call arriving now at ``queue``."""
        return self.router.ewt_new(queue)

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

    def _call(self, name: str, *args: object) -> None:
        t0 = time.perf_counter()
        out: list[Output] = getattr(self.router, name)(self.now(), *args)
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
        finally:
            self._dispatching = False
        self._reschedule()

    def _reschedule(self) -> None:
        deadline = self.router.next_deadline()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self._call("advance")
