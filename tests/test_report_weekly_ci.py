"""Weeks and days judged as the run is: each replication's SL and answer rate over the period,
a 95% Student t CI across replications and the run's verdict vocabulary; the terminal's
week-by-week lines; and runs longer than a week drawn a point per day."""

from __future__ import annotations

import csv
import hashlib
import io
import math
import re
from pathlib import Path

import numpy as np
import pytest
from reportkit import ZONE, long_run
from rich.console import Console
from scipy.stats import t as student_t

from sim import kpi, plots, report, rollup
from sim.records import BUSY, READY, RunResult


@pytest.fixture(scope="module")
def runs() -> list[RunResult]:
    """Three replications of twelve days from Thursday 5 March 2026 in Moscow."""
    return [long_run(12.0, seed=seed) for seed in (31, 32, 33)]


@pytest.fixture(scope="module")
def summary(runs: list[RunResult]) -> kpi.Summary:
    """Their summary in Moscow time."""
    return kpi.summarise(runs, timezone=ZONE)


def week_labels(summary: kpi.Summary) -> np.ndarray:
    """Each interval's ISO week in Moscow, computed here from the start time."""
    cal = rollup.calendar(summary)
    return np.array([f"{d.isocalendar()[0]}-W{d.isocalendar()[1]:02d}"
                     for d in (cal.dates[r] for r in cal.row)])


def expected_status(means: dict[str, float], halves: dict[str, float], targets: dict[str, float]
                    ) -> str:
    """The run's rule written out: NOT MET if a CI lies below its target, else INCONCLUSIVE
    if one straddles it, else MET."""
    states = set()
    for k, target in targets.items():
        if means[k] + halves[k] < target:
            states.add(kpi.NOT_MET)
        elif means[k] - halves[k] < target:
            states.add(kpi.INCONCLUSIVE)
    return kpi.NOT_MET if kpi.NOT_MET in states else kpi.INCONCLUSIVE if states else kpi.MET


def test_weekly_ci_is_a_student_t_interval_over_each_replications_own_week(
        runs: list[RunResult], summary: kpi.Summary) -> None:
    """For the center and every language, each week's SL and answer rate estimate is the mean
    of the replications' own week ratios with a t(0.975, n-1) half-width, the CI is clipped to
    [0, 100%], and the verdict follows the CI as the run's verdict does."""
    weeks = rollup.calendar_rollups(summary, runs)["weekly"]
    labels = week_labels(summary)
    seen = set()
    for r in weeks:
        if r.dim not in ("center", "language"):
            continue
        dim = kpi.ALL if r.dim == "center" else r.dim
        mask = labels == r.period.label
        per_rep: dict[str, list[float]] = {"sl_offered": [], "answer_rate": []}
        for run in runs:
            tallies = run.tallies
            assert tallies is not None
            g = tallies.groups[dim].index(r.group)
            field = {f: tallies.values[dim][tallies.fields.index(f), g][mask].sum()
                     for f in ("offered", "answered", "answered_within")}
            if field["offered"] > 0:
                per_rep["sl_offered"].append(field["answered_within"] / field["offered"])
                per_rep["answer_rate"].append(field["answered"] / field["offered"])
        means, halves = {}, {}
        for k, values in per_rep.items():
            est = r.estimates[k]
            assert est.n == len(values)
            if not values:
                continue
            means[k] = float(np.mean(values))
            halves[k] = (float(student_t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1)
                               / math.sqrt(len(values))) if len(values) > 1 else math.nan)
            assert est.mean == pytest.approx(means[k])
            assert est.half_width == pytest.approx(halves[k], nan_ok=True)
            low, high = r.ci(k)
            if math.isfinite(halves[k]):
                assert (low, high) == pytest.approx((max(means[k] - halves[k], 0.0),
                                                     min(means[k] + halves[k], 1.0)))
        if r.status == rollup.TOO_FEW:
            assert r.values["offered"] < summary.min_offered
        else:
            assert r.status == expected_status(
                means, {k: np.nan_to_num(v) for k, v in halves.items()},
                {"sl_offered": r.sl_target, "answer_rate": summary.answer_rate_target}), r
        seen.add(r.status)
    assert {kpi.NOT_MET, kpi.INCONCLUSIVE} <= seen


