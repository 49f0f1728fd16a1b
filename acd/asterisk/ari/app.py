"""The Stasis application ``acd``: the engine holds each call from ``Stasis(acd)`` to its end.

A caller entering Stasis is answered and walked through the ``main`` IVR flow; a queue outcome
puts the caller into a holding bridge of its own with music on hold and into the router. The
router's commands come back here: an ``Offer`` originates a leg to the agent (our own channel id,
the ring timeout), the agent's StasisStart bridges both in a mixing bridge, a leg destroyed
unanswered is ring-no-answer. Either side hanging up ends the call; every bridge the engine
made is destroyed. On a websocket drop the engine reconciles with what Asterisk holds; on a cold
start it adopts what it finds (see :mod:`acd.asterisk.ari.reconcile`).

Event handlers only change state and schedule tasks, so events are handled in arrival order and
the router is never entered from two places at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any, Protocol

from acd.asterisk.ari.calls import (
    HOLD_PREFIX,
    QUEUED_VAR,
    TALK_PREFIX,
    AgentLeg,
    AriCall,
    Command,
    Phase,
    QueueSlot,
    quietly,
    retry,
)
from acd.asterisk.ari.channel import TRANSFER_CONTEXT, AriIvrChannel
from acd.asterisk.ari.client import AriClient, AriConflict, AriError, AriNotFound
from acd.asterisk.ari.models import (
    Channel,
    ChannelDestroyed,
    ChannelDtmfReceived,
    ChannelHangupRequest,
    Event,
    PlaybackFinished,
    StasisEnd,
    StasisStart,
    UnknownEvent,
    WebsocketConnected,
    WebsocketReconnected,
)
from acd.asterisk.ari.reconcile import (
    Snapshot,
    is_agent_leg,
    is_our_bridge,
    plan_adoption,
    take_snapshot,
)
from acd.core.model import CancelOffer, Offer, OfferCallback, Overflow
from acd.runtime.ivrsetup import IvrSetup
from acd.runtime.router_service import RouterService
from ivr import actions as a
from ivr.caller import resolve_caller
from ivr.channel import CallerHungUp, run_flow
from ivr.engine import CallContext

log = logging.getLogger(__name__)

#: Dialplan context the router's overflow targets continue in (``voicemail``, ``callback``).
OVERFLOW_CONTEXT = "acd-stasis-overflow"
#: Q.850 causes of an unanswered agent leg, as the router's offer_failed reason.
_FAIL_REASONS = {17: "busy", 18: "no_answer", 19: "no_answer", 21: "rejected"}
_DIALLED = re.compile(r"[^0-9+*#]")


class OutboundLegs(Protocol):
    """Legs the engine originates to customers (callbacks), by their first Stasis argument."""

    def stasis_start(self, channel: Channel, args: tuple[str, ...]) -> None:
        """An originated leg was answered and entered Stasis (``args`` after the first)."""

    def channel_gone(self, channel_id: str, cause: int) -> None:
        """A channel the application does not know ended (maybe an unanswered leg)."""


def _caller_id(number: str) -> str:
    """The caller's number reduced to what may be shown on the agent's phone."""
    return re.sub(r"[^0-9+]", "", number)[:20]


class StasisApp:
    """Runs every call of one Stasis application over ARI against the router service."""

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
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------ main loop

    async def run(self) -> None:
        """Handle events until cancelled; calls stay in Asterisk for the next start."""
        try:
            async for event in self.client.events():
                try:
                    await self.handle(event)
                except Exception:  # one bad event must not end the application
                    log.exception("ari event %s not handled", event.type)
        finally:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def handle(self, event: Event) -> None:
        """Apply one event; only (re)connection markers await ARI before returning."""
        match event:
            case StasisStart(channel=channel, args=args):
                self._stasis_start(channel, args)
            case StasisEnd(channel=channel):
                self._channel_gone(channel.id, 0)
            case ChannelHangupRequest(channel=channel, cause=cause):
                self._channel_gone(channel.id, cause or 0)
            case ChannelDestroyed(channel=channel, cause=cause):
                self._channel_gone(channel.id, cause)
            case ChannelDtmfReceived(channel=channel, digit=digit):
                call = self.calls.get(channel.id)
                if call is not None:
                    call.push_digit(digit)
            case PlaybackFinished(playback=playback):
                call = self.calls.get(playback.channel_id or "")
                if call is not None:
                    call.playback_finished(playback.id)
            case UnknownEvent(type=kind, raw=raw):
                self._unknown(kind, raw)
            case WebsocketConnected():
                try:
                    await self._adopt()
                except AriError as exc:
                    log.warning("ari cold start adoption failed (%s); reconciling later", exc)
                    self._spawn(None, self._reconcile_later())
                finally:
                    self.ready.set()
            case WebsocketReconnected():
                try:
                    await self._reconcile()
                except AriError as exc:
                    log.warning("ari reconcile failed (%s); trying again", exc)
                    self._spawn(None, self._reconcile_later())
            case _:
                pass

    def _unknown(self, kind: str, raw: Any) -> None:
        """Recording results are not modelled events; anything else is only logged."""
        if kind in ("RecordingFinished", "RecordingFailed"):
            recording = raw.get("recording")
            if isinstance(recording, dict):
                name = recording.get("name")
                target = str(recording.get("target_uri", "")).removeprefix("channel:")
                call = self.calls.get(target) or self._recording_after_hangup.pop(target, None)
                if call is not None and isinstance(name, str):
                    call.recordings_done[name] = kind == "RecordingFinished"
                    call.poke()
            return
        log.debug("ari event %s ignored", kind)

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

    # ------------------------------------------------------------ callers

    def _new_call(self, channel: Channel) -> AriCall:
        call = AriCall(channel.id, channel.caller_number, self._on_command)
        self.calls[channel.id] = call
        return call

    def _stasis_start(self, channel: Channel, args: tuple[str, ...]) -> None:
        if args and args[0] == "agent":
            self._agent_answered(channel)
        elif args and args[0] in self.outbound:
            self.outbound[args[0]].stasis_start(channel, args[1:])
        elif is_agent_leg(channel.id):
            self._spawn(None, quietly(lambda: self.client.hangup(channel.id)))
        elif channel.id not in self.calls:
            call = self._new_call(channel)
            dialled = _DIALLED.sub("", args[0])[:32] if args else ""
            self._spawn(call, self._inbound(call, dialled, answer=True))

    async def _inbound(self, call: AriCall, dialled: str, *, answer: bool) -> None:
        """Answer, run the IVR, and queue the caller when the flow says so."""
        try:
            if answer:
                await retry(lambda: self.client.answer(call.call_id))
            channel = AriIvrChannel(
                self.client, call, self.setup, self.service,
                transfer_context=self.transfer_context,
            )
            ctx = CallContext(call.caller_number, self.wall_clock(), dialled or None)
            outcome = await run_flow(self.setup.flows[self.flow], ctx, channel)
        except AriNotFound:
            return  # the caller left before we could answer
        except AriError as exc:
            log.warning("ivr for %s failed (%s); continuing in the dialplan", call.call_id, exc)
            await self._fallback(call)
            return
        except CallerHungUp:
            raise
        except Exception:  # a bug in a flow must not leave the caller in silence
            log.exception("ivr for %s failed; continuing in the dialplan", call.call_id)
            await self._fallback(call)
            return
        if call.hung_up or call.phase is not Phase.IVR:
            return
        if outcome.status in ("queued", "hop_limit") and outcome.queue is not None:
            slot = QueueSlot(
                outcome.queue, outcome.language, outcome.country, outcome.priority,
                outcome.variables.get("customer_id"), self.wall_clock(),
            )
            await self._queue(call, slot, arrived_at=None)

    def adopt_outbound(
        self,
        channel_id: str,
        number: str,
        converse: Callable[[AriCall], Coroutine[Any, Any, QueueSlot | None]],
    ) -> AriCall:
        """Take an answered outbound leg as a caller: ``converse`` runs its IVR and says where
        to queue it (None: not queued); from then on it is held and offered like any caller."""
        call = AriCall(channel_id, number, self._on_command)
        self.calls[channel_id] = call
        self._spawn(call, self._outbound(call, converse))
        return call

    async def _outbound(
        self, call: AriCall, converse: Callable[[AriCall], Coroutine[Any, Any, QueueSlot | None]]
    ) -> None:
        slot = await converse(call)
        if slot is not None and not call.hung_up and call.phase is Phase.IVR:
            await self._queue(call, slot, arrived_at=None)

    async def _fallback(self, call: AriCall) -> None:
        """The engine cannot serve the call: the dialplan's line after Stasis() takes it."""
        call.phase = Phase.LEAVING
        if not await quietly(lambda: self.client.continue_in_dialplan(call.call_id)):
            await quietly(lambda: self.client.hangup(call.call_id))

    async def _queue(self, call: AriCall, slot: QueueSlot, arrived_at: float | None) -> None:
        """Hold the caller with music in a bridge of its own, then give the call to the router."""
        try:
            async with call.lock:
                if call.hold_bridge is None:
                    call.hold_bridge = await self._create_bridge("holding", HOLD_PREFIX, call)
                    await retry(lambda: self.client.add_channel(
                        call.hold_bridge or "", call.call_id, role="participant"))
                await quietly(lambda: self.client.start_moh(call.hold_bridge or "",
                                                            self.moh_class))
                await quietly(lambda: self.client.set_channel_var(
                    call.call_id, QUEUED_VAR, slot.encode()))
        except AriError as exc:
            if not call.hung_up:
                log.warning("hold for %s failed (%s); continuing in the dialplan",
                            call.call_id, exc)
                await self._fallback(call)
            return
        if call.hung_up:
            return
        call.slot = slot
        call.phase = Phase.HOLD
        self.service.call_arrived(call, call.call_id, slot.queue, slot.language, slot.country,
                                  slot.priority, slot.customer_id, arrived_at)

    async def _create_bridge(self, kind: str, prefix: str, call: AriCall) -> str:
        bridge_id = prefix + call.next_id("b").removeprefix("acd-b-")
        # A conflict means an earlier, timed-out try got through: the bridge is ours already.
        with contextlib.suppress(AriConflict):
            await retry(lambda: self.client.create_bridge(kind, name=bridge_id,
                                                          bridge_id=bridge_id))
        return bridge_id

    # ------------------------------------------------------------ hangups

    def _channel_gone(self, channel_id: str, cause: int) -> None:
        leg = self.legs.get(channel_id)
        if leg is not None:
            self._agent_gone(leg, cause)
            return
        call = self.calls.get(channel_id)
        if call is not None:
            self._caller_gone(call)
            return
        for outbound in self.outbound.values():
            outbound.channel_gone(channel_id, cause)

    def _caller_gone(self, call: AriCall) -> None:
        """The caller hung up (or left for the dialplan): end the call in every state."""
        if call.phase is Phase.ENDED:
            return
        call.phase = Phase.ENDED
        call.mark_hung_up()
        self.calls.pop(call.call_id, None)
        # (Entries whose IVR stopped waiting for the report are dropped here.)
        for cid in [c for c, gone in self._recording_after_hangup.items()
                    if not gone.recordings_open]:
            del self._recording_after_hangup[cid]
        if call.recordings_open:
            self._recording_after_hangup[call.call_id] = call
        if not call.unmanaged and self.service.owner_of(call.call_id) is call:
            self.service.hangup(call.call_id)  # a ringing offer comes back as CancelOffer
        self._spawn(None, self._cleanup(call, hang_up_caller=False))

    def _agent_gone(self, leg: AgentLeg, cause: int) -> None:
        """An agent leg ended: the talk is over, or the offer failed (ring-no-answer, busy)."""
        self.legs.pop(leg.channel_id, None)
        call = self.calls.get(leg.call_id)
        if call is None or call.leg is not leg:
            return
        call.leg = None
        managed = not call.unmanaged and self.service.owner_of(call.call_id) is call
        if leg.answered:
            call.phase = Phase.ENDED
            call.mark_hung_up()
            self.calls.pop(call.call_id, None)
            if managed:
                self.service.hangup(call.call_id)  # the agent goes to wrap-up
            self._spawn(None, self._cleanup(call, hang_up_caller=True))
            return
        if call.phase is Phase.RINGING:
            call.phase = Phase.HOLD
        if managed:
            self.service.offer_failed(call.call_id, _FAIL_REASONS.get(cause, "unavailable"))

    async def _cleanup(self, call: AriCall, *, hang_up_caller: bool) -> None:
        """Hang up what is left of the call and destroy its bridges."""
        if call.ask_task is not None:
            call.ask_task.cancel()
        async with call.lock:
            leg = call.leg
            if leg is not None:
                call.leg = None
                leg.cancelled = True
                self.legs.pop(leg.channel_id, None)
                await quietly(lambda: self.client.hangup(leg.channel_id))
            if hang_up_caller:
                await quietly(lambda: self.client.hangup(call.call_id))
            for bridge in (call.hold_bridge, call.talk_bridge):
                if bridge is not None:
                    await quietly(partial(self.client.destroy_bridge, bridge))
            call.hold_bridge = call.talk_bridge = None

    # ------------------------------------------------------------ router commands

    def _on_command(self, call: AriCall, command: Command) -> None:
        match command:
            case Offer():
                self._offer(call, command)
            case CancelOffer(agent_id=agent_id):
                leg = call.leg
                if leg is not None and leg.agent_id == agent_id:
                    call.leg = None
                    leg.cancelled = True
                    self.legs.pop(leg.channel_id, None)
                    if call.phase is Phase.RINGING:
                        call.phase = Phase.HOLD
                    self._spawn(None, quietly(lambda: self.client.hangup(leg.channel_id)))
            case Overflow(target=target):
                call.phase = Phase.LEAVING
                self._spawn(call, self._overflow(call, target))
            case OfferCallback():
                if call.phase is Phase.HOLD and call.ask_task is None:
                    call.ask_task = self._spawn(call, self._ask_callback(call))

    def _offer(self, call: AriCall, offer: Offer) -> None:
        if call.leg is not None:  # the router never does this; a stale leg must not linger
            self._on_command(call, CancelOffer(call.call_id, call.leg.agent_id, "replaced"))
        leg = AgentLeg(call.next_id("agent"), offer.agent_id, call.call_id)
        call.leg = leg
        call.phase = Phase.RINGING
        self.legs[leg.channel_id] = leg
        self._spawn(call, self._originate(call, leg, offer))

    async def _originate(self, call: AriCall, leg: AgentLeg, offer: Offer) -> None:
        """Ring the agent; a failure to even start ringing is a failed offer."""
        try:
            await retry(lambda: self.client.originate(
                offer.endpoint,
                app=self.app,
                app_args=["agent", call.call_id],
                caller_id=_caller_id(call.caller_number),
                timeout=max(1, math.ceil(offer.ring_timeout_s)),
                channel_id=leg.channel_id,
            ))
        except AriConflict:
            pass  # our channel id exists: an earlier, timed-out try got through
        except AriError as exc:
            log.warning("originate to %s for %s failed: %s", offer.agent_id, call.call_id, exc)
            if call.leg is leg:
                self._agent_gone(leg, 0)
            return
        if leg.cancelled:
            await quietly(lambda: self.client.hangup(leg.channel_id))

    def _agent_answered(self, channel: Channel) -> None:
        leg = self.legs.get(channel.id)
        call = self.calls.get(leg.call_id) if leg is not None else None
        if leg is None or call is None or call.leg is not leg:
            # An answer for an offer already withdrawn: release the agent's phone.
            self._spawn(None, quietly(lambda: self.client.hangup(channel.id)))
            return
        if leg.answered:
            return
        leg.answered = True
        call.phase = Phase.TALKING
        if call.ask_task is not None:
            call.ask_task.cancel()
        if not call.unmanaged:
            self.service.offer_answered(call.call_id)
        self._spawn(call, self._connect(call, leg))

    async def _connect(self, call: AriCall, leg: AgentLeg) -> None:
        """Move the caller from hold into a mixing bridge with the agent."""
        for playback_id in list(call.pending_playbacks):
            await quietly(partial(self.client.stop_playback, playback_id))
        try:
            async with call.lock:
                if call.phase is not Phase.TALKING or call.leg is not leg:
                    return
                call.talk_bridge = await self._create_bridge(
                    "mixing,dtmf_events", TALK_PREFIX, call)
                hold, call.hold_bridge = call.hold_bridge, None
                if hold is not None:
                    await quietly(lambda: self.client.remove_channel(hold, call.call_id))
                    await quietly(lambda: self.client.destroy_bridge(hold))
                await retry(lambda: self.client.add_channel(
                    call.talk_bridge or "", [call.call_id, leg.channel_id]))
        except AriError as exc:
            if call.phase is Phase.TALKING and call.leg is leg:
                log.warning("bridging %s failed (%s); ending the call", call.call_id, exc)
                self._agent_gone(leg, 0)

    async def _overflow(self, call: AriCall, target: str) -> None:
        """Hand the caller to the dialplan's overflow destination (voicemail, callback)."""
        context = self.setup.destinations.get(target, self.overflow_context)
        async with call.lock:
            left = await quietly(lambda: self.client.continue_in_dialplan(
                call.call_id, context=context, extension=target, priority=1))
            if not left and not call.hung_up:
                await quietly(lambda: self.client.hangup(call.call_id))

    async def _ask_callback(self, call: AriCall) -> None:
        """Offer a callback on hold: music stops, one key; "1" ends the wait as a callback."""
        flow = self.setup.flows[self.flow]
        slot = call.slot
        number = resolve_caller(call.caller_number, self.setup.known).number
        channel = AriIvrChannel(self.client, call, self.setup, self.service)
        hold = call.hold_bridge or ""
        try:
            if slot is None or number is None or "callback_offer" not in flow.prompts.prompts:
                return  # nobody to call back, or nothing to ask with
            await quietly(lambda: self.client.stop_moh(hold))
            sound = self._sound(flow, "callback_offer", slot.language)
            digit = await channel.collect("callback_offer", slot.language, sound, 1,
                                          self.callback_timeout_s)
            if digit == "1" and call.phase is Phase.HOLD:
                self.service.callback_accepted(call.call_id)
            if self.service.owner_of(call.call_id) is None and not call.hung_up:
                call.phase = Phase.LEAVING
                task = a.CallbackTask(slot.queue, slot.language, slot.country, number,
                                      slot.priority, "offer", None, slot.customer_id)
                await channel.create_callback(task)
                if "callback_confirmed" in flow.prompts.prompts:
                    await channel.play("callback_confirmed", slot.language,
                                       self._sound(flow, "callback_confirmed", slot.language))
                await channel.hangup("callback")
                return
        finally:
            call.ask_task = None
        # An offer made during the question rings with the caller still in the holding bridge.
        if call.phase in (Phase.HOLD, Phase.RINGING):
            await quietly(lambda: self.client.start_moh(hold, self.moh_class))

    def _sound(self, flow: Any, prompt: str, language: str) -> str:
        langs = flow.prompts.prompts[prompt].languages
        lang = language if language in langs else self.setup.known.default_language
        return str(flow.prompts.sound_for(prompt, lang))

    # ------------------------------------------------------------ reconnect and restart

    async def _reconcile(self) -> None:
        """After a websocket drop: end what vanished, pick up what happened, drop leftovers."""
        snap = await take_snapshot(self.client)
        for call in list(self.calls.values()):
            if call.call_id not in snap.channels or (
                call.call_id not in snap.in_stasis and call.phase is not Phase.LEAVING
            ):
                self._caller_gone(call)
                continue
            leg = call.leg
            if leg is not None:
                agent_channel = snap.channels.get(leg.channel_id)
                if agent_channel is None:
                    self._agent_gone(leg, 0)
                elif leg.channel_id in snap.in_stasis and not leg.answered:
                    self._agent_answered(agent_channel)
            for playback_id in list(call.pending_playbacks):
                self._spawn(call, self._check_playback(call, playback_id))
        self._drop_leftovers(snap)
        self.reconciliations += 1

    async def _reconcile_later(self, attempts: int = 10, delay: float = 1.0) -> None:
        """Asterisk did not answer the snapshot: try again until it does."""
        for attempt in range(1, attempts + 1):
            await asyncio.sleep(delay * attempt)
            try:
                await self._reconcile()
            except AriError as exc:
                log.warning("ari reconcile attempt %d failed: %s", attempt, exc)
            else:
                return

    def _drop_leftovers(self, snap: Snapshot) -> None:
        live = {b for c in self.calls.values() for b in (c.hold_bridge, c.talk_bridge) if b}
        for bridge in snap.bridges.values():
            if is_our_bridge(bridge.id) and bridge.id not in live:
                self._spawn(None, quietly(partial(self.client.destroy_bridge, bridge.id)))
        for channel_id in snap.channels:
            if is_agent_leg(channel_id) and channel_id not in self.legs:
                self._spawn(None, quietly(partial(self.client.hangup, channel_id)))

    async def _check_playback(self, call: AriCall, playback_id: str) -> None:
        try:
            await self.client.get_playback(playback_id)
        except AriNotFound:
            call.playback_finished(playback_id)  # it ended while we could not hear it

    async def _adopt(self) -> None:
        """Cold start: take over the calls Asterisk kept while no engine was running."""
        snap = await take_snapshot(self.client)
        callers = [c for c in snap.in_stasis if c in snap.channels and not c.startswith("acd-")]
        queued: dict[str, str | None] = {}
        for channel_id in callers:
            queued[channel_id] = await self._queued_var(channel_id)
        plan = plan_adoption(snap, queued)
        for talk in plan.talks:
            call = self._new_call(talk.caller)
            call.unmanaged, call.phase, call.talk_bridge = True, Phase.TALKING, talk.bridge
            leg = AgentLeg(talk.agent_leg, "", call.call_id, answered=True)
            call.leg = leg
            self.legs[leg.channel_id] = leg
        now, wall = self.service.now(), self.wall_clock()
        for item in plan.requeue:
            call = self._new_call(item.channel)
            call.hold_bridge = item.hold_bridge
            arrived_at = now - max(0.0, wall - item.arrived_epoch)
            await self._queue(call, item.slot, arrived_at)
        for channel in plan.restart_ivr:
            call = self._new_call(channel)
            if (bridge := snap.bridge_of(channel.id)) is not None:
                await quietly(partial(self.client.remove_channel, bridge.id, channel.id))
            self._spawn(call, self._inbound(call, channel.dialplan.exten, answer=True))
        for channel_id in plan.hangup_legs:
            self._spawn(None, quietly(partial(self.client.hangup, channel_id)))
        for bridge_id in plan.destroy_bridges:
            self._spawn(None, quietly(partial(self.client.destroy_bridge, bridge_id)))
        if plan.requeue or plan.talks or plan.restart_ivr:
            log.info("ari cold start adopted %d queued, %d talking, %d in ivr",
                     len(plan.requeue), len(plan.talks), len(plan.restart_ivr))

    async def _queued_var(self, channel_id: str) -> str | None:
        try:
            return await retry(lambda: self.client.get_channel_var(channel_id, QUEUED_VAR))
        except AriError:
            return None
