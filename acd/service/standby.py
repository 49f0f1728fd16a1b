"""``acd serve`` with ``standby.enabled``: a standby until the leader lock is ours, then active.

While standby the process serves only ``GET /health`` (``"role": "standby"``) and
``/metrics`` (``acd_router_role{role="standby"} 1`` and the ``process_*`` series): no FastAGI
listener (Asterisk's ``AGI()`` to it fails at once, so the dialplan tries the other address),
no ARI connection, no records written. When :class:`~acd.service.leader.Leadership` gets the
lock, the standby HTTP listener closes and a full :class:`~acd.service.app.Runtime` starts on
the same addresses: it opens the shared store and puts the floor back exactly as after a
restart (:mod:`acd.service.state`: agents, calls ringing, talking and in wrap-up; waiting
calls followed until their callers re-enter), then listens for FastAGI and adopts the ARI
application's channels. Should the lock be lost, the runtime is fenced (nothing more is
written to the shared store, callers are handed back so the dialplan re-enters them at the
other router) and the process exits with :data:`EXIT_FENCED`, for its supervisor to start it
again as a standby.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import urlsplit

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

from acd.asterisk.agi.server import Listener
from acd.errors import ConfigError, Problem
from acd.service.api import HttpGuard, serve_http
from acd.service.leader import Leadership, LockTiming
from acd.service.metrics import add_process_metrics
from acd.service.settings import Settings, StandbySettings

log = structlog.get_logger("acd.standby")

#: Exit status after the lock was lost (EX_TEMPFAIL): start again, as a standby.
EXIT_FENCED = 75
ROLES = ("active", "standby")


def lock_url(settings: Settings) -> str:
    """The PostgreSQL URL the lock lives in: ``standby.url``, else ``records.url`` (the
    records must be shared by both routers anyway)."""
    s = settings.standby
    url = s.url or settings.records.url
    if url is None or urlsplit(url).scheme not in ("postgresql", "postgres"):
        where = "standby.url" if s.url else "records.url"
        raise ConfigError([Problem(settings.file or "<defaults>", where, url,
                                   "a standby router needs the records in PostgreSQL: give"
                                   " records.url as a postgresql:// URL")])
    try:
        import psycopg  # noqa: F401 (only whether it is installed)
    except ImportError:
        raise ConfigError([Problem(settings.file or "<defaults>", "standby.enabled", "true",
                                   "a standby router needs psycopg 3: pip install"
                                   " 'acd-engine[postgres]'")]) from None
    return url


def lock_timing(s: StandbySettings) -> LockTiming:
    """The lock's timing from the settings."""
    return LockTiming(s.poll_interval_s, s.check_timeout_s, s.connect_timeout_s,
                      s.keepalive_idle_s, s.keepalive_interval_s, s.keepalive_count)


def role_registry(role: str) -> CollectorRegistry:
    """A registry whose ``acd_router_role`` says ``role`` (1) and not the other (0)."""
    registry = CollectorRegistry()
    gauge = Gauge("acd_router_role", "1 for this router's role: active (routing calls) or"
                  " standby (waiting for the leader lock).", ["role"], registry=registry)
    for name in ROLES:
        gauge.labels(name).set(1 if name == role else 0)
    return registry


class ActiveRuntime(Protocol):
    """What an active router runs (:class:`acd.service.app.Runtime`)."""

    started: bool
    agi_port: int
    http_port: int

    async def start(self) -> None:
        """Open the store, put the floor back, listen."""

    async def stop(self) -> None:
        """Stop listening and close everything."""

    def fence(self) -> None:
        """Stop writing to the shared store and stop with no grace."""


class StandbyRouter:
    """One router of a pair: standby, then active until stopped or fenced."""

    def __init__(self, settings: Settings,
                 make_runtime: Callable[[CollectorRegistry], ActiveRuntime]) -> None:
        self.settings = settings
        self.make_runtime = make_runtime
        self.leadership = Leadership(lock_url(settings), settings.standby.lock_key,
                                     lock_timing(settings.standby),
                                     password=settings.records_password)
        self.role = "standby"
        #: The running service once active (None while standby).
        self.runtime: ActiveRuntime | None = None
        self.started_at = time.time()
        self.fenced = False
        #: Seconds from the lock being taken to the runtime serving calls.
        self.start_s: float | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Standby until the lock is ours, then active until ``stop`` (or fenced: raises
        ``SystemExit(EXIT_FENCED)`` once the runtime is down)."""
        registry = role_registry("standby")
        add_process_metrics(registry)
        site = await self._standby_http(registry)
        log.info("acd_standby", http_port=site.port,
                 lock_key=self.settings.standby.lock_key)
        try:
            acquired = await _first(self.leadership.acquire(), stop.wait())
        finally:
            await site.cleanup()
        if not acquired or stop.is_set():
            await self.leadership.release()
            return
        t0 = time.monotonic()
        self.role = "active"
        runtime = self.runtime = self.make_runtime(role_registry("active"))
        try:
            await runtime.start()
            self.start_s = time.monotonic() - t0
            log.info("acd_active", start_s=round(self.start_s, 3), agi_port=runtime.agi_port,
                     http_port=runtime.http_port)
            lost = await _first(self.leadership.watch(), stop.wait())
        except BaseException:
            runtime.fence()
            raise
        finally:
            if not stop.is_set() and not self.leadership.held:
                self.fenced = True
                runtime.fence()  # stop writing and routing at once: the other side may take over
            await runtime.stop()
            await self.leadership.release()
        if lost:
            raise SystemExit(EXIT_FENCED)

    async def _standby_http(self, registry: CollectorRegistry) -> StandbyHttp:
        """``/health`` and ``/metrics`` while standby (the runtime's API replaces them), with
        the API's bounds: ``http.max_connections`` at once, header and body deadlines."""
        h = self.settings.http

        async def health(request: web.Request) -> web.StreamResponse:
            return web.json_response({"status": "ok", "role": "standby",
                                      "uptime_s": round(time.time() - self.started_at, 3)})

        async def metrics(request: web.Request) -> web.StreamResponse:
            return web.Response(body=generate_latest(registry),
                                headers={"Content-Type": CONTENT_TYPE_LATEST})

        guard = HttpGuard(h.header_timeout_s, h.body_timeout_s)
        app = web.Application(client_max_size=h.max_body_bytes, middlewares=[guard.middleware])
        app.router.add_get("/health", health)
        app.router.add_get("/metrics", metrics)
        runner, listener = await serve_http(app, h, guard)
        return StandbyHttp(runner, listener)


class StandbyHttp:
    """The standby's HTTP listener and its aiohttp runner."""

    def __init__(self, runner: web.AppRunner, listener: Listener) -> None:
        self.runner = runner
        self.listener = listener

    @property
    def port(self) -> int:
        """The bound port."""
        return self.listener.port

    async def cleanup(self) -> None:
        """Stop listening and close every connection (the runtime binds the port next)."""
        self.listener.close()
        await self.runner.cleanup()


async def _first(primary: Any, other: Any) -> bool:
    """Run two awaitables until the first ends; True when ``primary`` ended first (the other
    is cancelled)."""
    a = asyncio.ensure_future(primary)
    b = asyncio.ensure_future(other)
    try:
        done, _ = await asyncio.wait({a, b}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (a, b):
            if not task.done():
                task.cancel()
        await asyncio.gather(a, b, return_exceptions=True)
    if a in done:
        a.result()  # its error, if any, is ours
        return True
    return False
