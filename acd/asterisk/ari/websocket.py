"""ARI's event websocket: events for the app, reconnecting with backoff after a drop."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import quote

import aiohttp

from acd.asterisk.ari.errors import AriAuthError, AriConnectionError
from acd.asterisk.ari.models import (
    Event,
    MalformedEvent,
    WebsocketConnected,
    WebsocketReconnected,
    parse_event_text,
)
from acd.asterisk.ari.rest import AriRest

log = logging.getLogger(__name__)


def backoff_delay(attempt: int, rng: random.Random, initial: float, maximum: float) -> float:
    """Delay before reconnect `attempt` (1-based): exponential, capped, with "equal jitter".

    Half the delay is fixed and half random, so a fleet of engines restarted together does not
    hammer Asterisk in lockstep, yet no attempt comes sooner than half the nominal delay.
    """
    nominal = min(maximum, initial * 2 ** max(0, attempt - 1))
    return nominal / 2 + rng.uniform(0, nominal / 2)


class EventStream:
    """The app's event websocket, opened with the REST side's session, URL and credentials.

    Pass a seeded `rng` and a fake `sleep` to make the reconnect schedule reproducible.
    """

    def __init__(
        self,
        rest: AriRest,
        *,
        connect_timeout: float = 5.0,
        max_message_bytes: int = 1 << 20,
        heartbeat: float | None = 20.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._rest = rest
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

    @property
    def closing(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closing

    async def close(self) -> None:
        """Stop reconnecting and close the websocket."""
        self._closing = True
        if self._ws is not None:
            await self._ws.close()

    def _events_url(self) -> str:
        ws_root = "ws" + self._rest.root[len("http") :]
        return f"{ws_root}/events?app={quote(self._rest.app, safe='')}"

    async def _connect(self) -> aiohttp.ClientWebSocketResponse:
        try:
            return await self._rest.http().ws_connect(
                self._events_url(),
                headers=self._rest.auth_headers(),
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
            app = self._rest.app
            if dropped_at is None:
                log.info("ari websocket connected for app %s", app)
                yield WebsocketConnected(application=app)
            else:
                downtime = time.monotonic() - dropped_at
                log.info("ari websocket reconnected after %.2f s", downtime)
                yield WebsocketReconnected(
                    application=app, attempts=max(attempt, 1), downtime_s=downtime
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
                event = _parse_or_skip(msg.data)
                if event is not None:
                    yield event
            elif msg.type == aiohttp.WSMsgType.ERROR:
                # Includes a message over max_message_bytes: aiohttp closes the socket after
                # it, so the message is skipped and the reconnect's reconcile catches up.
                exc = ws.exception()
                log.warning("ari websocket error (%s: %s); reconnecting",
                            type(exc).__name__, str(exc)[:200])
                return
            elif msg.type == aiohttp.WSMsgType.BINARY:
                log.warning("ari websocket sent a binary frame of %d bytes; skipped", len(msg.data))


def _parse_or_skip(text: str) -> Event | None:
    """The event in a text message, or None (logged) when it cannot be understood."""
    try:
        return parse_event_text(text)
    except MalformedEvent as exc:
        log.warning("ari event skipped (%s): %s; message starts %r", exc.event_type or "?",
                    exc, text[:120])
    except Exception:  # whatever else a hostile message provokes skips it, never the app
        log.exception("ari event skipped (parser failed); message starts %r", text[:120])
    return None
