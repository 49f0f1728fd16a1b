"""Callers entering Stasis: answer, run the IVR, then hold them in a bridge of their own and
give them to the router with a fresh :class:`~acd.core.call.CallMachine`.

Answered callback legs (:mod:`acd.asterisk.ari.outbound`) take the same way after their own
flow. Until the queue the call has no machine: the IVR's hand-backs (transfer, hang-up) and a
failure of the engine itself send the caller to the dialplan directly.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

from acd.asterisk.ari.calls import (
    HOLD_PREFIX,
    QUEUED_VAR,
    AriCall,
    Phase,
    QueueSlot,
    quietly,
    retry,
)
from acd.asterisk.ari.channel import AriIvrChannel
from acd.asterisk.ari.client import AriError, AriNotFound
from acd.asterisk.ari.commands import CallCommands
from acd.asterisk.ari.models import Channel
from acd.asterisk.ari.reconcile import is_agent_leg
from acd.core.call import Adopted, HoldStarted, Queued, Refused
from acd.core.call import Phase as CallPhase
from acd.core.model import DuplicateCall, RoutingError
from ivr.caller import resolve_caller
from ivr.channel import CallerHungUp, run_flow
from ivr.engine import CallContext

log = logging.getLogger(__name__)

_DIALLED = re.compile(r"[^0-9+*#]")


class Inbound(CallCommands):
    """New callers: the IVR, the hold and the hand-over to the router."""

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
        slot = QueueSlot.from_outcome(outcome, self.wall_clock(),
                                      customer_id=outcome.variables.get("customer_id"))
        if slot is not None:
            if self.records is not None:
                # Inbound calls only: a callback the center makes is not the customer calling
                # again (first-call resolution counts the customer's calls).
                self.records.identify(call.call_id, call.caller_number, slot.customer_id)
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
        call.left = True
        if not await quietly(partial(self.client.continue_in_dialplan, call.call_id)):
            await quietly(partial(self.client.hangup, call.call_id))

    async def _queue(self, call: AriCall, slot: QueueSlot, arrived_at: float | None) -> None:
        """Hold the caller with music in a bridge of its own, then give the call to the router
        (``arrived_at``: a caller adopted after a cold start, with its first arrival)."""
        try:
            async with call.lock:
                if call.hold_bridge is None:
                    call.hold_bridge = await self._create_bridge("holding", HOLD_PREFIX, call)
                    await retry(lambda: self.client.add_channel(
                        call.hold_bridge or "", call.call_id, role="participant"))
                marks = [(QUEUED_VAR, slot.encode())]
                if slot.language in self.setup.known.languages:
                    # What Asterisk plays itself from here (the fallback queue, VoiceMail)
                    # speaks the caller's language: only a configured one, never caller text.
                    marks.append(("CHANNEL(language)", slot.language))
                # Music on the bridge and the marks on the channel touch different objects:
                # both at once, one round trip before the router's decision instead of two.
                await asyncio.gather(
                    quietly(lambda: self.client.start_moh(call.hold_bridge or "",
                                                          self.moh_class)),
                    quietly(lambda: self.set_vars(call.call_id, marks)))
        except AriError as exc:
            if not call.hung_up:
                log.warning("hold for %s failed (%s); continuing in the dialplan",
                            call.call_id, exc)
                await self._fallback(call)
            return
        if call.hung_up:
            return
        call.slot = slot
        self._machine(call, resolve_caller(call.caller_number, self.setup.known).number)
        if arrived_at is None:
            self.feed(call, Queued())
            self.feed(call, HoldStarted())
        else:
            self.feed(call, Adopted(CallPhase.QUEUED, holding=True))
        try:
            self.service.call_arrived(call, call.call_id, slot.queue, slot.language,
                                      slot.country, slot.priority, slot.customer_id, arrived_at,
                                      pbx=self.pbx)
        except (DuplicateCall, RoutingError) as exc:
            log.warning("The router refused call %s: %s; continuing in the dialplan.",
                        call.call_id, exc)
            self.feed(call, Refused(type(exc).__name__))
