"""The `acd` command line: check the config, simulate, size staffing, run the service."""

from __future__ import annotations

import argparse
import os
import re
import sys
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from rich.console import Console

from acd import native, shipped
from acd.cliargs import input_file, int_range, iso_time, output_dir, output_file
from acd.errors import (
    COMMAND_LINE,
    EXIT_BAD_INPUT,
    EXIT_BUG,
    EXIT_TARGET_MISSED,
    InputError,
    Problem,
    UsageError,
    usage,
)
from sim.cli import (
    MAX_JOBS,
    MAX_REPLICATIONS,
    add_dask_option,
    replication_progress,
    scenario_overrides,
)

if TYPE_CHECKING:
    from sim.qlreplay import QueueLogOptions
    from sim.scenario import Scenario

__all__ = ["build_parser", "iso_time", "main", "parse_args", "scenario_overrides"]

#: The exit statuses, kept as documented here and in the README.
EXIT_CODES = f"""exit status:
  0   done (and, with --check, every target met)
  {EXIT_TARGET_MISSED}   --check: the service-level or answer-rate target was missed, or its 95%
      CI straddles it (INCONCLUSIVE), for the center or any queue, language,
      country or site with enough calls (center.verdict_min_offered per replication)
  {EXIT_BAD_INPUT}   bad input or usage: one line per problem, naming the file (or
      {COMMAND_LINE} and the option) and the value; nothing is written
  {EXIT_BUG}  anything else is a bug: the traceback is printed, please report it"""
#: Files ``acd sim run`` writes into ``--out`` (the CSV tables are named by the report).
SIM_OUTPUTS = ("summary.json", "report.html")
#: Where runs without ``--out`` go, each in a directory of its own.
DEFAULT_SIM_OUT = "out/sim"

#: The reference center shipped with the project; every command works on it out of the box.
DEFAULT_CONFIG = shipped.center_file()
DEFAULT_SCENARIO = shipped.reference_scenario()


