"""Wallboard cost to routing: the FastAGI route benchmark with N wallboard pages open.

A child process serves the call path (``python benchmarks/bench_wallboard.py serve``) with the
reference center and a one-node IVR flow (straight to the queue, so the IVR costs nothing and
nothing waits on prompts); queues are made unbounded and no agent is logged in, so every call
is queued and held on music. This process is the fake Asterisk: each call connects, sends the
environment, times the first command (``SET VARIABLE ACD_CALL_ID``), answers it, the channel
language (callers other than Russian) and the ``SET MUSIC ON``, and finally hangs up (an
abandon for the router).
Phases: held sessions at once, closed-loop new sessions/s, open-loop Poisson at 300 calls/s.
With ``--wallboards N`` the server also serves the live wallboard (fed by the same router)
and a third process keeps N wallboard pages open on its event stream for the whole run, so
the figures with 0 and with 50 pages can be compared (run them alternately on a busy box).
Usage: ``python benchmarks/bench_wallboard.py [--held 1000] [--wallboards 50] [--check]``
(the overload phases with admission control are in ``bench_agi_route.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# The callers and the load phases are the route benchmark's own (this script sits beside it).
from bench_agi_route import HOST, bench_call_path, held, open_loop, rate  # noqa: E402

from acd.testing.loadgen import LoadResult  # noqa: E402

# ------------------------------------------------------------------ server (child process)

async def _serve(wallboards: bool) -> None:
    from acd.asterisk.agi.server import FastAgiServer

    path = bench_call_path()
    service = path.service
    decisions: list[float] = []
    service.observe_latency(lambda _entry, seconds: decisions.append(seconds))
    server = FastAgiServer(path.handler_for, HOST, 0, max_sessions=10_000)
    await server.start()
    board, http_port = await _serve_wallboard(service) if wallboards else (None, 0)
    print(f"PORT {server.port} {http_port}", flush=True)
    try:
        while line := await asyncio.to_thread(sys.stdin.readline):
            if line.strip() == "stats":
                stats = {"peak_sessions": server.stats.peak_sessions,
                         "calls_queued": path.stats.calls_queued,
                         "abandoned_holding": path.stats.abandoned_holding,
                         "turned_away": path.stats.turned_away,
                         "handler_errors": server.stats.handler_errors,
                         "calls_in_router": service.router.calls_in_router,
                         "cpu_seconds": round(time.process_time(), 3),
                         "decision_p50_us": _percentile_us(decisions, 0.50),
                         "decision_p99_us": _percentile_us(decisions, 0.99),
                         "wallboard_snapshots": board.snapshots if board else 0}
                print(json.dumps(stats), flush=True)
    finally:
        await server.close(grace=2.0)


async def _serve_wallboard(service: Any) -> tuple[Any, int]:
    """The wallboard of ``service`` on an ephemeral HTTP port, as ``acd serve`` wires it."""
    from aiohttp import web

    from acd.service.settings import WallboardSettings
    from acd.service.wallboard import Wallboard, add_wallboard

    board = Wallboard(lambda: service, WallboardSettings(max_subscribers=1000))
    service.observe(board.observe)
    app = web.Application()
    add_wallboard(app, board)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0)
    await site.start()
    port = runner.addresses[0][1]
    return board, int(port)


def _percentile_us(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e6, 1)


async def _pages(port: int, count: int) -> None:
    """Keep ``count`` wallboard pages open until stdin closes; print messages received."""
    import aiohttp

    received = [0] * count
    url = f"http://{HOST}:{port}/wallboard/events"

    async def page(i: int, http: aiohttp.ClientSession) -> None:
        async with http.get(url) as resp:
            assert resp.status == 200, resp.status
            async for line in resp.content:
                if line.startswith(b"data: "):
                    received[i] += 1

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout()) as http:
        tasks = [asyncio.create_task(page(i, http)) for i in range(count)]
        print("OPEN", flush=True)
        await asyncio.to_thread(sys.stdin.read)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    print(json.dumps({"pages": count, "messages_min": min(received),
                      "messages_max": max(received),
                      "cpu_seconds": round(time.process_time(), 3)}), flush=True)


# ------------------------------------------------------------------ load (this process)

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="bench", choices=("bench", "serve", "pages"))
    parser.add_argument("--held", type=int, default=1000)
    parser.add_argument("--wallboards", type=int, default=0,
                        help="wallboard pages kept open during the run (0: no wallboard)")
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max(4096, 2 * args.held + 512)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    if args.mode == "serve":
        asyncio.run(_serve(args.wallboards > 0))
        return 0
    if args.mode == "pages":
        asyncio.run(_pages(args.port, args.wallboards))
        return 0
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, PYTHONPATH=path)
    proc = subprocess.Popen([sys.executable, __file__, "serve", "--held", str(args.held),
                             "--wallboards", str(args.wallboards)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
                            env=env)
    assert proc.stdin is not None and proc.stdout is not None
    _, agi_port, http_port = proc.stdout.readline().split()
    port = int(agi_port)
    pages = None
    if args.wallboards:
        pages = subprocess.Popen([sys.executable, __file__, "pages", "--port", http_port,
                                  "--wallboards", str(args.wallboards)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                 cwd=ROOT, env=env)
        assert pages.stdout is not None
        assert pages.stdout.readline().strip() == "OPEN"
        time.sleep(1.0)  # every page connected and streaming

    async def phases() -> list[LoadResult]:
        return [await held(port, args.held, 0), await rate(port, 3000, 100_000),
                await open_loop(port, 300.0, 5.0, 200_000)]

    page_stats: dict[str, object] = {}
    try:
        results = asyncio.run(phases())
        proc.stdin.write("stats\n")
        proc.stdin.flush()
        stats = json.loads(proc.stdout.readline())
        if pages is not None:
            page_out, _ = pages.communicate("", timeout=30)
            page_stats = json.loads(page_out.strip().splitlines()[-1])
    finally:
        if pages is not None and pages.poll() is None:
            pages.kill()
        proc.stdin.close()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    print(f"FastAGI route benchmark on {HOST}:{port} (reference center, one-node IVR), "
          f"{args.wallboards} wallboard pages open, load average "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    for result in results:
        print("  " + "  ".join(f"{k}={v}" for k, v in result.summary().items()))
    print("  server: " + "  ".join(f"{k}={v}" for k, v in stats.items()))
    if page_stats:
        print("  wallboard pages: " + "  ".join(f"{k}={v}" for k, v in page_stats.items()))
    held_r, rate_r, steady = results
    checks = {
        f"held >= {args.held}": held_r.peak_held >= args.held,
        "new sessions/s >= 300": rate_r.per_second >= 300,
        "p99 TTFC <= 20 ms at 300/s": steady.summary()["ttfc_p99_ms"] <= 20.0,  # type: ignore[operator]
        "no failures": all(r.failures == 0 for r in results),
        "every call left the router": stats["calls_in_router"] == 0,
    }
    for name, ok in checks.items():
        print(f"  {'PASS' if ok else 'MISS'}  {name}")
    return 1 if args.check and not all(checks.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
