"""The Stasis application ``acd``: the engine holds each call from ``Stasis(acd)`` to its end.

A caller entering Stasis is answered and walked through the ``main`` IVR flow; a queue outcome
puts the caller into a holding bridge of its own with music on hold and into the router
(:mod:`acd.asterisk.ari.inbound`). From then on the call's
:class:`~acd.core.call.CallMachine` decides: the router's commands and Asterisk's events go
in, its actions come out as ARI requests (:mod:`acd.asterisk.ari.commands`): an offer
originates a leg to the agent, the agent's StasisStart is the answer and bridges both in a
mixing bridge, a leg destroyed unanswered is ring-no-answer. Either side hanging up ends the
call; every bridge the engine made is destroyed. On a websocket drop the engine reconciles
with what Asterisk holds; on a cold start it adopts what it finds
(:mod:`acd.asterisk.ari.adoption`).

Event handlers only change state and schedule tasks, so events are handled in arrival order and
the router is never entered from two places at once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from acd.asterisk.ari.adoption import Adoption
from acd.asterisk.ari.client import AriError, backoff_delay
from acd.asterisk.ari.models import (
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
    describe,
)
from acd.asterisk.ari.state import OVERFLOW_CONTEXT, OutboundLegs
from acd.core.agent_states import SITE_DOWN
from acd.core.call import Lost

__all__ = ["OVERFLOW_CONTEXT", "OutboundLegs", "StasisApp"]

log = logging.getLogger(__name__)


class StasisApp(Adoption):
    """Runs every call of one Stasis application over ARI against the router service."""

    async def run(self) -> None:
        """Handle events until cancelled or the client is closed; calls stay in Asterisk for
        the next start.

        Supervised: whatever ends the event stream (a refused login, a bug) is logged with the
        last event handled, and the stream is opened again after a backoff; the calls are kept
        and reconciled as after any reconnect.
        """
        try:
            while True:
                try:
                    await self._consume()
                except Exception as exc:  # CancelledError is not an Exception: it ends run()
                    self._failures += 1
                    log.error("ari application failed (%s) after event %s; restart %d",
                              type(exc).__name__, describe(self.last_event), self._failures,
                              exc_info=None if isinstance(exc, AriError) else exc)
                else:
                    if self.client.closed:
                        return
                    self._failures += 1
                    log.error("ari event stream ended after event %s; restart %d",
                              describe(self.last_event), self._failures)
                self.restarts += 1
                await asyncio.sleep(backoff_delay(self._failures, self._restart_rng,
                                                  self.client.backoff_initial,
                                                  self.client.backoff_max))
        finally:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _consume(self) -> None:
        async for event in self.client.events():
            self.last_event = event
            if isinstance(event, WebsocketConnected | WebsocketReconnected):
                self._failures = 0  # connected again: the next failure starts the backoff anew
            try:
                await self.handle(event)
            except Exception:  # one bad event must not end the application
                log.exception("ari event %s not handled", describe(event))

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
            case WebsocketConnected() if self.ready.is_set():
                # The stream opened again after a failure: the calls are still ours.
                await self.handle(WebsocketReconnected(application=self.app))
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

    def pbx_down(self) -> int:
        """The PBX is down (site outage): every call it held is lost to the engine. A queued
        call ends in the router (``Lost``), a caller in the IVR is dropped; nothing is asked of
        the PBX (its bridges and legs are left to the adoption after the reconnect, which also
        takes back the callers still in Stasis by then). Returns how many calls ended."""
        calls = list(self.calls.values())
        for call in calls:
            for task in list(call.tasks):  # its IVR, its steps waiting on the PBX
                task.cancel()
            if call.machine is not None:
                call.mark_hung_up()
                self.feed(call, Lost(SITE_DOWN))
            call.todo.clear()  # a worker the feed started finds nothing to ask the PBX
            if self.calls.get(call.call_id) is call:
                del self.calls[call.call_id]
            if call.leg is not None:
                self.legs.pop(call.leg.channel_id, None)
        return len(calls)

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
