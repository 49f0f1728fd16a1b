"""`--warmup`: a run that starts mid-day simulates a lead-in and leaves it out of its results."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from acd.cli import main
from sim.records import BUSY, READY
from sim.run import RunSpec, run_one

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "config" / "scenarios" / "reference.yaml"
NOON = "2026-03-02T12:00:00+03:00"


def test_warmup_is_simulated_and_left_out() -> None:
    """Starting at noon after a one-hour warm-up, the results cover noon to 15:00 only (same
    intervals, no call before noon) and agents are already busy in the first interval, unlike
    a cold start at noon with idle agents and an empty queue."""
    overrides = {"start": datetime.fromisoformat(NOON), "days": 0.125}
    cold = run_one(RunSpec(str(SCENARIO), overrides), np.random.SeedSequence(4))
    warm = run_one(RunSpec(str(SCENARIO), overrides, warmup_s=3600.0),
                   np.random.SeedSequence(4))
    assert warm.start_iso == cold.start_iso == NOON
    assert warm.duration_s == cold.duration_s == 3 * 3600.0
    assert warm.agent_time.seconds.shape == cold.agent_time.seconds.shape
    queued = ~np.isnan(warm.calls.queued_s)
    assert (warm.calls.queued_s[queued] >= 0).all() and (warm.calls.arrival_s[~queued] >= 0).all()
    assert len(warm.calls) == pytest.approx(len(cold.calls), rel=0.1)

    def first_occupancy(seconds: np.ndarray) -> float:
        busy, ready = seconds[0, :, BUSY].sum(), seconds[0, :, READY].sum()
        return float(busy / (busy + ready))

    # Seed 4: 0.469 against 0.371 since absences are drawn per agent and day (both runs now
    # lose the same agents that Monday); 0.470 against 0.363 before.
    warm_first, cold_first = (first_occupancy(r.agent_time.seconds) for r in (warm, cold))
    assert warm_first > cold_first + 0.09


def test_a_warmup_without_a_call_log_drops_the_same_calls() -> None:
    """A run that keeps no call log (``acd sim run``: KPIs counted as calls end) leaves out
    exactly the warm-up's calls too: every per-interval KPI of every group, and the waits
    behind the percentiles, equal those of the same seeded run with its call log."""
    from sim.kpi import kpis_per_interval

    overrides = {"start": datetime.fromisoformat(NOON), "days": 0.125}
    logged = run_one(RunSpec(str(SCENARIO), overrides, warmup_s=3600.0),
                     np.random.SeedSequence(4))
    streamed = run_one(RunSpec(str(SCENARIO), overrides, warmup_s=3600.0, keep_calls=False),
                       np.random.SeedSequence(4))
    assert streamed.calls is None and logged.calls is not None
    # The reference: KPIs computed from the call log alone (tallies and wait log set aside).
    from_calls = dataclasses.replace(logged, tallies=None, waits=None)
    for dim in (None, "queue", "language", "country", "site"):
        a, b = kpis_per_interval(from_calls, dim), kpis_per_interval(streamed, dim)
        assert a.groups == b.groups and a.values.keys() == b.values.keys()
        for kpi in a.values:
            np.testing.assert_allclose(b.values[kpi], a.values[kpi], rtol=1e-9, atol=1e-9,
                                       equal_nan=True, err_msg=f"{dim} {kpi}")
    w_logged, w_streamed = from_calls.wait_log(), streamed.wait_log()
    np.testing.assert_array_equal(np.sort(w_streamed.wait_s), np.sort(w_logged.wait_s))
    assert (w_streamed.queued_s >= 0).all()


@pytest.mark.parametrize(("extra", "message"), [
    (["--warmup", "7min"], "whole intervals"),
    (["--warmup", "soon"], "not a duration"),
    (["--warmup", "1h", "--replay", str(ROOT / "tests" / "data" / "call_log.sample.csv")],
     "cannot warm up"),
])
def test_bad_warmup_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                            extra: list[str], message: str) -> None:
    """A warm-up that is not whole intervals, not a duration, or given to a replay exits 2."""
    try:
        code = main(["sim", "run", "-q", "--out", str(tmp_path), *extra])
    except SystemExit as exc:  # argparse refuses a value its type cannot read
        code = int(exc.code or 0)
    assert code == 2
    assert message in capsys.readouterr().err
