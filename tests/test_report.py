"""Reports of a summary: the terminal verdict, JSON round-trip, CSV shape, and the HTML file."""

from __future__ import annotations

import base64
import csv
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from test_kpi import LANGUAGES, QUEUES, SITES, Call, make_result, volume

from sim import kpi, report
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
    five at 70..78% read NOT MET."""
    runs = [make_result(volume(0.0, w, 50 - w), seed=w) for w in (40, 41, 42, 43, 44)]
    lines = report.verdict_lines(kpi.summarise(runs, by=None))
    assert lines[0] == "SL 84.0% +- 3.9 (target 85% / 20 s): INCONCLUSIVE"
    assert lines[1] == "CAR 100.0% +- 0.0 (target 96%): MET"
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
    """The HTML embeds three PNG plots as base64, shows the verdict and has no external links."""
    path = tmp_path / "report.html"
    report.write_html(path, runs, summary)
    text = path.read_text(encoding="utf-8")
    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", text)
    assert len(images) == 3
    assert all(base64.b64decode(img).startswith(b"\x89PNG") for img in images)
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
