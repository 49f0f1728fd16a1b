"""FastAGI benchmark: held sessions, new sessions per second and time to first command.

Runs the hold server (``python -m acd.testing.loadgen serve``) in a child process and the
load generator in this one, so each has a core; everything stays on 127.0.0.1. Targets
(design.md section 9): 1,000 concurrent held sessions, >= 300 new sessions/s, p99 TTFC <= 20 ms.
Usage: ``python benchmarks/bench_fastagi.py [--held 1000] [--check]`` (exit 1 on a miss
with ``--check``). Takes well under two minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import _kit as kit  # noqa: E402

from acd.testing.loadgen import (  # noqa: E402
    LoadResult,
    held_sessions,
    open_loop,
    session_rate,
)


async def run_phases(port: int, held: int) -> list[LoadResult]:
    results = [await held_sessions(kit.HOST, port, held, timeout=30.0)]
    results.append(await session_rate(kit.HOST, port, 3000, concurrency=32))
    results.append(await open_loop(kit.HOST, port, rate=300.0, duration=5.0, seed=20))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--held", type=int, default=1000)
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args()
    limit = kit.raise_fd_limit(max(4096, 2 * args.held + 512))
    child = kit.Child(["-m", "acd.testing.loadgen", "serve", "--host", kit.HOST, "--port", "0"],
                      "PORT")
    (port,) = child.ports
    try:
        results = asyncio.run(run_phases(port, args.held))
        stats: dict[str, int] = json.loads(child.ask("stats"))
    finally:
        child.stop()
    print(f"FastAGI benchmark on {kit.HOST}:{port}, open-files limit {limit}, 2 processes")
    for result in results:
        print("  " + kit.fields(result.summary()))
    print("  server: " + kit.fields(stats))
    held, rate, steady = results
    checks = {
        f"held >= {args.held}": held.peak_held >= args.held and stats["peak_sessions"] >= args.held,
        "new sessions/s >= 300": rate.per_second >= 300,
        "p99 TTFC <= 20 ms at 300/s": steady.summary()["ttfc_p99_ms"] <= 20.0,  # type: ignore[operator]
        "no failures": all(r.failures == 0 for r in results),
    }
    return kit.report_checks(checks, args.check)


if __name__ == "__main__":
    raise SystemExit(main())
