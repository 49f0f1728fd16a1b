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
The server prints its event loop's lag (how late a task sleeping 2 ms at a time wakes: what
any work on the loop made a session wait), p99 and p99.9, and what the wallboard cost it: per
tick, the snapshot and the snapshot with its JSON (one block of loop time), median and 99th
percentile; the write of a snapshot to one page, and all those writes per tick (done
``FAN_OUT_BATCH`` pages at a time, with routing in between).
With ``--roster`` every agent is logged in, paused, so each message lists all 281 agents
(about 40 kB) while still no call is offered.
Usage: ``python benchmarks/bench_wallboard.py [--held 1000] [--wallboards 50] [--roster]
[--check]``
(the overload phases with admission control are in ``bench_agi_route.py``).

``python benchmarks/bench_wallboard.py snapshot [--baseline REV]`` times one snapshot at the
reference load instead (281 agents logged in, most busy, 500 calls waiting), in this process,
for this tree's wallboard and for the one in git revision ``REV`` (default ``main``) side by
side on the same router, and checks that both publish the same bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import resource
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# The callers and the load phases are the route benchmark's own (this script sits beside it).
from bench_agi_route import HOST, bench_call_path, held, open_loop, rate  # noqa: E402

from acd.testing.loadgen import LoadResult  # noqa: E402

# ------------------------------------------------------------------ server (child process)

async def _serve(wallboards: bool, roster: bool) -> None:
    from acd.asterisk.agi.server import FastAgiServer

    path = bench_call_path()
    service = path.service
    if roster:  # every agent on the wallboard, none taking calls
        for agent_id in list(service.router.agent_ids()):
            service.login(agent_id, paused_reason="break")
    decisions: list[float] = []
    service.observe_latency(lambda _entry, seconds: decisions.append(seconds))
    server = FastAgiServer(path.handler_for, HOST, 0, max_sessions=10_000)
    await server.start()
    board, http_port = await _serve_wallboard(service) if wallboards else (None, 0)
    snapshot_s: list[float] = []
    message_s: list[float] = []
    offer_s: list[float] = []
    if board is not None:  # benchmark only: time each tick's work on the loop
        from acd.service import wallboard

        board.snapshot = _timed(board.snapshot, snapshot_s)
        if hasattr(board, "message"):
            board.message = _timed(board.message, message_s)
        else:  # an older wallboard (pages then write from their own tasks, not timed here)
            board.publish = _timed(board.publish, message_s)
        offer = wallboard.Subscriber.offer

        def timed_offer(sub: Any, *message: bytes) -> None:
            t0 = time.perf_counter()
            offer(sub, *message)
            offer_s.append(time.perf_counter() - t0)

        wallboard.Subscriber.offer = timed_offer  # type: ignore[method-assign]
    lags: list[float] = []
    sampler = asyncio.get_running_loop().create_task(_loop_lag(lags))
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
                         "loop_lag_p99_ms": round(_percentile_us(lags, 0.99) / 1e3, 3),
                         "loop_lag_p999_ms": round(_percentile_us(lags, 0.999) / 1e3, 3),
                         "wallboard_snapshots": board.snapshots if board else 0,
                         "snapshot_p50_ms": round(_percentile_us(snapshot_s, 0.50) / 1e3, 3),
                         "snapshot_p99_ms": round(_percentile_us(snapshot_s, 0.99) / 1e3, 3),
                         "snapshot_json_p50_ms": round(_percentile_us(message_s, 0.50) / 1e3, 3),
                         "snapshot_json_p99_ms": round(_percentile_us(message_s, 0.99) / 1e3, 3),
                         "page_write_p50_us": _percentile_us(offer_s, 0.50),
                         "page_write_p99_us": _percentile_us(offer_s, 0.99),
                         "fan_out_ms_per_tick": round(sum(offer_s) * 1e3
                                                      / max(1, len(message_s)), 3)}
                print(json.dumps(stats), flush=True)
    finally:
        sampler.cancel()
        await server.close(grace=2.0)


