"""Faithful replay: calls enter where the log says, unobserved patience and talk drawn from it."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from acd.cli import main
from sim.kpi import summarise
from sim.records import ANSWERED, IVR_ABANDONED, RunResult, write_call_log
from sim.run import RunSpec, run_one, run_replications
from sim.traffic.arrival import Arrival
from sim.traffic.censored import JITTER_S, fit_patience, redraw_unobserved, scale_calls

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "config" / "scenarios" / "reference.yaml"


def _scenario(tmp_path: Path, extra_behaviour: str = "", days: float = 1.0) -> Path:
    """The reference scenario, written where a test can change its behaviour block."""
    text = REFERENCE.read_text(encoding="utf-8")
    text = text.replace("center: ../center.yaml", f"center: {ROOT / 'config' / 'center.yaml'}")
    text = text.replace("traffic: ../traffic/reference.yaml",
                        f"traffic: {ROOT / 'config' / 'traffic' / 'reference.yaml'}")
    text = text.replace("days: 1\n", f"days: {days}\n")
    text = text.replace("  ivr_abandon_probability: 0.02\n",
                        f"  ivr_abandon_probability: 0.02\n{extra_behaviour}")
    path = tmp_path / "scenario.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _exported(tmp_path: Path, scenario: Path, seed: int = 1) -> tuple[RunResult, Path]:
    result = run_one(RunSpec(str(scenario), {}), np.random.SeedSequence(seed))
    path = tmp_path / "calls.csv"
    write_call_log(result, path)
    return result, path


def _censored_log(n: int, seed: int) -> list[Arrival]:
    """Callers with exponential patience (mean 120 s) whose answer would come after an
    exponential wait (mean 60 s): those whose patience runs out first abandon."""
    rng = np.random.default_rng(seed)
    calls = []
    for i, (p, w) in enumerate(zip(rng.exponential(120.0, n), rng.exponential(60.0, n),
                                   strict=True)):
        if p < w:
            calls.append(Arrival(float(i), "tech", "ru", "RU", None, 0, math.nan, float(p),
                                 wait_s=float(p), talk_known=False))
        else:
            calls.append(Arrival(float(i), "tech", "ru", "RU", None, 0, 100.0 + i % 50,
                                 wait_s=float(w)))
    return calls


def test_kaplan_meier_patience_is_drawn_beyond_the_observed_wait() -> None:
    """From censored exponential data (mean 120 s) the model's draws given a 30 s wait all
    exceed 30 s and run about 120 s beyond it; its median patience is near 120 ln 2."""
    model = fit_patience(_censored_log(20_000, seed=5))
    assert model is not None and model.events > 5000 and model.censored > 5000
    rng = np.random.default_rng(1)
    beyond = model.draw_beyond(np.full(20_000, 30.0), rng)
    assert (beyond > 30.0).all()
    assert float(np.mean(beyond - 30.0)) == pytest.approx(120.0, rel=0.08)
    unconditional = model.draw_beyond(np.zeros(20_000), rng)
    assert float(np.median(unconditional)) == pytest.approx(120.0 * math.log(2), rel=0.08)


def test_redraw_gives_answered_callers_finite_patience_and_abandoned_calls_logged_talk() -> None:
    """Answered calls get a patience above their wait; abandoned calls keep their patience and
    take a talk time from the answered calls' (several different ones, not one median)."""
    log = _censored_log(2000, seed=7)
    model = fit_patience(log)
    out = redraw_unobserved(log, np.random.default_rng(3), model)
    answered = [(a, b) for a, b in zip(log, out, strict=True) if math.isinf(a.patience_s)]
    abandoned = [(a, b) for a, b in zip(log, out, strict=True) if not math.isinf(a.patience_s)]
    assert all(math.isfinite(b.patience_s) and b.patience_s > (a.wait_s or 0.0)
               for a, b in answered)
    assert all(b.patience_s == a.patience_s for a, b in abandoned)
    talks = {b.talk_s for _, b in abandoned}
    assert len(talks) > 20 and talks <= {a.talk_s for a, _ in answered}
    again = redraw_unobserved(log, np.random.default_rng(4), model)
    assert [c.patience_s for c in again] != [c.patience_s for c in out]


def test_a_log_without_abandons_or_waits_keeps_answered_callers_patient() -> None:
    """No abandon means no evidence of impatience, and no wait means nothing to condition on:
    answered calls stay patient in both cases."""
    patient = [Arrival(float(i), "tech", "ru", "RU", None, 0, 60.0, wait_s=5.0) for i in range(9)]
    model = fit_patience(patient)
    assert model is not None and model.events == 0
    assert all(math.isinf(c.patience_s)
               for c in redraw_unobserved(patient, np.random.default_rng(1), model))
    assert fit_patience([Arrival(0.0, "tech", "ru", "RU", None, 0, 60.0)]) is None


def test_scale_thins_below_one_and_resamples_with_jitter_above() -> None:
    """scale 0.5 keeps about half the calls, 2.5 gives about 2.5 times as many, copies within
    the jitter of an original and inside the log's span, in time order."""
    calls = [Arrival(float(10 * i), "tech", "ru", "RU", None, 0, 60.0) for i in range(4000)]
    rng = np.random.default_rng(2)
    assert len(scale_calls(calls, 0.5, rng)) == pytest.approx(2000, rel=0.06)
    more = scale_calls(calls, 2.5, rng)
    assert len(more) == pytest.approx(10_000, rel=0.03)
    times = [c.t for c in more]
    assert times == sorted(times) and times[0] >= 0.0 and times[-1] <= calls[-1].t
    originals = np.array([c.t for c in calls])
    nearest = np.abs(np.array(times)[:, None] - originals[None, :1000]).min(axis=1)
    assert (nearest[np.array(times) < originals[999] - JITTER_S] <= JITTER_S).all()


