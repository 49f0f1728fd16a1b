"""``acd erlang`` (one queue, by formula) and ``acd sim staff`` (staffing per interval and queue).

:func:`register` adds ``erlang`` to the ``acd`` subcommands and :func:`register_sim` adds
``staff`` to ``acd sim``; each sets ``func(args, console) -> exit status`` as ``acd.cli`` does.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TextIO

from rich.console import Console
from rich.table import Table

from acd import shipped
from acd.cliargs import float_range, input_file, int_range, output_dir
from acd.errors import COMMAND_LINE, ConfigError, Problem, UsageError, usage

#: Largest offered load ``acd erlang`` sizes; beyond it the rate is almost surely mistyped.
MAX_LOAD = 100_000.0
#: Largest ``rate * patience`` (callers who would wait) whose Erlang A series is summed.
MAX_WAITING = 1_000_000.0
#: Most agents ``acd erlang --agents`` accepts (the formulas' own staffing limit).
MAX_AGENTS = 1_000_000
#: Most replications one run accepts (bounds memory, catches a slipped digit).
MAX_REPLICATIONS = 1000
#: Most processes one run accepts (bounds memory, catches a slipped digit).
MAX_JOBS = 256
#: Most intervals per queue ``acd sim staff --busiest`` confirms by simulation.
MAX_BUSIEST = 1000
#: Most rounds of ``acd sim staff --refine-rounds`` (each simulates one to four candidates).
MAX_REFINE_ROUNDS = 50
_UNITS = {"s": 1.0, "sec": 1.0, "min": 60.0, "h": 3600.0, "hour": 3600.0, "day": 86400.0}
_RATE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(?:/\s*([a-z]+))?\s*$")
DEFAULT_SCENARIO = shipped.reference_scenario()


@contextlib.contextmanager
def replication_progress(console: Console, what: str, total: int, quiet: bool = False,
                         days: float = 0.0) -> Iterator[Callable[[int, float], None]]:
    """How far ``total`` replications have got, as an executor reports it (task index, fraction
    done): a live bar on a terminal; in a log (cron, CI) a plain line on standard error at each
    10% (or after a quiet minute); nothing when ``quiet``. With ``days`` over one, the bar also
    says the simulated day the slowest replication has reached, and a log gets a line per
    replication and simulated day."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from sim.run import DayProgress, PlainProgress

    plain = not quiet and not console.is_terminal
    with Progress(TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(), console=console,
                  transient=True, disable=quiet or plain) as progress:
        task = progress.add_task(what, total=total)
        done: dict[int, float] = {}
        log = PlainProgress(what, total, sys.stderr) if plain else None
        by_day = DayProgress(days, sys.stderr) if days > 1 and not quiet else None

        def on_progress(i: int, fraction: float) -> None:
            done[i] = fraction
            progress.update(task, completed=sum(done.values()),
                            description=what if by_day is None else
                            f"{what}, day {by_day.day(min(done.values()))} of {days:g}")
            if log is not None:
                log(sum(done.values()))
            if by_day is not None and plain:
                by_day(i, fraction)

        yield on_progress


@dataclass
class SearchProgress:
    """How far a search of unknown length (``acd sim staff --confirm``) has got: told the
    replications of each batch as it ends, it shows their total and the time so far through
    ``show`` (a spinner's text), and in a log (``stream``) as a line at most every
    ``every_s`` seconds."""

    what: str
    show: Callable[[str], None]
    stream: TextIO | None = None
    every_s: float = 60.0
    clock: Callable[[], float] = time.monotonic
    replications: int = 0
    _start: float = field(init=False)
    _logged: float = field(init=False)

    def __post_init__(self) -> None:
        self._start = self._logged = self.clock()

    def __call__(self, replications: int) -> None:
        self.replications += replications
        now = self.clock()
        text = f"{self.what}: {self.replications} replication(s) run, {now - self._start:.0f} s"
        self.show(text)
        if self.stream is not None and now - self._logged >= self.every_s:
            self._logged = now
            print(text, file=self.stream, flush=True)


