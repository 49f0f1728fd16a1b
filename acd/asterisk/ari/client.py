"""An asyncio ARI client: typed REST calls and a reconnecting event websocket, on aiohttp.

:class:`AriClient` is the REST side (:mod:`acd.asterisk.ari.rest`) with the app's event
stream (:mod:`acd.asterisk.ari.websocket`) on the same session and credentials. Credentials
live only inside a redacting holder and never reach a log line, a repr or an exception text.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType

import aiohttp

from acd.asterisk.ari.errors import (
    AriAuthError,
    AriBadRequest,
    AriConflict,
    AriConnectionError,
    AriError,
    AriNotFound,
    AriServerError,
    AriTimeout,
    AriUnavailable,
    error_for_status,
)
from acd.asterisk.ari.models import Event
from acd.asterisk.ari.rest import HANGUP_REASONS, AriRest, basic_authorization
from acd.asterisk.ari.websocket import EventStream, backoff_delay

__all__ = [
    "HANGUP_REASONS",
    "AriAuthError",
    "AriBadRequest",
    "AriClient",
    "AriConflict",
    "AriConnectionError",
    "AriError",
    "AriNotFound",
    "AriServerError",
    "AriTimeout",
    "AriUnavailable",
    "backoff_delay",
    "basic_authorization",
    "error_for_status",
]


class AriClient(AriRest):
    """ARI over aiohttp: REST methods the engine needs, and `events()` with reconnection.

    Use as ``async with AriClient(url, user, password) as ari:``. Pass `session` to share an
    aiohttp session (the client then leaves it open); pass a seeded `rng` and a fake `sleep`
    to make the reconnect schedule reproducible in tests. Requests that change a call are
    retried for up to `change_budget_s`, clean-up for up to `cleanup_budget_s`, with backoff
    from `retry_initial_s` to `retry_max_s` (see :mod:`acd.asterisk.ari.rest`).
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
        change_budget_s: float = 30.0,
        cleanup_budget_s: float = 120.0,
        retry_initial_s: float = 0.1,
        retry_max_s: float = 2.0,
    ) -> None:
        super().__init__(base_url, username, password, app, session,
                         request_timeout=request_timeout, change_budget_s=change_budget_s,
                         cleanup_budget_s=cleanup_budget_s, retry_initial_s=retry_initial_s,
                         retry_max_s=retry_max_s)
        self._stream = EventStream(
            self, connect_timeout=connect_timeout, max_message_bytes=max_message_bytes,
            heartbeat=heartbeat, backoff_initial=backoff_initial, backoff_max=backoff_max,
            rng=rng, sleep=sleep)

    def __repr__(self) -> str:
        return f"AriClient(base_url={self.root!r}, app={self.app!r})"

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
        await self._stream.close()
        await self.close_session()

    @property
    def connected(self) -> asyncio.Event:
        """Set while the event websocket is open; the app may await it before placing calls."""
        return self._stream.connected

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called (the event stream then ends for good)."""
        return self._stream.closing

    @property
    def backoff_initial(self) -> float:
        """First delay before opening the event websocket again, in seconds."""
        return self._stream.backoff_initial

    @property
    def backoff_max(self) -> float:
        """Longest delay before opening the event websocket again, in seconds."""
        return self._stream.backoff_max

    @property
    def connections(self) -> int:
        """How many times the websocket has been (re)opened, for metrics and tests."""
        return self._stream.connections

    def events(self, *, reconnect: bool = True) -> AsyncIterator[Event]:
        """Yield events for the app for as long as the client is open.

        The first successful connection yields `WebsocketConnected`; every later one yields
        `WebsocketReconnected`, after which the app must reconcile (events during the gap are
        lost). Malformed events are logged and skipped. A 401 ends the iterator with
        `AriAuthError`: retrying a wrong password only fills Asterisk's log.
        """
        return self._stream.events(reconnect=reconnect)
