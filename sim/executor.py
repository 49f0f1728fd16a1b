"""Where replications run: local processes (the default) or a Dask cluster.

A task is a pure function of small, picklable arguments (a :class:`sim.run.RunSpec`: file paths
and overrides, and a seed sequence), so its result is the same, bit for bit, whichever process
or machine ran it. :func:`executor_for` picks the executor from ``--dask`` and ``-j``; Dask
(``pip install 'acd-engine[dask]'``) is imported only when ``--dask`` is given.

A worker process imports the simulator (numpy, scipy, simpy: seconds of start-up) when it
starts, not in its first task: :meth:`LocalExecutor.start` and a ``LocalCluster``'s start-up
include it, and the processes then serve every :meth:`~Executor.map` until ``close``. Each
executor records when and where each task of its last ``map`` ran (:class:`TaskTiming`).
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import importlib.metadata
import itertools
import multiprocessing as mp
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from acd.errors import UsageError, usage

T = TypeVar("T")
R = TypeVar("R")
#: A task: ``fn(item, progress)``; ``progress(fraction)`` reports how far it has got.
Task = Callable[[T, Callable[[float], None]], R]
#: ``on_progress(index, fraction)`` of the task at ``index`` in the list given.
OnProgress = Callable[[int, float], None]
#: Times Dask reruns a task whose worker died (or that raised) before giving up.
DASK_RETRIES = 2
#: Seconds to wait for a Dask scheduler before the address is reported unreachable.
CONNECT_TIMEOUT_S = 10.0
#: Seconds between two progress reports of a task running on Dask (a simulated day of a long
#: replication takes about 0.04 s of CPU: a report a day would cost more than it tells).
DASK_PROGRESS_S = 1.0
#: Seconds to wait for each worker of a cluster when checking that results can come straight
#: from the workers (:func:`unreachable`).
WORKER_PROBE_S = 2.0
#: Modules a worker process imports as it starts, so that its first task does not pay for them.
WARM_MODULES = ("sim.run",)
#: Dask settings of a ``LocalCluster``: no statistical profile (it samples the running task every
#: 10 ms for a dashboard that is not started) and its monitors' polls (event-loop ticks every
#: 20 ms, memory every 100 ms, system every 500 ms) far less often. With the defaults the
#: scheduler, nanny and worker used CPU worth a sixth of the tasks' own on a loaded two-core
#: machine; with these, a twenty-fifth. The memory limits are still enforced, a second later.
#: Its nannies also leave glibc's malloc as it is (:data:`KEEP_MALLOC`).
QUIET_CLUSTER = {"distributed.worker.profile.enabled": False,
                 "distributed.admin.tick.interval": "1s",
                 "distributed.admin.system-monitor.interval": "5s",
                 "distributed.worker.memory.monitor-interval": "1s"}
#: A nanny starts its worker with ``MALLOC_TRIM_THRESHOLD_=65536`` unless told otherwise. Any
#: fixed value turns off glibc's sliding thresholds: every array over 128 KiB is then mapped
#: afresh and the heap's free top handed back at 64 KiB, so the memory a replication frees is
#: faulted in again, zeroed, for the next allocation: three to four times the page faults of a
#: plain process in a replication, and 1-3% more CPU. Without it a worker allocates like a
#: local process; what it frees goes back to the system later, as glibc decides.
KEEP_MALLOC = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
#: The Dask settings ``--dask local`` starts its ``LocalCluster`` with.
LOCAL_CLUSTER: Mapping[str, Any] = {**QUIET_CLUSTER, **KEEP_MALLOC}


class TaskFailed(RuntimeError):
    """A task raised: ``what`` names it (e.g. "replication 3, seed 1234"); the cause is chained."""

    def __init__(self, what: str, cause: BaseException) -> None:
        super().__init__(f"{what} failed: {type(cause).__name__}: {cause}")
        self.what = what


class Executor(Protocol):
    """Runs tasks and returns their results in the order given."""

    #: Tasks run at once (processes or Dask worker threads).
    workers: int

    def map(self, fn: Task[T, R], items: Sequence[T], names: Sequence[str],
            on_progress: OnProgress | None = None) -> list[R]:
        """``fn(item, progress)`` for every item; a failure raises :class:`TaskFailed` naming it."""
        ...

    def close(self) -> None:
        """Release the processes or the cluster connection."""
        ...


@dataclass(frozen=True)
class TaskTiming:
    """When and where one task ran: ``started`` and ``ended`` are ``time.time()`` (comparable
    across the processes of one machine), ``cpu_s`` the CPU seconds of the task's thread and
    ``page_faults`` the pages it faulted in (-1 where the system does not count them per
    thread): unlike CPU time, these hardly depend on what else the machine runs."""

    worker: str
    started: float
    ended: float
    cpu_s: float
    page_faults: int = -1

    @property
    def wall_s(self) -> float:
        """Seconds from the task's start to its end."""
        return self.ended - self.started


