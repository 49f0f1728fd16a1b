"""Simulator benchmark: a month of reference traffic through the full router, and M/M/c ratios.

Run: ``python benchmarks/bench_sim.py [--days 30] [--replications 1] [--mmc-calls 30000]
[--rounds 5] [--ivr] [--profile] [--no-mmc] [--no-pure] [--no-long] [--year-only]
[--long-days 400]``; ``--no-mmc --no-pure --year-only`` times the month and the year alone.

(a) ``--days`` of the reference scenario (about 5,000 calls a day, 281 agents, two sites,
shifts and breaks) through the production router, one replication at a time on one core:
wall and CPU seconds per replication. ``--ivr`` runs the scenario whose
callers walk the real call flow as well and reports the IVR's cost per call.
(b) The same M/M/c (0.5 calls/s, AHT 180 s, 98 agents, the same number of calls) through the
router (``sim.mmc.simulate_mmc``), bare SimPy and ciw: microseconds per call and ratios
(targets: router engine within 3x of bare SimPy, >= 3x faster than ciw). The three run in
turn, ``--rounds`` times, and each is credited with its fastest round (the least disturbed by
the rest of the machine, as ``timeit`` does); the median round is printed beside it.

Both parts run on the build in use (mypyc-compiled where ``setup.py`` could compile) and then,
unless ``--no-pure``, again in a child process on the pure-Python build (``ACD_PURE_PYTHON=1``),
so the gain from compiling is measured in the same run.

(d) Long runs, unless ``--no-long`` (``--year-only``: the year alone): a year of reference
traffic (about 1.8 million calls) in one replication (target: <= 15 s on one core); a month
of the center ten times larger (2,810 agents in the same groups, sites and language mix, ten
times the traffic: about 1.5 million calls; target <= 30 s); and ``acd sim run --days 400
-r 1 -j 1`` in a child process, whose peak resident memory (target < 1 GB) and
``summary.json`` size are printed. Times are wall seconds of the replication's run (setup
apart) with the CPU seconds beside them: on a shared machine the CPU time is the steadier
figure.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import math
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from acd import native  # noqa: E402
from sim.baselines import ciw_mmc, simpy_mmc  # noqa: E402
from sim.mmc import simulate_mmc  # noqa: E402
from sim.run import RunSpec, load_run_scenario, simulation_for  # noqa: E402
from sim.scenario import load_scenario  # noqa: E402

SCENARIOS = ROOT / "config" / "scenarios"
RATE, AHT, AGENTS = 0.5, 180.0, 98


def month(days: float, seed: int, ivr: bool, profile: bool) -> dict[str, float]:
    """One replication of the reference scenario; wall seconds for setup and for the run, and
    the run's CPU seconds (the steadier figure on a shared machine)."""
    t0 = time.perf_counter()
    scenario = load_scenario(SCENARIOS / ("reference-ivr.yaml" if ivr else "reference.yaml"),
                             days=days)
    sim = simulation_for(scenario, np.random.SeedSequence(seed))
    setup = time.perf_counter() - t0
    prof = cProfile.Profile() if profile else None
    if prof is not None:
        prof.enable()
    cpu = time.process_time()
    result = sim.run()
    cpu = time.process_time() - cpu
    if prof is not None:
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    out = {"calls": float(result.calls_simulated), "setup_s": setup, "run_s": result.wall_s,
           "cpu_s": cpu}
    if sim.ivr is not None:
        out["ivr_us_per_call"] = sim.ivr.cost.us_per_call
        out["ivr_s"] = sim.ivr.cost.seconds
    return out


def replication(days: float, seed: int, factor: int = 1) -> dict[str, float]:
    """One replication of the reference scenario, its center and traffic ``factor`` times
    larger; wall and CPU seconds of the run, calls, and setup seconds."""
    t0 = time.perf_counter()
    spec = RunSpec(str(SCENARIOS / "reference.yaml"), {"days": days, "volume_scale": factor},
                   agent_scale=factor)
    scenario = load_run_scenario(spec)
    sim = simulation_for(scenario, np.random.SeedSequence(seed), keep_calls=False)
    setup = time.perf_counter() - t0
    cpu = time.process_time()
    result = sim.run()
    return {"calls": float(result.calls_simulated), "run_s": result.wall_s,
            "cpu_s": time.process_time() - cpu, "setup_s": setup,
            "agents": float(len(scenario.center.agents))}


