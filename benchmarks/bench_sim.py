"""Simulator benchmark: a month of reference traffic through the full router, and M/M/c ratios.

Run: ``python benchmarks/bench_sim.py [--days 30] [--replications 1] [--mmc-calls 30000]
[--ivr] [--profile]``

(a) ``--days`` of the reference scenario (about 5,000 calls a day, 281 agents, two sites,
shifts and breaks) through the production router, one replication at a time on one core:
wall seconds per replication (target: 30 days <= 15 s). ``--ivr`` runs the scenario whose
callers walk the real call flow as well and reports the IVR's cost per call.
(b) The same M/M/c (0.5 calls/s, AHT 180 s, 98 agents, the same number of calls) through the
router (``sim.mmc.simulate_mmc``), bare SimPy and ciw: microseconds per call and ratios
(targets: router engine within 3x of bare SimPy, >= 3x faster than ciw).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sim.baselines import ciw_mmc, simpy_mmc  # noqa: E402
from sim.engine import DRAIN_S, Simulation  # noqa: E402
from sim.mmc import simulate_mmc  # noqa: E402
from sim.run import arrivals_for  # noqa: E402
from sim.scenario import load_scenario  # noqa: E402
from sim.staffing import build_timeline  # noqa: E402

SCENARIOS = ROOT / "config" / "scenarios"
RATE, AHT, AGENTS = 0.5, 180.0, 98


def month(days: float, seed: int, ivr: bool, profile: bool) -> dict[str, float]:
    """One replication of the reference scenario; wall seconds for setup and for the run."""
    t0 = time.perf_counter()
    scenario = load_scenario(SCENARIOS / ("reference-ivr.yaml" if ivr else "reference.yaml"),
                             days=days)
    traffic_ss, staffing_ss, engine_ss = np.random.SeedSequence(seed).spawn(3)
    arrivals, start, horizon = arrivals_for(scenario, None, np.random.default_rng(traffic_ss))
    s = scenario.spec
    timeline = build_timeline(scenario.center.config, scenario.center.agents, s.staffing,
                              start, horizon + DRAIN_S, np.random.default_rng(staffing_ss))
    sim = Simulation(scenario.center, arrivals, timeline, s.behaviour, start, horizon,
                     s.interval_minutes * 60.0, int(engine_ss.generate_state(1)[0]))
    setup = time.perf_counter() - t0
    prof = cProfile.Profile() if profile else None
    if prof is not None:
        prof.enable()
    result = sim.run()
    if prof is not None:
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    out = {"calls": float(len(result.calls)), "setup_s": setup, "run_s": result.wall_s}
    if sim.ivr is not None:
        out["ivr_us_per_call"] = sim.ivr.cost.us_per_call
        out["ivr_s"] = sim.ivr.cost.seconds
    return out


def mmc(calls: int, seed: int) -> dict[str, float]:
    """The same M/M/c through the router, bare SimPy and ciw; wall seconds and calls each."""
    hours = calls / RATE / 3600
    t0 = time.perf_counter()
    routed = simulate_mmc(RATE, AHT, AGENTS, hours, seed)
    router_total = time.perf_counter() - t0
    n = len(routed.calls)
    bare = simpy_mmc(RATE, AHT, AGENTS, n, seed)
    ciw = ciw_mmc(RATE, AHT, AGENTS, n, seed)
    return {"calls": n, "router_run_s": routed.wall_s, "router_total_s": router_total,
            "simpy_s": bare.wall_seconds, "ciw_s": ciw.wall_seconds}


def main() -> None:
    """Run both parts and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=float, default=30.0)
    ap.add_argument("--replications", type=int, default=1)
    ap.add_argument("--mmc-calls", type=int, default=30_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--ivr", action="store_true", help="also run the IVR-flow scenario")
    ap.add_argument("--profile", action="store_true", help="cProfile the first replication")
    args = ap.parse_args()

    print(f"(a) reference scenario, {args.days:g} days, full router, one core")
    for ivr in (False, True) if args.ivr else (False,):
        for r in range(args.replications):
            m = month(args.days, args.seed + r, ivr, args.profile and r == 0)
            extra = (f", IVR {m['ivr_s']:.2f} s = {m['ivr_us_per_call']:.1f} us/call"
                     if ivr else "")
            verdict = "" if args.days != 30 else (" (target <= 15 s: "
                                                  f"{'met' if m['run_s'] <= 15 else 'MISSED'})")
            print(f"  {'ivr flow' if ivr else 'ivr_time'} replication {r + 1}: "
                  f"{m['calls']:,.0f} calls, run {m['run_s']:.2f} s{verdict}, "
                  f"setup {m['setup_s']:.2f} s, {1e6 * m['run_s'] / m['calls']:.1f} us/call"
                  f"{extra}")

    print(f"(b) M/M/c {RATE:g} calls/s, AHT {AHT:g} s, {AGENTS} agents")
    b = mmc(args.mmc_calls, args.seed)
    n = b["calls"]
    per = {k: 1e6 * b[k] / n for k in ("router_run_s", "router_total_s", "simpy_s", "ciw_s")}
    print(f"  calls {n:,.0f}")
    print(f"  router engine  {per['router_run_s']:7.1f} us/call "
          f"({per['router_total_s']:.1f} with center and arrival setup)")
    print(f"  bare SimPy     {per['simpy_s']:7.1f} us/call")
    print(f"  ciw            {per['ciw_s']:7.1f} us/call")
    vs_simpy = per["router_run_s"] / per["simpy_s"]
    vs_ciw = per["ciw_s"] / per["router_run_s"]
    print(f"  router / SimPy = {vs_simpy:.2f}x (target <= 3x: "
          f"{'met' if vs_simpy <= 3 else 'MISSED'})")
    print(f"  ciw / router   = {vs_ciw:.2f}x (target >= 3x: {'met' if vs_ciw >= 3 else 'MISSED'})")


if __name__ == "__main__":
    main()
