"""Verdicts where the target applies: the center and each group with enough calls, MET / NOT MET /
INCONCLUSIVE from the 95% CI, and `acd sim run --check` exiting 1 on any miss."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_kpi import Call, make_result, volume

from acd.cli import main
from sim import kpi, report
from sim.kpi import INCONCLUSIVE, MET, NOT_MET, Estimate
from sim.records import ANSWERED, RunResult

ROOT = Path(__file__).resolve().parents[1]
GENEROUS = ROOT / "tests" / "data" / "scenarios" / "generous.yaml"
REFERENCE = ROOT / "config" / "scenarios" / "reference.yaml"


def test_judge_reads_the_whole_confidence_interval() -> None:
    """MET needs the CI's lower end at the target, NOT MET its upper end below; else
    INCONCLUSIVE."""
    assert kpi.judge(Estimate(0.90, 0.01, 0.05, 5), 0.85) == MET
    assert kpi.judge(Estimate(0.80, 0.01, 0.049, 5), 0.85) == NOT_MET
    assert kpi.judge(Estimate(0.84, 0.01, 0.02, 5), 0.85) == INCONCLUSIVE
    assert kpi.judge(Estimate(0.86, 0.01, 0.02, 5), 0.85) == INCONCLUSIVE
    assert kpi.judge(Estimate(0.85, 0.0, 0.0, 5), 0.85) == MET
    # One replication has no CI: the mean decides; an undefined value never meets a target.
    assert kpi.judge(Estimate(0.86, float("nan"), float("nan"), 1), 0.85) == MET
    assert kpi.judge(Estimate(float("nan"), float("nan"), float("nan"), 0), 0.85) == NOT_MET


def two_languages(seed: int, ru_within: int, uk_within: int) -> RunResult:
    """100 Russian callers (``ru_within`` answered within T) and 40 Ukrainian (``uk_within``)."""
    calls = [Call(5.0 if i < ru_within else 60.0, ANSWERED, language="ru") for i in range(100)]
    calls += [Call(5.0 if i < uk_within else 60.0, ANSWERED, language="uk") for i in range(40)]
    return make_result(calls, seed=seed)


def test_an_overall_met_does_not_hide_a_language_that_misses() -> None:
    """Center SL 87-88% meets 85%, but Ukrainian callers at 55% make the whole verdict NOT MET."""
    runs = [two_languages(s, 100, 22 + s % 2) for s in range(4)]
    summary = kpi.summarise(runs, by="language", min_offered=30)
    assert summary.verdicts[0].status == MET
    assert not summary.meets_target
    misses = {(g.dim, g.group): g.status for g in summary.misses}
    assert misses == {("language", "uk"): NOT_MET}
    line = report.overall_verdict_line(summary)
    assert line.startswith("Verdict: NOT MET") and "language uk" in line


def test_groups_below_the_minimum_volume_get_no_verdict() -> None:
    """With a minimum of 50 calls the 40 Ukrainian callers are unjudged, and all else is MET."""
    runs = [two_languages(s, 100, 22 + s % 2) for s in range(4)]
    summary = kpi.summarise(runs, by="language", min_offered=50)
    assert summary.meets_target
    assert summary.unjudged == (("language", "uk", 40.0),)
    assert [g.group for g in summary.group_verdicts if g.dim == "language"] == ["ru"]


def test_a_straddling_group_is_inconclusive_and_fails_the_check() -> None:
    """Runs at 80..88% against 85% straddle the target: INCONCLUSIVE, and not meets_target."""
    runs = [make_result(volume(0.0, w, 50 - w), seed=w) for w in (40, 41, 42, 43, 44)]
    summary = kpi.summarise(runs, by=None)
    assert summary.verdicts[0].status == INCONCLUSIVE
    assert not summary.meets_target
    assert report.verdict_lines(summary)[0].endswith(": INCONCLUSIVE")


def test_site_is_judged_on_answered_calls_only() -> None:
    """By answering site only sl_answered is defined, so a site verdict has that one KPI."""
    runs = [make_result([Call(5.0, ANSWERED, site="moscow")] * 40, seed=s) for s in range(3)]
    summary = kpi.summarise(runs, by="site")
    site = next(g for g in summary.group_verdicts if g.dim == "site")
    assert [v.kpi for v in site.verdicts] == ["sl_answered"] and site.status == MET


def test_reference_check_names_the_languages_that_miss(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """On the reference Monday the center meets 85/20, yet --check exits 1 naming hy, ka, tg, kk."""
    code = main(["sim", "run", "-r", "3", "-j", "1", "-q", "--check", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 1
    assert next(line for line in out.splitlines() if line.startswith("SL ")).endswith(": MET")
    verdict = next(line for line in out.splitlines() if line.startswith("Verdict: "))
    assert verdict.startswith("Verdict: NOT MET")
    for language in ("hy", "ka", "tg", "kk"):
        assert f"language {language} " in out
    doc = json.loads(next(tmp_path.glob("**/summary.json")).read_text())
    missed = {g["group"] for g in doc["group_verdicts"]
              if g["dim"] == "language" and g["status"] == NOT_MET}
    assert {"hy", "ka", "tg"} <= missed


def test_generous_staffing_meets_every_group_and_exits_0(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Five times the language-mixed agents: every judged group is MET and --check exits 0."""
    code = main(["sim", "run", str(GENEROUS), "-r", "5", "-j", "1", "-q", "--check",
                 "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Verdict: MET for the center and all" in out
    doc = json.loads(next(tmp_path.glob("**/summary.json")).read_text())
    judged = {(g["dim"], g["group"]) for g in doc["group_verdicts"]}
    assert {("language", lang) for lang in ("hy", "ka", "tg", "kk", "lv")} <= judged


def test_a_target_inside_the_ci_prints_inconclusive(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A center SL target set to the SL a run achieved lies inside its CI: INCONCLUSIVE, exit 1."""
    args = ["--days", "0.25", "--start", "2026-03-02T09:00:00+03:00", "-r", "3", "-j", "1", "-q"]
    assert main(["sim", "run", str(REFERENCE), *args, "--out", str(tmp_path / "a")]) == 0
    doc = json.loads(next((tmp_path / "a").glob("**/summary.json")).read_text())
    sl = doc["overall"]["sl_offered"]
    assert sl["half_width"] > 0.0005
    config = ROOT / "config"
    scenario = REFERENCE.read_text(encoding="utf-8").replace(
        "center: ../center.yaml", f"center: {config / 'center.yaml'}"
    ).replace("traffic: ../traffic/reference.yaml",
              f"traffic: {config / 'traffic' / 'reference.yaml'}")
    scenario += ("center_overrides:\n  center:\n    service_level: "
                 f"{{threshold_s: 20, target: {round(sl['mean'], 4)}}}\n")
    straddle = tmp_path / "straddle.yaml"
    straddle.write_text(scenario, encoding="utf-8")
    capsys.readouterr()
    code = main(["sim", "run", str(straddle), *args, "--check", "--out", str(tmp_path / "b")])
    out = capsys.readouterr().out
    assert code == 1
    sl_line = next(line for line in out.splitlines() if line.startswith("SL "))
    assert sl_line.endswith(": INCONCLUSIVE")
    assert "INCONCLUSIVE" in next(line for line in out.splitlines() if line.startswith("│ center"))
