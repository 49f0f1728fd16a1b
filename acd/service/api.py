"""The HTTP API (aiohttp): agent states, queue and agent snapshots, health, reload, metrics.

Reads are open; every mutating endpoint needs ``Authorization: Bearer <token>``. Without a
configured token, mutating endpoints answer 403 and say how to set one. Request bodies are
capped, and every error is JSON: ``{"error": "...", "message": "...", ...}``.

    GET  /health                      liveness and a few numbers
    GET  /metrics                     Prometheus text format
    GET  /v1/queues                   queue snapshot (``ewt_s`` null with ``ewt_reason`` when
                                      no estimate exists, e.g. nobody logged in)
    GET  /v1/agents[?state=ready]     agent snapshot
    GET  /v1/agents/{id}              one agent
    POST /v1/agents/{id}/login        {"endpoint"?: dial string, "paused_reason"?: str}
    POST /v1/agents/{id}/ready
    POST /v1/agents/{id}/pause        {"reason": str}
    POST /v1/agents/{id}/logout
    POST /v1/reload                   reload the center config and the IVR flows
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import math
import socket
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any, Protocol

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from acd.asterisk.agi.server import Listener
from acd.asterisk.ari.models import MalformedEvent, loads_bounded
from acd.core.dialstring import dial_string_problem
from acd.core.model import (
    AgentAlreadyLoggedIn,
    AgentNotLoggedIn,
    AgentSnapshot,
    AgentState,
    InvalidPauseReason,
    QueueSnapshot,
    RoutingError,
    UnknownAgent,
)
from acd.errors import InputError
from acd.runtime.router_service import RouterService
from acd.service.settings import HttpSettings


class Control(Protocol):
    """What the API needs from the running service."""

    @property
    def service(self) -> RouterService:
        """The router service now (a reload may swap its router)."""

    registry: CollectorRegistry
    token: str | None

    async def reload(self) -> dict[str, object]:
        """Reload config and flows; raises InputError on a bad config."""

    def health(self) -> dict[str, object]:
        """Liveness details."""

    def agent_logged_in(self, agent_id: str, endpoint: str | None) -> None:
        """Hook after a login through the API (remember the endpoint)."""


CONTROL: web.AppKey[Control] = web.AppKey("control", Control)
MAX_BODY: web.AppKey[int] = web.AppKey("max_body", int)
MAX_ID_LENGTH = 64


log = structlog.get_logger("acd.http")


async def serve_http(app: web.Application, h: HttpSettings, guard: HttpGuard
                     ) -> tuple[web.AppRunner, Listener]:
    """Serve ``app`` on ``h.host:h.port`` through the project's own listener: at most
    ``h.max_connections`` connections at once (counting those still being handed over), each
    under ``guard``'s header and body deadlines. Returns the runner and the listener, which
    the caller closes."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    server = runner.server
    assert server is not None
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[None]] = set()

    async def connect(conn: socket.socket) -> None:
        try:
            transport, _ = await loop.connect_accepted_socket(server, sock=conn)
        except OSError as exc:
            conn.close()
            log.info("http_connection_failed", error=str(exc))
            return
        guard.connected(transport)

    def on_socket(conn: socket.socket) -> None:
        task = loop.create_task(connect(conn))
        pending.add(task)
        task.add_done_callback(pending.discard)

    def admit() -> bool:
        return len(server.connections) + len(pending) < h.max_connections

    return runner, Listener(on_socket, h.host, h.port, admit=admit, name="HTTP")