def long_run_memory(days: float, seed: int) -> dict[str, float]:
    """``acd sim run --days DAYS -r 1 -j 1`` in a child process: its peak resident memory
    (MB, the kernel's high-water mark), wall seconds, and the size of its summary.json."""
    code = ("import resource, sys\n"
            "from acd.cli import main\n"
            "status = main(sys.argv[1:])\n"
            "print('maxrss_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
            "sys.exit(status)\n")
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-c", code, "sim", "run", "--days", f"{days:g}", "-r", "1",
               "-j", "1", "-q", "--seed", str(seed), "--out", out]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
        wall = time.perf_counter() - t0
        if done.returncode not in (0, 1):
            raise RuntimeError(f"acd sim run failed: {done.stderr.strip()[-500:]}")
        kb = next(int(line.split()[1]) for line in done.stdout.splitlines()
                  if line.startswith("maxrss_kb"))
        size = (Path(out) / "summary.json").stat().st_size
        calls = next((line for line in done.stdout.splitlines() if "calls simulated" in line),
                     "")
    return {"maxrss_mb": kb / 1024, "wall_s": wall, "summary_mb": size / 1e6,
            "calls": float(calls.split(" calls simulated")[0].split()[-1].replace(",", ""))
            if calls else math.nan}


def print_long(args: argparse.Namespace, build: str) -> None:
    """Part (d): a year, the center at 10x for a month, and a long run's memory."""
    print(f"(d) long runs ({build}, one core; wall s, CPU s in brackets)")
    y = replication(365.0, args.seed)
    print(f"  reference year: {y['calls']:,.0f} calls, run {y['run_s']:.2f} s "
          f"[{y['cpu_s']:.2f} CPU s], {1e6 * y['cpu_s'] / y['calls']:.1f} CPU us/call "
          f"(target <= 15 s: {'met' if min(y['run_s'], y['cpu_s']) <= 15 else 'MISSED'}); "
          f"setup {y['setup_s']:.2f} s")
    if args.year_only:
        return
    x = replication(30.0, args.seed, factor=10)
    print(f"  10x center month ({x['agents']:,.0f} agents): {x['calls']:,.0f} calls, run "
          f"{x['run_s']:.2f} s [{x['cpu_s']:.2f} CPU s], "
          f"{1e6 * x['cpu_s'] / x['calls']:.1f} CPU us/call (target <= 30 s: "
          f"{'met' if min(x['run_s'], x['cpu_s']) <= 30 else 'MISSED'}); "
          f"setup {x['setup_s']:.2f} s")
    m = long_run_memory(args.long_days, args.seed)
    print(f"  acd sim run --days {args.long_days:g} -r 1 -j 1: peak RSS {m['maxrss_mb']:.0f} MB "
          f"(target < 1024: {'met' if m['maxrss_mb'] < 1024 else 'MISSED'}), summary.json "
          f"{m['summary_mb']:.1f} MB, {m['calls']:,.0f} calls, {m['wall_s']:.1f} s in all")


def mmc(calls: int, seed: int, rounds: int) -> dict[str, list[float]]:
    """The same M/M/c through the router, bare SimPy and ciw, in turn: us per call per round."""
    hours = calls / RATE / 3600
    out: dict[str, list[float]] = {"router": [], "router_total": [], "simpy": [], "ciw": []}
    n = 0
    for _ in range(rounds):
        t0 = time.perf_counter()
        routed = simulate_mmc(RATE, AHT, AGENTS, hours, seed)
        router_total = time.perf_counter() - t0
        n = routed.calls_simulated
        out["router"].append(1e6 * routed.wall_s / n)
        out["router_total"].append(1e6 * router_total / n)
        out["simpy"].append(1e6 * simpy_mmc(RATE, AHT, AGENTS, n, seed).wall_seconds / n)
        out["ciw"].append(1e6 * ciw_mmc(RATE, AHT, AGENTS, n, seed).wall_seconds / n)
    out["calls"] = [float(n)]
    return out