def test_the_weekly_csv_and_json_carry_the_clipped_ci(
        tmp_path: Path, runs: list[RunResult], summary: kpi.Summary) -> None:
    """weekly.csv's and summary.json's CI columns are each week's clipped CI, and never leave
    [0, 1]; their verdicts are those of the CI."""
    report.write_csv(tmp_path, summary, results=runs)
    doc = report.summary_to_dict(summary, results=runs)
    weeks = rollup.calendar_rollups(summary, runs)["weekly"]
    with (tmp_path / "weekly.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(weeks) == len(doc["weekly"])
    for row, entry, r in zip(rows, doc["weekly"], weeks, strict=True):
        low, _high = r.ci("sl_offered")
        assert float(row["sl_offered_ci_low"]) == pytest.approx(low)
        assert entry["answer_rate_ci_high"] == pytest.approx(r.ci("answer_rate")[1])
        assert 0.0 <= float(row["sl_offered_ci_low"]) <= float(row["sl_offered_ci_high"]) <= 1.0
        assert row["verdict"] == entry["status"] == r.status


def test_every_output_writes_the_rollups_it_is_handed(
        tmp_path: Path, runs: list[RunResult], summary: kpi.Summary) -> None:
    """Handed a run's roll-ups, weekly.csv, daily.csv, summary.json and the terminal write
    them as they are (with CIs across replications no writer was given), byte for byte what
    the writers compute from the replications, and the report's weekly table shows them."""
    periods = rollup.calendar_rollups(summary, runs)
    report.write_csv(tmp_path / "given", summary, periods=periods)
    report.write_csv(tmp_path / "computed", summary, results=runs)
    for name in ("weekly.csv", "daily.csv"):
        given = (tmp_path / "given" / name).read_bytes()
        assert given == (tmp_path / "computed" / name).read_bytes()
        assert b",MET," in given or b",NOT MET," in given
    report.write_json(tmp_path / "given.json", summary, periods=periods)
    report.write_json(tmp_path / "computed.json", summary, results=runs)
    assert (tmp_path / "given.json").read_bytes() == (tmp_path / "computed.json").read_bytes()
    assert report.summary_to_dict(summary, periods=periods) == report.summary_to_dict(
        summary, results=runs)
    given_text, computed_text = io.StringIO(), io.StringIO()
    report.print_summary(summary, Console(file=given_text, width=200), periods=periods)
    report.print_summary(summary, Console(file=computed_text, width=200), results=runs)
    assert "Weeks not MET" in given_text.getvalue()
    assert given_text.getvalue() == computed_text.getvalue()
    # Roll-ups of one replication: the report's weekly table has no CI, as they have none.
    one = rollup.calendar_rollups(summary, runs[:1])
    report.write_html(tmp_path / "r.html", runs, summary, periods=one)
    text = (tmp_path / "r.html").read_text(encoding="utf-8")
    table = text[text.index('<table id="weekly-center">'):]
    table = table[:table.index("</table>")]
    rows = [re.findall(r"<td>(.*?)</td>", row)
            for row in re.findall(r"<tr class=\"[^\"]*\">(.*?)</tr>", table)]
    assert len(rows) == sum(w.dim == "center" for w in one["weekly"]) >= 2
    assert all(cells[5] == "-" and cells[7] == "-" for cells in rows)
    assert any(row["cells"][5] != "-" for row in report._weekly_rows(periods["weekly"]))


def test_one_replication_has_no_weekly_ci_and_its_value_decides() -> None:
    """With one replication a week has no CI (empty CSV cells, ``-`` in the report's table)
    and its verdict is MET or NOT MET by the value alone, never INCONCLUSIVE."""
    one = [long_run(12.0, seed=5, calls_per_day=400.0)]
    summary = kpi.summarise(one, timezone=ZONE)
    weeks = rollup.calendar_rollups(summary, one)["weekly"]
    for r in weeks:
        assert all(math.isnan(v) for v in r.ci("sl_offered"))
        if r.status != rollup.TOO_FEW:
            met = (r.values["sl_offered"] >= r.sl_target
                   and r.values["answer_rate"] >= summary.answer_rate_target)
            assert r.status == (kpi.MET if met else kpi.NOT_MET)
    rows = report._weekly_rows(weeks)
    assert all(row["cells"][5] == "-" and row["cells"][7] == "-" for row in rows)


def test_the_terminal_lists_the_groups_with_weeks_not_met_and_points_to_weekly_csv(
        runs: list[RunResult], summary: kpi.Summary) -> None:
    """After the verdicts, a multi-day run prints one line per group with weeks NOT MET or
    INCONCLUSIVE (center first, counts as in the roll-ups, its worst week with CIs), at most
    five groups and a pointer to weekly.csv; a one-day run prints none of it."""
    out = io.StringIO()
    report.print_summary(summary, Console(file=out, width=200), results=runs)
    text = out.getvalue()
    assert text.index("Weeks not MET") > text.index("Verdicts (groups")
    lines = text[text.index("Weeks not MET"):].splitlines()
    weeks = rollup.calendar_rollups(summary, runs)["weekly"]
    center = [w for w in weeks if w.dim == "center"]
    not_met = sum(w.status == kpi.NOT_MET for w in center)
    missed = [w for w in center if w.status in (kpi.NOT_MET, kpi.INCONCLUSIVE)]
    assert lines[1].startswith("  center: ") and f"{not_met} NOT MET" in lines[1]
    assert f"of {len(center)} weeks" in lines[1]
    whole = [w for w in missed if not w.period.partial] or missed
    worst = min(whole, key=lambda w: w.estimates["sl_offered"].mean - w.sl_target)
    assert f"worst {worst.period.label}" in lines[1]
    assert report.fmt_ci("sl_offered", worst.estimates["sl_offered"]) in lines[1]
    groups = {(w.dim, w.group) for w in weeks if w.status in (kpi.NOT_MET, kpi.INCONCLUSIVE)}
    assert len([ln for ln in lines if ln.startswith("  ") and ":" in ln]) == min(
        len(groups), report.WEEK_GROUPS)
    assert "weekly.csv" in lines[0] and f"and {len(groups) - 5} more group(s)" in lines[6]
    short = io.StringIO()
    day = [long_run(1.0, seed=3)]
    report.print_summary(kpi.summarise(day, timezone=ZONE), Console(file=short, width=200),
                         results=day)
    assert "Week" not in short.getvalue()


#: sha256 of a one-day report (two replications, seeds 3 and 4) as the code before daily
#: plots wrote it, SVG dates removed; it changes with matplotlib's SVG output too.
ONE_DAY_HTML = "4079b7d9954ad94a4a396e3ac02f11e987c882ca4de1b908da26d952d4dcae53"


def test_a_one_day_report_is_byte_for_byte_what_it_was(tmp_path: Path) -> None:
    """A one-day run's report.html, apart from the SVGs' <dc:date>, is the very page the code
    wrote before the daily plots and the weekly CIs (same length and sha256)."""
    day = [long_run(1.0, seed=s) for s in (3, 4)]
    report.write_html(tmp_path / "r.html", day, kpi.summarise(day, timezone=ZONE))
    text = re.sub(r"<dc:date>[^<]*</dc:date>", "", (tmp_path / "r.html").read_text("utf-8"))
    assert len(text) == 210341
    assert hashlib.sha256(text.encode()).hexdigest() == ONE_DAY_HTML


def figure_keys(text: str) -> list[str]:
    """The ids of the report's figures, in page order."""
    return re.findall(r"<figure id=\"plot-(\w+)\">", text)


def test_a_run_longer_than_a_week_is_drawn_per_day_and_its_worst_week_per_interval(
        tmp_path: Path, runs: list[RunResult], summary: kpi.Summary) -> None:
    """Twelve days get daily SL, CAR, ASA, wait, volume and occupancy plots with local-date
    axes instead of the per-interval ones, and the worst whole week (lowest center SL, computed
    here) per interval; a seven-day run keeps the per-interval plots."""
    report.write_html(tmp_path / "r.html", runs, summary)
    text = (tmp_path / "r.html").read_text(encoding="utf-8")
    keys = figure_keys(text)
    assert keys == ["day_sl", "day_volume", "day_sl_groups", "daily_sl", "daily_sl_queue",
                    "daily_sl_language", "daily_car", "daily_asa", "daily_wait",
                    "daily_volume", "daily_occupancy", "worst_week_sl"]
    assert "local date (Europe/Moscow)" in text and "<h2>Per day (local dates" in text
    weeks = [w for w in rollup.calendar_rollups(summary, runs)["weekly"] if w.dim == "center"]
    worst = min((w for w in weeks if not w.period.partial), key=lambda w: w.values["sl_offered"])
    assert f"worst week, {worst.period.label}" in text
    week = [long_run(7.0, seed=s) for s in (1, 2)]
    report.write_html(tmp_path / "w.html", week, kpi.summarise(week, timezone=ZONE))
    assert figure_keys((tmp_path / "w.html").read_text(encoding="utf-8"))[3:] == [
        "sl", "sl_queue", "sl_language", "wait", "volume", "occupancy"]


def test_the_daily_lines_are_the_daily_rollups(runs: list[RunResult],
                                               summary: kpi.Summary) -> None:
    """The center's daily series has a point per local date at its noon, and its values are
    the daily roll-up's sums of calls over the day's intervals, computed here."""
    days = rollup.calendar_rollups(summary, runs)["daily"]
    x, rows = plots._day_series(days, "center", kpi.ALL)
    cal = rollup.calendar(summary)
    assert len(rows) == len(cal.dates) == 12
    assert np.diff(x) == pytest.approx(np.ones(11))
    offered = summary.intervals[kpi.ALL].mean["offered"][0]
    for d, r in enumerate(rows):
        assert r.values["offered"] == pytest.approx(offered[cal.row == d].sum())


def test_daily_occupancy_adds_up_each_dates_agent_seconds(runs: list[RunResult],
                                                          summary: kpi.Summary) -> None:
    """The per-date sums behind the occupancy plot are each local date's busy and ready
    seconds per site, added up here interval by interval."""
    cal = rollup.calendar(summary)
    seconds = runs[0].agent_time.seconds
    for category in (BUSY, READY):
        per_date = plots._per_date(seconds[:, :, category], cal)
        assert per_date.shape == (len(cal.dates), seconds.shape[1])
        for d in range(len(cal.dates)):
            want = seconds[cal.row == d, :, category].sum(axis=0)
            assert per_date[d] == pytest.approx(want)


def test_the_terminal_and_the_report_name_the_same_worst_week(
        runs: list[RunResult], summary: kpi.Summary) -> None:
    """The week the terminal calls the center's worst is the week the report draws interval by
    interval: both go by the replications' mean SL and prefer whole weeks."""
    weeks = rollup.calendar_rollups(summary, runs)["weekly"]
    line = next(ln for ln in report.weekly_miss_lines(weeks) if ln.startswith("  center: "))
    named = re.search(r"worst (\d{4}-W\d{2})", line)
    assert named is not None
    cal = rollup.calendar(summary)
    plot = plots.worst_week_sl_plot(summary, weeks, cal, plots.zone_of(summary, ZONE), ZONE)
    assert plot is not None and f"worst week, {named.group(1)} " in plot.title
    center = [w for w in weeks if w.dim == "center"]
    pooled = min((w for w in center if not w.period.partial),
                 key=lambda w: w.values["sl_offered"])
    chosen = rollup.worst_period(center)
    assert chosen is not None and chosen.period.label == named.group(1)
    # the mean of each replication's own SL decides, not the pooled SL
    assert rollup.judged_sl(chosen) == chosen.estimates["sl_offered"].mean
    assert rollup.judged_sl(chosen) - chosen.sl_target <= (
        pooled.estimates["sl_offered"].mean - pooled.sl_target)
