"""The ``acd serve`` and ``acd records export`` subcommands (wired in by :mod:`acd.cli`).

This module never imports :mod:`acd.cli`: the top-level command line stands above the service
and hands down what both share (the ISO 8601 time argument type).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from acd.cliargs import input_file, iso_time, output_file
from acd.errors import ConfigError, Problem, usage
from acd.service.database import add_records_options
from acd.service.database import database_problems as _database_problems

if TYPE_CHECKING:
    from acd.runtime.store import RecordStore
    from acd.service.settings import Settings

#: Where settings come from when ``--config`` is not given.
_DEFAULTS = "<embedded settings>"


def _cmd_serve(args: argparse.Namespace, console: Any) -> int:
    from acd.service.app import serve
    from acd.service.settings import load_settings

    settings = load_settings(args.config)
    source = settings.file or _DEFAULTS
    sqlite = settings.records.url is None  # else PostgreSQL, checked when it is opened
    problems = _database_problems(settings.database, source, "records.database",
                                  must_exist=False) if sqlite else []
    problems += _listen_problems(settings, source)
    if problems:
        raise ConfigError(problems)
    if sqlite and not settings.database.exists():
        # Said out loud: a mistyped path would otherwise start an empty history unnoticed.
        print(f"acd serve: no records database at {settings.database} ({source}: "
              "records.database); creating a new one", file=sys.stderr, flush=True)
    asyncio.run(serve(settings))
    return 0


def _listen_problems(settings: Settings, source: str) -> list[Problem]:
    """Each listener's address must be one this machine can listen on, and free."""
    problems: list[Problem] = []
    seen: dict[tuple[str, int], str] = {}
    for name, host, port in (("agi", settings.agi.host, settings.agi.port),
                             ("http", settings.http.host, settings.http.port)):
        where = f"{host}:{port}"
        if port and (host, port) in seen:
            problems.append(Problem(source, f"{name}.port", where,
                                    f"the same address as {seen[host, port]}.port"))
            continue
        seen[host, port] = name
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
            for family, kind, proto, _, address in infos:
                with socket.socket(family, kind, proto) as probe:
                    # As asyncio's servers do, so a port in TIME_WAIT is not called busy.
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    probe.bind(address)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            problems.append(Problem(source, f"{name}.host/{name}.port", where,
                                    f"cannot listen on {where}: {reason.lower()}"))
    return problems


def _cmd_records_export(args: argparse.Namespace, console: Any) -> int:
    from acd.runtime.records import export_call_log
    from acd.service.database import open_records_read_only, read_problem, records_source
    from acd.service.settings import load_settings

    settings = load_settings(args.config) if args.db is None else None
    src = records_source(args.db, args.password_env, settings)
    store = open_records_read_only(src)
    try:
        if args.format == "records":
            return _export_records(store, args, console)
        written, skipped = export_call_log(store, args.out, _stamp(args.since),
                                           _stamp(args.until))
    except store.errors as exc:
        raise read_problem(src, exc) from None
    finally:
        store.close()
    note = f", {skipped} skipped (unknown country)" if skipped else ""
    console.print(f"{written} call(s) written to {args.out}{note}")
    return 0


def _export_records(store: RecordStore, args: argparse.Namespace, console: Any) -> int:
    """Every column of each call with its first-call-resolution flags (``--format records``)."""
    from acd.runtime.records import read_calls
    from acd.service.repeats import FCR_WINDOWS_S, export_records

    since = _stamp(args.since)
    look_back = None if since is None else since - max(FCR_WINDOWS_S)
    written = export_records(read_calls(store, look_back, _stamp(args.until)), Path(args.out),
                             since)
    console.print(f"{written} call record(s) written to {args.out}")
    return 0


def _check_export(args: argparse.Namespace) -> list[Problem]:
    """The paths and times of ``acd records export``, checked before anything is read."""
    problems = output_file("--out", args.out)
    if args.config is not None:
        problems += input_file("--config", args.config)
    if args.since is not None and args.until is not None and args.until <= args.since:
        problems.append(usage("--until", args.until.isoformat(),
                              f"must be after --since {args.since.isoformat()}"))
    return problems


def _stamp(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def register(sub: Any) -> None:
    """Add ``serve`` and ``records export`` to the ``acd`` subparsers."""
    p = sub.add_parser("serve", help="run the live service: FastAGI, ARI, HTTP API, /metrics")
    p.add_argument("--config", help="service settings YAML (default: embedded defaults)")
    p.set_defaults(func=_cmd_serve, validate=lambda a: input_file("--config", a.config)
                   if a.config is not None else [])

    records = sub.add_parser("records", help="call records kept by the service")
    records_sub = records.add_subparsers(dest="records_command", required=True)
    p = records_sub.add_parser("export", help="write calls as the simulator's call-log CSV")
    add_records_options(p)
    p.add_argument("--out", required=True, help="CSV file to write")
    p.add_argument("--since", type=iso_time,
                   help="first arrival, ISO 8601 with UTC offset, e.g. 2026-03-02T00:00+03:00")
    p.add_argument("--until", type=iso_time, help="arrivals before this time, ISO 8601 with offset")
    p.add_argument("--format", choices=("call-log", "records"), default="call-log",
                   help="call-log: the simulator's replay CSV; records: every stored column "
                   "(caller, customer id, survey score) and repeat flags (24 h, 7 days)")
    p.set_defaults(func=_cmd_records_export, validate=_check_export)

