"""The fake Asterisk's world, without the network: what happens to channels, bridges and
playbacks, and which events each change produces, as the recordings from Asterisk 22 show.

Callers enter Stasis, agents are originated and ring, answer, stay silent (ring-no-answer)
or are busy, channels enter and leave bridges, prompts play, the dialplan continues. Where no
recording exists the world does what Asterisk's ARI documentation says; such places are marked
"not recorded". As recorded, a caller that entered Stasis from the dialplan ends with StasisEnd
and no ChannelDestroyed (the app is no longer subscribed to it), whereas an agent leg
originated with ``app=`` ends with ChannelDestroyed after its StasisEnd.

:class:`~acd.testing.fake_ari.FakeAri` serves this world over HTTP and a websocket.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from acd.testing.app_args import array_writes
from acd.testing.ari_objects import (
    CAUSE_TEXT,
    MEDIA_SECONDS,
    AgentScript,
    FakeBridge,
    FakeChannel,
    FakePlayback,
    Scheduler,
    parse_caller_id,
    stamp,
)


class AriWorld:
    """Asterisk as ARI shows it, without the network: channels, bridges, playbacks,
    recordings, and the events each change produces (kept in :attr:`event_log`).

    Time comes from `scheduler` (its ``call_later``: an asyncio loop, or a manual one);
    `speed` divides every duration (media, ringing, talk time).
    """

    def __init__(
        self,
        *,
        app: str = "acd",
        speed: float = 1.0,
        seed: int = 0,
        media_seconds: Mapping[str, float] | None = None,
        default_media_s: float = 1.0,
        default_agent: AgentScript | None = None,
        system_name: str | None = None,
        scheduler: Scheduler,
    ) -> None:
        self.scheduler = scheduler
        self.app = app
        self.speed = speed
        self.media_seconds = {**MEDIA_SECONDS, **(media_seconds or {})}
        self.default_media_s = default_media_s
        self.default_agent = default_agent or AgentScript()
        #: Channels' absolute timeouts (``TIMEOUT(absolute)``), and those that fired (in order).
        self.absolute_timers: dict[str, Any] = {}
        self.timed_out: list[str] = []
        self.asterisk_id = "02:fc:00:00:00:01"
        #: ``systemname`` of asterisk.conf: Asterisk prefixes every unique id with it, which
        #: keeps the channel ids of two PBXs apart (None: no prefix, as by default).
        self.system_name = system_name
        self._rng = random.Random(seed)
        self._epoch = 1795609000
        self._seq = 0
        self.channels: dict[str, FakeChannel] = {}
        self.bridges: dict[str, FakeBridge] = {}
        self.playbacks: dict[str, FakePlayback] = {}
        #: Live recordings by name (ARI LiveRecording objects); not recorded from Asterisk:
        #: shaped and ordered as res_stasis_recording.c and the ARI documentation say.
        self.recordings: dict[str, dict[str, Any]] = {}
        self.agent_scripts: dict[str, AgentScript] = {}
        #: Every event emitted (delivered or not), in order.
        self.event_log: list[dict[str, Any]] = []

    # ------------------------------------------------------------ test controls

    def script_agent(self, endpoint: str, script: AgentScript) -> None:
        """Make originates to `endpoint` (e.g. ``Local/1001@agents``) behave as `script`."""
        self.agent_scripts[endpoint] = script

    def inject_call(
        self,
        number: str = "+380441234567",
        name: str = "Olga",
        args: Sequence[str] = ("8800100",),
        *,
        context: str = "stasis",
        exten: str | None = None,
        language: str = "en",
        channel_name: str | None = None,
    ) -> str:
        """A caller reaches ``Stasis(app,args...)``: StasisStart in state Ring. Returns its id."""
        chan = FakeChannel(
            id=self._uniqueid(),
            name=channel_name or f"PJSIP/trunk-{self._seq:08x}",
            kind="caller",
            state="Ring",
            caller=(name, number),
            connected=(name, number),
            context=context,
            exten=exten or (args[0] if args else "s"),
            app_name="Stasis",
            app_data=",".join([self.app, *args]),
            creationtime=stamp(),
            language=language,
            in_stasis=True,
            args=tuple(args),
        )
        self.channels[chan.id] = chan
        self._emit("StasisStart", args=list(chan.args), channel=chan.json())
        return chan.id

    def hangup(self, channel_id: str, cause: int = 16) -> None:
        """The far end hangs up: a caller (HangupRequest, leave bridge, StasisEnd) or an agent."""
        chan = self.channels[channel_id]
        if chan.kind == "caller_leg1" and chan.partner in self.channels:
            chan = self.channels[chan.partner]  # the Stasis leg is the one the app sees
        if chan.kind == "agent" and chan.in_stasis:
            self._agent_hangs_up(chan.id)
        else:
            self._hangup(chan, cause, soft=False)

    def agent_answers(self, channel_id: str) -> None:
        """The agent's phone on an originated leg answers now, whatever its script says."""
        chan = self.channels[channel_id]
        self._cancel_timers(chan)
        self._agent_answers(channel_id)

    def channel_json(self, channel_id: str) -> dict[str, Any]:
        """The channel as ARI would show it."""
        return self.channels[channel_id].json()

    def stasis_channel_ids(self) -> list[str]:
        """Channels currently in the Stasis application."""
        return [c.id for c in self.channels.values() if c.in_stasis]

    # ------------------------------------------------------------ recordings

    def _new_recording(self, chan: FakeChannel, name: str, fmt: str) -> dict[str, Any]:
        """A queued recording; it starts when :meth:`_start_recording` runs."""
        rec = {"name": name, "format": fmt, "state": "queued", "target_uri": f"channel:{chan.id}"}
        self.recordings[name] = rec
        return rec

    def _start_recording(self, name: str) -> None:
        rec = self.recordings.get(name)
        if rec is not None:
            rec["state"] = "recording"
            self._emit("RecordingStarted", recording=dict(rec))

    def finish_recording(self, name: str, *, failed: bool = False) -> None:
        """The recording ends (the caller pressed # or the maximum length was reached)."""
        self._end_recording(name, "failed" if failed else "done")

    def _end_recording(self, name: str, state: str) -> None:
        rec = self.recordings.pop(name, None)
        if rec is not None:
            rec["state"] = state
            kind = "RecordingFinished" if state == "done" else "RecordingFailed"
            self._emit(kind, recording=rec)

    # ------------------------------------------------------------ events

    def _emit(self, kind: str, **fields: Any) -> None:
        event = {"type": kind, "timestamp": stamp(), **fields}
        event["asterisk_id"] = self.asterisk_id
        event["application"] = self.app
        self.event_log.append(event)
        self._publish(json.dumps(event))

    def _publish(self, text: str) -> None:
        """Hand an event to whoever listens: nobody here (see :attr:`event_log`); the server
        adapter sends it on the websocket."""

    def _later(self, chan: FakeChannel, seconds: float, fn: Callable[..., None], *args: Any
               ) -> None:
        timer = self.scheduler.call_later(seconds / self.speed, fn, *args)
        chan.timers.append(timer)

    def _uniqueid(self) -> str:
        self._seq += 1
        if self.system_name:
            return f"{self.system_name}-{self._epoch}.{self._seq}"
        return f"{self._epoch}.{self._seq}"

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    # ------------------------------------------------------------ call flows

    def _set_app(self, chan: FakeChannel, app_name: str, app_data: str = "") -> None:
        chan.app_name, chan.app_data = app_name, app_data
        self._emit(
            "ChannelDialplan",
            dialplan_app=app_name,
            dialplan_app_data=app_data,
            channel=chan.json(),
        )

    def _leg2(self, chan: FakeChannel) -> FakeChannel | None:
        return self.channels.get(chan.partner) if chan.partner else None

    def _dial_start(self, agent_id: str, timeout: int) -> None:
        agent = self.channels.get(agent_id)
        if agent is None:
            return
        script = self.agent_scripts.get(agent.endpoint, self.default_agent)
        self._dial(agent, "")
        leg2 = self._leg2(agent)
        if script.busy:
            if leg2 is not None:
                self._set_app(leg2, "Busy")
                self._emit("ChannelHangupRequest", cause=17, channel=leg2.json())
            self._dial(agent, "BUSY")
            self._destroy(agent, 17)  # not recorded: shaped like the recorded RONA ending
            return
        if script.answer_after == 0:
            self._agent_answers(agent.id)
            return
        if leg2 is not None:
            self._set_app(leg2, "Ringing")
        agent.state = "Ringing"
        self._emit("ChannelStateChange", channel=agent.json())
        if leg2 is not None:
            self._set_app(leg2, "Wait", "30")
        self._dial(agent, "RINGING")
        answers = script.answer_after is not None and (timeout < 0 or script.answer_after < timeout)
        if answers and script.answer_after is not None:
            self._later(agent, script.answer_after, self._agent_answers, agent.id)
        elif timeout >= 0:
            self._later(agent, timeout, self._ring_no_answer, agent.id)

    def _dial(self, agent: FakeChannel, status: str) -> None:
        self._emit(
            "Dial",
            dialstatus=status,
            forward="",
            dialstring=agent.dialstring,
            peer=agent.json(),
        )

    def _ring_no_answer(self, agent_id: str) -> None:
        agent = self.channels.get(agent_id)
        if agent is None:
            return
        leg2 = self._leg2(agent)
        if leg2 is not None:
            self._emit("ChannelHangupRequest", cause=19, channel=leg2.json())
        self._destroy(agent, 19)

    def _agent_answers(self, agent_id: str) -> None:
        agent = self.channels.get(agent_id)
        if agent is None:
            return
        leg2 = self._leg2(agent)
        if leg2 is not None:
            self._set_app(leg2, "Answer")
            leg2.state = "Up"
            self._emit("ChannelStateChange", channel=leg2.json())
        agent.state = "Up"
        self._emit("ChannelStateChange", channel=agent.json())
        self._dial(agent, "ANSWER")
        agent.app_name, agent.app_data = "Stasis", ",".join([self.app, *agent.args])
        agent.variables["STASISSTATUS"] = ""
        self._emit("ChannelVarset", variable="STASISSTATUS", value="", channel=agent.json())
        agent.in_stasis = True
        self._emit("StasisStart", args=list(agent.args), channel=agent.json())
        script = self.agent_scripts.get(agent.endpoint, self.default_agent)
        if script.talk_time is not None:
            self._later(agent, script.talk_time, self._agent_hangs_up, agent.id)

    def _agent_hangs_up(self, agent_id: str) -> None:
        """The recorded order when the agent's phone hangs up during a bridged call."""
        agent = self.channels.get(agent_id)
        if agent is None:
            return
        self._cancel_timers(agent)
        leg2 = self._leg2(agent)
        if leg2 is not None:
            self._set_app(leg2, "Hangup")
            self._emit("ChannelHangupRequest", cause=16, soft=True, channel=leg2.json())
        self._emit("ChannelHangupRequest", cause=16, channel=agent.json())
        if leg2 is not None:
            leg2.app_name = ""
            self._emit("ChannelDestroyed", cause=16, cause_txt=CAUSE_TEXT[16], channel=leg2.json())
            del self.channels[leg2.id]
        self._leave_stasis(agent)
        self._destroy(agent, 16)

    def _hangup(self, chan: FakeChannel, cause: int, *, soft: bool) -> None:
        self._cancel_timers(chan)
        extra = {"soft": True} if soft else {}
        self._emit("ChannelHangupRequest", cause=cause, **extra, channel=chan.json())
        # Not recorded: Asterisk's record command returns when the channel hangs up, stores
        # what it has and reports the recording finished, before the channel leaves Stasis.
        for name in [n for n, r in self.recordings.items()
                     if r["target_uri"] == f"channel:{chan.id}"]:
            self._end_recording(name, "done")
        if chan.kind == "agent" and not chan.in_stasis:
            self._dial(chan, "CANCEL")  # not recorded: the offer withdrawn while ringing
        self._leave_stasis(chan)
        if chan.subscribed:
            self._destroy(chan, cause)
        else:
            self._forget(chan)

    def _leave_stasis(self, chan: FakeChannel) -> None:
        for pb in [p for p in self.playbacks.values() if p.channel_id == chan.id]:
            self._finish_playback(pb.id)
        if chan.bridge_id is not None:
            self._leave_bridge(chan)
        if chan.in_stasis:
            chan.in_stasis = False
            self._emit("StasisEnd", channel=chan.json())
            if chan.kind == "agent":
                chan.variables["STASISSTATUS"] = "SUCCESS"
                self._emit(
                    "ChannelVarset", variable="STASISSTATUS", value="SUCCESS", channel=chan.json()
                )

    def _destroy(self, chan: FakeChannel, cause: int) -> None:
        if chan.kind == "agent":
            chan.app_name, chan.app_data = "AppDial2", "(Outgoing Line)"
        text = CAUSE_TEXT.get(cause, "Unknown")
        self._emit("ChannelDestroyed", cause=cause, cause_txt=text, channel=chan.json())
        self._forget(chan)

    def _forget(self, chan: FakeChannel) -> None:
        self._cancel_timers(chan)
        self.channels.pop(chan.id, None)
        if chan.partner is not None:
            partner = self.channels.pop(chan.partner, None)
            if partner is not None:
                self._cancel_timers(partner)

    def _cancel_timers(self, chan: FakeChannel) -> None:
        for timer in chan.timers:
            timer.cancel()
        chan.timers.clear()

    # ------------------------------------------------------------ bridges and playbacks

    def _enter_bridge(self, chan: FakeChannel, bridge: FakeBridge) -> None:
        if chan.bridge_id is not None:
            self._leave_bridge(chan)
        bridge.channels.append(chan.id)
        chan.bridge_id = bridge.id
        self._emit("ChannelEnteredBridge", bridge=bridge.json(), channel=chan.json())

    def _pair_up(self, bridge: FakeBridge) -> None:
        """Two parties in a mixing bridge: BRIDGEPEER and connected line, as recorded."""
        if bridge.bridge_type != "mixing" or len(bridge.channels) != 2:
            return
        first, second = (self.channels[c] for c in bridge.channels)
        for chan, peer in ((first, second), (second, first)):
            chan.variables["BRIDGEPEER"] = peer.name
            self._emit("ChannelVarset", variable="BRIDGEPEER", value=peer.name, channel=chan.json())
        for chan, peer in ((second, first), (first, second)):
            chan.connected = peer.caller
            self._emit("ChannelConnectedLine", channel=chan.json())
        for chan, peer in ((first, second), (second, first)):
            leg2 = self._leg2(chan) if chan.kind == "agent" else None
            if leg2 is not None and leg2.app_name == "Answer":
                # As recorded: the agent's Local leg moves on in its dialplan (Wait) and learns
                # the caller's id once the two are bridged.
                talk = self.agent_scripts.get(chan.endpoint, self.default_agent).talk_time
                self._set_app(leg2, "Wait", "" if talk is None else f"{talk:g}")
                leg2.caller = peer.caller
                self._emit(
                    "ChannelCallerId",
                    caller_presentation=0,
                    caller_presentation_txt="Presentation Allowed, Not Screened",
                    channel=leg2.json(),
                )

    def _leave_bridge(self, chan: FakeChannel) -> None:
        bridge = self.bridges.get(chan.bridge_id or "")
        chan.bridge_id = None
        if bridge is None:
            return
        if chan.variables.get("BRIDGEPEER"):
            chan.variables["BRIDGEPEER"] = ""
            self._emit("ChannelVarset", variable="BRIDGEPEER", value="", channel=chan.json())
        bridge.channels.remove(chan.id)
        self._emit("ChannelLeftBridge", bridge=bridge.json(), channel=chan.json())

    def _answer_channel(self, chan: FakeChannel) -> None:
        if chan.state != "Up":
            chan.state = "Up"
            self._emit("ChannelStateChange", channel=chan.json())
            partner = self.channels.get(chan.partner or "")
            if partner is not None:
                partner.state = "Up"

    def _set_var_on(self, chan: FakeChannel, variable: str, value: str) -> None:
        writes = array_writes(variable, value)
        if writes is not None:  # ARRAY(): each name in turn; no event for the function itself
            for name, part in writes:
                self._set_var_on(chan, name, part)
            return
        if variable == "TIMEOUT(absolute)":
            self._absolute_timeout(chan, float(value or 0))
            return
        chan.variables[variable] = value
        self._emit("ChannelVarset", variable=variable, value=value, channel=chan.json())

    def _absolute_timeout(self, chan: FakeChannel, seconds: float) -> None:
        """Not recorded (Asterisk's TIMEOUT() documentation and pbx.c): a dialplan function,
        so no ChannelVarset; a new value replaces the old, 0 clears it. When it fires the
        channel leaves Stasis and the dialplan continues at ``T`` of its context."""
        old = self.absolute_timers.pop(chan.id, None)
        if old is not None:
            old.cancel()
        if seconds > 0:
            self.absolute_timers[chan.id] = self.scheduler.call_later(
                seconds / self.speed, self._timed_out, chan.id)

    def _timed_out(self, channel_id: str) -> None:
        self.absolute_timers.pop(channel_id, None)
        chan = self.channels.get(channel_id)
        if chan is None or not chan.in_stasis:
            return
        chan.exten, chan.priority = "T", 1
        self.timed_out.append(channel_id)
        self._leave_stasis(chan)

    def _create_bridge_named(self, bridge_id: str, bridge_type: str, name: str) -> FakeBridge:
        bridge = FakeBridge(bridge_id, bridge_type, name, stamp())
        self.bridges[bridge.id] = bridge
        return bridge

    def _destroy_bridge(self, bridge: FakeBridge) -> None:
        for cid in list(bridge.channels):
            self._leave_bridge(self.channels[cid])
        del self.bridges[bridge.id]
        if bridge.watched > 0:
            self._emit("BridgeDestroyed", bridge=bridge.json())  # not recorded

    def _add_to_bridge(self, bridge: FakeBridge, chans: list[FakeChannel]) -> None:
        for chan in chans:
            bridge.watched += 1
            self._enter_bridge(chan, bridge)
        self._pair_up(bridge)

    def _remove_from_bridge(self, bridge: FakeBridge, chans: list[FakeChannel]) -> None:
        for chan in chans:
            bridge.watched -= 1
            self._leave_bridge(chan)

    def _new_playback(self, chan: FakeChannel, media: str, playback_id: str,
                      language: str | None) -> FakePlayback:
        """A queued playback; it starts when :meth:`_start_playback` runs."""
        pb = FakePlayback(
            id=playback_id,
            media_uri=media,
            channel_id=chan.id,
            language=language or chan.language,
        )
        self.playbacks[pb.id] = pb
        return pb

    def _start_playback(self, pb: FakePlayback) -> None:
        pb.state = "playing"
        self._emit("PlaybackStarted", playback=pb.json())
        seconds = sum(
            self.media_seconds.get(uri, self.default_media_s) for uri in pb.media_uri.split(",")
        )
        pb.timer = self.scheduler.call_later(seconds / self.speed, self._finish_playback, pb.id)

    def _finish_playback(self, playback_id: str) -> None:
        pb = self.playbacks.pop(playback_id, None)
        if pb is None:
            return
        if pb.timer is not None:
            pb.timer.cancel()
        pb.state = "done"
        self._emit("PlaybackFinished", playback=pb.json())

    # ------------------------------------------------------------ originate and applications

    def _new_agent(self, endpoint: str, params: Mapping[str, str]) -> FakeChannel:
        resource, _, ctx = endpoint.partition("/")[2].partition("@")
        local = endpoint.startswith("Local/")
        leg1_id = params.get("channelId") or self._uniqueid()
        seq = self._seq
        leg2_id = params.get("otherChannelId") or (
            f"{leg1_id};2" if params.get("channelId") else self._uniqueid()
        )
        base = f"Local/{resource}@{ctx}-{seq:08x}" if local else f"{endpoint}-{seq:08x}"
        caller = parse_caller_id(params.get("callerId", ""))
        agent = FakeChannel(
            id=leg1_id,
            name=base + (";1" if local else ""),
            kind="agent",
            caller=caller,
            context=ctx if local else "default",
            exten=resource if local else "s",
            app_name="AppDial2",
            app_data="(Outgoing Line)",
            creationtime=stamp(),
            subscribed=True,
            args=tuple(a for a in params.get("appArgs", "").split(",") if a),
            dialstring=f"{resource}@{ctx}" if local else resource,
            endpoint=endpoint,
        )
        self.channels[agent.id] = agent
        if local:
            leg2 = FakeChannel(
                id=leg2_id,
                name=base + ";2",
                kind="agent_leg2",
                state="Ring",
                caller=caller,
                context=ctx,
                exten=resource,
                creationtime=agent.creationtime,
                partner=agent.id,
            )
            agent.partner = leg2.id
            self.channels[leg2.id] = leg2
        return agent

    def _originate_caller(self, endpoint: str, params: Mapping[str, str]) -> FakeChannel | None:
        """POST /channels with a dialplan context: as recorded, a Local caller into Stasis.

        Returns the first Local leg; None when `endpoint` is not ``Local/<exten>@<context>``.
        """
        if not endpoint.startswith("Local/") or "@" not in endpoint:
            return None
        exten, _, ctx = endpoint.removeprefix("Local/").partition("@")
        name, number = parse_caller_id(params.get("callerId", ""))
        leg1_id = self._uniqueid()
        seq = self._seq
        leg2_id = self.inject_call(
            number, name, (exten,), context=ctx, channel_name=f"{endpoint}-{seq:08x};2"
        )
        leg1 = FakeChannel(
            id=leg1_id,
            name=f"{endpoint}-{seq:08x};1",
            kind="caller_leg1",
            caller=(name, number),
            connected=(name, number),
            context=ctx,
            exten=exten,
            app_name="AppDial2",
            app_data="(Outgoing Line)",
            creationtime=self.channels[leg2_id].creationtime,
            partner=leg2_id,
        )
        self.channels[leg1_id] = leg1
        self.channels[leg2_id].partner = leg1_id
        return leg1

    def _app_json(self) -> dict[str, Any]:
        return {
            "name": self.app,
            "channel_ids": self.stasis_channel_ids(),
            "bridge_ids": [b.id for b in self.bridges.values() if b.watched > 0],
            "endpoint_ids": [],
            "device_names": [],
            "events_allowed": [],
            "events_disallowed": [],
        }