def _thread_faults() -> int:
    """Minor page faults of this thread so far, or -1 where they are not counted per thread."""
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
    except (ImportError, AttributeError, OSError):
        return -1


def _timed(fn: Task[T, R], item: T, progress: Callable[[float], None]) -> tuple[R, TaskTiming]:
    """``fn(item, progress)`` and its :class:`TaskTiming`."""
    started, cpu, faults = time.time(), time.thread_time(), _thread_faults()
    value = fn(item, progress)
    after = _thread_faults()
    return value, TaskTiming(f"{socket.gethostname()}:{os.getpid()}", started, time.time(),
                             time.thread_time() - cpu, after - faults if faults >= 0 else -1)


def freeze_process() -> None:
    """Move every object this process holds now (its imported modules, a Dask worker's own
    state) out of the cyclic garbage collector's reach, once: the full collection that ends each
    replication (:func:`sim.run._replication`) then walks only what replications allocated.

    In a worker process with Dask, 120,000 objects: 0.12-0.15 s of a 30-day replication's
    1.6 s went to its full collections, 0.02 s once frozen. A pool process does it once it has
    imported the simulator, a Dask worker once it has started (``--preload sim.run``:
    :func:`sim.run.dask_setup`) or when a client warms it up, or else in its first task; a
    process that froze objects already is left as is. (A simulation freezes
    what exists when it starts unless something is frozen already: then it leaves that alone,
    and its full collections walk its own objects only, which costs no more.)
    """
    if gc.get_freeze_count() == 0:
        gc.collect()
        gc.freeze()


@contextlib.contextmanager
def frozen_while() -> Iterator[None]:
    """What this process holds frozen out of the collector for the block only: tasks run in
    the calling process leave its collector as they found it. (No collection first: what is
    garbage now is unfrozen with the rest after the block, and freezing is a list splice.)"""
    froze = gc.get_freeze_count() == 0
    if froze:
        gc.freeze()
    try:
        yield
    finally:
        if froze:
            gc.unfreeze()


def warm_up(modules: Sequence[str]) -> None:
    """Import ``modules`` in this process (a worker starting up), then
    :func:`freeze_process`."""
    for name in modules:
        importlib.import_module(name)
    freeze_process()


_progress_queue: Any = None


def _init_worker(queue: Any, modules: Sequence[str], ready: Any) -> None:
    global _progress_queue
    _progress_queue = queue
    # A module that cannot be imported fails the first task instead, named; a worker that
    # raised here would be replaced by the pool again and again, and start() never return.
    with contextlib.suppress(Exception):
        warm_up(modules)
    freeze_process()
    ready.release()


def _call(args: tuple[Task[Any, Any], Any, int, int | None]) -> tuple[bool, Any]:
    """Run one task in a pool process; an exception comes back as a value, with its traceback.

    ``batch`` numbers the :meth:`LocalExecutor.map` asking for progress (None: no progress), so
    that a late report of an earlier map is not taken for one of this map's."""
    fn, item, index, batch = args
    queue = _progress_queue

    def progress(fraction: float) -> None:
        if queue is not None and batch is not None:
            queue.put((batch, index, fraction))

    try:
        return True, _timed(fn, item, progress)
    except Exception as exc:  # noqa: BLE001 - sent back to be named with its task
        return False, exc


