"""An asyncio ARI client: typed REST calls and a reconnecting event websocket, on aiohttp.

Credentials live only inside a redacting holder and never reach a log line, a repr or an
exception text. Every REST call has its own deadline, so no call waits on a silent socket.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp

from acd.asterisk.ari.models import (
    Application,
    Bridge,
    Channel,
    Event,
    MalformedEvent,
    Playback,
    WebsocketConnected,
    WebsocketReconnected,
    parse_event_text,
)

log = logging.getLogger(__name__)

#: Hangup reasons ARI accepts on DELETE /channels/{id}.
HANGUP_REASONS = frozenset(
    {
        "normal",
        "busy",
        "congestion",
        "no_answer",
        "timeout",
        "rejected",
        "unallocated",
        "normal_unspecified",
        "number_incomplete",
        "codec_mismatch",
        "interworking",
        "failure",
        "answered_elsewhere",
    }
)


class AriError(Exception):
    """An ARI request failed; `status` is the HTTP status when Asterisk answered at all."""

    def __init__(self, method: str, path: str, status: int | None, message: str) -> None:
        where = f"ARI {method} {path}"
        text = f"{where} failed with {status}: {message}" if status else f"{where}: {message}"
        super().__init__(text)
        self.method = method
        self.path = path
        self.status = status
        self.message = message


class AriAuthError(AriError):
    """401: Asterisk refused the ARI user name or password."""


class AriNotFound(AriError):
    """404: the channel, bridge, playback or application does not exist (any more)."""


class AriConflict(AriError):
    """409: the resource is in the wrong state, e.g. the channel is not in Stasis."""


class AriBadRequest(AriError):
    """400 or 422: the request itself is wrong (missing parameter, channel not in the bridge)."""


class AriServerError(AriError):
    """5xx: Asterisk failed internally."""


class AriTimeout(AriError):
    """The request's deadline passed before Asterisk answered."""


class AriConnectionError(AriError):
    """Asterisk could not be reached (refused, reset, DNS)."""


_STATUS_ERRORS: dict[int, type[AriError]] = {
    400: AriBadRequest,
    401: AriAuthError,
    404: AriNotFound,
    409: AriConflict,
    422: AriBadRequest,
}


def error_for_status(status: int) -> type[AriError]:
    """The exception class for an HTTP error status from ARI."""
    if status >= 500:
        return AriServerError
    return _STATUS_ERRORS.get(status, AriError)


def basic_authorization(username: str, password: str) -> str:
    """The HTTP Basic ``Authorization`` header value ARI expects."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


class _Secret:
    """Holds a credential so that no repr, vars() dump or traceback local shows it."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "<redacted>"


def backoff_delay(attempt: int, rng: random.Random, initial: float, maximum: float) -> float:
    """Delay before reconnect `attempt` (1-based): exponential, capped, with "equal jitter".

    Half the delay is fixed and half random, so a fleet of engines restarted together does not
    hammer Asterisk in lockstep, yet no attempt comes sooner than half the nominal delay.
    """
    nominal = min(maximum, initial * 2 ** max(0, attempt - 1))
    return nominal / 2 + rng.uniform(0, nominal / 2)


