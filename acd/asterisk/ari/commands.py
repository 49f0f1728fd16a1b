"""The call machine over ARI: telephony facts in, the machine's actions out as ARI requests.

Every decision about a queued call is made by its :class:`~acd.core.call.CallMachine`; this
layer only translates. Events, Asterisk's facts: a caller's channel ending is
:class:`~acd.core.call.CallerGone`, an agent leg's StasisStart is
:class:`~acd.core.call.Answered`, an unanswered leg's end :class:`~acd.core.call.DialFailed`
with its Q.850 reason, an answered one's :class:`~acd.core.call.AgentGone`. Actions: router
reports and callback storage are done at once; the medium's work (music, originate, bridge,
the question, the hand-back, the final clean-up) runs in order in one task per call, so two
steps of the same call never overlap in Asterisk.

For a restarted engine the call's ids stay on its channels: the agent leg is originated with
``ACD_CALL_ID`` and ``ACD_AGENT``, and once connected the caller's channel gets
``ACD_TALKING=<agent>|<answer epoch>``, so a cold start rebuilds the conversation in the router
with its agent (:mod:`acd.asterisk.ari.adoption`).

No caller waits on a dead engine: every queued caller who is not talking carries an
absolute timeout (``TIMEOUT(absolute)``, :attr:`CallCommands.hold_grace_s`) that the engine
refreshes every third of it while it lives. When the engine dies the refreshes stop, the
timeout fires, the caller leaves Stasis and the dialplan continues at its ``T`` extension,
which takes the fallback (config/asterisk/extensions-stasis.conf). The timeout is cleared when
the caller is connected to an agent and before the engine hands the caller back itself.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from functools import partial

from acd.asterisk import variables
from acd.asterisk.ari.calls import TALK_PREFIX, AgentLeg, AriCall, Phase, quietly, retry
from acd.asterisk.ari.channel import AriIvrChannel
from acd.asterisk.ari.client import AriConflict, AriError
from acd.asterisk.ari.models import Channel
from acd.asterisk.ari.state import AppState
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
    Finished,
    HandBack,
    RefuseAnswer,
    ReleaseAgent,
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
from acd.core.model import Command, Ignored
from acd.runtime.records import CallRecords
from acd.runtime.survey import survey_score
from ivr.actions import CallbackTask
from ivr.channel import CallerHungUp, run_flow
from ivr.engine import CallContext

log = logging.getLogger(__name__)

#: Channel variables a restarted engine reads: on the agent leg, and on a connected caller.
CALL_VAR = "ACD_CALL_ID"
AGENT_VAR = "ACD_AGENT"
TALK_VAR = "ACD_TALKING"
#: The caller's absolute timeout: refreshed while the engine lives, 0 once it is not needed.
GRACE_VAR = "TIMEOUT(absolute)"
#: Where a queued caller waits on the engine (hold, the question, ringing): the watchdog keeps
#: their timeout. Every way out of these goes through Connect or HandBack, which clear it.
_WAITING = (Phase.HOLD, Phase.RINGING)
#: Q.850 causes of an unanswered agent leg, as the router's offer_failed reason.
_FAIL_REASONS = {17: "busy", 18: "no_answer", 19: "no_answer", 21: "rejected"}
#: The prompts of the callback question on hold and of its confirmation.
CALLBACK_PROMPT = "callback_offer"
CONFIRMED_PROMPT = "callback_confirmed"
#: Actions the call's medium task carries out (the rest are done at once).
_MEDIUM_WORK = (StartHold, StopHold, Dial, ReleaseAgent, Connect, AskCallback, HandBack,
                Finished)


def _caller_id(number: str) -> str:
    """The caller's number reduced to what may be shown on the agent's phone."""
    return re.sub(r"[^0-9+]", "", number)[:20]


class CallCommands(AppState):
    """Feeds each queued call's machine and carries out what it asks of Asterisk."""

    _policy_cache: tuple[object, CallPolicy] | None = None
    #: Seconds a caller outlives a dead engine before the dialplan's ``T`` extension takes
    #: them to the fallback (None: no watchdog).
    hold_grace_s: float | None = 60.0
    _watchdog: asyncio.Task[None] | None = None
    #: The call records: the caller's number and customer id (and survey scores) go there.
    records: CallRecords | None = None
    #: The post-call survey flow run when an agent ends a talk (None: no survey).
    survey_flow: str | None = None
    surveys_answered: int = 0

    # ------------------------------------------------------------ the hold watchdog

    def _start_watchdog(self) -> None:
        """Keep every waiting caller's absolute timeout fresh while the task that calls this
        (the application's run) lives; it is not a call task, so ``idle()`` ignores it."""
        if self.hold_grace_s is None or (self._watchdog is not None
                                         and not self._watchdog.done()):
            return
        watchdog = asyncio.create_task(self._guard(self._keep_callers(self.hold_grace_s)))
        self._watchdog = watchdog
        owner = asyncio.current_task()
        if owner is not None:
            owner.add_done_callback(lambda _task: watchdog.cancel())

    async def _keep_callers(self, grace: float) -> None:
        value = f"{max(1, math.ceil(grace))}"
        while True:
            for call in list(self.calls.values()):
                if call.phase in _WAITING and not call.hung_up:
                    await quietly(partial(self.client.set_channel_var, call.call_id,
                                          GRACE_VAR, value))
            await asyncio.sleep(grace / 3)

    async def set_vars(self, channel_id: str, pairs: list[tuple[str, str]]) -> None:
        """Set every ``(name, value)`` on the channel in one request (``ARRAY()`` for two or
        more, see `acd.asterisk.variables`)."""
        name, value = pairs[0] if len(pairs) == 1 else variables.array(pairs)
        await self.client.set_channel_var(channel_id, name, value)

    async def _mark_talking(self, call: AriCall, talking: str) -> None:
        """Note the conversation on the caller's channel (for adoption) and lift its timeout,
        in one request."""
        marks = [(TALK_VAR, talking)]
        if self.hold_grace_s is not None:
            marks.append((GRACE_VAR, "0"))
        await quietly(partial(self.set_vars, call.call_id, marks))

    async def _no_timeout(self, call: AriCall) -> None:
        """The caller no longer waits on the engine (talking, or handed back): no timeout."""
        if self.hold_grace_s is not None:
            await quietly(partial(self.client.set_channel_var, call.call_id, GRACE_VAR, "0"))

    def _policy(self) -> CallPolicy:
        """The machines' policy: ring with the caller on hold; only dial strings of the grammar
        ``acd check`` applies; the question's languages."""
        flow = self.setup.flows.get(self.flow)
        cached = self._policy_cache
        if cached is not None and cached[0] is flow:
            return cached[1]
        known = flow.prompts.prompts.get(CALLBACK_PROMPT) if flow is not None else None
        policy = CallPolicy(
            hold_while_ringing=True,
            dialable=offer_dialable,
            callback_languages=frozenset(known.languages) if known is not None else None,
            default_language=self.setup.known.default_language)
        self._policy_cache = (flow, policy)
        return policy

    def _machine(self, call: AriCall, number: str | None) -> CallMachine:
        """A machine for a call about to be queued (``call.slot``); ARI has no hold deadline:
        the caller holds in a bridge of its own until the router decides."""
        slot = call.slot
        assert slot is not None
        call.machine = CallMachine(call.call_id, slot.queue, slot.language, slot.country,
                                   slot.priority, number, slot.customer_id, math.inf,
                                   self._policy())
        return call.machine

    # ------------------------------------------------------------ feeding the machine

    def _on_command(self, call: AriCall, command: Command) -> None:
        """A router command for the call (the owner's ``handle_command``)."""
        self.feed(call, command)

    def feed(self, call: AriCall, event: CallEvent) -> list[Action]:
        """Give ``event`` to the call's machine and carry out its actions."""
        machine = call.machine
        if machine is None:  # the router knows only queued calls, so this is a bug
            raise AssertionError(f"call {call.call_id} has no machine for {event!r}")
        actions = machine.handle(event)
        service = self.service
        call_id = call.call_id
        kick = False
        for action in actions:
            if isinstance(action, _MEDIUM_WORK):
                call.todo.append(action)
                kick = True
            elif isinstance(action, ReportFailed):
                service.offer_failed(call_id, action.reason, action.agent_id)
            elif isinstance(action, ReportAnswered):
                service.offer_answered(call_id, action.agent_id)
            elif isinstance(action, ReportHangup):
                service.hangup(call_id)
            elif isinstance(action, ReportWithdrawn):
                service.withdraw(call_id, action.reason)
            elif isinstance(action, ReportCallback):
                service.callback_accepted(call_id)
            elif isinstance(action, StoreCallback):
                self._store_callback(call_id, action)
            elif isinstance(action, Ignored):
                log.debug("Call %s: %s ignored: %s.", call_id, action.what, action.reason)
            # RefuseAnswer: the one who fed the answer knows the channel (_agent_answered).
        if kick and (call.worker is None or call.worker.done()):
            call.worker = self._spawn(call, self._work(call))
        return actions

    def _store_callback(self, call_id: str, action: StoreCallback) -> None:
        if self.setup.callbacks is None:
            log.warning("No callback task stored for %s (no callback sink).", call_id)
            return
        self.setup.callbacks.add(CallbackTask(action.queue, action.language, action.country,
                                              action.number, action.priority, "offer", None,
                                              action.customer_id))

    # ------------------------------------------------------------ telephony facts

    def _caller_gone(self, call: AriCall) -> None:
        """The caller's channel ended or left Stasis."""
        call.mark_hung_up()
        if call.machine is not None:
            self.feed(call, CallerGone())
            return
        # Not queued yet (IVR, or the hold being set up): nothing for a machine to decide.
        if self.calls.get(call.call_id) is not call:
            return
        del self.calls[call.call_id]
        # (Entries whose IVR stopped waiting for the report are dropped here.)
        for cid in [c for c, gone in self._recording_after_hangup.items()
                    if not gone.recordings_open]:
            del self._recording_after_hangup[cid]
        if call.recordings_open:
            self._recording_after_hangup[call.call_id] = call
        self._spawn(None, self._cleanup(call))

    def _agent_gone(self, leg: AgentLeg, cause: int) -> None:
        """An agent leg ended: the end of talk after an answer, else the dial's failure."""
        self.legs.pop(leg.channel_id, None)
        call = self.calls.get(leg.call_id)
        if call is None or call.leg is not leg:
            return  # a leg the call already let go of
        call.leg = None
        if leg.answered:
            call.survey_after = self.survey_flow is not None and self.records is not None
            self.feed(call, AgentGone())
        else:
            self.feed(call, DialFailed(leg.agent_id, _FAIL_REASONS.get(cause, "unavailable")))

    def _agent_answered(self, channel: Channel) -> None:
        """An agent leg entered Stasis: the agent answered (a stale answer is hung up)."""
        leg = self.legs.get(channel.id)
        call = self.calls.get(leg.call_id) if leg is not None else None
        if leg is not None and leg.answered:
            return  # the same answer again (seen once more after a reconnect)
        if leg is None or call is None or call.leg is not leg:
            agent = leg.agent_id if leg is not None else ""
            actions = without_call(leg.call_id if leg is not None else "", Answered(agent))
        else:
            leg.answered = True
            actions = self.feed(call, Answered(leg.agent_id))
        if any(isinstance(a, RefuseAnswer) for a in actions):
            self._spawn(None, quietly(partial(self.client.hangup, channel.id)))

    # ------------------------------------------------------------ the medium's work

    async def _work(self, call: AriCall) -> None:
        """Carry out the call's medium work in order until none is left."""
        while call.todo:
            action = call.todo.popleft()
            try:
                await self._perform(call, action)
            except AriError as exc:
                log.warning("ari step %s for %s failed: %s", type(action).__name__,
                            call.call_id, exc)
            except CallerHungUp:
                continue  # the caller's end is an event of its own
            except Exception:  # one step's bug must not strand the rest (the clean-up)
                log.exception("ari step %s for %s failed", type(action).__name__,
                              call.call_id)

    async def _perform(self, call: AriCall, action: Action) -> None:
        if isinstance(action, StartHold):
            hold = call.hold_bridge
            if hold is not None:
                await quietly(partial(self.client.start_moh, hold, self.moh_class))
        elif isinstance(action, StopHold):
            hold = call.hold_bridge
            # Before a Connect the holding bridge is destroyed, its music with it: the caller
            # hears music until the agent's bridge is ready, and one request is saved.
            if hold is not None and not (call.todo and isinstance(call.todo[0], Connect)):
                await quietly(partial(self.client.stop_moh, hold))
        elif isinstance(action, Dial):
            await self._originate(call, action)
        elif isinstance(action, ReleaseAgent):
            await self._release(call, action.agent_id)
        elif isinstance(action, Connect):
            await self._connect(call, action.agent_id)
        elif isinstance(action, AskCallback):
            await self._ask_callback(call, action.language)
        elif isinstance(action, HandBack):
            await self._hand_back(call, action)
        elif isinstance(action, Finished):
            if self.calls.get(call.call_id) is call:
                del self.calls[call.call_id]
            await self._cleanup(call)

    async def _originate(self, call: AriCall, dial: Dial) -> None:
        """Ring the agent; a failure to even start ringing is a failed dial."""
        leg = AgentLeg(call.next_id("agent"), dial.agent_id, call.call_id)
        call.leg = leg
        self.legs[leg.channel_id] = leg
        try:
            await retry(lambda: self.client.originate(
                dial.endpoint,
                app=self.app,
                app_args=["agent", call.call_id],
                caller_id=_caller_id(call.caller_number),
                timeout=dial.ring_timeout_s,
                channel_id=leg.channel_id,
                variables={CALL_VAR: call.call_id, AGENT_VAR: dial.agent_id},
            ))
        except AriConflict:
            pass  # our channel id exists: an earlier, timed-out try got through
        except AriError as exc:
            log.warning("originate to %s for %s failed: %s", dial.agent_id, call.call_id, exc)
            if call.leg is leg:
                call.leg = None
                self.legs.pop(leg.channel_id, None)
                self.feed(call, DialFailed(dial.agent_id, "unavailable"))

    async def _release(self, call: AriCall, agent_id: str) -> None:
        """Hang up the agent's leg; the dial is over for the machine at once."""
        leg = call.leg
        if leg is None or leg.agent_id != agent_id:
            return  # its end was reported already
        call.leg = None
        self.legs.pop(leg.channel_id, None)
        await quietly(partial(self.client.hangup, leg.channel_id))
        self.feed(call, DialFailed(agent_id, "cancelled"))

    async def _connect(self, call: AriCall, agent_id: str) -> None:
        """Move the caller from hold into a mixing bridge with the agent."""
        leg = call.leg
        if leg is None or leg.agent_id != agent_id:
            return  # the agent is gone already; the machine has heard of it
        for playback_id in list(call.pending_playbacks):
            await quietly(partial(self.client.stop_playback, playback_id))
        try:
            call.talk_bridge = await self._create_bridge("mixing,dtmf_events", TALK_PREFIX,
                                                         call)
            hold, call.hold_bridge = call.hold_bridge, None
            if hold is not None:
                await quietly(partial(self.client.remove_channel, hold, call.call_id))
                await quietly(partial(self.client.destroy_bridge, hold))
            await retry(lambda: self.client.add_channel(
                call.talk_bridge or "", [call.call_id, leg.channel_id]))
            talking = f"{agent_id}|{self.wall_clock():.3f}"
            # Beside the call's own work, not in it: retried through a REST outage, these two
            # must never hold back the clean-up of a conversation that ends meanwhile.
            self._spawn(None, self._mark_talking(call, talking))
        except AriError as exc:
            if call.leg is leg:
                log.warning("bridging %s failed (%s); ending the call", call.call_id, exc)
                self.feed(call, AgentGone())  # the clean-up hangs up the leg too

    async def _ask_callback(self, call: AriCall, language: str) -> None:
        """Ask the callback question (one key; "1" accepts) and tell the machine the answer."""
        flow = self.setup.flows.get(self.flow)
        digit: str | None = None
        if flow is not None and CALLBACK_PROMPT in flow.prompts.prompts:
            channel = AriIvrChannel(self.client, call, self.setup, self.service)
            sound = str(flow.prompts.sound_for(CALLBACK_PROMPT, language))
            digit = await channel.collect(CALLBACK_PROMPT, language, sound, 1,
                                          self.callback_timeout_s)
        # No prompt to ask with is no answer.
        self.feed(call, CallbackAnswer(digit == "1"))

    async def _hand_back(self, call: AriCall, action: HandBack) -> None:
        """The dialplan takes the caller: after ``Stasis()`` (None), in the overflow context
        (a target), or not at all (``ended``: hang up; an accepted callback: confirm first)."""
        call_id = call.call_id
        if action.result != "ended":  # (``ended`` hangs the caller up: no timeout to lift)
            await self._no_timeout(call)
        if action.result is None:
            if not await quietly(partial(self.client.continue_in_dialplan, call_id)):
                await quietly(partial(self.client.hangup, call_id))
        elif action.result == "ended":
            try:
                if call.survey_after and not call.hung_up:
                    await self._survey(call)
            finally:  # whatever became of the survey, the caller is not left in silence
                await quietly(partial(self.client.hangup, call_id))
        elif action.reason == "callback_accepted":
            await self._confirm_callback(call, action.language or "")
        else:
            context = self.setup.destinations.get(action.result, self.overflow_context)
            left = await quietly(partial(self.client.continue_in_dialplan, call_id,
                                         context=context, extension=action.result,
                                         priority=1))
            if not left and not call.hung_up:
                await quietly(partial(self.client.hangup, call_id))

    async def _survey(self, call: AriCall) -> None:
        """The agent hung up: the caller hears the survey flow in the call's language, and
        the score given goes on the call's record (its row is written already)."""
        flow = self.setup.flows.get(self.survey_flow or "")
        if flow is None or self.records is None:
            return
        language = call.machine.language if call.machine is not None \
            else self.setup.known.default_language
        channel = AriIvrChannel(self.client, call, self.setup, self.service)
        ctx = CallContext(call.caller_number, self.wall_clock(), language=language)
        outcome = await run_flow(flow, ctx, channel)
        score = survey_score(outcome)
        if score is not None and self.records.set_survey_score(call.call_id, score):
            self.surveys_answered += 1

    async def _confirm_callback(self, call: AriCall, language: str) -> None:
        flow = self.setup.flows.get(self.flow)
        channel = AriIvrChannel(self.client, call, self.setup, self.service)
        prompt = flow.prompts.prompts.get(CONFIRMED_PROMPT) if flow is not None else None
        if flow is not None and prompt is not None:
            known = language if language in prompt.languages \
                else self.setup.known.default_language
            await channel.play(CONFIRMED_PROMPT, known,
                               str(flow.prompts.sound_for(CONFIRMED_PROMPT, known)))
        await channel.hangup("callback")

    async def _cleanup(self, call: AriCall) -> None:
        """Hang up what is left of the call and destroy its bridges."""
        async with call.lock:
            leg = call.leg
            if leg is not None:
                call.leg = None
                self.legs.pop(leg.channel_id, None)
                await quietly(partial(self.client.hangup, leg.channel_id))
            for bridge in (call.hold_bridge, call.talk_bridge):
                if bridge is not None:
                    await quietly(partial(self.client.destroy_bridge, bridge))
            call.hold_bridge = call.talk_bridge = None
