"""Checks of the records database's path, and the read-only opening of the records shared by
the commands that read them (``acd records export``, ``acd report summary``)."""

from __future__ import annotations

import argparse
import os
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from acd.errors import COMMAND_LINE, ConfigError, Problem
from acd.runtime.store import PostgresStore, RecordStore, SqliteStore, is_postgres_url, redact

if TYPE_CHECKING:
    from acd.service.settings import Settings

#: The environment variable ``--password-env`` names by default (as ``records.password_env``).
DEFAULT_PASSWORD_ENV = "ACD_RECORDS_PASSWORD"


def add_records_options(p: argparse.ArgumentParser) -> None:
    """``--db``, ``--password-env`` and ``--config``/``--settings``: where the records are."""
    p.add_argument("--db", help="records database: an SQLite file or a postgresql:// URL "
                   "without its password (default: where the settings keep them)")
    p.add_argument("--password-env", default=DEFAULT_PASSWORD_ENV, metavar="NAME",
                   help="environment variable holding the password of a postgresql:// --db "
                   f"(default {DEFAULT_PASSWORD_ENV})")
    p.add_argument("--config", "--settings", dest="config", metavar="FILE",
                   help="service settings YAML: the records are where it keeps them "
                   "(records.url, else records.database)")


@dataclass(frozen=True)
class RecordsSource:
    """Where the records to read are: an SQLite path or a ``postgresql://`` URL, where that
    was said (a settings file or the command line), under which key, and the password."""

    where: str
    source: str
    key: str
    password: str | None = None
    #: Where the password would come from, for messages (an environment variable's name).
    password_env: str | None = None

    @property
    def shown(self) -> str:
        """``where`` as messages show it (never a password)."""
        return redact(self.where)


def records_source(db: str | None, password_env: str, settings: Settings | None,
                   environ: Mapping[str, str] | None = None) -> RecordsSource:
    """``--db`` (a path, or a URL whose password is in the variable ``password_env``) when
    given, else the ``settings``' ``records.url`` or their SQLite ``records.database``."""
    env = os.environ if environ is None else environ
    if db is not None:
        if is_postgres_url(db):
            return RecordsSource(db, COMMAND_LINE, "--db", env.get(password_env) or None,
                                 password_env)
        return RecordsSource(db, COMMAND_LINE, "--db")
    assert settings is not None, "without --db the records are where the settings say"
    source = settings.file or "<embedded settings>"
    if settings.records.url is not None:
        return RecordsSource(settings.records.url, source, "records.url",
                             settings.records_password, settings.records.password_env)
    return RecordsSource(str(settings.database), source, "records.database")


def open_records_read_only(src: RecordsSource) -> RecordStore:
    """Open the records for reading; bad input (no such file, a URL with a password, psycopg
    missing, a server that does not answer) raises :class:`ConfigError` naming the option or
    setting and the value, with any password redacted."""
    if not is_postgres_url(src.where):
        path = Path(src.where)
        problems = database_problems(path, src.source, src.key, must_exist=True)
        if problems:
            raise ConfigError(problems)
        return SqliteStore(sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True))
    if src.source == COMMAND_LINE and urlsplit(src.where).password is not None:
        raise ConfigError([Problem(src.source, src.key, src.shown,
                                   "must not hold a password (command lines are visible to "
                                   "every user of the machine); set the environment variable "
                                   f"named by --password-env ({src.password_env}) instead")])
    try:
        import psycopg
    except ImportError:
        raise ConfigError([Problem(src.source, src.key, src.shown,
                                   "reading PostgreSQL records needs psycopg 3: "
                                   "pip install 'acd-engine[postgres]'")]) from None
    try:
        store = PostgresStore(src.where, src.password)
    except (psycopg.Error, ValueError) as exc:
        raise ConfigError([Problem(src.source, src.key, src.shown,
                                   "cannot open the records database: "
                                   + _one_line(exc, src.password))]) from None
    try:
        # A report never writes: the server refuses it if a bug ever tried.
        store.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
    except store.errors as exc:
        store.close()
        raise ConfigError([Problem(src.source, src.key, src.shown,
                                   "cannot open the records database: "
                                   + _one_line(exc, src.password))]) from None
    return store


def read_problem(src: RecordsSource, exc: Exception) -> ConfigError:
    """The error for records that opened but could not be read (no ``calls`` table...)."""
    return ConfigError([Problem(src.source, src.key, src.shown,
                                f"cannot read call records: {_one_line(exc, src.password)}")])


def _one_line(exc: BaseException, password: str | None) -> str:
    """A driver's message on one line, without the password should it quote one."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text.replace(password, "***") if password else text

#: The first bytes of every SQLite 3 database file.
_SQLITE_HEADER = b"SQLite format 3\x00"


def database_problems(path: Path, source: str, key: str, must_exist: bool) -> list[Problem]:
    """The records database must be an SQLite file, or (for the service) creatable."""
    shown = str(path)
    if path.is_dir():
        return [Problem(source, key, shown, "is a directory; give the database file's path")]
    if not path.exists():
        if must_exist:
            return [Problem(source, key, shown, "no call records database here (a path "
                                                "that does not exist is never created)")]
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            return [Problem(source, key, shown, f"cannot create the database in {parent}")]
        return []
    if not path.is_file():
        return [Problem(source, key, shown, "not a regular file; give the database file")]
    try:
        with open(path, "rb") as f:
            head = f.read(len(_SQLITE_HEADER))
    except OSError as exc:
        return [Problem(source, key, shown, f"cannot read: {exc.strerror}")]
    if head and head != _SQLITE_HEADER:
        return [Problem(source, key, shown, "not an SQLite database")]
    return []
