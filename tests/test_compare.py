"""`acd sim compare`: common random numbers, paired differences with t intervals, a verdict."""

from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter
from pathlib import Path

import pytest
from scipy import stats

from acd.cli import main
from acd.config.roster import expand_roster
from sim import compare as cmp
from sim.engine import DRAIN_S
from sim.run import (
    RunSpec,
    load_run_scenario,
    replication_seeds,
    replication_streams,
    run_replications,
    scaled_agent_groups,
)
from sim.scenario import load_scenario
from sim.staffing import StaffAction, build_timeline

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "config" / "scenarios" / "reference.yaml"


def test_paired_difference_is_a_t_interval_on_the_differences() -> None:
    """Differences 1, 2, 3, 4 give mean 2.5 and scipy's t interval with 3 degrees of freedom."""
    d = cmp.paired_difference("sl_offered", [0.5, 0.5, 0.5, 0.5], [1.5, 2.5, 3.5, 4.5])
    half = stats.t.ppf(0.975, 3) * math.sqrt(5 / 3) / 2
    assert d.mean == pytest.approx(2.5) and d.n == 4
    assert (d.low, d.high) == pytest.approx((2.5 - half, 2.5 + half))
    assert d.significant and d.better is True


def test_lower_is_better_for_waits_and_abandons() -> None:
    """A significantly longer ASA in B is worse, and NaN pairs are left out of the count."""
    d = cmp.paired_difference("asa_s", [1.0, 1.0, 1.0, math.nan], [2.0, 2.1, 2.2, 5.0])
    assert d.n == 3 and d.significant and d.better is False
    flat = cmp.paired_difference("abandon_rate", [0.1, 0.2], [0.1, 0.2])
    assert (flat.mean, flat.low, flat.high) == (0.0, 0.0, 0.0) and flat.better is None


def test_scaled_agent_groups_keep_language_mixes_and_extensions_valid() -> None:
    """Every group grows by the factor, its language mix still adds up, extensions stay unique."""
    spec = RunSpec(str(REFERENCE), {}, agent_scale=1.5)
    base = load_scenario(REFERENCE).center
    scaled = load_run_scenario(spec).center  # loading validates counts and extensions
    for name, group in base.config.agent_groups.items():
        grown = scaled.config.agent_groups[name]
        assert grown.count == max(1, round(group.count * 1.5))
        if grown.language_mix:
            assert sum(b.count for b in grown.language_mix) == grown.count
    assert len({a.extension for a in scaled.agents}) == len(scaled.agents)
    same = scaled_agent_groups(base.config, 1.0)
    for name, group in base.config.agent_groups.items():
        assert same[name]["count"] == group.count and "first_extension" not in same[name]
        assert [b["count"] for b in same[name].get("language_mix", [])] == [
            b.count for b in group.language_mix]


def test_a_against_itself_gives_exactly_zero_differences() -> None:
    """Two runs of the same scenario from the same seeds differ by exactly 0 in every KPI."""
    spec = RunSpec(str(REFERENCE), {"days": 0.1, "start": "2026-03-02T09:00:00+03:00"})
    a = run_replications(spec, 3, 7, jobs=1)
    b = run_replications(spec, 3, 7, jobs=1)
    comparison = cmp.compare(a, b)
    assert len(comparison.groups) > 5
    for group in comparison.groups:
        assert group.verdict == cmp.NO_DIFFERENCE
        for d in group.differences:
            if d.n:
                assert (d.mean, d.low, d.high) == (0.0, 0.0, 0.0), (group.group, d)


def test_compare_refuses_unpaired_replications() -> None:
    """Replications from different seeds are not paired: compare says so instead of guessing."""
    spec = RunSpec(str(REFERENCE), {"days": 0.02, "start": "2026-03-02T09:00:00+03:00"})
    with pytest.raises(ValueError, match="same seeds"):
        cmp.compare(run_replications(spec, 2, 1, jobs=1), run_replications(spec, 2, 2, jobs=1))


