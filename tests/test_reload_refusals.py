"""Refused starts and reloads: no entry flow, hostile YAML; the old config always stays."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from acd.asterisk.agi.route import CallPath
from acd.asterisk.agi.server import FastAgiServer
from acd.config.load import load_center
from acd.errors import ConfigError
from acd.runtime.ivrsetup import IvrSetup, load_ivr
from acd.runtime.router_service import RouterService
from acd.service.api import build_api
from acd.service.app import Runtime
from acd.service.settings import load_settings
from acd.testing.clock import ManualClock
from acd.testing.fake_agi import FakeAsterisk, environment_block

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
#: Hostile center files: each breaks line 2, which a reload must name.
HOSTILE = {
    "nul": "center:\n  name: \"x\x00y\"\n",
    "control": "center:\n  name: x\x1by\n",
    "huge_int": "center:\n  name: " + "9" * 5000 + "\n",
    "bad_date": "center:\n  since: 2026-13-45\n",
}


@dataclass
class Copy:
    """A copy of the reference center and flows that a test may break."""

    settings: Path
    center: Path
    flows: Path


def own_copy(tmp_path: Path, ports: tuple[int, int] = (0, 0)) -> Copy:
    center, flows = tmp_path / "center.yaml", tmp_path / "ivr"
    shutil.copy(ROOT / "config" / "center.yaml", center)
    shutil.copytree(ROOT / "config" / "ivr", flows)
    settings = tmp_path / "service.yaml"
    settings.write_text(f"center: {center}\nflows: {flows}\n"
                        f"agi: {{port: {ports[0]}}}\nhttp: {{port: {ports[1]}}}\n"
                        "records: {database: acd.sqlite3}\nshutdown_grace_s: 1\n"
                        "logs: {format: json}\n")
    return Copy(settings, center, flows)


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[Runtime, Copy]]:
    files = own_copy(tmp_path)
    runtime = Runtime(load_settings(files.settings, {"ACD_API_TOKEN": TOKEN}))
    await runtime.start()
    yield runtime, files
    await runtime.stop()


def test_serve_without_the_entry_flow_exits_2(tmp_path: Path) -> None:
    """`acd serve` over a flows directory without main.yaml exits 2 naming the directory."""
    files = own_copy(tmp_path)
    (files.flows / "main.yaml").unlink()
    proc = subprocess.run([sys.executable, "-m", "acd", "serve", "--config", str(files.settings)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2, proc.stderr
    assert f"{files.flows}: <root>: no entry flow 'main' (main.yaml)" in proc.stderr
    assert "it holds callback" in proc.stderr and "Traceback" not in proc.stderr


async def test_reload_without_the_entry_flow_keeps_the_old_flows(
        running: tuple[Runtime, Copy]) -> None:
    """A reload after main.yaml is removed is refused and the running flows stay."""
    runtime, files = running
    before = runtime.setup
    (files.flows / "main.yaml").rename(files.flows / "main.yaml.off")
    with pytest.raises(ConfigError, match="no entry flow 'main'") as info:
        await runtime.reload()
    assert info.value.problems[0].file == str(files.flows)
    assert runtime.setup is before and "main" in runtime.setup.flows
    assert runtime.registry.get_sample_value("acd_config_reloads_total",
                                             {"result": "refused"}) == 1
    (files.flows / "main.yaml.off").rename(files.flows / "main.yaml")
    assert (await runtime.reload())["flows"] == ["callback", "main", "survey"]


@pytest.mark.parametrize("case", sorted(HOSTILE))
async def test_api_reload_of_hostile_yaml_is_a_json_refusal(
        running: tuple[Runtime, Copy], case: str) -> None:
    """POST /v1/reload of a center with a NUL, a control character, a 5,000-digit integer or an
    impossible date answers 422 in JSON naming file and line; the old router stays."""
    runtime, files = running
    router = runtime.service.router
    files.center.write_text(HOSTILE[case], encoding="utf-8")
    async with aiohttp.ClientSession(f"http://127.0.0.1:{runtime.http_port}") as http, \
            http.post("/v1/reload", headers=AUTH, timeout=aiohttp.ClientTimeout(30)) as resp:
        assert resp.content_type == "application/json"
        status, body = resp.status, await resp.json()
    assert status == 422 and body["error"] == "bad_config"
    (problem,) = body["problems"]
    assert problem.startswith(f"{files.center}:2: <root>: invalid YAML: ")
    assert runtime.service.router is router


async def test_api_reload_without_the_entry_flow_is_a_json_refusal(
        running: tuple[Runtime, Copy]) -> None:
    """POST /v1/reload with no main.yaml answers 422 in JSON naming the flows directory."""
    runtime, files = running
    (files.flows / "main.yaml").unlink()
    async with aiohttp.ClientSession(f"http://127.0.0.1:{runtime.http_port}") as http, \
            http.post("/v1/reload", headers=AUTH) as resp:
        status, body = resp.status, await resp.json()
    assert status == 422 and body["error"] == "bad_config"
    assert body["problems"] == [f"{files.flows}: <root>: no entry flow 'main' (main.yaml), the "
                                "flow every inbound call runs; it holds callback, survey"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _next_event(out: IO[str], name: str, deadline: float) -> dict[str, Any]:
    while time.monotonic() < deadline:
        line = out.readline()
        assert line, "the service ended early"
        event: dict[str, Any] = json.loads(line)
        if event["event"] == name:
            return event
    raise AssertionError(f"no {name} event in time")


def test_sighup_with_hostile_yaml_logs_the_problem_and_keeps_serving(tmp_path: Path) -> None:
    """SIGHUP over a center with a NUL logs one refusal with file:line, no traceback; the
    service keeps serving, reloads once the file is fixed and stops cleanly."""
    files = own_copy(tmp_path, (_free_port(), _free_port()))
    good = files.center.read_text(encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "acd", "serve", "--config",
                             str(files.settings)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout is not None and proc.stderr is not None
        deadline = time.monotonic() + 60
        _next_event(proc.stdout, "acd_serving", deadline)
        files.center.write_text(HOSTILE["nul"], encoding="utf-8")
        proc.send_signal(signal.SIGHUP)
        failed = _next_event(proc.stdout, "config_reload_failed", deadline)
        assert failed["error"].startswith(f"{files.center}:2: <root>: invalid YAML: character "
                                          "U+0000 is not allowed")
        files.center.write_text(good, encoding="utf-8")
        proc.send_signal(signal.SIGHUP)
        _next_event(proc.stdout, "config_reloaded", deadline)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        err = proc.stderr.read()
        assert "Traceback" not in err and "never retrieved" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


async def test_turned_away_call_logs_why_once_with_its_id(
        caplog: pytest.LogCaptureFixture) -> None:
    """A FastAGI call with no entry flow to run is turned away with one log line naming it."""
    center = load_center(ROOT / "config" / "center.yaml")
    base = load_ivr(center, ROOT / "config" / "ivr")
    setup = IvrSetup(center, base.known, {"callback": base.flows["callback"]})
    service = RouterService(center, ManualClock())
    path = CallPath(service, setup)
    server = FastAgiServer(path.handler_for, port=0, header_timeout=2.0)
    await server.start()
    try:
        with caplog.at_level(logging.WARNING, logger="acd.asterisk.agi.route"):
            call = await FakeAsterisk(server.port).connect()
            await call.send_environment(environment_block(  # type: ignore[arg-type]
                "route", args=("100",), uniqueid="1795609297.42", callerid="+79161234567"))
            assert await call.wait_closed(2.0)
            await asyncio.sleep(0)
        assert call.commands == [] and path.stats.turned_away == 1
        lines = [r.getMessage() for r in caplog.records if "turned away" in r.getMessage()]
        assert lines == ["Call '1795609297.42' turned away to the dialplan fallback: "
                         "no IVR flow 'main'."]
    finally:
        await server.close(grace=0.5)
        service.close()


class BrokenReload:
    """A running service whose reload fails with a bug, not with a bad file."""

    token = TOKEN

    async def reload(self) -> dict[str, object]:
        raise RuntimeError("router rebuilt twice")


async def test_api_reload_that_fails_with_a_bug_still_answers_json() -> None:
    """An unexpected reload failure is a JSON 500 naming the error, not a text traceback."""
    app = build_api(BrokenReload())  # type: ignore[arg-type]
    async with TestClient(TestServer(app)) as client:
        resp = await client.post("/v1/reload", headers=AUTH)
        assert (resp.status, resp.content_type) == (500, "application/json")
        body = await resp.json()
    assert body == {"error": "reload_failed", "message": "the reload failed; the old "
                    "configuration stays in force: RuntimeError: router rebuilt twice"}
