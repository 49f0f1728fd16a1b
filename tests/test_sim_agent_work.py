"""The simulator's behaviour options for agent work: newcomers' handle time, redials after an
abandon and the repeat calls (first-call resolution) they make, callbacks as outbound agent
work; the defaults leave a seeded run's results exactly as they were."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from routerkit import agent, center_data, queue
from test_kpi import make_result, ten_calls

from acd.config.load import center_from_data
from sim.engine import Simulation
from sim.kpi import Estimate, kpis, kpis_per_interval, summarise
from sim.records import (
    ABANDONED,
    ANSWERED,
    BUSY,
    CALLBACK,
    CALLBACK_WORK,
    PAUSED,
    CallLog,
    RunResult,
)
from sim.run import RunSpec, default_scenario, run_replications
from sim.scenario import Behaviour
from sim.staffing import StaffAction
from sim.traffic.arrival import Arrival

MONDAY = datetime.fromisoformat("2026-03-02T00:00:00+03:00")
#: Overall and by-queue KPI estimates of the default run below, as main computed them before
#: these options existed (mean, sd, CI half-width, replications per KPI).
BEFORE = Path(__file__).parent / "data" / "sim_default_summary.json"


def _quiet(**changes: object) -> Behaviour:
    """Callers reach the queue at once and agents answer at once, never ringing out."""
    return Behaviour.model_validate({
        "answer_delay": {"dist": "constant", "value": 0}, "rona_probability": 0,
        "ivr_time": {"dist": "constant", "value": 0}, "ivr_abandon_probability": 0,
        **changes})


def _estimates(rows: dict[str, Estimate]) -> dict[str, list[float]]:
    return {k: [e.mean, e.sd, e.half_width, e.n] for k, e in rows.items()}


def test_default_behaviour_keeps_the_seeded_summary_of_before() -> None:
    """A default reference run (2 replications, seed 9) gives, KPI for KPI and queue for
    queue, exactly the estimates it gave before the options existed; no repeats, FCR 100%."""
    before = json.loads(BEFORE.read_text(encoding="utf-8"))
    spec = RunSpec(str(default_scenario()), {"days": 0.1, "start": "2026-03-02T08:00:00+03:00"})
    summary = summarise(run_replications(spec, 2, base_seed=9, jobs=1))
    now: dict[str, Any] = {"overall": _estimates(summary.overall),
           "by_queue": {g: _estimates(row) for g, row in summary.groups["queue"].items()}}
    for k, old in before["overall"].items():
        np.testing.assert_array_equal(now["overall"][k], old, err_msg=k)
    for g, row in before["by_queue"].items():
        for k, old in row.items():
            np.testing.assert_array_equal(now["by_queue"][g][k], old, err_msg=f"{g} {k}")
    assert summary.overall["repeats"].mean == 0.0
    assert summary.overall["fcr"].mean == 1.0


def _newcomer_run(factor: float, newcomer: bool) -> tuple[np.ndarray, float, dict[str, float]]:
    """Answered calls' talk times, busy agent seconds and KPIs of 200 calls to four agents
    (all newcomers or all experts) taking every call, at ``newcomer_handle_factor``."""
    agents = [agent(f"a{i}", newcomer=newcomer) for i in range(4)]
    loaded = center_from_data(
        center_data(agents, {"tech": queue(routing={"sites": "all", "newcomers": "equal"})}),
        "test-center.yaml")
    rng = np.random.default_rng(3)
    talks = rng.exponential(120.0, 200)
    calls = [Arrival(float(t), "tech", "ru", "RU", None, 0, talk_s=float(s))
             for t, s in zip(np.arange(200) * 600.0, talks, strict=True)]
    timeline = [StaffAction(0.0, "login", a.id) for a in loaded.agents]
    horizon = 200 * 600.0
    result = Simulation(loaded, calls, timeline,
                        _quiet(newcomer_handle_factor=factor), MONDAY, horizon, horizon,
                        seed=1).run()
    log = result.calls
    assert log is not None
    answered = log.outcome == ANSWERED
    assert answered.all()
    busy = float(result.agent_time.seconds[..., BUSY].sum())
    return log.talk_s[answered], busy, kpis(result).overall


def test_newcomers_talk_and_wrap_up_longer_by_their_factor() -> None:
    """With factor 1.5 and only newcomers every answered call talks 1.5x the caller's draw,
    AHT in the KPIs is 1.5x, and agents are busy 1.5x the talk plus 1.5x the 10 s wrap-up."""
    base_talk, base_busy, base = _newcomer_run(1.0, newcomer=True)
    slow_talk, slow_busy, slow = _newcomer_run(1.5, newcomer=True)
    np.testing.assert_allclose(slow_talk, 1.5 * base_talk, rtol=1e-9)
    assert slow["aht_s"] == pytest.approx(1.5 * base["aht_s"], rel=1e-9)
    assert base["aht_s"] == pytest.approx(float(base_talk.mean()), rel=1e-9)
    assert base_busy == pytest.approx(float(base_talk.sum()) + 200 * 10.0, rel=1e-9)
    assert slow_busy == pytest.approx(1.5 * float(base_talk.sum()) + 200 * 15.0, rel=1e-9)


def test_experts_keep_their_handle_time_whatever_the_newcomer_factor() -> None:
    """The factor is the agent's: experts answering the same callers talk exactly as long."""
    base_talk, base_busy, _ = _newcomer_run(1.0, newcomer=False)
    talk, busy, _ = _newcomer_run(1.5, newcomer=False)
    np.testing.assert_array_equal(talk, base_talk)
    assert busy == base_busy


