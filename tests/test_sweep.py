"""``acd sim sweep``: grid overrides, common random numbers, the table, plot and cheapest point."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from acd.cli import main
from acd.errors import UsageError
from sim.executor import LocalExecutor
from sim.run import RunSpec, load_run_scenario, run_specs
from sim.sweep import (
    Sweep,
    SweepRow,
    check_varies,
    closest,
    missed_text,
    parse_vary,
    point_spec,
    run_sweep,
)

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = str(ROOT / "config" / "scenarios" / "reference.yaml")
GENEROUS = str(ROOT / "tests" / "data" / "scenarios" / "generous.yaml")
SMALL = RunSpec(SCENARIO, {"days": 0.05, "start": "2026-03-02T09:00:00+03:00"})
EXPANSION = "queues.tech.expansion.0.after_s"


def test_an_expansion_step_override_changes_that_step_only() -> None:
    """Varying one expansion step's after_s replaces that value and keeps the other steps."""
    scenario = load_run_scenario(SMALL)
    spec = point_spec(SMALL, scenario, {EXPANSION: 4.0})
    steps = load_run_scenario(spec).center.config.queues["tech"].expansion
    before = scenario.center.config.queues["tech"].expansion
    assert steps[0].after_s == 4.0 and before[0].after_s == 8.0
    assert steps[1:] == before[1:]
    assert steps[0].min_level == before[0].min_level


def test_every_point_runs_on_the_same_seeds_and_callers() -> None:
    """Common random numbers: each point's replication i has the same seed and arrivals."""
    scenario = load_run_scenario(SMALL)
    specs = [point_spec(SMALL, scenario, {"scale_agents": x}) for x in (0.7, 1.3)]
    low, high = run_specs(specs, 2, 4, executor=LocalExecutor(1))
    assert [r.seed for r in low] == [r.seed for r in high]
    assert low[0].seed != low[1].seed
    for a, b in zip(low, high, strict=True):
        assert a.calls.arrival_s.tobytes() == b.calls.arrival_s.tobytes()
    assert sum(r.calls.wait_s.sum() for r in low) > sum(r.calls.wait_s.sum() for r in high)


