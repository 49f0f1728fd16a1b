"""Prometheus metrics from router events: names, labels from config only, rolling SL, gauges."""

from __future__ import annotations

import math
from datetime import datetime
from importlib import metadata
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from recordkit import AnsweringOwner
from routerkit import agent, center_data, queue

from acd.callbacks.dialler import business_hours
from acd.config.load import LoadedCenter, center_from_data, load_center
from acd.core.model import (
    CallAnswered,
    CallEnded,
    CallQueued,
    CallRequeued,
    Outcome,
)
from acd.native import build
from acd.runtime.ivrsetup import load_ivr
from acd.runtime.router_service import RouterService
from acd.service.metrics import ServiceMetrics, add_process_metrics

CENTER = Path(__file__).resolve().parents[1] / "config" / "center.yaml"
AGENT = "msk-tech-ru-001"


class Clock:
    """A settable wall clock."""

    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def center() -> LoadedCenter:
    return load_center(CENTER)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    """A sample's value, or None when the series does not exist."""
    return registry.get_sample_value(name, labels)


def ended(call_id: str, outcome: Outcome, wait: float, queue: str = "tech",
          country: str = "RU") -> CallEnded:
    return CallEnded(call_id, outcome, queue, "ru", country, 0.0, wait, None, None, 0.0, wait)


def test_event_counters_and_wait_bucket_at_the_threshold(center: LoadedCenter) -> None:
    """Offered, answered, within-threshold and abandoned count per queue/language/country."""
    m = ServiceMetrics(center.config, clock=Clock())
    r = m.registry
    m.observe(CallQueued("c1", "tech", "ru", "RU", 0.0), 0.0)
    m.observe(CallAnswered("c1", "a", "tech", 12.0, 12.0), 12.0)
    m.observe(CallQueued("c2", "tech", "ru", "RU", 0.0), 0.0)
    m.observe(CallAnswered("c2", "a", "tech", 25.0, 25.0), 25.0)
    m.observe(CallQueued("c3", "tech", "kk", "KZ", 0.0), 0.0)
    m.observe(ended("c3", Outcome.ABANDONED, 40.0, country="KZ"), 40.0)
    assert value(r, "acd_calls_offered_total", queue="tech", language="ru", country="RU") == 2
    assert value(r, "acd_calls_answered_total", queue="tech", language="ru", country="RU") == 2
    assert value(r, "acd_calls_answered_within_threshold_total", queue="tech", language="ru",
                 country="RU") == 1
    assert value(r, "acd_calls_abandoned_total", queue="tech", language="kk", country="KZ") == 1
    # The SL threshold (20 s) is a bucket boundary, so le="20.0" counts exactly the good calls.
    assert value(r, "acd_call_wait_seconds_bucket", queue="tech", outcome="answered",
                 le="20.0") == 1
    assert value(r, "acd_call_wait_seconds_bucket", queue="tech", outcome="answered",
                 le="30.0") == 2


def test_unknown_values_become_other_and_no_caller_number_leaks(center: LoadedCenter) -> None:
    """Labels come only from the config: strange queue, language, country or reason -> other."""
    m = ServiceMetrics(center.config, clock=Clock())
    m.observe(CallQueued("+79161234567", "x'; DROP", "+7916", "+79161234567", 0.0), 0.0)
    m.observe(CallRequeued("+79161234567", "a", "\n+7916 weird", 1.0), 1.0)
    m.observe_latency("+79161234567", 0.001)
    text = generate_latest(m.registry).decode()
    assert "+7916" not in text and "DROP" not in text
    assert value(m.registry, "acd_calls_offered_total", queue="other", language="other",
                 country="other") == 1
    assert value(m.registry, "acd_offer_failures_total", queue="other", reason="other") == 1
    assert value(m.registry, "acd_routing_decision_seconds_count", entry_point="other") == 1


def test_rolling_service_level_counts_decided_and_overdue_calls(center: LoadedCenter) -> None:
    """SL = answered within T / calls decided in the window (+ calls already waiting > T)."""
    clock = Clock(10_000.0)
    m = ServiceMetrics(center.config, sl_window_s=900.0, clock=clock)
    assert math.isnan(m.service_level("tech")[0])
    for i, wait in enumerate((5.0, 10.0, 30.0)):
        m.observe(CallQueued(f"a{i}", "tech", "ru", "RU", 0.0), 9_200.0)
        m.observe(CallAnswered(f"a{i}", "x", "tech", wait, wait), 9_200.0 + wait)
    m.observe(CallQueued("ab", "tech", "ru", "RU", 0.0), 9_500.0)
    m.observe(ended("ab", Outcome.ABANDONED, 3.0), 9_503.0)
    assert m.service_level("tech") == (0.5, 4)
    # A caller waiting 30 s (over T = 20 s) is already a miss.
    m.observe(CallQueued("w", "tech", "ru", "RU", 0.0), 9_970.0)
    assert m.service_level("tech") == (2 / 5, 5)
    # 15 minutes later only the overdue waiting call remains in the window.
    clock.t = 9_970.0 + 900.0 + 30.0
    assert m.service_level("tech") == (0.0, 1)


