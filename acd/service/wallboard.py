"""The live wallboard: ``GET /wallboard`` (a static page) fed by ``GET /wallboard/events``.

The page is plain HTML, CSS and JavaScript from package data (``acd/service/static``); it
opens a server-sent event stream and redraws on every message. Each message is one JSON
snapshot: per queue the calls waiting, oldest wait, EWT, service level of the last 15 minutes
and of today against the queue's target, answer rate; agents by state per site, group and
language; the logged-in agents with their state and time in state; today's post-call survey
average against its target; and alerts (a queue below its SL target, a callers' language with
no agent logged in).

Fan-out is bounded so open pages never slow routing. The router observer only counts and sets
a flag (agent rows, counts and the waiting calls per queue are kept from the router's outputs,
so a snapshot redoes little). A single :class:`Wallboard` task computes at most
``max_updates_per_s`` snapshots a second (and one every ``refresh_s`` so waits keep growing
on screen), serialises each once, and writes the same bytes to every page's connection
itself, a few pages at a time between which routing runs: no task per page wakes up. A page
whose connection still holds more than ``STREAM_BUFFER_BYTES`` unsent skips snapshots (it
gets the next one it has room for), and one that stays that far behind for
``write_timeout_s`` is dropped. At most ``max_subscribers`` streams are open at once; the
next page gets 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from bisect import bisect_left, insort
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib import resources
from zoneinfo import ZoneInfo

import structlog
from aiohttp import HttpVersion11, web

from acd.config.schema import CenterConfig, ServiceLevel
from acd.core.model import (
    AgentSnapshot,
    AgentState,
    AgentStateChanged,
    CallAnswered,
    CallEnded,
    CallMoved,
    CallQueued,
    Outcome,
    Output,
)
from acd.runtime.router_service import RouterService
from acd.runtime.tasks import cancel_and_wait
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

    def add(self, answered: bool, within: bool, n: int = 1) -> None:
        self.decided += n
        self.answered += answered * n
        self.within += within * n


@dataclass
class _QueueLog:
    """One queue's recent decisions (for the rolling window, with their running tally),
    today's tally, and its calls waiting ordered by when they started to wait."""

    recent: deque[tuple[float, bool, bool]] = field(default_factory=deque)
    window: _Tally = field(default_factory=_Tally)
    today: _Tally = field(default_factory=_Tally)
    waiting: list[tuple[float, str]] = field(default_factory=list)

    def forget_before(self, start: float) -> None:
        """Drop the decisions older than ``start`` from the window (and its tally)."""
        recent, window = self.recent, self.window
        while recent and recent[0][0] < start:
            _, answered, within = recent.popleft()
            window.add(answered, within, -1)

    def unwait(self, since: float, call_id: str) -> None:
        """A call no longer waits here."""
        key = (since, call_id)
        i = bisect_left(self.waiting, key)
        if i < len(self.waiting) and self.waiting[i] == key:
            del self.waiting[i]

    def late(self, cut: float) -> int:
        """Calls that started waiting before ``cut``."""
        return bisect_left(self.waiting, (cut,))


class _AgentRows(list[dict[str, object]]):
    """The snapshot's agent list, with its JSON text made from per-agent pieces kept
    between snapshots (only the times in state are written anew). The page gets that text:
    a field for the agents' rows goes into :meth:`_Agents._row`, not into this list."""

    json: str = "[]"


