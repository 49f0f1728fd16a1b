"""The ``acd serve`` and ``acd records export`` subcommands (wired in by :mod:`acd.cli`).

This module never imports :mod:`acd.cli`: the top-level command line stands above the service
and hands down what both share (the ISO 8601 time argument type).
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from acd.errors import ConfigError, Problem


def _cmd_serve(args: argparse.Namespace, console: Any) -> int:
    from acd.service.app import serve
    from acd.service.settings import load_settings

    settings = load_settings(args.config)
    asyncio.run(serve(settings))
    return 0


def _cmd_records_export(args: argparse.Namespace, console: Any) -> int:
    from acd.runtime.records import export_call_log
    from acd.service.settings import load_settings

    db_path = Path(args.db) if args.db else load_settings(args.config).database
    if not db_path.is_file():
        raise ConfigError([Problem(str(db_path), "<root>", None,
                                   "no call records database here (give --db or --config)")])
    db = sqlite3.connect(db_path.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        written, skipped = export_call_log(db, args.out, _stamp(args.since), _stamp(args.until))
    except sqlite3.Error as exc:
        raise ConfigError([Problem(str(db_path), "calls", None,
                                   f"cannot read call records: {exc}")]) from None
    finally:
        db.close()
    note = f", {skipped} skipped (unknown country)" if skipped else ""
    console.print(f"{written} call(s) written to {args.out}{note}")
    return 0


def _stamp(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def register(sub: Any, iso_time: Callable[[str], datetime]) -> None:
    """Add ``serve`` and ``records export`` to the ``acd`` subparsers.

    ``iso_time`` is the argparse type for times, the one every ``acd`` command uses.
    """
    p = sub.add_parser("serve", help="run the live service: FastAGI, ARI, HTTP API, /metrics")
    p.add_argument("--config", help="service settings YAML (default: embedded defaults)")
    p.set_defaults(func=_cmd_serve)

    records = sub.add_parser("records", help="call records kept by the service")
    records_sub = records.add_subparsers(dest="records_command", required=True)
    p = records_sub.add_parser("export", help="write calls as the simulator's call-log CSV")
    p.add_argument("--db", help="records database (default: the one in the settings)")
    p.add_argument("--config", help="service settings YAML, to find the database")
    p.add_argument("--out", required=True, help="CSV file to write")
    p.add_argument("--since", type=iso_time, help="first arrival, ISO 8601 with offset")
    p.add_argument("--until", type=iso_time, help="arrivals before this time, ISO 8601 with offset")
    p.set_defaults(func=_cmd_records_export)