def test_thresholds_come_from_the_config_not_a_fixed_20_s() -> None:
    """A queue's own threshold (10 s) and, for a queue label the config does not name, the
    center's (30 s) decide what counts as answered within the threshold."""
    data = center_data([agent("a")], {"tech": queue(
        service_level={"threshold_s": 10, "target": 0.8})})
    data["center"]["service_level"] = {"threshold_s": 30, "target": 0.8}
    m = ServiceMetrics(center_from_data(data, "test-center.yaml").config, clock=Clock())
    m.observe(CallQueued("t", "tech", "ru", "RU", 0.0), 0.0)
    m.observe(CallAnswered("t", "a", "tech", 15.0, 15.0), 15.0)
    m.observe(CallQueued("o", "gone", "ru", "RU", 0.0), 0.0)
    m.observe(CallAnswered("o", "a", "gone", 25.0, 25.0), 25.0)
    # The series exists from the start (at zero) and the 15 s answer did not count in it.
    assert value(m.registry, "acd_calls_answered_within_threshold_total", queue="tech",
                 language="ru", country="RU") == 0
    assert value(m.registry, "acd_calls_answered_within_threshold_total", queue="other",
                 language="ru", country="RU") == 1
    assert value(m.registry, "acd_call_wait_seconds_bucket", queue="tech", outcome="answered",
                 le="10.0") == 0


def test_every_service_entry_point_has_its_own_latency_label(center: LoadedCenter) -> None:
    """Each router entry point the service calls, withdraw included, is a label, not other."""
    m = ServiceMetrics(center.config, clock=Clock())
    for name in ("call_arrived", "withdraw", "advance"):
        m.observe_latency(name, 0.001)
        assert value(m.registry, "acd_routing_decision_seconds_count", entry_point=name) == 1
    assert value(m.registry, "acd_routing_decision_seconds_count", entry_point="other") is None


async def test_snapshot_gauges_read_the_live_router(center: LoadedCenter) -> None:
    """Queue depth, oldest wait, agents by site/state and the SL gauge come from snapshots."""
    service = RouterService(center)
    m = ServiceMetrics(center.config, clock=Clock())
    service.observe(m.observe)
    service.observe_latency(m.observe_latency)
    m.collect_from(lambda: service)
    service.login("msk-tech-ru-001")
    service.login("kyi-tech-uk-001", paused_reason="lunch")
    owner = AnsweringOwner(service)
    service.call_arrived(owner, "c1", "tech", "ru", "RU")  # answered at once
    service.call_arrived(owner, "c2", "orders", "ru", "RU")  # nobody for orders: waits
    r = m.registry
    assert value(r, "acd_queue_calls_waiting", queue="orders") == 1
    assert value(r, "acd_queue_calls_waiting", queue="tech") == 0
    assert value(r, "acd_queue_calls_talking", queue="tech") == 1
    assert value(r, "acd_queue_oldest_wait_seconds", queue="orders") >= 0  # type: ignore[operator]
    assert value(r, "acd_agents", site="moscow", state="on_call") == 1
    assert value(r, "acd_agents", site="kyiv", state="paused") == 1
    assert value(r, "acd_agents_paused", site="kyiv", reason="lunch") == 1
    assert value(r, "acd_agents", site="moscow", state="logged_out") == 155
    assert value(r, "acd_service_level_ratio", queue="tech") == 1.0
    assert value(r, "acd_routing_decision_seconds_count", entry_point="call_arrived") == 2
    service.close()


def test_exposition_uses_prometheus_conventions(center: LoadedCenter) -> None:
    """Every family has the acd_ prefix; counters end in _total; durations are in seconds."""
    m = ServiceMetrics(center.config, clock=Clock())
    m.observe(CallQueued("c1", "tech", "ru", "RU", 0.0), 0.0)
    m.observe(ended("c1", Outcome.ANSWERED, 3.0), 3.0)
    for family in m.registry.collect():
        assert family.name.startswith("acd_"), family.name
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples)
        if "time" in family.name or "wait" in family.name or "latency" in family.name:
            assert family.name.endswith("_seconds") or family.unit == "seconds", family.name


# --------------------------------------------------- failure reasons


def test_an_agent_rejecting_the_call_keeps_its_failure_reason() -> None:
    """ARI reports a declined agent leg (cause 21) as ``rejected``; the metric keeps it."""
    metrics = ServiceMetrics(load_center(CENTER).config)
    metrics.observe(CallRequeued("c1", AGENT, "rejected", 1.0), 0.0)
    value = metrics.registry.get_sample_value(
        "acd_offer_failures_total", {"queue": "other", "reason": "rejected"})
    assert value == 1.0


# --------------------------------------------------- series from the start, build, hours


