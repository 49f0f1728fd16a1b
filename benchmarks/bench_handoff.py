"""Agent frees -> next call ringing: from an agent becoming ready to the held caller's target.

``app_queue`` re-checks its waiting callers about once a second; this engine is event-driven,
so an agent who becomes ready should reach the longest-waiting eligible caller at once. This
benchmark measures it on the fake Asterisk for each of the three ways an agent becomes ready:

- ``ended``: the ``ended`` script (the agent hung up after talking) with no wrap-up: the agent
  is ready as the engine takes the report. Measured from the start of the ``ended`` session's
  connect.
- ``wrapup``: the end of wrap-up (``--wrap-up`` seconds after the ``ended`` report; the
  router's own timer). Measured from the ``ended`` session's connect plus the wrap-up, a
  little earlier than the engine starts the wrap-up, so the figure errs high.
- ``api``: ``POST /v1/agents/{id}/ready`` over the HTTP API during a long wrap-up. Measured
  from just before the request is sent.

Each ends when the held caller's FastAGI session reads the command that sets its
``ACD_TARGET`` (the agent is known from ``ACD_AGENT`` in that command, so samples may overlap).

At the reference load: a child process serves the reference center (all 281 agents logged in)
over FastAGI and the HTTP API, with a one-node IVR into ``tech``, every queue's eligibility as
wide at arrival as its expansion steps would make it later (every level, site and newcomer,
fallback languages from 0 s, no callback offer: no caller is offered to an idle agent behind
the benchmark's back) and long maximum waits. This process is the fake Asterisk: it fills the queue
with Russian callers until every eligible agent talks and ``--held`` callers (500) wait on
music, then triggers ``--rate`` agents per second (20) for ``--samples`` samples (400) per
trigger; each served caller's agent answers at once and a new caller joins the queue, so the
queue stays at ``--held``. p50, p99 and max per trigger, and the AGI commands of a held call.
Usage: ``python benchmarks/bench_handoff.py [--held 500] [--samples 400] [--rate 20]
[--wrap-up 1.0] [--trigger ended|wrapup|api ...] [--check]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import time
from collections import Counter, deque
from pathlib import Path
from typing import Any

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import _kit as kit  # noqa: E402

from acd.runtime.tasks import cancel_and_wait  # noqa: E402
from acd.testing.fake_agi import (  # noqa: E402
    FakeAsterisk,
    environment_block,
    run_script,
    variables_set,
)
from acd.testing.loadgen import percentile  # noqa: E402

TOKEN = "bench-handoff"
CALLER = "+79161234567"
#: Wrap-up of each trigger's run: none, the benchmark's, long enough that only the API ends it.
TRIGGERS = ("ended", "wrapup", "api")
GOAL_P99_S = 0.005


# ------------------------------------------------------------------ server (child process)

class _Control:
    """What the HTTP API needs from the service (no reload, no metrics)."""

    def __init__(self, service: Any) -> None:
        from prometheus_client import CollectorRegistry

        self._service = service
        self.registry = CollectorRegistry()
        self.token: str | None = TOKEN

    @property
    def service(self) -> Any:
        return self._service

    async def reload(self) -> dict[str, object]:
        raise RuntimeError("no reload in the benchmark")

    def health(self) -> dict[str, object]:
        return {}

    def agent_logged_in(self, agent_id: str, endpoint: str | None) -> None:
        """Nothing to remember."""


async def _serve(wrap_up_s: float) -> None:
    from aiohttp import web

    from acd.asterisk.agi.route import CallPath
    from acd.asterisk.agi.server import AgiSession, FastAgiServer
    from acd.config.load import center_from_data
    from acd.core.call import Dial
    from acd.runtime.router_service import RouterService
    from acd.service.api import build_api

    file = ROOT / "config" / "center.yaml"
    data = yaml.safe_load(file.read_text(encoding="utf-8"))
    for queue in data["queues"].values():  # eligibility as wide at arrival as it ever gets
        queue.update(wrap_up_s=wrap_up_s, max_length=100_000, max_wait_s=86_400,
                     expansion=[{"after_s": 0, "accept_fallback_languages": True}])
        queue.setdefault("routing", {}).update(min_level=1, sites="all", newcomers="equal")
    center = center_from_data(data, str(file))
    service = RouterService(center)
    path = CallPath(service, kit.one_node_ivr(center))
    # The engine's own share: from the agent becoming ready (as the engine sees it: the
    # ``ended`` script taken, its wrap-up over, the API's ``ready``) to the target's write.
    ready_at: dict[str, float] = {}
    engine: list[float] = []
    ended, ready, dial = path.ended, service.ready, path._dial

    async def timed_ended(session: AgiSession) -> None:
        if len(session.env.args) > 1:
            ready_at[session.env.args[1]] = time.monotonic() + wrap_up_s
        await ended(session)

    def timed_ready(agent_id: str) -> None:
        ready_at[agent_id] = time.monotonic()
        ready(agent_id)

    async def timed_dial(session: AgiSession, action: Dial,
                         before: list[tuple[str, str]]) -> bool:
        became_ready = ready_at.pop(action.agent_id, None)
        if became_ready is not None:
            engine.append(time.monotonic() - became_ready)
        return await dial(session, action, before)

    path._scripts["ended"] = timed_ended
    service.ready = timed_ready  # type: ignore[method-assign]
    path._dial = timed_dial  # type: ignore[method-assign]
    server = FastAgiServer(path.handler_for, kit.HOST, 0, max_sessions=10_000)
    await server.start()
    runner = web.AppRunner(build_api(_Control(service)))
    await runner.setup()
    site = web.TCPSite(runner, kit.HOST, 0)
    await site.start()
    http_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"PORTS {server.port} {http_port}", flush=True)
    try:
        while line := await asyncio.to_thread(sys.stdin.readline):
            if line.strip() == "login":
                for agent in center.agents:
                    service.login(agent.id)
                print(f"ok {len(center.agents)}", flush=True)
            elif line.strip() == "stats":
                us = [round(percentile(engine, q) * 1e6, 1) for q in (50, 99)]
                print(json.dumps({"engine_ready_to_write_p50_p99_us": us,
                                  "calls_queued": path.stats.calls_queued,
                                  "offers_delivered": path.stats.offers_delivered,
                                  "calls_in_router": service.router.calls_in_router,
                                  "handler_errors": server.stats.handler_errors,
                                  "cpu_seconds": round(time.process_time(), 3)}), flush=True)
    finally:
        await runner.cleanup()
        await server.close(grace=2.0)
        service.close()


# ------------------------------------------------------------------ the fake Asterisk

class HeldCall:
    """One caller's ``route`` session: answers every command; notes when the target comes."""

    def __init__(self, bench: Handoff, n: int) -> None:
        self.bench = bench
        self.uniqueid = f"1795609297.{n}"
        self.commands: list[str] = []
        self.on_music = asyncio.get_running_loop().create_future()
        self.done = asyncio.get_running_loop().create_future()
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        variables: dict[str, str] = {}

        def answer(command: str, seen_at: float) -> bytes:
            self.commands.append(command)
            sets = variables_set(command)
            if "ACD_TARGET" in sets:
                self.bench.target_reached(sets["ACD_AGENT"], seen_at)
            variables.update(sets)
            if command.startswith("SET MUSIC ON") and not self.on_music.done():
                self.on_music.set_result(True)
            return kit.asterisk_reply(command)

        try:
            await kit.answer_until_closed(self.bench.agi_port,
                                      environment_block("route", args=("100",), callerid=CALLER,
                                                        uniqueid=self.uniqueid), answer)
            if not self.on_music.done():
                self.on_music.set_result(False)
            self.done.set_result(variables)
        except asyncio.CancelledError:
            for future in (self.on_music, self.done):
                future.cancel()
            raise
        except Exception as exc:
            for future in (self.on_music, self.done):
                if not future.done():
                    future.set_exception(exc)
            raise


