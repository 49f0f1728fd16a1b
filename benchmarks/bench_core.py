"""Routing-core benchmark: events/s and p50/p99 per event type, reference center and scaled up.

Run: ``python benchmarks/bench_core.py [--events 200000] [--scales 1:500,10:500,10:5000,100:5000]
[--seed 1] [--json]``

Each scale ``N:Q`` is the reference center with every agent group N times larger
(:func:`acd.config.scale.scaled_center`: same sites, languages, skills and queues) and about Q
calls queued. All agents are logged in and the center is saturated: about Q calls wait at all
times while agents answer, talk, hang up, wrap up and take the next call; callers abandon and
new calls arrive with the reference country/language/queue mix. Every router entry point call
is timed on its own (the driver's own bookkeeping is not), on one core. The machine's load
average is printed with the table: on a shared machine compare builds measured in the same run.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import resource
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from acd import native
from acd.config.load import LoadedCenter, load_center
from acd.config.policy import center_policy
from acd.config.scale import scaled_center
from acd.core.model import CallEnded, Offer, Output
from acd.core.router import Router

ROOT = Path(__file__).resolve().parents[1]

# Reference mix (shares) for synthetic arrivals.
QUEUES = [("tech", 0.42), ("repair", 0.31), ("orders", 0.267), ("voc", 0.003)]
COUNTRIES = [("RU", "ru", 0.45), ("UA", "uk", 0.22), ("KZ", "kk", 0.08), ("BY", "be", 0.06),
             ("UZ", "uz", 0.06), ("AZ", "az", 0.03), ("GE", "ka", 0.02), ("AM", "hy", 0.02),
             ("KG", "ky", 0.02), ("MD", "ro", 0.015), ("TJ", "tg", 0.015), ("LV", "lv", 0.01)]


class Pool:
    """Call ids with O(1) add, discard and seeded random choice (a set's order is hash-seeded,
    so choosing from a set would make runs differ between processes)."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.where: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.items)

    def add(self, item: str) -> None:
        """Add ``item`` (not already in)."""
        self.where[item] = len(self.items)
        self.items.append(item)

    def discard(self, item: str) -> None:
        """Remove ``item`` if present."""
        i = self.where.pop(item, None)
        if i is None:
            return
        last = self.items.pop()
        if last != item:
            self.items[i] = last
            self.where[last] = i

    def choice(self, rng: random.Random) -> str:
        """A random item, drawn from ``rng``."""
        return self.items[rng.randrange(len(self.items))]


