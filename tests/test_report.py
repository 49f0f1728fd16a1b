"""Reports of a summary: the terminal verdict, JSON round-trip, CSV shape, and the HTML file."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from test_kpi import LANGUAGES, QUEUES, SITES, Call, make_result, volume

from sim import kpi, plots, report
from sim.records import ABANDONED, ANSWERED, RunResult

INTERVALS = 4


def seeded_run(seed: int) -> RunResult:
    """Four 15-minute intervals of seeded traffic over two queues, two languages, two sites;
    the third interval is overloaded so that it misses the SL target."""
    rng = np.random.default_rng(seed)
    calls: list[Call] = []
    for i in range(INTERVALS):
        for _ in range(int(rng.integers(20, 30))):
            late = rng.random() < (0.6 if i == 2 else 0.05)
            wait = float(rng.uniform(25, 90) if late else rng.uniform(0, 15))
            outcome = ABANDONED if late and rng.random() < 0.3 else ANSWERED
            calls.append(Call(
                wait, outcome, queued=float(i * 900 + rng.uniform(0, 900)),
                queue=QUEUES[int(rng.integers(0, 2))], language=LANGUAGES[int(rng.integers(0, 2))],
                country="RU", site=SITES[int(rng.integers(0, 2))] if outcome == ANSWERED else None,
            ))
    secs = np.zeros((INTERVALS, len(SITES), 3))
    secs[:, :, 1] = rng.uniform(1000, 3000, size=(INTERVALS, len(SITES)))
    secs[:, :, 0] = 3600 - secs[:, :, 1]
    return make_result(calls, agent_seconds=secs, duration_s=INTERVALS * 900.0, seed=seed)


@pytest.fixture(scope="module")
def runs() -> list[RunResult]:
    """Three seeded replications."""
    return [seeded_run(seed) for seed in (11, 12, 13)]


@pytest.fixture(scope="module")
def summary(runs: list[RunResult]) -> kpi.Summary:
    """Their summary over all four dimensions."""
    return kpi.summarise(runs)


def test_verdict_line_has_value_half_width_target_and_status() -> None:
    """Five runs at 80..88% straddle 85%: 'SL 84.0% +- 3.9 (target 85% / 20 s): INCONCLUSIVE';
    five at 70..78% read NOT MET; a CAR of 100% in every run shows no CI."""
    runs = [make_result(volume(0.0, w, 50 - w), seed=w) for w in (40, 41, 42, 43, 44)]
    lines = report.verdict_lines(kpi.summarise(runs, by=None))
    assert lines[0] == "SL 84.0% +- 3.9 (target 85% / 20 s): INCONCLUSIVE"
    assert lines[1] == "CAR 100.0% (target 96%): MET"  # no spread: no CI printed
    runs = [make_result(volume(0.0, w, 50 - w), seed=w) for w in (35, 36, 37, 38, 39)]
    lines = report.verdict_lines(kpi.summarise(runs, by=None))
    assert lines[0] == "SL 74.0% +- 3.9 (target 85% / 20 s): NOT MET"


def test_terminal_summary_starts_with_the_verdict_and_lists_groups(
        summary: kpi.Summary) -> None:
    """The printed summary begins with the SL verdict, then CAR, and has a table per dimension."""
    console = Console(record=True, width=160)
    report.print_summary(summary, console)
    text = console.export_text()
    first, second = text.splitlines()[:2]
    assert first == report.verdict_lines(summary)[0] and first.startswith("SL ")
    assert second.startswith("CAR ")
    for title in ("By queue", "By language", "By country", "By site"):
        assert title in text
    assert re.search(r"Intervals missing SL 85%: \d+ of 4", text)


def test_missed_intervals_are_listed_worst_first(summary: kpi.Summary) -> None:
    """The overloaded third interval misses the target and is reported with its start time."""
    missed = report.missed_intervals(summary)
    assert missed and missed[0].interval == 2
    assert missed[0].label == "2024-03-04 00:30"
    assert [m.sl_offered for m in missed] == sorted(m.sl_offered for m in missed)
    assert all(m.sl_offered < summary.target for m in missed)


def test_json_round_trip_keeps_values_and_turns_nan_into_null(
        tmp_path: Path, summary: kpi.Summary) -> None:
    """The JSON file loads back to the same numbers; undefined values are null, not NaN."""
    path = tmp_path / "summary.json"
    report.write_json(path, summary)
    loaded = json.loads(path.read_text(encoding="utf-8"))
    assert loaded == report.summary_to_dict(summary)
    assert loaded["overall"]["sl_offered"]["mean"] == pytest.approx(
        summary.overall["sl_offered"].mean)
    assert loaded["verdicts"][0]["line"] == report.verdict_lines(summary)[0]
    # No calls in queue "orders": its SL is undefined and must serialise as null.
    assert loaded["groups"]["queue"]["orders"]["sl_offered"]["mean"] is None
    assert len(loaded["intervals"]["all"]["mean"]["sl_offered"][0]) == INTERVALS


def test_csv_files_have_headers_and_one_row_per_group_or_interval(
        tmp_path: Path, summary: kpi.Summary) -> None:
    """overall has one row, by_queue one per queue, intervals_by_site one per site x interval."""
    paths = report.write_csv(tmp_path / "csv", summary)
    names = {p.name for p in paths}
    assert names == {"overall.csv", "by_queue.csv", "by_language.csv", "by_country.csv",
                     "by_site.csv", "intervals.csv", "intervals_by_queue.csv",
                     "intervals_by_language.csv", "intervals_by_country.csv",
                     "intervals_by_site.csv"}

    def read(name: str) -> list[dict[str, str]]:
        with (tmp_path / "csv" / name).open(newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))

    overall = read("overall.csv")
    assert len(overall) == 1
    assert float(overall[0]["sl_offered"]) == pytest.approx(summary.overall["sl_offered"].mean)
    assert {"sl_offered_sd", "sl_offered_hw", "answer_rate", "occupancy"} <= set(overall[0])
    assert [r["group"] for r in read("by_queue.csv")] == list(QUEUES)
    assert read("by_queue.csv")[2]["sl_offered"] == ""  # orders: no calls
    assert len(read("intervals.csv")) == INTERVALS
    by_site = read("intervals_by_site.csv")
    assert len(by_site) == len(SITES) * INTERVALS
    assert list(by_site[0])[:4] == ["interval", "start", "group", "sl_offered"]
    assert by_site[0]["start"] == "2024-03-04 00:00" and by_site[0]["occupancy"] != ""


def test_html_is_self_contained_with_plots_and_verdict(
        tmp_path: Path, runs: list[RunResult], summary: kpi.Summary) -> None:
    """The HTML embeds its plots as inline SVG figures (SL, by queue, by language, waits,
    volume, occupancy: no queue depth in these runs), shows the verdict, has no links out."""
    path = tmp_path / "report.html"
    report.write_html(path, runs, summary)
    text = path.read_text(encoding="utf-8")
    figures = re.findall(r"<figure id=\"plot-(\w+)\">\s*<figcaption>([^<]+)</figcaption>\s*<svg",
                         text)
    assert [key for key, _title in figures] == ["sl", "sl_queue", "sl_language", "wait",
                                                "volume", "occupancy"]
    assert text.count("<svg") == 6 and text.count("</svg>") == 6
    assert report.verdict_lines(summary)[0] in text
    assert "By site" in text and "Replications" in text
    assert not re.search(r"(src|href)=['\"]https?:", text)


def test_fmt_shows_units_and_dashes_for_undefined() -> None:
    """Rates print as percent, waits in seconds, counts plainly, NaN as a dash."""
    assert report.fmt("sl_offered", 0.8625) == "86.2%"
    assert report.fmt("asa_s", 12.34) == "12.3 s"
    assert report.fmt("offered", 12.0) == "12"
    assert report.fmt("sl_offered", math.nan) == "-"


def test_site_tables_show_exactly_the_kpis_defined_by_site() -> None:
    """The by-site columns are the answered-call KPIs and occupancy that kpi defines by site."""
    assert set(report.SITE_COLUMNS) == kpi.SITE_KPIS


def test_clock_times_are_in_the_report_zone(runs: list[RunResult]) -> None:
    """Interval labels and plot axes use the given zone: 00:00+03:00 is 23:00 in Kyiv (UTC+2)."""
    summary = kpi.summarise(runs, timezone="Europe/Kyiv")
    assert report.interval_label(summary, 0.0) == "2024-03-03 23:00"
    assert report.interval_label(summary, 1800.0) == "2024-03-03 23:30"
    plot = plots.sl_plot(summary, plots.zone_of(summary, "Europe/Kyiv"), "Europe/Kyiv")
    assert "local time (Europe/Kyiv)" in plot.svg and "hours from" not in plot.svg
    ticks = re.findall(r">(\d\d:\d\d)<", plot.svg.replace("\n", ""))
    assert "23:15" in ticks or "23:30" in ticks or "00:00" in ticks, ticks


def test_ci_is_clipped_to_0_and_100_percent() -> None:
    """A share of 66.7% +- 143.4 shows as its clipped range, and JSON carries the clipped bounds."""
    wide = kpi.Estimate(0.667, 0.6, 1.434, 3)
    assert report.fmt_ci("sl_consistency", wide) == "66.7% [0.0-100.0%]"
    assert report.fmt_ci("sl_offered", kpi.Estimate(0.9, 0.01, 0.004, 5)) == "90.0% ± 0.4"
    assert kpi.ci_bounds("sl_consistency", wide) == (0.0, 1.0)
    assert kpi.ci_bounds("asa_s", kpi.Estimate(2.0, 3.0, 5.0, 3)) == (0.0, 7.0)


def test_provenance_is_in_json_csv_and_html(
        tmp_path: Path, runs: list[RunResult], summary: kpi.Summary) -> None:
    """Scenario, overrides, seed, replications, version and build reach every output."""
    prov = report.Provenance("run-7", "scen/a.yaml", "scenario A", "1 day(s)", {"days": "2"},
                             seed=9, replications=3, version="0.1.0", build="compiled",
                             created="2026-01-01T00:00:00+00:00")
    report.write_json(tmp_path / "summary.json", summary, prov)
    doc = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    assert doc["provenance"]["scenario"] == "scen/a.yaml" and doc["provenance"]["seed"] == 9
    assert doc["provenance"]["overrides"] == {"days": "2"} and doc["provenance"]["build"] == \
        "compiled"
    report.write_csv(tmp_path, summary, prov)
    with (tmp_path / "intervals_by_queue.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert {(r["run_id"], r["scenario"], r["overrides"], r["seed"], r["version"], r["build"])
            for r in rows} == {("run-7", "scen/a.yaml", "days=2", "9", "0.1.0", "compiled")}
    report.write_html(tmp_path / "report.html", runs, summary, prov)
    text = (tmp_path / "report.html").read_text(encoding="utf-8")
    for shown in ("scenario A (scen/a.yaml)", "days=2", "<th>seed</th><td>9</td>", "0.1.0",
                  "compiled", "run-7"):
        assert shown in text, shown


def test_every_missed_interval_is_listed(summary: kpi.Summary) -> None:
    """The count of missed intervals matches the lines listed, in the terminal and the HTML."""
    console = Console(record=True, width=160)
    report.print_summary(summary, console)
    text = console.export_text()
    count = int(re.search(r"Intervals missing SL 85%: (\d+) of", text).group(1))  # type: ignore[union-attr]
    listed = re.findall(r"^  \d{4}-\d\d-\d\d \d\d:\d\d  SL ", text, re.MULTILINE)
    assert count == len(report.missed_intervals(summary)) == len(listed) >= 1


def test_wait_percentiles_pool_the_replications() -> None:
    """Waits 0..99 s in one run and 100..199 s in another: the pooled median is 99.5 s."""
    runs = [make_result([Call(float(w), ANSWERED) for w in range(k * 100, k * 100 + 100)],
                        seed=k) for k in (0, 1)]
    rows = dict((label, (calls, values)) for label, calls, values in report.wait_table(runs))
    calls, values = rows["center"]
    assert calls == 100
    assert values == pytest.approx(np.percentile(np.arange(200.0), plots.PERCENTILES).tolist())
    assert "queue tech" in rows and "language ru" in rows and "queue voc" not in rows