def test_five_percent_more_agents_raise_sl_with_a_ci_that_excludes_zero(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The reference Monday against itself with 5% more agents: the paired CI of the center's
    SL difference lies above zero, from the same seeds on both sides."""
    code = main(["sim", "compare", str(REFERENCE), "--scale-agents", "1.05", "-r", "10",
                 "-j", "2", "--out", str(tmp_path)])
    captured = capsys.readouterr()
    out = captured.out
    assert code == 0
    assert "Verdict for the center: B is better" in out
    # Not a terminal: how far the 20 replications have got, as plain lines on stderr.
    progress = [s for s in captured.err.splitlines() if s.startswith("simulating A and B: ")]
    assert progress and progress[-1].startswith("simulating A and B: 100% (20.0 of 20)")
    doc = json.loads((tmp_path / "compare.json").read_text())
    center = doc["groups"][0]
    assert center["dim"] == "center"
    sl = center["differences"]["sl_offered"]
    assert sl["low"] > 0 and sl["significant"] and sl["n"] == 10
    assert len(doc["seeds"]) == 10 and doc["verdict"] == cmp.B_BETTER


def _timelines(spec: RunSpec, seed: int, replications: int) -> list[dict[str, list[StaffAction]]]:
    """Each replication's staffing timeline of ``spec``, per agent, as a run builds it."""
    scenario = load_run_scenario(spec)
    s = scenario.spec
    out = []
    for seed_seq in replication_seeds(seed, replications):
        timeline = build_timeline(scenario.center.config, scenario.center.agents, s.staffing,
                                  s.start, s.days * 86400.0 + DRAIN_S,
                                  replication_streams(seed_seq)[1])
        per_agent: dict[str, list[StaffAction]] = {a.id: [] for a in scenario.center.agents}
        for act in timeline:
            per_agent[act.agent].append(act)
        out.append(per_agent)
    return out


def test_five_percent_more_agents_leave_the_common_agents_shifts_and_absences() -> None:
    """With 5% more agents, every agent of A keeps its id and, replication by replication, the
    very same logins, breaks and absence days in B; only B's added agents are new."""
    a = _timelines(RunSpec(str(REFERENCE), {}), 1, 4)
    b = _timelines(RunSpec(str(REFERENCE), {}, agent_scale=1.05), 1, 4)
    for rep_a, rep_b in zip(a, b, strict=True):
        assert set(rep_a) < set(rep_b)
        for agent_id, actions in rep_a.items():
            assert rep_b[agent_id] == actions, agent_id
    assert len(b[0]) - len(a[0]) == 13
    # Shifts are fixed, so what differs between replications is who is absent: absences were
    # drawn, and drawn anew for each replication.
    assert any(a[0][agent_id] != a[1][agent_id] for agent_id in a[0])


@pytest.mark.parametrize("factor", [1.05, 1.5, 3.0])
def test_grown_groups_keep_their_agents_and_their_share_of_newcomers(factor: float) -> None:
    """Scaled up, every agent of A is the same agent in B (languages, newcomer, levels), and B
    has per group as many newcomers, and per language as many agents, as its scaled config."""
    a = load_run_scenario(RunSpec(str(REFERENCE), {})).center
    b = load_run_scenario(RunSpec(str(REFERENCE), {}, agent_scale=factor)).center
    scaled = {p.id: p for p in expand_roster(b.config)}
    assert [p.id for p in b.agents] == list(scaled)
    mine = {p.id: p for p in b.agents}
    for p in a.agents:
        assert mine[p.id] == dataclasses.replace(p, extension=mine[p.id].extension,
                                                 endpoint=mine[p.id].endpoint), p.id
    assert Counter(p.group for p in b.agents if p.newcomer) == Counter(
        p.group for p in scaled.values() if p.newcomer)
    assert Counter(p.languages for p in b.agents) == Counter(
        p.languages for p in scaled.values())
    assert sum(p.newcomer for p in b.agents) > sum(p.newcomer for p in a.agents)


def test_compare_bad_input_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """A missing B file and a non-positive agent factor are each reported, exit 2."""
    code = main(["sim", "compare", str(REFERENCE), "no-such.yaml", "--scale-agents", "0"])
    err = capsys.readouterr().err
    assert code == 2
    assert "no-such.yaml" in err and "--scale-agents" in err