def parse_rate(text: str) -> float:
    """Calls per second from ``0.5``, ``0.5/s``, ``30/min``, ``1800/h`` or ``43200/day``."""
    m = _RATE.match(text.lower())
    if m is None or (m.group(2) is not None and m.group(2) not in _UNITS):
        raise argparse.ArgumentTypeError(
            f"not a call rate: {text!r}; give calls per second (0.5) or with a unit: "
            f"{', '.join('1800/' + u for u in _UNITS)}")
    return float(m.group(1)) / _UNITS[m.group(2) or "s"]


def _check_erlang_args(args: argparse.Namespace) -> list[Problem]:
    """Every bad value of ``acd erlang``; a load no single queue has is refused at once."""
    problems = []
    checks = [("--rate", args.rate, args.rate > 0, "must be > 0 calls"),
              ("--aht", args.aht, args.aht > 0, "must be > 0 seconds"),
              ("--threshold", args.threshold, args.threshold >= 0, "must be >= 0 seconds"),
              ("--target", args.target, 0 < args.target < 1,
               "must be a share between 0 and 1 (0.85 for 85%)")]
    if args.agents is not None:
        checks.append(("--agents", args.agents, 1 <= args.agents <= MAX_AGENTS,
                       f"must be from 1 to {MAX_AGENTS}"))
    if args.patience is not None:
        checks.append(("--patience", args.patience, args.patience > 0, "must be > 0 seconds"))
    for option, value, ok, message in checks:
        if not (ok and math.isfinite(value)):
            problems.append(Problem(COMMAND_LINE, option, value, message))
    load = args.rate * args.aht
    if not problems and args.patience is not None and args.rate * args.patience > MAX_WAITING:
        problems.append(usage("--patience", args.patience,
                              f"times --rate {args.rate:g}/s is {args.rate * args.patience:.4g} "
                              f"callers; Erlang A sums a term per caller and stops at "
                              f"{MAX_WAITING:.0f}: lower --patience, or leave it out for "
                              "Erlang C"))
    if not problems and load > MAX_LOAD:
        problems.append(usage("--rate", args.rate,
                              f"times --aht {args.aht:g} s is {load:.4g} Erlangs, more than "
                              f"{MAX_LOAD:.0f} for one queue; --rate is calls per second: "
                              f"for calls per hour write --rate {args.rate:g}/h"))
    return problems


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.2f}%"


def _secs(x: float) -> str:
    return "inf" if math.isinf(x) else ("n/a" if math.isnan(x) else f"{x:.1f} s")


def _cmd_erlang(args: argparse.Namespace, console: Console) -> int:
    try:
        return _erlang_table(args, console)
    except ValueError as exc:
        # The formulas refuse, at once, queues they cannot size (e.g. a load beyond any
        # staffing with near-infinite patience): that is the command line's values.
        values = f"--rate {args.rate:g} --aht {args.aht:g}" + (
            f" --patience {args.patience:g}" if args.patience else "")
        raise UsageError([usage(values, None, str(exc))]) from None