class HttpGuard:
    """Deadlines for HTTP peers: a request's headers must arrive within ``header_timeout_s``
    of the connection (or of the end of the previous request on the connection), and its
    body within ``body_timeout_s``; a peer that misses one is disconnected.

    :meth:`connected` arms the header deadline of a new connection; the middleware
    (:meth:`middleware`) disarms it when a request's headers are in, and arms it again once
    the handler is done (which also bounds an idle keep-alive connection).
    """

    def __init__(self, header_timeout_s: float = 10.0, body_timeout_s: float = 10.0) -> None:
        self.header_timeout_s = header_timeout_s
        self.body_timeout_s = body_timeout_s
        self.dropped = 0
        self._timers: dict[asyncio.BaseTransport, asyncio.TimerHandle] = {}

    def connected(self, transport: asyncio.BaseTransport) -> None:
        """Arm the header deadline of a connection."""
        self._disarm(transport)
        loop = asyncio.get_running_loop()
        self._timers[transport] = loop.call_later(self.header_timeout_s, self._late, transport)

    def _disarm(self, transport: asyncio.BaseTransport) -> None:
        timer = self._timers.pop(transport, None)
        if timer is not None:
            timer.cancel()

    def _late(self, transport: asyncio.BaseTransport) -> None:
        self._timers.pop(transport, None)
        if not transport.is_closing():
            self.dropped += 1
            _abort(transport)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Headers are in: stop their deadline; arm it again when the handler is done."""
        transport = request.transport
        if transport is not None:
            self._disarm(transport)
        try:
            return await handler(request)
        finally:
            if transport is not None and not transport.is_closing():
                self.connected(transport)


def _abort(transport: asyncio.BaseTransport) -> None:
    abort = getattr(transport, "abort", None)
    if abort is not None:
        abort()
    else:
        transport.close()


GUARD: web.AppKey[HttpGuard] = web.AppKey("guard", HttpGuard)


def _json(data: object, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)


def _dumps(data: object) -> str:
    """Strict JSON (RFC 8259): a float that is not finite becomes ``null``, never the
    ``Infinity`` / ``NaN`` that Python writes by default and no JSON parser must accept."""
    return json.dumps(_finite(data), default=_plain, allow_nan=False)


def _finite(value: object) -> object:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _queue_json(snap: QueueSnapshot) -> dict[str, object]:
    """A queue snapshot; an EWT that cannot be estimated is ``null`` with ``ewt_reason``."""
    row: dict[str, object] = dataclasses.asdict(snap)
    reason = None
    if not math.isfinite(snap.ewt_s):
        row["ewt_s"] = None
        reason = "no_agents_logged_in" if snap.agents_logged_in == 0 else "no_estimate"
    row["ewt_reason"] = reason
    return row


def _plain(value: object) -> object:
    if isinstance(value, Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _finite(dataclasses.asdict(value))
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _error(status: int, error: str, message: str, **extra: object) -> web.Response:
    return _json({"error": error, "message": message, **extra}, status)


def _agent_json(a: AgentSnapshot, now: float) -> dict[str, object]:
    return {"agent_id": a.agent_id, "site": a.site, "group": a.group, "state": a.state.value,
            "reason": a.reason, "call_id": a.call_id, "newcomer": a.newcomer,
            "in_state_s": round(max(0.0, now - a.since), 3) if a.since else None}


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure as JSON with a status that says whose fault it is."""
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge:
        return _error(413, "body_too_large",
                      f"request bodies are limited to {request.app[MAX_BODY]} bytes")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error(exc.status, exc.reason.lower().replace(" ", "_"), exc.text or exc.reason)


def _authorise(request: web.Request) -> web.Response | None:
    token = request.app[CONTROL].token
    if not token:
        return _error(403, "no_token_configured",
                      "mutating endpoints are disabled until a token is set: export "
                      "ACD_API_TOKEN (or http.token in the service settings) and restart")
    given = request.headers.get("Authorization", "")
    scheme, _, value = given.partition(" ")
    try:  # a header that is not UTF-8 arrives with surrogates: it can never match
        offered = value.strip().encode()
    except UnicodeError:
        offered = b""
    if scheme.lower() != "bearer" or not hmac.compare_digest(offered, token.encode()):
        resp = _error(401, "unauthorised", "send 'Authorization: Bearer <token>'")
        resp.headers["WWW-Authenticate"] = 'Bearer realm="acd"'
        return resp
    return None


async def _body(request: web.Request) -> dict[str, Any] | web.Response:
    if not request.can_read_body:
        return {}
    limit = request.app[MAX_BODY]
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    guard = request.app[GUARD]
    try:
        async with asyncio.timeout(guard.body_timeout_s):
            raw = await request.read()
    except TimeoutError:
        if request.transport is not None:  # the peer is not sending: drop it now
            guard.dropped += 1
            _abort(request.transport)
        return _error(408, "body_timeout",
                      f"the request body did not arrive within {guard.body_timeout_s} s")
    if not raw.strip():
        return {}
    try:
        data = loads_bounded(raw.decode(), "the request body", limit)
    except (MalformedEvent, UnicodeDecodeError):
        return _error(400, "bad_json", "the request body is not valid JSON (or nests too deep)")
    if not isinstance(data, dict):
        return _error(400, "bad_json", "the request body must be a JSON object")
    return data


def _string_field(data: dict[str, Any], name: str, required: bool) -> str | web.Response | None:
    value = data.get(name)
    if value is None:
        if required:
            return _error(422, "missing_field", f"field {name!r} is required")
        return None
    if not isinstance(value, str) or not value or len(value) > 200:
        return _error(422, "bad_field", f"field {name!r} must be a non-empty string "
                      "of at most 200 characters")
    return value


def _routing_error(exc: RoutingError, control: Control) -> web.Response:
    if isinstance(exc, UnknownAgent):
        return _error(404, "unknown_agent", str(exc))
    if isinstance(exc, AgentAlreadyLoggedIn):
        return _error(409, "already_logged_in", str(exc))
    if isinstance(exc, AgentNotLoggedIn):
        return _error(409, "not_logged_in", str(exc))
    if isinstance(exc, InvalidPauseReason):
        valid = sorted(control.service.center.config.pause_reasons)
        return _error(422, "invalid_pause_reason", str(exc), valid=valid)
    return _error(409, "refused", str(exc))