def test_the_cheapest_point_meeting_every_target_is_marked(tmp_path: Path) -> None:
    """Of the points meeting every target, the one with the fewest agent-hours is marked, and
    the CSV, JSON and plot are written with one row per point."""
    base = RunSpec(GENEROUS, {"days": 0.05, "start": "2026-03-02T09:00:00+03:00"})
    sweep = run_sweep(base, [parse_vary("scale_agents=0.6,1,1.4"), parse_vary("scale=0.5,1")],
                      4, 1, LocalExecutor(1))
    assert len(sweep.rows) == 6
    hours = {r.point["scale_agents"]: r.agent_hours for r in sweep.rows}
    assert hours[0.6] < hours[1.0] < hours[1.4]
    met = [r for r in sweep.rows if r.meets_target]
    assert met, "generous staffing meets the targets somewhere"
    (cheapest,) = [r for r in sweep.rows if r.cheapest]
    assert cheapest.meets_target
    assert cheapest.agent_hours == min(r.agent_hours for r in met)
    from sim.sweep import write_outputs

    write_outputs(sweep, tmp_path)
    with open(tmp_path / "sweep.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    doc = json.loads((tmp_path / "sweep.json").read_text(encoding="utf-8"))
    assert len(rows) == len(doc["rows"]) == 6
    assert [r["cheapest"] for r in rows].count("True") == 1
    assert doc["keys"] == ["scale_agents", "scale"]
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(("vary", "expected"), [
    ("scale_agents", "must be KEY=V1,V2"),
    ("scale_agents=0.9,x", "'x' is not a number"),
    ("scale_agents=1,1", "lists a value twice"),
])
def test_malformed_vary_exits_2_naming_it(vary: str, expected: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A --vary that is not KEY=numbers exits 2 with one line naming the option and value."""
    code = main(["sim", "sweep", SCENARIO, "--vary", vary, "--out", str(tmp_path)])
    err = capsys.readouterr().err.splitlines()
    assert code == 2
    assert err[0] == "error: 1 problem(s):"
    assert "--vary" in err[1] and expected in err[1]


@pytest.mark.parametrize(("key", "expected"), [
    ("queues.tehc.expansion.0.after_s", "did you mean 'tech'"),
    ("scale_agent", "did you mean 'scale_agents'"),
    ("queues.tech.expansion.9.after_s", "must be an index from 0 to 4"),
    ("queues.tech.skill", "not a number"),
])
def test_a_key_the_scenario_lacks_is_refused_with_a_suggestion(key: str, expected: str) -> None:
    """Keys are checked against the scenario's center config, with a did-you-mean."""
    scenario = load_run_scenario(SMALL)
    with pytest.raises(UsageError) as info:
        check_varies(scenario, [parse_vary(f"{key}=1,2")])
    (problem,) = info.value.problems
    assert "--vary" in str(problem) and expected in str(problem)


def test_cli_sweep_writes_the_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``acd sim sweep`` on one process prints the grid and writes its three files."""
    code = main(["sim", "sweep", SCENARIO, "--days", "0.02", "--start",
                 "2026-03-02T10:00+03:00", "--vary", "scale=0.8,1", "-r", "2", "-j", "1",
                 "--out", str(tmp_path)])
    captured = capsys.readouterr()
    out = captured.out
    assert code == 0
    assert "scale" in out and "agent-h" in out
    # Not a terminal: how far the 4 replications have got, as plain lines on stderr.
    progress = [s for s in captured.err.splitlines() if s.startswith("sweeping: ")]
    assert len(progress) >= 2 and progress[-1].startswith("sweeping: 100% (4.0 of 4)")
    # No point meets every target here: the nearest is named with what it missed, as the CSV.
    rows = list(csv.DictReader((tmp_path / "sweep.csv").open(encoding="utf-8")))
    assert not any(r["meets_target"] == "True" for r in rows)
    assert "missed (" in out and "\nclosest, scale=" in out
    # The files keep the misses as text, one "dimension group VERDICT" each.
    assert all(m.rsplit(" ", 1)[-1] in ("MET", "INCONCLUSIVE")
               for m in rows[0]["misses"].split("; "))
    assert {p.name for p in tmp_path.iterdir()} == {"sweep.csv", "sweep.json", "sweep.png"}


def test_a_value_the_center_refuses_is_blamed_on_vary(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """An expansion step moved past the next one exits 2 naming --vary and the point."""
    code = main(["sim", "sweep", SCENARIO, "--days", "0.02", "--vary", f"{EXPANSION}=4,20",
                 "--out", str(tmp_path)])
    err = capsys.readouterr().err.splitlines()
    assert code == 2
    assert len(err) == 2
    assert "--vary" in err[1] and f"{EXPANSION}=20" in err[1] and "increasing" in err[1]


def _row(x: float, hours: float, misses: tuple[tuple[str, str, str], ...]) -> SweepRow:
    return SweepRow({"scale_agents": x}, 10, hours, 0.9, 0.01, 0.97, 0.01, not misses, misses)


def test_the_closest_point_has_the_fewest_groups_not_met_then_inconclusive() -> None:
    """Fewest NOT MET first (a CI wholly below the target), then fewest INCONCLUSIVE, then
    the cheapest; none when a point meets every target. Its misses read by verdict and
    dimension."""
    not_met = ("language", "kk", "NOT MET")
    unsure = [("language", "uz", "INCONCLUSIVE"), ("country", "UZ", "INCONCLUSIVE")]
    rows = (_row(0.9, 90, (("center", "all", "NOT MET"), not_met)),
            _row(1.0, 100, (not_met, *unsure)),
            _row(1.1, 110, (not_met, unsure[0])),
            _row(1.2, 120, (not_met, unsure[0])))
    sweep = Sweep("s.yaml", ("scale_agents",), 5, 1, 0.85, 0.96, rows)
    assert closest(sweep) is rows[2]
    assert missed_text(rows[1].misses) == (
        "NOT MET: language kk. INCONCLUSIVE: language uz; country UZ")
    assert missed_text(rows[0].misses) == "NOT MET: the center; language kk"
    met = Sweep("s.yaml", ("scale_agents",), 5, 1, 0.85, 0.96, (*rows, _row(1.3, 130, ())))
    assert closest(met) is None