def _erlang_table(args: argparse.Namespace, console: Console) -> int:
    from sim.erlang import ErlangA, agents_for_service_level, service_level_c

    rate, aht, t = args.rate, args.aht, args.threshold
    load = rate * aht
    need_c = agents_for_service_level(rate, aht, t, args.target, "C")
    agents = args.agents if args.agents is not None else need_c
    console.print(f"rate {rate:g} calls/s ({rate * 3600:g}/h), AHT {aht:g} s, "
                  f"offered load {load:.2f} Erlangs, {agents} agents, SL {args.target:.0%} "
                  f"within {t:g} s")
    table = Table("measure", "Erlang C", *(["Erlang A"] if args.patience else []))
    if load >= agents:
        c_cells = ["0.00% (unstable: load >= agents)", "100.00%", "inf", "100.00%", "0.00%"]
    else:
        c = ErlangA(rate, aht, agents, math.inf)
        c_cells = [_pct(service_level_c(rate, aht, agents, t)), _pct(c.p_wait), _secs(c.asa),
                   _pct(c.occupancy), _pct(0.0)]
    rows = [f"SL offered ({t:g} s)", "P(wait)", "ASA", "occupancy", "abandon rate"]
    a_cells: list[str] = []
    if args.patience:
        a = ErlangA(rate, aht, agents, args.patience)
        a_cells = [_pct(a.sl_offered(t)), _pct(a.p_wait), _secs(a.asa), _pct(a.occupancy),
                   _pct(a.p_abandon)]
    for i, name in enumerate(rows):
        table.add_row(name, c_cells[i], *([a_cells[i]] if a_cells else []))
    if args.patience:
        a = ErlangA(rate, aht, agents, args.patience)
        table.add_row(f"SL answered ({t:g} s)", c_cells[0], _pct(a.sl_answered(t)))
        table.add_row("mean wait (all offered)", c_cells[2], _secs(a.mean_wait))
    console.print(table)
    need = f"Erlang C {need_c} agents"
    if args.patience:
        need_a = agents_for_service_level(rate, aht, t, args.target, "A", args.patience)
        need += f", Erlang A (patience {args.patience:g} s) {need_a} agents"
    console.print(f"smallest staffing for {args.target:.0%} within {t:g} s: {need}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``acd erlang`` to the ``acd`` subcommands."""
    p = sub.add_parser("erlang", help="service level, ASA, occupancy and staffing of one queue "
                                      "by Erlang C (and Erlang A with --patience)")
    p.add_argument("--rate", type=parse_rate, required=True,
                   help="arrival rate: calls per second (0.5) or with a unit (1800/h, 30/min)")
    p.add_argument("--aht", type=float, required=True, help="average handle time, seconds")
    p.add_argument("--agents", type=int, help="agents (default: the smallest meeting --target)")
    p.add_argument("--threshold", type=float, default=20.0, help="SL threshold, s (20)")
    p.add_argument("--target", type=float, default=0.85, help="SL target share (0.85)")
    p.add_argument("--patience", type=float,
                   help="mean caller patience, s: adds Erlang A (exponential abandonment)")
    p.set_defaults(func=_cmd_erlang, validate=_check_erlang_args)


def _cmd_staff(args: argparse.Namespace, console: Console) -> int:
    from sim.executor import executor_for
    from sim.scenario import load_scenario
    from sim.staff import OUTAGES_NOTE, POOLING_NOTE, REFINE_ROUNDS, plan, write_csv

    scenario = load_scenario(args.scenario, days=args.days)
    mode: Literal["none", "busiest", "all"] = args.confirm or "none"
    if mode != "none" and not console.is_terminal:
        # No spinner in a log: say that a long step has started, so a quiet log is explained.
        print(f"sizing staffing and confirming {mode} intervals with the center simulation "
              f"({args.replications} to {max(args.replications, args.max_replications)} "
              "replication(s) per candidate)", file=sys.stderr, flush=True)
    what = "sizing staffing" + (" and confirming by simulation" if mode != "none" else "")
    with console.status(what) as status:
        executor = executor_for(args.dask, args.jobs) if mode != "none" else None
        ran = SearchProgress(what, status.update, None if console.is_terminal else sys.stderr)
        try:
            staff = plan(scenario, args.days, args.model, mode, args.busiest,
                         args.replications, args.seed, executor, args.max_replications,
                         args.ci, REFINE_ROUNDS if args.refine_rounds is None
                         else args.refine_rounds, args.min_agents, on_batch=ran)
        finally:
            if executor is not None:
                executor.close()
    _print_staff(staff, console)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "staff.csv", staff)
    write_csv(out / "staff_language.csv", staff, by_language=True)
    console.print(f"[yellow]note[/yellow]: {POOLING_NOTE}")
    if scenario.spec.outages:
        console.print(f"[yellow]note[/yellow]: {OUTAGES_NOTE}")
    console.print(f"per interval and queue: {out / 'staff.csv'}; per interval, queue and "
                  f"language: {out / 'staff_language.csv'} (gap = required - scheduled)")
    return 0