async def _loop_lag(into: list[float], period_s: float = 0.002) -> None:
    """Note, every ``period_s``, how late the loop woke this task: what any work on the
    loop (a wallboard tick included) made a FastAGI session wait."""
    loop = asyncio.get_running_loop()
    while True:
        t0 = loop.time()
        await asyncio.sleep(period_s)
        into.append(max(0.0, loop.time() - t0 - period_s))


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


def _timed(method: Callable[[], Any], into: list[float]) -> Callable[[], Any]:
    """``method``, noting how long each call took in ``into``."""
    def timed() -> Any:
        t0 = time.perf_counter()
        try:
            return method()
        finally:
            into.append(time.perf_counter() - t0)
    return timed


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


# ------------------------------------------------------------------ snapshot microbenchmark

class _Owner:
    """Answers every offer of its call at once (the agent picks up); ignores the rest."""

    def __init__(self, service: Any) -> None:
        self.service = service

    def handle_command(self, command: object) -> None:
        from acd.core.model import Offer

        if isinstance(command, Offer):
            self.service.offer_answered(command.call_id, command.agent_id)


class Floor:
    """A router service on a manual clock, with observers to add and calls to top up."""

    def __init__(self, service: Any, clock: Any, arrive: Callable[[], None]) -> None:
        self.service = service
        self.clock = clock
        self.observers: list[Callable[[Any, float], None]] = []
        self._arrive = arrive

    def waiting(self) -> int:
        """Calls waiting in all queues."""
        return sum(s.waiting for s in self.service.queue_snapshot())

    def top_up(self, waiting: int) -> None:
        """Calls arrive (about 10 a second) until ``waiting`` wait."""
        while self.waiting() < waiting:
            self._arrive()


def reference_floor(seed: int = 1, waiting: int = 500) -> Floor:
    """The reference center's router at load: every agent logged in, one in ten paused, the
    others talking (offers are answered at once), and ``waiting`` calls queued across the
    queues. Its observers see every output from the start."""
    from acd.config.load import load_center
    from acd.core.model import AgentState
    from acd.runtime.router_service import RouterService
    from acd.testing.clock import ManualClock

    clock = ManualClock()
    center = load_center(ROOT / "config" / "center.yaml")
    service = RouterService(center, clock)
    for queue in service.router._queues.values():  # benchmark only: hold every call
        queue.max_length, queue.max_wait_s = 10**7, 10.0**7
    rng = random.Random(seed)
    config = center.config
    reasons = [r for r in config.pause_reasons if r != "rona"]
    for agent_id in service.router.agent_ids():
        if rng.random() < 0.1:
            service.login(agent_id, paused_reason=rng.choice(reasons))
        else:
            service.login(agent_id)
    countries, queues = list(config.countries), list(config.queues)
    n = 0

    def arrive() -> None:
        nonlocal n
        country = rng.choice(countries)
        service.call_arrived(_Owner(service), f"c{n}", rng.choice(queues),
                             config.countries[country].language, country)
        n += 1
        clock.advance(rng.expovariate(10.0))

    floor = Floor(service, clock, arrive)
    service.observe(lambda o, wall: [f(o, wall) for f in floor.observers])
    while any(a.state is AgentState.READY for a in service.router.agent_snapshot()):
        arrive()
    floor.top_up(waiting)
    return floor


def _baseline_module(rev: str, path: str) -> types.ModuleType:
    """The module at ``path`` as it is in git revision ``rev``, imported under another name."""
    source = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    module = types.ModuleType("_baseline_" + path.replace("/", "_").removesuffix(".py"))
    sys.modules[module.__name__] = module
    exec(compile(source, f"{rev}:{path}", "exec"), module.__dict__)
    return module


class _BaselineService:
    """The router service as ``rev``'s wallboard saw it: its queue snapshot is ``rev``'s
    ``Router.queue_snapshot`` run on today's router (the rest is the service itself)."""

    def __init__(self, service: Any, rev: str) -> None:
        self._service = service
        self._queue_snapshot = _baseline_module(rev, "acd/core/router.py").Router.queue_snapshot

    def queue_snapshot(self) -> Any:
        return self._queue_snapshot(self._service.router, self._service.now())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._service, name)


