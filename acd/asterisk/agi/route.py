"""The FastAGI call path: Asterisk's dialplan hands each call to the router, the router decides.

Scripts (``AGI(agi://127.0.0.1:4573/<script>,<args>)``, see ``config/asterisk/extensions.conf``):

- ``route``: runs the ``main`` IVR flow, queues the call with the router and holds the caller
  on music until the router's command: ``Offer`` sets ``ACD_TARGET`` (the dial string, built
  only from the roster's endpoint), ``ACD_AGENT``, ``ACD_CALL_ID``, ``ACD_RING_TIMEOUT`` and ends
  the session so the dialplan dials; ``Overflow`` sets ``ACD_RESULT`` (voicemail / callback).
  An empty ``ACD_TARGET`` with an empty ``ACD_RESULT`` means "take your fallback".
- ``answered,<call>,<agent>``: from Dial's ``U()`` subroutine on the agent's channel.
- ``dialresult,<call>,<DIALSTATUS>,<agent>``: the dial failed; the router requeues the call
  (ring-no-answer) and the same hold runs again until the next offer.
- ``ended,<call>``: talk ended (or the ``h`` extension ran): the call ends, wrap-up starts.
- ``agent,<action>[,<n>]``: agent feature codes (`acd.asterisk.agi.agent_codes`).
- ``callback,<task id>``: a customer called back through AMI (`acd.asterisk.agi.callback`).

A call's `AgiCall` outlives its AGI sessions: commands that arrive while the caller is in
``Dial()`` wait there for the next hold session.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import count

from acd.asterisk.agi import commands
from acd.asterisk.agi.agent_codes import AgentCodes, AgentPrompts
from acd.asterisk.agi.channel import (
    AGENT,
    CALL_ID,
    LANGUAGE,
    QUEUE,
    RESULT,
    RING_TIMEOUT,
    TARGET,
    AgiChannel,
    Deadlines,
    dial_ring_timeout,
)
from acd.asterisk.agi.codec import Reply
from acd.asterisk.agi.server import AgiSession, Handler
from acd.core.model import (
    CallEnded,
    CallState,
    CancelOffer,
    DuplicateCall,
    Offer,
    OfferCallback,
    Output,
    Overflow,
    RoutingError,
)
from acd.runtime.ivrsetup import IvrSetup
from acd.runtime.router_service import Command, RouterService
from ivr.actions import CallbackTask
from ivr.actions import Outcome as IvrOutcome
from ivr.caller import normalize_number
from ivr.channel import run_flow
from ivr.engine import CallContext

log = logging.getLogger(__name__)

#: Asterisk uniqueids are ``<epoch>.<sequence>``; anything else gets a generated call id.
_UNIQUEID_RE = re.compile(r"[0-9.]{1,40}")
#: Ids the dialplan hands back (ours): generated or uniqueid, never caller text.
_CALL_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
#: A dial string from the roster: technology/resource, no Dial() separators (``&``, ``,``).
_ENDPOINT_RE = re.compile(r"[A-Za-z0-9_]+/[A-Za-z0-9_.@:+-]{1,120}")
_AGENT_ID_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_DIALLED_RE = re.compile(r"[0-9*#+]{1,32}")
#: DIALSTATUS -> the router's offer-failure reason.
_DIAL_REASONS = {"NOANSWER": "no_answer", "BUSY": "busy", "CONGESTION": "unavailable",
                 "CHANUNAVAIL": "unavailable"}


@dataclass(frozen=True)
class RouteSettings:
    """Tunables of the call path; defaults suit the reference center."""

    flow: str = "main"
    moh_class: str = "default"
    deadlines: Deadlines = field(default_factory=Deadlines)
    #: The hold is bounded by the queue's max wait plus ring time plus this margin.
    hold_margin_s: float = 60.0
    #: Calls held at once before new calls are turned away to the dialplan's fallback.
    max_calls: int = 5000
    #: Prompt and digit timeout for the router's callback offer while holding.
    callback_prompt: str = "callback_offer"
    callback_timeout_s: float = 6.0
    voicemail_dir: str = "acd-voicemail"
    agent_prompts: AgentPrompts = field(default_factory=AgentPrompts)


@dataclass
class RouteStats:
    """Counters of the call path (for logs, metrics and the benchmark)."""

    calls_queued: int = 0
    turned_away: int = 0
    offers_delivered: int = 0
    overflows_delivered: int = 0
    callbacks_accepted: int = 0
    abandoned_holding: int = 0
    released: int = 0


@dataclass
class AgiCall:
    """A call queued through FastAGI: the router's owner for it across AGI sessions."""

    call_id: str
    queue: str
    language: str
    country: str
    priority: int
    number: str | None
    customer_id: str | None
    hold_until: float
    pending: deque[Command] = field(default_factory=deque)
    #: The offer handed to the dialplan, and whether the router has since cancelled it.
    dialling: Offer | None = None
    dialling_cancelled: bool = False
    _wake: asyncio.Future[bool] | None = None

    def handle_command(self, command: Command) -> None:
        """Keep the command for the hold session (now or the next one); never blocks."""
        if isinstance(command, CancelOffer):
            if self.dialling is not None and self.dialling.agent_id == command.agent_id:
                self.dialling_cancelled = True
            self.pending = deque(c for c in self.pending
                                 if not (isinstance(c, Offer) and c.agent_id == command.agent_id))
        else:
            self.pending.append(command)
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(True)

    def wakeup(self) -> asyncio.Future[bool]:
        """A future resolved when the next command arrives."""
        self._wake = asyncio.get_running_loop().create_future()
        return self._wake

    def callback_task(self) -> CallbackTask | None:
        """The callback promise for this caller (None without a valid caller number)."""
        if self.number is None:
            return None
        return CallbackTask(self.queue, self.language, self.country, self.number,
                            self.priority, "offer", None, self.customer_id)


