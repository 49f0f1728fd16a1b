"""Test helpers on the client side of ARI: keep every event a client receives, wait for one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any

from acd.asterisk.ari.client import AriClient, AriError
from acd.asterisk.ari.models import AriEvent, Event, WebsocketConnected, WebsocketReconnected


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
