"""KPIs counted as calls end equal the list-based computation from every call row; long runs
keep no call log, write their rows only when asked, and report progress per simulated day."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sim import kpi, report
from sim.callscsv import read_calls_csv
from sim.records import RunResult
from sim.run import (
    DayProgress,
    RunSpec,
    calls_csv_path,
    default_scenario,
    load_run_scenario,
    run_one,
    simulation_for,
)

#: Half a day from 08:00 Moscow: busy hours, abandons, ring-no-answer, callbacks.
SPEC = RunSpec(str(default_scenario()), {"days": 0.5, "start": "2026-03-02T08:00:00+03:00",
                                         "volume_scale": 2.0})
SEED = np.random.SeedSequence(11).spawn(1)[0]


def _streamed(tmp_path: Path) -> tuple[RunResult, RunResult]:
    """The run counted as it went (no call log, in batches of 700 calls), and the same run
    rebuilt from its CSV rows with only a call log, as the list-based KPIs read it."""
    scenario = load_run_scenario(SPEC)
    streamed = simulation_for(scenario, SEED, keep_calls=False,
                              calls_csv=str(tmp_path / "calls.csv"), call_batch=700).run()
    assert streamed.calls is None and streamed.tallies is not None
    groups = streamed.tallies.groups
    log = read_calls_csv(tmp_path / "calls.csv", groups["queue"], groups["language"],
                         groups["country"], groups["site"])
    return streamed, replace(streamed, calls=log, tallies=None, waits=None, n_calls=-1)


def test_streamed_kpis_equal_the_list_based_computation_for_every_interval_and_group(
        tmp_path: Path) -> None:
    """Every KPI of every interval and group, and every run-level KPI, counted as calls ended
    equals the vectorised computation over the run's call rows read back from --calls-csv."""
    streamed, listed = _streamed(tmp_path)
    assert len(listed.calls or ()) == streamed.calls_simulated > 1000
    for by in (None, *kpi.DIMENSIONS):
        got = kpi.kpis_per_interval(streamed, by)
        want = kpi.kpis_per_interval(listed, by)
        assert got.groups == want.groups and got.targets == want.targets
        for name in kpi.INTERVAL_KPI_NAMES:
            a, b = got.values[name], want.values[name]
            assert a.shape == b.shape == (len(want.groups), kpi.n_intervals(listed)), name
            if name in kpi.COUNTS:
                np.testing.assert_array_equal(a, b, err_msg=f"{by} {name}")
            else:  # wait sums are added in another order: equal to the last bits
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=0, err_msg=f"{by} {name}")
        got_rows, want_rows = kpi.kpis(streamed, by), kpi.kpis(listed, by)
        for group, row in [(kpi.ALL, got_rows.overall), *got_rows.groups.items()]:
            other = want_rows.overall if group == kpi.ALL else want_rows.groups[group]
            for name in kpi.KPI_NAMES:
                np.testing.assert_allclose(row[name], other[name], rtol=1e-12, atol=0,
                                           err_msg=f"{by} {group} {name}")


def test_a_run_without_call_log_has_the_kpis_and_waits_of_one_with_it(tmp_path: Path) -> None:
    """Dropping the call log changes nothing else: same tallies, waits and agent time, bit for
    bit; the wait log is the offered calls' waits from the call log."""
    kept = run_one(SPEC, SEED)
    dropped = run_one(replace(SPEC, keep_calls=False), SEED)
    assert kept.calls is not None and dropped.calls is None
    assert kept.tallies is not None and dropped.tallies is not None
    for dim, values in kept.tallies.values.items():
        assert values.tobytes() == dropped.tallies.values[dim].tobytes(), dim
    assert kept.agent_time.seconds.tobytes() == dropped.agent_time.seconds.tobytes()
    assert dropped.calls_simulated == len(kept.calls)
    from_log = replace(kept, waits=None).wait_log()
    assert dropped.waits is not None
    np.testing.assert_array_equal(np.sort(dropped.waits.wait_s), np.sort(from_log.wait_s))
    assert report.wait_table([dropped]) == report.wait_table([kept])


def test_calls_csv_names_one_file_per_replication(tmp_path: Path) -> None:
    """Replication 1 writes the path given, replication n >= 2 a sibling with -rn."""
    assert calls_csv_path(str(tmp_path / "calls.csv"), 0) == str(tmp_path / "calls.csv")
    assert calls_csv_path(str(tmp_path / "calls.csv"), 2) == str(tmp_path / "calls-r3.csv")


def test_streamed_summary_json_is_the_document_summary_to_dict_gives(tmp_path: Path) -> None:
    """The interval tables written row by row give the very bytes of json.dumps."""
    streamed = run_one(replace(SPEC, keep_calls=False), SEED)
    summary = kpi.summarise([streamed, streamed])
    prov = report.Provenance("run", "s.yaml", "name", "forecast", {"days": "0.5"}, 3, 2)
    report.write_json(tmp_path / "summary.json", summary, prov)
    want = json.dumps(report.summary_to_dict(summary, prov), allow_nan=False) + "\n"
    assert (tmp_path / "summary.json").read_text(encoding="utf-8") == want


def test_long_runs_report_each_simulated_day_once_per_replication() -> None:
    """A line per whole simulated day per replication, none for the drain or a repeat."""
    out = io.StringIO()
    progress = DayProgress(3.0, out, clock=lambda: 0.0)
    end = 3 * 86400.0 + 3 * 3600.0  # the days and the drain after them
    for hour in range(1, 76):
        progress(0, hour * 3600.0 / end)
    progress(1, 1.0)
    progress(1, 1.0)
    lines = out.getvalue().splitlines()
    assert lines == [f"simulating: replication 1, day {d} of 3 done, 0 s elapsed"
                     for d in (1, 2, 3)] + ["simulating: replication 2, day 3 of 3 done, "
                                            "0 s elapsed"]
    assert progress.day(0.5) == pytest.approx(1)