@dataclass
class LocalExecutor:
    """``workers`` local processes (``spawn``); one runs the tasks in this process.

    The processes start at :meth:`start` or the first :meth:`map` (each imports ``warm``) and
    serve every later ``map`` until :meth:`close`.
    """

    workers: int = 1
    warm: Sequence[str] = WARM_MODULES
    #: When and where each task of the last :meth:`map` ran, in the order of its items.
    timings: list[TaskTiming] = field(default_factory=list, init=False, repr=False)
    _pool: Any = field(default=None, init=False, repr=False)
    _queue: Any = field(default=None, init=False, repr=False)
    _batches: Any = field(default_factory=itertools.count, init=False, repr=False)

    def start(self) -> None:
        """Start the worker processes and wait until each has imported ``warm``."""
        if self.workers <= 1 or self._pool is not None:
            return
        ctx = mp.get_context("spawn")
        self._queue = ctx.SimpleQueue()  # a put is written at once, before the result
        ready = ctx.Semaphore(0)
        self._pool = ctx.Pool(self.workers, initializer=_init_worker,
                              initargs=(self._queue, tuple(self.warm), ready))
        for _ in range(self.workers):  # each process releases it once it has imported
            ready.acquire()

    def map(self, fn: Task[T, R], items: Sequence[T], names: Sequence[str],
            on_progress: OnProgress | None = None) -> list[R]:
        """Run every task, in this process or the pool of ``spawn``-ed processes."""
        if self.workers <= 1 or (len(items) <= 1 and self._pool is None):
            return self._map_here(fn, items, names, on_progress)
        self.start()
        batch = next(self._batches) if on_progress is not None else None
        pending = self._pool.map_async(
            _call, [(fn, item, i, batch) for i, item in enumerate(items)], chunksize=1)
        while not pending.ready():
            pending.wait(0.2)
            self._report(batch, on_progress)
        outcomes = pending.get()
        self._report(batch, on_progress)
        for i, (ok, value) in enumerate(outcomes):
            if not ok:
                raise TaskFailed(names[i], value) from value
        self.timings = [timing for _, (_, timing) in outcomes]
        return [value for _, (value, _) in outcomes]

    def _map_here(self, fn: Task[T, R], items: Sequence[T], names: Sequence[str],
                  on_progress: OnProgress | None) -> list[R]:
        with frozen_while():
            return self._run_here(fn, items, names, on_progress)

    def _run_here(self, fn: Task[T, R], items: Sequence[T], names: Sequence[str],
                  on_progress: OnProgress | None) -> list[R]:
        results, self.timings = [], []
        for i, item in enumerate(items):
            def progress(fraction: float, i: int = i) -> None:
                if on_progress is not None:
                    on_progress(i, fraction)
            try:
                value, timing = _timed(fn, item, progress)
            except Exception as exc:
                raise TaskFailed(names[i], exc) from exc
            results.append(value)
            self.timings.append(timing)
        return results

    def _report(self, batch: int | None, on_progress: OnProgress | None) -> None:
        """Pass on the progress reports of this map's tasks that have arrived."""
        while not self._queue.empty():
            got, i, fraction = self._queue.get()
            if got == batch and on_progress is not None:
                on_progress(i, fraction)

    def close(self) -> None:
        """Stop the worker processes, if they were started."""
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._queue.close()
            self._pool = self._queue = None

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def environment_kept() -> Iterator[None]:
    """This process's environment as it was before the block, whatever the block set.

    A Dask nanny writes its workers' variables (``PYTHONHASHSEED``, ``OMP_NUM_THREADS``, ...)
    into the environment of the process that starts it, where every process started later
    (a :class:`LocalExecutor`'s, say) would inherit them."""
    before = dict(os.environ)
    try:
        yield
    finally:
        for name in set(os.environ) - set(before):
            del os.environ[name]
        for name, value in before.items():
            if os.environ.get(name) != value:
                os.environ[name] = value


def _no_progress(fraction: float) -> None:
    """No one asked for progress."""


def _dask_progress(report: tuple[str, int, int] | None, every_s: float
                   ) -> Callable[[float], None]:
    """A task's progress as events on its Dask worker, at most one every ``every_s`` seconds:
    ``report`` is (topic, map, index), an event ``(map, index, fraction)`` of that topic,
    which reaches the client through the scheduler."""
    if report is None:
        return _no_progress
    topic, batch, index = report
    from distributed import get_worker

    worker = get_worker()
    last = time.monotonic()

    def progress(fraction: float) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= every_s:
            last = now
            worker.log_event(topic, (batch, index, fraction))

    return progress


def _dask_call(fn: Task[T, R], item: T, report: tuple[str, int, int] | None = None,
               every_s: float = 0.0) -> tuple[R, TaskTiming]:
    freeze_process()
    return _timed(fn, item, _dask_progress(report, every_s))


