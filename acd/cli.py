"""The `acd` command line: check the config, simulate, size staffing, run the service."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from acd.errors import EXIT_BAD_INPUT, InputError

#: The reference center shipped with the project; every command works on it out of the box.
DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "center.yaml"


def _cmd_check(args: argparse.Namespace, console: Console) -> int:
    from acd.config.load import load_center
    from acd.config.summary import print_summary

    center = load_center(args.config)
    print_summary(center, console)
    console.print(f"[green]ok[/green]: {args.config}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(prog="acd", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("check", help="validate a center config and print its coverage summary")
    p.add_argument("config", nargs="?", default=str(DEFAULT_CONFIG), help="center YAML")
    p.set_defaults(func=_cmd_check)
    return parser


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
