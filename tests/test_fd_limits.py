"""The file-descriptor budget: checked at start, and connections over it closed at once."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from acd.testing.fake_agi import environment_block

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def nofile(soft: int, hard: int) -> Callable[[], None]:
    """A ``preexec_fn`` that sets the child's ``nofile`` limit."""

    def set_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return set_limit


def settings(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "service.yaml"
    path.write_text(f"center: {ROOT / 'config' / 'center.yaml'}\n"
                    f"flows: {ROOT / 'config' / 'ivr'}\n"
                    "records: {database: acd.sqlite3}\nshutdown_grace_s: 1\n"
                    "logs: {format: json}\n" + extra)
    return path


def serve(path: Path, limit: Callable[[], None]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "acd", "serve", "--config", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=path.parent, env=ENV, preexec_fn=limit)


def serving_event(proc: subprocess.Popen[str]) -> dict[str, object]:
    """Read log lines until ``acd_serving``; then stop the service cleanly."""
    assert proc.stdout is not None
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else "no output"
            event: dict[str, object] = json.loads(line)
            if event["event"] == "acd_serving":
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(15) == 0
                return event
        raise AssertionError("acd serve did not start")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_serve_refuses_to_start_when_the_sessions_cannot_fit(tmp_path: Path) -> None:
    """With nofile 256 the default 2,000 sessions cannot fit: exit 2 naming keys and numbers."""
    proc = serve(settings(tmp_path, "agi: {port: 0}\nhttp: {port: 0}\n"), nofile(256, 256))
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2, err
    assert "agi.max_sessions (2000)" in err and "http.max_connections (256)" in err
    assert "2320" in err and "nofile limit of 256" in err
    assert "Traceback" not in err


def test_serve_starts_when_the_budget_fits_the_limit(tmp_path: Path) -> None:
    """100 sessions + 16 HTTP connections + the reserve fit in nofile 256: it serves."""
    path = settings(tmp_path, "agi: {port: 0, max_sessions: 100}\n"
                              "http: {port: 0, max_connections: 16}\n")
    event = serving_event(serve(path, nofile(256, 256)))
    assert event["nofile"] == 256


def test_serve_raises_the_soft_limit_towards_the_hard_one(tmp_path: Path) -> None:
    """A soft limit of 128 under a hard one of 4,096 is raised, so the defaults fit."""
    path = settings(tmp_path, "agi: {port: 0}\nhttp: {port: 0}\n")
    event = serving_event(serve(path, nofile(128, 4096)))
    assert event["nofile"] == 4096


SERVER = """
import asyncio, logging, sys
from acd.asterisk.agi import commands
from acd.asterisk.agi.server import FastAgiServer

async def hold(session):
    await session.command(commands.set_music(True))
    await session.wait_for_hangup()

async def main():
    server = FastAgiServer({"hold": hold}.get, port=0, header_timeout=30, max_sessions=1000)
    await server.start()
    print(server.port, flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    print(server.refused_no_fd, server.stats.sessions_started, flush=True)
    await server.close(grace=0.5)

logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
asyncio.run(main())
"""


async def _call(port: int, n: int) -> tuple[str, float, asyncio.StreamWriter | None]:
    """Connect and send an environment: ``served`` (first command came), ``closed`` (closed
    by the server) or ``hung`` (nothing within 2 s); with the seconds it took."""
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(environment_block("hold", uniqueid=f"1795609297.{n}"))
    try:
        async with asyncio.timeout(2.0):
            line = await reader.readline()
    except TimeoutError:
        writer.close()
        return "hung", time.perf_counter() - started, None
    except ConnectionError:
        line = b""
    took = time.perf_counter() - started
    if line == b"SET MUSIC ON default\n":
        writer.write(b"200 result=0\n")
        return "served", took, writer
    writer.close()
    return "closed", took, None


async def test_connections_beyond_the_nofile_limit_are_closed_at_once_with_one_log_line(
) -> None:
    """At nofile 64 with room for 1,000 sessions, calls past the limit are closed at once
    (no hang in the backlog), one warning is logged instead of asyncio's flood, and the
    server serves again once descriptors are free."""
    proc = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ENV, preexec_fn=nofile(64, 64))
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    writers: list[asyncio.StreamWriter] = []
    try:
        port = int(await asyncio.to_thread(proc.stdout.readline))
        outcomes = []
        for n in range(120):  # one at a time: each connection's fate is its own
            kind, took, writer = await _call(port, n)
            outcomes.append((kind, took))
            if writer is not None:
                writers.append(writer)
        served = [t for k, t in outcomes if k == "served"]
        closed = [t for k, t in outcomes if k == "closed"]
        assert [k for k, _ in outcomes].count("hung") == 0
        assert 20 <= len(served) < 64 and len(closed) == 120 - len(served)
        assert max(closed) < 0.5
        for writer in writers:  # every held caller hangs up: descriptors come back
            writer.write(b"HANGUP\n")
            writer.close()
        writers.clear()
        await asyncio.sleep(0.5)
        kind, _, writer = await _call(port, 1000)
        assert kind == "served"
        assert writer is not None
        writer.close()
        proc.stdin.write("report\n")
        proc.stdin.flush()
        refused, started = map(int, (await asyncio.to_thread(proc.stdout.readline)).split())
        assert refused == len(closed) and started == len(served) + 1
    finally:
        for writer in writers:
            writer.close()
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    err = proc.stderr.read()
    assert err.count("out of file descriptors") == 1, err[-2000:]
    assert "out of system resource" not in err


def test_fd_budget_reports_the_soft_limit_it_could_not_raise() -> None:
    """The start check in a child with nofile fixed at 64 names the limit it found."""
    soft = 64
    code = ("from acd.service.settings import load_settings\n"
            "from acd.service.limits import check_fd_budget\n"
            "from acd.errors import InputError\n"
            "try:\n    check_fd_budget(load_settings())\n"
            "except InputError as exc:\n    print(exc.problems[0])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=ENV, preexec_fn=nofile(soft, soft), timeout=30, cwd=ROOT)
    assert f"nofile limit of {soft}" in out.stdout, out.stderr
