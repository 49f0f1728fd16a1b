"""``acd ivr check`` (validate call flows) and ``acd ivr trace`` (the path one call would take).

Flows are checked against the names of the center config (queues, languages, countries,
sites); a bad flow raises ConfigError, which ``acd`` turns into exit status 2 with the file,
YAML path and value of every problem.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from acd import shipped
from acd.config.messages import closest
from acd.errors import COMMAND_LINE, ConfigError, Problem
from ivr.known import KnownNames, known_from_center

DEFAULT_CONFIG = shipped.center_file()
DEFAULT_FLOWS = shipped.flow_dir()


def flow_files(flow_dir: Path) -> list[Path]:
    """The call flows in a directory: every ``*.yaml`` except the shared prompt sets."""
    return [p for p in sorted(flow_dir.glob("*.yaml")) if not p.stem.startswith("prompts")]


def dir_flows(flow_dir: Path, source: str, path: str) -> list[Path]:
    """The flows in ``flow_dir``; a missing or flowless directory is a problem of ``source``."""
    if not flow_dir.is_dir():
        what = "is not a directory" if flow_dir.exists() else "no such directory"
        raise ConfigError([Problem(source, path, str(flow_dir), what)])
    found = flow_files(flow_dir)
    if not found:
        raise ConfigError([Problem(source, path, str(flow_dir),
                                   "no call flows (*.yaml other than prompts*.yaml) in this "
                                   "directory")])
    return found


def resolve_flow(name: str, flow_dir: Path) -> Path:
    """A flow given as a path, or by name (``main``) in ``flow_dir``."""
    path = Path(name)
    if path.is_file():
        return path
    if path.is_dir():
        raise ConfigError([Problem(name, "<root>", None, "is a directory; give one flow file or "
                                   "name, or the directory with --flow-dir")])
    named = flow_dir / f"{name}.yaml"
    if named.is_file():
        return named
    if not flow_dir.is_dir():
        raise ConfigError([Problem(name, "<root>", name, "no such flow file, and the flow "
                                   f"directory {flow_dir} (--flow-dir) does not exist")])
    names = [p.stem for p in flow_files(flow_dir)]
    guess = closest(path.stem, names)
    hint = f"did you mean {guess!r}? " if guess is not None else ""
    raise ConfigError([Problem(name, "<root>", name,
                               f"no such flow file or flow name; {hint}flows in {flow_dir}: "
                               f"{', '.join(names) or 'none'}")])


def check_paths(flows: list[str], flow_dir: Path) -> list[Path]:
    """The flow files ``acd ivr check`` checks: each file or name, every flow of a directory.

    With no flows given, every flow in ``flow_dir``; a directory given checks the flows in it.
    """
    if not flows:
        return dir_flows(flow_dir, COMMAND_LINE, "--flow-dir")
    paths: list[Path] = []
    for name in flows:
        if Path(name).is_dir():
            paths += dir_flows(Path(name), COMMAND_LINE, name)
        else:
            paths.append(resolve_flow(name, flow_dir))
    return paths


def _known(config: str) -> KnownNames:
    from acd.config.load import load_center

    return known_from_center(load_center(config).config)


def _cmd_check(args: argparse.Namespace, console: Console) -> int:
    from ivr.loader import load_flow

    known = _known(args.config)
    paths = check_paths(args.flows, Path(args.flow_dir))
    problems: list[Problem] = []
    for path in paths:
        try:
            flow = load_flow(path, known)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        console.print(f"[green]ok[/green]: {escape(str(path))} (flow {escape(flow.name)}, "
                      f"{len(flow.nodes)} nodes, {len(flow.prompts.prompts)} prompts)")
    if problems:
        raise ConfigError(problems)
    return 0


def _cmd_trace(args: argparse.Namespace, console: Console) -> int:
    from ivr.channel import digits_script
    from ivr.trace import trace

    known = _known(args.config)
    path = resolve_flow(args.flow, Path(args.flow_dir))
    at = args.at or datetime.now(UTC)
    lines = trace(path, args.caller, digits_script(args.digits), at, known,
                  orders=dict(args.order or []), wait_s=dict(args.wait or []))
    for line in lines:
        console.print(escape(line), soft_wrap=True)
    return 0


def _at(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 time: {text!r} (e.g. 2026-01-07T03:00 or "
            "2026-01-07T03:00+03:00)") from None


def _wait(text: str) -> tuple[str, float]:
    queue, _, secs = text.partition("=")
    try:
        value = float(secs)
    except ValueError:
        raise argparse.ArgumentTypeError(f"give QUEUE=SECONDS, e.g. tech=300; got {text!r}") \
            from None
    if not queue or not value >= 0:
        raise argparse.ArgumentTypeError(f"give QUEUE=SECONDS, e.g. tech=300; got {text!r}")
    return queue, value


def _order(text: str) -> tuple[str, str]:
    order, _, status = text.partition("=")
    if not order or not status:
        raise argparse.ArgumentTypeError(f"give ORDER=STATUS, e.g. 4815162342=ready; "
                                         f"got {text!r}")
    return order, status


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``acd ivr check`` and ``acd ivr trace`` to the ``acd`` subcommands."""
    ivr = sub.add_parser("ivr", help="check call flows, trace the path of one call")
    ivr_sub = ivr.add_subparsers(dest="ivr_command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=str(DEFAULT_CONFIG),
                        help="center YAML whose queues, languages and sites flows may use")
    common.add_argument("--flow-dir", default=str(DEFAULT_FLOWS),
                        help="where flows named without a path are found; `check` with no "
                             "flow checks every flow in it")
    p = ivr_sub.add_parser("check", parents=[common],
                           help="validate call flows; exit 2 listing every problem")
    p.add_argument("flows", nargs="*",
                   help="flow files, flow names (found in --flow-dir) or directories (every "
                        "*.yaml in them except prompts*.yaml); default: every flow in --flow-dir")
    p.set_defaults(func=_cmd_check)
    p = ivr_sub.add_parser("trace", parents=[common], help="print the path a call would take")
    p.add_argument("flow", help="flow file or name (main, callback)")
    p.add_argument("--caller", required=True, help="caller number, e.g. +79161234567")
    p.add_argument("--digits", default="",
                   help="the caller's key presses in order, comma-separated; - = no input "
                        "(write --digits=-,1 when the first is -)")
    p.add_argument("--at", type=_at, default=None,
                   help="call time, ISO 8601 (no offset: the first site's local time; "
                        "default: now)")
    p.add_argument("--wait", type=_wait, action="append",
                   help="estimated wait QUEUE=SECONDS (repeatable; default 0)")
    p.add_argument("--order", type=_order, action="append",
                   help="repair order status ORDER=STATUS (repeatable; default unknown)")
    p.set_defaults(func=_cmd_trace)
