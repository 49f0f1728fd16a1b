"""`acd serve`: a call end to end through FastAGI, reload keeping calls, restart, signals."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import structlog

from acd.core.model import (
    AgentState,
    AgentStateChanged,
    CallQueued,
    CallState,
    Offer,
    Overflow,
)
from acd.errors import ConfigError
from acd.runtime.router_service import Command, RouterService
from acd.service.app import Runtime
from acd.service.logs import EventLog, configure_logging
from acd.service.reload import ReloadRefused
from acd.service.settings import CONFIG_DIR, load_settings
from acd.testing.clock import ManualClock
from acd.testing.fake_agi import FakeAsterisk, FakeCall, environment_block, variables_set

ROOT = Path(__file__).resolve().parents[1]
CALLER = "+79161234567"


def settings_file(tmp_path: Path, center: Path | None = None, grace_s: float = 1) -> Path:
    """Settings on ephemeral ports, records in ``tmp_path``; ``grace_s`` to drain at stop.
    No admission control: a service that has just started on a busy test machine may be late
    enough to shed its first call, which is right in production and noise in these tests
    (``tests/test_admission.py`` tests the shedding)."""
    path = tmp_path / "service.yaml"
    path.write_text(f"center: {center or ROOT / 'config' / 'center.yaml'}\n"
                    f"flows: {ROOT / 'config' / 'ivr'}\n"
                    "agi: {port: 0, max_loop_lag_s: null, max_ttfc_s: null}\n"
                    "http: {port: 0}\nrecords: {database: acd.sqlite3}\n"
                    f"shutdown_grace_s: {grace_s}\nlogs: {{format: json}}\n")
    return path


def ivr_reply(command: str) -> str:
    """The caller in the reference IVR: menu 1 (technical support), prompts play through."""
    if command.startswith("STREAM FILE"):
        return "200 result=0 endpos=8000"
    if command.startswith("GET DATA acd/ru/main_menu"):
        return "200 result=1"
    if command.startswith("GET DATA"):
        return "200 result= (timeout)"
    return "200 result=1"


async def script(fake: FakeAsterisk, name: str, *args: str, **env: str) -> list[str]:
    """Run a short re-entry script (answered, ended) to its end."""
    call = await fake.connect()
    await call.send_environment(environment_block(name, args=args, **env))  # type: ignore[arg-type]
    commands = []
    while (command := await call.read_command(5.0)) is not None:
        commands.append(command)
        await call.reply("200 result=1")
    await call.close()
    return commands


async def route_until_offer(fake: FakeAsterisk, uniqueid: str, callerid: str = CALLER
                            ) -> tuple[FakeCall, dict[str, str]]:
    """A call through the IVR and the queue until the router hands it to an agent."""
    call = await fake.connect()
    await call.send_environment(environment_block("route", args=("100",), callerid=callerid,
                                                  uniqueid=uniqueid))
    variables: dict[str, str] = {}
    while (command := await call.read_command(10.0)) is not None:
        variables.update(variables_set(command))
        await call.reply(ivr_reply(command))
    await call.close()
    return call, variables


async def answered_call(fake: FakeAsterisk, uniqueid: str, talk_s: float) -> dict[str, str]:
    """Drive one call the way Asterisk's dialplan does: route, dial, answer, hang up."""
    _, variables = await route_until_offer(fake, uniqueid)
    agent = variables["ACD_AGENT"]
    await script(fake, "answered", uniqueid, agent)
    await asyncio.sleep(talk_s)
    await script(fake, "ended", uniqueid, agent)
    return variables


async def test_call_end_to_end_through_fastagi(tmp_path: Path) -> None:
    """A FastAGI call is routed, answered and recorded; metrics count it."""
    runtime = Runtime(load_settings(settings_file(tmp_path), {}))
    await runtime.start()
    try:
        runtime.service.login("msk-tech-ru-001")
        variables = await answered_call(FakeAsterisk(runtime.agi_port), "1795609297.11", 0.05)
        assert variables["ACD_TARGET"] == "PJSIP/1001"
        assert variables["ACD_AGENT"] == "msk-tech-ru-001"
        row = runtime.db.execute("SELECT call_id, outcome, queue, agent_id, talk_s "
                                 "FROM calls").fetchall()
        assert len(row) == 1 and row[0][:4] == ("1795609297.11", "answered", "tech",
                                                "msk-tech-ru-001")
        assert row[0][4] >= 0.04
        get = runtime.registry.get_sample_value
        assert get("acd_calls_answered_total",
                   {"queue": "tech", "language": "ru", "country": "RU"}) == 1
        assert get("acd_calls_ended_total", {"queue": "tech", "outcome": "answered"}) == 1
        assert runtime.service.router.agent_state("msk-tech-ru-001") is AgentState.WRAP_UP
    finally:
        await runtime.stop()