def test_every_configured_series_exists_at_zero_before_the_first_call(
        center: LoadedCenter) -> None:
    """Each queue with each (language, country) a caller can carry, each overflow target,
    outcome, failure reason and wait outcome is exported at 0 before any call, so
    ``increase()`` counts the very first call (a series born at 1 has nothing to increase
    from)."""
    m = ServiceMetrics(center.config, clock=Clock())
    r = m.registry
    config = center.config
    for q in config.queues:
        for code, country in config.countries.items():
            for lang in (country.language, *country.fallback_languages,
                         config.center.default_language):
                for name in ("acd_calls_offered_total", "acd_calls_answered_total",
                             "acd_calls_answered_within_threshold_total",
                             "acd_calls_abandoned_total", "acd_callbacks_total"):
                    assert value(r, name, queue=q, language=lang, country=code) == 0, \
                        (name, q, lang, code)
        for target in [*(set(config.queues) - {q}), "voicemail", "callback"]:
            assert value(r, "acd_calls_overflowed_total", queue=q, target=target) == 0
        for outcome in Outcome:
            assert value(r, "acd_calls_ended_total", queue=q, outcome=outcome.value) == 0
        for waited in ("answered", "abandoned"):
            assert value(r, "acd_call_wait_seconds_count", queue=q, outcome=waited) == 0
        assert value(r, "acd_offer_failures_total", queue=q, reason="no_answer") == 0
        assert value(r, "acd_call_talk_seconds_count", queue=q) == 0
    assert value(r, "acd_config_reloads_total", result="refused") == 0
    # A Kazakh caller served in Russian (KZ falls back to ru) counts from 0 to 1.
    m.observe(CallQueued("k1", "tech", "ru", "KZ", 0.0), 0.0)
    assert value(r, "acd_calls_offered_total", queue="tech", language="ru", country="KZ") == 1


def test_a_reload_adds_the_new_queues_series_at_zero() -> None:
    """A queue that appears in a reloaded config is exported at zero at once."""
    data = center_data([agent("a")], {"tech": queue()})
    m = ServiceMetrics(center_from_data(data, "a.yaml").config, clock=Clock())
    assert value(m.registry, "acd_calls_offered_total", queue="sales", language="ru",
                 country="RU") is None
    data = center_data([agent("a")], {"tech": queue(), "sales": queue()})
    m.reconfigure(center_from_data(data, "b.yaml").config)
    assert value(m.registry, "acd_calls_offered_total", queue="sales", language="ru",
                 country="RU") == 0


def test_build_info_names_the_version_and_the_router_build(center: LoadedCenter) -> None:
    """acd_build_info is 1 with the installed version and the router build in use."""
    m = ServiceMetrics(center.config, clock=Clock())
    assert value(m.registry, "acd_build_info", version=metadata.version("acd-engine"),
                 router=build()) == 1
    assert build() in ("compiled", "pure Python")


def test_process_metrics_are_added_once() -> None:
    """The standard process_* series join a registry once; a second call changes nothing."""
    registry = CollectorRegistry()
    assert add_process_metrics(registry)
    assert not add_process_metrics(registry)
    assert registry.get_sample_value("process_start_time_seconds") is not None
    assert registry.get_sample_value("process_resident_memory_bytes", {}) > 0  # type: ignore[operator]


def _epoch(text: str) -> float:
    """Epoch seconds of an ISO time with its zone."""
    return datetime.fromisoformat(text).timestamp()


@pytest.mark.parametrize(("when", "open_queues"), [
    # Sunday 03:00 in Moscow: only the 24/7 queues (orders 08-22 daily, voc Mon-Fri 09-18).
    ("2026-12-06T03:00:00+03:00", {"tech", "repair"}),
    # Sunday 12:00: orders opened at 08:00; voc stays closed at the weekend.
    ("2026-12-06T12:00:00+03:00", {"tech", "repair", "orders"}),
    # Monday 10:00: every queue is open.
    ("2026-12-07T10:00:00+03:00", {"tech", "repair", "orders", "voc"}),
    # Monday 23:00: orders and voc closed for the night.
    ("2026-12-07T23:00:00+03:00", {"tech", "repair"}),
])
async def test_queue_open_follows_the_business_hours(center: LoadedCenter, when: str,
                                                     open_queues: set[str]) -> None:
    """acd_queue_open is 1 exactly for the queues the main flow's business hours open now."""
    service = RouterService(center)
    setup = load_ivr(center, CENTER.parent / "ivr")
    m = ServiceMetrics(center.config, clock=Clock(_epoch(when)))
    m.collect_from(lambda: service)
    m.hours_from(lambda: business_hours(setup))
    got = {q for q in center.config.queues
           if value(m.registry, "acd_queue_open", queue=q) == 1}
    assert got == open_queues
    assert all(value(m.registry, "acd_queue_open", queue=q) == 0
               for q in set(center.config.queues) - open_queues)
    service.close()


async def test_without_business_hours_every_queue_counts_as_open(center: LoadedCenter) -> None:
    """No hours known (no main flow): acd_queue_open is 1 for every queue, as the dialler
    and the IVR treat a queue without declared hours."""
    service = RouterService(center)
    m = ServiceMetrics(center.config, clock=Clock(_epoch("2026-12-06T03:00:00+03:00")))
    m.collect_from(lambda: service)
    assert {value(m.registry, "acd_queue_open", queue=q) for q in center.config.queues} == {1}
    service.close()