def run(center: LoadedCenter, events: int, queued: int, seed: int) -> dict[str, Any]:
    """Drive ``events`` router calls on ``center`` and return throughput and percentiles."""
    room = sum(q.max_length for q in center.config.queues.values())
    if room < queued:
        raise ValueError(f"the queues hold at most {room} calls, fewer than {queued}")
    router = Router(center_policy(center.config), center.agents)
    rng = random.Random(seed)
    now = 0.0
    for agent in center.agents:
        router.login(now, agent.id)
    waiting = Pool()
    ringing: dict[str, str] = {}
    talking: list[str] = []
    n = 0

    def arrival() -> list[Output]:
        nonlocal n
        n += 1
        q = rng.choices([x[0] for x in QUEUES], [x[1] for x in QUEUES])[0]
        c = rng.choices(COUNTRIES, [x[2] for x in COUNTRIES])[0]
        lang = c[1] if rng.random() < 0.7 else "ru"
        cid = f"c{n}"
        waiting.add(cid)
        return router.call_arrived(now, cid, q, lang, c[0], 0)

    def absorb(out: Sequence[object]) -> None:
        for o in out:
            if isinstance(o, Offer):
                waiting.discard(o.call_id)
                ringing[o.call_id] = o.agent_id
            elif isinstance(o, CallEnded):
                waiting.discard(o.call_id)
                ringing.pop(o.call_id, None)

    # Fill: every agent busy and `queued` calls waiting.
    while len(waiting) < queued or ringing:
        absorb(arrival())
        for cid in list(ringing):
            absorb(router.offer_answered(now, cid))
            ringing.pop(cid)
            talking.append(cid)
    samples: list[int] = []
    gc.collect()
    gc.disable()
    t_start = time.perf_counter()
    kinds: dict[str, list[int]] = {}
    while len(samples) < events:
        now += rng.expovariate(20.0)
        # Wake the router at each of its deadlines first, as the asyncio and SimPy drivers do.
        deadline = router.next_deadline()
        while deadline is not None and deadline <= now:
            t0 = time.perf_counter_ns()
            out = router.advance(deadline)
            dt = time.perf_counter_ns() - t0
            samples.append(dt)
            kinds.setdefault("timer", []).append(dt)
            absorb(out)
            deadline = router.next_deadline()
        r = rng.random()
        n_before = len(samples)
        if len(waiting) < queued:
            t0 = time.perf_counter_ns()
            out = arrival()
            samples.append(time.perf_counter_ns() - t0)
        elif ringing and r < 0.35:
            cid = next(iter(ringing))
            t0 = time.perf_counter_ns()
            if rng.random() < 0.03:
                out = router.offer_failed(now, cid)
            else:
                out = router.offer_answered(now, cid)
                talking.append(cid)
            samples.append(time.perf_counter_ns() - t0)
            ringing.pop(cid, None)
        elif talking and r < 0.60:
            cid = talking.pop(rng.randrange(len(talking)))
            t0 = time.perf_counter_ns()
            out = router.hangup(now, cid)
            samples.append(time.perf_counter_ns() - t0)
        elif waiting and r < 0.66:
            cid = waiting.choice(rng)
            t0 = time.perf_counter_ns()
            out = router.hangup(now, cid)
            samples.append(time.perf_counter_ns() - t0)
        elif r < 0.80:
            t0 = time.perf_counter_ns()
            out = arrival()
            samples.append(time.perf_counter_ns() - t0)
        else:
            continue
        kind = ("arrival", "answer", "hangup", "abandon", "arrival")[
            0 if len(waiting) < queued else 1 if r < 0.35 else 2 if r < 0.60 else
            3 if r < 0.66 else 4]
        kinds.setdefault(kind, []).extend(samples[n_before:])
        absorb(out)
    wall = time.perf_counter() - t_start
    gc.enable()
    samples.sort()
    busy_s = sum(samples) / 1e9
    return {
        "events": len(samples),
        "events_per_s_router": len(samples) / busy_s,
        "events_per_s_with_driver": len(samples) / wall,
        "p50_us": samples[len(samples) // 2] / 1000,
        "p99_us": samples[int(len(samples) * 0.99)] / 1000,
        "max_us": samples[-1] / 1000,
        "mean_us": statistics.fmean(samples) / 1000,
        "queued_at_end": len(waiting),
        "by_kind": {k: _percentiles(v) for k, v in sorted(kinds.items())},
    }


def _percentiles(samples: list[int]) -> tuple[int, float, float]:
    """Count, p50 and p99 in microseconds of nanosecond ``samples``."""
    s = sorted(samples)
    return len(s), s[len(s) // 2] / 1000, s[int(len(s) * 0.99)] / 1000


def parse_scales(text: str) -> list[tuple[int, int]]:
    """``"1:500,10:5000"`` as ``[(1, 500), (10, 5000)]`` (agent factor, calls queued)."""
    scales = []
    for part in text.split(","):
        factor, _, queued = part.partition(":")
        scales.append((int(factor), int(queued)))
    return scales


def _load(load: tuple[float, float, float]) -> str:
    return " ".join(f"{x:.2f}" for x in load)


KINDS = ("arrival", "answer", "hangup", "abandon", "timer")


def main() -> None:
    """Print the scaling table (or its figures as JSON lines with ``--json``)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000, help="events timed per scale")
    ap.add_argument("--scales", type=parse_scales, default=parse_scales(
        "1:500,10:500,10:5000,100:5000"), help="agent factor:calls queued, comma-separated")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="one JSON object per scale")
    args = ap.parse_args()
    reference = load_center(ROOT / "config" / "center.yaml")
    load_before = os.getloadavg()
    rows: list[dict[str, Any]] = []
    for factor, queued in args.scales:
        try:
            center = scaled_center(reference, factor)
            res = run(center, args.events, queued, args.seed)
        except MemoryError:
            print(f"{factor}x / {queued} queued: does not fit in memory")
            continue
        res.update(factor=factor, agents=len(center.agents), queued=queued,
                   load=os.getloadavg(),
                   max_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        if args.json:
            print(json.dumps(res), flush=True)
        rows.append(res)
    if args.json:
        return
    load = os.getloadavg()
    print(f"routing core ({native.build()}), {args.events:,} events per row, seed {args.seed}; "
          f"{os.cpu_count()} CPUs, load average (1/5/15 min) {_load(load_before)} before, "
          f"{_load(load)} after")
    print("targets: p99 at the reference <= 5 us; p99 at 10x within 2x of the reference")
    head = f"{'center':<16}{'queued':>7}{'events/s':>10}{'p50 us':>8}{'p99 us':>9}"
    print(head + "".join(f"{k + ' p50/p99':>19}" for k in KINDS) + f"{'max RSS':>9}")
    for r in rows:
        name = f"{r['factor']}x ({r['agents']:,})"
        line = f"{name:<16}"
        line += f"{r['queued']:>7,}{r['events_per_s_router']:>10,.0f}{r['p50_us']:>8.2f}"
        line += f"{r['p99_us']:>9.1f}"
        by_kind = r["by_kind"]
        for k in KINDS:
            if k in by_kind:
                _, p50, p99 = by_kind[k]
                line += f"{f'{p50:.2f} / {p99:.1f}':>19}"
            else:
                line += f"{'-':>19}"
        line += f"{r['max_rss_mb']:>7.0f}MB"
        print(line)


if __name__ == "__main__":
    main()
