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
import os
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from acd.testing.loadgen import (  # noqa: E402
    LoadResult,
    held_sessions,
    open_loop,
    session_rate,
)

HOST = "127.0.0.1"


def raise_fd_limit(wanted: int = 8192) -> int:
    """Lift the soft open-files limit towards ``wanted`` (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def start_server() -> tuple[subprocess.Popen[str], int]:
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, PYTHONPATH=path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "acd.testing.loadgen", "serve", "--host", HOST, "--port", "0"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline().split()
    if first[:1] != ["PORT"]:
        proc.kill()
        raise SystemExit(f"The benchmark server did not start: {first!r}")
    return proc, int(first[1])


def server_stats(proc: subprocess.Popen[str]) -> dict[str, int]:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("stats\n")
    proc.stdin.flush()
    stats: dict[str, int] = json.loads(proc.stdout.readline())
    return stats


async def run_phases(port: int, held: int) -> list[LoadResult]:
    results = [await held_sessions(HOST, port, held, timeout=30.0)]
    results.append(await session_rate(HOST, port, 3000, concurrency=32))
    results.append(await open_loop(HOST, port, rate=300.0, duration=5.0, seed=20))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--held", type=int, default=1000)
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args()
    limit = raise_fd_limit(max(4096, 2 * args.held + 512))
    proc, port = start_server()
    try:
        results = asyncio.run(run_phases(port, args.held))
        stats = server_stats(proc)
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    print(f"FastAGI benchmark on {HOST}:{port}, open-files limit {limit}, 2 processes")
    for result in results:
        print("  " + "  ".join(f"{k}={v}" for k, v in result.summary().items()))
    print("  server: " + "  ".join(f"{k}={v}" for k, v in stats.items()))
    held, rate, steady = results
    checks = {
        f"held >= {args.held}": held.peak_held >= args.held and stats["peak_sessions"] >= args.held,
        "new sessions/s >= 300": rate.per_second >= 300,
        "p99 TTFC <= 20 ms at 300/s": steady.summary()["ttfc_p99_ms"] <= 20.0,  # type: ignore[operator]
        "no failures": all(r.failures == 0 for r in results),
    }
    for name, ok in checks.items():
        print(f"  {'PASS' if ok else 'MISS'}  {name}")
    return 1 if args.check and not all(checks.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
