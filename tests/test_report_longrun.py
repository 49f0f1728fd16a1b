"""The report of a run longer than a day: weekly and daily roll-ups computed from the
per-interval tables (sums of calls, not averages of interval rates), partial weeks, the day x
time-of-day heatmaps, and a one-day run's report left as it was."""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from reportkit import ZONE, long_run

from sim import kpi, plots, report, rollup
from sim.records import RunResult


@pytest.fixture(scope="module")
def runs() -> list[RunResult]:
    """Two replications of twelve days from Thursday 5 March 2026, midnight in Moscow."""
    return [long_run(12.0, seed=seed) for seed in (21, 22)]


@pytest.fixture(scope="module")
def summary(runs: list[RunResult]) -> kpi.Summary:
    """Their summary in Moscow time."""
    return kpi.summarise(runs, timezone=ZONE)


def local_starts(summary: kpi.Summary) -> list[datetime]:
    """Each interval's start in the summary's zone, computed here independently."""
    start = datetime.fromisoformat(summary.start_iso)
    zone = ZoneInfo(summary.timezone)
    return [(start + timedelta(seconds=float(s))).astimezone(zone)
            for s in summary.intervals[kpi.ALL].start_s]


def test_weekly_sl_is_summed_calls_over_summed_offered_from_the_interval_tables(
        summary: kpi.Summary) -> None:
    """Each week's SL, answer rate, abandon rate, ASA and counts, for the center and every
    queue and language, equal sums over that ISO week's intervals of the per-interval tables;
    the center's SL is not the mean of its interval SLs."""
    weeks = rollup.calendar_rollups(summary)["weekly"]
    iso = [t.isocalendar() for t in local_starts(summary)]
    labels = np.array([f"{y}-W{w:02d}" for y, w, _d in iso])
    checked = 0
    for r in weeks:
        dim = kpi.ALL if r.dim == "center" else r.dim
        table = summary.intervals[dim]
        g = table.groups.index(r.group)
        mask = labels == r.period.label
        mean = {k: table.mean[k][g][mask] for k in ("offered", "answered", "answered_within",
                                                    "abandoned", "asa_s")}
        offered = mean["offered"].sum()
        assert r.values["offered"] == pytest.approx(offered)
        assert r.values["answered"] == pytest.approx(mean["answered"].sum())
        assert r.values["sl_offered"] == pytest.approx(mean["answered_within"].sum() / offered)
        assert r.values["answer_rate"] == pytest.approx(mean["answered"].sum() / offered)
        assert r.values["abandon_rate"] == pytest.approx(mean["abandoned"].sum() / offered)
        waited = np.nansum(mean["asa_s"] * mean["answered"])
        assert r.values["asa_s"] == pytest.approx(waited / mean["answered"].sum())
        if r.dim == "center":
            interval_sl = table.mean["sl_offered"][g][mask]
            assert abs(r.values["sl_offered"] - np.nanmean(interval_sl)) > 1e-3
        checked += 1
    groups = 1 + len(summary.groups["queue"]) + len(summary.groups["language"])
    assert checked == 3 * groups  # three ISO weeks: W10, W11, W12


def test_partial_weeks_and_days_are_labelled(summary: kpi.Summary) -> None:
    """Twelve days from Thursday 5 March cover W10 from Thursday (partial), all of W11 and
    Monday 16 March of W12 (partial); each of the twelve whole days is a full day."""
    weeks = [r for r in rollup.calendar_rollups(summary)["weekly"] if r.dim == "center"]
    assert [(w.period.label, w.period.first, w.period.last, w.period.partial) for w in weeks] \
        == [("2026-W10", date(2026, 3, 5), date(2026, 3, 8), True),
            ("2026-W11", date(2026, 3, 9), date(2026, 3, 15), False),
            ("2026-W12", date(2026, 3, 16), date(2026, 3, 16), True)]
    days = [r for r in rollup.calendar_rollups(summary)["daily"] if r.dim == "center"]
    assert len(days) == 12 and not any(d.period.partial for d in days)
    assert days[0].period.label == "2026-03-05" and days[-1].period.label == "2026-03-16"