class _Agents:
    """The logged-in agents as the wallboard shows them, kept from the router's
    ``AgentStateChanged`` outputs instead of rebuilt from its snapshot on every tick: the
    counts by site, group and language are recounted only after a change, and each agent's
    row (and its JSON) only when that agent changed."""

    def __init__(self, router: object, agents: list[AgentSnapshot],
                 spoken: dict[str, list[str]]) -> None:
        self.router = router
        self.spoken = spoken
        ordered = sorted(agents, key=lambda a: (a.site, a.group, a.agent_id))
        self.order = [a.agent_id for a in ordered]
        self.where = {a.agent_id: (a.site, a.group) for a in ordered}
        #: Each agent's state, pause reason and since when (router time).
        self.state = {a.agent_id: (a.state, a.reason, a.since) for a in ordered}
        self.rows: dict[str, tuple[dict[str, object], str]] = {}
        #: The rows shown, in order, with each agent's JSON piece and time of its change.
        self.shown: list[tuple[dict[str, object], str, float]] = []
        self.groups: dict[str, dict[str, dict[str, int]]] = {}
        self.stale = True
        for agent_id in self.order:
            self._row(agent_id)

    def changed(self, event: AgentStateChanged) -> bool:
        """Take one state change; False when the agent is not on this roster."""
        if event.agent_id not in self.state:
            return False
        self.state[event.agent_id] = (event.state, event.reason, event.at)
        self._row(event.agent_id)
        self.stale = True
        return True

    def _row(self, agent_id: str) -> None:
        state, reason, _ = self.state[agent_id]
        if state is AgentState.LOGGED_OUT:
            self.rows.pop(agent_id, None)
            return
        site, group = self.where[agent_id]
        row: dict[str, object] = {
            "agent_id": agent_id, "site": site, "group": group,
            "languages": self.spoken.get(agent_id, []), "state": STATE_LABELS[state],
            "reason": reason}
        # The row's JSON without its closing brace, ready for ``"in_state_s": ...}``.
        text = json.dumps(row, separators=(",", ":"))[:-1] + ',"in_state_s":'
        self.rows[agent_id] = row, text

    def recount(self) -> None:
        """The agents by state per site, group and language (after a change only)."""
        if not self.stale:
            return
        by_site: dict[str, dict[str, int]] = {}
        by_group: dict[str, dict[str, int]] = {}
        by_language: dict[str, dict[str, int]] = {}
        for agent_id in self.order:
            state, reason, _ = self.state[agent_id]
            if state is AgentState.LOGGED_OUT:
                continue
            label = STATE_LABELS[state]
            key = f"paused:{reason}" if state is AgentState.PAUSED else label
            site, group = self.where[agent_id]
            for counts in (by_site.setdefault(site, {}), by_group.setdefault(group, {}),
                           *(by_language.setdefault(lang, {})
                             for lang in self.spoken.get(agent_id, []))):
                counts[key] = counts.get(key, 0) + 1
        self.groups = {"site": by_site, "group": by_group, "language": by_language}
        self.shown = [(*self.rows[agent_id], self.state[agent_id][2])
                      for agent_id in self.order if agent_id in self.rows]
        self.stale = False

    def listing(self, now: float) -> _AgentRows:
        """The logged-in agents in (site, group, id) order with their time in state (after
        :meth:`recount`)."""
        out = _AgentRows()
        texts = []
        for row, text, since in self.shown:
            in_state = round(max(0.0, now - since), 1)
            line = row.copy()
            line["in_state_s"] = in_state
            out.append(line)
            texts.append(f"{text}{in_state!r}}}")
        out.json = "[" + ",".join(texts) + "]"
        return out


