"""The HTML report as a browser renders it: Debian's headless Chromium loads the page, its DOM
has every plot (an inline SVG figure with a title and clock-time axes) and the screenshot is
not blank. Skipped when no ``chromium`` is installed (``.ci/run`` installs it)."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from acd.cli import main

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (Debian: "
                                "apt-get install chromium); .ci/run installs it")
#: The plots every forecast run's report has, by figure id.
PLOTS = ("sl", "sl_queue", "sl_language", "wait", "volume", "depth", "occupancy",
         "staffing_gap")


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium with no network, sync or first-run chatter."""
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=180, check=False)


class Figures(HTMLParser):
    """Collects each <figure>: its id, caption and the text inside its SVG."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: dict[str, dict[str, str]] = {}
        self._current: str | None = None
        self._where = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "figure":
            self._current = dict(attrs).get("id") or ""
            self.figures[self._current] = {"caption": "", "svg": "", "has_svg": ""}
        elif self._current is not None and tag == "figcaption":
            self._where = "caption"
        elif self._current is not None and tag == "svg":
            self.figures[self._current]["has_svg"] = "yes"
            self._where = "svg"

    def handle_endtag(self, tag: str) -> None:
        if tag == "figcaption":
            self._where = ""
        elif tag == "figure":
            self._current, self._where = None, ""

    def handle_data(self, data: str) -> None:
        if self._current is not None and self._where:
            self.figures[self._current][self._where] += data + "\n"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A short reference run's report, and the DOM Chromium builds from it."""
    out = tmp_path_factory.mktemp("report")
    code = main(["sim", "run", "--days", "0.25", "--start", "2026-03-02T06:00:00+03:00",
                 "-r", "2", "-j", "1", "-q", "--out", str(out)])
    assert code == 0
    page = out / "report.html"
    dom = chromium(out / "profile", "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    return page, dom.stdout


def test_the_browser_dom_has_every_plot_with_title_and_clock_time_axes(
        rendered: tuple[Path, str]) -> None:
    """Each plot is a figure with a caption and an inline SVG whose x axis is labelled in local
    time (Europe/Moscow) with HH:MM ticks inside the run's 06:00-12:00 window."""
    _page, dom = rendered
    parser = Figures()
    parser.feed(dom)
    assert tuple(key.removeprefix("plot-") for key in parser.figures) == PLOTS
    for key, figure in parser.figures.items():
        assert figure["has_svg"] and figure["caption"].strip(), key
        assert figure["caption"].strip() in figure["svg"], key  # the title is drawn too
        assert "local time (Europe/Moscow)" in figure["svg"], key
        ticks = re.findall(r"^(\d\d):(\d\d)$", figure["svg"], re.MULTILINE)
        assert ticks, key
        assert all(6 <= int(h) <= 12 for h, _m in ticks), (key, ticks)
    assert "hours from" not in dom
    assert "<h2>Verdict</h2>" in dom


def test_the_screenshot_shows_a_page_with_plots(
        rendered: tuple[Path, str], tmp_path: Path) -> None:
    """The screenshot is a 1280 x 2000 PNG with the plots' many colours, not a blank page."""
    page, _dom = rendered
    shot = tmp_path / "report.png"
    result = chromium(tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,2000",
                      page.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    with Image.open(shot) as image:
        assert image.size == (1280, 2000)
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50
    white = sum(count for count, rgb in colours if rgb == (255, 255, 255))
    assert white < 0.95 * 1280 * 2000


#: The plots a run of more than one day adds, before the interval-by-interval ones.
DAY_PLOTS = ("day_sl", "day_volume", "day_sl_groups")


@pytest.fixture(scope="module")
def rendered_days(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The DOM of a three-day run's report, Saturday 7 to Monday 9 March 2026 in Moscow."""
    out = tmp_path_factory.mktemp("report-days")
    code = main(["sim", "run", "--days", "3", "--start", "2026-03-07T00:00:00+03:00",
                 "-r", "1", "-j", "1", "-q", "--out", str(out)])
    assert code == 0
    dom = chromium(out / "profile", "--dump-dom", (out / "report.html").as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    return dom.stdout


def test_a_multi_day_report_has_day_by_time_heatmaps_and_weekly_tables(
        rendered_days: str) -> None:
    """A run of three days shows the SL, volume and worst-groups heatmaps first, each titled,
    with HH:MM clock times of the day in Moscow across and the dates down; then the weekly
    table with its two partial ISO weeks; then every plot a one-day run has."""
    parser = Figures()
    parser.feed(rendered_days)
    keys = tuple(key.removeprefix("plot-") for key in parser.figures)
    assert keys == (*DAY_PLOTS, *PLOTS)
    for key in DAY_PLOTS:
        figure = parser.figures[f"plot-{key}"]
        assert figure["has_svg"] and figure["caption"].strip(), key
        assert figure["caption"].strip() in figure["svg"], key
        assert "local time of day (Europe/Moscow)" in figure["svg"], key
        ticks = re.findall(r"^(\d\d):(\d\d)$", figure["svg"], re.MULTILINE)
        assert ("00", "00") in ticks and ("12", "00") in ticks, (key, ticks)
        assert "Sat 07 Mar" in figure["svg"] and "Mon 09 Mar" in figure["svg"], key
    assert parser.figures["plot-day_sl"]["caption"].startswith(
        "Service level by day and time of day")
    assert "target 85" in parser.figures["plot-day_sl"]["svg"]
    assert parser.figures["plot-day_volume"]["caption"].startswith(
        "Offered calls by day and time of day")
    assert "<h2>Week by week (ISO weeks, Europe/Moscow)</h2>" in rendered_days
    assert "2026-W10 (partial)" in rendered_days and "2026-W11 (partial)" in rendered_days
    assert "<h2>Interval by interval (clock time, Europe/Moscow)</h2>" in rendered_days
