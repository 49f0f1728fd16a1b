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
from acd.errors import ConfigError, Problem
from ivr.known import KnownNames, known_from_center

DEFAULT_CONFIG = shipped.center_file()
DEFAULT_FLOWS = shipped.flow_dir()


def flow_files(flow_dir: Path) -> list[Path]:
    """The call flows in a directory: every ``*.yaml`` except the shared prompt sets."""
    return [p for p in sorted(flow_dir.glob("*.yaml")) if not p.stem.startswith("prompts")]


def resolve_flow(name: str, flow_dir: Path) -> Path:
    """A flow given as a path, or by name (``main``) in ``flow_dir``."""
    path = Path(name)
    if path.is_file():
        return path
    named = flow_dir / f"{name}.yaml"
    if named.is_file():
        return named
    known = ", ".join(p.stem for p in flow_files(flow_dir))
    raise ConfigError([Problem(name, "<root>", name,
                               f"no such flow file or flow name; flows in {flow_dir}: {known}")])


def _known(config: str) -> KnownNames:
    from acd.config.load import load_center

    return known_from_center(load_center(config).config)


def _cmd_check(args: argparse.Namespace, console: Console) -> int:
    from ivr.loader import load_flow

    known = _known(args.config)
    paths = [resolve_flow(f, Path(args.flow_dir)) for f in args.flows] \
        or flow_files(Path(args.flow_dir))
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
                        help="where flows named without a path are found")
    p = ivr_sub.add_parser("check", parents=[common],
                           help="validate call flows; exit 2 listing every problem")
    p.add_argument("flows", nargs="*", help="flow files or names (default: every flow)")
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