def snapshot_bench(rev: str, ticks: int, seed: int = 1) -> int:
    """Time a snapshot and a publication of this tree's wallboard and of ``rev``'s."""
    from acd.service import wallboard as current
    from acd.service.settings import WallboardSettings

    baseline = _baseline_module(rev, "acd/service/wallboard.py")
    floor = reference_floor(seed)
    service, clock = floor.service, floor.clock
    wall = 1_790_000_000.0
    boards = {}
    for name, module, source in ((rev, baseline, _BaselineService(service, rev)),
                                 ("this tree", current, service)):
        board = module.Wallboard(lambda s=source: s, WallboardSettings(),
                                 clock=lambda: wall + clock.now())
        floor.observers.append(board.observe)
        boards[name] = board
    # Outputs from here on reach both boards: talks end, agents wrap up and take the next
    # call, new calls arrive, and some agents pause.
    rng = random.Random(seed + 1)
    talking = [a.call_id for a in service.router.agent_snapshot() if a.call_id is not None]
    for call_id in rng.sample(talking, 30):
        service.hangup(call_id)
        clock.advance(1.0)
    floor.top_up(500)
    first = {name: board.publish() for name, board in boards.items()}
    same = len(set(first.values())) == 1
    states: dict[str, int] = {}
    for a in service.router.agent_snapshot():
        states[a.state.value] = states.get(a.state.value, 0) + 1
    print(f"wallboard snapshot at the reference load: {sum(states.values())} agents {states}, "
          f"{floor.waiting()} calls waiting, {len(first[rev])} bytes per message, load average "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    # Both boards tick in turn, so the machine's noise falls on both alike.
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(ticks):
        clock.advance(0.25)  # a tick later: times in state and waits moved on
        for name, board in boards.items():
            for what, step in (("snapshot", board.snapshot), ("publish", board.publish)):
                t0 = time.perf_counter()
                step()
                times.setdefault((name, what), []).append(time.perf_counter() - t0)
    # What computing the snapshot off the loop would have to copy on it first: the agents.
    copy = []
    for _ in range(ticks):
        t0 = time.perf_counter()
        service.router.agent_snapshot()
        copy.append(time.perf_counter() - t0)
    times[("copy only", "agents")] = copy
    for (name, what), values in times.items():
        values.sort()
        print(f"  {name:>10}  {what:8}  median {statistics.median(values) * 1e3:6.3f} ms"
              f"  p99 {values[int(0.99 * (len(values) - 1))] * 1e3:6.3f} ms")
    print(f"  {'PASS' if same else 'MISS'}  both publish the same bytes")
    return 0 if same else 1


# ------------------------------------------------------------------ load (this process)

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="bench",
                        choices=("bench", "serve", "pages", "snapshot"))
    parser.add_argument("--held", type=int, default=1000)
    parser.add_argument("--wallboards", type=int, default=0,
                        help="wallboard pages kept open during the run (0: no wallboard)")
    parser.add_argument("--roster", action="store_true",
                        help="log every agent in, paused: the pages list all 281 agents")
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument("--baseline", default="main",
                        help="snapshot mode: the git revision whose wallboard to compare")
    parser.add_argument("--ticks", type=int, default=400, help="snapshot mode: ticks timed")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max(4096, 2 * args.held + 512)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    if args.mode == "serve":
        asyncio.run(_serve(args.wallboards > 0, args.roster))
        return 0
    if args.mode == "pages":
        asyncio.run(_pages(args.port, args.wallboards))
        return 0
    if args.mode == "snapshot":
        return snapshot_bench(args.baseline, args.ticks)
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, PYTHONPATH=path)
    proc = subprocess.Popen([sys.executable, __file__, "serve", "--held", str(args.held),
                             "--wallboards", str(args.wallboards)]
                            + (["--roster"] if args.roster else []),
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
          f"{args.wallboards} wallboard pages open"
          f"{', every agent logged in (paused)' if args.roster else ''}, load average "
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