_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(s|sec|m|min|h|hours?|d|days?)?\s*$")
_DURATION_UNITS = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "hour": 3600.0,
                   "hours": 3600.0, "d": 86400.0, "day": 86400.0, "days": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds from ``3600``, ``90min``, ``1.5h`` or ``1d`` (``--warmup``)."""
    m = _DURATION.match(text.lower())
    if m is None:
        raise argparse.ArgumentTypeError(
            f"not a duration: {text!r}; give seconds (3600) or with a unit: 90min, 1.5h, 1d")
    return float(m.group(1)) * _DURATION_UNITS[m.group(2) or "s"]


def _cmd_check(args: argparse.Namespace, console: Console) -> int:
    from acd.config.load import load_center
    from acd.config.summary import print_summary

    center = load_center(args.config)
    print_summary(center, console)
    console.print(f"[green]ok[/green]: {args.config}")
    if args.service is not None:
        from acd.service.settings import load_settings

        # Its PBXs are checked against the center it names (every agent reachable).
        settings = load_settings(args.service)
        pbxs = ", ".join(f"{p.name} ({p.site})" for p in settings.pbxs) or "one implicit PBX"
        console.print(f"[green]ok[/green]: {args.service}: {pbxs}")
    return 0


def _cmd_sim_run(args: argparse.Namespace, console: Console) -> int:
    from sim.executor import executor_for
    from sim.kpi import summarise
    from sim.report import Provenance, print_summary, write_csv, write_html, write_json
    from sim.rollup import calendar_rollups
    from sim.run import RunSpec, run_replications, warmup_problem
    from sim.scenario import load_scenario, rona_warning

    overrides = {"days": args.days, "start": args.start, "volume_scale": args.scale}
    scenario = load_scenario(args.scenario, **overrides)  # fail fast on bad input, exit 2
    warmup = args.warmup or 0.0
    why = warmup_problem(warmup, scenario.spec.interval_minutes) if warmup else None
    if why is not None:
        raise UsageError([usage("--warmup", args.warmup, why)])
    if not (args.replay or args.queue_log) and (rona := rona_warning(scenario)) is not None:
        console.print(f"[yellow]warning[/yellow]: {rona}")
    if args.replay:
        from sim.run import arrivals_for, replay_note
        logged = arrivals_for(scenario, args.replay, None)[0]  # read and check
        note = replay_note(logged if isinstance(logged, list) else [])
        if note:
            console.print(f"[yellow]note[/yellow]: {note}")
    options = None
    if args.queue_log:
        options = _queue_log_replay(args, scenario, console)
    elif args.queue_map or args.strict or args.default_language or args.default_country:
        from acd.errors import ConfigError, Problem
        raise ConfigError([Problem("<command line>", "--queue-log", None,
                                   "--queue-map, --strict, --default-language and "
                                   "--default-country need --queue-log FILE")])
    # KPIs are counted as calls end: no call log in memory; rows go to --calls-csv if asked.
    spec = RunSpec(str(args.scenario), {k: v for k, v in overrides.items() if v is not None},
                   args.replay, args.queue_log, options, warmup_s=warmup, keep_calls=False,
                   calls_csv=args.calls_csv)
    s = scenario.spec
    what = f"replay of {args.replay or args.queue_log}" if args.replay or args.queue_log \
        else f"{s.days:g} day(s) from {s.start}"
    replay = bool(args.replay or args.queue_log)
    if replay and args.start:
        what += f", from {args.start.isoformat()}"
    if replay and args.days:
        what += f", its first {args.days:g} day(s)"
    if replay and args.scale:
        what += f", volume x{args.scale:g}"
    if warmup:
        what += f", after a {warmup:g} s warm-up left out"
    console.print(f"[bold]{s.name}[/bold]: {what}, {args.replications} replication(s), "
                  f"seed {args.seed}")
    # On a terminal a live bar; in cron or CI logs a plain line every 10% (or minute), and
    # runs of more than a day say which simulated day each replication has reached.
    with replication_progress(console, "simulating", args.replications, args.quiet,
                              s.days) as on_progress:
        executor = executor_for(args.dask, args.jobs)
        try:
            results = run_replications(spec, args.replications, args.seed, args.jobs,
                                       on_progress, executor)
        finally:
            executor.close()
    config = scenario.center.config
    summary = summarise(results, answer_rate_target=config.center.answer_rate_target,
                        min_offered=config.center.verdict_min_offered,
                        timezone=next(iter(config.sites.values())).timezone)
    # The weekly and daily roll-ups, once for the terminal, summary.json, the CSVs and the report.
    periods = calendar_rollups(summary, results)
    print_summary(summary, console, results=results, periods=periods)
    out, run_id = _run_dir(args, s.name)
    provenance = Provenance(
        run_id, _shown_path(args.scenario), s.name, what,
        {k.replace("volume_scale", "scale"): str(v) for k, v in overrides.items()
         if v is not None}, args.seed, args.replications, _version(), native.build(),
        datetime.now(UTC).isoformat(timespec="seconds"))
    write_json(out / "summary.json", summary, provenance, results, periods)
    write_csv(out, summary, provenance, results, periods)
    from sim.staff import gap_plot  # required vs scheduled: only for forecast traffic
    write_html(out / "report.html", results, summary, provenance,
               [] if args.replay or args.queue_log else [p for p in [gap_plot(scenario)] if p],
               periods)
    if scenario.spec.outages:
        from sim.outage import outage_rows, print_outages, write_outages

        rows = outage_rows(scenario, results)
        print_outages(rows, console)
        write_outages(out / "outages.csv", rows)
    if args.out is None:
        _point_latest(out)
    walls = [r.wall_s for r in results]
    console.print(f"results in {out}/ (summary.json, CSV tables, report.html); "
                  f"{sum(r.calls_simulated for r in results):,} calls simulated, "
                  f"{max(walls):.1f} s per replication at most ({native.build()} router)")
    if args.check and not summary.meets_target:
        return EXIT_TARGET_MISSED
    return 0


def _run_dir(args: argparse.Namespace, name: str) -> tuple[Path, str]:
    """Where this run writes, and its id: ``--out`` as given, else a new directory under
    ``out/sim`` named by the UTC time, the scenario file and the seed (never an old one)."""
    now = datetime.now(UTC)
    run_id = f"{now:%Y%m%dT%H%M%SZ}-{Path(args.scenario).stem}-seed{args.seed}"
    if args.out is not None:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        return out, run_id
    base = Path(DEFAULT_SIM_OUT)
    base.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        candidate = run_id if n == 1 else f"{run_id}-{n}"
        try:
            (base / candidate).mkdir()
        except FileExistsError:
            continue
        return base / candidate, candidate
    raise FileExistsError(f"{base}: 999 runs named {run_id} already")


def _shown_path(path: str) -> str:
    """A path as the report shows it: relative to the working directory when inside it."""
    full = Path(path).resolve()
    return str(full.relative_to(Path.cwd())) if full.is_relative_to(Path.cwd()) else str(full)


def _point_latest(run: Path) -> None:
    """Make ``out/sim/latest`` point at this run (a relative symlink, swapped atomically)."""
    link = run.parent / "latest"
    tmp = run.parent / f".latest-{run.name}"
    try:
        tmp.symlink_to(run.name, target_is_directory=True)
        os.replace(tmp, link)
    except OSError:  # no symlinks here (some Windows setups): say it in a file instead
        tmp.unlink(missing_ok=True)
        (run.parent / "LATEST").write_text(run.name + "\n", encoding="utf-8")


def _earlier_run(option: str, out: str | None, force: bool) -> list[Problem]:
    """An explicit ``--out`` that holds another run's results is refused unless ``--force``."""
    if out is None or force:
        return []
    held = [name for name in SIM_OUTPUTS if (Path(out) / name).is_file()]
    if not held:
        return []
    return [Problem(COMMAND_LINE, option, out,
                    f"holds an earlier run's results ({', '.join(held)}); give a new "
                    f"directory, leave --out out for a fresh run directory under "
                    f"{DEFAULT_SIM_OUT}/, or add --force to replace them")]


