"""FastAGI route benchmark: the real call path (router + `route` script) under load.

A child process serves the call path (``python benchmarks/bench_agi_route.py serve``) with the
reference center and a one-node IVR flow (straight to the queue, so the IVR costs nothing and
nothing waits on prompts); queues are made unbounded and no agent is logged in, so every call
is queued and held on music. This process is the fake Asterisk: each call connects, sends the
environment, times the first command (the one that sets ``ACD_CALL_ID``, with the channel
language for callers other than Russian), answers it and the ``SET MUSIC ON``, and finally
hangs up (an abandon for the router).
Phases: held sessions at once, closed-loop new sessions/s, open-loop Poisson at 300 calls/s
(the rated arrivals); then every agent of the roster logs in and the routed phase times calls
that find an agent free at once (AGI commands per routed call, and arrival to the session's
close with its target) against the thinnest FastAGI router, a session that sets one variable
and closes, served by the same process on another port, the two alternating (each routed
call's caller then hangs up while the agent rings, an ``h``-extension ``ended`` that frees
the agent at once, untimed); then admission control is switched on (``agi.max_loop_lag_s`` and
``agi.max_ttfc_s`` at 0.02 s, the 20 ms target, tighter than the service's defaults) and
the overload phases offer 2x and 3x the rated arrivals: p50/p99 time to first command of the
admitted calls, the share handed back to the dialplan fallback and how fast (connect to close).
Usage: ``python benchmarks/bench_agi_route.py [--held 1000] [--rated 300] [--routed 2000]
[--routed-only] [--check]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import _kit as kit  # noqa: E402

from acd.testing.fake_agi import (  # noqa: E402
    FakeAsterisk,
    environment_block,
    run_script,
    variables_set,
)
from acd.testing.loadgen import LoadResult, percentile, session_rate  # noqa: E402
from acd.testing.loadgen import open_loop as loadgen_open_loop  # noqa: E402

COUNTRIES = ("+79161234567", "+380441234567", "+77012345678", "+995322123456", "+37122123456")


# ------------------------------------------------------------------ server (child process)

def bench_call_path() -> Any:
    """The reference center's call path with a one-node IVR and unbounded queues."""
    from acd.asterisk.agi.route import CallPath
    from acd.config.load import load_center
    from acd.runtime.router_service import RouterService

    center = load_center(ROOT / "config" / "center.yaml")
    setup = kit.one_node_ivr(center)
    service = RouterService(center)
    for queue in service.router._queues.values():  # benchmark only: hold every call
        queue.max_length = 10**7
    return CallPath(service, setup)


async def _serve(max_loop_lag_s: float | None, max_ttfc_s: float | None) -> None:
    from acd.asterisk.agi.server import Admission, AgiSession, FastAgiServer

    path = bench_call_path()
    service = path.service
    admission = Admission(max_loop_lag_s, max_ttfc_s)
    # Benchmark only: the server's own view (accept to first command, accept to hand-back),
    # free of the load generator's lateness on a shared machine.
    seen: dict[str, list[float]] = {"ttfc": [], "back": [], "routed": [], "thinnest": []}
    note_first = admission.first_command

    def first_command(ttfc_s: float) -> None:
        seen["ttfc"].append(ttfc_s)
        note_first(ttfc_s)

    admission.first_command = first_command  # type: ignore[method-assign]
    route = path.route

    async def timed_route(session: AgiSession) -> None:
        await route(session)
        if session.accepted_at is not None and path.admission is None:
            seen["routed"].append(time.monotonic() - session.accepted_at)
        sent_nothing = session._on_first_command is not None
        if sent_nothing and path.admission is not None and session.accepted_at is not None:
            seen["back"].append(time.monotonic() - session.accepted_at)

    path._scripts["route"] = timed_route
    server = FastAgiServer(path.handler_for, kit.HOST, 0, max_sessions=10_000, admission=admission)
    await server.start()

    async def one_variable(session: AgiSession) -> None:
        """The thinnest FastAGI router: one SET VARIABLE, then close."""
        await session.set_variable("ACD_TARGET", "PJSIP/1001")
        if session.accepted_at is not None:
            seen["thinnest"].append(time.monotonic() - session.accepted_at)

    thinnest = FastAgiServer(lambda _script: one_variable, kit.HOST, 0, max_sessions=10_000)
    await thinnest.start()
    print(f"PORT {server.port} {thinnest.port}", flush=True)
    try:
        while line := await asyncio.to_thread(sys.stdin.readline):
            if line.strip() == "login":
                for agent in service.center.agents:
                    service.login(agent.id)
                print(f"ok {len(service.center.agents)}", flush=True)
            elif line.startswith("routed "):  # accept to handler return, last n sessions
                n = int(line.split()[1])
                us = {k: [round(percentile(seen[k][-n:], q) * 1e6, 1) for q in (50, 99)]
                      for k in ("routed", "thinnest")}
                print(json.dumps({"route_p50_p99_us": us["routed"],
                                  "thinnest_p50_p99_us": us["thinnest"]}), flush=True)
            elif line.strip() == "logout":
                for agent in service.center.agents:
                    service.logout(agent.id)
                print("ok", flush=True)
            elif line.strip() == "admission":
                path.admission = admission
                seen["ttfc"].clear()
                print("ok", flush=True)
            elif line.strip() == "seen":
                ms = {k: [round(percentile(v, q) * 1000, 2) for q in (50, 99)]
                      for k, v in seen.items()}
                print(json.dumps({"admitted": len(seen["ttfc"]), "handed_back": len(seen["back"]),
                                  "ttfc_p50_p99_ms": ms["ttfc"],
                                  "handed_back_p50_p99_ms": ms["back"]}), flush=True)
                seen["ttfc"].clear()
                seen["back"].clear()
            elif line.strip() == "stats":
                stats = {"peak_sessions": server.stats.peak_sessions,
                         "calls_queued": path.stats.calls_queued,
                         "abandoned_holding": path.stats.abandoned_holding,
                         "turned_away": path.stats.turned_away,
                         "handler_errors": server.stats.handler_errors,
                         "calls_in_router": service.router.calls_in_router,
                         "shed": admission.shed,
                         "cpu_seconds": round(time.process_time(), 3)}
                print(json.dumps(stats), flush=True)
    finally:
        await thinnest.close(grace=2.0)
        await server.close(grace=2.0)