class CallPath:
    """The FastAGI scripts of the call path, sharing one router service and IVR setup."""

    def __init__(self, service: RouterService, setup: IvrSetup,
                 settings: RouteSettings | None = None) -> None:
        self.service = service
        self.setup = setup
        self.settings = settings or RouteSettings()
        self.stats = RouteStats()
        self.calls: dict[str, AgiCall] = {}
        self.draining = False
        self._ids = count(1)
        self._id_prefix = f"acd-{int(time.time())}"
        self.agents = AgentCodes(service, self.settings.agent_prompts,
                                 self.settings.deadlines.command_s)
        # Imported here: the callback script builds on this module (AgiCall, hold).
        from acd.asterisk.agi.callback import CallbackScript

        #: The ``callback`` script; AMI callbacks (acd.asterisk.ami) wait on its board.
        self.callback = CallbackScript(self)
        self._scripts: dict[str, Handler] = {
            "route": self.route, "answered": self.answered, "dialresult": self.dial_result,
            "ended": self.ended, "agent": self.agents.handle, "callback": self.callback.handle,
        }
        service.observe(self._on_output)

    def handler_for(self, script: str) -> Handler | None:
        """The handler of a script name (the `FastAgiServer` lookup)."""
        return self._scripts.get(script)

    @property
    def scripts(self) -> frozenset[str]:
        """Every script name the dialplan may use."""
        return frozenset(self._scripts)

    def drain(self) -> None:
        """Shutting down: new calls go to the fallback, held callers are handed back now."""
        self.draining = True
        for call in self.calls.values():
            if call._wake is not None and not call._wake.done():
                call._wake.set_result(True)

    # ------------------------------------------------------------------ route (new calls)

    async def route(self, session: AgiSession) -> None:
        """A new inbound call: IVR, then queue and hold until the router decides."""
        flow = self.setup.flows.get(self.settings.flow)
        if self.draining or len(self.calls) >= self.settings.max_calls or flow is None:
            # Say nothing: a clean close leaves ACD_TARGET and ACD_RESULT empty -> fallback.
            self.stats.turned_away += 1
            return
        env = session.env
        call_id = self._call_id(env.uniqueid)
        args = env.args
        dialled = args[0] if args and _DIALLED_RE.fullmatch(args[0]) else None
        ctx = CallContext(env.callerid, time.time(), dialled=dialled)
        d = self.settings.deadlines
        channel = AgiChannel(session, self.setup, call_id, self.service.ewt_new, d,
                             self.settings.voicemail_dir)
        outcome = await run_flow(flow, ctx, channel)
        if session.hung_up:
            return  # gone between the last prompt and the queue: never reached the router
        if outcome.status in ("queued", "hop_limit") and outcome.queue is not None:
            await self._queue(session, call_id, outcome)

    def _call_id(self, uniqueid: str) -> str:
        if _UNIQUEID_RE.fullmatch(uniqueid) and uniqueid not in self.calls \
                and self.service.router.call_state(uniqueid) is None:
            return uniqueid
        return f"{self._id_prefix}-{next(self._ids)}"

    async def _queue(self, session: AgiSession, call_id: str, outcome: IvrOutcome) -> None:
        assert outcome.queue is not None
        number, _ = normalize_number(session.env.callerid, self.setup.known.national_region)
        config = self.service.center.config.queues.get(outcome.queue)
        max_wait = config.max_wait_s + config.ring_timeout_s if config is not None else 3600.0
        customer = outcome.variables.get("customer_id") or None
        call = AgiCall(call_id, outcome.queue, outcome.language, outcome.country,
                       outcome.priority, number, customer,
                       self.service.now() + max_wait + self.settings.hold_margin_s)
        self.calls[call_id] = call
        try:
            self.service.call_arrived(call, call_id, outcome.queue, outcome.language,
                                      outcome.country, outcome.priority, customer)
        except (DuplicateCall, RoutingError) as exc:
            self.calls.pop(call_id, None)
            log.warning("The router refused call %s: %s; the dialplan falls back.", call_id, exc)
            return
        self.stats.calls_queued += 1
        try:
            await self._set(session, CALL_ID, call_id)
        except BaseException:
            self._release(call)  # the dialplan cannot report this call: never leave it queued
            raise
        await self.hold(session, call)

    # ------------------------------------------------------------------ holding

    async def hold(self, session: AgiSession, call: AgiCall) -> None:
        """Music on hold until the router's command, the caller's hangup or the deadline."""
        loop = asyncio.get_running_loop()
        hangup: asyncio.Future[bool] = loop.create_task(session.wait_for_hangup())
        handed_over = False
        handed_back: str | None = None  # why the dialplan takes the caller back, if it does
        moh = False
        try:
            while True:
                if session.hung_up:
                    self.stats.abandoned_holding += 1
                    break
                if self.draining:
                    handed_back = "shutdown"
                    break
                command = call.pending.popleft() if call.pending else None
                if command is None:
                    if not moh:
                        await self._command(session, commands.set_music(True,
                                                                        self.settings.moh_class))
                        moh = True
                        continue
                    remaining = call.hold_until - self.service.now()
                    if remaining <= 0:
                        log.error("Call %s held past its deadline; handing it back to the "
                                  "dialplan.", call.call_id)
                        handed_back = "hold_deadline"
                        break
                    wake = call.wakeup()
                    await asyncio.wait({hangup, wake}, timeout=remaining,
                                       return_when=asyncio.FIRST_COMPLETED)
                    continue
                if isinstance(command, Offer):
                    handed_over = await self._hand_offer(session, call, command, moh)
                    if handed_over:
                        return
                elif isinstance(command, Overflow):
                    await self._hand_overflow(session, call, command, moh)
                    handed_over = True
                    return
                elif isinstance(command, OfferCallback):
                    if await self._offer_callback(session, call, moh):
                        handed_over = True
                        return
                    moh = False
        finally:
            hangup.cancel()
            if not handed_over:
                self._release(call, None if session.hung_up else handed_back)

    def _release(self, call: AgiCall, handed_back: str | None = None) -> None:
        """Take a call the dialplan no longer holds for us out of the router (once): an
        abandon, or, when we hand the caller back to the dialplan, an overflow."""
        self.calls.pop(call.call_id, None)
        if self.service.router.call_state(call.call_id) is not None:
            self.stats.released += 1
            if handed_back is None:
                self.service.hangup(call.call_id)
            else:
                self.service.withdraw(call.call_id, handed_back)

    async def _hand_offer(self, session: AgiSession, call: AgiCall, offer: Offer,
                          moh: bool) -> bool:
        if self.service.router.call_state(call.call_id) is not CallState.RINGING:
            return False  # a stale offer (cancelled while we were busy)
        if not _ENDPOINT_RE.fullmatch(offer.endpoint) or not _AGENT_ID_RE.fullmatch(
                offer.agent_id):
            log.error("Agent %r has an endpoint %r that is not a single dial string.",
                      offer.agent_id, offer.endpoint)
            self.service.offer_failed(call.call_id, "unavailable")
            return False
        call.dialling, call.dialling_cancelled = offer, False
        await self._set(session, TARGET, offer.endpoint)
        await self._set(session, AGENT, offer.agent_id)
        await self._set(session, RING_TIMEOUT, dial_ring_timeout(offer.ring_timeout_s))
        if moh:
            await self._command(session, commands.set_music(False))
        self.stats.offers_delivered += 1
        return True

    async def _hand_overflow(self, session: AgiSession, call: AgiCall, overflow: Overflow,
                             moh: bool) -> None:
        self.calls.pop(call.call_id, None)
        if moh:
            await self._command(session, commands.set_music(False))
        if overflow.target == "callback":
            self._store_callback(call)
        await self._set(session, QUEUE, call.queue)
        await self._set(session, LANGUAGE, call.language)
        await self._set(session, RESULT, "callback" if overflow.target == "callback"
                        else "voicemail")
        self.stats.overflows_delivered += 1

    async def _offer_callback(self, session: AgiSession, call: AgiCall, moh: bool) -> bool:
        """Ask the caller (one digit, bounded); True when they took the callback."""
        if self.service.router.call_state(call.call_id) is not CallState.QUEUED:
            return False
        if moh:
            await self._command(session, commands.set_music(False))
        flow = self.setup.flows[self.settings.flow]
        prompts = flow.prompts
        prompt = self.settings.callback_prompt
        known = prompts.prompts.get(prompt)
        language = call.language if known is None or call.language in known.languages \
            else self.setup.known.default_language
        timeout = self.settings.callback_timeout_s
        reply = await self._command(
            session, commands.get_data(prompts.sound_for(prompt, language),
                                       int(timeout * 1000), 1),
            timeout + self.settings.deadlines.prompt_s)
        if reply.code != 200 or commands.digits_entered(reply) != "1":
            return False
        self.service.callback_accepted(call.call_id)
        if self.service.router.call_state(call.call_id) is not None:
            return False  # the router had already offered the call: keep going
        self.calls.pop(call.call_id, None)
        self.stats.callbacks_accepted += 1
        self._store_callback(call)
        await self._set(session, QUEUE, call.queue)
        await self._set(session, LANGUAGE, call.language)
        await self._set(session, RESULT, "callback")
        return True

    def _store_callback(self, call: AgiCall) -> None:
        task = call.callback_task()
        if task is None or self.setup.callbacks is None:
            log.warning("No callback task stored for %s (no number or no sink).", call.call_id)
            return
        self.setup.callbacks.add(task)

    # ------------------------------------------------------------------ dial re-entry

    async def answered(self, session: AgiSession) -> None:
        """The agent answered (``U()`` on the agent's channel); a stale answer is refused."""
        call_id, agent = _arg(session, 0), _arg(session, 1)
        call = self.calls.get(call_id)
        current = (call is not None and call.dialling is not None
                   and not call.dialling_cancelled and call.dialling.agent_id == agent
                   and self.service.router.call_state(call_id) is CallState.RINGING)
        if current:
            self.service.offer_answered(call_id)
        await self._set(session, "ACD_ANSWER", "ok" if current else "refused")

    async def dial_result(self, session: AgiSession) -> None:
        """Dial returned without an answer: report it (ring-no-answer) and hold again."""
        call_id, status, agent = _arg(session, 0), _arg(session, 1), _arg(session, 2)
        call = self.calls.get(call_id)
        if call is None:
            return  # unknown or already ended: the dialplan falls back
        state = self.service.router.call_state(call_id)
        if status == "CANCEL" or session.hung_up:
            self._release(call)
            return
        if state is CallState.TALKING:
            await self.ended(session)
            return
        dialling = call.dialling
        if (dialling is not None and dialling.agent_id == agent and not call.dialling_cancelled
                and state is CallState.RINGING):
            self.service.offer_failed(call_id, _DIAL_REASONS.get(status, "unavailable"))
        call.dialling = None
        await self.hold(session, call)

    async def ended(self, session: AgiSession) -> None:
        """Talk ended or the caller left (``h``): the call ends once; repeats are ignored."""
        call_id = _arg(session, 0)
        if not call_id:
            return
        call = self.calls.get(call_id)
        state = self.service.router.call_state(call_id)
        in_h = session.env.extension == "h" or session.hung_up
        if call is not None and not in_h and state in (CallState.QUEUED, CallState.RINGING):
            # Dial reported ANSWER but the router never took it (a refused stale answer).
            call.dialling = None
            await self.hold(session, call)
            return
        if call is not None:
            self.calls.pop(call_id, None)
        self.service.hangup(call_id)  # Ignored by the router for a call already ended
        if not in_h:
            await self._set(session, RESULT, "ended")

    # ------------------------------------------------------------------ helpers

    def _on_output(self, output: Output, _wall: float) -> None:
        if isinstance(output, CallEnded):
            call = self.calls.get(output.call_id)
            # An overflow still to be told to the dialplan keeps the call until handed over.
            if call is not None and not any(isinstance(c, Overflow) for c in call.pending):
                del self.calls[output.call_id]

    async def _command(self, session: AgiSession, command: bytes,
                       timeout: float | None = None) -> Reply:
        return await session.command(command, timeout=timeout or
                                     self.settings.deadlines.command_s)

    async def _set(self, session: AgiSession, name: str, value: str) -> None:
        await self._command(session, commands.set_variable(name, value))


def _arg(session: AgiSession, index: int) -> str:
    """Argument ``index`` of the AGI URL when it is one of our ids or codes, else ``""``."""
    args = session.env.args
    value = args[index] if index < len(args) else ""
    return value if _CALL_ID_RE.fullmatch(value) else ""


def agi_handlers(service: RouterService, setup: IvrSetup,
                 settings: RouteSettings | None = None) -> Callable[[str], Handler | None]:
    """The FastAGI script table of the call path (pass it to `FastAgiServer`)."""
    return CallPath(service, setup, settings).handler_for
