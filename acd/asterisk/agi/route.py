"""The FastAGI call path: Asterisk's dialplan hands each call to the router, the router decides.

Scripts (``AGI(agi://127.0.0.1:4573/<script>,<args>)``, see ``config/asterisk/extensions.conf``):

- ``route``: runs the ``main`` IVR flow, queues the call with the router, sets
  ``ACD_CALL_ID`` and the channel's ``CHANNEL(language)`` to the call's (configured) language
  and holds the caller on music until the router's command: ``Offer`` sets ``ACD_TARGET``
  (the dial string, built only from the roster's endpoint), ``ACD_AGENT``,
  ``ACD_RING_TIMEOUT`` and ends the session so the dialplan dials; ``Overflow`` sets
  ``ACD_RESULT`` (voicemail / callback). An empty ``ACD_TARGET`` with an empty ``ACD_RESULT``
  means "take your fallback". Variables set at one moment go in one command
  (`commands.set_variables`, Asterisk's ``ARRAY()``), and a call that finds an agent free
  at once hears no music: after the IVR its session is that one command.
  A caller whose router died while holding them comes back as
  ``route,,<call id>,<arrival>`` (a re-entry, at the standby now active; ``<arrival>`` is
  the dialplan's ``ACD_ARRIVAL``, the Unix time the call entered the ACD): the call the last
  run left waiting is queued again, without the IVR, with the arrival the shared store kept
  for it (never earlier than the dialplan's), so it keeps its place; an unknown call id is
  turned away (``ACD_CALL_ID`` emptied, so the dialplan takes its fallback).
- ``answered,<call>,<agent>``: from Dial's ``U()`` subroutine on the agent's channel.
- ``dialresult,<call>,<DIALSTATUS>,<agent>``: the dial failed; the router requeues the call
  (ring-no-answer) and the same hold runs again until the next offer.
- ``ended,<call>``: talk ended (or the ``h`` extension ran): the call ends, wrap-up starts.
- ``agent,<action>[,<n>]``: agent feature codes (`acd.asterisk.agi.agent_codes`).
- ``callback,<task id>``: a customer called back through AMI (`acd.asterisk.agi.callback`).
- ``survey,<call>``: the post-call survey, for a call whose ``ended`` set ``ACD_SURVEY=1``
  (`acd.asterisk.agi.survey`).

After a restart (:mod:`acd.service.state`): a call the last run had ringing or talking on an
agent is still in its ``Dial()`` (it survives the engine) and comes back through
``answered``, ``dialresult`` or ``ended`` with its call id. The first such script claims the
restored call from the :class:`~acd.service.state.RestartBoard` (its machine already in the
phase the engine persisted) and carries on as for any call: a ring-no-answer holds the caller
again with their place, the end of talk ends the call with its record and starts wrap-up.

Every decision about a call after the router's is made by its
:class:`~acd.core.call.CallMachine`: this module only turns scripts and router commands into
the machine's events, and its actions into AGI commands and router calls. A call's `AgiCall`
outlives its AGI sessions: what the machine asks of the medium while the caller is in
``Dial()`` waits there for the next session that has the caller (``dialresult``, ``ended``).
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
from typing import Protocol

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
)
from acd.asterisk.agi.codec import Reply
from acd.asterisk.agi.server import Admission, AgiSession, Handler
from acd.asterisk.agi.survey import SURVEY, PostCallSurvey
from acd.core.call import (
    Action,
    AgentGone,
    Answered,
    AskCallback,
    CallbackAnswer,
    CallerGone,
    CallEvent,
    CallMachine,
    CallPolicy,
    Connect,
    Dial,
    DialFailed,
    Drain,
    Finished,
    HandBack,
    Idle,
    Phase,
    Queued,
    Refused,
    ReportAnswered,
    ReportCallback,
    ReportFailed,
    ReportHangup,
    ReportWithdrawn,
    StartHold,
    StopHold,
    StoreCallback,
    without_call,
)
from acd.core.dialstring import offer_dialable
from acd.core.model import DuplicateCall, Ignored, RoutingError
from acd.runtime.ivrsetup import IvrSetup
from acd.runtime.records import CallRecords, LiveCall
from acd.runtime.router_service import CallOwner, Command, RouterService
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
_DIALLED_RE = re.compile(r"[0-9*#+]{1,32}")
#: The dialplan's ``ACD_ARRIVAL`` (``${EPOCH}``) in a re-entry.
_ARRIVAL_RE = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,6})?")
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


class AgiCall:
    """A call queued through FastAGI: the router's owner for it across AGI sessions.

    It carries the call's :class:`~acd.core.call.CallMachine` and the medium's work the
    machine asked for (music, dial variables, the callback question, the hand-back), which
    the session that has the caller (``route``, then each dial re-entry) carries out in order.
    """

    __slots__ = ("_path", "_wake", "call_id", "machine", "todo")

    def __init__(self, path: CallPath, machine: CallMachine) -> None:
        self.call_id = machine.call_id
        self.machine = machine
        self.todo: deque[Action] = deque()
        self._path = path
        self._wake: asyncio.Future[bool] | None = None

    @property
    def queue(self) -> str:
        """The queue the call waits in."""
        return self.machine.queue

    @property
    def language(self) -> str:
        """The call's language."""
        return self.machine.language

    @property
    def priority(self) -> int:
        """The call's priority."""
        return self.machine.priority

    @property
    def number(self) -> str | None:
        """The caller's number, for a callback (None when unknown)."""
        return self.machine.number

    def handle_command(self, command: Command) -> None:
        """Feed the router's command to the machine (never blocks)."""
        self._path.feed(self, command)

    def poke(self) -> None:
        """Wake the hold session, if one waits."""
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(True)

    def wakeup(self) -> asyncio.Future[bool]:
        """A future resolved when the machine next has work for the session."""
        self._wake = asyncio.get_running_loop().create_future()
        return self._wake