# ------------------------------------------------------------------ load (this process)

class HandedBack(ConnectionError):
    """The server closed the call without a command: the dialplan takes its fallback."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"handed back after {seconds * 1000:.1f} ms")
        self.seconds = seconds


class _Caller:
    """One fake Asterisk call on the route script."""

    def __init__(self, port: int, n: int, timeout: float) -> None:
        self.port, self.timeout = port, timeout
        self.env = environment_block("route", args=("100",), callerid=COUNTRIES[n % 5],
                                     uniqueid=f"1795609297.{n}")
        self.writer: asyncio.StreamWriter | None = None
        self.reader: asyncio.StreamReader | None = None

    async def answer_first_command(self) -> float:
        """Connect, get queued and put on hold; returns the time to first command."""
        started = time.perf_counter()
        async with asyncio.timeout(self.timeout):
            self.reader, self.writer = await asyncio.open_connection(kit.HOST, self.port)
            self.writer.write(self.env)
            first = await self.reader.readline()
            ttfc = time.perf_counter() - started
            if not first:
                raise HandedBack(ttfc)
            if "ACD_CALL_ID" not in variables_set(first.decode().rstrip("\n")):
                raise ConnectionError(f"unexpected first command {first!r}")
            self.writer.write(b"200 result=1\n")
            line = await self.reader.readline()
            if line != b"SET MUSIC ON default\n":
                raise ConnectionError("no music on hold")
            self.writer.write(b"200 result=0\n")
        return ttfc

    async def hang_up(self) -> None:
        assert self.reader is not None and self.writer is not None
        self.writer.write(b"HANGUP\n")
        async with asyncio.timeout(self.timeout):
            while await self.reader.read(4096):
                pass
        self.writer.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def held(port: int, count: int, first: int) -> LoadResult:
    result = LoadResult("held")
    gate = asyncio.Semaphore(100)
    callers = [_Caller(port, first + n, 30.0) for n in range(count)]

    async def one(c: _Caller) -> None:
        try:
            async with gate:
                result.ttfc.append(await c.answer_first_command())
        except (OSError, TimeoutError):
            result.failures += 1
            c.close()

    started = time.perf_counter()
    await asyncio.gather(*(one(c) for c in callers))
    result.peak_held = len(result.ttfc)
    for c in callers:
        with contextlib.suppress(OSError, TimeoutError, AssertionError):
            await c.hang_up()
            result.sessions += 1
    result.seconds = time.perf_counter() - started
    return result


async def rate(port: int, total: int, first: int, concurrency: int = 32) -> LoadResult:
    return await session_rate(kit.HOST, port, total, concurrency=concurrency, first=first,
                              make_call=lambda n: _Caller(port, n, 10.0))


async def open_loop(port: int, per_s: float, duration: float, first: int) -> LoadResult:
    return await loadgen_open_loop(kit.HOST, port, per_s, duration, seed=20, first=first,
                                   make_call=lambda n: _Caller(port, n, 10.0))


class Overload:
    """One overload phase: admitted calls' TTFC, and the calls handed back and how fast."""

    def __init__(self, per_s: float) -> None:
        self.per_s = per_s
        self.ttfc: list[float] = []
        self.handed_back: list[float] = []
        self.failures = 0
        self.seconds = 0.0
        self.server: dict[str, object] = {}

    def summary(self) -> dict[str, object]:
        offered = len(self.ttfc) + len(self.handed_back) + self.failures
        ms = lambda v: round(v * 1000, 2)  # noqa: E731
        return {"phase": f"overload {self.per_s:g}/s", "offered": offered,
                "admitted": len(self.ttfc), "failures": self.failures,
                "admitted_p50_ms": ms(percentile(self.ttfc, 50)),
                "admitted_p99_ms": ms(percentile(self.ttfc, 99)),
                "handed_back_share": round(len(self.handed_back) / offered, 3) if offered else 0,
                "handed_back_p50_ms": ms(percentile(self.handed_back, 50)),
                "handed_back_p99_ms": ms(percentile(self.handed_back, 99)),
                "handed_back_max_ms": ms(max(self.handed_back, default=float("nan")))}