class Owner:
    """A call owner for tests: answers offers when told to, keeps every command."""

    def __init__(self, service: RouterService, answer: bool) -> None:
        self.service = service
        self.answer = answer
        self.commands: list[Command] = []

    def handle_command(self, command: Command) -> None:
        self.commands.append(command)
        if self.answer and isinstance(command, Offer):
            self.service.offer_answered(command.call_id)


async def test_reload_keeps_talking_ringing_and_waiting_calls(tmp_path: Path) -> None:
    """After a reload the same calls talk, ring and wait, with their agents and arrival order."""
    runtime = Runtime(load_settings(settings_file(tmp_path), {}))
    await runtime.start()
    try:
        s = runtime.service
        s.login("msk-orders-ru-001")
        talking, ringing = Owner(s, True), Owner(s, False)
        s.call_arrived(talking, "talk", "orders", "ru", "RU")
        s.login("msk-orders-ru-002")
        s.call_arrived(ringing, "ring", "orders", "ru", "RU")
        waiting = [Owner(s, True) for _ in range(2)]
        s.call_arrived(waiting[0], "w1", "orders", "ru", "RU")
        await asyncio.sleep(0.02)
        s.call_arrived(waiting[1], "w2", "orders", "ru", "RU")
        s.login("msk-tech-ru-001", paused_reason="coaching")
        offered_before = runtime.registry.get_sample_value(
            "acd_calls_offered_total", {"queue": "orders", "language": "ru", "country": "RU"})
        result = await runtime.reload()
        assert (result["calls_talking"], result["calls_ringing"], result["calls_waiting"]) == \
            (1, 1, 2)
        router = s.router
        assert router.call_state("talk") is CallState.TALKING
        assert router.call_state("ring") is CallState.RINGING
        assert router.agent_state("msk-orders-ru-001") is AgentState.ON_CALL
        assert router.agent_state("msk-orders-ru-002") is AgentState.RINGING
        assert router.agent_state("msk-tech-ru-001") is AgentState.PAUSED
        assert [router.call_state(c) for c in ("w1", "w2")] == [CallState.QUEUED] * 2
        # The ringing phone was not rung twice; nothing was counted twice.
        assert [type(c) for c in ringing.commands] == [Offer]
        assert runtime.registry.get_sample_value(
            "acd_calls_offered_total",
            {"queue": "orders", "language": "ru", "country": "RU"}) == offered_before
        # The talking call ends normally and its record keeps the original answer time.
        s.hangup("talk")
        row = runtime.db.execute("SELECT outcome, agent_id, talk_s FROM calls").fetchone()
        assert row[:2] == ("answered", "msk-orders-ru-001") and row[2] >= 0.02
        # The freed agent takes the oldest waiting call first (after wrap-up, made ready).
        s.ready("msk-orders-ru-001")
        assert router.call_state("w1") is CallState.TALKING
        assert router.call_state("w2") is CallState.QUEUED
    finally:
        await runtime.stop()


async def runtime_with_own_center(tmp_path: Path, clock: ManualClock | None = None
                                   ) -> tuple[Runtime, Path]:
    """A started runtime over a copy of the reference center that the test may edit."""
    center = tmp_path / "center.yaml"
    shutil.copy(ROOT / "config" / "center.yaml", center)
    runtime = Runtime(load_settings(settings_file(tmp_path, center), {}), clock=clock)
    await runtime.start()
    return runtime, center