async def health(request: web.Request) -> web.StreamResponse:
    """Liveness: 200 with a few numbers while the service runs; 503 ``degraded`` with the
    reasons (``problems``) while a part it needs is down (ARI configured but not connected)."""
    details = request.app[CONTROL].health()
    problems = details.get("problems")
    if isinstance(problems, list) and problems:
        return _json({"status": "degraded", **details}, status=503)
    return _json({"status": "ok", **details})


async def metrics(request: web.Request) -> web.StreamResponse:
    """The Prometheus exposition of the service's own registry."""
    body = generate_latest(request.app[CONTROL].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def queues(request: web.Request) -> web.StreamResponse:
    """Every queue now."""
    snaps = request.app[CONTROL].service.queue_snapshot()
    return _json({"queues": [_queue_json(s) for s in snaps]})


async def agents(request: web.Request) -> web.StreamResponse:
    """Every agent now, optionally only those in ``?state=``."""
    service = request.app[CONTROL].service
    wanted = request.query.get("state")
    if wanted is not None and wanted not in {s.value for s in AgentState}:
        return _error(422, "bad_state", f"unknown agent state {wanted[:40]!r}",
                      valid=[s.value for s in AgentState])
    now = service.now()
    rows = [_agent_json(a, now) for a in service.router.agent_snapshot()
            if wanted is None or a.state.value == wanted]
    return _json({"agents": rows})


async def agent(request: web.Request) -> web.StreamResponse:
    """One agent now."""
    service = request.app[CONTROL].service
    agent_id = request.match_info["agent_id"]
    for a in service.router.agent_snapshot():
        if a.agent_id == agent_id:
            return _json(_agent_json(a, service.now()))
    return _error(404, "unknown_agent", f"agent {agent_id[:MAX_ID_LENGTH]!r} is not on the "
                  "roster")


def _agent_action(action: str) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        denied = _authorise(request)
        if denied is not None:
            return denied
        control = request.app[CONTROL]
        agent_id = request.match_info["agent_id"]
        if len(agent_id) > MAX_ID_LENGTH:
            return _error(404, "unknown_agent", "agent ids are at most 64 characters")
        data = await _body(request)
        if isinstance(data, web.Response):
            return data
        service = control.service
        try:
            if action == "login":
                endpoint = _string_field(data, "endpoint", False)
                reason = _string_field(data, "paused_reason", False)
                for v in (endpoint, reason):
                    if isinstance(v, web.Response):
                        return v
                assert not isinstance(endpoint, web.Response)
                assert not isinstance(reason, web.Response)
                why = dial_string_problem(endpoint) if endpoint is not None else None
                if why is not None:  # refused here, not at every offer (a rona pause)
                    return _error(422, "bad_endpoint", f"field 'endpoint': {why}")
                service.login(agent_id, endpoint, reason)
                control.agent_logged_in(agent_id, endpoint)
            elif action == "pause":
                reason = _string_field(data, "reason", True)
                if isinstance(reason, web.Response):
                    return reason
                assert reason is not None
                service.pause(agent_id, reason)
            elif action == "ready":
                service.ready(agent_id)
            else:
                service.logout(agent_id)
        except RoutingError as exc:
            return _routing_error(exc, control)
        state = service.router.agent_state(agent_id)
        return _json({"agent_id": agent_id, "state": state.value})

    return handle


async def reload(request: web.Request) -> web.StreamResponse:
    """Reload the center config and IVR flows, keeping calls and agent states."""
    denied = _authorise(request)
    if denied is not None:
        return denied
    try:
        result = await request.app[CONTROL].reload()
    except InputError as exc:
        return _error(422, "bad_config", "the new configuration was refused; the old one "
                      "stays in force", problems=[str(p) for p in exc.problems])
    except RoutingError as exc:
        return _error(409, "reload_refused", str(exc))
    except Exception as exc:  # noqa: BLE001 - a bug (logged by the reload): JSON all the same
        return _error(500, "reload_failed", "the reload failed; the old configuration stays "
                      f"in force: {type(exc).__name__}: {exc}")
    return _json({"status": "reloaded", **result})


def build_api(control: Control, max_body_bytes: int = 16_384,
              guard: HttpGuard | None = None) -> web.Application:
    """The aiohttp application for ``control``; ``guard`` holds the read deadlines (give
    every new connection to its `HttpGuard.connected` to bound the first headers)."""
    guard = guard if guard is not None else HttpGuard()
    app = web.Application(client_max_size=max_body_bytes,
                          middlewares=[guard.middleware, _errors])
    app[CONTROL] = control
    app[GUARD] = guard
    app[MAX_BODY] = max_body_bytes
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/v1/queues", queues)
    app.router.add_get("/v1/agents", agents)
    app.router.add_get("/v1/agents/{agent_id}", agent)
    for action in ("login", "ready", "pause", "logout"):
        app.router.add_post(f"/v1/agents/{{agent_id}}/{action}", _agent_action(action))
    app.router.add_post("/v1/reload", reload)
    return app