class Subscriber:
    """One open page: holds the newest snapshot not yet sent, never more.

    Once :meth:`attach` ties it to its connection, :meth:`offer` writes the snapshot to that
    connection at once from the publishing task (no task per page wakes up), unless more
    than ``max_buffer`` bytes are still waiting to go out to that page: then the snapshot is
    skipped (a stale snapshot is worth nothing), and a page that stays that far behind for
    ``write_timeout_s`` is dropped.
    """

    def __init__(self) -> None:
        self.latest: bytes | None = None
        self.dropped = 0
        self._ready = asyncio.Event()
        self.closed = False
        self._transport: asyncio.WriteTransport | None = None
        self._chunked = False
        self._max_buffer = 0
        self._write_timeout_s = 0.0
        self._behind_since: float | None = None
        #: When the attached connection was last written to (monotonic seconds).
        self.sent_at = 0.0

    def attach(self, transport: asyncio.WriteTransport, chunked: bool, max_buffer: int,
               write_timeout_s: float) -> None:
        """Write from now on straight to ``transport`` (HTTP chunks when ``chunked``); what
        was held meanwhile goes out first."""
        self._transport = transport
        self.sent_at = time.monotonic()
        self._chunked = chunked
        self._max_buffer = max_buffer
        self._write_timeout_s = write_timeout_s
        message, self.latest = self.latest, None
        if message is not None:
            self.send(message)

    def offer(self, message: bytes, chunk: bytes | None = None) -> None:
        """Send ``message`` now (attached; ``chunk``: the same, already framed as an HTTP
        chunk), else replace whatever is waiting with it (a stale snapshot is worth nothing)."""
        if self._transport is not None:
            self.send(message, chunk)
            return
        if self.latest is not None:
            self.dropped += 1
        self.latest = message
        self._ready.set()

    def send(self, message: bytes, chunk: bytes | None = None) -> bool:
        """Write ``message`` to the attached connection unless the page is too far behind;
        close the stream when the connection went away or stayed behind too long."""
        transport = self._transport
        if transport is None or self.closed:
            return False
        if transport.is_closing():
            self.close()
            return False
        if transport.get_write_buffer_size() > self._max_buffer:
            self.dropped += 1
            now = time.monotonic()
            if self._behind_since is None:
                self._behind_since = now
            elif now - self._behind_since > self._write_timeout_s:
                self.close()
            return False
        self._behind_since = None
        self.sent_at = time.monotonic()
        if self._chunked and chunk is None:
            chunk = b"%x\r\n%b\r\n" % (len(message), message)
        transport.write(chunk if self._chunked and chunk is not None else message)
        return True

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
        #: The agents as shown, kept from router outputs (None: rebuild at the next tick).
        self._agents: _Agents | None = None
        self._waiting_since: dict[str, tuple[str, float]] = {}
        #: Today (the center's local day) as [start, end) in wall time, and its zone.
        self._day: tuple[float, float, str] = (math.inf, -math.inf, "")
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
        if isinstance(output, AgentStateChanged):
            if self._agents is not None and not self._agents.changed(output):
                self._agents = None  # an agent of another roster: rebuild at the next tick
        elif isinstance(output, CallQueued):
            if output.call_id not in self._waiting_since:
                self._waiting_since[output.call_id] = (output.queue, wall)
                insort(self._log(output.queue).waiting, (wall, output.call_id))
        elif isinstance(output, CallMoved):
            since = self._waiting_since.get(output.call_id)
            if since is not None:
                self._waiting_since[output.call_id] = (output.to_queue, since[1])
                self._log(since[0]).unwait(since[1], output.call_id)
                insort(self._log(output.to_queue).waiting, (since[1], output.call_id))
        elif isinstance(output, CallAnswered):
            self._unwait(output.call_id)
            self._decide(output.queue, wall, True,
                         output.wait_s <= _level(self._config(), output.queue).threshold_s)
        elif isinstance(output, CallEnded):
            was_waiting = self._unwait(output.call_id)
            if output.outcome is not Outcome.ANSWERED and was_waiting:
                self._decide(output.queue, wall, False, False)
        self._changed.set()

    def _log(self, queue: str) -> _QueueLog:
        log_ = self._queues.get(queue)
        if log_ is None:
            log_ = self._queues[queue] = _QueueLog()
        return log_

    def _unwait(self, call_id: str) -> bool:
        since = self._waiting_since.pop(call_id, None)
        if since is None:
            return False
        self._log(since[0]).unwait(since[1], call_id)
        return True

    def _decide(self, queue: str, wall: float, answered: bool, within: bool) -> None:
        q = self._log(queue)
        self._roll_day(wall)
        q.recent.append((wall, answered, within))
        q.window.add(answered, within)
        q.today.add(answered, within)

    def _roll_day(self, wall: float) -> None:
        start, end, zone_name = self._day
        zone = self._zone()
        if start <= wall < end and zone.key == zone_name:
            return
        midnight = datetime.fromtimestamp(wall, zone).replace(hour=0, minute=0, second=0,
                                                              microsecond=0)
        self._day = (midnight.timestamp(), (midnight + timedelta(days=1)).timestamp(), zone.key)
        if self._day[:2] != (start, end):  # another day (not only another zone name)
            for q in self._queues.values():
                q.today = _Tally()
            self._scores = (0, 0)

    def _languages(self, service: RouterService) -> dict[str, list[str]]:
        """Each agent's languages, from the roster (kept until a reload brings a new one)."""
        if self._roster is not service.center.agents:
            self._roster = service.center.agents
            self._spoken = {a.id: list(a.languages) for a in self._roster}
            self._agents = None
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
        board = self._agents
        if board is None or board.router is not service.router:
            board = self._agents = _Agents(service.router, service.router.agent_snapshot(),
                                           languages)
        board.recount()
        agents, groups = board.listing(now), board.groups
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
        log_ = self._log(queue)
        log_.forget_before(wall - self.settings.sl_window_s)
        late = log_.late(wall - sl.threshold_s)
        window = log_.window
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

    def message(self) -> tuple[bytes, bytes]:
        """Compute one snapshot: its event-stream message, and the same as an HTTP chunk."""
        message = b"data: " + encode(self.snapshot()) + b"\n\n"
        self.snapshots += 1
        return message, b"%x\r\n%b\r\n" % (len(message), message)

    def publish(self) -> bytes:
        """Compute one snapshot and hand the same bytes to every subscriber."""
        message, chunk = self.message()
        for sub in self.subscribers:
            sub.offer(message, chunk)
        return message

    async def fan_out(self, message: bytes, chunk: bytes) -> None:
        """Hand ``message`` to every subscriber, yielding to the loop after every
        :data:`FAN_OUT_BATCH` of them so that many pages never hold routing up for long."""
        for n, sub in enumerate(list(self.subscribers), 1):
            if sub in self.subscribers:  # not gone while we yielded
                sub.offer(message, chunk)
            if n % FAN_OUT_BATCH == 0:
                await asyncio.sleep(0)

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
                    message, chunk = self.message()
                except Exception:  # a bug in a view must not end the wallboard
                    log.exception("wallboard_snapshot_failed")
                else:
                    await self.fan_out(message, chunk)
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
            await cancel_and_wait(task)