def _ari_root(base_url: str) -> str:
    parts = urlsplit(base_url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError("ARI base_url must look like http://host:8088 (scheme and host).")
    if parts.username or parts.password:
        # Refuse rather than echo: the URL would otherwise carry secrets into logs.
        raise ValueError("ARI base_url must not contain credentials; pass username/password.")
    root = base_url.rstrip("/")
    return root if root.endswith("/ari") else root + "/ari"


def _q(resource_id: str) -> str:
    """Quote an id for a URL path: ids such as ``agent-1;2`` must stay one path segment."""
    if not resource_id:
        raise ValueError("An ARI resource id must not be empty.")
    return quote(resource_id, safe="")


def _join_args(values: str | Sequence[str]) -> str:
    if isinstance(values, str):
        return values
    for value in values:
        if "," in value:
            raise ValueError(f"A Stasis argument may not contain a comma: {value!r}.")
    return ",".join(values)


class AriClient:
    """ARI over aiohttp: REST methods the engine needs, and `events()` with reconnection.

    Use as ``async with AriClient(url, user, password) as ari:``. Pass `session` to share an
    aiohttp session (the client then leaves it open); pass a seeded `rng` and a fake `sleep`
    to make the reconnect schedule reproducible in tests.
    """

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        app: str = "acd",
        session: aiohttp.ClientSession | None = None,
        *,
        request_timeout: float = 5.0,
        connect_timeout: float = 5.0,
        max_message_bytes: int = 1 << 20,
        heartbeat: float | None = 20.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._root = _ari_root(base_url)
        self._auth = _Secret(basic_authorization(username, password))
        self.app = app
        self._session = session
        self._owns_session = session is None
        self.request_timeout = request_timeout
        self.connect_timeout = connect_timeout
        self.max_message_bytes = max_message_bytes
        self.heartbeat = heartbeat
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._rng = rng if rng is not None else random.Random(0)
        self._sleep = sleep
        self._closing = False
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        #: Set while the event websocket is open; the app may await it before placing test calls.
        self.connected = asyncio.Event()
        #: How many times the websocket has been (re)opened, for metrics and tests.
        self.connections = 0

    def __repr__(self) -> str:
        return f"AriClient(base_url={self._root!r}, app={self.app!r})"

    async def __aenter__(self) -> AriClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop reconnecting, close the websocket, and close the session if the client made it."""
        self._closing = True
        if self._ws is not None:
            await self._ws.close()
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    # ------------------------------------------------------------ REST plumbing

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json_body: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Send one REST request under its own deadline; return the decoded body or None.

        Raises the `AriError` subclass matching the status, `AriTimeout` or `AriConnectionError`.
        """
        query = {k: str(v) for k, v in (params or {}).items()}
        deadline = aiohttp.ClientTimeout(total=timeout or self.request_timeout)
        started = time.monotonic()
        try:
            async with self._http().request(
                method,
                self._root + path,
                params=query,
                json=json_body,
                headers={"Authorization": self._auth.value},
                timeout=deadline,
            ) as resp:
                raw = await resp.read()
                status = resp.status
                is_json = resp.content_type == "application/json"
        except TimeoutError:
            raise AriTimeout(method, path, None, "no answer before the deadline") from None
        except aiohttp.ClientError as exc:
            raise AriConnectionError(method, path, None, type(exc).__name__) from None
        elapsed_ms = (time.monotonic() - started) * 1000
        log.debug("ari %s %s -> %s in %.1f ms", method, path, status, elapsed_ms)
        body = _decode(raw, is_json)
        if status >= 400:
            message = body.get("message") if isinstance(body, dict) else None
            text = message if isinstance(message, str) else (resp.reason or "error")
            raise error_for_status(status)(method, path, status, text)
        return body

    # ------------------------------------------------------------ channels

    async def answer(self, channel_id: str) -> None:
        """Answer a ringing channel."""
        await self.request("POST", f"/channels/{_q(channel_id)}/answer")

    async def hangup(self, channel_id: str, reason: str | None = None) -> None:
        """Hang up a channel; `reason` is one of `HANGUP_REASONS` (Asterisk's default: normal)."""
        params: dict[str, str | int] = {}
        if reason is not None:
            if reason not in HANGUP_REASONS:
                valid = ", ".join(sorted(HANGUP_REASONS))
                raise ValueError(f"Unknown hangup reason {reason!r}; valid reasons: {valid}.")
            params["reason"] = reason
        await self.request("DELETE", f"/channels/{_q(channel_id)}", params=params)

    async def play(
        self,
        channel_id: str,
        media: str | Sequence[str],
        *,
        lang: str | None = None,
        playback_id: str | None = None,
    ) -> Playback:
        """Start a prompt (``sound:...``) on a channel; a list plays one after another."""
        params: dict[str, str | int] = {"media": _join_args(media)}
        if lang:
            params["lang"] = lang
        if playback_id:
            params["playbackId"] = playback_id
        body = await self.request("POST", f"/channels/{_q(channel_id)}/play", params=params)
        return Playback.from_json(_need_obj(body, "POST", "/channels/{id}/play"))

    async def stop_playback(self, playback_id: str) -> None:
        """Stop a prompt; Asterisk then sends PlaybackFinished."""
        await self.request("DELETE", f"/playbacks/{_q(playback_id)}")

    async def get_channel(self, channel_id: str) -> Channel:
        """One channel's current snapshot."""
        body = await self.request("GET", f"/channels/{_q(channel_id)}")
        return Channel.from_json(_need_obj(body, "GET", "/channels/{id}"))

    async def list_channels(self) -> list[Channel]:
        """Every channel Asterisk has, in Stasis or not."""
        body = await self.request("GET", "/channels")
        return [Channel.from_json(c) for c in _need_list(body, "GET", "/channels")]

    async def originate(
        self,
        endpoint: str,
        *,
        app: str | None = None,
        app_args: str | Sequence[str] | None = None,
        caller_id: str | None = None,
        timeout: int | None = None,
        channel_id: str | None = None,
        other_channel_id: str | None = None,
        variables: Mapping[str, str] | None = None,
        context: str | None = None,
        extension: str | None = None,
        priority: int | None = None,
    ) -> Channel:
        """Dial `endpoint` (an agent); once answered it enters Stasis `app` with `app_args`.

        Without `context`, the channel goes to this client's app. `timeout` is the ring timeout
        in seconds; an unanswered leg ends with ChannelDestroyed cause 19 (ring-no-answer).
        """
        params: dict[str, str | int] = {"endpoint": endpoint}
        if context is None:
            params["app"] = app or self.app
        else:
            params["context"] = context
        optional: dict[str, str | int | None] = {
            "appArgs": None if app_args is None else _join_args(app_args),
            "callerId": caller_id,
            "timeout": timeout,
            "channelId": channel_id,
            "otherChannelId": other_channel_id,
            "extension": extension,
            "priority": priority,
        }
        params.update({k: v for k, v in optional.items() if v is not None})
        body_in = {"variables": dict(variables)} if variables else None
        body = await self.request("POST", "/channels", params=params, json_body=body_in)
        return Channel.from_json(_need_obj(body, "POST", "/channels"))

    async def ring(self, channel_id: str) -> None:
        """Send ringing to a caller that is not answered yet."""
        await self.request("POST", f"/channels/{_q(channel_id)}/ring")

    async def continue_in_dialplan(
        self,
        channel_id: str,
        *,
        context: str | None = None,
        extension: str | None = None,
        priority: int | None = None,
    ) -> None:
        """Hand the channel back to the dialplan (e.g. the fallback branch); StasisEnd follows."""
        optional = {"context": context, "extension": extension, "priority": priority}
        params = {k: v for k, v in optional.items() if v is not None}
        await self.request("POST", f"/channels/{_q(channel_id)}/continue", params=params)

    async def set_channel_var(self, channel_id: str, variable: str, value: str) -> None:
        """Set a channel variable (the name must come from the engine, never from a caller)."""
        params = {"variable": variable, "value": value}
        await self.request("POST", f"/channels/{_q(channel_id)}/variable", params=params)

    async def get_channel_var(self, channel_id: str, variable: str) -> str | None:
        """A channel variable's value, or None when it is not set."""
        path = f"/channels/{_q(channel_id)}/variable"
        try:
            body = await self.request("GET", path, params={"variable": variable})
        except AriNotFound:
            return None
        value = body.get("value") if isinstance(body, Mapping) else None
        return value if isinstance(value, str) else None

    async def record(
        self,
        channel_id: str,
        name: str,
        *,
        max_duration_s: int = 120,
        max_silence_s: int = 10,
        file_format: str = "wav",
        beep: bool = True,
        terminate_on: str = "#",
    ) -> None:
        """Record the channel into `name`; RecordingFinished or RecordingFailed follows."""
        params: dict[str, str | int] = {
            "name": name,
            "format": file_format,
            "maxDurationSeconds": max_duration_s,
            "maxSilenceSeconds": max_silence_s,
            "ifExists": "overwrite",
            "beep": "true" if beep else "false",
            "terminateOn": terminate_on,
        }
        await self.request("POST", f"/channels/{_q(channel_id)}/record", params=params)

    async def get_playback(self, playback_id: str) -> Playback:
        """A prompt's current state (404 once it has finished)."""
        body = await self.request("GET", f"/playbacks/{_q(playback_id)}")
        return Playback.from_json(_need_obj(body, "GET", "/playbacks/{id}"))

    # ------------------------------------------------------------ bridges

    async def create_bridge(
        self, type: str = "mixing", *, name: str | None = None, bridge_id: str | None = None
    ) -> Bridge:
        """Create a bridge: ``holding`` (queue with MOH) or ``mixing`` (caller and agent)."""
        params: dict[str, str | int] = {"type": type}
        if name:
            params["name"] = name
        if bridge_id:
            params["bridgeId"] = bridge_id
        body = await self.request("POST", "/bridges", params=params)
        return Bridge.from_json(_need_obj(body, "POST", "/bridges"))

    async def get_bridge(self, bridge_id: str) -> Bridge:
        """One bridge's current snapshot."""
        body = await self.request("GET", f"/bridges/{_q(bridge_id)}")
        return Bridge.from_json(_need_obj(body, "GET", "/bridges/{id}"))

    async def list_bridges(self) -> list[Bridge]:
        """Every bridge Asterisk has."""
        body = await self.request("GET", "/bridges")
        return [Bridge.from_json(b) for b in _need_list(body, "GET", "/bridges")]

    async def destroy_bridge(self, bridge_id: str) -> None:
        """Destroy a bridge; it outlives its last participant until this is called."""
        await self.request("DELETE", f"/bridges/{_q(bridge_id)}")

    async def add_channel(
        self, bridge_id: str, channel_ids: str | Sequence[str], *, role: str | None = None
    ) -> None:
        """Put one or more channels into a bridge (moving them out of any other bridge)."""
        params: dict[str, str | int] = {"channel": _join_args(channel_ids)}
        if role:
            params["role"] = role
        await self.request("POST", f"/bridges/{_q(bridge_id)}/addChannel", params=params)

    async def remove_channel(self, bridge_id: str, channel_ids: str | Sequence[str]) -> None:
        """Take channels out of a bridge."""
        params: dict[str, str | int] = {"channel": _join_args(channel_ids)}
        await self.request("POST", f"/bridges/{_q(bridge_id)}/removeChannel", params=params)

    async def start_moh(self, bridge_id: str, moh_class: str = "default") -> None:
        """Play music on hold to everyone in a (holding) bridge."""
        params = {"mohClass": moh_class}
        await self.request("POST", f"/bridges/{_q(bridge_id)}/moh", params=params)

    async def stop_moh(self, bridge_id: str) -> None:
        """Stop music on hold in a bridge."""
        await self.request("DELETE", f"/bridges/{_q(bridge_id)}/moh")

    # ------------------------------------------------------------ applications

    async def get_application(self, app: str | None = None) -> Application:
        """Channels and bridges Asterisk holds for the app: what to reconcile against."""
        body = await self.request("GET", f"/applications/{_q(app or self.app)}")
        return Application.from_json(_need_obj(body, "GET", "/applications/{app}"))

    # ------------------------------------------------------------ events

    def _events_url(self) -> str:
        ws_root = "ws" + self._root[len("http") :]
        return f"{ws_root}/events?app={quote(self.app, safe='')}"

    async def _connect(self) -> aiohttp.ClientWebSocketResponse:
        try:
            return await self._http().ws_connect(
                self._events_url(),
                headers={"Authorization": self._auth.value},
                max_msg_size=self.max_message_bytes,
                heartbeat=self.heartbeat,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=self.connect_timeout),
            )
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status == 401:
                raise AriAuthError("GET", "/events", 401, "Authentication required") from None
            raise AriConnectionError("GET", "/events", exc.status, "handshake refused") from None

    async def events(self, *, reconnect: bool = True) -> AsyncIterator[Event]:
        """Yield events for the app for as long as the client is open.

        The first successful connection yields `WebsocketConnected`; every later one yields
        `WebsocketReconnected`, after which the app must reconcile (events during the gap are
        lost). Malformed events are logged and skipped. A 401 ends the iterator with
        `AriAuthError`: retrying a wrong password only fills Asterisk's log.
        """
        attempt = 0
        dropped_at: float | None = None
        while not self._closing:
            try:
                ws = await asyncio.wait_for(self._connect(), self.connect_timeout)
            except (AriConnectionError, aiohttp.ClientError, TimeoutError, OSError) as exc:
                if not reconnect:
                    raise AriConnectionError("GET", "/events", None, type(exc).__name__) from None
                attempt += 1
                delay = backoff_delay(attempt, self._rng, self.backoff_initial, self.backoff_max)
                log.warning(
                    "ari websocket connect failed (%s); retry %d in %.2f s",
                    type(exc).__name__,
                    attempt,
                    delay,
                )
                await self._sleep(delay)
                continue
            self._ws = ws
            self.connections += 1
            self.connected.set()
            if dropped_at is None:
                log.info("ari websocket connected for app %s", self.app)
                yield WebsocketConnected(application=self.app)
            else:
                downtime = time.monotonic() - dropped_at
                log.info("ari websocket reconnected after %.2f s", downtime)
                yield WebsocketReconnected(
                    application=self.app, attempts=max(attempt, 1), downtime_s=downtime
                )
            attempt = 0
            try:
                async for event in self._read(ws):
                    yield event
            finally:
                self.connected.clear()
                self._ws = None
                await ws.close()
            if self._closing or not reconnect:
                return
            dropped_at = time.monotonic()
            attempt = 1
            delay = backoff_delay(attempt, self._rng, self.backoff_initial, self.backoff_max)
            log.warning("ari websocket dropped; reconnecting in %.2f s", delay)
            await self._sleep(delay)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> AsyncIterator[Event]:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                try:
                    yield parse_event_text(msg.data)
                except MalformedEvent as exc:
                    log.warning("ari event skipped (%s): %s", exc.event_type or "?", exc)
            elif msg.type == aiohttp.WSMsgType.ERROR:
                # Includes a message over max_message_bytes: aiohttp closes the socket after it.
                log.warning("ari websocket error: %s", type(ws.exception()).__name__)
                return
            elif msg.type == aiohttp.WSMsgType.BINARY:
                log.warning("ari websocket sent a binary frame of %d bytes; skipped", len(msg.data))


def _decode(raw: bytes, is_json: bool) -> Any:
    if not raw:
        return None
    text = raw.decode("utf-8", errors="replace")
    if not is_json:
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _need_obj(body: Any, method: str, path: str) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise AriError(method, path, None, "expected a JSON object in the response")
    return body


def _need_list(body: Any, method: str, path: str) -> list[Mapping[str, Any]]:
    if not isinstance(body, list) or not all(isinstance(b, Mapping) for b in body):
        raise AriError(method, path, None, "expected a JSON list of objects in the response")
    return body
