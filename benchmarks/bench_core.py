"""Routing-core benchmark: events per second and p50/p99 per event, reference center, 500 queued.

Run: ``python benchmarks/bench_core.py [--events 200000] [--queued 500] [--seed 1]``

All 281 agents are logged in and the center is saturated: about ``--queued`` calls wait at all
times while agents answer, talk, hang up, wrap up and take the next call; callers abandon and
new calls arrive with the reference country/language/queue mix. Every router entry point call
is timed on its own (the driver's own bookkeeping is not), on one core.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
from pathlib import Path

from acd import native
from acd.config.load import load_center
from acd.config.policy import center_policy
from acd.core.model import CallEnded, Offer
from acd.core.router import Router

ROOT = Path(__file__).resolve().parents[1]

# Reference mix (shares) for synthetic arrivals.
QUEUES = [("tech", 0.42), ("repair", 0.31), ("orders", 0.267), ("voc", 0.003)]
COUNTRIES = [("RU", "ru", 0.45), ("UA", "uk", 0.22), ("KZ", "kk", 0.08), ("BY", "be", 0.06),
             ("UZ", "uz", 0.06), ("AZ", "az", 0.03), ("GE", "ka", 0.02), ("AM", "hy", 0.02),
             ("KG", "ky", 0.02), ("MD", "ro", 0.015), ("TJ", "tg", 0.015), ("LV", "lv", 0.01)]


def run(events: int, queued: int, seed: int) -> dict[str, object]:
    """Drive ``events`` router calls and return throughput and latency percentiles."""
    center = load_center(ROOT / "config" / "center.yaml")
    router = Router(center_policy(center.config), center.agents)
    rng = random.Random(seed)
    now = 0.0
    for agent in center.agents:
        router.login(now, agent.id)
    waiting: set[str] = set()
    ringing: dict[str, str] = {}
    talking: list[str] = []
    n = 0

    def arrival() -> list[object]:
        nonlocal n
        n += 1
        q = rng.choices([x[0] for x in QUEUES], [x[1] for x in QUEUES])[0]
        c = rng.choices(COUNTRIES, [x[2] for x in COUNTRIES])[0]
        lang = c[1] if rng.random() < 0.7 else "ru"
        cid = f"c{n}"
        waiting.add(cid)
        return router.call_arrived(now, cid, q, lang, c[0], 0)  # type: ignore[return-value]

    def absorb(out: list[object]) -> None:
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
            absorb(out)  # type: ignore[arg-type]
            deadline = router.next_deadline()
        r = rng.random()
        n_before = len(samples)
        if len(waiting) < queued:
            t0 = time.perf_counter_ns()
            out = arrival()  # type: ignore[assignment]
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
            cid = rng.choice(tuple(waiting)) if len(waiting) < 64 else next(iter(waiting))
            t0 = time.perf_counter_ns()
            out = router.hangup(now, cid)
            samples.append(time.perf_counter_ns() - t0)
        elif r < 0.80:
            t0 = time.perf_counter_ns()
            out = arrival()  # type: ignore[assignment]
            samples.append(time.perf_counter_ns() - t0)
        else:
            continue
        kind = ("arrival", "answer", "hangup", "abandon", "arrival")[
            0 if len(waiting) < queued else 1 if r < 0.35 else 2 if r < 0.60 else
            3 if r < 0.66 else 4]
        kinds.setdefault(kind, []).extend(samples[n_before:])
        absorb(out)  # type: ignore[arg-type]
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
        "by_kind": {k: (len(v), sorted(v)[len(v) // 2] / 1000, sorted(v)[int(len(v) * .99)] / 1000)
                    for k, v in kinds.items()},
    }


def main() -> None:
    """Print the benchmark's figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--queued", type=int, default=500)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    res = run(args.events, args.queued, args.seed)
    print(f"routing core ({native.build()}), reference center (281 agents), "
          f"~{args.queued} queued calls")
    print(f"  events timed           {res['events']:,}")
    print(f"  events/s (router only) {res['events_per_s_router']:,.0f}   target >= 50,000")
    print(f"  events/s (with driver) {res['events_per_s_with_driver']:,.0f}")
    print(f"  p50 per event          {res['p50_us']:.1f} us")
    print(f"  p99 per event          {res['p99_us']:.1f} us   target <= 100 us")
    print(f"  mean / max             {res['mean_us']:.1f} / {res['max_us']:.0f} us")
    print(f"  queued at end          {res['queued_at_end']}")
    for kind, (count, p50, p99) in sorted(res["by_kind"].items()):  # type: ignore[attr-defined]
        print(f"    {kind:<8} {count:>8,}  p50 {p50:6.1f} us  p99 {p99:6.1f} us")


if __name__ == "__main__":
    main()