def _check_sim_run(args: argparse.Namespace) -> list[Problem]:
    """Every bad value and path of ``acd sim run``, found before the scenario is loaded."""
    problems = [*input_file("scenario", args.scenario),
                *scenario_overrides(args.days, args.scale),
                *int_range("--replications", args.replications, 1, MAX_REPLICATIONS),
                *int_range("--seed", args.seed, 0),
                *int_range("--jobs", args.jobs, 1, MAX_JOBS),
                *output_dir("--out", args.out or DEFAULT_SIM_OUT,
                            SIM_OUTPUTS if args.out else ()),
                *_earlier_run("--out", args.out, args.force)]
    for option, path in (("--replay", args.replay), ("--queue-log", args.queue_log)):
        if path is not None:
            problems += input_file(option, path)
            if args.warmup:
                problems.append(Problem(COMMAND_LINE, "--warmup", args.warmup,
                                        f"a replay starts where its log starts; {option} "
                                        "cannot warm up"))
    if args.queue_log is not None and args.start is not None:
        problems.append(Problem(COMMAND_LINE, "--start", args.start.isoformat(),
                                "a queue_log replay starts at its first line (with the staffing "
                                "it records); cut its end with --days"))
    if args.calls_csv is not None:
        problems += output_file("--calls-csv", args.calls_csv)
    return problems