def test_a_run_starting_mid_day_has_partial_first_and_last_days() -> None:
    """Two days from 06:00 local time touch three dates: the first and last are partial."""
    run = long_run(2.0, start_iso="2026-03-05T06:00:00+03:00")
    days = [r for r in rollup.calendar_rollups(kpi.summarise([run], timezone=ZONE))["daily"]
            if r.dim == "center"]
    assert [(d.period.label, d.period.partial) for d in days] == [
        ("2026-03-05", True), ("2026-03-06", False), ("2026-03-07", True)]


def test_weekly_verdicts_follow_the_targets_and_the_volume_floor() -> None:
    """A week is MET when its SL and answer rate reach their targets, NOT MET otherwise, and
    gets no verdict under the summary's least offered calls; both MET and NOT MET occur."""
    summary = kpi.summarise([long_run(14.0, seed=5, calls_per_day=400.0)], timezone=ZONE)
    weeks = rollup.calendar_rollups(summary)["weekly"]
    seen = set()
    for r in weeks:
        v = r.values
        if not v["offered"] >= summary.min_offered:
            expected = rollup.TOO_FEW
        elif v["sl_offered"] >= r.sl_target and v["answer_rate"] >= summary.answer_rate_target:
            expected = kpi.MET
        else:
            expected = kpi.NOT_MET
        assert r.status == expected, r
        seen.add(r.status)
    assert seen == {kpi.MET, kpi.NOT_MET, rollup.TOO_FEW}