def _redial_run(p: float) -> tuple[Simulation, RunResult]:
    """One agent, 20-minute talks and callers with 30 s of patience arriving every 2 minutes
    for 4 hours: most abandon; a share ``p`` of those call again 10 minutes later."""
    loaded = center_from_data(center_data([agent("a")]), "test-center.yaml")
    calls = [Arrival(120.0 * k, "tech", "ru", "RU", None, 0, talk_s=1200.0, patience_s=30.0)
             for k in range(120)]
    horizon = 4 * 3600.0
    sim = Simulation(loaded, calls, [StaffAction(0.0, "login", loaded.agents[0].id)],
                     _quiet(redial_probability=p,
                            redial_delay_s={"dist": "constant", "value": 600}),
                     MONDAY, horizon, 1800.0, seed=5)
    return sim, sim.run()


def test_every_abandon_within_the_horizon_redials_as_a_repeat() -> None:
    """With redial probability 1, each abandon whose redial falls before the horizon makes one
    repeat call (same queue, offered, marked), and the KPIs count exactly those repeats."""
    sim, result = _redial_run(1.0)
    calls = result.calls
    assert calls is not None and calls.repeat is not None
    abandoned = calls.outcome == ABANDONED
    gone_at = calls.queued_s + calls.wait_s
    redialled = int(np.sum(abandoned & (gone_at + 600.0 < 4 * 3600.0)))
    assert redialled > 100  # the case is one of heavy abandonment
    assert sim.redials == redialled
    assert int(calls.repeat.sum()) == redialled
    # A repeat reaches the queue 600 s after its caller gave up, and is itself offered.
    repeat_entries = np.sort(calls.queued_s[calls.repeat == 1])
    np.testing.assert_allclose(repeat_entries,
                               np.sort(gone_at[abandoned & (gone_at + 600.0 < 4 * 3600.0)]
                                       + 600.0))
    got = kpis(result).overall
    assert got["repeats"] == redialled
    assert got["fcr"] == pytest.approx(1 - redialled / got["offered"])
    per_interval = kpis_per_interval(result)
    assert per_interval.values["repeats"].sum() == redialled
    assert got["offered"] == 120 + redialled


def test_no_redials_by_default() -> None:
    """Probability 0 makes no redial: the callers and outcomes are those of the 120 arrivals."""
    sim, result = _redial_run(0.0)
    assert sim.redials == 0
    calls: CallLog | None = result.calls
    assert calls is not None and len(calls) == 120
    assert kpis(result).overall["fcr"] == 1.0


