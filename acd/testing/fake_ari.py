"""A fake Asterisk ARI server on aiohttp that behaves as the recordings from Asterisk 22 show.

It serves the sans-I/O world of :mod:`acd.testing.ari_world` (channels, bridges, playbacks
and the events they produce) over the network: the REST resources of
:mod:`acd.testing.ari_resources` answer the calls the engine makes with the same status codes
and body shapes, and this module's websocket sends events in the recorded order and shape
(tests/recordings/asterisk/ari-*.jsonl). Test controls place callers into Stasis, press
keys, hang up, script agents (answer after N s, never answer, busy), drop the websocket and
inject faults. Durations are real asyncio time divided by `speed`, so tests stay fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from aiohttp import WSMsgType, web

from acd.asterisk.ari.client import basic_authorization
from acd.testing.ari_objects import (
    CAUSE_TEXT,
    DEFAULT_API_HANGUP_CAUSE,
    DTMF_DIGITS,
    MEDIA_SECONDS,
    REASON_CAUSE,
    AgentScript,
    Timer,
)
from acd.testing.ari_resources import AriResources, error_response
from acd.testing.ari_tap import EventTap, event_types
from acd.testing.ari_world import AriWorld

__all__ = [
    "CAUSE_TEXT",
    "DEFAULT_API_HANGUP_CAUSE",
    "DTMF_DIGITS",
    "MEDIA_SECONDS",
    "REASON_CAUSE",
    "AgentScript",
    "AriWorld",
    "EventTap",
    "FakeAri",
    "FakeRequest",
    "event_types",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_AUTH_REQUIRED = '{"message":"Authentication required"}'


@dataclass(frozen=True)
class FakeRequest:
    """One REST request the fake served, for assertions."""

    method: str
    path: str
    params: Mapping[str, str]
    status: int
    body: Any = None
    #: When the request reached the fake (``time.perf_counter()``), for benchmarks.
    at: float = 0.0


class _RunningLoop:
    """The world's scheduler: the event loop running at the time of the call."""

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> Timer:
        return asyncio.get_running_loop().call_later(delay, callback, *args)


class FakeAri(AriResources):
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
        system_name: str | None = None,
    ) -> None:
        super().__init__(
            app=app, speed=speed, seed=seed, media_seconds=media_seconds,
            default_media_s=default_media_s, default_agent=default_agent,
            system_name=system_name,
            scheduler=_RunningLoop(),
        )
        self.username = username
        self.password = password
        #: Every REST request served, in order.
        self.requests: list[FakeRequest] = []
        self._subscribers: dict[web.WebSocketResponse, asyncio.Queue[str | None]] = {}
        self._subscribed = asyncio.Event()
        self.websocket_connections = 0
        self._fail: list[int] = []
        self._failing: tuple[int, str | None, str | None] | None = None
        self._replies: list[tuple[int, str]] = []
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

    async def wait_subscribed(self, timeout: float = 5.0) -> None:
        """Wait until an event websocket is open (events emitted before that are lost)."""
        await asyncio.wait_for(self._subscribed.wait(), timeout)

    def fail_next(self, count: int, status: int = 500) -> None:
        """The next `count` REST requests answer `status` instead of doing anything."""
        self._fail.extend([status] * count)

    def fail_requests(self, status: int = 503, *, method: str | None = None,
                      path: str | None = None) -> None:
        """From now until :meth:`stop_failing`, REST requests answer `status` (an outage of
        Asterisk's REST side); only those with `method` and `path` (``/channels``) if given."""
        self._failing = (status, method, path)

    def stop_failing(self) -> None:
        """End the window :meth:`fail_requests` opened."""
        self._failing = None

    def failed(self, method: str | None = None, path: str | None = None) -> list[FakeRequest]:
        """The requests answered with an injected failure (5xx), optionally one kind only."""
        return [r for r in self.requests if r.status >= 500
                and (method is None or r.method == method) and (path is None or r.path == path)]

    def reply_next(self, body: str, status: int = 200) -> None:
        """The next REST request answers `body` as JSON text, as is (hostile answers)."""
        self._replies.append((status, body))

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

    # ------------------------------------------------------------ events

    def _publish(self, text: str) -> None:
        # Test controls may hold events back and deliver them reordered.
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

    # ------------------------------------------------------------ HTTP plumbing

    @web.middleware
    async def _record_mw(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        at = time.perf_counter()
        response = await handler(request)
        path = request.path.removeprefix("/ari")
        if path != "/events" and isinstance(response, web.Response):
            params = {k: v for k, v in request.query.items() if k != "api_key"}
            body: Any = response.text or ""
            if response.content_type == "application/json" and response.status != 401:
                with contextlib.suppress(ValueError, RecursionError):  # hostile test replies
                    body = json.loads(body)
            self.requests.append(FakeRequest(request.method, path, params, response.status, body,
                                             at))
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
        if self._replies:
            status, text = self._replies.pop(0)
            return web.Response(status=status, text=text, content_type="application/json")
        if self._fail:
            status = self._fail.pop(0)
            return error_response(status, "Internal Server Error (injected by the fake)")
        if self._failing is not None:
            status, method, path = self._failing
            if (method is None or request.method == method) and (
                    path is None or request.path.removeprefix("/ari") == path):
                return error_response(status, "Service Unavailable (injected by the fake)")
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

    # ------------------------------------------------------------ websocket

    async def _ws_events(self, request: web.Request) -> web.StreamResponse:
        apps = request.query.get("app", "")
        if self.app not in apps.split(","):
            return error_response(400, "Invalid application provided in param [app].")
        if self._refuse_ws > 0:
            self._refuse_ws -= 1
            return error_response(503, "Service Unavailable (injected by the fake)")
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
