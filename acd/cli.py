"""The `acd` command line: check the config, simulate, size staffing, run the service."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from acd import native, shipped
from acd.errors import EXIT_BAD_INPUT, InputError

if TYPE_CHECKING:
    from sim.qlreplay import QueueLogOptions
    from sim.scenario import Scenario

#: The reference center shipped with the project; every command works on it out of the box.
DEFAULT_CONFIG = shipped.center_file()
DEFAULT_SCENARIO = shipped.reference_scenario()


def _cmd_check(args: argparse.Namespace, console: Console) -> int:
    from acd.config.load import load_center
    from acd.config.summary import print_summary

    center = load_center(args.config)
    print_summary(center, console)
    console.print(f"[green]ok[/green]: {args.config}")
    return 0


def _cmd_sim_run(args: argparse.Namespace, console: Console) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from sim.kpi import summarise
    from sim.report import print_summary, write_csv, write_html, write_json
    from sim.run import RunSpec, run_replications
    from sim.scenario import load_scenario

    overrides = {"days": args.days, "start": args.start, "volume_scale": args.scale}
    scenario = load_scenario(args.scenario, **overrides)  # fail fast on bad input, exit 2
    if args.replay:
        from sim.run import arrivals_for
        arrivals_for(scenario, args.replay, None)  # type: ignore[arg-type]
    options = None
    if args.queue_log:
        options = _queue_log_replay(args, scenario, console)
    elif args.queue_map or args.strict or args.default_language or args.default_country:
        from acd.errors import ConfigError, Problem
        raise ConfigError([Problem("<command line>", "--queue-log", None,
                                   "--queue-map, --strict, --default-language and "
                                   "--default-country need --queue-log FILE")])
    spec = RunSpec(str(args.scenario), {k: v for k, v in overrides.items() if v is not None},
                   args.replay, args.queue_log, options)
    s = scenario.spec
    what = f"replay of {args.replay or args.queue_log}" if args.replay or args.queue_log \
        else f"{s.days:g} day(s) from {s.start}"
    console.print(f"[bold]{s.name}[/bold]: {what}, {args.replications} replication(s), "
                  f"seed {args.seed}")
    with Progress(TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(), console=console,
                  transient=True, disable=args.quiet) as progress:
        task = progress.add_task("simulating", total=args.replications)
        done: dict[int, float] = {}

        def on_progress(i: int, fraction: float) -> None:
            done[i] = fraction
            progress.update(task, completed=sum(done.values()))

        results = run_replications(spec, args.replications, args.seed, args.jobs, on_progress)
    summary = summarise(results,
                        answer_rate_target=scenario.center.config.center.answer_rate_target)
    print_summary(summary, console)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "summary.json", summary)
    write_csv(out, summary)
    write_html(out / "report.html", results, summary)
    walls = [r.wall_s for r in results]
    console.print(f"results in {out}/ (summary.json, CSV tables, report.html); "
                  f"{sum(len(r.calls) for r in results):,} calls simulated, "
                  f"{max(walls):.1f} s per replication at most ({native.build()} router)")
    if args.check and not summary.meets_target:
        return 1
    return 0


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
    parser = argparse.ArgumentParser(prog="acd", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("check", help="validate a center config and print its coverage summary")
    p.add_argument("config", nargs="?", default=str(DEFAULT_CONFIG), help="center YAML")
    p.set_defaults(func=_cmd_check)

    sim = sub.add_parser("sim", help="simulate the center through the real router")
    sim_sub = sim.add_subparsers(dest="sim_command", required=True)
    p = sim_sub.add_parser("run", help="replicate a scenario and report the service level")
    p.add_argument("scenario", nargs="?", default=str(DEFAULT_SCENARIO),
                   help="scenario YAML (default: the reference center's)")
    p.add_argument("--days", type=float, help="simulated days (overrides the scenario)")
    p.add_argument("--start", type=iso_time, help="start, ISO 8601 with offset (overrides)")
    p.add_argument("--scale", type=float, help="volume multiplier (overrides volume_scale)")
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
    p.add_argument("-r", "--replications", type=int, default=5)
    p.add_argument("--seed", type=int, default=1, help="base seed (same seed = same callers)")
    p.add_argument("-j", "--jobs", type=int, help="processes (default: one per core)")
    p.add_argument("--out", default="out/sim", help="directory for JSON, CSV and HTML results")
    p.add_argument("--check", action="store_true",
                   help="exit 1 when the SL or answer-rate target is missed")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_sim_run)

    from acd.init import register as register_init
    from acd.service.cli import register as register_service
    from ivr.cli import register as register_ivr
    from sim.cli import register as register_erlang
    from sim.cli import register_sim

    register_sim(sim_sub)
    register_erlang(sub)
    register_ivr(sub)
    register_service(sub, iso_time)
    register_init(sub)
    return parser


def iso_time(text: str) -> datetime:
    """An ISO 8601 time with a UTC offset, for argparse ``type=``."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a UTC offset, e.g. {text}+03:00")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; bad input exits 2 with every problem printed, one per line."""
    args = build_parser().parse_args(argv)
    # Tables stay readable when the output is piped (rich assumes 80 columns then).
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)
    try:
        code: int = args.func(args, console)
    except InputError as exc:
        # Plain lines, one problem each, never wrapped: they are meant for grep and editors.
        print(f"error: {len(exc.problems)} problem(s):", file=sys.stderr)
        for problem in exc.problems:
            print(str(problem), file=sys.stderr)
        return EXIT_BAD_INPUT
    return code


if __name__ == "__main__":
    sys.exit(main())
