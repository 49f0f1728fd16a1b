"""A fake Asterisk ARI server on aiohttp that behaves as the recordings from Asterisk 22 show.

It keeps channels, bridges and playbacks, answers the REST calls the engine makes with the same
status codes and body shapes, and sends websocket events in the recorded order and shape
(tests/recordings/asterisk/ari-*.jsonl). Test controls place callers into Stasis, press keys,
hang up, script agents (answer after N s, never answer, busy), drop the websocket and inject
faults. Durations are real asyncio time divided by `speed`, so tests stay fast.

Where no recording exists the fake does what Asterisk's ARI documentation says; such places
are marked "not recorded" below. As recorded, a caller that entered Stasis from the dialplan
ends with StasisEnd and no ChannelDestroyed (the app is no longer subscribed to it), whereas an
agent leg originated with ``app=`` ends with ChannelDestroyed after its StasisEnd.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from aiohttp import WSMsgType, web

from acd.asterisk.ari.client import AriClient, AriError, basic_authorization
from acd.asterisk.ari.models import AriEvent, Event, WebsocketConnected, WebsocketReconnected

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Cause texts as Asterisk prints them in ChannelDestroyed.
CAUSE_TEXT = {
    0: "Unknown",
    16: "Normal Clearing",
    17: "User busy",
    18: "No user responding",
    19: "User alerting, no answer",
    21: "Call Rejected",
    32: "Circuit/channel congestion",
    34: "Circuit/channel congestion",
}
#: ARI hangup reasons and the Q.850 cause each produces.
REASON_CAUSE = {
    "normal": 16,
    "busy": 17,
    "congestion": 34,
    "no_answer": 19,
    "timeout": 18,
    "rejected": 21,
    "unallocated": 1,
    "normal_unspecified": 31,
    "number_incomplete": 28,
    "codec_mismatch": 58,
    "interworking": 127,
    "failure": 38,
    "answered_elsewhere": 26,
}
#: DELETE /channels/{id} without a reason: Asterisk 22 reported cause 32 (recorded).
DEFAULT_API_HANGUP_CAUSE = 32
#: Media lengths in seconds (beep measured in the recording); others use `default_media_s`.
MEDIA_SECONDS = {"sound:beep": 0.44, "sound:tt-monkeys": 10.0}
DTMF_DIGITS = frozenset("0123456789*#ABCD")
_AUTH_REQUIRED = '{"message":"Authentication required"}'


@dataclass
class AgentScript:
    """How an agent's phone behaves when the engine originates to it.

    `answer_after` seconds until answer (None: never, so the ring timeout fires: RONA);
    `busy` rejects at once; `talk_time` seconds after answering the agent hangs up (None: never).
    """

    answer_after: float | None = 0.0
    busy: bool = False
    talk_time: float | None = None


@dataclass(frozen=True)
class FakeRequest:
    """One REST request the fake served, for assertions."""

    method: str
    path: str
    params: Mapping[str, str]
    status: int
    body: Any = None


@dataclass
class _Chan:
    id: str
    name: str
    kind: str  # caller | caller_leg1 | agent | agent_leg2
    state: str = "Down"
    caller: tuple[str, str] = ("", "")
    connected: tuple[str, str] = ("", "")
    context: str = ""
    exten: str = ""
    priority: int = 1
    app_name: str = ""
    app_data: str = ""
    creationtime: str = ""
    language: str = "en"
    in_stasis: bool = False
    subscribed: bool = False  # originated with app=: events keep coming until destroyed
    bridge_id: str | None = None
    partner: str | None = None  # the other leg of a Local channel pair
    args: tuple[str, ...] = ()
    dialstring: str = ""
    endpoint: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    timers: list[asyncio.TimerHandle] = field(default_factory=list)

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "protocol_id": "",
            "caller": {"name": self.caller[0], "number": self.caller[1]},
            "connected": {"name": self.connected[0], "number": self.connected[1]},
            "accountcode": "",
            "dialplan": {
                "context": self.context,
                "exten": self.exten,
                "priority": self.priority,
                "app_name": self.app_name,
                "app_data": self.app_data,
            },
            "creationtime": self.creationtime,
            "language": self.language,
        }


@dataclass
class _Bridge:
    id: str
    bridge_type: str
    name: str
    creationtime: str
    channels: list[str] = field(default_factory=list)
    moh_class: str | None = None
    watched: int = 0  # addChannel subscribes the app to the bridge, removeChannel unsubscribes

    def json(self) -> dict[str, Any]:
        technology = "holding_bridge" if self.bridge_type == "holding" else "simple_bridge"
        return {
            "id": self.id,
            "technology": technology,
            "bridge_type": self.bridge_type,
            "bridge_class": "stasis",
            "creator": "Stasis",
            "name": self.name,
            "channels": list(self.channels),
            "creationtime": self.creationtime,
            "video_mode": "talker",
        }


@dataclass
class _Playback:
    id: str
    media_uri: str
    channel_id: str
    language: str
    state: str = "queued"
    timer: asyncio.TimerHandle | None = None

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "media_uri": self.media_uri,
            "target_uri": f"channel:{self.channel_id}",
            "language": self.language,
            "state": self.state,
        }


def _stamp() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+0000"


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"message": message}, status=status)


def _parse_caller_id(text: str) -> tuple[str, str]:
    """``Olga <+380441234567>`` -> ("Olga", "+380441234567"); a bare number has no name."""
    if "<" in text and text.endswith(">"):
        name, _, number = text[:-1].partition("<")
        return name.strip().strip('"'), number.strip()
    return "", text.strip()


class FakeAri:
    """A fake Asterisk speaking ARI on 127.0.0.1 (port chosen by the OS).

    Use as ``async with FakeAri() as fake:`` then point `AriClient(fake.url, fake.username,
    fake.password)` at it. `speed` divides every duration (media, ringing, talk time).
    """

    def __init__(
        self,
        *,
        username: str = "acd",
        password: str = "fake-secret",
        app: str = "acd",
        speed: float = 1.0,
        seed: int = 0,
        media_seconds: Mapping[str, float] | None = None,
        default_media_s: float = 1.0,
        default_agent: AgentScript | None = None,
    ) -> None:
        self.username = username
        self.password = password
        self.app = app
        self.speed = speed
        self.media_seconds = {**MEDIA_SECONDS, **(media_seconds or {})}
        self.default_media_s = default_media_s
        self.default_agent = default_agent or AgentScript()
        self.asterisk_id = "02:fc:00:00:00:01"
        self._rng = random.Random(seed)
        self._epoch = 1795609000
        self._seq = 0
        self.channels: dict[str, _Chan] = {}
        self.bridges: dict[str, _Bridge] = {}
        self.playbacks: dict[str, _Playback] = {}
        #: Live recordings by name (ARI LiveRecording objects); not recorded from Asterisk:
        #: shaped and ordered as res_stasis_recording.c and the ARI documentation say.
        self.recordings: dict[str, dict[str, Any]] = {}
        self.agent_scripts: dict[str, AgentScript] = {}
        #: Every REST request served, and every event emitted (delivered or not), in order.
        self.requests: list[FakeRequest] = []
        self.event_log: list[dict[str, Any]] = []
        self._subscribers: dict[web.WebSocketResponse, asyncio.Queue[str | None]] = {}
        self._subscribed = asyncio.Event()
        self.websocket_connections = 0
        self._fail: list[int] = []
        self._delay: list[float] = []
        self._refuse_ws = 0
        self._reorder_left = 0
        self._reorder_buffer: list[str] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """Base URL to give the client, e.g. ``http://127.0.0.1:40123``."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Bind to 127.0.0.1 on a free port and start serving."""
        app = web.Application(middlewares=[self._record_mw, self._auth_mw, self._fault_mw])
        self._routes(app)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Cancel timers, close websockets, stop serving."""
        for chan in self.channels.values():
            for timer in chan.timers:
                timer.cancel()
        for pb in self.playbacks.values():
            if pb.timer is not None:
                pb.timer.cancel()
        await self.drop_websocket()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeAri:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

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
        chan = _Chan(
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
            creationtime=_stamp(),
            language=language,
            in_stasis=True,
            args=tuple(args),
        )
        self.channels[chan.id] = chan
        self._emit("StasisStart", args=list(chan.args), channel=chan.json())
        return chan.id

    async def send_dtmf(self, channel_id: str, digits: str, *, gap_s: float = 0.35) -> None:
        """The caller presses `digits`, one ChannelDtmfReceived each, `gap_s` apart."""
        bad = [d for d in digits if d not in DTMF_DIGITS]
        if bad:
            raise ValueError(f"Not DTMF digits: {bad!r}; valid: 0-9 * # A-D.")
        for i, digit in enumerate(digits):
            if i:
                await asyncio.sleep(gap_s / self.speed)
            chan = self.channels[channel_id]
            self._emit("ChannelDtmfReceived", digit=digit, duration_ms=100, channel=chan.json())

    def hangup(self, channel_id: str, cause: int = 16) -> None:
        """The far end hangs up: a caller (HangupRequest, leave bridge, StasisEnd) or an agent."""
        chan = self.channels[channel_id]
        if chan.kind == "caller_leg1" and chan.partner in self.channels:
            chan = self.channels[chan.partner]  # the Stasis leg is the one the app sees
        if chan.kind == "agent" and chan.in_stasis:
            self._agent_hangs_up(chan.id)
        else:
            self._hangup(chan, cause, soft=False)

    async def drop_websocket(self, *, refuse_next: int = 0) -> None:
        """Close every event websocket (as an Asterisk restart would); refuse the next N."""
        self._refuse_ws = refuse_next
        self._subscribed.clear()
        for ws, queue in list(self._subscribers.items()):
            queue.put_nowait(None)
            await ws.close(code=1001, message=b"going away")
        self._subscribers.clear()

    def accept_websocket(self) -> None:
        """Stop refusing websocket connections (after ``drop_websocket(refuse_next=...)``)."""
        self._refuse_ws = 0

    def agent_answers(self, channel_id: str) -> None:
        """The agent's phone on an originated leg answers now, whatever its script says."""
        chan = self.channels[channel_id]
        self._cancel_timers(chan)
        self._agent_answers(channel_id)

    async def wait_subscribed(self, timeout: float = 5.0) -> None:
        """Wait until an event websocket is open (events emitted before that are lost)."""
        await asyncio.wait_for(self._subscribed.wait(), timeout)

    def fail_next(self, count: int, status: int = 500) -> None:
        """The next `count` REST requests answer `status` instead of doing anything."""
        self._fail.extend([status] * count)

    def delay_next(self, count: int, seconds: float) -> None:
        """The next `count` REST requests wait `seconds` (not scaled by speed) before answering."""
        self._delay.extend([seconds] * count)

    def reorder_next_events(self, count: int) -> None:
        """Hold the next `count` events and deliver them in reverse order."""
        self._reorder_left = count

    def send_event(self, payload: Mapping[str, Any]) -> None:
        """Deliver an arbitrary event object (e.g. an unknown type) as is."""
        self._deliver(json.dumps(payload))

    def send_raw(self, text: str) -> None:
        """Deliver arbitrary text on the websocket (malformed events)."""
        self._deliver(text)

    def channel_json(self, channel_id: str) -> dict[str, Any]:
        """The channel as ARI would show it."""
        return self.channels[channel_id].json()

    def stasis_channel_ids(self) -> list[str]:
        """Channels currently in the Stasis application."""
        return [c.id for c in self.channels.values() if c.in_stasis]

    # ------------------------------------------------------------ events

    def _emit(self, kind: str, **fields: Any) -> None:
        event = {"type": kind, "timestamp": _stamp(), **fields}
        event["asterisk_id"] = self.asterisk_id
        event["application"] = self.app
        self.event_log.append(event)
        text = json.dumps(event)
        if self._reorder_left > 0:
            self._reorder_buffer.append(text)
            self._reorder_left -= 1
            if self._reorder_left == 0:
                held, self._reorder_buffer = self._reorder_buffer, []
                for item in reversed(held):
                    self._deliver(item)
            return
        self._deliver(text)

    def _deliver(self, text: str) -> None:
        # No subscriber: the event is lost, as with Asterisk while the websocket is down.
        for queue in self._subscribers.values():
            queue.put_nowait(text)

    def _later(self, chan: _Chan, seconds: float, fn: Callable[..., None], *args: Any) -> None:
        timer = asyncio.get_running_loop().call_later(seconds / self.speed, fn, *args)
        chan.timers.append(timer)

    def _uniqueid(self) -> str:
        self._seq += 1
        return f"{self._epoch}.{self._seq}"

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    # ------------------------------------------------------------ call flows

    def _set_app(self, chan: _Chan, app_name: str, app_data: str = "") -> None:
        chan.app_name, chan.app_data = app_name, app_data
        self._emit(
            "ChannelDialplan",
            dialplan_app=app_name,
            dialplan_app_data=app_data,
            channel=chan.json(),
        )

    def _leg2(self, chan: _Chan) -> _Chan | None:
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

    def _dial(self, agent: _Chan, status: str) -> None:
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

    def _hangup(self, chan: _Chan, cause: int, *, soft: bool) -> None:
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

    def _leave_stasis(self, chan: _Chan) -> None:
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

    def _destroy(self, chan: _Chan, cause: int) -> None:
        if chan.kind == "agent":
            chan.app_name, chan.app_data = "AppDial2", "(Outgoing Line)"
        text = CAUSE_TEXT.get(cause, "Unknown")
        self._emit("ChannelDestroyed", cause=cause, cause_txt=text, channel=chan.json())
        self._forget(chan)

    def _forget(self, chan: _Chan) -> None:
        self._cancel_timers(chan)
        self.channels.pop(chan.id, None)
        if chan.partner is not None:
            partner = self.channels.pop(chan.partner, None)
            if partner is not None:
                self._cancel_timers(partner)

    def _cancel_timers(self, chan: _Chan) -> None:
        for timer in chan.timers:
            timer.cancel()
        chan.timers.clear()

    # ------------------------------------------------------------ bridges and playbacks

    def _enter_bridge(self, chan: _Chan, bridge: _Bridge) -> None:
        if chan.bridge_id is not None:
            self._leave_bridge(chan)
        bridge.channels.append(chan.id)
        chan.bridge_id = bridge.id
        self._emit("ChannelEnteredBridge", bridge=bridge.json(), channel=chan.json())

    def _pair_up(self, bridge: _Bridge) -> None:
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

    def _leave_bridge(self, chan: _Chan) -> None:
        bridge = self.bridges.get(chan.bridge_id or "")
        chan.bridge_id = None
        if bridge is None:
            return
        if chan.variables.get("BRIDGEPEER"):
            chan.variables["BRIDGEPEER"] = ""
            self._emit("ChannelVarset", variable="BRIDGEPEER", value="", channel=chan.json())
        bridge.channels.remove(chan.id)
        self._emit("ChannelLeftBridge", bridge=bridge.json(), channel=chan.json())

    def _start_playback(self, pb: _Playback) -> None:
        pb.state = "playing"
        self._emit("PlaybackStarted", playback=pb.json())
        seconds = sum(
            self.media_seconds.get(uri, self.default_media_s) for uri in pb.media_uri.split(",")
        )
        pb.timer = asyncio.get_running_loop().call_later(
            seconds / self.speed, self._finish_playback, pb.id
        )

    def _finish_playback(self, playback_id: str) -> None:
        pb = self.playbacks.pop(playback_id, None)
        if pb is None:
            return
        if pb.timer is not None:
            pb.timer.cancel()
        pb.state = "done"
        self._emit("PlaybackFinished", playback=pb.json())

    # ------------------------------------------------------------ HTTP plumbing

    @web.middleware
    async def _record_mw(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        path = request.path.removeprefix("/ari")
        if path != "/events" and isinstance(response, web.Response):
            params = {k: v for k, v in request.query.items() if k != "api_key"}
            body: Any = response.text or ""
            if response.content_type == "application/json" and response.status != 401:
                body = json.loads(body)
            self.requests.append(FakeRequest(request.method, path, params, response.status, body))
        return response

    @web.middleware
    async def _auth_mw(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not self._authorized(request):
            return web.Response(
                status=401,
                text=_AUTH_REQUIRED,
                content_type="application/json",
                headers={"WWW-Authenticate": 'Basic realm="Asterisk REST Interface"'},
            )
        return await handler(request)

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization")
        if header:
            return header == basic_authorization(self.username, self.password)
        # Asterisk also accepts ?api_key=user:password.
        return request.query.get("api_key") == f"{self.username}:{self.password}"

    @web.middleware
    async def _fault_mw(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/ari/events":
            return await handler(request)
        if self._delay:
            await asyncio.sleep(self._delay.pop(0))
        if self._fail:
            status = self._fail.pop(0)
            return _error(status, "Internal Server Error (injected by the fake)")
        return await handler(request)

    def _routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/ari/events", self._ws_events)
        r.add_get("/ari/channels", self._list_channels)
        r.add_post("/ari/channels", self._originate)
        r.add_get("/ari/channels/{cid}", self._get_channel)
        r.add_delete("/ari/channels/{cid}", self._delete_channel)
        r.add_post("/ari/channels/{cid}/answer", self._answer)
        r.add_post("/ari/channels/{cid}/ring", self._ring)
        r.add_post("/ari/channels/{cid}/continue", self._continue)
        r.add_post("/ari/channels/{cid}/play", self._play)
        r.add_post("/ari/channels/{cid}/record", self._record)
        r.add_post("/ari/channels/{cid}/variable", self._set_var)
        r.add_get("/ari/channels/{cid}/variable", self._get_var)
        r.add_get("/ari/playbacks/{pid}", self._get_playback)
        r.add_delete("/ari/playbacks/{pid}", self._stop_playback)
        r.add_get("/ari/bridges", self._list_bridges)
        r.add_post("/ari/bridges", self._create_bridge)
        r.add_get("/ari/bridges/{bid}", self._get_bridge)
        r.add_delete("/ari/bridges/{bid}", self._delete_bridge)
        r.add_post("/ari/bridges/{bid}/addChannel", self._add_channel)
        r.add_post("/ari/bridges/{bid}/removeChannel", self._remove_channel)
        r.add_post("/ari/bridges/{bid}/moh", self._start_moh)
        r.add_delete("/ari/bridges/{bid}/moh", self._stop_moh)
        r.add_get("/ari/applications", self._list_apps)
        r.add_get("/ari/applications/{app}", self._get_app)

    def _stasis_chan(self, request: web.Request) -> _Chan | web.Response:
        chan = self.channels.get(request.match_info["cid"])
        if chan is None:
            return _error(404, "Channel not found")
        if not chan.in_stasis:
            return _error(409, "Channel not in Stasis application")
        return chan

    # ------------------------------------------------------------ websocket

    async def _ws_events(self, request: web.Request) -> web.StreamResponse:
        apps = request.query.get("app", "")
        if self.app not in apps.split(","):
            return _error(400, "Invalid application provided in param [app].")
        if self._refuse_ws > 0:
            self._refuse_ws -= 1
            return _error(503, "Service Unavailable (injected by the fake)")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._subscribers[ws] = queue
        self.websocket_connections += 1
        self._subscribed.set()
        writer = asyncio.create_task(self._write_events(ws, queue))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.ERROR:
                    break
        finally:
            self._subscribers.pop(ws, None)
            if not self._subscribers:
                self._subscribed.clear()
            writer.cancel()
        return ws

    async def _write_events(
        self, ws: web.WebSocketResponse, queue: asyncio.Queue[str | None]
    ) -> None:
        while True:
            text = await queue.get()
            if text is None or ws.closed:
                return
            await ws.send_str(text)

    # ------------------------------------------------------------ channel handlers

    async def _list_channels(self, request: web.Request) -> web.Response:
        return web.json_response([c.json() for c in self.channels.values()])

    async def _get_channel(self, request: web.Request) -> web.Response:
        chan = self.channels.get(request.match_info["cid"])
        if chan is None:
            return _error(404, "Channel not found")
        return web.json_response(chan.json())

    async def _originate(self, request: web.Request) -> web.Response:
        params = dict(request.query)
        variables: Mapping[str, Any] = {}
        if request.can_read_body:
            try:
                body = await request.json()
            except ValueError:
                return _error(400, "Error parsing request body")
            if isinstance(body, dict):
                variables = body.pop("variables", None) or {}
                params.update({k: str(v) for k, v in body.items()})
        endpoint = params.get("endpoint", "")
        if not endpoint:
            return _error(400, "Endpoint must be specified")
        for wanted in (params.get("channelId"), params.get("otherChannelId")):
            if wanted and wanted in self.channels:
                return _error(409, "Channel with given unique ID already exists")
        if "app" in params:
            if params["app"] != self.app:
                return _error(400, "Fake ARI serves one application only")
            agent = self._new_agent(endpoint, params)
            agent.variables.update({str(k): str(v) for k, v in variables.items()})
            timeout = int(params.get("timeout", "30"))
            asyncio.get_running_loop().call_soon(self._dial_start, agent.id, timeout)
            return web.json_response(agent.json())
        return self._originate_caller(endpoint, params)

    def _new_agent(self, endpoint: str, params: Mapping[str, str]) -> _Chan:
        resource, _, ctx = endpoint.partition("/")[2].partition("@")
        local = endpoint.startswith("Local/")
        leg1_id = params.get("channelId") or self._uniqueid()
        seq = self._seq
        leg2_id = params.get("otherChannelId") or (
            f"{leg1_id};2" if params.get("channelId") else self._uniqueid()
        )
        base = f"Local/{resource}@{ctx}-{seq:08x}" if local else f"{endpoint}-{seq:08x}"
        caller = _parse_caller_id(params.get("callerId", ""))
        agent = _Chan(
            id=leg1_id,
            name=base + (";1" if local else ""),
            kind="agent",
            caller=caller,
            context=ctx if local else "default",
            exten=resource if local else "s",
            app_name="AppDial2",
            app_data="(Outgoing Line)",
            creationtime=_stamp(),
            subscribed=True,
            args=tuple(a for a in params.get("appArgs", "").split(",") if a),
            dialstring=f"{resource}@{ctx}" if local else resource,
            endpoint=endpoint,
        )
        self.channels[agent.id] = agent
        if local:
            leg2 = _Chan(
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

    def _originate_caller(self, endpoint: str, params: Mapping[str, str]) -> web.Response:
        """POST /channels with a dialplan context: as recorded, a Local caller into Stasis."""
        if not endpoint.startswith("Local/") or "@" not in endpoint:
            return _error(400, "The fake only originates Local/<exten>@<context> callers")
        exten, _, ctx = endpoint.removeprefix("Local/").partition("@")
        name, number = _parse_caller_id(params.get("callerId", ""))
        leg1_id = self._uniqueid()
        seq = self._seq
        leg2_id = self.inject_call(
            number, name, (exten,), context=ctx, channel_name=f"{endpoint}-{seq:08x};2"
        )
        leg1 = _Chan(
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
        return web.json_response(leg1.json())

    async def _delete_channel(self, request: web.Request) -> web.Response:
        chan = self.channels.get(request.match_info["cid"])
        if chan is None:
            return _error(404, "Channel not found")
        reason = request.query.get("reason")
        if reason is not None and reason not in REASON_CAUSE:
            return _error(400, "Invalid reason for hangup provided")
        cause = DEFAULT_API_HANGUP_CAUSE if reason is None else REASON_CAUSE[reason]
        self._hangup(chan, cause, soft=True)
        return web.Response(status=204)

    async def _answer(self, request: web.Request) -> web.Response:
        chan = self._stasis_chan(request)
        if isinstance(chan, web.Response):
            return chan
        if chan.state != "Up":
            chan.state = "Up"
            self._emit("ChannelStateChange", channel=chan.json())
            partner = self.channels.get(chan.partner or "")
            if partner is not None:
                partner.state = "Up"
        return web.Response(status=204)

    async def _ring(self, request: web.Request) -> web.Response:
        chan = self._stasis_chan(request)
        return chan if isinstance(chan, web.Response) else web.Response(status=204)

    async def _continue(self, request: web.Request) -> web.Response:
        chan = self._stasis_chan(request)
        if isinstance(chan, web.Response):
            return chan
        self._leave_stasis(chan)
        return web.Response(status=204)

    async def _play(self, request: web.Request) -> web.Response:
        chan = self._stasis_chan(request)
        if isinstance(chan, web.Response):
            return chan
        media = ",".join(request.query.getall("media", []))
        if not media:
            return _error(400, "media is required")
        playback_id = request.query.get("playbackId") or self._uuid()
        if playback_id in self.playbacks:
            return _error(409, "Playback with given ID already exists")
        pb = _Playback(
            id=playback_id,
            media_uri=media,
            channel_id=chan.id,
            language=request.query.get("lang") or chan.language,
        )
        self.playbacks[pb.id] = pb
        body = pb.json()
        asyncio.get_running_loop().call_soon(self._start_playback, pb)
        return web.json_response(body, status=201)

    async def _record(self, request: web.Request) -> web.Response:
        """POST /channels/{id}/record (not recorded): a LiveRecording, queued, then started."""
        chan = self._stasis_chan(request)
        if isinstance(chan, web.Response):
            return chan
        name, fmt = request.query.get("name"), request.query.get("format")
        if not name or not fmt:
            return _error(400, "Recording name and format are required")
        if name in self.recordings:
            return _error(409, "Recording with the same name already in progress")
        rec = {"name": name, "format": fmt, "state": "queued", "target_uri": f"channel:{chan.id}"}
        self.recordings[name] = rec
        asyncio.get_running_loop().call_soon(self._start_recording, name)
        return web.json_response(dict(rec), status=201)

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

    async def _set_var(self, request: web.Request) -> web.Response:
        chan = self.channels.get(request.match_info["cid"])
        if chan is None:
            return _error(404, "Channel not found")
        variable = request.query.get("variable")
        if not variable:
            return _error(400, "Variable name is required")
        value = request.query.get("value", "")
        chan.variables[variable] = value
        self._emit("ChannelVarset", variable=variable, value=value, channel=chan.json())
        return web.Response(status=204)

    async def _get_var(self, request: web.Request) -> web.Response:
        chan = self.channels.get(request.match_info["cid"])
        if chan is None:
            return _error(404, "Channel not found")
        value = chan.variables.get(request.query.get("variable", ""))
        if value is None:
            return _error(404, "Provided variable was not found")
        return web.json_response({"value": value})

    async def _get_playback(self, request: web.Request) -> web.Response:
        pb = self.playbacks.get(request.match_info["pid"])
        if pb is None:
            return _error(404, "Playback not found")
        return web.json_response(pb.json())

    async def _stop_playback(self, request: web.Request) -> web.Response:
        if request.match_info["pid"] not in self.playbacks:
            return _error(404, "Playback not found")
        self._finish_playback(request.match_info["pid"])
        return web.Response(status=204)

    # ------------------------------------------------------------ bridge handlers

    async def _list_bridges(self, request: web.Request) -> web.Response:
        return web.json_response([b.json() for b in self.bridges.values()])

    async def _create_bridge(self, request: web.Request) -> web.Response:
        kinds = request.query.get("type", "mixing").split(",")
        bridge_type = "holding" if "holding" in kinds else "mixing"
        bridge_id = request.query.get("bridgeId") or self._uuid()
        if bridge_id in self.bridges:
            return _error(409, "Bridge with given ID already exists")  # not recorded
        bridge = _Bridge(bridge_id, bridge_type, request.query.get("name", ""), _stamp())
        self.bridges[bridge.id] = bridge
        return web.json_response(bridge.json())

    async def _get_bridge(self, request: web.Request) -> web.Response:
        bridge = self.bridges.get(request.match_info["bid"])
        if bridge is None:
            return _error(404, "Bridge not found")
        return web.json_response(bridge.json())

    async def _delete_bridge(self, request: web.Request) -> web.Response:
        bridge = self.bridges.get(request.match_info["bid"])
        if bridge is None:
            return _error(404, "Bridge not found")
        for cid in list(bridge.channels):
            self._leave_bridge(self.channels[cid])
        del self.bridges[bridge.id]
        if bridge.watched > 0:
            self._emit("BridgeDestroyed", bridge=bridge.json())  # not recorded
        return web.Response(status=204)

    def _bridge_members(
        self, request: web.Request, *, must_be_in: bool
    ) -> tuple[_Bridge, list[_Chan]] | web.Response:
        bridge = self.bridges.get(request.match_info["bid"])
        if bridge is None:
            return _error(404, "Bridge not found")
        ids = [c for c in ",".join(request.query.getall("channel", [])).split(",") if c]
        if not ids:
            return _error(400, "channel is required")
        chans: list[_Chan] = []
        for cid in ids:
            chan = self.channels.get(cid)
            if chan is None:
                return _error(400, "Channel not found")
            if not chan.in_stasis:
                return _error(422, "Channel not in Stasis application")
            if must_be_in and chan.bridge_id != bridge.id:
                return _error(422, "Channel not in this bridge")
            chans.append(chan)
        return bridge, chans

    async def _add_channel(self, request: web.Request) -> web.Response:
        found = self._bridge_members(request, must_be_in=False)
        if isinstance(found, web.Response):
            return found
        bridge, chans = found
        for chan in chans:
            bridge.watched += 1
            self._enter_bridge(chan, bridge)
        self._pair_up(bridge)
        return web.Response(status=204)

    async def _remove_channel(self, request: web.Request) -> web.Response:
        found = self._bridge_members(request, must_be_in=True)
        if isinstance(found, web.Response):
            return found
        bridge, chans = found
        for chan in chans:
            bridge.watched -= 1
            self._leave_bridge(chan)
        return web.Response(status=204)

    async def _start_moh(self, request: web.Request) -> web.Response:
        bridge = self.bridges.get(request.match_info["bid"])
        if bridge is None:
            return _error(404, "Bridge not found")
        bridge.moh_class = request.query.get("mohClass", "default")
        return web.Response(status=204)

    async def _stop_moh(self, request: web.Request) -> web.Response:
        bridge = self.bridges.get(request.match_info["bid"])
        if bridge is None:
            return _error(404, "Bridge not found")
        bridge.moh_class = None
        return web.Response(status=204)

    # ------------------------------------------------------------ applications

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

    async def _list_apps(self, request: web.Request) -> web.Response:
        return web.json_response([self._app_json()])

    async def _get_app(self, request: web.Request) -> web.Response:
        if request.match_info["app"] != self.app:
            return _error(404, "Application not found")
        return web.json_response(self._app_json())


def event_types(events: Iterable[Mapping[str, Any]]) -> list[str]:
    """The `type` of each event, for comparing sequences on structure rather than ids."""
    return [str(e.get("type")) for e in events]


class EventTap:
    """Reads `client.events()` in a background task and keeps every event, so a test can wait.

    ``async with EventTap(ari) as tap:`` returns once the websocket is open;
    ``await tap.wait_for(StasisStart)`` returns the first matching event not yet consumed.
    """

    def __init__(self, client: AriClient) -> None:
        self.client = client
        self.events: list[Event] = []
        self.error: BaseException | None = None
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._taken: set[int] = set()

    async def __aenter__(self) -> EventTap:
        self._task = asyncio.create_task(self._pump())
        await self.wait_for(WebsocketConnected)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _pump(self) -> None:
        try:
            async for event in self.client.events():
                self.events.append(event)
                async with self._changed:
                    self._changed.notify_all()
        except AriError as exc:
            self.error = exc
            async with self._changed:
                self._changed.notify_all()

    def _find(self, kind: type[AriEvent] | str, where: Callable[[Any], bool] | None) -> int | None:
        for i, event in enumerate(self.events):
            if i in self._taken:
                continue
            matches = event.type == kind if isinstance(kind, str) else isinstance(event, kind)
            if matches and (where is None or where(event)):
                return i
        return None

    async def wait_for(
        self,
        kind: type[AriEvent] | str,
        where: Callable[[Any], bool] | None = None,
        timeout: float = 3.0,
    ) -> Any:
        """The first unconsumed event of `kind` (class or type name) satisfying `where`."""
        found: list[int] = []

        def ready() -> bool:
            index = self._find(kind, where)
            if index is not None:
                found.append(index)
                return True
            return self.error is not None

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(ready), timeout)
        if not found and self.error is not None:
            raise self.error
        self._taken.add(found[-1])
        return self.events[found[-1]]

    def types(self, *, synthetic: bool = False) -> list[str]:
        """Event types seen so far; the client's own Websocket* markers only if asked."""
        markers = (WebsocketConnected, WebsocketReconnected)
        return [e.type for e in self.events if synthetic or not isinstance(e, markers)]
