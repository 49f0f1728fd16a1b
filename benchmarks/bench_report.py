"""How long `acd sim run` takes to write its report for a month and for 400 days.

Simulating 400 days takes a minute or more, so the per-interval tallies come from the tests' seeded
long-run builder (tests/reportkit.py: five queues, sixteen languages, six countries, two
sites, 30-minute intervals). Each step is timed in CPU and wall seconds: summarise, the
calendar roll-ups (once, handed to every output as the command does), summary.json, the CSVs
and report.html, and within them the parts a run of more than a day adds (the calendar
roll-ups and the day x time-of-day heatmaps), and the line plots (per interval, or per day
beyond a week). The load average is printed
with the figures, since the machine may be shared.

    .venv/bin/python benchmarks/bench_report.py            # 30 and 400 days
    .venv/bin/python benchmarks/bench_report.py --days 90 -r 3
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from reportkit import ZONE, long_run  # noqa: E402

from sim import kpi, plots, report, rollup  # noqa: E402


def timed(label: str, step: Callable[[], Any]) -> Any:
    """Run ``step`` and print its CPU and wall seconds."""
    cpu, wall = time.process_time(), time.perf_counter()
    out = step()
    print(f"  {label:<22} cpu {time.process_time() - cpu:6.2f} s   "
          f"wall {time.perf_counter() - wall:6.2f} s", flush=True)
    return out


def bench(days: float, replications: int) -> None:
    """Time every step of one report of ``days`` days and ``replications`` replications."""
    runs = [long_run(days, seed=seed) for seed in range(1, replications + 1)]
    print(f"{days:g} days, {replications} replication(s), "
          f"{sum(r.calls_simulated for r in runs):,} calls; load {os.getloadavg()[0]:.1f}")
    cpu, wall = time.process_time(), time.perf_counter()
    summary = timed("summarise", lambda: kpi.summarise(runs, timezone=ZONE))
    # As `acd sim run` does: the roll-ups once, handed to every output.
    periods = timed("roll-ups", lambda: rollup.calendar_rollups(summary, runs))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        timed("summary.json", lambda: report.write_json(out / "summary.json", summary,
                                                        results=runs, periods=periods))
        timed("CSVs", lambda: report.write_csv(out, summary, results=runs, periods=periods))
        timed("report.html", lambda: report.write_html(out / "report.html", runs, summary,
                                                       periods=periods))
        print(f"  {'report in all':<22} cpu {time.process_time() - cpu:6.2f} s   "
              f"wall {time.perf_counter() - wall:6.2f} s; summary.json "
              f"{(out / 'summary.json').stat().st_size / 1e6:.1f} MB, report.html "
              f"{(out / 'report.html').stat().st_size / 1e6:.1f} MB")
    print("  of which, for runs of more than a day:")
    timed("weekly + daily roll-ups", lambda: [rollup.rollups(summary, weekly, results=runs)
                                              for weekly in (True, False)])
    timed("day heatmaps", lambda: plots.day_plots(summary, ZONE))
    timed("line plots", lambda: plots.all_plots(summary, runs, ZONE, periods))
    print(f"  load {os.getloadavg()[0]:.1f}")


def main() -> None:
    """Parse the arguments and run the benchmarks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, nargs="*", default=[30.0, 400.0])
    parser.add_argument("-r", "--replications", type=int, default=1)
    args = parser.parse_args()
    for days in args.days:
        bench(days, args.replications)


if __name__ == "__main__":
    main()
