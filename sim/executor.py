"""Where replications run: local processes (the default) or a Dask cluster.

A task is a pure function of small, picklable arguments (a :class:`sim.run.RunSpec`: file paths
and overrides, and a seed sequence), so its result is the same, bit for bit, whichever process
or machine ran it. :func:`executor_for` picks the executor from ``--dask`` and ``-j``; Dask
(``pip install 'acd-engine[dask]'``) is imported only when ``--dask`` is given.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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


_progress_queue: Any = None


def _init_worker(queue: Any) -> None:
    global _progress_queue
    _progress_queue = queue


def _call(args: tuple[Task[Any, Any], Any, int]) -> tuple[bool, Any]:
    """Run one task in a pool process; an exception comes back as a value, with its traceback."""
    fn, item, index = args
    queue = _progress_queue

    def progress(fraction: float) -> None:
        if queue is not None:
            queue.put((index, fraction))

    try:
        return True, fn(item, progress)
    except Exception as exc:  # noqa: BLE001 - sent back to be named with its task
        return False, exc


@dataclass
class LocalExecutor:
    """``workers`` local processes (``spawn``); one runs the tasks in this process."""

    workers: int = 1

    def map(self, fn: Task[T, R], items: Sequence[T], names: Sequence[str],
            on_progress: OnProgress | None = None) -> list[R]:
        """Run every task, in this process or a pool of ``spawn``-ed processes."""
        jobs = max(1, min(self.workers, len(items)))
        if jobs == 1:
            results = []
            for i, item in enumerate(items):
                def progress(fraction: float, i: int = i) -> None:
                    if on_progress is not None:
                        on_progress(i, fraction)
                try:
                    results.append(fn(item, progress))
                except Exception as exc:
                    raise TaskFailed(names[i], exc) from exc
            return results
        ctx = mp.get_context("spawn")
        queue = ctx.Manager().Queue() if on_progress is not None else None
        with ctx.Pool(jobs, initializer=_init_worker, initargs=(queue,)) as pool:
            pending = pool.map_async(_call, [(fn, item, i) for i, item in enumerate(items)],
                                     chunksize=1)
            while not pending.ready():
                pending.wait(0.2)
                while queue is not None and not queue.empty():
                    i, fraction = queue.get()
                    if on_progress is not None:
                        on_progress(i, fraction)
            outcomes = pending.get()
        for i, (ok, value) in enumerate(outcomes):
            if not ok:
                raise TaskFailed(names[i], value) from value
        return [value for _, value in outcomes]

    def close(self) -> None:
        """Nothing to release: the pool lives for one :meth:`map`."""


def _no_progress(fraction: float) -> None:
    """Progress inside a Dask task is not sent back; the client counts finished tasks."""


def _dask_call(fn: Task[T, R], item: T) -> R:
    return fn(item, _no_progress)


class DaskExecutor:
    """Tasks on a Dask cluster: an existing scheduler's address, or a ``LocalCluster``.

    Every task is submitted at once with ``retries``, so a task whose worker died is rerun
    elsewhere; results come back to this process in the order given.
    """

    def __init__(self, address: str, workers: int | None = None,
                 retries: int = DASK_RETRIES, connect_timeout_s: float = CONNECT_TIMEOUT_S
                 ) -> None:
        from distributed import Client, LocalCluster

        self.address = address
        self.retries = retries
        self._cluster: Any = None
        if address == "local":
            n = max(1, workers or os.cpu_count() or 1)
            self._cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                         dashboard_address=None)
            self.client: Any = Client(self._cluster)
        else:
            try:
                self.client = Client(address, timeout=f"{connect_timeout_s}s")
            except (OSError, ValueError, TypeError) as exc:
                raise UsageError([usage("--dask", address, f"cannot reach a Dask scheduler "
                                        f"there: {exc}")]) from None
        self.workers = max(1, sum(self.client.nthreads().values()))

    def map(self, fn: Task[T, R], items: Sequence[T], names: Sequence[str],
            on_progress: OnProgress | None = None) -> list[R]:
        """Submit every task, wait for all of them; a task that failed after its retries is
        reported by name."""
        from distributed import as_completed

        futures = [self.client.submit(_dask_call, fn, item, pure=False, retries=self.retries)
                   for item in items]
        index = {f.key: i for i, f in enumerate(futures)}
        try:
            for future in as_completed(futures):
                i = index[future.key]
                if future.status == "error":
                    exc = future.exception()
                    raise TaskFailed(names[i], exc) from exc
                if on_progress is not None:
                    on_progress(i, 1.0)
            return list(self.client.gather(futures))
        finally:
            for f in futures:
                f.release()

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
