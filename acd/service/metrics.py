"""Prometheus metrics from the router's events and snapshots, in a registry of our own.

Names follow Prometheus conventions: the ``acd_`` prefix, base units (seconds), ``_total`` for
counters. Label values come only from the configuration (queue, site, language, country, agent
state, pause and failure reasons); anything else becomes ``other``, so a caller can never create
a series (and never appears in one). Gauges that describe "now" (queue depth, oldest wait,
agents by state) are read from the router's snapshots at scrape time by a custom collector.

Every series the configuration names exists from the start, at zero: each configured queue
with each language a caller from each country can be served in, each overflow target, outcome
and failure reason; each site with each agent state. So ``increase()`` and ``rate()`` see the
very first call (a series born at 1 has no earlier sample to increase from). ``acd_build_info``
names the version and the router build; ``acd_queue_open`` says whether a queue is open by the
business hours of the ``main`` IVR flow; :func:`add_process_metrics` adds the standard
``process_*`` series to the service's registry.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, ProcessCollector
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from acd.config.schema import CenterConfig
from acd.core.agent_states import SYSTEM_PAUSE_REASONS
from acd.core.model import (
    AgentState,
    CallAnswered,
    CallEnded,
    CallMoved,
    CallQueued,
    CallRequeued,
    Outcome,
    Output,
    Overflow,
)
from acd.native import build
from acd.runtime.router_service import ENTRY_POINTS, RouterService
from ivr.hours import OpenState

OTHER = "other"
#: Business hours as the service knows them: ``(queue, epoch, caller country) -> state``.
Hours = Callable[[str, float, str], OpenState]
#: Wait-time buckets (seconds); the SL threshold is added so ``le="<T>"`` is exact.
WAIT_BUCKETS = (5.0, 10.0, 15.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0, 1800.0)
#: Routing decision latency buckets (seconds): the core aims at 100 microseconds p99.
LATENCY_BUCKETS = (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2, 0.1)
#: Reasons an offer fails or a call leaves, as the router and the shells name them.
FAILURE_REASONS = frozenset({"no_answer", "ring_timeout", "busy", "unavailable", "congestion",
                             "agent_paused", "agent_logout", "caller_hangup", "chanunavail",
                             "rejected"})


@dataclass
class _Labels:
    queue: str
    language: str
    country: str


class _Vocabulary:
    """Maps values to the configured names; unknown values become ``other``."""

    def __init__(self, config: CenterConfig) -> None:
        self.queues = frozenset(config.queues)
        self.languages = frozenset(config.languages)
        self.countries = frozenset(config.countries)
        self.sites = tuple(config.sites)
        self.pause_reasons = frozenset(config.pause_reasons) | SYSTEM_PAUSE_REASONS
        default = config.center.default_language
        #: (language, country) pairs a call can carry: the country's language, its fallback
        #: languages and the center's default (the IVR's "press 9 for Russian").
        self.call_pairs = tuple(sorted(
            {(lang, code) for code, c in config.countries.items()
             for lang in (c.language, *c.fallback_languages, default)}
            | {(default, OTHER)}))
        self.threshold_s = {name: config.sl_for(name).threshold_s for name in config.queues}
        #: For a queue the config does not name (label ``other``): the center's threshold.
        self.default_threshold_s = config.center.service_level.threshold_s

    @staticmethod
    def pick(value: str | None, known: Iterable[str]) -> str:
        return value if value is not None and value in known else OTHER

    def queue(self, value: str | None) -> str:
        return self.pick(value, self.queues)

    def threshold(self, queue: str) -> float:
        """The service-level threshold (seconds) of a queue label."""
        return self.threshold_s.get(queue, self.default_threshold_s)


class ServiceMetrics:
    """Counters and histograms fed by router events, and a collector for live snapshots.

    Feed it with ``service.observe(metrics.observe)`` and
    ``service.observe_latency(metrics.observe_latency)``; :meth:`collect_from` adds the
    snapshot collector.
    """

    def __init__(self, config: CenterConfig, registry: CollectorRegistry | None = None,
                 sl_window_s: float = 900.0, clock: Callable[[], float] = time.time) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.sl_window_s = sl_window_s
        self._clock = clock
        self._vocab = _Vocabulary(config)
        self._calls: dict[str, _Labels] = {}
        self._waiting_since: dict[str, tuple[str, float]] = {}
        # Per queue: (wall time the call was decided, answered within threshold).
        self._decided: dict[str, deque[tuple[float, bool]]] = {}
        buckets = tuple(sorted(set(WAIT_BUCKETS) | set(self._vocab.threshold_s.values())))
        r = self.registry
        call_labels = ("queue", "language", "country")
        self.offered = Counter("acd_calls_offered", "Calls that entered the ACD, by first queue.",
                               call_labels, registry=r)
        self.answered = Counter("acd_calls_answered", "Calls answered by an agent.",
                                call_labels, registry=r)
        self.answered_in_sl = Counter(
            "acd_calls_answered_within_threshold",
            "Calls answered within their queue's service-level threshold.", call_labels,
            registry=r)
        self.abandoned = Counter("acd_calls_abandoned", "Calls the caller left before an agent "
                                 "answered.", call_labels, registry=r)
        self.overflowed = Counter("acd_calls_overflowed", "Calls sent on by overflow: to another "
                                  "queue, or out of the ACD (voicemail, callback).",
                                  ("queue", "target"), registry=r)
        self.callbacks = Counter("acd_callbacks", "Callers who accepted a callback instead of "
                                 "waiting.", call_labels, registry=r)
        self.shed = Counter("acd_calls_shed", "New calls handed to the dialplan fallback at "
                            "once by admission control, by reason (loop_lag, ttfc).",
                            ("reason",), registry=r)
        for why in ("loop_lag", "ttfc"):  # exported at 0 from the start
            self.shed.labels(why)
        self.ended = Counter("acd_calls_ended", "Calls that left the router, by outcome.",
                             ("queue", "outcome"), registry=r)
        self.offer_failures = Counter("acd_offer_failures", "Offers to an agent that were not "
                                      "answered (ring-no-answer, busy, ...).",
                                      ("queue", "reason"), registry=r)
        self.wait = Histogram("acd_call_wait_seconds", "Time in queue before the call was "
                              "answered or abandoned.", ("queue", "outcome"), buckets=buckets,
                              registry=r)
        self.talk = Histogram("acd_call_talk_seconds", "Talk time of answered calls.",
                              ("queue",), buckets=(30, 60, 120, 180, 300, 600, 1200, 3600),
                              registry=r)
        self.latency = Histogram("acd_routing_decision_seconds", "Time the router took for one "
                                 "entry point (event).", ("entry_point",),
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.reloads = Counter("acd_config_reloads", "Configuration reloads by result.",
                               ("result",), registry=r)
        self.start_time = Gauge("acd_start_time_seconds", "When the service started (Unix time).",
                                registry=r)
        self.start_time.set(clock())
        self.build_info = Info("acd_build", "The running engine: version and router build "
                               "(compiled with mypyc or pure Python).", registry=r)
        self.build_info.info({"version": _version(), "router": build()})
        self.pbx_up = Gauge("acd_pbx_up", "1 while the engine can reach the PBX (its ARI "
                            "websocket, or AMI), 0 once it has been down past its grace.",
                            ("pbx", "site"), registry=r)
        self._collector: _SnapshotCollector | None = None
        self._hours: Callable[[], Hours | None] = lambda: None
        self._zero_series()

    def _zero_series(self) -> None:
        """Create every series the configuration names, at zero (see the module docstring)."""
        v = self._vocab
        for q in sorted(v.queues):
            for language, country in v.call_pairs:
                for family in (self.offered, self.answered, self.answered_in_sl, self.abandoned,
                               self.callbacks):
                    family.labels(q, language, country)
            for target in (*sorted(v.queues - {q}), "voicemail", "callback"):
                self.overflowed.labels(q, target)
            for outcome in Outcome:
                self.ended.labels(q, outcome.value)
            for reason in sorted(FAILURE_REASONS):
                self.offer_failures.labels(q, reason)
            for waited in ("answered", "abandoned"):
                self.wait.labels(q, waited)
            self.talk.labels(q)
        for entry_point in sorted(ENTRY_POINTS):
            self.latency.labels(entry_point)
        for result in ("ok", "refused"):
            self.reloads.labels(result)

    # ------------------------------------------------------------------------ wiring

    def collect_from(self, source: Callable[[], RouterService]) -> None:
        """Read queue and agent gauges at scrape time from the service ``source()`` returns.

        Feed the event metrics with ``service.observe(metrics.observe)`` and
        ``service.observe_latency(metrics.observe_latency)``.
        """
        if self._collector is None:
            self._collector = _SnapshotCollector(source, self)
            self.registry.register(self._collector)

    def hours_from(self, source: Callable[[], Hours | None]) -> None:
        """Read ``acd_queue_open`` at scrape time from the business hours ``source()`` returns
        (None: no hours known, every queue open)."""
        self._hours = source

    def reconfigure(self, config: CenterConfig) -> None:
        """Use a reloaded config's names for new label values (existing series stay, new
        queues and countries start at zero)."""
        self._vocab = _Vocabulary(config)
        self._zero_series()

    def queue_open(self, queue: str, now: float) -> bool:
        """Whether ``queue`` is open at ``now`` by the business hours (weekly hours and the
        site's holidays; a holiday of the caller's own country is not counted here)."""
        hours = self._hours()
        return True if hours is None else hours(queue, now, OTHER).open

    # ------------------------------------------------------------------------ events

    def observe(self, output: Output, wall: float) -> None:
        """Count one router output (a service observer)."""
        if isinstance(output, CallQueued):
            self._queued(output, wall)
        elif isinstance(output, CallAnswered):
            self._answered(output, wall)
        elif isinstance(output, CallMoved):
            self.overflowed.labels(self._vocab.queue(output.from_queue),
                                   self._vocab.queue(output.to_queue)).inc()
        elif isinstance(output, Overflow):
            labels = self._calls.get(output.call_id)
            queue = labels.queue if labels else OTHER
            self.overflowed.labels(queue, self._vocab.pick(output.target,
                                                           ("voicemail", "callback"))).inc()
        elif isinstance(output, CallRequeued):
            labels = self._calls.get(output.call_id)
            self.offer_failures.labels(labels.queue if labels else OTHER,
                                       self._vocab.pick(output.reason, FAILURE_REASONS)).inc()
        elif isinstance(output, CallEnded):
            self._ended(output, wall)

    def observe_latency(self, entry_point: str, seconds: float) -> None:
        """Record how long one router call took (a service latency observer)."""
        self.latency.labels(self._vocab.pick(entry_point, ENTRY_POINTS)).observe(seconds)

    def _labels_of(self, call_id: str, queue: str, language: str, country: str) -> _Labels:
        labels = self._calls.get(call_id)
        if labels is None:
            v = self._vocab
            labels = _Labels(v.queue(queue), v.pick(language, v.languages),
                             v.pick(country, v.countries))
            self._calls[call_id] = labels
            self.offered.labels(labels.queue, labels.language, labels.country).inc()
        return labels

    def _queued(self, e: CallQueued, wall: float) -> None:
        self._labels_of(e.call_id, e.queue, e.language, e.country)
        if e.call_id not in self._waiting_since:
            self._waiting_since[e.call_id] = (self._vocab.queue(e.queue), wall)

    def _answered(self, e: CallAnswered, wall: float) -> None:
        labels = self._calls.get(e.call_id) or _Labels(self._vocab.queue(e.queue), OTHER, OTHER)
        self.answered.labels(labels.queue, labels.language, labels.country).inc()
        within = e.wait_s <= self._vocab.threshold(labels.queue)
        if within:
            self.answered_in_sl.labels(labels.queue, labels.language, labels.country).inc()
        self.wait.labels(labels.queue, "answered").observe(e.wait_s)
        self._decide(labels.queue, wall, within)
        self._waiting_since.pop(e.call_id, None)

    def _ended(self, e: CallEnded, wall: float) -> None:
        labels = self._labels_of(e.call_id, e.queue, e.language, e.country)
        self._calls.pop(e.call_id, None)
        self._waiting_since.pop(e.call_id, None)
        self.ended.labels(labels.queue, e.outcome.value).inc()
        if e.outcome is Outcome.ANSWERED:
            self.talk.labels(labels.queue).observe(e.talk_s)
            return
        if e.outcome is Outcome.ABANDONED:
            self.abandoned.labels(labels.queue, labels.language, labels.country).inc()
            self.wait.labels(labels.queue, "abandoned").observe(e.wait_s)
        elif e.outcome is Outcome.CALLBACK:
            self.callbacks.labels(labels.queue, labels.language, labels.country).inc()
        # Not answered (abandoned, overflowed, callback): a miss for sl_offered.
        self._decide(labels.queue, wall, False)

    # ------------------------------------------------------------------------ service level

    def _decide(self, queue: str, wall: float, within: bool) -> None:
        self._decided.setdefault(queue, deque()).append((wall, within))

    def service_level(self, queue: str, now: float | None = None) -> tuple[float, int]:
        """Rolling ``sl_offered`` for ``queue`` and the calls it counts, over the window.

        Calls decided in the window (answered, abandoned, overflowed) count, plus calls still
        waiting beyond the threshold, which are misses already. NaN when nothing counts.
        """
        now = self._clock() if now is None else now
        start = now - self.sl_window_s
        decided = self._decided.get(queue)
        good = total = 0
        if decided is not None:
            while decided and decided[0][0] < start:
                decided.popleft()
            total = len(decided)
            good = sum(1 for _, within in decided if within)
        threshold = self._vocab.threshold(queue)
        total += sum(1 for q, since in self._waiting_since.values()
                     if q == queue and now - since > threshold)
        return (good / total if total else math.nan), total

    @property
    def vocabulary_sites(self) -> tuple[str, ...]:
        """Configured sites."""
        return self._vocab.sites


class _SnapshotCollector(Collector):
    """Reads queue and agent snapshots from the current service at scrape time."""

    def __init__(self, source: Callable[[], RouterService], metrics: ServiceMetrics) -> None:
        self._source = source
        self._metrics = metrics

    def collect(self) -> Iterator[GaugeMetricFamily]:
        service = self._source()
        waiting = GaugeMetricFamily("acd_queue_calls_waiting", "Calls waiting in queue now.",
                                    labels=["queue"])
        ringing = GaugeMetricFamily("acd_queue_calls_ringing", "Calls ringing an agent now.",
                                    labels=["queue"])
        talking = GaugeMetricFamily("acd_queue_calls_talking", "Calls talking to an agent now.",
                                    labels=["queue"])
        oldest = GaugeMetricFamily("acd_queue_oldest_wait_seconds", "Wait of the oldest call "
                                   "still in queue (0 when empty).", labels=["queue"])
        logged_in = GaugeMetricFamily("acd_queue_agents_logged_in", "Agents logged in with the "
                                      "queue's skill.", labels=["queue"])
        ready = GaugeMetricFamily("acd_queue_agents_ready", "Ready agents with the queue's "
                                  "skill.", labels=["queue"])
        ewt = GaugeMetricFamily("acd_queue_expected_wait_seconds", "Estimated wait for a call "
                                "arriving now.", labels=["queue"])
        sl = GaugeMetricFamily("acd_service_level_ratio", "Answered within the threshold / "
                               "offered, over the rolling window (NaN with no calls).",
                               labels=["queue"])
        sl_calls = GaugeMetricFamily("acd_service_level_calls", "Calls counted by the rolling "
                                     "service level.", labels=["queue"])
        is_open = GaugeMetricFamily("acd_queue_open", "1 while the queue is open by its "
                                    "business hours, else 0.", labels=["queue"])
        now = self._metrics._clock()
        for snap in service.queue_snapshot():
            q = snap.queue
            waiting.add_metric([q], snap.waiting)
            ringing.add_metric([q], snap.ringing)
            talking.add_metric([q], snap.talking)
            oldest.add_metric([q], snap.oldest_wait_s)
            logged_in.add_metric([q], snap.agents_logged_in)
            ready.add_metric([q], snap.agents_ready)
            ewt.add_metric([q], snap.ewt_s)
            value, counted = self._metrics.service_level(q, now)
            sl.add_metric([q], value)
            sl_calls.add_metric([q], counted)
            is_open.add_metric([q], 1 if self._metrics.queue_open(q, now) else 0)
        agents = GaugeMetricFamily("acd_agents", "Agents by site and state now.",
                                   labels=["site", "state"])
        counts = {(site, state.value): 0 for site in self._metrics.vocabulary_sites
                  for state in AgentState}
        for a in service.router.agent_snapshot():
            key = (a.site if a.site in self._metrics.vocabulary_sites else OTHER, a.state.value)
            counts[key] = counts.get(key, 0) + 1
        for (site, state), n in sorted(counts.items()):
            agents.add_metric([site, state], n)
        paused = GaugeMetricFamily("acd_agents_paused", "Paused agents by site and reason now.",
                                   labels=["site", "reason"])
        reasons = {(site, r): 0 for site in self._metrics.vocabulary_sites
                   for r in sorted(self._metrics._vocab.pause_reasons)}
        for a in service.router.agent_snapshot():
            if a.state is AgentState.PAUSED:
                key = (a.site if a.site in self._metrics.vocabulary_sites else OTHER,
                       _Vocabulary.pick(a.reason, self._metrics._vocab.pause_reasons))
                reasons[key] = reasons.get(key, 0) + 1
        for (site, reason), n in sorted(reasons.items()):
            paused.add_metric([site, reason], n)
        yield from (waiting, ringing, talking, oldest, logged_in, ready, ewt, sl, sl_calls,
                    is_open, agents, paused)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Describing nothing keeps registration from running collect() before the service
        # exists; the names are still unique because no other collector uses them.
        return iter(())


def _version() -> str:
    """The installed package's version (``unknown`` when run from an uninstalled tree)."""
    try:
        return metadata.version("acd-engine")
    except metadata.PackageNotFoundError:
        return "unknown"


def add_process_metrics(registry: CollectorRegistry) -> bool:
    """Add prometheus_client's ``process_*`` series (CPU, memory, open files, start time) to
    ``registry`` unless it has them already; True when added."""
    # The registry cannot tell by itself (the collector describes nothing): look for a sample.
    if registry.get_sample_value("process_start_time_seconds") is not None:
        return False
    ProcessCollector(registry=registry)
    return True
