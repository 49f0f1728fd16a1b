"""Reconnect and cold start: compare what Asterisk holds with the engine's calls and feed the
differences to their machines (see :mod:`acd.asterisk.ari.reconcile` for the snapshot and
:func:`~acd.asterisk.ari.reconcile.plan_adoption`).

After a websocket drop the engine still has its calls: a caller gone meanwhile is
:class:`~acd.core.call.CallerGone`, a vanished agent leg its end, a leg found in Stasis the
answer that was missed. After a cold start it has nothing: waiting callers come back as
``Adopted(QUEUED, holding=True)`` before the router hears of them again with their first
arrival time. A conversation is rebuilt with its agent: the restart board
(:mod:`acd.service.state`) already put it back on the agent from the engine's own records, so
it is claimed from there; without those records the agent and answer time are read from the
channel variables the engine set (``ACD_TALKING`` on the caller, ``ACD_AGENT`` on the leg) and
the call is adopted into the router (``adopt_call``). Either way the hangup ends it with its
record and the agent's wrap-up. Only a talk whose agent is unknown is left unmanaged (watched
and cleaned up). A ring the board put back goes on: its leg (found by its ``ACD_CALL_ID``) is
watched again, its answer connects, its end unanswered is a ring-no-answer. Without the board
the leg is hung up and the caller re-queued with its place.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from functools import partial
from typing import Protocol

from acd.asterisk.ari.calls import QUEUED_VAR, AgentLeg, AriCall, Phase, QueueSlot, quietly, retry
from acd.asterisk.ari.client import AriError, AriNotFound
from acd.asterisk.ari.commands import AGENT_VAR, CALL_VAR, TALK_VAR
from acd.asterisk.ari.inbound import Inbound
from acd.asterisk.ari.reconcile import (
    Snapshot,
    Talk,
    plan_adoption,
    take_snapshot,
)
from acd.core.call import Adopted, CallMachine, DialFailed
from acd.core.call import Phase as CallPhase
from acd.core.model import RoutingError
from acd.runtime.router_service import CallOwner

log = logging.getLogger(__name__)


class _RestoredCalls(Protocol):
    """Where restored calls wait to be claimed (:class:`acd.service.state.RestartBoard`)."""

    def claim(self, call_id: str, make_owner: Callable[[CallMachine], CallOwner]
              ) -> CallOwner | None:
        """The shell's owner of a restored call (built by ``make_owner``), or None."""