def unreachable(addresses: Iterable[str], timeout_s: float = WORKER_PROBE_S) -> str | None:
    """The first of ``addresses`` (a cluster's workers, ``tcp://host:port``) to which no TCP
    connection opens from this process within ``timeout_s``, or an address of another
    scheme; None when every one answers."""
    from distributed.comm.addressing import get_address_host_port, parse_address

    for address in addresses:
        try:
            if parse_address(address)[0] != "tcp":
                return address  # tls, ucx, ...: not probed, taken as unreachable
            host, port = get_address_host_port(address)
            socket.create_connection((host, port), timeout=timeout_s).close()
        except (ValueError, OSError):
            return address
    return None


#: The distribution that every machine of a cluster must have installed, at the same version:
#: workers unpickle a task's function by module name, so another version runs other code.
DIST = "acd-engine"
#: Workers named in one problem about a cluster before the rest are counted.
NAMED_WORKERS = 3


def installed_version() -> str | None:
    """The version of :data:`DIST` installed here, None when it is not (a bare source tree)."""
    try:
        return importlib.metadata.version(DIST)
    except importlib.metadata.PackageNotFoundError:
        return None


def worker_problems(versions: Mapping[str, object], here: str | None,
                    warmed: Mapping[str, object]) -> list[str]:
    """What keeps a cluster's workers from running these tasks, one line per kind of problem:
    ``versions`` is what each worker answered when asked for :data:`DIST`'s version (a string,
    or the exception it raised), ``here`` this machine's version (None: not compared),
    ``warmed`` what each answered to :func:`warm_up` (None, or the exception)."""
    found: dict[str, list[str]] = {}
    for worker, got in sorted(versions.items()):
        if isinstance(got, BaseException):
            found.setdefault(f"{DIST} is not installed there; install the same version as "
                             f"here ({here or 'this source tree'}) on every worker", []
                             ).append(worker)
        elif here is not None and got != here:
            found.setdefault(f"{DIST} {got} is installed there, {here} here; install the "
                             f"same version on every worker", []).append(worker)
    for worker, got in sorted(warmed.items()):
        if isinstance(got, BaseException) and not any(worker in w for w in found.values()):
            found.setdefault(f"the simulator cannot be imported there: {got}", []
                             ).append(worker)
    lines = []
    for message, workers in found.items():
        named = ", ".join(workers[:NAMED_WORKERS])
        more = f" and {len(workers) - NAMED_WORKERS} more" if len(workers) > NAMED_WORKERS \
            else ""
        lines.append(f"worker{'s' if len(workers) > 1 else ''} {named}{more}: {message}")
    return lines


