"""A real Prometheus scrapes a real `acd serve` driven by the fake Asterisk over FastAGI."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from acd.testing.fake_agi import FakeAsterisk, environment_block, variables_set

pytestmark = pytest.mark.skipif(shutil.which("prometheus") is None,
                                reason="the prometheus binary is not installed "
                                       "(Debian: apt-get install prometheus)")

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "scrape-test-token"
DEADLINE_S = 40.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Process:
    """A subprocess whose stdout lines are read by a thread (so reads can time out)."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def wait_for(self, predicate: Any, timeout: float) -> str:
        """The first stdout line for which ``predicate(line)`` holds."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            self.seen.append(line)
            if predicate(line):
                return line
        raise AssertionError("no such line; output so far:\n" + "".join(self.seen[-30:]))

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s: never leaves the process behind."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[int, int, int]]:
    """`acd serve` and Prometheus scraping it every second: (agi, http, prometheus) ports."""
    settings = tmp_path / "service.yaml"
    settings.write_text(f"center: {ROOT / 'config' / 'center.yaml'}\n"
                        f"flows: {ROOT / 'config' / 'ivr'}\n"
                        "agi: {port: 0}\nhttp: {port: 0}\nrecords: {database: acd.sqlite3}\n"
                        "logs: {format: json}\nshutdown_grace_s: 1\n")
    env = {**os.environ, "ACD_API_TOKEN": TOKEN, "PYTHONPATH": str(ROOT)}
    processes: list[Process] = []
    try:
        acd = Process([sys.executable, "-m", "acd", "serve", "--config",
                       str(settings)], tmp_path, env)
        processes.append(acd)
        serving = json.loads(acd.wait_for(lambda s: '"acd_serving"' in s, 30))
        agi, http = int(serving["agi_port"]), int(serving["http_port"])
        prom_port = free_port()
        (tmp_path / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n  - job_name: acd\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{http}']}}]\n")
        prom = Process(["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
                        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                        f"--web.listen-address=127.0.0.1:{prom_port}"], tmp_path)
        processes.append(prom)
        prom.wait_for(lambda s: "Server is ready to receive web requests" in s, 30)
        yield agi, http, prom_port
    finally:
        for p in reversed(processes):
            p.stop()


def ivr_reply(command: str) -> str:
    """The caller in the reference IVR: menu 1 (technical support), prompts play through."""
    if command.startswith("STREAM FILE"):
        return "200 result=0 endpos=8000"
    if command.startswith("GET DATA acd/ru/main_menu"):
        return "200 result=1"
    if command.startswith("GET DATA"):
        return "200 result= (timeout)"
    return "200 result=1"


async def run_script(fake: FakeAsterisk, name: str, *args: str) -> None:
    call = await fake.connect()
    await call.send_environment(environment_block(name, args=args))
    while await call.read_command(5.0) is not None:
        await call.reply("200 result=1")
    await call.close()


async def drive_calls(agi: int) -> None:
    """One call answered by msk-tech-ru-001, then one the caller abandons while on hold."""
    fake = FakeAsterisk(agi)
    call = await fake.connect()
    await call.send_environment(environment_block("route", args=("100",), uniqueid="100.1"))
    agent = None
    while (command := await call.read_command(10.0)) is not None:
        agent = variables_set(command).get("ACD_AGENT", agent)
        await call.reply(ivr_reply(command))
    await call.close()
    assert agent == "msk-tech-ru-001"
    await run_script(fake, "answered", "100.1", agent)
    await run_script(fake, "ended", "100.1", agent)
    # The only agent is in wrap-up now: the second caller waits on hold, then hangs up.
    call = await fake.connect()
    await call.send_environment(environment_block("route", args=("100",), uniqueid="100.2"))
    while (command := await call.read_command(10.0)) != "SET MUSIC ON default":
        assert command is not None
        await call.reply(ivr_reply(command))
    await call.reply("200 result=0")
    await call.hangup()
    assert await call.wait_closed(5.0)
    await call.close()


async def query(http: aiohttp.ClientSession, prom: int, expr: str) -> list[dict[str, Any]]:
    async with http.get(f"http://127.0.0.1:{prom}/api/v1/query", params={"query": expr}) as r:
        body = await r.json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


async def eventually(http: aiohttp.ClientSession, prom: int, expr: str, want: float,
                     end: float) -> None:
    """Poll Prometheus until ``expr`` has exactly one series equal to ``want``."""
    last: list[dict[str, Any]] = []
    while time.monotonic() < end:
        last = await query(http, prom, expr)
        if len(last) == 1 and float(last[0]["value"][1]) == want:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"{expr} never became {want}; last result {last}")


async def test_prometheus_scrapes_the_live_series(served: tuple[int, int, int]) -> None:
    """Counters, the SL bucket, agent and queue gauges reach Prometheus with the right values."""
    agi, http_port, prom = served
    end = time.monotonic() + DEADLINE_S
    async with aiohttp.ClientSession() as http:
        async with http.post(f"http://127.0.0.1:{http_port}/v1/agents/msk-tech-ru-001/login",
                             headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
            assert resp.status == 200
        await drive_calls(agi)
        await eventually(http, prom, 'up{job="acd"}', 1, end)
        ru = 'queue="tech",language="ru",country="RU"'
        await eventually(http, prom, f"acd_calls_offered_total{{{ru}}}", 2, end)
        await eventually(http, prom, f"acd_calls_answered_total{{{ru}}}", 1, end)
        await eventually(http, prom, f"acd_calls_answered_within_threshold_total{{{ru}}}", 1,
                         end)
        await eventually(http, prom, f"acd_calls_abandoned_total{{{ru}}}", 1, end)
        await eventually(http, prom, 'acd_call_wait_seconds_bucket{queue="tech",'
                         'outcome="answered",le="20.0"}', 1, end)
        await eventually(http, prom, 'acd_service_level_ratio{queue="tech"}', 0.5, end)
        await eventually(http, prom, 'acd_agents{site="moscow",state="wrap_up"}', 1, end)
        await eventually(http, prom, 'acd_queue_agents_logged_in{queue="tech"}', 1, end)
        await eventually(http, prom, 'acd_queue_calls_waiting{queue="tech"}', 0, end)
        await eventually(http, prom, 'sum(acd_routing_decision_seconds_count'
                         '{entry_point="call_arrived"})', 2, end)
