"""The executors: local processes and a real two-worker Dask LocalCluster give the same numbers."""

from __future__ import annotations

import dataclasses
import gc
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from acd.errors import ConfigError, UsageError
from sim.executor import DaskExecutor, LocalExecutor, TaskFailed, worker_problems
from sim.run import RunSpec, run_replications, run_specs
from sim.sweep import parse_vary, run_sweep

distributed = pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = str(ROOT / "config" / "scenarios" / "reference.yaml")
#: A busy morning hour and a bit: a few hundred calls, well under a second per replication.
SMALL = RunSpec(SCENARIO, {"days": 0.05, "start": "2026-03-02T09:00:00+03:00"})
GRID = [parse_vary("scale_agents=0.8,1.2"), parse_vary("queues.tech.expansion.0.after_s=4,8")]

pytestmark = pytest.mark.slow


def same(a: Any, b: Any, path: str = "result") -> None:
    """Assert two results equal bit for bit, field by field (the wall-clock time aside)."""
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        assert type(a) is type(b), path
        for f in dataclasses.fields(a):
            if f.name != "wall_s":
                same(getattr(a, f.name), getattr(b, f.name), f"{path}.{f.name}")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, path
        assert a.tobytes() == b.tobytes(), path
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            same(x, y, f"{path}[{i}]")
    elif isinstance(a, dict):  # e.g. the per-dimension call tallies
        assert list(a) == list(b), path
        for key in a:
            same(a[key], b[key], f"{path}[{key!r}]")
    else:
        assert a == b, path


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """Two single-threaded worker processes, as a real two-machine cluster would have."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as c:
        yield c


@pytest.fixture()
def dask(cluster: Any) -> Iterator[DaskExecutor]:
    """A client of the module's cluster."""
    executor = DaskExecutor(cluster.scheduler_address)
    yield executor
    executor.close()