async def test_reload_that_ends_a_waiting_call_records_the_end(tmp_path: Path) -> None:
    """A waiting call the new config overflows at once (past its new maximum wait) is told
    to move and leaves a record: its end is not swallowed with the replay."""
    clock = ManualClock()
    runtime, center = await runtime_with_own_center(tmp_path, clock)
    try:
        s = runtime.service
        owner = Owner(s, True)
        s.call_arrived(owner, "w1", "orders", "ru", "RU")  # nobody logged in: it waits
        clock.advance(0.3)
        text = center.read_text()
        center.write_text(text.replace("max_wait_s: 900", "max_wait_s: 0.2", 1))
        await runtime.reload()
        assert s.router.call_state("w1") is None
        assert [(type(c), c.target) for c in owner.commands] == [(Overflow, "callback")]
        row = runtime.db.execute("SELECT outcome FROM calls WHERE call_id = 'w1'").fetchone()
        assert row == ("overflowed",)
    finally:
        await runtime.stop()


async def test_reload_refused_keeps_the_old_router(tmp_path: Path) -> None:
    """A bad config, or one without the agent of a live call, leaves the old router in place."""
    runtime, center = await runtime_with_own_center(tmp_path)
    try:
        s = runtime.service
        s.login("msk-voc-010")
        s.call_arrived(Owner(s, True), "c1", "voc", "ru", "RU")
        router = s.router
        text = center.read_text()
        center.write_text(text.replace("queues:\n  tech:", "queues:\n  tech:\n    bogus: 1", 1))
        with pytest.raises(ConfigError):
            await runtime.reload()
        center.write_text(re.sub(r"(msk-voc:\n(?:    .*\n)*?    count:) 10", r"\1 5", text))
        with pytest.raises(ReloadRefused, match="msk-voc-010"):
            await runtime.reload()
        assert s.router is router and router.call_state("c1") is CallState.TALKING
        assert runtime.registry.get_sample_value("acd_config_reloads_total",
                                                 {"result": "refused"}) == 2
        s.hangup("c1")
        assert router.agent_state("msk-voc-010") is AgentState.WRAP_UP
    finally:
        await runtime.stop()


async def test_restart_restores_agent_states(tmp_path: Path) -> None:
    """Agents logged in before a stop are logged in again at the next start."""
    settings = load_settings(settings_file(tmp_path), {})
    first = Runtime(settings)
    await first.start()
    first.service.login("kyi-west-001")
    first.service.login("msk-caucasus-001", paused_reason="meeting")
    await first.stop()
    second = Runtime(settings)
    await second.start()
    try:
        state = second.service.router.agent_state
        assert state("kyi-west-001") is AgentState.READY
        assert state("msk-caucasus-001") is AgentState.PAUSED
    finally:
        await second.stop()


