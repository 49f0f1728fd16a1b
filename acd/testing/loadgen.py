"""FastAGI load generator: many concurrent fake-Asterisk calls against a server on loopback.

Each fake call connects, sends an Asterisk 22 environment block for the ``hold`` script,
times the first command (time to first command, TTFC: from the start of the TCP connect to
the first command byte), answers it, and later hangs up with the out-of-band ``HANGUP`` line
and waits for the server to close. `hold_server` is the matching server: ``SET MUSIC ON``,
then wait for the hangup, as a queued caller does.

``python -m acd.testing.loadgen serve --port 0`` runs that server in its own process
(prints ``PORT <n>``; on stdin, ``stats`` prints its counters as JSON, EOF stops it), so the
server and the load each get a core; ``benchmarks/bench_fastagi.py`` drives both.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol

from acd.asterisk.agi import commands
from acd.asterisk.agi.server import AgiSession, FastAgiServer, Handler
from acd.testing.fake_agi import environment_block

HOLD_SCRIPT = "hold"
_FIRST_COMMAND = commands.set_music(True)


async def hold_caller(session: AgiSession) -> None:
    """Server side of a held call: music on hold until the caller hangs up."""
    await session.command(commands.set_music(True))
    await session.wait_for_hangup()


def hold_server(host: str = "127.0.0.1", port: int = 0, max_sessions: int = 5000) -> FastAgiServer:
    """A FastAGI server whose only script, ``hold``, runs `hold_caller`."""
    handlers: dict[str, Handler] = {HOLD_SCRIPT: hold_caller}
    return FastAgiServer(handlers.get, host, port, max_sessions=max_sessions)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]


@dataclass
class LoadResult:
    """Outcome of one load phase; TTFC values in seconds."""

    phase: str
    sessions: int = 0
    failures: int = 0
    seconds: float = 0.0
    peak_held: int = 0
    ttfc: list[float] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        """Completed sessions per second of the phase."""
        return self.sessions / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> dict[str, float | int | str]:
        """Figures for printing: counts, rate and TTFC percentiles in milliseconds."""
        return {
            "phase": self.phase,
            "sessions": self.sessions,
            "failures": self.failures,
            "seconds": round(self.seconds, 2),
            "sessions_per_s": round(self.per_second, 1),
            "peak_held": self.peak_held,
            "ttfc_p50_ms": round(percentile(self.ttfc, 50) * 1000, 2),
            "ttfc_p99_ms": round(percentile(self.ttfc, 99) * 1000, 2),
            "ttfc_max_ms": round(max(self.ttfc, default=float("nan")) * 1000, 2),
        }


class _Call:
    """One fake Asterisk call, kept small: thousands run at once."""

    def __init__(self, host: str, port: int, env: bytes, timeout: float) -> None:
        self.host, self.port, self.env, self.timeout = host, port, env, timeout
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def answer_first_command(self) -> float:
        """Connect, send the environment, answer the first command; returns the TTFC."""
        started = time.perf_counter()
        async with asyncio.timeout(self.timeout):
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            self.writer.write(self.env)
            line = await self.reader.readline()
        ttfc = time.perf_counter() - started
        if line != _FIRST_COMMAND:
            raise ConnectionError(f"Expected {_FIRST_COMMAND!r}, got {line!r}.")
        self.writer.write(b"200 result=0\n")
        return ttfc

    async def hang_up(self) -> None:
        """Send HANGUP and wait for the server to close the socket."""
        assert self.reader is not None and self.writer is not None
        self.writer.write(b"HANGUP\n")
        async with asyncio.timeout(self.timeout):
            while await self.reader.read(4096):
                pass
        self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _env(n: int) -> bytes:
    return environment_block(
        HOLD_SCRIPT, callerid=f"+7916{n % 10_000_000:07d}", uniqueid=f"1795609297.{n}"
    )


async def held_sessions(
    host: str, port: int, count: int, *, connect_concurrency: int = 100, timeout: float = 30.0
) -> LoadResult:
    """Open ``count`` calls and hold them all at once, then hang them all up."""
    result = LoadResult("held")
    release = asyncio.Event()
    gate = asyncio.Semaphore(connect_concurrency)
    held = 0

    async def one(n: int) -> None:
        nonlocal held
        call = _Call(host, port, _env(n), timeout)
        try:
            async with gate:
                result.ttfc.append(await call.answer_first_command())
            held += 1
            result.peak_held = max(result.peak_held, held)
            await release.wait()
            await call.hang_up()
            held -= 1
            result.sessions += 1
        except (OSError, TimeoutError):
            result.failures += 1
            call.close()

    started = time.perf_counter()
    tasks = [asyncio.create_task(one(n)) for n in range(count)]
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            while held + result.failures < count:
                await asyncio.sleep(0.05)
    release.set()
    await asyncio.gather(*tasks)
    result.seconds = time.perf_counter() - started
    return result


class Caller(Protocol):
    """One fake call the load phases drive: connect, first command, hang up."""

    async def answer_first_command(self) -> float:
        """Connect and answer the first command; return the time to first command (s)."""

    async def hang_up(self) -> None:
        """Hang up and wait for the server to close."""

    def close(self) -> None:
        """Drop the connection after a failure."""


CallFactory = Callable[[int], Caller]


def _hold_calls(host: str, port: int, timeout: float) -> CallFactory:
    return lambda n: _Call(host, port, _env(n), timeout)


async def _complete(call: Caller, result: LoadResult) -> None:
    """One short call: first command, hang up; counted as a session or a failure."""
    try:
        result.ttfc.append(await call.answer_first_command())
        await call.hang_up()
        result.sessions += 1
    except (OSError, TimeoutError):
        result.failures += 1
        call.close()


async def session_rate(
    host: str, port: int, total: int, *, concurrency: int = 32, timeout: float = 10.0,
    make_call: CallFactory | None = None, first: int = 0,
) -> LoadResult:
    """Complete ``total`` short calls with ``concurrency`` callers back to back.

    ``make_call(n)`` builds call number ``n`` (default: a call on the hold script).
    """
    result = LoadResult("rate")
    numbers = iter(range(first, first + total))
    make = make_call or _hold_calls(host, port, timeout)

    async def caller() -> None:
        for n in numbers:
            await _complete(make(n), result)

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - started
    return result


async def open_loop(
    host: str, port: int, rate: float, duration: float, *, seed: int = 1, timeout: float = 10.0,
    make_call: CallFactory | None = None, first: int = 0,
) -> LoadResult:
    """Poisson arrivals at ``rate`` calls/s for ``duration`` s: TTFC at a given offered load."""
    result = LoadResult(f"open-loop {rate:g}/s")
    rng = random.Random(seed)
    tasks: list[asyncio.Task[None]] = []
    make = make_call or _hold_calls(host, port, timeout)

    async def one(n: int) -> None:
        await _complete(make(n), result)

    loop = asyncio.get_running_loop()
    started = loop.time()
    next_at = started
    n = first
    while next_at - started < duration:
        await asyncio.sleep(max(0.0, next_at - loop.time()))
        tasks.append(asyncio.create_task(one(n)))
        n += 1
        next_at += rng.expovariate(rate)
    await asyncio.gather(*tasks)
    result.seconds = loop.time() - started
    return result


async def _serve(host: str, port: int, max_sessions: int) -> None:
    server = hold_server(host, port, max_sessions)
    await server.start()
    print(f"PORT {server.port}", flush=True)
    try:
        while line := await asyncio.to_thread(sys.stdin.readline):
            if line.strip() == "stats":
                stats = asdict(server.stats) | {
                    "active_sessions": server.active_sessions,
                    "cpu_seconds": round(time.process_time(), 3),
                }
                print(json.dumps(stats), flush=True)
    finally:
        await server.close(grace=2.0)


def main(argv: Sequence[str] | None = None) -> None:
    """``serve``: run the hold server; ``load``: run the three phases against a port."""
    parser = argparse.ArgumentParser(prog="python -m acd.testing.loadgen")
    sub = parser.add_subparsers(dest="mode", required=True)
    serve = sub.add_parser("serve", help="run the hold server until stdin closes")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0)
    serve.add_argument("--max-sessions", type=int, default=5000)
    load = sub.add_parser("load", help="run the load phases against a running server")
    load.add_argument("--host", default="127.0.0.1")
    load.add_argument("--port", type=int, required=True)
    load.add_argument("--held", type=int, default=1000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.mode == "serve":
        asyncio.run(_serve(args.host, args.port, args.max_sessions))
        return

    async def phases() -> None:
        for coro in (
            held_sessions(args.host, args.port, args.held),
            session_rate(args.host, args.port, 2000),
            open_loop(args.host, args.port, 300.0, 5.0),
        ):
            print(json.dumps((await coro).summary()), flush=True)

    asyncio.run(phases())


if __name__ == "__main__":
    main()
