"""``acd serve``: the router, FastAGI, ARI (when configured), the HTTP API and ``/metrics``.

One asyncio process. :class:`Runtime` assembles the parts and takes them down again;
:func:`serve` runs it until SIGTERM or SIGINT and reloads on SIGHUP. Shutdown order: new
FastAGI calls are refused and held callers handed back to the dialplan (which takes its
fallback), running sessions get ``shutdown_grace_s`` to finish, the ARI application stops
(its calls stay in Asterisk and are adopted at the next start), the HTTP API closes, and the
database is checkpointed and closed. Call rows are committed as each call ends, so there is
nothing left to flush.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry

from acd.asterisk.agi.server import Admission, FastAgiServer, Handler, Listener
from acd.callbacks.dialler import business_hours
from acd.config.load import load_center
from acd.core.model import RoutingError
from acd.errors import InputError, Problem
from acd.runtime.ivrsetup import IvrSetup, load_ivr
from acd.runtime.records import CallbackStore, CallRecords, open_store
from acd.runtime.router_service import Clock, LoopClock, RouterService
from acd.runtime.store import RecordStore, redact
from acd.runtime.tasks import cancel_and_wait
from acd.service.api import HttpGuard, build_api, serve_http
from acd.service.limits import check_fd_budget
from acd.service.logs import EventLog, configure_logging
from acd.service.metrics import ServiceMetrics, add_process_metrics
from acd.service.reload import ObserverGate, rebuild
from acd.service.repeats import RepeatCounter
from acd.service.settings import Settings
from acd.service.state import AgentStateStore, RestartBoard, restore
from acd.service.wallboard import Wallboard, add_wallboard

log = structlog.get_logger("acd.serve")


class Runtime:
    """The running service: one router service and everything around it."""

    # Set by start().
    setup: IvrSetup
    db: RecordStore
    records: CallRecords
    callbacks: CallbackStore
    agent_states: AgentStateStore
    restart: RestartBoard
    metrics: ServiceMetrics
    repeats: RepeatCounter

    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None,
                 clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock  # the router's clock; None: the event loop's
        self.registry = registry if registry is not None else CollectorRegistry()
        self.token = settings.token
        self.gate = ObserverGate()
        self.started_at = time.time()
        self._service: RouterService | None = None
        self._lookup: Any = None
        self._reload_lock = asyncio.Lock()
        self.call_path: Any = None
        self.stasis: Any = None
        self.agi: FastAgiServer | None = None
        self._ari_client: Any = None
        self._ari_task: asyncio.Task[None] | None = None
        self.dialer: Any = None
        self._dialer_task: asyncio.Task[None] | None = None
        self._http: web.AppRunner | None = None
        self._http_listener: Listener | None = None
        self.http_port = 0
        self.agi_port = 0
        self.started = False
        self.wallboard: Wallboard | None = None
        self.pbx_links: Any = None  # acd.service.pbx_links.PbxLinks, with a pbxs list
        #: Set by fence(): this router lost the leader lock (acd.service.standby).
        self.fenced = False
        self.mailer: Any = None
        self._mailer_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ Control (api.py)

    @property
    def service(self) -> RouterService:
        """The router service (the same object across reloads)."""
        if self._service is None:
            raise RuntimeError("the runtime is not started")
        return self._service

    def health(self) -> dict[str, object]:
        """Liveness details for ``GET /health``."""
        service = self.service
        logged_in = sum(1 for a in service.router.agent_snapshot()
                        if a.state.value != "logged_out")
        ari, problems = self._ari_health()
        return {"role": "active", "uptime_s": round(time.time() - self.started_at, 3),
                "calls_in_router": service.router.calls_in_router,
                "agents_logged_in": logged_in,
                "fastagi": {"port": self.agi_port,
                            "active_sessions": self.agi.active_sessions if self.agi else 0},
                "ari": ari,
                **({"pbxs": self.pbx_links.health()} if self.pbx_links is not None else {}),
                "records": {"written": self.records.written, "failed": self.records.failures},
                "problems": problems}

    def _ari_health(self) -> tuple[dict[str, object], list[str]]:
        """ARI's part of the health: configured, connected, restarts; and what is wrong."""
        if self._ari_client is None or self.stasis is None:
            return {"configured": False, "connected": False}, []
        running = self._ari_task is not None and not self._ari_task.done()
        connected = running and self._ari_client.connected.is_set() and self.stasis.ready.is_set()
        ari = {"configured": True, "connected": connected, "restarts": self.stasis.restarts}
        if not running:
            return ari, ["the ARI application is not running"]
        if not connected:
            return ari, ["ARI is configured but not connected to Asterisk"]
        return ari, []

    def agent_logged_in(self, agent_id: str, endpoint: str | None) -> None:
        """Remember the endpoint of an API login, so a restart logs the agent in there."""
        self.agent_states.set_endpoint(agent_id, endpoint)

    async def reload(self) -> dict[str, object]:
        """Reload the center config and the IVR flows; calls and agent states are kept."""
        async with self._reload_lock:
            try:
                center = load_center(self.settings.center)
                if self.pbx_links is not None:
                    self.pbx_links.check(center)  # every agent still reachable
                setup = self._load_ivr(center)
                summary = rebuild(self.service, center, self.records.open, self.gate,
                                  self.agent_states.endpoint)
            except Exception as exc:
                self.metrics.reloads.labels("refused").inc()
                log.warning("config_reload_refused", error=str(exc).splitlines()[0:5])
                raise
            self.metrics.reconfigure(center.config)
            self.repeats.configure(center.config.queues)
            self.setup = setup
            for shell in (self.call_path, self.stasis):
                if shell is not None:
                    shell.setup = setup
            if self.pbx_links is not None:
                self.pbx_links.reconfigure(center, setup)
            if self.dialer is not None:
                self.dialer.hours = business_hours(setup)
            self.metrics.reloads.labels("ok").inc()
            result = {"agents": summary.agents, "calls_talking": summary.calls_talking,
                      "calls_ringing": summary.calls_ringing,
                      "calls_waiting": summary.calls_waiting, "flows": sorted(setup.flows)}
            log.info("config_reloaded", **result)
            return result

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> None:
        """Load everything, restore agents, and start listening."""
        s = self.settings
        nofile = check_fd_budget(s)  # raises InputError (exit 2) when the budget cannot fit
        center = load_center(s.center)
        self.db = _open_records(s)
        self.records = CallRecords(self.db)
        self.callbacks = CallbackStore(self.db)
        self.agent_states = AgentStateStore(self.db)
        self.metrics = ServiceMetrics(center.config, self.registry, s.metrics.sl_window_s)
        add_process_metrics(self.registry)
        self.setup = self._load_ivr(center)
        service = self._service = RouterService(center, self.clock)
        self.records.pbx_of = service.pbx_of
        self.records.priority_of = service.priority_of
        for observer in (self.records, self.agent_states, self.metrics.observe, EventLog()):
            service.observe(self.gate.wrap(observer))  # type: ignore[arg-type]
        service.observe_latency(self.metrics.observe_latency)
        self.metrics.collect_from(lambda: self.service)
        self.repeats = RepeatCounter(self.registry, center.config.queues)
        self.repeats.seed_from(self.db, time.time() - self.repeats.longest)
        self.records.on_written = self.repeats.record
        self.metrics.hours_from(lambda: business_hours(self.setup))  # follows reloads
        self.restart = RestartBoard(service, self.records, probe=self._channel_probe())
        summary = restore(service, self.agent_states.saved(), self.restart)
        restored = summary.agents
        if summary.calls_ringing or summary.calls_talking or summary.wrap_ups:
            log.info("calls_restored", ringing=summary.calls_ringing,
                     talking=summary.calls_talking, wrap_ups=summary.wrap_ups,
                     waiting_followed=summary.waiting_followed)
        self._lookup = self._agi_handlers()
        admission = Admission(s.agi.max_loop_lag_s, s.agi.max_ttfc_s,
                              on_shed=lambda why: self.metrics.shed.labels(why).inc())
        if self.call_path is not None:
            self.call_path.admission = admission
        self.agi = FastAgiServer(self._handler_for, s.agi.host, s.agi.port,
                                 header_timeout=s.agi.header_timeout_s,
                                 command_timeout=s.agi.command_timeout_s,
                                 max_sessions=s.agi.max_sessions, admission=admission)
        await self.agi.start()
        self.agi_port = self.agi.port
        await self._start_http()
        if s.ari.url:
            await self._start_ari()
        if s.pbxs:
            await self._start_pbxs()
        from acd.service.dialler import build_dialer

        self.dialer = build_dialer(s, self.callbacks, service, self.setup, stasis=self.stasis,
                                   call_path=self.call_path)
        if self.dialer is not None:
            self._dialer_task = asyncio.get_running_loop().create_task(self.dialer.run())
        self._start_mailer()
        self.started = True
        log.info("acd_serving", agi_host=s.agi.host, agi_port=self.agi_port,
                 http_host=s.http.host, http_port=self.http_port, agents_restored=restored,
                 database=self.db.where if s.records.url else str(s.database),
                 ari=bool(s.ari.url),
                 mutations_enabled=bool(self.token), nofile=nofile)

    def fence(self) -> None:
        """The leader lock may be lost: write nothing more to the shared store (the other
        router owns it now) and stop with no grace (held callers are handed back at once, for
        the dialplan to re-enter them at the other router)."""
        self.fenced = True
        self.gate.closed = True

    async def stop(self) -> None:
        """Stop accepting calls, let sessions end within the grace period, close everything.

        Each step runs even if one before it failed (the failure is logged), so a broken part
        never keeps the database from being checkpointed and closed.
        """
        grace = 0.0 if self.fenced else self.settings.shutdown_grace_s
        if self.call_path is not None:
            await self._stop_step("fastagi_drain", _sync(self.call_path.drain))
        if self.agi is not None:
            await self._stop_step("fastagi", self.agi.close(grace))
        if self._dialer_task is not None:
            await self._stop_step("dialer", cancel_and_wait(self._dialer_task))
        if self.pbx_links is not None:
            await self._stop_step("pbxs", self.pbx_links.stop())
        if self._mailer_task is not None:
            await self._stop_step("summary_mail", cancel_and_wait(self._mailer_task))
        if self._ari_task is not None:
            await self._stop_step("ari_app", cancel_and_wait(self._ari_task))
        if self._ari_client is not None:
            await self._stop_step("ari_client", self._ari_client.close())
        if self._http_listener is not None:
            self._http_listener.close()
        if self._http is not None:
            await self._stop_step("http", self._http.cleanup())
        if self._service is not None:
            await self._stop_step("router", _sync(self._service.close))
        if getattr(self, "restart", None) is not None:
            await self._stop_step("restart_board", _sync(self.restart.close))
        db: RecordStore | None = getattr(self, "db", None)
        if db is not None:
            await self._stop_step("database", _sync(db.close))
        self.started = False
        log.info("acd_stopped", records_written=self.records.written if db else 0)

    async def _stop_step(self, part: str, step: Awaitable[object]) -> None:
        """Await one shutdown step; an error is logged and shutdown goes on (cancellation
        of the stopping task itself still ends it)."""
        try:
            await step
        except Exception as exc:
            log.error("acd_stop_step_failed", part=part, error=f"{type(exc).__name__}: {exc}",
                      exc_info=exc)

    # ------------------------------------------------------------------ parts

    async def _start_http(self) -> None:
        """The HTTP API on its own listener: at most ``http.max_connections`` at once (the
        rest are reset at once), header and body deadlines from `HttpGuard`."""
        h = self.settings.http
        guard = HttpGuard(h.header_timeout_s, h.body_timeout_s)
        api = build_api(self, h.max_body_bytes, guard)
        if h.wallboard.enabled:
            self.wallboard = Wallboard(lambda: self.service, h.wallboard)
            self.wallboard.survey_target = self.settings.survey.target
            self.wallboard.start_survey_day(
                *self.records.survey_scores_since(self.wallboard.day_start()))
            self.records.on_survey = self.wallboard.survey_answered
            self.service.observe(self.gate.wrap(self.wallboard.observe))  # type: ignore[arg-type]
            add_wallboard(api, self.wallboard)
        self._http, self._http_listener = await serve_http(api, h, guard)
        self.http_port = self._http_listener.port

    def _start_mailer(self) -> None:
        """The shift summary by e-mail at its local times, when ``summary_mail`` is enabled."""
        s = self.settings
        if not s.summary_mail.enabled:
            return
        from acd.service.mailer import SummaryMailer

        self.mailer = SummaryMailer(s.summary_mail, s.database,
                                    lambda: self.service.center,
                                    self.clock or LoopClock(), user=s.smtp_user,
                                    password=s.smtp_password, survey_target=s.survey.target,
                                    records_url=s.records.url, records_password=s.records_password)
        self._mailer_task = asyncio.get_running_loop().create_task(self.mailer.run())

    def _load_ivr(self, center: Any) -> IvrSetup:
        customers = None
        if self.settings.customers is not None:
            from ivr.customers import SqliteCustomers
            customers = SqliteCustomers(self.settings.customers)
        return load_ivr(center, self.settings.flows, customers, self.callbacks)

    def _agi_handlers(self) -> Any:
        # Imported here: the call path is a shell that may be absent in a trimmed install.
        try:
            from acd.asterisk.agi.route import CallPath
        except ImportError as exc:
            log.warning("fastagi_call_path_missing", error=str(exc))
            return lambda script: None
        self.call_path = CallPath(self.service, self.setup)
        self.call_path.restored = self.restart
        self.call_path.records = self.records
        if self.settings.survey.enabled:
            self.call_path.survey.flow = self.settings.survey.flow
        return self.call_path.handler_for

    def _channel_probe(self) -> Any:
        """Who can say whether a restored call's channel still exists: the Manager when its
        credentials are set (else ARI, once it starts; else nobody)."""
        s = self.settings
        if not s.ami_user or not s.ami_secret:
            return None
        from acd.asterisk.ami import AmiChannelProbe, AmiTarget

        cfg = s.callbacks.ami
        return AmiChannelProbe(AmiTarget(cfg.host, cfg.port, s.ami_user, s.ami_secret,
                                         cfg.connect_timeout_s))

    def _handler_for(self, script: str) -> Handler | None:
        handler: Handler | None = self._lookup(script)
        return handler

    async def _start_ari(self) -> None:
        from acd.asterisk.ari.app import StasisApp
        from acd.asterisk.ari.client import AriClient

        s = self.settings
        if not s.ari_user or not s.ari_password:
            raise InputError([_ari_problem(s)])
        assert s.ari.url is not None
        self._ari_client = AriClient(s.ari.url, s.ari_user, s.ari_password, s.ari.app)
        self.stasis = StasisApp(self.service, self._ari_client, self.setup, s.ari.app)
        self.stasis.restored = self.restart
        self.stasis.records = self.records
        if s.survey.enabled:
            self.stasis.survey_flow = s.survey.flow
        if self.restart.probe is None:
            self.restart.probe = self.stasis  # ARI can say whether a channel still exists
        self.stasis.hold_grace_s = float(s.ari.hold_grace_s)
        self._ari_task = asyncio.get_running_loop().create_task(self._run_ari())

    async def _start_pbxs(self) -> None:
        """Multi-PBX: one ARI application per PBX, the watches, the FastAGI peer map; the
        first PBX's application also serves the dialler (acd.service.pbx_links)."""
        from acd.service.pbx_links import PbxLinks

        links = self.pbx_links = PbxLinks(self.service, self.setup, self.settings.pbxs,
                                          self.settings.file)
        links.listen(lambda pbx, site, up: self.metrics.pbx_up.labels(pbx, site).set(int(up)))
        if self.call_path is not None:
            self.call_path.pbx_of_peer = links.pbx_of_peer
        await links.start(self.restart)
        if links.apps and self.stasis is None:
            self.stasis = next(iter(links.apps.values()))
        if links.apps and self.restart.probe is None:
            self.restart.probe = links  # asks every PBX whether a restored call still exists

    async def _run_ari(self) -> None:
        """The Stasis application, supervised: it restarts its own event stream after any
        failure; should it still end with an error, it is logged and started again."""
        while True:
            try:
                await self.stasis.run()
            except Exception as exc:  # CancelledError is not an Exception: it stops us
                log.error("ari_app_failed", error=f"{type(exc).__name__}: {exc}", exc_info=exc)
            else:
                if self._ari_client.closed:
                    return
                log.error("ari_app_ended", why="returned while the client is open")
            await asyncio.sleep(1.0)


