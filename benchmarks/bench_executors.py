"""Executor benchmark: replications per second locally at 1 and 2 processes and on Dask.

Run: ``python benchmarks/bench_executors.py [--days 3] [-r 8] [--keep-calls] [--rounds 1]
[--dask-malloc-trim]``

The same replications of the reference scenario (same seeds) run on a local executor of one
process, one of two processes, and a two-worker ``distributed.LocalCluster`` (one thread per
worker), in that order, and the other way round in every second round. Each executor is
started first (processes spawned, the simulator imported in each): that start-up is printed
apart, as a user pays it once per command, and the run is timed from the first task submitted
to the last result back (goal: two workers >= 1.8x one process).

Where a run loses time is printed from each task's own timing: how much slower a task ran
than alone (two busy processes share caches, memory and the CPU's clock; other users' load),
how much of the workers' time went to tasks (the rest is waiting for the first task,
between tasks, or idle at the end while the other worker finishes), and the CPU that every
process of the run (this one, workers, Dask's scheduler and nannies) used beyond the tasks'
own, in total and apart for this process, the processes that ran tasks (a Dask worker's event
loop, which hands each result over) and the others: on two cores it is taken from the tasks.
A task's CPU seconds are printed too: on a busy machine they say more than the wall clock. A
plain two-process CPU burn gives the machine's own ceiling in the same run. Every executor's
numbers are checked equal to the first's. The load average is printed: on a shared machine the
speed-ups are only as good as the free cores. The page faults of a task are printed too:
unlike its CPU time they hardly follow the other users' load. ``--dask-malloc-trim`` adds a
cluster whose nannies set Dask's own ``MALLOC_TRIM_THRESHOLD_`` (what ``--dask local`` leaves
out) in each round.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import pickle
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil  # comes with Dask's distributed, which this benchmark needs anyway

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sim.executor import QUIET_CLUSTER, DaskExecutor, LocalExecutor, TaskTiming  # noqa: E402
from sim.kpi import kpis  # noqa: E402
from sim.records import RunResult  # noqa: E402
from sim.run import RunSpec, clear_shared, default_scenario, run_replications  # noqa: E402

#: Iterations of the CPU burn: about a second of pure Python on a current core.
BURN_STEPS = 20_000_000


@dataclass(frozen=True)
class Run:
    """One executor's run: its rates, where the time went and the numbers it produced."""

    name: str
    workers: int
    start_s: float
    wall_s: float
    n: int
    task_s: float  # mean wall seconds of a task
    task_cpu_s: float  # mean CPU seconds of a task: above one process's when they contend
    set_up_s: float  # mean seconds of a task before its simulation ran (scenario, traffic)
    cpu_share: float  # task CPU / task wall: below 1 when the process waited for a core
    busy: float  # task seconds / (workers x wall)
    first_s: float  # mean wait from the submission to a worker's first task
    tail_s: float  # mean idle of a worker after its last task, until the run ended
    result_mb: float  # pickled size of a result, as it comes back from a worker
    overhead: float  # CPU of every process of the run beyond the tasks' own, as a share of it
    #: The same, apart: this process (client, Dask's scheduler, the pool's threads), the
    #: processes that ran tasks (beyond the tasks: event loops, result hand-over), the others
    #: (Dask's nannies).
    overhead_parts: tuple[float, float, float]
    faults: float  # mean minor page faults of a task (-1: not counted on this system)
    sl: tuple[float, ...]

    @property
    def rate(self) -> float:
        """Replications per second, start-up excluded."""
        return self.n / self.wall_s