def test_replay_enters_the_queue_where_the_log_says_and_adds_no_ivr_abandons(
        tmp_path: Path) -> None:
    """A replayed export spends exactly its logged IVR time, no caller hangs up in the IVR, and
    replications with different seeds differ (patience and talk drawn afresh)."""
    # Into the morning: at night the waits are those of the queues' expansion steps whoever
    # is absent, and two seeds can give the very same waits.
    scenario = _scenario(tmp_path, days=0.5)
    original, log = _exported(tmp_path, scenario)
    assert (original.calls.outcome == IVR_ABANDONED).any()  # the simulated day had some
    spec = RunSpec(str(scenario), {}, replay_path=str(log))
    first, second = (run_one(spec, np.random.SeedSequence(s)) for s in (1, 2))
    queued = ~np.isnan(original.calls.queued_s)
    logged_ivr = np.sort(original.calls.queued_s[queued] - original.calls.arrival_s[queued])
    replayed_ivr = np.sort(first.calls.queued_s - first.calls.arrival_s)
    assert len(first.calls) == int(queued.sum())
    assert not (first.calls.outcome == IVR_ABANDONED).any()
    np.testing.assert_allclose(replayed_ivr, logged_ivr, atol=2e-3)
    assert not np.array_equal(first.calls.wait_s, second.calls.wait_s)


@pytest.mark.slow
def test_simulate_export_replay_round_trip_agrees(tmp_path: Path) -> None:
    """A simulated reference day exported as a call log and replayed against the same staffing
    (with the scenario's answer delay and RONA, which a call log does not record) gives an SL and
    abandon rate inside the seeded run's 95% CI, and the seeded run's inside the replay's."""
    scenario = _scenario(tmp_path, "  replay_agent_behaviour: true\n")
    base = run_replications(RunSpec(str(scenario), {}), 4, 1, jobs=2)
    log = tmp_path / "calls.csv"
    write_call_log(base[0], log)
    replay = run_replications(RunSpec(str(scenario), {}, replay_path=str(log)), 4, 1, jobs=2)
    a, b = summarise(base, by=None).overall, summarise(replay, by=None).overall
    for kpi in ("sl_offered", "abandon_rate"):
        assert b[kpi].half_width > 0  # the replay's replications differ
        assert abs(a[kpi].mean - b[kpi].mean) <= max(a[kpi].half_width, b[kpi].half_width), kpi
    assert b["offered"].half_width == 0  # every replication replays the same calls


def test_replay_days_and_scale_work_from_the_command_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--days cuts a replay to its first hours and --scale resamples it: the run says so and
    offers about that many calls (no option is silently ignored)."""
    scenario = _scenario(tmp_path, days=0.25)
    _, log = _exported(tmp_path, scenario)
    total = sum(1 for _ in log.open(encoding="utf-8")) - 1
    code = main(["sim", "run", str(scenario), "--replay", str(log), "--days", "0.125",
                 "--scale", "2", "-r", "1", "-j", "1", "-q", "--out", str(tmp_path / "out")])
    out = " ".join(capsys.readouterr().out.split())  # as printed, unwrapped
    assert code == 0
    assert "its first 0.125 day(s), volume x2" in out
    spec = RunSpec(str(scenario), {"days": 0.125, "volume_scale": 2.0}, replay_path=str(log))
    result = run_one(spec, np.random.SeedSequence(1))
    first_half = sum(1 for line in log.open(encoding="utf-8")
                     if line[:4].isdigit() and line < "2026-03-02T03:00")
    assert 0 < first_half < total
    assert len(result.calls) == pytest.approx(2 * first_half, rel=0.1)
    assert (result.calls.outcome == ANSWERED).any()


def test_a_call_log_without_waits_is_noted_before_the_replay(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The sample call log has no wait_s: the run says its answered callers replay as patient."""
    code = main(["sim", "run", "--replay", str(ROOT / "tests" / "data" / "call_log.sample.csv"),
                 "-r", "1", "-j", "1", "-q", "--out", str(tmp_path)])
    assert code == 0
    assert "4 call(s) of the log have no wait_s" in " ".join(capsys.readouterr().out.split())


def test_replay_start_picks_the_window_and_a_queue_log_refuses_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--start replays a call log from that time on (the run starts there); a queue_log, whose
    staffing starts with its first line, refuses --start with exit 2."""
    scenario = _scenario(tmp_path, days=0.25)
    _, log = _exported(tmp_path, scenario)
    later = sum(1 for line in log.open(encoding="utf-8")
                if line[:4].isdigit() and line >= "2026-03-02T03:00")
    start = datetime.fromisoformat("2026-03-02T03:00:00+03:00")
    spec = RunSpec(str(scenario), {"start": start}, replay_path=str(log))
    result = run_one(spec, np.random.SeedSequence(1))
    assert result.start_iso == start.isoformat()
    assert len(result.calls) == later > 0
    code = main(["sim", "run", "--queue-log", str(ROOT / "tests" / "data" / "queue_log.sample"),
                 "--start", "2026-03-02T03:00+03:00", "-q", "--out", str(tmp_path / "out")])
    assert code == 2
    assert "--start" in capsys.readouterr().err