async def _sync(function: Callable[..., object], *args: object) -> None:
    """A plain call as a shutdown step."""
    function(*args)


def _open_records(s: Settings) -> RecordStore:
    """The SQLite file, or the PostgreSQL database of ``records.url`` (exit 2 if it cannot
    be opened: a router that cannot keep records must not take calls)."""
    if not s.records.url:
        return open_store(s.database, s.records.synchronous)
    try:
        import psycopg
    except ImportError:
        why = "needs psycopg 3: pip install 'acd-engine[postgres]'"
    else:
        try:
            return open_store(s.records.url, s.records.synchronous, s.records_password)
        except psycopg.Error as exc:
            why = f"cannot open the records database: {str(exc).strip().splitlines()[0]}"
    raise InputError([Problem(s.file or "<defaults>", "records.url", redact(s.records.url),
                              why)])


def _ari_problem(s: Settings) -> Problem:
    return Problem(s.file or "<defaults>", "ari", s.ari.url,
                   f"ARI is configured but {s.ari.user_env} / {s.ari.password_env} are not set")


async def serve(settings: Settings) -> None:
    """Run the service until SIGTERM/SIGINT; SIGHUP reloads the config (calls are kept)."""
    configure_logging(settings.logs.format, settings.logs.level)
    standby = None
    if settings.standby.enabled:  # one of two routers (acd.service.standby)
        from acd.service.standby import StandbyRouter
        standby = StandbyRouter(settings, lambda registry: Runtime(settings, registry))
    runtime = Runtime(settings) if standby is None else None
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    reloads: set[asyncio.Task[Any]] = set()

    async def reload_quietly(runtime: Runtime) -> None:
        try:
            await runtime.reload()
        except (InputError, RoutingError, OSError) as exc:
            log.error("config_reload_failed", error=str(exc))
        except Exception:  # a bug: the old config stays; log it, never lose it in the task
            log.exception("config_reload_failed")

    def on_hup() -> None:
        current = standby.runtime if standby is not None else runtime
        if not isinstance(current, Runtime) or not current.started:
            log.warning("config_reload_ignored", why="the service is still starting")
            return
        task = loop.create_task(reload_quietly(current))
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    # Handlers first: "acd_serving" tells supervisors (and tests) that signals are safe to send.
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, on_hup)
    try:
        if standby is not None:
            await standby.run(stop)  # stops its own runtime
        else:
            assert runtime is not None
            await runtime.start()
            await stop.wait()
        log.info("acd_stopping", grace_s=settings.shutdown_grace_s)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        if runtime is not None:
            await runtime.stop()
