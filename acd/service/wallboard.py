"""The live wallboard: ``GET /wallboard`` (a static page) fed by ``GET /wallboard/events``.

The page is plain HTML, CSS and JavaScript from package data (``acd/service/static``); it
opens a server-sent event stream and redraws on every message. Each message is one JSON
snapshot: per queue the calls waiting, oldest wait, EWT, service level of the last 15 minutes
and of today against the queue's target, answer rate; agents by state per site, group and
language; the logged-in agents with their state and time in state; today's post-call survey
average against its target; and alerts (a queue below its SL target, a callers' language with
no agent logged in).

Fan-out is bounded so open pages never slow routing. The router observer only counts and sets
a flag. A single :class:`Wallboard` task computes at most ``max_updates_per_s`` snapshots a
second (and one every ``refresh_s`` so waits keep growing on screen), serialises each once,
and hands the same bytes to every subscriber. A subscriber holds only the newest snapshot:
a slow client skips the ones it had no time for, and one that stops reading for
``write_timeout_s`` is dropped. At most ``max_subscribers`` streams are open at once; the
next page gets 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from importlib import resources
from zoneinfo import ZoneInfo

import structlog
from aiohttp import web

from acd.config.schema import CenterConfig, ServiceLevel
from acd.core.model import (
    AgentState,
    CallAnswered,
    CallEnded,
    CallMoved,
    CallQueued,
    Outcome,
    Output,
)
from acd.runtime.router_service import RouterService
from acd.service.settings import WallboardSettings

log = structlog.get_logger("acd.wallboard")

#: How the page names agent states (``on_call`` is "talking" on a wallboard).
STATE_LABELS = {AgentState.READY: "ready", AgentState.RINGING: "ringing",
                AgentState.ON_CALL: "talking", AgentState.WRAP_UP: "wrap_up",
                AgentState.PAUSED: "paused"}
PAGES = {"wallboard.html": "text/html", "wallboard.css": "text/css",
         "wallboard.js": "text/javascript"}


@dataclass
class _Tally:
    """Calls decided (answered, abandoned, sent elsewhere) and how many met the threshold."""

    decided: int = 0
    answered: int = 0
    within: int = 0

    def add(self, answered: bool, within: bool) -> None:
        self.decided += 1
        self.answered += answered
        self.within += within


@dataclass
class _QueueLog:
    """One queue's recent decisions (for the rolling window) and today's tally."""

    recent: deque[tuple[float, bool, bool]] = field(default_factory=deque)
    today: _Tally = field(default_factory=_Tally)


class Subscriber:
    """One open page: holds the newest snapshot not yet sent, never more."""

    def __init__(self) -> None:
        self.latest: bytes | None = None
        self.dropped = 0
        self._ready = asyncio.Event()
        self.closed = False

    def offer(self, message: bytes) -> None:
        """Replace whatever is waiting with ``message`` (a stale snapshot is worth nothing)."""
        if self.latest is not None:
            self.dropped += 1
        self.latest = message
        self._ready.set()

    def close(self) -> None:
        """Wake the stream so it ends."""
        self.closed = True
        self._ready.set()

    async def next(self, timeout: float) -> bytes | None:
        """The next snapshot, or None after ``timeout`` seconds (time for a keep-alive)."""
        # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation
        # that arrives as the event is set, and the stream would never end.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._ready.wait()
        self._ready.clear()
        message, self.latest = self.latest, None
        return message


class Wallboard:
    """Keeps what the page shows beyond the router's snapshots, and fans snapshots out."""

    def __init__(self, source: Callable[[], RouterService], settings: WallboardSettings,
                 clock: Callable[[], float] = time.time) -> None:
        self._source = source
        self.settings = settings
        self._clock = clock
        self._queues: dict[str, _QueueLog] = {}
        self._waiting_since: dict[str, tuple[str, float]] = {}
        self._day: date | None = None
        self._changed = asyncio.Event()
        self.subscribers: set[Subscriber] = set()
        self.snapshots = 0
        self._task: asyncio.Task[None] | None = None
        self._roster: object = None
        self._spoken: dict[str, list[str]] = {}
        #: Today's post-call survey answers: how many, their sum; and the target average.
        self._scores = (0, 0)
        self.survey_target = 4.75

    def survey_answered(self, score: int, wall: float | None = None) -> None:
        """Count a post-call survey answer given now (or at ``wall``) into today's average."""
        self._roll_day(self._clock() if wall is None else wall)
        count, total = self._scores
        self._scores = (count + 1, total + score)
        self._changed.set()

    def start_survey_day(self, count: int, total: int) -> None:
        """Today's survey answers so far, as the records have them (at start)."""
        self._roll_day(self._clock())
        self._scores = (count, total)

    def day_start(self) -> float:
        """When today began in the center's time zone (Unix seconds)."""
        local = datetime.fromtimestamp(self._clock(), self._zone())
        return local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()

    # ------------------------------------------------------------------ router observer

    def observe(self, output: Output, wall: float) -> None:
        """Count a router output (a service observer): cheap, never blocks routing."""
        if isinstance(output, CallQueued):
            self._waiting_since.setdefault(output.call_id, (output.queue, wall))
        elif isinstance(output, CallMoved):
            since = self._waiting_since.get(output.call_id)
            if since is not None:
                self._waiting_since[output.call_id] = (output.to_queue, since[1])
        elif isinstance(output, CallAnswered):
            self._waiting_since.pop(output.call_id, None)
            self._decide(output.queue, wall, True,
                         output.wait_s <= _level(self._config(), output.queue).threshold_s)
        elif isinstance(output, CallEnded):
            was_waiting = self._waiting_since.pop(output.call_id, None) is not None
            if output.outcome is not Outcome.ANSWERED and was_waiting:
                self._decide(output.queue, wall, False, False)
        self._changed.set()

    def _decide(self, queue: str, wall: float, answered: bool, within: bool) -> None:
        q = self._queues.setdefault(queue, _QueueLog())
        self._roll_day(wall)
        q.recent.append((wall, answered, within))
        q.today.add(answered, within)

    def _roll_day(self, wall: float) -> None:
        today = datetime.fromtimestamp(wall, self._zone()).date()
        if today != self._day:
            self._day = today
            for q in self._queues.values():
                q.today = _Tally()
            self._scores = (0, 0)

    def _languages(self, service: RouterService) -> dict[str, list[str]]:
        """Each agent's languages, from the roster (kept until a reload brings a new one)."""
        if self._roster is not service.center.agents:
            self._roster = service.center.agents
            self._spoken = {a.id: list(a.languages) for a in self._roster}
        return self._spoken

    def _config(self) -> CenterConfig:
        return self._source().center.config

    def _zone(self) -> ZoneInfo:
        sites = self._config().sites
        return ZoneInfo(next(iter(sites.values())).timezone) if sites else ZoneInfo("UTC")

    # ------------------------------------------------------------------ snapshot

    def snapshot(self) -> dict[str, object]:
        """What the page shows now, as plain JSON-ready data."""
        service = self._source()
        config = service.center.config
        wall = self._clock()
        self._roll_day(wall)
        now = service.now()
        queues = [self._queue_row(s.queue, s.waiting, s.oldest_wait_s, s.ewt_s,
                                  s.agents_logged_in, s.agents_ready, wall, config)
                  for s in service.queue_snapshot()]
        languages = self._languages(service)
        agents = []
        by_site: dict[str, dict[str, int]] = {}
        by_group: dict[str, dict[str, int]] = {}
        by_language: dict[str, dict[str, int]] = {}
        for a in sorted(service.router.agent_snapshot(),
                        key=lambda a: (a.site, a.group, a.agent_id)):
            if a.state is AgentState.LOGGED_OUT:
                continue
            label = STATE_LABELS[a.state]
            key = f"paused:{a.reason}" if a.state is AgentState.PAUSED else label
            spoken = languages.get(a.agent_id, [])
            agents.append({"agent_id": a.agent_id, "site": a.site, "group": a.group,
                           "languages": spoken, "state": label, "reason": a.reason,
                           "in_state_s": round(max(0.0, now - a.since), 1)})
            for counts in (by_site.setdefault(a.site, {}), by_group.setdefault(a.group, {}),
                           *(by_language.setdefault(lang, {}) for lang in spoken)):
                counts[key] = counts.get(key, 0) + 1
        groups = {"site": by_site, "group": by_group, "language": by_language}
        return {"at": wall, "center": config.center.name, "queues": queues,
                "agents_by": {dim: [{"name": k, "states": v} for k, v in sorted(rows.items())]
                              for dim, rows in groups.items()},
                "agents": agents, "alerts": self._alerts(queues, groups["language"], config),
                "survey_today": {"answers": self._scores[0],
                                 "average": (self._scores[1] / self._scores[0]
                                             if self._scores[0] else None),
                                 "target": self.survey_target}}

    def _queue_row(self, queue: str, waiting: int, oldest: float, ewt: float, logged_in: int,
                   ready: int, wall: float, config: CenterConfig) -> dict[str, object]:
        sl = _level(config, queue)
        log_ = self._queues.setdefault(queue, _QueueLog())
        start = wall - self.settings.sl_window_s
        while log_.recent and log_.recent[0][0] < start:
            log_.recent.popleft()
        late = sum(1 for q, since in self._waiting_since.values()
                   if q == queue and wall - since > sl.threshold_s)
        window = _Tally()
        for _, answered, within in log_.recent:
            window.add(answered, within)
        return {"queue": queue, "waiting": waiting, "oldest_wait_s": round(oldest, 1),
                "ewt_s": round(ewt, 1) if math.isfinite(ewt) else None,
                "agents_logged_in": logged_in, "agents_ready": ready,
                "sl_target": sl.target, "sl_threshold_s": sl.threshold_s,
                "sl_window": _ratio(window.within, window.decided + late),
                "sl_today": _ratio(log_.today.within, log_.today.decided + late),
                "answer_rate_today": _ratio(log_.today.answered, log_.today.decided),
                "answer_rate_target": config.center.answer_rate_target,
                "calls_today": log_.today.decided}

    @staticmethod
    def _alerts(queues: list[dict[str, object]], by_language: dict[str, dict[str, int]],
                config: CenterConfig) -> list[dict[str, str]]:
        alerts = []
        for q in queues:
            for key, span in (("sl_window", "the last 15 minutes"), ("sl_today", "today")):
                value, target = q[key], q["sl_target"]
                if isinstance(value, float) and isinstance(target, float) and value < target:
                    alerts.append({"kind": "sl", "queue": str(q["queue"]),
                                   "text": f"{q['queue']}: service level {value:.0%} in "
                                           f"{span}, below the {target:.0%} target"})
        spoken = {c.language for c in config.countries.values()}
        spoken.add(config.center.default_language)
        for language in sorted(spoken):
            if not sum(by_language.get(language, {}).values()):
                alerts.append({"kind": "language", "language": language,
                               "text": f"no agent speaking {language!r} is logged in"})
        return alerts

    # ------------------------------------------------------------------ fan-out

    def subscribe(self) -> Subscriber | None:
        """A new stream, primed with a snapshot; None when ``max_subscribers`` are open."""
        if len(self.subscribers) >= self.settings.max_subscribers:
            return None
        sub = Subscriber()
        self.subscribers.add(sub)
        self._changed.set()  # the newcomer gets a fresh snapshot at the next tick
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        """Forget a stream that ended."""
        self.subscribers.discard(sub)

    def publish(self) -> bytes:
        """Compute one snapshot and hand the same bytes to every subscriber."""
        message = b"data: " + json.dumps(self.snapshot(), separators=(",", ":")).encode() + b"\n\n"
        self.snapshots += 1
        for sub in self.subscribers:
            sub.offer(message)
        return message

    async def run(self) -> None:
        """Publish on change (coalesced to the rate limit) or every ``refresh_s``."""
        gap = 1.0 / self.settings.max_updates_per_s
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.refresh_s):
                    await self._changed.wait()
            self._changed.clear()
            if self.subscribers:
                try:
                    self.publish()
                except Exception:  # a bug in a view must not end the wallboard
                    log.exception("wallboard_snapshot_failed")
            await asyncio.sleep(gap)

    def start(self) -> None:
        """Run the publishing task on the running loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run())

    async def close(self) -> None:
        """End every stream and the publishing task (at shutdown)."""
        for sub in list(self.subscribers):
            sub.close()
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # we are being cancelled ourselves: never swallow that


def _level(config: CenterConfig, queue: str) -> ServiceLevel:
    """The queue's service-level definition (the center's for a queue the config lost)."""
    return config.sl_for(queue) if queue in config.queues else config.center.service_level


def _ratio(good: int, total: int) -> float | None:
    return good / total if total else None


# ---------------------------------------------------------------------- HTTP

WALLBOARD: web.AppKey[Wallboard] = web.AppKey("wallboard", Wallboard)


async def page(request: web.Request) -> web.StreamResponse:
    """The page, its style sheet or its script, from package data."""
    name = request.match_info.get("name", "wallboard.html")
    if name not in PAGES:
        raise web.HTTPNotFound(text=f"no such file {name[:40]!r}")
    body = resources.files("acd.service").joinpath("static", name).read_bytes()
    return web.Response(body=body, content_type=PAGES[name], charset="utf-8",
                        headers={"Cache-Control": "no-cache"})


async def events(request: web.Request) -> web.StreamResponse:
    """The server-sent event stream: one ``data:`` line of JSON per snapshot."""
    board = request.app[WALLBOARD]
    sub = board.subscribe()
    if sub is None:
        return web.json_response(
            {"error": "too_many_wallboards", "message": "the wallboard serves at most "
             f"{board.settings.max_subscribers} open pages; close one or raise "
             "http.wallboard.max_subscribers"}, status=503, headers={"Retry-After": "10"})
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                       "Cache-Control": "no-cache",
                                       "X-Accel-Buffering": "no"})
    try:
        await resp.prepare(request)
        await resp.write(b"retry: 2000\n\n")
        while not sub.closed:
            message = await sub.next(board.settings.keepalive_s)
            chunk = message if message is not None else b": keep-alive\n\n"
            async with asyncio.timeout(board.settings.write_timeout_s):
                await resp.write(chunk)
    except (ConnectionResetError, TimeoutError):
        pass  # the page went away or stopped reading: free its place
    finally:
        board.unsubscribe(sub)
    return resp


def add_wallboard(app: web.Application, board: Wallboard) -> None:
    """Serve ``board`` on ``app``: the page at ``/wallboard``, its stream, its task."""
    app[WALLBOARD] = board
    app.router.add_get("/wallboard", page)
    app.router.add_get("/wallboard/events", events)
    app.router.add_get("/wallboard/{name}", page)

    async def started(_: web.Application) -> None:
        board.start()

    async def stopping(_: web.Application) -> None:
        await board.close()

    app.on_startup.append(started)
    app.on_shutdown.append(stopping)


async def stream_lines(body: AsyncIterator[bytes]) -> AsyncIterator[dict[str, object]]:
    """Decode a server-sent event stream's ``data:`` lines (for clients and tests)."""
    async for line in body:
        if line.startswith(b"data: "):
            yield json.loads(line[6:])