class Handoff:
    """One trigger's run against one server: fill, trigger, measure."""

    def __init__(self, trigger: str, agi_port: int, http_port: int, wrap_up_s: float) -> None:
        self.trigger = trigger
        self.agi_port, self.http_port = agi_port, http_port
        self.wrap_up_s = wrap_up_s
        self.fake = FakeAsterisk(agi_port)
        self.next_n = 0
        self.busy: deque[tuple[str, str]] = deque()  # (agent, call id) talking, oldest first
        self.held: set[HeldCall] = set()
        self.pending: dict[str, float] = {}  # agent -> when it became ready (perf_counter)
        self.latencies: list[float] = []
        self.held_commands: Counter[int] = Counter()
        self.held_example = ""
        self.tasks: set[asyncio.Task[None]] = set()
        self.held_at_end = 0

    def target_reached(self, agent: str, at: float) -> None:
        ready_at = self.pending.pop(agent, None)
        if ready_at is not None:
            self.latencies.append(at - ready_at)

    def _call(self) -> HeldCall:
        call = HeldCall(self, self.next_n)
        self.next_n += 1
        return call

    async def _connect(self, call: HeldCall, variables: dict[str, str]) -> None:
        """The caller's Dial() rings the agent, who answers at once: talking."""
        agent, call_id = variables["ACD_AGENT"], variables["ACD_CALL_ID"]
        answer = await run_script(self.fake, "answered", (call_id, agent),
                                  uniqueid=call.uniqueid)
        if answer is None or answer.get("ACD_ANSWER") != "ok":
            raise RuntimeError(f"answer of {call_id} by {agent} refused: {answer}")
        self.busy.append((agent, call_id))

    async def fill(self, held: int) -> None:
        """Russian callers until every eligible agent talks and ``held`` callers wait."""
        while len(self.held) < held:
            call = self._call()
            if await call.on_music:
                self.held.add(call)
                call.done.add_done_callback(lambda _f, c=call: self._served(c))
            else:
                await self._connect(call, await call.done)

    def _served(self, call: HeldCall) -> None:
        """A held caller got an agent: answer it and put a new caller in the queue."""
        self.held.discard(call)
        if call.done.cancelled() or call.done.exception() is not None:
            return
        n = len(call.commands)
        self.held_commands[n] += 1
        self.held_example = self.held_example or " | ".join(call.commands)

        async def next_steps() -> None:
            await self._connect(call, call.done.result())
            newcomer = self._call()
            if await newcomer.on_music:
                self.held.add(newcomer)
                newcomer.done.add_done_callback(lambda _f, c=newcomer: self._served(c))
            else:
                await self._connect(newcomer, await newcomer.done)

        task = asyncio.get_running_loop().create_task(next_steps())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _trigger(self, http: aiohttp.ClientSession, agent: str, call_id: str,
                       uniqueid: str) -> None:
        if self.trigger == "api":
            await run_script(self.fake, "ended", (call_id, agent), uniqueid=uniqueid)
            await asyncio.sleep(0.01)  # well inside the wrap-up
            self.pending[agent] = time.perf_counter()
            async with http.post(f"http://{kit.HOST}:{self.http_port}/v1/agents/{agent}/ready",
                                 headers={"Authorization": f"Bearer {TOKEN}"}) as response:
                if response.status != 200:
                    raise RuntimeError(f"ready {agent}: {response.status} "
                                       f"{await response.text()}")
            return
        started = time.perf_counter()
        self.pending[agent] = started + (self.wrap_up_s if self.trigger == "wrapup" else 0.0)
        await run_script(self.fake, "ended", (call_id, agent), uniqueid=uniqueid)

    async def run(self, samples: int, rate: float) -> None:
        async with aiohttp.ClientSession() as http:
            loop = asyncio.get_running_loop()
            next_at = loop.time()
            triggered: list[asyncio.Task[None]] = []
            for _ in range(samples):
                await asyncio.sleep(max(0.0, next_at - loop.time()))
                next_at += 1.0 / rate
                while not self.busy:
                    await asyncio.sleep(0.001)
                agent, call_id = self.busy.popleft()
                triggered.append(loop.create_task(
                    self._trigger(http, agent, call_id, f"t.{call_id}")))
            await asyncio.gather(*triggered)
            async with asyncio.timeout(self.wrap_up_s + 10.0):
                while self.pending:
                    await asyncio.sleep(0.01)
            while self.tasks:
                await asyncio.gather(*list(self.tasks))

    async def close(self) -> None:
        self.held_at_end = len(self.held)
        for call in list(self.held):
            call.task.cancel()
        for call in list(self.held):
            with contextlib.suppress(OSError):
                await cancel_and_wait(call.task)

    def summary(self) -> dict[str, object]:
        ms = lambda v: round(v * 1000, 3)  # noqa: E731
        return {"trigger": self.trigger, "samples": len(self.latencies),
                "p50_ms": ms(percentile(self.latencies, 50)),
                "p99_ms": ms(percentile(self.latencies, 99)),
                "max_ms": ms(max(self.latencies, default=float("nan"))),
                "held_at_end": self.held_at_end, "talking_at_end": len(self.busy)}