def _queue_log_replay(args: argparse.Namespace, scenario: Scenario, console: Console
                      ) -> QueueLogOptions:
    """Check a queue_log replay before running: bad lines exit 2, --strict refuses strangers."""
    from acd.errors import ConfigError
    from sim.qlreplay import QueueLogOptions, describe, load_plan, parse_queue_map

    queues, languages = parse_queue_map(args.queue_map)
    options = QueueLogOptions(queues, languages, args.default_language, args.default_country,
                              args.pause_default)
    plan = load_plan(args.queue_log, scenario.center.config, scenario.center.agents, options)
    for line in describe(plan):
        console.print(line, markup=False)
    if args.strict and plan.unmatched:
        raise ConfigError(plan.strict_problems())
    return options


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = _Parser(prog="acd", description=__doc__, epilog=EXIT_CODES,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    # Subparsers are _Parser too (argparse makes them of the parent's class).
    sub: argparse._SubParsersAction[argparse.ArgumentParser] = \
        parser.add_subparsers(dest="command", required=True)  # type: ignore[assignment]
    p = sub.add_parser("check", help="validate a center config and print its coverage summary")
    p.add_argument("config", nargs="?", default=str(DEFAULT_CONFIG), help="center YAML")
    p.add_argument("--service", help="service settings YAML to check too (its PBXs, trunks)")
    p.set_defaults(func=_cmd_check, validate=lambda a: input_file("config", a.config)
                   + (input_file("--service", a.service) if a.service is not None else []))

    sim = sub.add_parser("sim", help="simulate the center through the real router")
    sim_sub = sim.add_subparsers(dest="sim_command", required=True)
    p = sim_sub.add_parser("run", help="replicate a scenario and report the service level",
                           epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenario", nargs="?", default=str(DEFAULT_SCENARIO),
                   help="scenario YAML (default: the reference center's)")
    p.add_argument("--days", type=float, help="simulated days, > 0 and <= 400 (overrides)")
    p.add_argument("--start", type=iso_time,
                   help="start, ISO 8601 with UTC offset, e.g. 2026-03-02T00:00+03:00 (a bare "
                        "date is refused: say which zone's midnight) (overrides)")
    p.add_argument("--scale", type=float, help="volume multiplier, > 0 and <= 100 (overrides); "
                   "a replay is thinned below 1 and resampled with jittered copies above")
    p.add_argument("--warmup", type=parse_duration, metavar="DURATION",
                   help="simulate this long before the start (3600, 90min, 1h; whole "
                        "intervals) with the same traffic and leave it out of the results")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--replay", help="replay a call-log CSV instead of forecast traffic")
    source.add_argument("--queue-log", metavar="FILE",
                        help="replay an Asterisk queue_log: its calls and its own staffing")
    p.add_argument("--queue-map", metavar="AQ=QUEUE[:LANG],...",
                   help="Asterisk queue -> configured queue (and language); default: same names")
    p.add_argument("--default-language", help="queue_log callers' language when nothing says")
    p.add_argument("--default-country", help="queue_log callers' country without E.164 caller id")
    p.add_argument("--pause-default", default="break",
                   help="configured pause reason for queue_log reasons not in the config (break)")
    p.add_argument("--strict", action="store_true",
                   help="exit 2 when a queue_log member matches no roster agent")
    p.add_argument("-r", "--replications", type=int, default=5,
                   help=f"independent runs, 1 to {MAX_REPLICATIONS} (5)")
    p.add_argument("--seed", type=int, default=1,
                   help="base seed, >= 0 (same seed = same callers)")
    p.add_argument("-j", "--jobs", type=int,
                   help=f"processes, 1 to {MAX_JOBS} (default: one per core)")
    add_dask_option(p)
    p.add_argument("--out", help=f"directory for JSON, CSV and HTML results (default: a new "
                                 f"{DEFAULT_SIM_OUT}/<run id>/, with {DEFAULT_SIM_OUT}/latest "
                                 "pointing at it); one holding an earlier run's results is "
                                 "refused unless --force")
    p.add_argument("--force", action="store_true",
                   help="replace an earlier run's results in --out")
    p.add_argument("--check", action="store_true",
                   help="exit 1 unless the center and every queue, language, country and site "
                        "with enough calls meets its SL and answer-rate targets (MET: the "
                        "whole 95%% CI at or above the target)")
    p.add_argument("--calls-csv", metavar="PATH",
                   help="also write one row per call to PATH (replication n >= 2 to "
                        "PATH-rn beside it); without it no per-call rows are kept")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress (a bar on a terminal, else a line on stderr every 10%% "
                        "and, past one day, per simulated day)")
    p.set_defaults(func=_cmd_sim_run, validate=_check_sim_run)

    from acd.init import register as register_init
    from acd.service.cli import register as register_service
    from acd.service.report import register as register_report
    from ivr.cli import register as register_ivr
    from sim.cli import register as register_erlang
    from sim.cli import register_compare, register_sim, register_sweep, register_traffic

    register_sim(sim_sub)
    register_compare(sim_sub)
    register_sweep(sim_sub)
    register_erlang(sub)
    register_traffic(sub)
    register_ivr(sub)
    register_service(sub)
    register_report(sub)
    register_init(sub)
    return parser


class _Parser(argparse.ArgumentParser):
    """argparse with its usage errors printed like every other problem (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        _print_problems([f"{COMMAND_LINE}: {self.prog}: {message}"])
        raise SystemExit(EXIT_BAD_INPUT)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("acd-engine")
    except PackageNotFoundError:
        return "unknown (not installed)"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse and check a command line without running it.

    Bad syntax exits 2 (``SystemExit``); bad values or paths raise :class:`UsageError`, with
    every problem found.
    """
    args = build_parser().parse_args(argv)
    # Each subcommand names its checks with set_defaults(validate=...).
    validate: Callable[[argparse.Namespace], list[Problem]] | None = \
        getattr(args, "validate", None) or _CHECKS.get(args.command)
    problems = validate(args) if validate is not None else []
    if problems:
        raise UsageError(problems)
    return args


def _check_ivr(args: argparse.Namespace) -> list[Problem]:
    """``acd ivr check|trace``: a readable center file and a call time within the calendar."""
    problems = input_file("--config", args.config)
    at = getattr(args, "at", None)
    if at is not None and not 1900 <= at.year <= 2200:
        problems.append(Problem(COMMAND_LINE, "--at", at.isoformat(),
                                "must be within the years 1900 to 2200"))
    return problems


#: Checks of subcommands registered without their own ``validate``.
_CHECKS: dict[str, Callable[[argparse.Namespace], list[Problem]]] = {"ivr": _check_ivr}


def _print_problems(lines: Sequence[str]) -> None:
    # Plain lines, one problem each, never wrapped: they are meant for grep and editors.
    print(f"error: {len(lines)} problem(s):", file=sys.stderr)
    for line in lines:
        print(line, file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI: 0 ok, 1 target missed, 2 bad input (one line per problem), 70 a bug."""
    try:
        args = parse_args(argv)
        # Tables stay readable when the output is piped (rich assumes 80 columns then).
        console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)
        code: int = args.func(args, console)
    except InputError as exc:
        _print_problems([str(problem) for problem in exc.problems])
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last resort: a bug, reported as one
        from sim.executor import TaskFailed

        # Bad input found where a replication ran: on a Dask worker that reads other files
        # than this machine (the scenario checked here is missing or different there).
        if isinstance(exc, TaskFailed) and isinstance(exc.__cause__, InputError):
            _print_problems([f"{exc.what} failed: {problem}"
                             for problem in exc.__cause__.problems])
            return EXIT_BAD_INPUT
        return report_bug(exc)
    return code


def report_bug(exc: BaseException) -> int:
    """Print the traceback of an unexpected exception and a line asking for a report; 70."""
    traceback.print_exception(exc, file=sys.stderr)
    print(f"acd: this is a bug, please report it with the command line and the traceback "
          f"above (exit status {EXIT_BUG})", file=sys.stderr)
    return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
