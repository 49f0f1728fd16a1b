"""Record-store benchmark: what keeping records costs the call path, SQLite against PostgreSQL.

Drives the router service through answered calls (arrive, offer answered, hang up, agent
ready again) with the service's two writing observers attached (call records with
``live_calls``, agent states) and prints, per store: the store's time per call (the same run
without a store subtracted), the store steps per call (a statement, or a batch sent as one),
and mean/p50/p99/max of one step's time (what one router event blocks the event loop for).
PostgreSQL runs on loopback: the server ``--pg-url`` names, else a throwaway one started like
the tests' (tests/pgkit.py) but with fsync on, so ``synchronous: full`` pays its WAL flush.
Usage: ``python benchmarks/bench_records.py [--calls 2000] [--pg-url postgresql://...]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from recordkit import AnsweringOwner, complete_call, writing_service  # noqa: E402

from acd.runtime.records import CallRecords, open_store  # noqa: E402
from acd.runtime.router_service import Observer  # noqa: E402
from acd.runtime.store import RecordStore  # noqa: E402
from acd.service.state import AgentStateStore  # noqa: E402


def timed(spent: list[float], function: Callable[..., Any]) -> Callable[..., Any]:
    """``function``, adding each call's duration to ``spent``."""
    def run(*args: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return function(*args)
        finally:
            spent.append(time.perf_counter() - t0)
    return run


async def run_calls(store: RecordStore | None, calls: int) -> tuple[float, list[float]]:
    """Seconds per call, and every store statement's duration."""
    spent: list[float] = []
    writers: list[Observer] = []
    if store is not None:
        store.execute = timed(spent, store.execute)  # type: ignore[method-assign]
        store.execute_batch = timed(spent, store.execute_batch)  # type: ignore[method-assign]
        writers = [CallRecords(store), AgentStateStore(store)]
    service = writing_service(*writers)
    owner = AnsweringOwner(service)
    t0 = time.perf_counter()
    for n in range(calls):
        complete_call(service, f"bench-{n}", owner)
    per_call = (time.perf_counter() - t0) / calls
    service.close()
    return per_call, spent


def report(name: str, per_call: float, base: float, spent: list[float], calls: int) -> None:
    """One line of the table."""
    steps = sorted(spent)
    q = statistics.quantiles(steps, n=100)
    print(f"{name:<20} {(per_call - base) * 1e6:9.0f} {len(steps) / calls:6.1f} "
          f"{statistics.fmean(steps) * 1e6:8.0f} {q[49] * 1e6:8.0f} {q[98] * 1e6:8.0f} "
          f"{steps[-1] * 1e6:8.0f}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--pg-url", help="a PostgreSQL database to write into (emptied first)")
    args = parser.parse_args()
    server = None
    url = args.pg_url
    if url is None:
        from pgkit import LocalPgServer, bindir

        found = bindir()
        if found is None:
            sys.exit("no PostgreSQL binaries (initdb) found; give --pg-url")
        server = LocalPgServer(found, durable=True)
        server.start()
        url = server.url(server.create_database())
    try:
        base, _ = await run_calls(None, args.calls)
        print(f"router alone: {base * 1e6:.0f} us per call ({args.calls} calls); "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print(f"{'store':<20} {'us/call':>9} {'steps':>6} {'mean us':>8} {'p50 us':>8} "
              f"{'p99 us':>8} {'max us':>8}")
        with tempfile.TemporaryDirectory() as tmp:
            for sync in ("normal", "full"):
                store = open_store(Path(tmp) / f"{sync}.sqlite3", sync)
                per_call, spent = await run_calls(store, args.calls)
                store.close()
                report(f"sqlite {sync}", per_call, base, spent, args.calls)
        for sync in ("normal", "full"):
            store = open_store(url, sync)
            for table in ("calls", "live_calls", "agent_states"):
                store.execute(f"DELETE FROM {table}")
            per_call, spent = await run_calls(store, args.calls)
            store.close()
            report(f"postgresql {sync}", per_call, base, spent, args.calls)
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    asyncio.run(main())