def _print_staff(staff: object, console: Console) -> None:
    from sim.staff import StaffPlan

    assert isinstance(staff, StaffPlan)
    hours = staff.interval_s / 3600
    table = Table("queue", "intervals", "peak calls", "peak Erlang", "agent-h needed",
                  "agent-h scheduled", "intervals short", title=f"Erlang {staff.model} staffing")
    for q in sorted({r.queue for r in staff.rows}):
        rows = [r for r in staff.rows if r.queue == q]
        peak = max(rows, key=lambda r: r.calls)
        short = sum(1 for r in rows if r.scheduled_agents < r.erlang_agents)
        table.add_row(q, str(len(rows)), f"{peak.calls:.1f}", str(peak.erlang_agents),
                      f"{sum(r.erlang_agents for r in rows) * hours:.0f}",
                      f"{sum(r.scheduled_agents for r in rows) * hours:.0f}", str(short))
    console.print(table)
    from sim.staff import print_languages
    print_languages(staff, console)
    # Per language the intervals go to staff_language.csv when they would flood the terminal.
    by_language = [r for r in staff.language_rows if r.confirmed_agents is not None]
    confirmed = [r for r in staff.rows if r.confirmed_agents is not None] + \
        (by_language if len(by_language) <= 60 else [])
    if confirmed:
        from sim.confirm import ci_text
        t = Table("interval", "queue", "language", "calls", "Erlang", "Erlang SL", "confirmed",
                  "source", "simulated SL (95% CI)", "scheduled", "gap",
                  title="Erlang vs confirmed by the center simulation")
        for r in confirmed:
            t.add_row(r.interval_start, r.queue, r.language, f"{r.calls:.1f}",
                      str(r.erlang_agents), _pct(r.erlang_sl), str(r.confirmed_agents),
                      r.source,
                      ci_text(math.nan if r.confirmed_sl is None else r.confirmed_sl,
                              math.nan if r.confirmed_sl_low is None else r.confirmed_sl_low,
                              math.nan if r.confirmed_sl_high is None else
                              r.confirmed_sl_high),
                      f"{r.scheduled_agents:.1f}", f"{r.gap:+.1f}")
        console.print(t)
    if staff.confirmation is not None:
        c = staff.confirmation
        console.print(f"confirmation: {c.candidates} candidate(s), {c.replications_run} "
                      f"replication(s) in {c.wall_s:.0f} s ({c.cpu_s:.0f} s CPU); result on "
                      f"{c.replications_final} replication(s) with common random numbers; SL "
                      f"95% CI half-width median {100 * c.median_half_width:.1f} pp, largest "
                      f"{100 * c.max_half_width:.1f} pp", markup=False, highlight=False)
        if c.refinement is not None:
            console.print(c.refinement.summary(), markup=False, highlight=False)


def scenario_overrides(days: float | None, scale: float | None = None) -> list[Problem]:
    """``--days`` and ``--scale`` within the bounds the scenario file itself must keep."""
    from sim.scenario import ScenarioFile

    problems: list[Problem] = []
    for option, value, name in (("--days", days, "days"), ("--scale", scale, "volume_scale")):
        # The bounds are read from the scenario model, so the two cannot drift apart.
        meta = ScenarioFile.model_fields[name].metadata
        low = next(float(m.gt) for m in meta if hasattr(m, "gt"))
        high = next(float(m.le) for m in meta if hasattr(m, "le"))
        problems += float_range(option, value, low, high)
    return problems