async def overload(port: int, per_s: float, duration: float, first: int) -> Overload:
    """Poisson arrivals at ``per_s`` for ``duration`` s with admission control on."""
    result = Overload(per_s)
    rng = random.Random(int(per_s))

    async def one(n: int) -> None:
        call = _Caller(port, n, 10.0)
        try:
            result.ttfc.append(await call.answer_first_command())
            await call.hang_up()
        except HandedBack as back:
            result.handed_back.append(back.seconds)
            call.close()
        except (OSError, TimeoutError):
            result.failures += 1
            call.close()

    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task[None]] = []
    started = next_at = loop.time()
    n = first
    while next_at - started < duration:
        await asyncio.sleep(max(0.0, next_at - loop.time()))
        tasks.append(asyncio.create_task(one(n)))
        n += 1
        next_at += rng.expovariate(per_s)
    await asyncio.gather(*tasks)
    result.seconds = loop.time() - started
    return result


class Routed:
    """The routed phase: calls that find an agent free at once, against the thinnest router."""

    def __init__(self) -> None:
        self.routed: list[float] = []
        self.thinnest: list[float] = []
        self.commands: Counter[int] = Counter()
        self.examples: dict[int, str] = {}
        self.held = 0
        self.server: dict[str, object] = {}

    def summary(self) -> dict[str, object]:
        ms = lambda v: round(v * 1000, 3)  # noqa: E731
        r50, r99 = percentile(self.routed, 50), percentile(self.routed, 99)
        t50, t99 = percentile(self.thinnest, 50), percentile(self.thinnest, 99)
        return {"phase": "routed (agent free at once)", "calls": len(self.routed),
                "held_instead": self.held,
                "agi_commands_per_call": dict(sorted(self.commands.items())),
                "arrival_to_close_p50_ms": ms(r50), "arrival_to_close_p99_ms": ms(r99),
                "thinnest_p50_ms": ms(t50), "thinnest_p99_ms": ms(t99),
                "ratio_p50": round(r50 / t50, 2), "ratio_p99": round(r99 / t99, 2)}


async def _session(port: int, env: bytes, timeout: float = 10.0) -> tuple[float, list[str]]:
    """One FastAGI session as Asterisk runs it: connect, send ``env``, answer every command
    with success until the server closes. Returns connect-to-close seconds and the commands.
    A caller put on music hangs up at once (the call was not routed at once)."""
    sent: list[str] = []

    def answer(command: str, _read_at: float) -> bytes:
        sent.append(command)
        hang_up = command.startswith("SET MUSIC ON")
        return kit.asterisk_reply(command) + (b"HANGUP\n" if hang_up else b"")

    started = time.perf_counter()
    async with asyncio.timeout(timeout):
        closed = await kit.answer_until_closed(port, env, answer)
    return closed - started, sent