def _child(wrap_up_s: float) -> kit.Child:
    """The server, every agent logged in."""
    child = kit.Child([__file__, "serve", "--wrap-up", str(wrap_up_s)], "PORTS")
    assert child.ask("login").startswith("ok")
    return child


def _stop(child: kit.Child) -> dict[str, object]:
    """The server's figures, and the server stopped."""
    try:
        stats: dict[str, object] = json.loads(child.ask("stats"))
    finally:
        child.stop()
    return stats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="bench", choices=("bench", "serve"))
    parser.add_argument("--held", type=int, default=500, help="callers waiting on music")
    parser.add_argument("--samples", type=int, default=400, help="samples per trigger")
    parser.add_argument("--rate", type=float, default=20.0, help="agents freed per second")
    parser.add_argument("--wrap-up", type=float, default=1.0,
                        help="wrap-up of the wrapup trigger, seconds")
    parser.add_argument("--trigger", action="append", choices=TRIGGERS,
                        help="run only these triggers (default: all three)")
    parser.add_argument("--check", action="store_true", help="exit 1 if p99 > 5 ms")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    kit.raise_fd_limit(4096)
    if args.mode == "serve":
        asyncio.run(_serve(args.wrap_up))
        return 0
    wrap_ups = {"ended": 0.0, "wrapup": args.wrap_up, "api": 3600.0}
    runs: list[tuple[Handoff, dict[str, object]]] = []
    for trigger in args.trigger or TRIGGERS:
        child = _child(wrap_ups[trigger])
        agi, http = child.ports
        bench = Handoff(trigger, agi, http, wrap_ups[trigger])

        async def go(b: Handoff = bench) -> None:
            try:
                await b.fill(args.held)
                await b.run(args.samples, args.rate)
            finally:
                await b.close()

        try:
            asyncio.run(go())
        finally:
            stats = _stop(child)
        runs.append((bench, stats))
    print(f"Agent ready -> held caller's target on the fake Asterisk (reference center, 281 "
          f"agents logged in, {args.held} callers held, {args.rate:g} agents freed/s); "
          f"{kit.machine_load()}")
    for bench, stats in runs:
        print("  " + kit.fields(bench.summary()))
        print("    server: " + kit.fields(stats))
    held = Counter[int]()
    for bench, _ in runs:
        held.update(bench.held_commands)
    example = next((b.held_example for b, _ in runs if b.held_example), "")
    print(f"  AGI commands per held call (arrival to target): {dict(sorted(held.items()))}, "
          f"e.g.: {example}")
    checks = {f"p99 <= 5 ms ({bench.trigger})":
              percentile(bench.latencies, 99) <= GOAL_P99_S for bench, _ in runs}
    checks["every sample measured"] = all(len(b.latencies) == args.samples for b, _ in runs)
    return kit.report_checks(checks, args.check)


if __name__ == "__main__":
    raise SystemExit(main())