def test_weekly_and_daily_reach_the_csv_and_summary_json(
        tmp_path: Path, summary: kpi.Summary) -> None:
    """weekly.csv, daily.csv and summary.json's ``weekly`` and ``daily`` carry the roll-ups,
    one row per period and group, with the partial flag and the verdict."""
    prov = report.Provenance("run-9", "scen/long.yaml", "long", "12 day(s)", seed=21,
                             replications=2, version="0.1.0", build="pure")
    report.write_csv(tmp_path, summary, prov)
    report.write_json(tmp_path / "summary.json", summary, prov)
    weeks = rollup.calendar_rollups(summary)["weekly"]
    with (tmp_path / "weekly.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(weeks)
    for row, r in zip(rows, weeks, strict=True):
        assert (row["period"], row["group"], row["verdict"]) == (r.period.label, r.group,
                                                                r.status)
        assert float(row["sl_offered"]) == r.values["sl_offered"]
        assert row["partial"] == ("partial" if r.period.partial else "")
        assert (row["run_id"], row["replications"]) == ("run-9", "2")
    with (tmp_path / "daily.csv").open(newline="", encoding="utf-8") as fh:
        assert sum(1 for _ in csv.DictReader(fh)) == len(rollup.calendar_rollups(summary)["daily"])
    doc = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    assert doc == report.summary_to_dict(summary, prov)
    assert doc["weekly"][0] == {**doc["weekly"][0], "period": "2026-W10", "partial": True,
                                "dim": "center", "group": "all"}
    assert doc["weekly"][1]["sl_offered"] == pytest.approx(weeks[1].values["sl_offered"])


def test_one_day_runs_keep_the_report_they_had(tmp_path: Path) -> None:
    """A run of exactly one day gets no heatmaps by day, no weekly or daily tables, files or
    JSON entries, and its plots stay 'Over the day'; a run of two days gets all of them."""
    for days, multi in ((1.0, False), (2.0, True)):
        runs = [long_run(days, seed=3)]
        summary = kpi.summarise(runs, timezone=ZONE)
        out = tmp_path / f"{days:g}"
        names = {p.name for p in report.write_csv(out, summary)}
        assert ({"weekly.csv", "daily.csv"} <= names) is multi
        assert ("weekly" in report.summary_to_dict(summary)) is multi
        report.write_html(out / "report.html", runs, summary)
        text = (out / "report.html").read_text(encoding="utf-8")
        keys = re.findall(r"<figure id=\"plot-(\w+)\">", text)
        assert ({"day_sl", "day_volume"} <= set(keys)) is multi
        assert ('id="weekly"' in text) is multi
        assert ("<h2>Over the day (clock time, Europe/Moscow)</h2>" in text) is not multi


def test_heatmap_cells_without_calls_are_blank_and_sum_to_the_offered_calls(
        summary: kpi.Summary) -> None:
    """The day grid holds every offered call once; night cells (no calls) have no SL, not 0%;
    a noon cell's SL is its answered-within over offered."""
    cal = rollup.calendar(summary)
    assert len(cal.dates) == 12 and cal.n_columns == 48
    _groups, offered, within = rollup.day_grid(summary, cal)
    assert offered.sum() == pytest.approx(np.nansum(summary.intervals[kpi.ALL].mean["offered"]))
    sl = kpi.ratio(within[0], offered[0])
    assert np.isnan(sl[:, 6]).all()  # 03:00-03:30: closed
    assert np.isfinite(sl[:, 24]).all()  # 12:00-12:30: open every day
    assert sl[0, 24] == pytest.approx(within[0, 0, 24] / offered[0, 0, 24])


def test_clock_changes_neither_lose_nor_double_calls() -> None:
    """In Berlin the night of 29 March 2026 skips 02:00-03:00 (those cells get no interval) and
    the night of 25 October repeats it (two intervals share each cell); every offered call
    lands in exactly one cell."""
    for start, day, shared in (("2026-03-28T00:00:00+01:00", date(2026, 3, 29), 0),
                               ("2026-10-24T00:00:00+02:00", date(2026, 10, 25), 2)):
        summary = kpi.summarise([long_run(3.0, start_iso=start, zone="Europe/Berlin")],
                                timezone="Europe/Berlin")
        cal = rollup.calendar(summary)
        row = cal.dates.index(day)
        for column in (4, 5):  # 02:00 and 02:30
            assert int(np.sum((cal.row == row) & (cal.column == column))) == shared
        _groups, offered, _within = rollup.day_grid(summary, cal)
        assert offered.sum() == pytest.approx(summary.intervals[kpi.ALL].mean["offered"].sum())


def test_sl_colours_are_fixed_to_0_100_with_the_target_a_boundary() -> None:
    """SL colours run from 0 to 100% whatever the data, with the target a boundary: reds
    below it, blues at or above it."""
    cmap, norm = plots.sl_scale(0.85)
    assert norm.boundaries[0] == 0 and norm.boundaries[-1] == 100
    assert 85 in list(norm.boundaries)
    below, at = cmap(norm(84.9)), cmap(norm(85.0))
    assert below[0] > below[2] and at[2] > at[0]  # red below, blue at the target
    assert cmap(norm(0.0)) != cmap(norm(84.9)) and cmap(norm(100.0)) != cmap(norm(85.0))
    assert list(plots.sl_scale(1.0)[1].boundaries)[-1] == 100


def test_day_heatmaps_have_titles_clock_time_and_the_target_in_the_colour_bar(
        summary: kpi.Summary) -> None:
    """The heatmaps' SVG carries its title, HH:MM ticks of the day, the zone in the axis label,
    day labels down the side and the target on the SL colour bar; the worst groups' panels
    name each group with its SL and target."""
    found = {p.key: p for p in plots.day_plots(summary, ZONE)}
    assert set(found) == {"day_sl", "day_volume", "day_sl_groups"}
    for p in found.values():
        assert p.title.replace("&", "&amp;") in p.svg or p.title in p.svg, p.key
        assert "local time of day (Europe/Moscow)" in p.svg
        assert {"00:00", "12:00"} <= set(re.findall(r">(\d\d:\d\d)<", p.svg.replace("\n", "")))
    assert "target 85" in found["day_sl"].svg and "Thu 05 Mar" in found["day_sl"].svg
    worst = plots.worst_groups(summary)
    assert len(worst) == plots.WORST_GROUPS
    volume = {(g.dim, g.group): g.volume for g in summary.group_verdicts}
    short = [volume[dim, group] * (target - sl) for dim, group, sl, target in worst]
    assert short == sorted(short, reverse=True) and short[-1] > 0
    missing = [volume[g.dim, g.group] * (g.verdicts[0].target - g.verdicts[0].value.mean)
               for g in summary.group_verdicts if g.dim in ("queue", "language")
               and g.status != kpi.MET and (g.dim, g.group, g.verdicts[0].value.mean,
                                            g.verdicts[0].target) not in worst]
    assert all(m <= short[-1] for m in missing)
    for dim, group, sl, target in worst:
        assert f"{dim} {group}: SL {100 * sl:.1f}% (target {100 * target:g}%)" in \
            found["day_sl_groups"].svg
    assert plots.day_plots(kpi.summarise([long_run(1.0)], timezone=ZONE), ZONE) == []


def test_no_time_zone_falls_back_to_the_start_offset() -> None:
    """Without an IANA zone the calendar uses the run start's UTC offset (+03:00), and a start
    without an offset is read as UTC."""
    summary = kpi.summarise([long_run(2.0)])
    cal = rollup.calendar(summary)
    assert cal.dates == (date(2026, 3, 5), date(2026, 3, 6))
    assert int(cal.column[0]) == 0 and math.isclose(rollup.run_seconds(summary), 2 * 86_400)
    naive = rollup.calendar(replace(summary, start_iso="2026-03-05T06:00:00"))
    assert naive.dates == (date(2026, 3, 5), date(2026, 3, 6), date(2026, 3, 7))
    assert int(naive.column[0]) == 12 and naive.start.utcoffset() == timedelta(0)


def test_the_clock_is_named_alike_everywhere(tmp_path: Path) -> None:
    """Without an IANA zone the terminal, the page and the plots name the clock by the start's
    offset the same way (UTC+03:00); a naive start reads UTC; a zone asked for wins."""
    runs = [long_run(2.0)]
    summary = kpi.summarise(runs)
    assert rollup.zone_label(summary) == "UTC+03:00"
    assert rollup.zone_label(replace(summary, start_iso="2026-03-05T06:00:00")) == "UTC"
    assert rollup.zone_label(replace(summary, start_iso="2026-03-05T06:00:00-04:30")) == (
        "UTC-04:30")
    assert rollup.zone_label(summary, ZONE) == ZONE
    assert rollup.zone_label(kpi.summarise(runs, timezone=ZONE)) == ZONE
    report.write_html(tmp_path / "report.html", runs, summary)
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "clock time, UTC+03:00)" in page
    assert ("clock times", "UTC+03:00") in report.provenance_rows(None, summary)
    assert all("UTC+03:00" in p.title or "UTC+03:00" in p.svg
               for p in plots.day_plots(summary, ""))


def test_the_html_tables_show_each_week_and_each_groups_misses(
        tmp_path: Path, runs: list[RunResult], summary: kpi.Summary) -> None:
    """The week-by-week table has a row per ISO week with its SL and verdict, partial weeks
    marked; the table by group counts each queue's and language's judged and missed weeks."""
    report.write_html(tmp_path / "report.html", runs, summary)
    text = (tmp_path / "report.html").read_text(encoding="utf-8")
    weeks = rollup.calendar_rollups(summary, runs)["weekly"]
    center = re.search(r'<table id="weekly-center">(.*?)</table>', text, re.DOTALL)
    assert center is not None
    rows = re.findall(r"<tr[^>]*><td>([^<]+)</td><td>[^<]+</td><td>[^<]+</td><td>[^<]+</td>"
                      r"<td>([^<]+)</td>.*?<td>([^<]+)</td></tr>", center.group(1))
    assert rows == [(w.period.label + (" (partial)" if w.period.partial else ""),
                     report.fmt("sl_offered", w.values["sl_offered"]), w.status)
                    for w in weeks if w.dim == "center"]
    groups = re.search(r'<table id="weekly-groups">(.*?)</table>', text, re.DOTALL)
    assert groups is not None
    for dim, group in (("queue", "tech"), ("language", "zh")):
        mine = [w for w in weeks if (w.dim, w.group) == (dim, group)]
        judged = sum(w.status != rollup.TOO_FEW for w in mine)
        missed = sum(w.status == kpi.NOT_MET for w in mine)
        row = re.search(rf"<tr><td>{dim} {group}</td><td>(\d+)</td><td>(\d+)", groups.group(1))
        assert row is not None and (int(row.group(1)), int(row.group(2))) == (judged, missed)