#: Actions the session that has the caller carries out (the rest are done at once).
_SESSION_WORK = (StartHold, StopHold, Dial, AskCallback, HandBack)


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
        #: Latency-based admission control (`acd.asterisk.agi.server.Admission`), if any.
        self.admission: Admission | None = None
        self._ids = count(1)
        self._id_prefix = f"acd-{int(time.time())}"
        self._policy: tuple[object, CallPolicy] | None = None
        #: Calls put back on their agents at start, claimed here when Asterisk reports on them.
        self.restored: _RestoredCalls | None = None
        #: Multi-PBX setups: the PBX of a connection's peer address (None: not one of them);
        #: None here: one PBX, every connection is on it.
        self.pbx_of_peer: Callable[[str | None], str | None] | None = None
        #: The call records: the caller's number and customer id (and survey scores) go there.
        self.records: CallRecords | None = None
        self.agents = AgentCodes(service, self.settings.agent_prompts,
                                 self.settings.deadlines.command_s)
        # Imported here: the callback script builds on this module (AgiCall, hold).
        from acd.asterisk.agi.callback import CallbackScript

        #: The ``callback`` script; AMI callbacks (acd.asterisk.ami) wait on its board.
        self.callback = CallbackScript(self)
        #: The post-call survey (off until its ``flow`` is set).
        self.survey = PostCallSurvey(self, self.settings.deadlines, self.settings.voicemail_dir,
                                     service.ewt_new)
        self._scripts: dict[str, Handler] = {
            "route": self.route, "answered": self.answered, "dialresult": self.dial_result,
            "ended": self.ended, "agent": self.agents.handle, "callback": self.callback.handle,
            "survey": self.run_survey,
        }

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
        for call in list(self.calls.values()):
            self.feed(call, Drain())

    # ------------------------------------------------------------------ the machine

    def feed(self, call: AgiCall, event: CallEvent) -> list[Action]:
        """Give ``event`` to the call's machine and carry out its actions: router reports,
        callback storage and bookkeeping at once, the session's work queued for it."""
        actions = call.machine.handle(event)
        self._carry_out(call.call_id, actions, call)
        return actions

    def _carry_out(self, call_id: str, actions: list[Action], call: AgiCall | None) -> None:
        service = self.service
        for action in actions:
            if isinstance(action, _SESSION_WORK):
                if call is not None:
                    call.todo.append(action)
                    call.poke()
            elif isinstance(action, ReportFailed):
                service.offer_failed(call_id, action.reason, action.agent_id)
            elif isinstance(action, ReportAnswered):
                service.offer_answered(call_id, action.agent_id)
            elif isinstance(action, ReportHangup):
                service.hangup(call_id)
            elif isinstance(action, ReportWithdrawn):
                self.stats.released += 1
                service.withdraw(call_id, action.reason)
            elif isinstance(action, ReportCallback):
                service.callback_accepted(call_id)
            elif isinstance(action, StoreCallback):
                self._store_callback(call_id, action)
            elif isinstance(action, Finished):
                if call is not None and self.calls.get(call_id) is call:
                    del self.calls[call_id]
            elif isinstance(action, Ignored):
                if action.what == "offer":
                    log.error("Call %s: %s.", call_id, action.reason)
                else:
                    log.debug("Call %s: %s ignored: %s.", call_id, action.what, action.reason)
            # ReleaseAgent, Connect, RefuseAnswer: Dial() rings and bridges by itself; the
            # ``answered`` script reads its reply from the actions.

    def _policy_now(self) -> CallPolicy:
        """The machine's policy for new calls (the callback prompt of the current flow)."""
        flow = self.setup.flows.get(self.settings.flow)
        cached = self._policy
        if cached is not None and cached[0] is flow:
            return cached[1]
        known = flow.prompts.prompts.get(self.settings.callback_prompt) \
            if flow is not None else None
        policy = CallPolicy(
            hold_while_ringing=False,
            callback_languages=frozenset(known.languages) if known is not None else None,
            default_language=self.setup.known.default_language,
            dialable=offer_dialable)
        self._policy = (flow, policy)
        return policy

    def admit(self, call_id: str, queue: str, language: str, country: str, priority: int,
              number: str | None, customer_id: str | None, what: str = "call",
              pbx: str | None = None, arrived_at: float | None = None) -> AgiCall | None:
        """Give a call to the router with its machine; None when the router refuses it."""
        config = self.service.center.config.queues.get(queue)
        max_wait = config.max_wait_s + config.ring_timeout_s if config is not None else 3600.0
        machine = CallMachine(call_id, queue, language, country, priority, number, customer_id,
                              self.service.now() + max_wait + self.settings.hold_margin_s,
                              self._policy_now())
        call = AgiCall(self, machine)
        self.calls[call_id] = call
        self.feed(call, Queued())
        try:
            self.service.call_arrived(call, call_id, queue, language, country, priority,
                                      customer_id, arrived_at, pbx=pbx)
        except (DuplicateCall, RoutingError) as exc:
            self.feed(call, Refused(type(exc).__name__))
            self.calls.pop(call_id, None)
            log.warning("The router refused %s %s: %s; the dialplan falls back.", what,
                        call_id, exc)
            return None
        self.stats.calls_queued += 1
        return call

    def _claim(self, call_id: str) -> AgiCall | None:
        """A call the last run left ringing or talking, now reported on: ours from here."""
        if self.restored is None or not call_id:
            return None

        def owner(machine: CallMachine) -> AgiCall:
            config = self.service.center.config.queues.get(machine.queue)
            max_wait = config.max_wait_s + config.ring_timeout_s if config is not None \
                else 3600.0
            machine.policy = self._policy_now()
            machine.hold_until = self.service.now() + max_wait + self.settings.hold_margin_s
            call = AgiCall(self, machine)
            self.calls[call_id] = call
            return call

        claimed = self.restored.claim(call_id, owner)
        return claimed if isinstance(claimed, AgiCall) else None

    def release(self, call: AgiCall) -> None:
        """The session that had the caller is gone without handing them over: the caller is
        lost to us (an abandon, unless the call already ended)."""
        if call.machine.phase is not Phase.ENDED:
            self.feed(call, CallerGone())

    # ------------------------------------------------------------------ route (new calls)

    async def route(self, session: AgiSession) -> None:
        """A new inbound call: IVR, then queue and hold until the router decides."""
        flow = self.setup.flows.get(self.settings.flow)
        if self.draining or len(self.calls) >= self.settings.max_calls or flow is None:
            # Say nothing: a clean close leaves ACD_TARGET and ACD_RESULT empty -> fallback.
            self.stats.turned_away += 1
            log.warning("Call %r turned away to the dialplan fallback: %s.",
                        session.env.uniqueid[:64], "the service is shutting down"
                        if self.draining else f"no IVR flow {self.settings.flow!r}"
                        if flow is None else f"{len(self.calls)} calls held (max_calls)")
            return
        if self.admission is not None:
            started = session.accepted_at
            why = self.admission.refuse(None if started is None else time.monotonic() - started)
            if why is not None:  # late already: hand back now, keep admitted calls on time
                self.stats.turned_away += 1
                log.info("Call %r turned away to the dialplan fallback: overloaded (%s).",
                         session.env.uniqueid[:64], why)
                return
        pbx = None
        if self.pbx_of_peer is not None:
            pbx = self.pbx_of_peer(session.peer_host)
            if pbx is None:  # its offers would carry dial strings for no known PBX
                self.stats.turned_away += 1
                log.warning("Call %r turned away to the dialplan fallback: %s is not in any "
                            "PBX's agi_sources.", session.env.uniqueid[:64], session.peer_host)
                return
        env = session.env
        args = env.args
        if len(args) >= 3 and args[1]:
            await self._reenter(session, _arg(session, 1), args[2], pbx)
            return
        call_id = self._call_id(env.uniqueid)
        dialled = args[0] if args and _DIALLED_RE.fullmatch(args[0]) else None
        ctx = CallContext(env.callerid, time.time(), dialled=dialled)
        d = self.settings.deadlines
        channel = AgiChannel(session, self.setup, call_id, self.service.ewt_new, d,
                             self.settings.voicemail_dir)
        outcome = await run_flow(flow, ctx, channel)
        if session.hung_up:
            return  # gone between the last prompt and the queue: never reached the router
        if outcome.status in ("queued", "hop_limit") and outcome.queue is not None:
            await self._queue(session, call_id, outcome, pbx)

    def _call_id(self, uniqueid: str) -> str:
        if _UNIQUEID_RE.fullmatch(uniqueid) and uniqueid not in self.calls \
                and self.service.router.call_state(uniqueid) is None:
            return uniqueid
        return f"{self._id_prefix}-{next(self._ids)}"

    async def _queue(self, session: AgiSession, call_id: str, outcome: IvrOutcome,
                     pbx: str | None = None) -> None:
        assert outcome.queue is not None
        number, _ = normalize_number(session.env.callerid, self.setup.known.national_region)
        customer = outcome.variables.get("customer_id") or None
        if self.records is not None:
            self.records.identify(call_id, session.env.callerid, customer)
        call = self.admit(call_id, outcome.queue, outcome.language, outcome.country,
                          outcome.priority, number, customer, pbx=pbx)
        if call is None:
            return
        await self.start(session, call, [(CALL_ID, call_id), *self.language_pairs(
            session, call.language)])

    async def start(self, session: AgiSession, call: AgiCall,
                    variables: list[tuple[str, str]]) -> None:
        """The call is queued: set its first ``variables`` (the call id, the language) and
        hold the caller until the router decides. When an agent was free at once the offer
        is already waiting: those variables go with the dial variables in one command, and
        the caller never hears music."""
        dial = call.todo[0] if len(call.todo) == 1 else None
        at_once = isinstance(dial, Dial)
        try:
            if isinstance(dial, Dial):  # nothing to wait for: no hold loop, no hang-up watch
                call.todo.popleft()
                await self._dial(session, dial, variables)
            elif variables:
                await self._set_all(session, variables)
        except BaseException:
            self.release(call)  # the dialplan cannot report this call: never leave it queued
            raise
        if not at_once or call.todo:  # (after the dial: whatever came meanwhile, if any)
            await self.hold(session, call, handed_over=at_once)

    async def _reenter(self, session: AgiSession, call_id: str, arrival: str,
                       pbx: str | None = None) -> None:
        """A caller whose router died while holding them, back with their call id and
        arrival: queued again with that arrival if the last run left the call waiting."""
        live = self.restored.rejoin(call_id) \
            if self.restored is not None and call_id else None
        if live is None or call_id in self.calls \
                or self.service.router.call_state(call_id) is not None:
            self.stats.turned_away += 1
            log.warning("Re-entry of call %r turned away: not a call the last run left "
                        "waiting; the dialplan falls back.", call_id)
            await self._set(session, CALL_ID, "")
            return
        config = self.service.center.config.queues.get(live.queue)
        bound = config.max_wait_s + config.ring_timeout_s if config is not None else 3600.0
        wall = time.time()
        # Its place: the queue arrival the store kept, never before the call entered the ACD
        # (the dialplan's arrival), never longer ago than a hold may last.
        since = live.arrival
        if _ARRIVAL_RE.fullmatch(arrival):
            since = max(since, float(arrival))
        waited = min(max(0.0, wall - since), bound)
        number, _ = normalize_number(session.env.callerid, self.setup.known.national_region)
        # Its priority as first queued (0 when kept by a version that did not store it).
        call = self.admit(call_id, live.queue, live.language, live.country,
                          live.priority or 0, number, None, what="re-entry", pbx=pbx,
                          arrived_at=self.service.now() - waited)
        if call is None:
            await self._set(session, CALL_ID, "")
            return
        log.info("Call %s re-entered after %.1f s waiting; queued with its arrival.",
                 call_id, waited)
        await self.start(session, call, self.language_pairs(session, call.language))

    def language_pairs(self, session: AgiSession, language: str) -> list[tuple[str, str]]:
        """``CHANNEL(language)`` for the call's language, so what Asterisk plays itself after
        the IVR (VoiceMail, the fallback queue) speaks it too: only a configured language,
        and nothing when the channel has it already."""
        if (language == session.env.language or language not in self.setup.known.languages
                or not commands.LANGUAGE_RE.fullmatch(language)):
            return []
        return [("CHANNEL(language)", language)]

    # ------------------------------------------------------------------ holding

    async def hold(self, session: AgiSession, call: AgiCall, handed_over: bool = False
                   ) -> None:
        """Carry out the machine's work while this session has the caller: music on hold,
        the callback question, then the dial variables or the hand-back that end it.
        ``handed_over`` (True once the dial variables or the hand-back are given: the dialplan
        goes on) starts True when the dial variables were set before the loop."""
        loop = asyncio.get_running_loop()
        hangup: asyncio.Future[bool] = loop.create_task(session.wait_for_hangup())
        machine = call.machine
        try:
            while True:
                if session.hung_up:
                    if machine.phase in (Phase.QUEUED, Phase.ASKING):
                        self.stats.abandoned_holding += 1
                    return
                if call.todo:
                    handed_over |= await self._perform(session, call, call.todo.popleft())
                    continue
                if handed_over or machine.phase is Phase.ENDED:
                    return
                if machine.phase is Phase.QUEUED:
                    self.feed(call, Idle(self.service.now()))
                    if call.todo or machine.phase is not Phase.QUEUED:
                        continue
                remaining = machine.hold_until - self.service.now()
                if remaining <= 0:
                    return  # not queued and nothing from the router: give the caller up
                wake = call.wakeup()
                await asyncio.wait({hangup, wake}, timeout=remaining,
                                   return_when=asyncio.FIRST_COMPLETED)
        finally:
            hangup.cancel()
            if not handed_over:
                self.release(call)

    async def _perform(self, session: AgiSession, call: AgiCall, action: Action) -> bool:
        """One piece of the session's work; True when it hands the caller to the dialplan."""
        if isinstance(action, StartHold):
            await self._command(session, commands.set_music(True, self.settings.moh_class))
        elif isinstance(action, StopHold):
            await self._command(session, commands.set_music(False))
        elif isinstance(action, Dial):
            return await self._dial(session, action, [])
        elif isinstance(action, AskCallback):
            await self._ask_callback(session, call, action.language)
        elif isinstance(action, HandBack):
            return await self._hand_back(session, call.call_id, action)
        return False

    async def _dial(self, session: AgiSession, action: Dial,
                    before: list[tuple[str, str]]) -> bool:
        """The dial variables (after ``before``) in one command: the dialplan dials next."""
        await self._set_all(session, [*before, (TARGET, action.endpoint),
                                      (AGENT, action.agent_id),
                                      (RING_TIMEOUT, str(action.ring_timeout_s))])
        self.stats.offers_delivered += 1
        return True

    async def _hand_back(self, session: AgiSession, call_id: str, action: HandBack) -> bool:
        if action.result is None:
            if action.reason == "hold_deadline":
                log.error("Call %s held past its deadline; handing it back to the dialplan.",
                          call_id)
            return True  # nothing set: the dialplan takes its fallback
        if action.reason == "callback_accepted":
            self.stats.callbacks_accepted += 1
        elif action.result != "ended":
            self.stats.overflows_delivered += 1
        variables = [(QUEUE, action.queue)] if action.queue is not None else []
        if action.language is not None:
            variables.append((LANGUAGE, action.language))
        await self._set_all(session, [*variables, (RESULT, action.result)])
        return True

    async def _ask_callback(self, session: AgiSession, call: AgiCall, language: str) -> None:
        """Ask the caller (one digit, bounded) and tell the machine the answer."""
        prompts = self.setup.flows[self.settings.flow].prompts
        timeout = self.settings.callback_timeout_s
        reply = await self._command(
            session, commands.get_data(prompts.sound_for(self.settings.callback_prompt,
                                                         language),
                                       int(timeout * 1000), 1),
            timeout + self.settings.deadlines.prompt_s)
        if session.hung_up:
            return  # the hold loop reports the caller gone
        accepted = reply.code == 200 and commands.digits_entered(reply) == "1"
        self.feed(call, CallbackAnswer(accepted))

    def _store_callback(self, call_id: str, action: StoreCallback) -> None:
        if self.setup.callbacks is None:
            log.warning("No callback task stored for %s (no callback sink).", call_id)
            return
        self.setup.callbacks.add(CallbackTask(action.queue, action.language, action.country,
                                              action.number, action.priority, "offer", None,
                                              action.customer_id))

    # ------------------------------------------------------------------ dial re-entry

    async def answered(self, session: AgiSession) -> None:
        """The agent answered (``U()`` on the agent's channel); a stale answer is refused."""
        call_id, agent = _arg(session, 0), _arg(session, 1)
        actions = self._report(call_id, Answered(agent))
        ok = any(isinstance(a, Connect) for a in actions)
        await self._set(session, "ACD_ANSWER", "ok" if ok else "refused")

    async def dial_result(self, session: AgiSession) -> None:
        """Dial returned without an answer: report it (ring-no-answer) and hold again."""
        call_id, status, agent = _arg(session, 0), _arg(session, 1), _arg(session, 2)
        call = self.calls.get(call_id) or self._claim(call_id)
        if call is None:
            return  # unknown or already ended: the dialplan falls back
        if status == "CANCEL" or session.hung_up:
            self.feed(call, CallerGone())
            return
        self.feed(call, DialFailed(agent, _DIAL_REASONS.get(status, "unavailable")))
        await self.hold(session, call)

    async def ended(self, session: AgiSession) -> None:
        """Talk ended or the caller left (``h``): the call ends once; repeats are ignored."""
        call_id = _arg(session, 0)
        if not call_id:
            return
        in_h = session.env.extension == "h" or session.hung_up
        call = self.calls.get(call_id) or self._claim(call_id)
        talking = call is not None and call.machine.phase is Phase.TALKING
        actions = self._report(call_id, CallerGone() if in_h else AgentGone())
        if in_h:
            return
        if call is not None:
            await self.hold(session, call)  # the result, or the wait goes on (refused answer)
            if talking and call.machine.phase is Phase.ENDED and not session.hung_up \
                    and self.survey.offer(call_id, call.language):
                await self._set(session, SURVEY, "1")  # the agent hung up: the survey next
        else:
            for action in actions:
                if isinstance(action, HandBack):
                    await self._hand_back(session, call_id, action)

    async def run_survey(self, session: AgiSession) -> None:
        """``survey,<call>``: the post-call survey of a call whose agent hung up."""
        call_id = _arg(session, 0)
        if call_id:
            await self.survey.handle(session, call_id)

    def _report(self, call_id: str, event: CallEvent) -> list[Action]:
        """A telephony report for ``call_id``: to its machine, or answered as for no call."""
        call = self.calls.get(call_id) or self._claim(call_id)
        if call is not None:
            return self.feed(call, event)
        actions = without_call(call_id, event)
        self._carry_out(call_id, [a for a in actions if not isinstance(a, _SESSION_WORK)], None)
        return actions

    # ------------------------------------------------------------------ helpers

    async def _command(self, session: AgiSession, command: bytes,
                       timeout: float | None = None) -> Reply:
        return await session.command(command, timeout=timeout or
                                     self.settings.deadlines.command_s)

    async def _set(self, session: AgiSession, name: str, value: str) -> None:
        await self._command(session, commands.set_variable(name, value))

    async def _set_all(self, session: AgiSession, variables: list[tuple[str, str]]) -> None:
        """Every variable in one command (`commands.set_variables`): one round trip."""
        await self._command(session, commands.set_variables(variables))


class _RestoredCalls(Protocol):
    """Where restored calls wait to be claimed (:class:`acd.service.state.RestartBoard`)."""

    def claim(self, call_id: str, make_owner: Callable[[CallMachine], CallOwner]
              ) -> CallOwner | None:
        """The shell's owner of a restored call (built by ``make_owner``), or None."""

    def rejoin(self, call_id: str) -> LiveCall | None:
        """A call the last run left waiting, still followed (its caller may re-enter)."""


def _arg(session: AgiSession, index: int) -> str:
    """Argument ``index`` of the AGI URL when it is one of our ids or codes, else ``""``."""
    args = session.env.args
    value = args[index] if index < len(args) else ""
    return value if _CALL_ID_RE.fullmatch(value) else ""


def agi_handlers(service: RouterService, setup: IvrSetup,
                 settings: RouteSettings | None = None) -> Callable[[str], Handler | None]:
    """The FastAGI script table of the call path (pass it to `FastAgiServer`)."""
    return CallPath(service, setup, settings).handler_for