class Adoption(Inbound):
    """Reconciles the engine's calls with Asterisk after a drop, adopts them after a restart."""

    #: Calls the engine's records put back on their agents at start (None: no records).
    restored: _RestoredCalls | None = None

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
        # Callers who entered Stasis while the websocket was down (their StasisStart is lost)
        # are adopted exactly as at a cold start, with the known calls taken out of the view.
        await self._adopt(self._unknown_part(snap))
        self.reconciliations += 1

    def _unknown_part(self, snap: Snapshot) -> Snapshot:
        """What Asterisk holds that the engine does not know: its calls, their agent legs and
        bridges removed (what is left over of them is removed by the adoption)."""
        known = set(self.calls) | set(self.legs) | set(self._recording_after_hangup)
        live = {b for c in self.calls.values() for b in (c.hold_bridge, c.talk_bridge) if b}
        return Snapshot(snap.in_stasis - known,
                        {cid: c for cid, c in snap.channels.items() if cid not in known},
                        {bid: b for bid, b in snap.bridges.items() if bid not in live})

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

    async def _check_playback(self, call: AriCall, playback_id: str) -> None:
        try:
            await self.client.get_playback(playback_id)
        except AriNotFound:
            call.playback_finished(playback_id)  # it ended while we could not hear it

    async def _adopt(self, snap: Snapshot | None = None) -> None:
        """Cold start: take over the calls Asterisk kept while no engine was running (after a
        reconnect: ``snap`` holds only what the engine does not know)."""
        self._start_watchdog()
        if snap is None:
            snap = await take_snapshot(self.client)
        callers = [c for c in snap.in_stasis if c in snap.channels and not c.startswith("acd-")]
        queued: dict[str, str | None] = {}
        for channel_id in callers:
            queued[channel_id] = await self._queued_var(channel_id)
        plan = plan_adoption(snap, queued)
        for talk in plan.talks:
            talking = await self._var(talk.caller.id, TALK_VAR) or ""
            agent, _, answered = talking.partition("|")
            agent = agent or await self._var(talk.agent_leg, AGENT_VAR) or ""
            self._adopt_talk(talk, QueueSlot.decode(queued.get(talk.caller.id) or ""), agent,
                             _epoch(answered))
        rings = await self._ringing_legs(plan.hangup_legs)
        now, wall = self.service.now(), self.wall_clock()
        for item in plan.requeue:
            call = self._new_call(item.channel)
            call.hold_bridge = item.hold_bridge
            if self._claim_ring(call, item.slot, rings.get(call.call_id), snap):
                continue
            arrived_at = now - max(0.0, wall - item.arrived_epoch)
            await self._queue(call, item.slot, arrived_at)
        for channel in plan.restart_ivr:
            call = self._new_call(channel)
            if (bridge := snap.bridge_of(channel.id)) is not None:
                await quietly(partial(self.client.remove_channel, bridge.id, channel.id))
            self._spawn(call, self._inbound(call, channel.dialplan.exten, answer=True))
        for channel_id in plan.hangup_legs:
            if channel_id not in self.legs:  # a restored ring goes on
                self._spawn(None, quietly(partial(self.client.hangup, channel_id)))
        for bridge_id in plan.destroy_bridges:
            self._spawn(None, quietly(partial(self.client.destroy_bridge, bridge_id)))
        if plan.requeue or plan.talks or plan.restart_ivr:
            log.info("ari cold start adopted %d queued, %d talking, %d in ivr",
                     len(plan.requeue), len(plan.talks), len(plan.restart_ivr))

    def _adopt_talk(self, talk: Talk, slot: QueueSlot | None, agent: str,
                    answered_epoch: float | None) -> None:
        """A conversation found in progress: back on its agent in the router, watched by a
        machine in TALKING until it ends (unmanaged only when its agent is unknown)."""
        call = self._new_call(talk.caller)
        call.talk_bridge = talk.bridge
        call.slot = slot or QueueSlot("", "", "")
        leg = AgentLeg(talk.agent_leg, agent or talk.agent_leg, call.call_id, answered=True)
        call.leg = leg
        self.legs[leg.channel_id] = leg
        if self._claim(call):
            return
        self._machine(call, None)
        self.feed(call, Adopted(CallPhase.TALKING, agent_id=leg.agent_id))
        call.unmanaged = True
        if not agent or slot is None:
            return
        now, wall = self.service.now(), self.wall_clock()
        arrived = slot.queued_at_epoch or answered_epoch or wall
        answered = answered_epoch if answered_epoch is not None else wall
        try:
            self.service.adopt_call(call, call.call_id, slot.queue, slot.language,
                                    slot.country, agent,
                                    arrived_at=now - max(0.0, wall - arrived),
                                    answered_at=now - max(0.0, wall - answered),
                                    pbx=self.pbx)
        except RoutingError as exc:
            log.warning("talk %s not put back on agent %s: %s", call.call_id, agent, exc)
            return
        call.unmanaged = False

    def _claim(self, call: AriCall) -> bool:
        """Take over the call from the restart board, if it holds it (its machine already in
        the phase the engine persisted)."""
        if self.restored is None:
            return False

        def take(machine: CallMachine) -> AriCall:
            if self.pbx is not None:
                self.service.arrived_on(call.call_id, self.pbx)
            machine.policy = self._policy()
            machine.holding = call.hold_bridge is not None
            call.machine = machine
            return call

        return self.restored.claim(call.call_id, take) is call

    def _claim_ring(self, call: AriCall, slot: QueueSlot, ring: tuple[str, str] | None,
                    snap: Snapshot) -> bool:
        """A held caller whose ring the board put back: the agent leg (``ring``: its channel
        and agent, from its variables) keeps ringing, or its answer is taken; without the leg
        the ring failed. False when the board does not hold the call."""
        call.slot = slot
        if not self._claim(call):
            call.slot = None
            return False
        machine = call.machine
        assert machine is not None
        agent = machine.agent_id
        if machine.phase is not CallPhase.RINGING or agent is None:
            return True
        if ring is None or ring[1] != agent:
            self.feed(call, DialFailed(agent, "unavailable"))
            return True
        leg = AgentLeg(ring[0], agent, call.call_id)
        call.leg = leg
        self.legs[leg.channel_id] = leg
        channel = snap.channels.get(leg.channel_id)
        if channel is not None and leg.channel_id in snap.in_stasis:
            self._agent_answered(channel)  # answered while no engine ran
        return True

    async def _ringing_legs(self, legs: list[str]) -> dict[str, tuple[str, str]]:
        """Agent legs left over, by the call id they ring for: (leg channel id, agent)."""
        if self.restored is None:
            return {}
        found: dict[str, tuple[str, str]] = {}
        for leg in legs:
            call_id = await self._var(leg, CALL_VAR)
            agent = await self._var(leg, AGENT_VAR)
            if call_id and agent:
                found[call_id] = (leg, agent)
        return found

    async def channel_exists(self, call_id: str) -> bool | None:
        """Whether a restored call's channel still exists in Asterisk (the restart board's
        :class:`~acd.service.state.ChannelProbe` in ARI mode); None when ARI cannot say."""
        try:
            await self.client.get_channel(call_id)
        except AriNotFound:
            return False
        except AriError as exc:
            log.warning("cannot ask ARI about call %s: %s", call_id, exc)
            return None
        return True

    async def _var(self, channel_id: str, name: str) -> str | None:
        try:
            return await retry(lambda: self.client.get_channel_var(channel_id, name))
        except AriError:
            return None

    async def _queued_var(self, channel_id: str) -> str | None:
        try:
            return await retry(lambda: self.client.get_channel_var(channel_id, QUEUED_VAR))
        except AriError:
            return None



def _epoch(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None
