"""``acd sim staff`` per queue and language, and ``--confirm`` by the center simulation."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_staff import SCENARIO, run

from sim.erlang import agents_for_service_level, service_level_c
from sim.executor import LocalExecutor
from sim.scenario import load_scenario
from sim.staff import ALL_LANGUAGES, plan

#: One queue, Poisson arrivals at 0.1 calls/s, exponential talk of 120 s, no wrap-up, no
#: abandonment: an M/M/c queue, so Erlang C is exact (16 agents: SL 89.5%; 15 give 80.6%).
RATE, AHT = 0.1, 120.0


def _mmc_scenario(tmp_path: Path, hours: float = 3.0, french: float = 0.0,
                  intraday: list[float] | None = None, aht: float = AHT) -> Path:
    """A single-queue center whose every interval is M/M/c (JSON is YAML); a share ``french``
    of the callers speak French (a second language group) when given; ``intraday`` weighs the
    half-hours from midnight (the day's calls stay ``RATE * 86400``), ``aht`` is mean talk."""
    center = {
        "center": {"name": "mmc", "default_language": "en", "default_queue": "q",
                   "service_level": {"threshold_s": 20, "target": 0.85}},
        "sites": {"s": {"name": "Site", "timezone": "UTC"}},
        "languages": {"en": {"name": "English"}, "fr": {"name": "French"}},
        "countries": {"XX": {"name": "Anywhere", "language": "en", "home_site": "s"}},
        "skills": {"k": {"name": "Skill"}},
        "queues": {"q": {"skill": "k", "wrap_up_s": 0, "ring_timeout_s": 300,
                         "max_length": 100000, "max_wait_s": 86400}},
        "agent_groups": {"g": {"site": "s", "supervisor": "-", "count": 20, "skills": {"k": 5},
                               "level_spread": 0, "languages": ["en", "fr"],
                               "first_extension": 1000}},
    }
    traffic = {
        "version": 1, "timezone": "UTC", "interval_minutes": 30,
        "volume": {"calls_per_day": RATE * 86400},
        "profile": {"intraday": intraday or [1.0] * 48, "day_of_week": {d: 1.0 for d in (
            "mon", "tue", "wed", "thu", "fri", "sat", "sun")}},
        "queues": {"q": {"share": 1.0, "talk": {"dist": "exponential", "mean": aht},
                         "wrap": {"dist": "constant", "value": 0}}},
        "countries": {"XX": {"share": 1.0, "languages": {"en": 1.0 - french, "fr": french}
                             if french else {"en": 1.0}}},
    }
    zero = {"dist": "constant", "value": 0}
    scenario = {
        "version": 1, "name": "M/M/c", "center": "center.yaml", "traffic": "traffic.yaml",
        "start": "2026-03-02T00:00:00+00:00", "days": hours / 24, "interval_minutes": 30,
        "behaviour": {"answer_delay": zero, "rona_probability": 0.0,
                      "callback_accept_probability": 0.0, "ivr_time": zero,
                      "ivr_abandon_probability": 0.0},
        "staffing": {"work_days_per_week": 7, "breaks": [],
                     "shifts": {"s": [{"start": "00:00", "hours": 12, "share": 1.0}]}},
    }
    for name, data in (("center.yaml", center), ("traffic.yaml", traffic),
                       ("scenario.yaml", scenario)):
        (tmp_path / name).write_text(json.dumps(data), encoding="utf-8")
    return tmp_path / "scenario.yaml"


def test_mmc_plan_and_confirmation_equal_exact_erlang_c(tmp_path: Path) -> None:
    """On an M/M/c center the plan is Erlang C's count, --confirm keeps it in every interval,
    and the simulated SL's CI holds Erlang C's SL."""
    sc = load_scenario(_mmc_scenario(tmp_path))
    p = plan(sc, model="C", confirm_mode="all", replications=4, seed=3,
             executor=LocalExecutor(1), max_replications=24, half_width=0.02)
    need = agents_for_service_level(RATE, AHT, 20.0, 0.85)
    assert need == 16
    rows = [r for r in p.language_rows if r.calls > 0]
    assert len(rows) == 6
    assert all(r.erlang_agents == need for r in rows)
    assert [r.confirmed_agents for r in rows] == [need] * 6
    # Steady state (after the first, empty-start interval): Erlang C's SL inside the CI.
    exact = service_level_c(RATE, AHT, need, 20.0)
    inside = [r for r in rows[1:] if r.confirmed_sl_low is not None
              and r.confirmed_sl_low <= exact <= (r.confirmed_sl_high or math.nan)]
    assert len(inside) >= 4
    assert p.confirmation is not None and p.confirmation.replications_final <= 24
    halves = [((r.confirmed_sl_high or 0.0) - (r.confirmed_sl_low or 0.0)) / 2 for r in rows]
    assert p.confirmation.max_half_width == max(halves)


def test_languages_get_their_own_requirement() -> None:
    """Each queue's language rows add up to its calls, and a small language (Armenian tech
    callers) needs its own agents although the queue as a whole is sized by the pool."""
    sc = load_scenario(SCENARIO)
    p = plan(sc, model="C")
    assert len(p.language_rows) == 48 * 48  # 48 intervals x 4 queues x 12 languages
    for q in ("tech", "orders"):
        by_lang = sum(r.calls for r in p.language_rows if r.queue == q)
        total = sum(r.calls for r in p.rows if r.queue == q)
        assert by_lang == np.float64(total) or abs(by_lang - total) < 1e-6 * total
    hy = max((r for r in p.language_rows if (r.queue, r.language) == ("tech", "hy")),
             key=lambda r: r.calls)
    assert hy.erlang_agents >= 1
    # The queue row at the same interval needs fewer agents than its languages sized apart.
    at = [r for r in p.language_rows if r.interval_start == hy.interval_start
          and r.queue == "tech"]
    queue_row = next(r for r in p.rows if r.interval_start == hy.interval_start
                     and r.queue == "tech")
    assert queue_row.language == ALL_LANGUAGES
    assert sum(r.erlang_agents for r in at) > queue_row.erlang_agents
    assert hy.gap == hy.erlang_agents - hy.scheduled_agents


def test_cli_confirm_prints_ci_and_writes_the_language_csv(tmp_path: Path) -> None:
    """--confirm on the M/M/c center prints the SL CI per interval and the refinement's cost,
    and writes the per-language CSV with required (and where it came from), scheduled and
    gap."""
    scenario = _mmc_scenario(tmp_path, hours=1.5)
    out = tmp_path / "out"
    code, text = run("sim", "staff", str(scenario), "--model", "C", "--confirm", "all",
                     "-r", "3", "--max-replications", "6", "-j", "1", "--out", str(out))
    assert code == 0, text
    assert "95% CI" in text
    assert "per-interval refinement:" in text and "s CPU" in text
    with open(out / "staff_language.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3 and {r["language"] for r in rows} == {"en"}
    for r in rows:
        assert float(r["gap"]) == int(r["required_agents"]) - float(r["scheduled_agents"])
        assert r["confirmed_sl_low"] and float(r["confirmed_sl_low"]) <= float(r["confirmed_sl"])
        assert r["source"] in ("factor", "refined")


def test_report_heatmap_shows_the_gap_of_groups_with_calls() -> None:
    """The report's gap heatmap has a row per (queue, language) group with at least ten calls
    (tech/hy yes, voc/hy with under one call no), on a clock-time axis of the center's zone."""
    from sim.staff import gap_plot

    sc = load_scenario(SCENARIO)
    plot = gap_plot(sc)
    assert plot is not None and plot.key == "staffing_gap"
    assert "Required minus scheduled" in plot.svg
    assert "tech/hy" in plot.svg and "voc/hy" not in plot.svg
    assert "local time (Europe/" in plot.svg


def test_the_gap_matrix_equals_the_plans_language_rows() -> None:
    """The heatmap's matrix, computed without building the plan's rows, holds exactly the gap
    of plan()'s language row for every shown group and interval."""
    from sim.staff import GAP_MIN_CALLS, gap_matrix, plan

    sc = load_scenario(SCENARIO)
    found = gap_matrix(sc)
    assert found is not None
    starts, interval_s, labels, gap = found
    p = plan(sc)
    assert interval_s == p.interval_s
    calls: dict[str, float] = {}
    by_cell = {}
    for r in p.language_rows:
        label = f"{r.queue}/{r.language}"
        calls[label] = calls.get(label, 0.0) + r.calls
        by_cell[(label, r.interval_start)] = r.gap
    assert labels == sorted(k for k, v in calls.items() if v >= GAP_MIN_CALLS)
    assert len(starts) == len({s for _, s in by_cell}) and gap.shape == (len(labels), len(starts))
    for row, label in enumerate(labels):
        for i, start in enumerate(starts):
            assert gap[row, i] == by_cell[(label, start.isoformat())]


def test_a_small_language_is_judged_on_its_calls_together(tmp_path: Path) -> None:
    """A language with under five calls in every interval gets its own agents and is confirmed
    on its SL over all its calls, with a CI, instead of being left unchecked."""
    sc = load_scenario(_mmc_scenario(tmp_path, hours=1.5, french=0.02))
    batches: list[int] = []
    p = plan(sc, model="C", confirm_mode="busiest", busiest=1, replications=3, seed=2,
             executor=LocalExecutor(1), max_replications=6, on_batch=batches.append)
    fr = [r for r in p.language_rows if r.language == "fr"]
    # Progress: every batch the search and the refinement ran, as it ended.
    assert p.confirmation is not None and batches and all(n > 0 for n in batches)
    assert sum(batches) == p.confirmation.replications_run
    assert all(0 < r.calls < 5 for r in fr) and all(r.erlang_agents >= 1 for r in fr)
    assert p.confirmation is not None
    mean, low, high = p.confirmation.group_sl[("q", "fr")]
    assert mean >= 0.85 and low <= mean <= high
    assert len([r for r in fr if r.confirmed_agents is not None]) == 1


@pytest.mark.slow
def test_confirmation_on_dask_equals_local_processes(tmp_path: Path) -> None:
    """The same seeds give the same confirmed plan, bit for bit, on a Dask cluster as locally."""
    distributed = pytest.importorskip("distributed")
    from sim.executor import DaskExecutor

    sc = load_scenario(_mmc_scenario(tmp_path, hours=1.0, french=0.02))

    def confirmed(executor: Any) -> list[tuple[int | None, float | None, float | None]]:
        p = plan(sc, model="C", confirm_mode="all", replications=2, seed=4,
                 executor=executor, max_replications=4)
        return [(r.confirmed_agents, r.confirmed_sl, r.confirmed_sl_high)
                for r in p.rows + p.language_rows]

    local_plan = confirmed(LocalExecutor(1))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        executor = DaskExecutor(cluster.scheduler_address)
        try:
            assert confirmed(executor) == local_plan
        finally:
            executor.close()
    assert any(agents is not None for agents, _, _ in local_plan)


def test_search_progress_shows_every_batch_and_logs_once_a_minute() -> None:
    """``acd sim staff --confirm``'s progress: each batch's total on the spinner; a log line
    only after a minute without one."""
    import io

    from sim.cli import SearchProgress

    now = [0.0]
    shown: list[str] = []
    log = io.StringIO()
    progress = SearchProgress("confirming", shown.append, log, clock=lambda: now[0])
    for n, at in [(3, 5), (3, 30), (6, 61), (6, 90), (12, 125)]:
        now[0] = at
        progress(n)
    assert shown[-1] == "confirming: 30 replication(s) run, 125 s"
    assert len(shown) == 5
    assert log.getvalue().splitlines() == ["confirming: 12 replication(s) run, 61 s",
                                           "confirming: 30 replication(s) run, 125 s"]