def _level(config: CenterConfig, queue: str) -> ServiceLevel:
    """The queue's service-level definition (the center's for a queue the config lost)."""
    return config.sl_for(queue) if queue in config.queues else config.center.service_level


def encode(snapshot: dict[str, object]) -> bytes:
    """A snapshot as compact JSON; the agent list's JSON is spliced in as it was kept."""
    agents = snapshot.get("agents")
    if not isinstance(agents, _AgentRows):
        return json.dumps(snapshot, separators=(",", ":")).encode()
    text = json.dumps({**snapshot, "agents": _SPLICE}, separators=(",", ":"))
    return text.replace(_SPLICED, agents.json, 1).encode()


#: Stands for the agent list while the rest of a snapshot is encoded (no name in a snapshot
#: holds a NUL character, so its JSON form appears once, where the list goes).
_SPLICE = "\0agents\0"
_SPLICED = json.dumps(_SPLICE)


def _ratio(good: int, total: int) -> float | None:
    return good / total if total else None


# ---------------------------------------------------------------------- HTTP

WALLBOARD: web.AppKey[Wallboard] = web.AppKey("wallboard", Wallboard)
#: Pages written to in one go before the publishing task lets the loop run other work.
FAN_OUT_BATCH = 10
#: Bytes that may wait in a page's outgoing buffer (beyond what its socket took) before the
#: next snapshots skip that page: a few snapshots of the reference center.
STREAM_BUFFER_BYTES = 256 * 1024


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
    if request.version >= HttpVersion11:
        resp.enable_chunked_encoding()
    try:
        await resp.prepare(request)
        await resp.write(b"retry: 2000\n\n")  # the headers and the first chunk
        transport = request.transport
        if transport is None:
            return resp  # the page left already
        # From here the publishing task writes each snapshot straight to the connection.
        sub.attach(transport, resp.chunked, STREAM_BUFFER_BYTES, board.settings.write_timeout_s)
        keepalive_s = board.settings.keepalive_s
        while not sub.closed:
            quiet_until = sub.sent_at + keepalive_s - time.monotonic()
            # (a page too far behind to take the last keep-alive waits a whole period)
            await sub.next(quiet_until if quiet_until > 0 else keepalive_s)
            if not sub.closed and time.monotonic() - sub.sent_at >= keepalive_s:
                sub.send(b": keep-alive\n\n")  # nothing went out for a while
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
