"""Wait-estimate benchmark: predicted EWT at queue entry against the realised wait, per call.

Run: ``python benchmarks/bench_ewt.py [--days 1] [--seed 1] [--scenario PATH]
[--volume-scale X]``

The reference day goes through the simulator (``sim.engine.Simulation``) as ``acd sim run``
builds it. The router the engine drives is wrapped (the engine itself is untouched): right
after each ``call_arrived`` the wrapper asks the router for that call's EWT (``Router.ewt``,
the live-state estimate) and works out what the former formula, ``(ahead + 1) x AHT /
staffed``, said from the same state. Only answered calls count: an abandoned, overflowed or
called-back call's wait is censored, not realised.

The realised wait runs from queue entry to the offer the agent answered (what an EWT
estimates: the wait for an agent; the ring that follows is the agent's answer delay, part of
neither estimate). Three tables: all answered calls; those that found no agent at entry; and
all answered calls with the wait measured to the answer (ring included), for reference. Each
prints the mean absolute error of both estimates over the calls and by decile of the realised
wait (calls sorted by realised wait, ten groups of equal size). The exit status is 1 when the
new estimate is not better in every decile of the first two tables.

The wrapper needs the pure-Python build (a compiled engine only accepts the compiled router),
so this benchmark always runs pure Python: it measures accuracy, not speed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ["ACD_PURE_PYTHON"] = "1"  # before any acd import: see the module docstring

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from acd.core.model import CallAnswered, CallOffered, CallState  # noqa: E402
from acd.core.router import Router  # noqa: E402
from acd.core.selection import ahead  # noqa: E402
from sim.run import simulation_for  # noqa: E402
from sim.scenario import load_scenario  # noqa: E402

REFERENCE = ROOT / "config" / "scenarios" / "reference.yaml"


def former_ewt(router: Router, call_id: str) -> float:
    """What ``Router.ewt`` returned before the live-state estimate: (ahead+1) x AHT / staffed."""
    call = router._calls[call_id]
    staffed = router._f.staffed[call.q.skill]
    if staffed == 0:
        return float("inf")
    return (ahead(call) + 1) * call.q.aht_s / staffed


class EwtProbe:
    """Stands in for the engine's router: forwards every call, records EWTs and answers."""

    def __init__(self, router: Router) -> None:
        self._router = router
        #: call id -> (new estimate, former estimate) at queue entry.
        self.predicted: dict[str, tuple[float, float]] = {}
        #: call id -> (wait until offered to the agent who answered, wait until answered).
        self.waited: dict[str, tuple[float, float]] = {}
        #: call id -> True when the call found no agent at entry and waited in the queue.
        self.queued: dict[str, bool] = {}
        self._offered: dict[str, float] = {}

    def _seen(self, out: list[Any]) -> list[Any]:
        for o in out:
            if isinstance(o, CallOffered):
                self._offered[o.call_id] = o.at
            elif isinstance(o, CallAnswered):
                ring = o.at - self._offered.pop(o.call_id, o.at)
                self.waited[o.call_id] = (max(0.0, o.wait_s - ring), o.wait_s)
        return out

    def call_arrived(self, now: float, call_id: str, *args: Any, **kwargs: Any) -> list[Any]:
        """Queue the call, then note both estimates for it as they stand at entry."""
        r = self._router
        out = self._seen(r.call_arrived(now, call_id, *args, **kwargs))
        if r.call_state(call_id) is not None:
            queued = r.call_state(call_id) is CallState.QUEUED
            self.queued[call_id] = queued
            self.predicted[call_id] = (r.ewt(call_id, now), former_ewt(r, call_id))
        return out

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._router, name)
        if not callable(attr) or name in ("next_deadline", "queue_depths", "agent_state",
                                          "call_state"):
            return attr

        def forward(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)
            return self._seen(result) if isinstance(result, list) else result

        return forward


def run_day(scenario_path: Path, days: float, seed: int, volume_scale: float | None = None
            ) -> EwtProbe:
    """Simulate the scenario with the probe around the router; return the probe."""
    changes: dict[str, Any] = {"days": days}
    if volume_scale is not None:
        changes["volume_scale"] = volume_scale
    scenario = load_scenario(scenario_path, **changes)
    sim = simulation_for(scenario, np.random.SeedSequence(seed))
    probe = EwtProbe(sim.router)
    sim.router = probe  # type: ignore[assignment]
    sim.run()
    return probe


def error_table(probe: EwtProbe, answered: bool = False, queued_only: bool = False
                ) -> list[tuple[str, int, float, float, float, float]]:
    """Rows (label, calls, least and most realised wait, MAE new, MAE former): all, deciles.

    The realised wait runs to the offer that was answered, or with ``answered`` to the answer;
    ``queued_only`` keeps the calls that found no agent at entry.
    """
    ids = [cid for cid in probe.waited if cid in probe.predicted
           and (not queued_only or probe.queued[cid])]
    waited = np.array([probe.waited[c][1 if answered else 0] for c in ids])
    new = np.array([probe.predicted[c][0] for c in ids])
    old = np.array([probe.predicted[c][1] for c in ids])
    order = np.argsort(waited, kind="stable")
    rows = [("all", len(ids), float(waited.min(initial=0.0)), float(waited.max(initial=0.0)),
             _mae(new, waited), _mae(old, waited))]
    for d, part in enumerate(np.array_split(order, 10), start=1):
        if len(part):
            w = waited[part]
            rows.append((f"D{d}", len(part), float(w.min()), float(w.max()),
                         _mae(new[part], w), _mae(old[part], w)))
    return rows


def _mae(pred: np.ndarray, real: np.ndarray) -> float:
    return float(np.mean(np.abs(pred - real))) if len(real) else 0.0


def main(argv: list[str] | None = None, emit: Callable[[str], None] = print) -> int:
    """Print the error tables; exit 1 when the new estimate is not better at every decile."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", type=Path, default=REFERENCE)
    ap.add_argument("--days", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--volume-scale", type=float, default=None,
                    help="scale the scenario's traffic (default: as the scenario says)")
    args = ap.parse_args(argv)
    probe = run_day(args.scenario, args.days, args.seed, args.volume_scale)
    load = "" if args.volume_scale is None else f", volume x{args.volume_scale:g}"
    worse = 0
    for answered, queued_only in ((False, False), (False, True), (True, False)):
        until = "answer (ring time included)" if answered else "offer that was answered"
        which = "answered calls that found no agent at entry" if queued_only \
            else "all answered calls"
        emit(f"EWT at queue entry vs realised wait until the {until}; {which}; "
             f"{args.scenario.name}, {args.days:g} day(s){load}, seed {args.seed}")
        emit(f"  {'':<4} {'calls':>6} {'realised wait s':>17} {'MAE new s':>10} "
             f"{'MAE former s':>13}  better")
        for label, n, lo, hi, new, old in error_table(probe, answered, queued_only):
            better = new < old
            worse += not answered and label != "all" and not better
            emit(f"  {label:<4} {n:>6} {lo:>7.1f} - {hi:>7.1f} {new:>10.1f} {old:>13.1f}  "
                 f"{'yes' if better else 'NO'}")
    return 1 if worse else 0


if __name__ == "__main__":
    sys.exit(main())