def test_fcr_counts_repeats_among_offered_calls_on_a_hand_made_log() -> None:
    """Ten offered calls of which two are repeats (and an IVR outcome marked one, which was
    never offered): repeats 2 and FCR = 1 - 2/10, overall and for their queue."""
    result = make_result(ten_calls())
    log = result.calls
    assert log is not None
    repeat = np.zeros(len(log), dtype=np.int8)
    repeat[[0, 6]] = 1  # an answered tech call and an abandoned one
    repeat[-1] = 1  # an IVR outcome: not offered, so not a repeat call of the queue
    result = replace(result, calls=replace(log, repeat=repeat))
    table = kpis(result, by="queue")
    assert table.overall["repeats"] == 2
    assert table.overall["fcr"] == pytest.approx(1 - 2 / 10)
    assert table.groups["tech"]["repeats"] == 2
    assert table.groups["tech"]["fcr"] == pytest.approx(1 - 2 / table.groups["tech"]["offered"])
    assert math.isnan(table.groups["voc"]["fcr"])  # no calls, no FCR


def _callback_run(work: bool) -> tuple[Simulation, RunResult]:
    """One agent; five callers at 0 s (100 s talks, 10 s wrap-up) of whom four wait past 20 s
    and take the callback they are offered; an inbound caller at 160 s. With ``work`` each
    callback is a 50 s outbound call due 60 s after it was accepted."""
    callback_queue = queue(expansion=[{"after_s": 20, "offer_callback": True}])
    loaded = center_from_data(center_data([agent("a")], {"tech": callback_queue}),
                              "test-center.yaml")
    calls = [Arrival(0.0, "tech", "ru", "RU", None, 0, talk_s=100.0) for _ in range(5)]
    calls.append(Arrival(160.0, "tech", "ru", "RU", None, 0, talk_s=100.0))
    changes: dict[str, object] = {"callback_accept_probability": 1.0}
    if work:
        changes.update(callback_work_delay_s={"dist": "constant", "value": 60},
                       callback_work_talk_s={"dist": "constant", "value": 50})
    sim = Simulation(loaded, calls, [StaffAction(0.0, "login", loaded.agents[0].id)],
                     _quiet(**changes), MONDAY, 1800.0, 1800.0, seed=1)
    return sim, sim.run()


def test_accepted_callbacks_become_agent_work_after_inbound_calls() -> None:
    """Four accepted callbacks become four outbound calls, each due at 80 s: the agent takes
    the first when free at 110 s, then the inbound caller waiting since 160 s (answered at
    170 s: a caller goes before callback work), then the other three back to back; the work
    is busy agent time, counted apart, and never enters arrivals, offered calls or SL."""
    sim, result = _callback_run(work=True)
    calls = result.calls
    assert calls is not None
    assert (sim.work_created, sim.work_done) == (4, 4)
    work = calls.outcome == CALLBACK_WORK
    assert calls.arrival_s[work].tolist() == [110.0, 280.0, 340.0, 400.0]
    assert calls.wait_s[work].tolist() == [30.0, 200.0, 260.0, 320.0]
    assert calls.talk_s[work].tolist() == [50.0] * 4
    inbound = calls.arrival_s == 160.0
    assert calls.outcome[inbound].tolist() == [ANSWERED]
    assert calls.wait_s[inbound].tolist() == [10.0]
    busy = result.agent_time.seconds[..., BUSY].sum()
    assert busy == pytest.approx(2 * (100 + 10) + 4 * (50 + 10))
    assert result.agent_time.seconds[..., PAUSED].sum() == 0.0
    got = kpis(result).overall
    assert (got["arrivals"], got["offered"], got["answered"]) == (6, 6, 2)
    assert (got["callback"], got["callback_work"]) == (4, 4)
    assert got["sl_offered"] == pytest.approx(2 / 6)
    assert got["callback_work_wait_s"] == pytest.approx((30 + 200 + 260 + 320) / 4)


def test_without_callback_work_callbacks_leave_agents_idle() -> None:
    """By default an accepted callback makes no work: four callbacks, and the agent is busy
    with the two inbound calls only."""
    sim, result = _callback_run(work=False)
    assert sim.work_created == 0
    assert result.agent_time.seconds[..., BUSY].sum() == pytest.approx(2 * (100 + 10))
    assert result.calls is not None
    assert int(np.sum(result.calls.outcome == CALLBACK)) == 4
    assert kpis(result).overall["callback_work"] == 0