def _check_staff_args(args: argparse.Namespace) -> list[Problem]:
    """Every bad value and path of ``acd sim staff``, found before the scenario is loaded."""
    return [*input_file("scenario", args.scenario), *scenario_overrides(args.days),
            *int_range("--busiest", args.busiest, 1, MAX_BUSIEST),
            *int_range("--replications", args.replications, 1, MAX_REPLICATIONS),
            *int_range("--max-replications", args.max_replications, 1, MAX_REPLICATIONS),
            *float_range("--ci", args.ci, 0.001, 0.5),
            *int_range("--refine-rounds", args.refine_rounds, 0, MAX_REFINE_ROUNDS),
            *int_range("--min-agents", args.min_agents, 0, MAX_AGENTS),
            *int_range("--seed", args.seed, 0), *int_range("--jobs", args.jobs, 1, MAX_JOBS),
            *output_dir("--out", args.out, ("staff.csv", "staff_language.csv"))]


def register_sim(sim_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``acd sim staff`` to the ``acd sim`` subcommands."""
    p = sim_sub.add_parser("staff", help="smallest agents per interval and queue meeting the "
                                         "SL target (Erlang-seeded, optionally simulated)")
    p.add_argument("scenario", nargs="?", default=str(DEFAULT_SCENARIO),
                   help="scenario YAML (default: the reference center's)")
    p.add_argument("--days", type=float, help="days to size (overrides the scenario)")
    p.add_argument("--model", choices=("A", "C"), default="A",
                   help="Erlang A (with the traffic file's patience; default) or Erlang C")
    p.add_argument("--confirm", nargs="?", const="busiest", choices=("busiest", "all"),
                   help="confirm with the center simulation and search the agents per queue "
                        "and language, judged on the busiest intervals or on all")
    p.add_argument("--busiest", type=int, default=3,
                   help="intervals per queue and language judged by --confirm (3)")
    p.add_argument("-r", "--replications", type=int, default=3,
                   help="first replications per staffing candidate (3)")
    p.add_argument("--max-replications", type=int, default=30,
                   help="most replications per candidate (30)")
    p.add_argument("--ci", type=float, default=0.02,
                   help="replicate until the SL 95%% CI half-width is at most this (0.02)")
    p.add_argument("--refine-rounds", type=int,
                   help="rounds of per-interval refinement after --confirm's factor search "
                        "(0: off; default 3)")
    p.add_argument("--min-agents", type=int, default=1,
                   help="fewest agents a queue/language group gets wherever it expects a call; "
                        "0: none where it expects under 5 calls (1)")
    p.add_argument("--seed", type=int, default=1, help="base seed, >= 0 (1)")
    p.add_argument("-j", "--jobs", type=int,
                   help="processes for --confirm (default: one per core)")
    add_dask_option(p)
    p.add_argument("--out", default="out/staff", help="directory for staff.csv")
    p.set_defaults(func=_cmd_staff, validate=_check_staff_args)


def _cmd_traffic_profile(args: argparse.Namespace, console: Console) -> int:
    from sim.traffic.profile import build_reference_profile, render_yaml

    _check_bank_calls(args.csv, args.interval)
    sys.stdout.write(render_yaml(build_reference_profile(args.csv, args.interval)))
    return 0


def _check_bank_calls(path: str, interval: int) -> None:
    """The bank CSV must have calls on every weekday and in every interval it describes."""
    from sim.traffic.profile import CLOSE_MIN, OPEN_MIN, WEEKDAY_KEYS, read_bank_calls

    per_day = read_bank_calls(path)
    problems = []
    missing = sorted({0, 1, 2, 3, 4} - {d.weekday() for d in per_day})
    if missing:
        problems.append(Problem(path, "DateTime", None, "needs calls on every weekday Monday to "
                                f"Friday; none on {', '.join(WEEKDAY_KEYS[w] for w in missing)}"))
    busy = {(minute - OPEN_MIN) // interval for calls in per_day.values()
            for minute, n in calls.items() if n > 0}
    empty = [OPEN_MIN + k * interval for k in range((CLOSE_MIN - OPEN_MIN) // interval)
             if k not in busy]
    if per_day and empty:
        problems.append(Problem(path, "Calls", None, f"no calls on any day in the {interval}-min "
                                "interval(s) from " + ", ".join(f"{m // 60:02d}:{m % 60:02d}"
                                                               for m in empty[:5])))
    if problems:
        raise ConfigError(problems)


def register_traffic(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``acd traffic profile`` to the ``acd`` subcommands."""
    traffic = sub.add_parser("traffic", help="derive traffic shapes from call data")
    traffic_sub = traffic.add_subparsers(dest="traffic_command", required=True)
    p = traffic_sub.add_parser("profile", help="print the traffic YAML blocks (intraday profile, "
                                               "day of week, over-dispersion) derived from a "
                                               "5-minute call-count CSV")
    p.add_argument("csv", help="CSV with DateTime and Calls columns (data/bank_calls_5min.csv)")
    p.add_argument("interval", nargs="?", type=int, choices=(15, 30), default=30,
                   help="interval length in minutes (30)")
    p.set_defaults(func=_cmd_traffic_profile, validate=lambda a: input_file("csv", a.csv))


#: Largest ``--scale-agents`` factor (catches a percentage typed as a factor).
MAX_AGENT_SCALE = 10.0


def _cmd_compare(args: argparse.Namespace, console: Console) -> int:
    import json

    from sim.compare import compare, comparison_to_dict, print_comparison
    from sim.executor import executor_for
    from sim.run import RunSpec, load_run_scenario, run_specs

    overrides = {k: v for k, v in (("days", args.days), ("start", args.start),
                                   ("volume_scale", args.scale)) if v is not None}
    b_path = args.scenario_b or args.scenario_a
    # The paired KPIs come from each run's tallies: no call log is kept or sent back.
    spec_a = RunSpec(str(args.scenario_a), overrides, keep_calls=False)
    spec_b = RunSpec(str(b_path), overrides, agent_scale=args.scale_agents, keep_calls=False)
    scenario_a = load_run_scenario(spec_a)  # both fail fast on bad input (exit 2)
    scenario_b = load_run_scenario(spec_b)
    if scenario_a.traffic_path != scenario_b.traffic_path:
        console.print("[yellow]note[/yellow]: A and B read different traffic files, so their "
                      "callers differ and the differences are less sharply paired")
    agents_a, agents_b = len(scenario_a.center.agents), len(scenario_b.center.agents)
    a_name = f"{scenario_a.spec.name} ({args.scenario_a}, {agents_a} agents)"
    b_name = f"{scenario_b.spec.name} ({b_path}" + (
        f" with agents x{args.scale_agents:g}" if args.scale_agents != 1.0 else "") + \
        f", {agents_b} agents)"
    console.print(f"simulating A and B, {args.replications} replication(s) each, "
                  f"seed {args.seed}")
    with replication_progress(console, "simulating A and B",
                              2 * args.replications) as on_progress:
        executor = executor_for(args.dask, args.jobs)
        try:
            a, b = run_specs([spec_a, spec_b], args.replications, args.seed, args.jobs,
                             on_progress, executor=executor, labels=["A", "B"])
        finally:
            executor.close()
    center = scenario_a.center.config.center
    comparison = compare(a, b, min_offered=center.verdict_min_offered)
    print_comparison(comparison, console, a_name, b_name)
    if args.out is not None:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        doc = comparison_to_dict(comparison, a_name, b_name)
        (out / "compare.json").write_text(json.dumps(doc, allow_nan=False, indent=1) + "\n",
                                          encoding="utf-8")
        console.print(f"paired differences in {out / 'compare.json'}")
    return 0


def _check_compare_args(args: argparse.Namespace) -> list[Problem]:
    """Every bad value and path of ``acd sim compare``, found before a scenario is loaded."""
    problems = [*input_file("A", args.scenario_a),
                *scenario_overrides(args.days, args.scale),
                *float_range("--scale-agents", args.scale_agents, 0.0, MAX_AGENT_SCALE),
                *int_range("--replications", args.replications, 2, MAX_REPLICATIONS),
                *int_range("--seed", args.seed, 0)]
    if args.scenario_b is not None:
        problems += input_file("B", args.scenario_b)
    if args.jobs is not None:
        problems += int_range("--jobs", args.jobs, 1, MAX_JOBS)
    if args.out is not None:
        problems += output_dir("--out", args.out, ("compare.json",))
    return problems


def register_compare(sim_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``acd sim compare`` to the ``acd sim`` subcommands."""
    from acd.cliargs import iso_time

    p = sim_sub.add_parser(
        "compare", help="run two scenarios on the same seeds (common random numbers) and print "
                        "paired differences B - A per KPI and group with 95% CIs")
    p.add_argument("scenario_a", metavar="A", help="scenario YAML of A (the baseline)")
    p.add_argument("scenario_b", metavar="B", nargs="?",
                   help="scenario YAML of B (default: A again, e.g. with --scale-agents)")
    p.add_argument("--scale-agents", type=float, default=1.0, metavar="FACTOR",
                   help="multiply B's agents in every group by FACTOR (1.05 = 5%% more)")
    p.add_argument("--days", type=float, help="simulated days for both (overrides)")
    p.add_argument("--start", type=iso_time, help="start for both, ISO 8601 with UTC offset")
    p.add_argument("--scale", type=float, help="volume multiplier for both (overrides)")
    p.add_argument("-r", "--replications", type=int, default=5,
                   help="paired replications, 2 to 1000 (5)")
    p.add_argument("--seed", type=int, default=1, help="base seed of both sides, >= 0 (1)")
    p.add_argument("-j", "--jobs", type=int, help="processes (default: one per core)")
    add_dask_option(p)
    p.add_argument("--out", help="directory for compare.json (default: print only)")
    p.set_defaults(func=_cmd_compare, validate=_check_compare_args)


def add_dask_option(p: argparse.ArgumentParser) -> None:
    """``--dask ADDRESS``: run the replications on a Dask cluster instead of local processes."""
    p.add_argument("--dask", metavar="ADDRESS",
                   help="run on the Dask scheduler at ADDRESS (tcp://host:8786), or 'local' for "
                        "a LocalCluster of -j workers here; needs pip install "
                        "'acd-engine[dask]'")


def _cmd_sweep(args: argparse.Namespace, console: Console) -> int:
    from sim.executor import executor_for
    from sim.run import RunSpec
    from sim.sweep import parse_vary, run_sweep, write_outputs

    varies = [parse_vary(text) for text in args.vary]
    overrides = {k: v for k, v in (("days", args.days), ("start", args.start),
                                   ("volume_scale", args.scale)) if v is not None}
    base = RunSpec(str(args.scenario), overrides)
    points = math.prod(len(v.values) for v in varies)
    console.print(f"sweeping {points} point(s), {args.replications} replication(s) each, "
                  f"seed {args.seed}")
    executor = None
    with replication_progress(console, "sweeping", points * args.replications) as on_progress:
        try:
            executor = executor_for(args.dask, args.jobs)
            sweep = run_sweep(base, varies, args.replications, args.seed, executor,
                              on_progress=on_progress)
        finally:
            if executor is not None:
                executor.close()
    _print_sweep(sweep, console)
    out = Path(args.out)
    write_outputs(sweep, out)
    console.print(f"table in {out / 'sweep.csv'} and {out / 'sweep.json'}, plot in "
                  f"{out / 'sweep.png'}")
    return 0


def _print_sweep(sweep: object, console: Console) -> None:
    from sim.kpi import INCONCLUSIVE
    from sim.sweep import Sweep, closest, missed_text

    assert isinstance(sweep, Sweep)
    table = Table(*sweep.keys, "agents", "agent-h", "SL offered", "answer rate", "targets",
                  title=f"sweep of {sweep.scenario} ({sweep.replications} replications, "
                        f"seed {sweep.seed}; 95% CI)")
    for r in sweep.rows:
        table.add_row(*(f"{r.point[k]:g}" for k in sweep.keys), str(r.agents),
                      f"{r.agent_hours:.0f}", f"{_pct(r.sl_offered)} ± {_pct(r.sl_half_width)}",
                      f"{_pct(r.answer_rate)} ± {_pct(r.answer_rate_half_width)}",
                      ("MET, cheapest" if r.cheapest else "MET") if r.meets_target
                      else f"missed ({len(r.misses)})")
    console.print(table)
    near = closest(sweep)
    if near is not None:
        at = ", ".join(f"{k}={near.point[k]:g}" for k in sweep.keys)
        console.print("[yellow]note[/yellow]: no point meets every target; what each point "
                      "missed (the center, queues, languages, countries, sites) is in the "
                      "misses column of sweep.csv")
        console.print(f"closest, {at}: {missed_text(near.misses)}")
        if any(m[2] == INCONCLUSIVE for m in near.misses):
            console.print(f"(INCONCLUSIVE: the 95% CI straddles the target; more than "
                          f"{sweep.replications} replications, -r, narrow it)")


def _check_sweep_args(args: argparse.Namespace) -> list[Problem]:
    """Every bad value and path of ``acd sim sweep`` found before the scenario is loaded
    (the --vary keys are checked against it once loaded)."""
    from sim.sweep import SWEEP_OUTPUTS, parse_vary

    problems = [*input_file("scenario", args.scenario),
                *scenario_overrides(args.days, args.scale),
                *int_range("--replications", args.replications, 2, MAX_REPLICATIONS),
                *int_range("--seed", args.seed, 0),
                *int_range("--jobs", args.jobs, 1, MAX_JOBS),
                *output_dir("--out", args.out, SWEEP_OUTPUTS)]
    for text in args.vary:
        try:
            parse_vary(text)
        except UsageError as exc:
            problems += exc.problems
    return problems


def register_sweep(sim_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``acd sim sweep`` to the ``acd sim`` subcommands."""
    from acd.cliargs import iso_time

    p = sim_sub.add_parser(
        "sweep", help="replicate a grid of scenario overrides on the same seeds; one table, a "
                      "plot, the cheapest point meeting every target marked")
    p.add_argument("scenario", nargs="?", default=str(DEFAULT_SCENARIO),
                   help="scenario YAML (default: the reference center's)")
    p.add_argument("--vary", action="append", required=True, metavar="KEY=V1,V2,...",
                   help="a varied key and its values: scale (traffic), scale_agents (agents), "
                        "or a number in the center config by its dotted path, e.g. "
                        "queues.tech.expansion.0.after_s=8,20; repeat for a grid")
    p.add_argument("--days", type=float, help="simulated days at every point (overrides)")
    p.add_argument("--start", type=iso_time, help="start, ISO 8601 with UTC offset")
    p.add_argument("--scale", type=float, help="volume multiplier where scale is not varied")
    p.add_argument("-r", "--replications", type=int, default=5,
                   help="replications per point, 2 to 1000 (5)")
    p.add_argument("--seed", type=int, default=1, help="base seed of every point, >= 0 (1)")
    p.add_argument("-j", "--jobs", type=int, help="processes (default: one per core)")
    add_dask_option(p)
    p.add_argument("--out", default="out/sweep",
                   help="directory for sweep.csv, sweep.json and sweep.png (out/sweep)")
    p.set_defaults(func=_cmd_sweep, validate=_check_sweep_args)