def load() -> str:
    """The load averages over 1, 5 and 15 minutes."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _timed(name: str, executor: LocalExecutor | DaskExecutor, started: float, spec: RunSpec,
           n: int) -> Run:
    # Nothing kept from an earlier round in this process, where the one-process executor runs
    # its tasks: every executor starts cold, as a command does (pool processes and Dask workers
    # are new each round).
    clear_shared()
    try:
        cpu0, t0 = tree_cpu(), time.time()
        results = run_replications(spec, n, 1, executor=executor)
        t1, cpu1 = time.time(), tree_cpu()
        timings = executor.timings
    finally:
        executor.close()
    run = summarise(name, executor.workers, started, t0, t1, timings, results,
                    {pid: cpu1[pid] - cpu0.get(pid, 0.0) for pid in cpu1})
    print(f"{name:<28} start-up {run.start_s:4.1f} s, run {run.wall_s:6.1f} s: "
          f"{run.rate:5.3f} replications/s ({n / (run.wall_s + run.start_s):.3f} with "
          f"start-up); load {load()}", flush=True)
    print(f"{'':<28} task {run.task_s:5.2f} s (set-up {run.set_up_s:4.2f} s; CPU "
          f"{run.task_cpu_s:4.2f} s, {run.cpu_share:4.0%} of it); workers busy {run.busy:4.0%} "
          f"(first task after "
          f"{run.first_s:4.2f} s, idle at the end {run.tail_s:4.2f} s); a result "
          f"{run.result_mb:.1f} MB; CPU beyond the tasks' {run.overhead:+.1%} (this process "
          f"{run.overhead_parts[0]:+.1%}, task processes {run.overhead_parts[1]:+.1%}, others "
          f"{run.overhead_parts[2]:+.1%}); page faults "
          f"{run.faults:,.0f} a task", flush=True)
    return run


def tree_cpu() -> dict[int, float]:
    """CPU seconds so far of this process and every process it started (workers, nannies),
    by process id."""
    out = {}
    me = psutil.Process()
    for p in (me, *me.children(recursive=True)):
        try:
            times = p.cpu_times()
        except psutil.Error:  # ended meanwhile
            continue
        out[p.pid] = times.user + times.system
    return out


def summarise(name: str, workers: int, started: float, t0: float, t1: float,
              timings: Sequence[TaskTiming], results: Sequence[RunResult],
              cpu_by_pid: dict[int, float]) -> Run:
    """A run's figures from the timing of its tasks (``t0``, ``t1``: submission and end) and
    the CPU seconds each process used meanwhile."""
    by_worker: dict[str, list[TaskTiming]] = {}
    for t in timings:
        by_worker.setdefault(t.worker, []).append(t)
    wall = t1 - t0
    task_cpu = sum(t.cpu_s for t in timings)
    cpu_s = sum(cpu_by_pid.values())
    me = os.getpid()
    task_pids = [int(t.worker.rsplit(":", 1)[1]) for t in timings]  # "host:pid"
    here_tasks = sum(t.cpu_s for t, pid in zip(timings, task_pids, strict=True) if pid == me)
    here = cpu_by_pid.get(me, 0.0) - here_tasks
    in_workers = sum(cpu_by_pid.get(pid, 0.0) for pid in set(task_pids) if pid != me) - (
        task_cpu - here_tasks)
    others = cpu_s - task_cpu - here - in_workers
    return Run(
        name, workers, started, wall, len(results),
        statistics.fmean(t.wall_s for t in timings),
        statistics.fmean(t.cpu_s for t in timings),
        statistics.fmean(t.wall_s - r.wall_s for t, r in zip(timings, results, strict=True)),
        sum(t.cpu_s for t in timings) / sum(t.wall_s for t in timings),
        sum(t.wall_s for t in timings) / (workers * wall),
        statistics.fmean(min(t.started for t in ts) - t0 for ts in by_worker.values()),
        statistics.fmean(t1 - max(t.ended for t in ts) for ts in by_worker.values()),
        len(pickle.dumps(results[0], protocol=pickle.HIGHEST_PROTOCOL)) / 1e6,
        cpu_s / task_cpu - 1.0,
        (here / task_cpu, in_workers / task_cpu, others / task_cpu),
        statistics.fmean(t.page_faults for t in timings),
        tuple(kpis(r).overall["sl_offered"] for r in results))


def burn(steps: int) -> float:
    """Seconds this process takes to count ``steps`` in pure Python."""
    t = time.perf_counter()
    x = 0
    for i in range(steps):
        x += i & 7
    return time.perf_counter() - t


def burn_ceiling(steps: int) -> float:
    """Two processes burning at once against one alone: the speed-up the machine allows."""
    ctx = mp.get_context("spawn")
    with ctx.Pool(2) as pool:
        pool.map(time.sleep, [0.2, 0.2], chunksize=1)  # both processes up before timing
        alone = pool.apply(burn, (steps,))
        both = pool.map(burn, [steps, steps], chunksize=1)
    return 2 * alone / max(both)


def started(make: Callable[[], LocalExecutor | DaskExecutor]
            ) -> tuple[LocalExecutor | DaskExecutor, float]:
    """An executor with its workers up and warm, and the seconds that took."""
    t = time.perf_counter()
    executor = make()
    if isinstance(executor, LocalExecutor):
        executor.start()
    return executor, time.perf_counter() - t


def one_round(spec: RunSpec, n: int, malloc_trim: bool = False, reverse: bool = False
              ) -> list[Run]:
    """One process, two processes and two Dask workers on the same replications (and two Dask
    workers with Dask's malloc trim, when asked), in that order or (``reverse``) the other
    way round; the runs are returned in the first order either way."""
    makers: list[tuple[str, Callable[[], LocalExecutor | DaskExecutor]]] = [
        ("local, 1 process", lambda: LocalExecutor(1)),
        ("local, 2 processes", lambda: LocalExecutor(2)),
        ("Dask LocalCluster, 2 workers", lambda: DaskExecutor("local", 2))]
    if malloc_trim:
        makers.append(("Dask, 2 workers, malloc trim",
                       lambda: DaskExecutor("local", 2, local_config=QUIET_CLUSTER)))
    done: dict[str, Run] = {}
    for name, make in makers[::-1] if reverse else makers:
        executor, start_s = started(make)
        done[name] = _timed(name, executor, start_s, spec, n)
    runs = [done[name] for name, _ in makers]
    assert len({r.sl for r in runs}) == 1, "executors disagree on the same seeds"
    one = runs[0]
    for run in runs[1:]:
        print(f"{run.name}: {run.rate / one.rate:.2f}x = tasks {one.task_s / run.task_s:.2f}x "
              f"as fast as alone x {run.workers} workers x busy {run.busy:.0%} (one process "
              f"{one.busy:.0%}); a task took {run.task_cpu_s / one.task_cpu_s - 1:+.0%} CPU "
              f"time (caches, memory, clock) and got {run.cpu_share:.0%} of a core (one process "
              f"{one.cpu_share:.0%})")
    return runs


def main() -> None:
    """Time the three executors on the same replications and print the speed-ups."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=float, default=3.0, help="days per replication (3)")
    ap.add_argument("-r", "--replications", type=int, default=8, help="replications (8)")
    ap.add_argument("--keep-calls", action="store_true",
                    help="keep and send back each replication's call log, as compare and "
                         "sweep did before (default: its tallies only)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="repeat the three executors, alternating, this many times (1)")
    ap.add_argument("--burn-steps", type=int, default=BURN_STEPS,
                    help="iterations of the CPU-burn reference, 0 to skip it")
    ap.add_argument("--dask-malloc-trim", action="store_true",
                    help="also run two Dask workers whose nannies set Dask's default "
                         "MALLOC_TRIM_THRESHOLD_=65536")
    args = ap.parse_args()
    spec = RunSpec(str(default_scenario()), {"days": args.days}, keep_calls=args.keep_calls)
    print(f"{args.replications} replications of {args.days:g} day(s) of the reference "
          f"scenario, call logs {'kept' if args.keep_calls else 'not kept'}; {os.cpu_count()} "
          f"cores, load average {load()}", flush=True)
    rounds = []
    for k in range(args.rounds):
        if args.burn_steps:
            print(f"CPU burn: two processes {burn_ceiling(args.burn_steps):.2f}x one "
                  f"(the machine's ceiling now); load {load()}", flush=True)
        # Every other round runs the executors the other way round: on a shared machine whose
        # speed drifts within minutes, a fixed order would favour whichever runs first.
        rounds.append(one_round(spec, args.replications, args.dask_malloc_trim,
                                reverse=k % 2 == 1))
        one, two, dask = rounds[-1][:3]
        trimmed = "".join(f", {r.name} {r.rate / one.rate:.2f}x" for r in rounds[-1][3:])
        print(f"round {k + 1}: speed-up over 1 process: 2 processes {two.rate / one.rate:.2f}x, "
              f"2 Dask workers {dask.rate / one.rate:.2f}x (goal >= 1.8x){trimmed}; load {load()}",
              flush=True)
    if len(rounds) > 1:
        for i, run in enumerate(rounds[0][1:], start=1):
            speed = statistics.median(r[i].rate / r[0].rate for r in rounds)
            cpu = statistics.median(r[i].task_cpu_s / r[0].task_cpu_s for r in rounds)
            print(f"{run.name}, median of {len(rounds)} rounds: {speed:.2f}x one process, "
                  f"a task's CPU {cpu - 1:+.1%} of one process's", flush=True)


if __name__ == "__main__":
    main()