def pure_python_figures(args: argparse.Namespace) -> dict[str, float] | None:
    """Both parts again in a child process on the pure-Python build; None if that fails."""
    cmd = [sys.executable, __file__, "--json", "--days", str(args.days), "--seed", str(args.seed),
           "--mmc-calls", str(args.mmc_calls), "--rounds", str(args.rounds)]
    env = {**os.environ, native.ENV: "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"  (pure-Python run failed: {done.stderr.strip().splitlines()[-1:]})")
        return None
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    """Run both parts and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=float, default=30.0)
    ap.add_argument("--replications", type=int, default=1)
    ap.add_argument("--mmc-calls", type=int, default=30_000)
    ap.add_argument("--rounds", type=int, default=5, help="M/M/c rounds; the fastest counts")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--ivr", action="store_true", help="also run the IVR-flow scenario")
    ap.add_argument("--profile", action="store_true", help="cProfile the first replication")
    ap.add_argument("--no-pure", action="store_true",
                    help="skip the comparison run on the pure-Python build")
    ap.add_argument("--no-long", action="store_true",
                    help="skip the long runs (a year, the 10x month, a long run's memory)")
    ap.add_argument("--year-only", action="store_true",
                    help="of the long runs, time the reference year only")
    ap.add_argument("--no-mmc", action="store_true", help="skip the M/M/c comparison (b)")
    ap.add_argument("--long-days", type=float, default=400.0,
                    help="days of the run whose peak memory is measured (400)")
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    build = native.build()

    if args.json:  # the child of pure_python_figures: one replication, figures as JSON
        m = month(args.days, args.seed, False, False)
        b = mmc(args.mmc_calls, args.seed, args.rounds)
        print(json.dumps({"build": build, "month_s": m["run_s"], "month_calls": m["calls"],
                          **{k: min(v) for k, v in b.items()}}))
        return

    print(f"(a) reference scenario, {args.days:g} days, full router ({build}), one core")
    month_s = []
    for ivr in (False, True) if args.ivr else (False,):
        for r in range(args.replications):
            m = month(args.days, args.seed + r, ivr, args.profile and r == 0)
            if not ivr:
                month_s.append(m["run_s"])
            extra = (f", IVR {m['ivr_s']:.2f} s = {m['ivr_us_per_call']:.1f} us/call"
                     if ivr else "")
            print(f"  {'ivr flow' if ivr else 'ivr_time'} replication {r + 1}: "
                  f"{m['calls']:,.0f} calls, run {m['run_s']:.2f} s [{m['cpu_s']:.2f} CPU s], "
                  f"setup {m['setup_s']:.2f} s, {1e6 * m['run_s'] / m['calls']:.1f} us/call"
                  f"{extra}")

    if not args.no_mmc:
        best = print_mmc(args, build)
        if not args.no_pure and build == "compiled":
            print_pure(args, month_s, best)
    if not args.no_long:
        print_long(args, build)


def print_mmc(args: argparse.Namespace, build: str) -> dict[str, float]:
    """Part (b): the M/M/c through the router, bare SimPy and ciw; the best rounds."""
    print(f"(b) M/M/c {RATE:g} calls/s, AHT {AHT:g} s, {AGENTS} agents, router build: {build}; "
          f"fastest of {args.rounds} rounds (median)")
    b = mmc(args.mmc_calls, args.seed, args.rounds)
    best = {k: min(v) for k, v in b.items()}
    med = {k: statistics.median(v) for k, v in b.items()}
    print(f"  calls {best['calls']:,.0f}")
    print(f"  router engine  {best['router']:7.1f} us/call ({med['router']:.1f}); "
          f"{best['router_total']:.1f} with center and arrival setup")
    print(f"  bare SimPy     {best['simpy']:7.1f} us/call ({med['simpy']:.1f})")
    print(f"  ciw            {best['ciw']:7.1f} us/call ({med['ciw']:.1f})")
    vs_simpy = best["router"] / best["simpy"]
    vs_ciw = best["ciw"] / best["router"]
    print(f"  router / SimPy = {vs_simpy:.2f}x (target <= 3x: "
          f"{'met' if vs_simpy <= 3 else 'MISSED'})")
    print(f"  ciw / router   = {vs_ciw:.2f}x (target >= 3x: {'met' if vs_ciw >= 3 else 'MISSED'})")
    return best


def print_pure(args: argparse.Namespace, month_s: list[float], best: dict[str, float]) -> None:
    """Part (c): parts (a) and (b) again on the pure-Python build."""
    print("(c) the same on the pure-Python build (ACD_PURE_PYTHON=1, child process)")
    p = pure_python_figures(args)
    if p is None:
        return
    print(f"  reference scenario {args.days:g} days: run {p['month_s']:.2f} s "
          f"({1e6 * p['month_s'] / p['month_calls']:.1f} us/call); compiled is "
          f"{p['month_s'] / month_s[0]:.2f}x faster")
    print(f"  M/M/c router engine {p['router']:.1f} us/call; compiled is "
          f"{p['router'] / best['router']:.2f}x faster; pure router / SimPy = "
          f"{p['router'] / p['simpy']:.2f}x, ciw / pure router = {p['ciw'] / p['router']:.2f}x")


if __name__ == "__main__":
    main()
