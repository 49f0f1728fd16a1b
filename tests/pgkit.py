"""PostgreSQL for tests: one server per test session, one fresh database per test.

The server is the one ``ACD_TEST_POSTGRES_DSN`` names (a libpq URL of a role that may
``CREATE DATABASE``), else a throwaway one started from Debian's binaries
(``/usr/lib/postgresql/*/bin`` or ``initdb`` on PATH): initdb into a temporary directory,
listening on 127.0.0.1 only, on a free port, its unix socket in that directory. As root it
runs as the ``postgres`` user (``runuser``), which owns the directory. Without either, tests
that need PostgreSQL skip, unless ``ACD_REQUIRE_POSTGRES=1`` (CI), which makes them fail.

The fixtures are loaded for every test module (``tests/conftest.py``): take ``pg_url`` (the
URL of a database created for the test and dropped after it) or ``pg_server``
(:class:`PgServer`: ``url(name)``, ``create_database()``, ``drop_database(name)``). Tests
that must pass on both record stores take ``records_where`` (an SQLite path or a PostgreSQL
URL, parametrized) or ``record_store`` (that store, open).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from itertools import count
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from acd.runtime.records import open_store
from acd.runtime.store import RecordStore

DSN_ENV = "ACD_TEST_POSTGRES_DSN"
REQUIRE_ENV = "ACD_REQUIRE_POSTGRES"


def bindir() -> Path | None:
    """Where PostgreSQL's server programs are (the newest Debian version first)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name)
                   if Path(p).parent.parent.name.isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def unavailable(why: str) -> None:
    """Skip the test, or fail it when PostgreSQL is required."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but {why}", pytrace=False)
    pytest.skip(why)


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """A PostgreSQL server the tests may create databases on."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self._names = count(1)

    def url(self, database: str) -> str:
        """The admin URL pointed at ``database``."""
        return urlunsplit(urlsplit(self.admin_url)._replace(path="/" + database))

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def create_database(self) -> str:
        """Create an empty database; its name."""
        name = f"acd_test_{os.getpid()}_{next(self._names)}"
        self._admin(f"CREATE DATABASE {name}")
        return name

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting whoever is still on it."""
        self._admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        """Nothing to stop for a server the tests did not start."""


class LocalPgServer(PgServer):
    """A throwaway server in a temporary directory (see the module docstring)."""

    def __init__(self, bin_dir: Path, durable: bool = False) -> None:
        self.bin = bin_dir
        #: False (tests): no fsync, as nothing outlives the session; True (benchmarks): fsync.
        self.durable = durable
        self.root = Path(tempfile.mkdtemp(prefix="acd-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        super().__init__(f"postgresql://postgres@127.0.0.1:{self.port}/postgres")

    def _run(self, *args: str, timeout: float = 120) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self.as_postgres else []
        done = subprocess.run([*prefix, *args], capture_output=True, text=True,
                              timeout=timeout, check=False)
        if done.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}):\n"
                               f"{done.stdout}{done.stderr}{tail}")

    def start(self) -> None:
        """initdb, then start on 127.0.0.1 only and wait until it accepts connections."""
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root}"
                   " -c max_connections=100")
        if not self.durable:
            options += " -c fsync=off -c full_page_writes=off"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l",
                  str(self.root / "server.log"), "-o", options, "-w", "-t", "60", "start")

    def stop(self) -> None:
        """Stop the server at once and remove its directory."""
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                      "-w", "stop", timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)


def _wait_ready(server: PgServer, deadline_s: float = 30.0) -> None:
    import psycopg

    end = time.monotonic() + deadline_s
    while True:
        try:
            with psycopg.connect(server.admin_url, connect_timeout=5):
                return
        except psycopg.OperationalError:
            if time.monotonic() > end:
                raise
            time.sleep(0.2)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """The session's PostgreSQL server (skips, or fails under ACD_REQUIRE_POSTGRES=1)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("psycopg is not installed (pip install -e '.[postgres]')")
    dsn = os.environ.get(DSN_ENV)
    server: PgServer
    if dsn:
        server = PgServer(dsn)
    else:
        found = bindir()
        if found is None:
            unavailable(f"no PostgreSQL server binaries (initdb) and {DSN_ENV} is not set")
            raise AssertionError("unreachable")
        server = LocalPgServer(found)
        try:
            server.start()
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            server.stop()
            unavailable(f"could not start a PostgreSQL server: {exc}")
    try:
        _wait_ready(server)
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """The URL of a database created for this test (dropped after it)."""
    name = pg_server.create_database()
    try:
        yield pg_server.url(name)
    finally:
        pg_server.drop_database(name)


#: The record stores every record-store test runs on.
BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(params=BACKENDS)
def records_where(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a test's records go: an SQLite file's path, or a fresh PostgreSQL database's URL
    (``open_store`` takes either)."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    return str(tmp_path / "acd.sqlite3")


@pytest.fixture
def record_store(records_where: str) -> Iterator[RecordStore]:
    """An open record store on each backend (closed after the test)."""
    store = open_store(records_where)
    try:
        yield store
    finally:
        store.close()