def test_settings_defaults_and_errors(tmp_path: Path) -> None:
    """No file means loopback defaults; a bad value is a ConfigError naming path and line."""
    s = load_settings(None, {"ACD_API_TOKEN": "s3cr3t-value"})
    assert (s.agi.host, s.agi.port, s.http.host, s.http.port) == ("127.0.0.1", 4573,
                                                                  "127.0.0.1", 8080)
    assert s.center == CONFIG_DIR / "center.yaml" and s.token == "s3cr3t-value"
    assert "s3cr3t" not in repr(s)
    shipped = load_settings(CONFIG_DIR / "service.yaml", {})
    assert shipped.agi.port == 4573 and shipped.database.name == "acd.sqlite3"
    bad = tmp_path / "bad.yaml"
    bad.write_text("agi:\n  port: 99999\nhttp:\n  hots: x\n")
    with pytest.raises(ConfigError) as info:
        load_settings(bad, {})
    text = str(info.value)
    assert "agi.port" in text and "99999" in text and "http.hots" in text
    assert f"{bad}:2" in text


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_process_reloads_on_sighup_and_stops_on_sigterm(tmp_path: Path) -> None:
    """SIGHUP reloads (logged), SIGTERM stops within the grace and closes the FastAGI port."""
    agi, http = _free_port(), _free_port()
    path = settings_file(tmp_path)
    path.write_text(path.read_text().replace("agi: {port: 0,", f"agi: {{port: {agi},")
                    .replace("http: {port: 0}", f"http: {{port: {http}}}"))
    proc = subprocess.Popen([sys.executable, "-m", "acd", "serve", "--config",
                             str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout is not None
        events = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else "no output"
            events.append(json.loads(line))
            if events[-1]["event"] == "acd_serving":
                break
        assert events[-1]["agi_port"] == agi
        proc.send_signal(signal.SIGHUP)
        line = proc.stdout.readline()
        assert json.loads(line)["event"] == "config_reloaded"
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert time.monotonic() - t0 < 5
        with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", agi),
                                                                           1):
            pass
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


async def test_shutdown_hands_held_callers_back_to_the_dialplan(tmp_path: Path) -> None:
    """On stop, a caller on hold is released at once with no target (dialplan fallback)."""
    runtime = Runtime(load_settings(settings_file(tmp_path), {}))
    await runtime.start()
    stopped = False
    try:
        call = await FakeAsterisk(runtime.agi_port).connect()
        await call.send_environment(environment_block("route", args=("100",),
                                                      uniqueid="1795609297.12"))
        while (command := await call.read_command(10.0)) != "SET MUSIC ON default":
            assert command is not None
            await call.reply(ivr_reply(command))
        await call.reply("200 result=0")
        t0 = time.monotonic()
        stopping = asyncio.create_task(runtime.stop())
        later = []
        while (command := await call.read_command(5.0)) is not None:
            later.append(command)
            await call.reply("200 result=0")
        await stopping
        stopped = True
        assert time.monotonic() - t0 < 2.0
        assert not any("ACD_TARGET" in variables_set(c) for c in later)
        await call.close()
    finally:
        if not stopped:
            await runtime.stop()


def test_event_log_is_json_with_call_id() -> None:
    """Router events become JSON lines with call_id bound; stdlib logs share the format."""
    out = io.StringIO()
    configure_logging("json", "info", out)
    try:
        events = EventLog()
        events(CallQueued("1795609297.11", "tech", "ru", "RU", 5.0), 1.0)
        events(AgentStateChanged("msk-tech-ru-001", AgentState.PAUSED, "lunch", 6.0), 1.0)
        logging.getLogger("acd.asterisk.agi.server").warning("No handler for %r.", "x")
    finally:
        structlog.reset_defaults()
        root = logging.getLogger()
        for handler in [h for h in root.handlers if getattr(h, "_acd", False)]:
            root.removeHandler(handler)
        root.setLevel(logging.WARNING)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines[0]["event"] == "call_queued" and lines[0]["call_id"] == "1795609297.11"
    assert lines[0]["queue"] == "tech" and "at" not in lines[0]
    assert lines[1]["event"] == "agent_state_changed" and lines[1]["state"] == "paused"
    assert lines[2]["level"] == "warning" and lines[2]["event"] == "No handler for 'x'."


async def test_serve_runs_the_callback_dialler_when_enabled(tmp_path: Path) -> None:
    """With callbacks on (via AMI, credentials set), acd serve runs the dialler and stops it;
    a reload gives it the business hours of the reloaded flows."""
    path = settings_file(tmp_path)
    path.write_text(path.read_text() + "callbacks: {enabled: true, via: ami}\n")
    runtime = Runtime(load_settings(path, {"ACD_AMI_USER": "acd", "ACD_AMI_SECRET": "x"}))
    await runtime.start()
    try:
        assert runtime.dialer is not None
        assert runtime._dialer_task is not None and not runtime._dialer_task.done()
        before = runtime.setup.flows["main"].calendar
        assert runtime.dialer.hours.__self__ is before
        await runtime.reload()
        after = runtime.setup.flows["main"].calendar
        assert after is not before and runtime.dialer.hours.__self__ is after
    finally:
        await runtime.stop()
    assert runtime._dialer_task.done()


async def test_serve_leaves_the_dialler_off_without_its_shell(tmp_path: Path) -> None:
    """Callbacks via ARI with no ARI configured: the service runs, the dialler stays off."""
    path = settings_file(tmp_path)
    path.write_text(path.read_text() + "callbacks: {enabled: true, via: ari}\n")
    runtime = Runtime(load_settings(path, {}))
    await runtime.start()
    try:
        assert runtime.dialer is None
    finally:
        await runtime.stop()
