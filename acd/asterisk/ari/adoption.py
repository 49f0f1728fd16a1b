"""Reconnect and cold start: compare what Asterisk holds with the engine's calls and feed the
differences to their machines (see :mod:`acd.asterisk.ari.reconcile` for the snapshot and
:func:`~acd.asterisk.ari.reconcile.plan_adoption`).

After a websocket drop the engine still has its calls: a caller gone meanwhile is
:class:`~acd.core.call.CallerGone`, a vanished agent leg its end, a leg found in Stasis the
answer that was missed. After a cold start it has nothing: waiting callers come back as
``Adopted(QUEUED, holding=True)`` before the router hears of them again with their first
arrival time, conversations as ``Adopted(TALKING)`` (the new router does not know them, so
only their clean-up is left to do).
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial

from acd.asterisk.ari.calls import QUEUED_VAR, AgentLeg, AriCall, Phase, QueueSlot, quietly, retry
from acd.asterisk.ari.client import AriError, AriNotFound
from acd.asterisk.ari.inbound import Inbound
from acd.asterisk.ari.reconcile import (
    Snapshot,
    Talk,
    plan_adoption,
    take_snapshot,
)
from acd.core.call import Adopted
from acd.core.call import Phase as CallPhase

log = logging.getLogger(__name__)


class Adoption(Inbound):
    """Reconciles the engine's calls with Asterisk after a drop, adopts them after a restart."""

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
        if snap is None:
            snap = await take_snapshot(self.client)
        callers = [c for c in snap.in_stasis if c in snap.channels and not c.startswith("acd-")]
        queued: dict[str, str | None] = {}
        for channel_id in callers:
            queued[channel_id] = await self._queued_var(channel_id)
        plan = plan_adoption(snap, queued)
        for talk in plan.talks:
            self._adopt_talk(talk, QueueSlot.decode(queued.get(talk.caller.id) or ""))
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

    def _adopt_talk(self, talk: Talk, slot: QueueSlot | None) -> None:
        """A conversation found in progress: watched by a machine in TALKING until it ends.

        Asterisk does not say which agent talks; the leg's channel id stands for them (the
        new router does not know this call, so it ignores the final report anyway).
        """
        call = self._new_call(talk.caller)
        call.unmanaged, call.talk_bridge = True, talk.bridge
        call.slot = slot or QueueSlot("", "", "")
        leg = AgentLeg(talk.agent_leg, talk.agent_leg, call.call_id, answered=True)
        call.leg = leg
        self.legs[leg.channel_id] = leg
        self._machine(call, None)
        self.feed(call, Adopted(CallPhase.TALKING, agent_id=leg.agent_id))

    async def _queued_var(self, channel_id: str) -> str | None:
        try:
            return await retry(lambda: self.client.get_channel_var(channel_id, QUEUED_VAR))
        except AriError:
            return None