def test_importing_sim_and_the_cli_does_not_import_dask() -> None:
    """Dask is optional: the simulator and the command line load without it."""
    code = ("import sys, sim.run, sim.sweep, sim.executor, sim.compare, sim.staff, acd.cli; "
            "acd.cli.build_parser(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_replications_on_a_cluster_equal_local_processes(dask: DaskExecutor) -> None:
    """Three replications on two Dask workers equal, bit for bit, those run in this process."""
    local = run_replications(SMALL, 3, 7, executor=LocalExecutor(1))
    remote = run_replications(SMALL, 3, 7, executor=dask)
    assert len(local[0].calls) > 100
    same(local, remote)


def test_a_2x2_sweep_on_a_cluster_equals_local_processes(dask: DaskExecutor) -> None:
    """Every point of a 2x2 sweep has the same numbers on two Dask workers as on local ones."""
    with LocalExecutor(2) as executor:
        local = run_sweep(SMALL, GRID, 2, 3, executor)
    remote = run_sweep(SMALL, GRID, 2, 3, dask)
    assert [r.point for r in local.rows] == [
        {"scale_agents": 0.8, "queues.tech.expansion.0.after_s": 4.0},
        {"scale_agents": 0.8, "queues.tech.expansion.0.after_s": 8.0},
        {"scale_agents": 1.2, "queues.tech.expansion.0.after_s": 4.0},
        {"scale_agents": 1.2, "queues.tech.expansion.0.after_s": 8.0}]
    assert local == remote


def test_local_processes_serve_every_map_until_closed() -> None:
    """Two maps on one two-process executor run in the same two warm processes (not this one),
    with this process's numbers and progress reported per task; close ends the processes."""
    here = run_replications(SMALL, 3, 7, executor=LocalExecutor(1))
    executor = LocalExecutor(2)
    executor.start()
    pool = executor._pool
    assert pool.apply(eval, ("'sim.run' in __import__('sys').modules",))
    progress: dict[int, float] = {}
    try:
        first = run_replications(SMALL, 3, 7, executor=executor,
                                 on_progress=lambda i, f: progress.__setitem__(i, f))
        workers = {t.worker for t in executor.timings}
        second = run_replications(SMALL, 3, 7, executor=executor)
        assert {t.worker for t in executor.timings} <= workers
    finally:
        executor.close()
    same(here, first)
    same(here, second)
    assert len(workers) <= 2 and not any(w.endswith(f":{os.getpid()}") for w in workers)
    assert sorted(progress) == [0, 1, 2] and all(0.0 < f <= 1.0 for f in progress.values())
    assert executor._pool is None
    with pytest.raises(ValueError):
        pool.apply(eval, ("1",))  # terminated


def test_a_module_that_cannot_be_warmed_does_not_hang_the_start() -> None:
    """Workers whose warm-up import fails still start, and the tasks run (importing what they
    need themselves)."""
    with LocalExecutor(2, warm=("sim.no_such_module",)) as executor:
        executor.start()
        results = run_replications(SMALL, 2, 7, executor=executor)
    same(run_replications(SMALL, 2, 7, executor=LocalExecutor(1)), results)


def test_timings_say_when_and_where_each_task_ran(dask: DaskExecutor) -> None:
    """Each task's timing lies inside the map that ran it, on a worker process of the cluster."""
    t0 = time.time()
    results = run_replications(SMALL, 3, 7, executor=dask)
    t1 = time.time()
    assert len(dask.timings) == len(results) == 3
    pids = set(dask.client.run(os.getpid).values())
    for timing, result in zip(dask.timings, results, strict=True):
        assert t0 <= timing.started <= timing.ended <= t1
        assert timing.wall_s >= result.wall_s and timing.cpu_s > 0.0
        assert int(timing.worker.rsplit(":", 1)[1]) in pids


def test_a_local_cluster_imports_the_simulator_before_its_first_task() -> None:
    """``--dask local`` workers have imported the simulator, and frozen what they hold out of
    the garbage collector, when the executor is ready, so their first task does not pay for
    either, and run without the statistical profiler."""
    executor = DaskExecutor("local", 1)
    try:
        loaded = executor.client.run(lambda: "sim.run" in sys.modules)
        frozen = executor.client.run(gc.get_freeze_count)
        timers = executor.client.run(lambda dask_worker: sorted(dask_worker.periodic_callbacks))
    finally:
        executor.close()
    assert list(loaded.values()) == [True]
    assert all(n > 1000 for n in frozen.values())
    (names,) = timers.values()
    assert "heartbeat" in names and "profile" not in names


def test_a_local_cluster_leaves_malloc_and_this_process_environment_alone() -> None:
    """``--dask local`` workers get no fixed ``MALLOC_TRIM_THRESHOLD_`` (they allocate as this
    process does), and the variables the nannies set for them do not stay in this process's
    environment, where later local processes would inherit them."""
    before = dict(os.environ)
    executor = DaskExecutor("local", 1)
    try:
        trim = executor.client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
        seeds = executor.client.run(lambda: os.environ.get("PYTHONHASHSEED"))
    finally:
        executor.close()
    assert list(trim.values()) == [before.get("MALLOC_TRIM_THRESHOLD_")]
    assert list(seeds.values()) != [None]  # the nanny did set its variables for the worker
    assert dict(os.environ) == before


def test_a_sweep_survives_a_worker_killed_mid_run(cluster: Any) -> None:
    """A worker that dies while running a replication is replaced and the sweep's numbers are
    unchanged."""
    local = run_sweep(SMALL, GRID, 2, 5, LocalExecutor(1))
    executor = DaskExecutor(cluster.scheduler_address)
    killed: list[str] = []

    def kill_a_busy_worker() -> None:
        # Wait until a worker holds a replication, then end its process as a crash would.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            busy = [w for w, tasks in executor.client.processing().items() if tasks]
            if busy:
                killed.append(busy[0])
                executor.client.run(os._exit, 1, workers=[busy[0]], on_error="ignore")
            time.sleep(0.05)

    killer = threading.Thread(target=kill_a_busy_worker)
    killer.start()
    try:
        remote = run_sweep(SMALL, GRID, 2, 5, executor)
    finally:
        killer.join()
        executor.close()
    assert killed
    assert killed[0] not in cluster.scheduler_info["workers"]
    assert local == remote


def test_a_failed_replication_is_named_with_its_seed(dask: DaskExecutor, tmp_path: Path) -> None:
    """A replication that raises on a worker is reported by index and base seed, the cause
    chained, on Dask as locally (both replications fail here: either may be reported first)."""
    missing = RunSpec(str(tmp_path / "gone.yaml"), {})
    for executor in (LocalExecutor(1), dask):
        with pytest.raises(TaskFailed, match=r"replication [01] \(0-based\) of seed 11") as info:
            run_replications(missing, 2, 11, executor=executor)
        assert "gone.yaml" in str(info.value)
        # Bad input stays bad input from a worker too: the command line exits 2 on it.
        assert isinstance(info.value.__cause__, ConfigError)


def test_labels_name_the_spec_of_a_failed_task(tmp_path: Path) -> None:
    """With several specs, the failure names the spec's label too."""
    missing = RunSpec(str(tmp_path / "gone.yaml"), {})
    with pytest.raises(TaskFailed, match=r"^B: replication 0"):
        run_specs([SMALL, missing], 1, 1, executor=LocalExecutor(1), labels=["A", "B"])


def test_results_come_straight_from_the_workers(dask: DaskExecutor) -> None:
    """A client that reaches every worker takes results from them, not through the scheduler
    (which would re-pickle their arrays into the message with protocol 4), on a cluster given
    by address as on a LocalCluster this executor starts."""
    assert dask.direct and dask.client.direct_to_workers is True
    local = DaskExecutor("local", 1)
    try:
        assert local.direct and local.client.direct_to_workers is True
    finally:
        local.close()


def test_results_come_through_the_scheduler_when_a_worker_cannot_be_reached(
        cluster: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A worker this machine cannot reach (behind a firewall, say) sends results through the
    scheduler instead, said once on standard error, and the numbers are the same."""
    import sim.executor

    worker = sorted(cluster.scheduler_info["workers"])[0]
    monkeypatch.setattr(sim.executor, "unreachable", lambda addresses: worker)
    executor = DaskExecutor(cluster.scheduler_address)
    try:
        assert not executor.direct
        err = capsys.readouterr().err
        assert f"cannot reach its worker {worker}" in err and err.count("\n") == 1
        remote = run_replications(SMALL, 2, 7, executor=executor)
    finally:
        executor.close()
    same(run_replications(SMALL, 2, 7, executor=LocalExecutor(1)), remote)


def test_a_cluster_with_another_version_of_the_package_is_refused(
        cluster: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers that would run other code (another version installed there) are named in a
    usage error before any task is sent, and the client is closed."""
    import sim.executor

    monkeypatch.setattr(sim.executor, "installed_version", lambda: "0.0.1")
    with pytest.raises(UsageError) as info:
        DaskExecutor(cluster.scheduler_address)
    (problem,) = info.value.problems
    assert problem.path == "--dask" and problem.value == cluster.scheduler_address
    assert problem.message.startswith("workers tcp://") and "0.0.1 here" in problem.message


def test_workers_that_cannot_import_the_simulator_are_refused(cluster: Any) -> None:
    """A worker whose warm-up import fails (a missing dependency there) is named with the
    error instead of failing every task it would be given."""
    with pytest.raises(UsageError) as info:
        DaskExecutor(cluster.scheduler_address, warm=["sim.run", "no_such_module_here"])
    (problem,) = info.value.problems
    assert "cannot be imported there" in problem.message
    assert "no_such_module_here" in problem.message


def test_worker_problems_group_workers_by_what_is_wrong() -> None:
    """One line per kind of problem, the first workers named and the rest counted; a worker
    without the package is not blamed again for its failed import."""
    missing = ModuleNotFoundError("No module named 'sim'")
    versions: dict[str, object] = {f"tcp://w{i}:1": "0.1.0" for i in range(6)}
    versions.update({"tcp://old:1": "0.0.9", "tcp://bare:1": LookupError("acd-engine")})
    warmed: dict[str, object] = {w: None for w in versions}
    warmed["tcp://bare:1"] = missing
    assert worker_problems(versions, "0.1.0", warmed) == [
        "worker tcp://bare:1: acd-engine is not installed there; install the same version as "
        "here (0.1.0) on every worker",
        "worker tcp://old:1: acd-engine 0.0.9 is installed there, 0.1.0 here; install the "
        "same version on every worker"]
    warmed.update({f"tcp://w{i}:1": ImportError("no scipy") for i in range(5)})
    assert worker_problems({}, None, warmed) == [
        "worker tcp://bare:1: the simulator cannot be imported there: No module named 'sim'",
        "workers tcp://w0:1, tcp://w1:1, tcp://w2:1 and 2 more: the simulator cannot be "
        "imported there: no scipy"]
    assert worker_problems(versions, None, {w: None for w in versions}) == [
        "worker tcp://bare:1: acd-engine is not installed there; install the same version as "
        "here (this source tree) on every worker"]


def test_two_local_clusters_at_once_start_without_a_warning() -> None:
    """``--dask local`` starts its cluster quietly while another cluster runs on this machine:
    its scheduler's HTTP routes take a free port instead of Dask's 8787 (and its warning)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        first = DaskExecutor("local", 1)
        try:
            second = DaskExecutor("local", 1)
            second.close()
        finally:
            first.close()


def test_a_running_replication_reports_progress_from_a_dask_worker(dask: DaskExecutor) -> None:
    """On Dask, as locally, ``on_progress`` hears how far each replication has got while it
    runs (events from the worker through the scheduler), then 1.0 once its result is back;
    a later map hears only its own tasks."""
    spec = RunSpec(SCENARIO, {"days": 0.5, "start": "2026-03-02T09:00:00+03:00"})
    dask.progress_every_s = 0.0  # every simulated hour
    for n in (3, 2):
        heard: dict[int, list[float]] = {}

        def hear(i: int, fraction: float, heard: dict[int, list[float]] = heard) -> None:
            heard.setdefault(i, []).append(fraction)

        run_replications(spec, n, 5, executor=dask, on_progress=hear)
        assert sorted(heard) == list(range(n))
        for fractions in heard.values():
            assert fractions[-1] == 1.0
            assert len([f for f in fractions if 0.0 < f < 1.0]) >= 6
            assert fractions[:-1] == sorted(fractions[:-1])


def test_unreachable_names_the_first_worker_that_does_not_answer() -> None:
    """``unreachable`` names a worker address to which no connection opens (a closed port, or
    an address of another scheme), which makes results go through the scheduler, and nothing
    when every worker answers."""
    import socket

    from sim.executor import unreachable

    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        assert unreachable([f"tcp://127.0.0.1:{port}"]) is None
        assert unreachable([]) is None
        with socket.socket() as probe:  # a port bound but not listening refuses connections
            probe.bind(("127.0.0.1", 0))
            closed = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
            assert unreachable([f"tcp://127.0.0.1:{port}", closed], timeout_s=1.0) == closed
        assert unreachable([f"ucx://127.0.0.1:{port}"]) == f"ucx://127.0.0.1:{port}"
        assert unreachable(["tcp://127.0.0.1"]) == "tcp://127.0.0.1"


def test_an_unreachable_scheduler_is_a_usage_error_naming_it() -> None:
    """A --dask address where no scheduler answers exits 2 with one line naming the address."""
    from acd.errors import UsageError

    with pytest.raises(UsageError) as info:
        DaskExecutor("tcp://127.0.0.1:9", connect_timeout_s=1.0)
    (problem,) = info.value.problems
    assert "--dask" in str(problem) and "tcp://127.0.0.1:9" in str(problem)


def test_cli_exits_2_for_a_dask_address_it_cannot_use(capsys: pytest.CaptureFixture[str],
                                                      tmp_path: Path) -> None:
    """``acd sim run --dask`` with an address of no known scheme exits 2, naming it."""
    from acd.cli import main

    code = main(["sim", "run", SCENARIO, "--days", "0.05", "-r", "1", "--dask", "foo://bar",
                 "--out", str(tmp_path / "out"), "-q"])
    err = capsys.readouterr().err
    assert code == 2
    assert "--dask" in err and "foo://bar" in err
    assert not (tmp_path / "out" / "summary.json").exists()


def test_worker_processes_freeze_what_they_hold_before_their_first_task(
        dask: DaskExecutor) -> None:
    """Pool processes and Dask workers have moved their start-up objects out of the collector
    by the end of a map (so each replication's full collection skips them), and a map run in
    this process leaves its collector as it was."""
    frozen_here = gc.get_freeze_count()
    with LocalExecutor(2) as executor:
        run_replications(SMALL, 2, 7, executor=executor)
        counts = [executor._pool.apply(eval, ("__import__('gc').get_freeze_count()",))
                  for _ in range(4)]
    assert all(n > 1000 for n in counts)
    run_replications(SMALL, 2, 7, executor=dask)
    ran = {t.worker.rsplit(":", 1)[1] for t in dask.timings}
    on_workers = dask.client.run(lambda: (os.getpid(), gc.get_freeze_count()))
    assert all(n > 1000 for pid, n in on_workers.values() if str(pid) in ran) and ran
    run_replications(SMALL, 2, 7, executor=LocalExecutor(1))
    assert gc.get_freeze_count() == frozen_here
