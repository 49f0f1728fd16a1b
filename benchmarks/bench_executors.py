"""Executor benchmark: replications per second locally at 1 and 2 processes and on Dask.

Run: ``python benchmarks/bench_executors.py [--days 3] [--replications 8]``

The same replications of the reference scenario (same seeds) run on a local executor of one
process, one of two processes, and a two-worker ``distributed.LocalCluster`` (one thread per
worker). Each prints replications per second, wall time included (pool or cluster start-up
is printed apart: a
user pays it once per command), with its speed-up over one process (goal: two workers >= 1.8x).
Every executor's numbers are checked equal to the first's. The load average is printed: on a
shared machine the speed-ups are only as good as the free cores.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sim.executor import DaskExecutor, Executor, LocalExecutor  # noqa: E402
from sim.kpi import kpis  # noqa: E402
from sim.run import RunSpec, default_scenario, run_replications  # noqa: E402


def _timed(name: str, make: Callable[[], Executor], spec: RunSpec, n: int
           ) -> tuple[float, list[float]]:
    t0 = time.perf_counter()
    executor = make()
    started = time.perf_counter() - t0
    try:
        t1 = time.perf_counter()
        results = run_replications(spec, n, 1, executor=executor)
        wall = time.perf_counter() - t1
    finally:
        executor.close()
    rate = n / wall
    print(f"{name:<28} start-up {started:5.1f} s, run {wall:6.1f} s: {rate:6.2f} "
          f"replications/s ({n / (wall + started):.2f} with start-up)", flush=True)
    return rate, [kpis(r).overall["sl_offered"] for r in results]


def main() -> None:
    """Time the three executors on the same replications and print the speed-ups."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=float, default=3.0, help="days per replication (3)")
    ap.add_argument("--replications", type=int, default=8, help="replications (8)")
    args = ap.parse_args()
    spec = RunSpec(str(default_scenario()), {"days": args.days})
    print(f"{args.replications} replications of {args.days:g} day(s) of the reference "
          f"scenario; {os.cpu_count()} cores, load average before "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    one, first = _timed("local, 1 process", lambda: LocalExecutor(1), spec, args.replications)
    two, second = _timed("local, 2 processes", lambda: LocalExecutor(2), spec,
                         args.replications)
    dask, third = _timed("Dask LocalCluster, 2 workers", lambda: DaskExecutor("local", 2),
                         spec, args.replications)
    assert first == second == third, "executors disagree on the same seeds"
    print(f"speed-up over 1 process: 2 processes {two / one:.2f}x, 2 Dask workers "
          f"{dask / one:.2f}x (goal >= 1.8x); load average after "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
