"""Scenario sweeps: a grid over overrides, replicated on common random numbers, in one table.

Every point of the grid runs the same replications from the same base seed, so the points see
the same callers and their differences are the overrides' own. A point's verdicts are those of
``acd sim run --check`` (:func:`sim.kpi.summarise`); the cheapest point meeting every target
is the one with the fewest agent-hours scheduled.
"""

from __future__ import annotations

import copy
import csv
import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from acd.config import yamlsafe
from acd.config.messages import unknown
from acd.errors import ConfigError, Problem, UsageError, usage
from sim.executor import Executor, OnProgress
from sim.kpi import INCONCLUSIVE, NOT_MET, summarise
from sim.run import RunSpec, load_run_scenario, run_specs
from sim.scenario import Scenario, deep_merge
from sim.staffing import build_timeline

#: Keys of the run itself: traffic volume and agent head count multipliers.
RUN_KEYS = {"scale": "traffic volume multiplier (the scenario's volume_scale)",
            "scale_agents": "multiplier of every agent group's count (as compare --scale-agents)"}
#: Most points one sweep runs (catches a slipped digit in a value list).
MAX_POINTS = 400
#: Files a sweep writes into its output directory.
SWEEP_OUTPUTS = ("sweep.csv", "sweep.json", "sweep.png")


@dataclass(frozen=True)
class Vary:
    """One ``--vary key=v1,v2,...``: a run key or a dotted path into the center config."""

    key: str
    values: tuple[float, ...]


def parse_vary(text: str) -> Vary:
    """``key=v1,v2,...`` with numbers; a bad one raises :class:`UsageError` naming it."""
    key, sep, rest = text.partition("=")
    key = key.strip().replace("-", "_") if key.strip() in ("scale-agents",) else key.strip()
    if not sep or not key or not rest.strip():
        raise UsageError([usage("--vary", text, "must be KEY=V1,V2,... e.g. scale_agents=0.9,1,"
                                "1.1 or queues.tech.expansion.0.after_s=8,20")])
    values: list[float] = []
    for word in rest.split(","):
        try:
            v = float(word)
        except ValueError:
            v = math.nan
        if not math.isfinite(v) or v < 0:
            raise UsageError([usage("--vary", text, f"{word.strip()!r} is not a number >= 0")])
        values.append(v)
    if len(set(values)) != len(values):
        raise UsageError([usage("--vary", text, "lists a value twice")])
    return Vary(key, tuple(values))


def _center_data(scenario: Scenario) -> Any:
    """The center config as the scenario sees it: the file with its ``center_overrides``."""
    path = (Path(scenario.path).resolve().parent / scenario.spec.center).resolve()
    data, _ = yamlsafe.read_yaml(path)
    return deep_merge(data, scenario.spec.center_overrides)


def _walk(data: Any, key: str) -> tuple[list[str | int], Any]:
    """The parts of a dotted ``key`` and its current value; a part that matches nothing raises
    :class:`UsageError` with a did-you-mean."""
    parts: list[str | int] = []
    node = data
    for word in key.split("."):
        if isinstance(node, list):
            if not word.isdigit() or int(word) >= len(node):
                raise UsageError([usage("--vary", key, f"{word!r} after "
                                        f"{'.'.join(map(str, parts))} must be an index from 0 "
                                        f"to {len(node) - 1}")])
            parts.append(int(word))
            node = node[int(word)]
        elif isinstance(node, dict) and word in node:
            parts.append(word)
            node = node[word]
        else:
            valid = list(node) + (list(RUN_KEYS) if not parts else []) \
                if isinstance(node, dict) else []
            where = f" under {'.'.join(map(str, parts))}" if parts else ""
            raise UsageError([usage("--vary", key, unknown(f"key{where}", word, valid))])
    if isinstance(node, bool) or not isinstance(node, int | float):
        raise UsageError([usage("--vary", key, f"is {node!r}, not a number: only numbers can "
                                "be varied")])
    return parts, node


def check_varies(scenario: Scenario, varies: Sequence[Vary]) -> None:
    """Every key must be a run key or a number in the scenario's center config, given once."""
    problems: list[Problem] = []
    seen: set[str] = set()
    data = _center_data(scenario)
    for v in varies:
        if v.key in seen:
            problems.append(usage("--vary", v.key, "is varied twice; list all its values in one "
                                  "--vary"))
        seen.add(v.key)
        if v.key not in RUN_KEYS:
            try:
                _walk(data, v.key)
            except UsageError as exc:
                problems += exc.problems
        elif any(x <= 0 for x in v.values):
            problems.append(usage("--vary", v.key, "multipliers must be > 0"))
    if math.prod(len(v.values) for v in varies) > MAX_POINTS:
        problems.append(usage("--vary", " ".join(v.key for v in varies),
                              f"the grid has more than {MAX_POINTS} points"))
    if problems:
        raise UsageError(problems)