async def routed(port: int, thinnest_port: int, count: int, first: int,
                 warm_up: int = 100) -> Routed:
    """``count`` routed calls, each after a session on the thinnest router (same caller, same
    environment), one at a time; the first ``warm_up`` pairs are not counted."""
    result = Routed()
    fake = FakeAsterisk(port)
    for n in range(warm_up + count):
        k = first + n
        uniqueid = f"1795609297.{k}"
        env = environment_block("route", args=("100",), callerid=COUNTRIES[k % 5],
                                uniqueid=uniqueid)
        thin_s, _ = await _session(thinnest_port, env)
        route_s, sent = await _session(port, env)
        variables: dict[str, str] = {}
        for command in sent:
            variables.update(variables_set(command))
        if "ACD_TARGET" not in variables:
            result.held += 1
            continue
        if n >= warm_up:
            result.thinnest.append(thin_s)
            result.routed.append(route_s)
            result.commands[len(sent)] += 1
            result.examples.setdefault(len(sent), " | ".join(sent))
        # The caller hangs up while the agent rings: the agent is ready again at once.
        await run_script(fake, "ended", (variables["ACD_CALL_ID"],), uniqueid=uniqueid,
                         extension="h")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="bench", choices=("bench", "serve"))
    parser.add_argument("--held", type=int, default=1000)
    parser.add_argument("--rated", type=float, default=300.0,
                        help="the rated arrivals per second (overload: 2x and 3x)")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each open loop")
    # The overload phases aim at the 20 ms target, tighter than the service's defaults.
    parser.add_argument("--max-loop-lag", type=float, default=0.02,
                        help="agi.max_loop_lag_s for the overload phases (0.02)")
    parser.add_argument("--max-ttfc", type=float, default=0.02,
                        help="agi.max_ttfc_s for the overload phases (0.02)")
    parser.add_argument("--overload-only", action="store_true",
                        help="skip the held, rate and rated open-loop phases")
    parser.add_argument("--routed", type=int, default=2000,
                        help="routed calls (agent free at once) timed against the thinnest "
                        "router (0: skip)")
    parser.add_argument("--routed-only", action="store_true",
                        help="run only the routed phase")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    kit.raise_fd_limit(max(4096, 2 * args.held + 512))
    if args.mode == "serve":
        asyncio.run(_serve(args.max_loop_lag, args.max_ttfc))
        return 0
    child = kit.Child([__file__, "serve", "--held", str(args.held), "--max-loop-lag",
                   str(args.max_loop_lag), "--max-ttfc", str(args.max_ttfc)], "PORT")
    port, thinnest_port = child.ports

    async def phases() -> list[LoadResult]:
        if args.overload_only or args.routed_only:
            return []
        return [await held(port, args.held, 0), await rate(port, 3000, 100_000),
                await open_loop(port, args.rated, args.seconds, 200_000)]

    async def overloads() -> list[Overload]:
        phases = []
        for k in (2, 3):
            phases.append(await overload(port, k * args.rated, args.seconds,
                                         k * 100_000 + 200_000))
            phases[-1].server = json.loads(await asyncio.to_thread(child.ask, "seen"))
        return phases

    try:
        results = asyncio.run(phases())
        routed_r: Routed | None = None
        if args.routed > 0:
            assert child.ask("login").startswith("ok")
            routed_r = asyncio.run(routed(port, thinnest_port, args.routed, 400_000))
            routed_r.server = json.loads(child.ask(f"routed {len(routed_r.routed)}"))
            # The overload phases hold every call again.
            assert child.ask("logout").startswith("ok")
        over: list[Overload] = []
        if not args.routed_only:
            assert child.ask("admission").strip() == "ok"
            over = asyncio.run(overloads())
        stats = json.loads(child.ask("stats"))
    finally:
        child.stop()
    print(f"FastAGI route benchmark on {kit.HOST}:{port} (reference center, one-node IVR); "
          f"{kit.machine_load()}")
    for result in results:
        print("  " + kit.fields(result.summary()))
    if routed_r is not None:
        print("  " + kit.fields(routed_r.summary()))
        for n, example in sorted(routed_r.examples.items()):
            print(f"    {n} AGI command(s) per routed call, e.g.: {example}")
        print("    server view (accept to handler return): " + kit.fields(routed_r.server))
    for phase in over:
        print("  " + kit.fields(phase.summary()))
        print("    server view: " + kit.fields(phase.server))
    print("  server: " + kit.fields(stats))
    checks: dict[str, bool] = {}
    if results:
        held_r, rate_r, steady = results
        checks = {
            f"held >= {args.held}": held_r.peak_held >= args.held,
            "new sessions/s >= 300": rate_r.per_second >= 300,
            f"p99 TTFC <= 20 ms at {args.rated:g}/s":
                steady.summary()["ttfc_p99_ms"] <= 20.0,  # type: ignore[operator]
        }
    if routed_r is not None:
        checks["routed p50 arrival-to-close within 1.3x of the thinnest router"] = (
            percentile(routed_r.routed, 50) <= 1.3 * percentile(routed_r.thinnest, 50))
        checks["one AGI command per routed call (agent free at once)"] = (
            set(routed_r.commands) == {1})
    if over:
        checks |= {
            "admitted p99 TTFC <= 20 ms at 2x": percentile(over[0].ttfc, 99) <= 0.020,
            "excess handed back within 50 ms at 2x":
                max(over[0].handed_back, default=0.0) <= 0.050,
        }
    checks |= {
        "no failures": all(r.failures == 0 for r in results)
        and all(o.failures == 0 for o in over),
        "every call left the router": stats["calls_in_router"] == 0,
    }
    return kit.report_checks(checks, args.check)


if __name__ == "__main__":
    raise SystemExit(main())
