"""``acd init DIR``: copy the shipped configuration into DIR for a user to edit.

DIR gets the same tree the package ships (``center.yaml``, ``ivr/``, ``traffic/``,
``scenarios/``, ``service.yaml``, ``asterisk/``, ``prometheus/``, ``grafana/``), so the references
between its files (a scenario's ``center: ../center.yaml``) point at the copies. An existing
DIR that is not empty is refused (exit 2) unless ``--force``, which overwrites the shipped
files' names and leaves every other file alone.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from rich.console import Console

from acd import shipped
from acd.errors import ConfigError, Problem

#: Where bad command-line values are reported from.
COMMAND_LINE = "<command line>"


def _bad(value: str, message: str) -> ConfigError:
    return ConfigError([Problem(COMMAND_LINE, "DIR", value, message)])


def _cmd_init(args: argparse.Namespace, console: Console) -> int:
    dest = Path(args.dir)
    if dest.exists() and not dest.is_dir():
        raise _bad(args.dir, "exists and is not a directory")
    if dest.is_dir() and any(dest.iterdir()) and not args.force:
        raise _bad(args.dir, "is not empty; choose a new directory, or give --force to "
                             "overwrite the shipped files' names in it")
    try:
        written = shipped.copy_to(dest)
    except OSError as exc:
        raise _bad(args.dir, f"cannot write there: {exc.strerror or exc}") from None
    for path in written:
        console.print(f"wrote {path}", markup=False, soft_wrap=True)
    here = shlex.quote(str(dest))
    console.print(f"{len(written)} files in {dest}; edit them, then run:", markup=False,
                  soft_wrap=True)
    console.print(f"  acd check {here}/center.yaml", markup=False, soft_wrap=True)
    console.print(f"  acd sim run {here}/scenarios/reference.yaml", markup=False,
                  soft_wrap=True)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``acd init`` to the ``acd`` subcommands."""
    p = sub.add_parser("init", help="copy the shipped configuration into a directory to edit")
    p.add_argument("dir", metavar="DIR", help="directory to create (or an empty one)")
    p.add_argument("--force", action="store_true",
                   help="write into a non-empty DIR, overwriting files of the same names")
    p.set_defaults(func=_cmd_init)