def _center_override(data: Any, key: str, value: float) -> dict[str, Any]:
    """Center overrides setting ``key`` to ``value``; a list on the way is replaced whole
    (the scenario's ``deep_merge`` replaces lists), with only that one item changed."""
    parts, current = _walk(data, key)
    typed: float | int = int(value) if isinstance(current, int) and value.is_integer() else value
    first_list = next((i for i in range(len(parts)) if isinstance(parts[i], int)), len(parts))
    head = parts[:first_list]
    if first_list == len(parts):
        leaf: Any = typed
    else:
        node = data
        for p in head:
            node = node[p]
        leaf = copy.deepcopy(node)
        inner = leaf
        for p in parts[first_list:-1]:
            inner = inner[p]
        inner[parts[-1]] = typed
    out: Any = leaf
    for p in reversed(head):
        out = {p: out}
    return dict(out)


def point_spec(base: RunSpec, scenario: Scenario, point: dict[str, float]) -> RunSpec:
    """The run spec of one grid point: ``base`` with the point's overrides."""
    overrides = dict(base.overrides)
    agent_scale = base.agent_scale
    center = dict(scenario.spec.center_overrides)
    data = _center_data(scenario)
    for key, value in point.items():
        if key == "scale":
            overrides["volume_scale"] = value
        elif key == "scale_agents":
            agent_scale = value
        else:
            center = deep_merge(center, _center_override(data, key, value))
    if center != scenario.spec.center_overrides:
        overrides["center_overrides"] = center
    return replace(base, overrides=overrides, agent_scale=agent_scale)


def agent_hours(scenario: Scenario) -> float:
    """Agent-hours scheduled over the run: logged-in time of every shift, no absences drawn."""
    spec = scenario.spec
    plain = spec.staffing.model_copy(update={"absence_rate": 0.0})
    horizon = spec.days * 86400.0
    timeline = build_timeline(scenario.center.config, scenario.center.agents, plain, spec.start,
                              horizon, _fixed_rng())
    since: dict[str, float] = {}
    total = 0.0
    for act in timeline:
        if act.action == "login":
            since.setdefault(act.agent, act.t)
        elif act.action == "logout" and act.agent in since:
            total += min(act.t, horizon) - since.pop(act.agent)
    total += sum(horizon - t for t in since.values())
    return total / 3600.0


def _fixed_rng() -> Any:
    import numpy as np

    return np.random.default_rng(0)


@dataclass(frozen=True)
class SweepRow:
    """One grid point: its values, agent-hours, the center's SL and answer rate with 95% CI
    half-widths, and whether every target was met."""

    point: dict[str, float]
    agents: int
    agent_hours: float
    sl_offered: float
    sl_half_width: float
    answer_rate: float
    answer_rate_half_width: float
    meets_target: bool
    #: (dimension, group, status) of the center and each group NOT MET or INCONCLUSIVE, the
    #: center first (in the files as text: "language kk NOT MET; ...").
    misses: tuple[tuple[str, str, str], ...]
    cheapest: bool = False


@dataclass(frozen=True)
class Sweep:
    """The sweep's rows in grid order (the last ``--vary`` varies fastest) and its set-up."""

    scenario: str
    keys: tuple[str, ...]
    replications: int
    seed: int
    target: float
    answer_rate_target: float
    rows: tuple[SweepRow, ...]


def grid(varies: Sequence[Vary]) -> list[dict[str, float]]:
    """Every combination of the varied values, the last key varying fastest."""
    return [dict(zip([v.key for v in varies], combo, strict=True))
            for combo in itertools.product(*(v.values for v in varies))]


def run_sweep(base: RunSpec, varies: Sequence[Vary], replications: int, seed: int,
              executor: Executor | None = None, jobs: int | None = None,
              on_progress: OnProgress | None = None) -> Sweep:
    """Run every point's replications (all submitted at once, the same seeds at every point);
    ``on_progress`` hears how far each has got (its index point-major, the fraction done)."""
    scenario = load_run_scenario(base)
    check_varies(scenario, varies)
    points = grid(varies)
    specs = [point_spec(base, scenario, p) for p in points]
    labels = [", ".join(f"{k}={v:g}" for k, v in p.items()) for p in points]
    loaded = []
    for spec, label in zip(specs, labels, strict=True):
        try:
            loaded.append(load_run_scenario(spec))  # a bad point fails here, exit 2
        except ConfigError as exc:
            raise UsageError([usage("--vary", label, f"makes the scenario invalid: {p.path}: "
                                    f"{p.message}") for p in exc.problems]) from None
    # The rows need only each run's tallies: no call log is kept or sent back.
    results = run_specs([replace(s, keep_calls=False) for s in specs], replications, seed, jobs,
                        on_progress, executor=executor, labels=labels)
    rows = []
    for point, sc, res in zip(points, loaded, results, strict=True):
        cfg = sc.center.config
        summary = summarise(res, answer_rate_target=cfg.center.answer_rate_target,
                            min_offered=cfg.center.verdict_min_offered,
                            timezone=next(iter(cfg.sites.values())).timezone)
        sl, car = summary.overall["sl_offered"], summary.overall["answer_rate"]
        rows.append(SweepRow(point, len(sc.center.agents), agent_hours(sc), sl.mean,
                             sl.half_width, car.mean, car.half_width, summary.meets_target,
                             tuple((g.dim, g.group, g.status) for g in summary.misses)))
    met = [r for r in rows if r.meets_target]
    if met:
        best = min(met, key=lambda r: r.agent_hours)
        rows = [replace(r, cheapest=True) if r is best else r for r in rows]
    cfg = scenario.center.config
    return Sweep(scenario.path, tuple(v.key for v in varies), replications, seed,
                 cfg.center.service_level.target, cfg.center.answer_rate_target, tuple(rows))