class DaskExecutor:
    """Tasks on a Dask cluster: an existing scheduler's address, or a ``LocalCluster``.

    Every task is submitted at once with ``retries``, so a task whose worker died is rerun
    elsewhere; results come back to this process as tasks finish, returned in the order given.
    They come straight from the worker that holds them when this process can reach every
    worker present as it connects (always on a ``LocalCluster``), else through the scheduler,
    which is said on standard error. Straight is much cheaper: the scheduler talks pickle
    protocol 4 to everyone, so a result that goes through it is copied into the pickle by the
    worker's event loop, sent twice and copied again, where protocol 5 sends its arrays as they
    are (a 9.8 MB result of a 30-day replication: 15-23 ms of the worker's event loop against
    0.14 ms). A running task reports how far it has got at most every ``progress_every_s``
    seconds, as a Dask event through the scheduler (``on_progress`` is then called from the
    client's event loop, never at the same time as from the thread calling :meth:`map`).
    The workers import ``warm`` before the first task: a ``LocalCluster``'s workers as they
    start (``preload``, also a replacement for a dead worker), a cluster's workers present
    when the client connects (start workers with ``--preload sim.run`` for the others). A
    ``LocalCluster`` starts with the Dask settings ``local_config``.
    """

    def __init__(self, address: str, workers: int | None = None,
                 retries: int = DASK_RETRIES, connect_timeout_s: float = CONNECT_TIMEOUT_S,
                 warm: Sequence[str] = WARM_MODULES,
                 local_config: Mapping[str, Any] = LOCAL_CLUSTER,
                 progress_every_s: float = DASK_PROGRESS_S) -> None:
        import dask
        from distributed import Client, LocalCluster

        self.address = address
        self.retries = retries
        #: Seconds between two progress reports of a running task (``on_progress``): each
        #: travels from the worker through the scheduler.
        self.progress_every_s = progress_every_s
        self._topic = f"acd-progress-{uuid.uuid4().hex}"
        self._batches = itertools.count()
        #: When and where each task of the last :meth:`map` ran, in the order of its items.
        self.timings: list[TaskTiming] = []
        self._cluster: Any = None
        if address == "local":
            n = max(1, workers or os.cpu_count() or 1)
            with dask.config.set(dict(local_config)), environment_kept():
                # No dashboard; the scheduler's own HTTP routes (health, metrics) on a free
                # loopback port, not 8787, which another cluster here may hold (Dask would
                # warn, then take another port anyway).
                self._cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                             dashboard_address=None, preload=list(warm),
                                             scheduler_kwargs={"dashboard_address":
                                                               "127.0.0.1:0"})
            self.client: Any = Client(self._cluster, direct_to_workers=True)
        else:
            try:
                self.client = Client(address, timeout=f"{connect_timeout_s}s")
            except (OSError, ValueError, TypeError) as exc:
                raise UsageError([usage("--dask", address, f"cannot reach a Dask scheduler "
                                        f"there: {exc}")]) from None
            missed = unreachable(self.client.nthreads())
            if missed is not None:
                print(f"results come through the Dask scheduler, more slowly: this machine "
                      f"cannot reach its worker {missed}", file=sys.stderr, flush=True)
            self.client.direct_to_workers = missed is None
            # A worker without the package (or with another version) would fail every task
            # it is given, or run other code: refuse the cluster now, naming the workers.
            problems = worker_problems(
                self.client.run(importlib.metadata.version, DIST, on_error="return"),
                installed_version(),
                self.client.run(warm_up, list(warm), on_error="return"))
            if problems:
                self.client.close()
                raise UsageError([usage("--dask", address, line) for line in problems])
        self.workers = max(1, sum(self.client.nthreads().values()))

    @property
    def direct(self) -> bool:
        """Results come straight from the workers (True), or through the scheduler."""
        return bool(self.client.direct_to_workers)

    def map(self, fn: Task[T, R], items: Sequence[T], names: Sequence[str],
            on_progress: OnProgress | None = None) -> list[R]:
        """Submit every task, take each result as it finishes; a task that failed after its
        retries is reported by name."""
        from distributed import as_completed

        topic = None
        lock = threading.Lock()  # the client's event loop and this thread both report
        if on_progress is not None:
            batch = next(self._batches)
            topic = self._topic

            def reported(event: tuple[float, tuple[int, int, float]]) -> None:
                got, i, fraction = event[1]
                if got == batch:  # not a late report of an earlier map's task
                    with lock:
                        on_progress(i, fraction)

            self.client.subscribe_topic(topic, reported)
        futures = [self.client.submit(_dask_call, fn, item,
                                      None if topic is None else (topic, batch, i),
                                      self.progress_every_s, pure=False, retries=self.retries)
                   for i, item in enumerate(items)]
        index = {f.key: i for i, f in enumerate(futures)}
        outcomes: list[Any] = [None] * len(items)
        try:
            for future in as_completed(futures):
                i = index[future.key]
                if future.status == "error":
                    exc = future.exception()
                    raise TaskFailed(names[i], exc) from exc
                outcomes[i] = future.result()
                future.release()  # the worker may drop it now
                if on_progress is not None:
                    with lock:
                        on_progress(i, 1.0)
        finally:
            if topic is not None:
                self.client.unsubscribe_topic(topic)
            for f in futures:
                f.release()
        self.timings = [timing for _, timing in outcomes]
        return [value for value, _ in outcomes]

    def close(self) -> None:
        """Close the client, and the cluster when this executor started it."""
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def executor_for(dask: str | None, jobs: int | None) -> Executor:
    """Local processes (``jobs``, default one per core), or Dask at ``dask`` ("local" starts a
    ``LocalCluster`` of ``jobs`` workers on this machine)."""
    if dask is None:
        return LocalExecutor(max(1, jobs or os.cpu_count() or 1))
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise UsageError([usage("--dask", dask, "needs Dask: pip install 'acd-engine[dask]'")]) \
            from None
    return DaskExecutor(dask, jobs)