def _flat(row: SweepRow) -> dict[str, Any]:
    d = asdict(row)
    d["misses"] = "; ".join(" ".join(m) for m in row.misses)
    return {**d.pop("point"), **d}


def closest(sweep: Sweep) -> SweepRow | None:
    """When no point meets every target, the one nearest to it: the fewest groups NOT MET,
    then the fewest INCONCLUSIVE, then the fewest agent-hours; None when one meets them."""
    if not sweep.rows or any(r.meets_target for r in sweep.rows):
        return None
    return min(sweep.rows, key=lambda r: (sum(m[2] == NOT_MET for m in r.misses),
                                          len(r.misses), r.agent_hours))


def missed_text(misses: Sequence[tuple[str, str, str]]) -> str:
    """What a point missed by verdict and dimension, e.g. ``NOT MET: language kk, uz; country
    KZ. INCONCLUSIVE: queue repair``."""
    parts = []
    for status in (NOT_MET, INCONCLUSIVE):
        by_dim: dict[str, list[str]] = {}
        for dim, group, got in misses:
            if got == status:
                by_dim.setdefault(dim, []).append(group)
        if by_dim:
            parts.append(f"{status}: " + "; ".join(
                "the center" if dim == "center" else f"{dim} {', '.join(groups)}"
                for dim, groups in by_dim.items()))
    return ". ".join(parts)


def write_outputs(sweep: Sweep, out: Path) -> None:
    """``sweep.csv`` (one row per point), ``sweep.json`` (set-up and rows) and ``sweep.png``."""
    out.mkdir(parents=True, exist_ok=True)
    flat = [_flat(r) for r in sweep.rows]
    with open(out / "sweep.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(flat[0]))
        w.writeheader()
        w.writerows(flat)
    doc = {k: v for k, v in asdict(sweep).items() if k != "rows"}
    doc["rows"] = flat
    (out / "sweep.json").write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n",
                                    encoding="utf-8")
    plot(sweep, out / "sweep.png")


def plot(sweep: Sweep, path: Path) -> None:
    """SL and answer rate against the first varied key with 95% CIs, a line per value of the
    second; the targets dashed, the cheapest point meeting every target circled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x_key = sweep.keys[0]
    line_key = sweep.keys[1] if len(sweep.keys) > 1 else None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    panels = (("sl_offered", "sl_half_width", "SL offered", sweep.target),
              ("answer_rate", "answer_rate_half_width", "answer rate", sweep.answer_rate_target))
    lines = sorted({r.point[line_key] for r in sweep.rows}) if line_key else [None]
    for ax, (kpi, hw, title, target) in zip(axes, panels, strict=True):
        for value in lines:
            rows = [r for r in sweep.rows if line_key is None or r.point[line_key] == value]
            # Other varied keys (a third and on) are averaged out of the view by taking each
            # x's first row: the table has every point.
            by_x: dict[float, SweepRow] = {}
            for r in rows:
                by_x.setdefault(r.point[x_key], r)
            xs = sorted(by_x)
            ax.errorbar(xs, [getattr(by_x[x], kpi) for x in xs],
                        yerr=[getattr(by_x[x], hw) for x in xs], marker="o", capsize=3,
                        label=f"{line_key}={value:g}" if line_key else None)
        ax.axhline(target, linestyle="--", color="grey", linewidth=1)
        for r in sweep.rows:
            if r.cheapest:
                ax.plot([r.point[x_key]], [getattr(r, kpi)], marker="o", markersize=14,
                        fillstyle="none", color="red", label="cheapest meeting every target")
        ax.set_xlabel(x_key)
        ax.set_title(f"{title} (95% CI, {sweep.replications} replications)")
        if line_key or any(r.cheapest for r in sweep.rows):
            ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
