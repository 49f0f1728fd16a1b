"""Failover: two ``acd serve`` processes share one PostgreSQL; the active one is SIGKILLed.

The fake Asterisk plays the dialplan (config/asterisk/extensions.conf): calls in ``Dial()``
(ringing, talking) live in Asterisk and report to whichever router listens next; callers held
in the dead router's FastAGI session re-enter ``route`` with their call id and arrival, trying
the router's address then the standby's, once every 0.1 s here (once a second in the shipped
dialplan), as ``[acd-agi]`` and ``[acd-dispatch]`` do.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from test_restart_agi import route_to_dial
from test_serve import ivr_reply

from acd.testing.ari_objects import MEDIA_SECONDS, AgentScript
from acd.testing.fake_agi import FakeAsterisk, FakeChannels, environment_block, run_script
from acd.testing.fake_ari import FakeAri

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "failover-test-token"
TALKER, RINGER, SPARE = "msk-tech-ru-001", "msk-tech-ru-002", "msk-tech-ru-004"


def free_port() -> int:
    """A free TCP port on loopback."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Router:
    """One ``acd serve`` process with the standby on."""

    def __init__(self, tmp_path: Path, name: str, pg_url: str, extra: str = "",
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        self.env = env or {}
        self.agi_port, self.http_port = free_port(), free_port()
        self.config = tmp_path / f"{name}.yaml"
        self.config.write_text(
            f"center: {ROOT / 'config' / 'center.yaml'}\n"
            f"flows: {ROOT / 'config' / 'ivr'}\n"
            # No admission control: two engines start on a busy test machine.
            f"agi: {{port: {self.agi_port}, max_loop_lag_s: null, max_ttfc_s: null}}\n"
            f"http: {{port: {self.http_port}}}\n"
            f"records: {{url: '{pg_url}'}}\n"
            "standby: {enabled: true, poll_interval_s: 0.25, check_timeout_s: 1.0}\n"
            "shutdown_grace_s: 0.2\nlogs: {format: json}\n" + extra)
        self.log = tmp_path / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the process (logs to a file, read by :meth:`events`)."""
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "acd", "serve", "--config", str(self.config)],
                stdout=out, stderr=subprocess.STDOUT, cwd=self.config.parent,
                env={**os.environ, "PYTHONPATH": str(ROOT), "ACD_API_TOKEN": TOKEN,
                     **self.env})

    def events(self) -> list[dict[str, Any]]:
        """The JSON log lines so far."""
        out = []
        for line in self.log.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out

    async def wait_for(self, event: str, timeout: float = 30.0) -> dict[str, Any]:
        """The first log event named ``event`` (fails if the process ends first)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for e in self.events():
                if e.get("event") == event:
                    return e
            assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
            await asyncio.sleep(0.05)
        raise AssertionError(f"{self.name}: no {event} within {timeout} s:\n"
                             f"{self.log.read_text()[-3000:]}")

    async def wait_for_in_log(self, event: str) -> dict[str, Any]:
        """The first log event named ``event`` of a process that may have ended."""
        for e in self.events():
            if e.get("event") == event:
                return e
        raise AssertionError(f"{self.name}: no {event}:\n{self.log.read_text()[-3000:]}")

    async def get(self, path: str) -> tuple[int, str]:
        """GET ``path`` on the HTTP API."""
        async with aiohttp.ClientSession() as http, \
                http.get(f"http://127.0.0.1:{self.http_port}{path}") as response:
            return response.status, await response.text()

    async def login(self, agent: str) -> None:
        """Log an agent in through the API."""
        async with aiohttp.ClientSession() as http, http.post(
                f"http://127.0.0.1:{self.http_port}/v1/agents/{agent}/login",
                headers={"Authorization": f"Bearer {TOKEN}"}, json={}) as response:
            assert response.status == 200, await response.text()

    def stop(self) -> None:
        """SIGTERM (SIGKILL if it hangs)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


async def hold(fake: FakeAsterisk, uniqueid: str) -> tuple[asyncio.Task[dict[str, str]],
                                                          asyncio.Event]:
    """A caller through the IVR onto hold; the task ends with the variables the engine set
    when the session ends (an offer, or nothing when the router died)."""
    call = await fake.connect()
    await call.send_environment(environment_block("route", args=("100",), uniqueid=uniqueid))
    on_hold = asyncio.Event()

    async def talk() -> dict[str, str]:
        variables: dict[str, str] = {}
        try:
            while (command := await call.read_command(60.0)) is not None:
                if m := re.fullmatch(r"SET VARIABLE (\w+) (.*)", command):
                    variables[m.group(1)] = m.group(2).strip('"')
                if command.startswith("SET MUSIC ON"):
                    on_hold.set()
                await call.reply(ivr_reply(command))
        except ConnectionError:
            pass  # the router died: Asterisk sees the session end
        await call.close()
        return variables

    task = asyncio.create_task(talk())
    await asyncio.wait_for(on_hold.wait(), 10.0)
    return task, on_hold


async def reenter(routers: list[FakeAsterisk], uniqueid: str, call_id: str, arrival: str,
                  tries: int = 100) -> tuple[dict[str, str], int]:
    """``[acd-dispatch]``'s re-entry: ``route,,<call>,<arrival>`` at the router, else the
    standby, until one answers; the variables it set when it let go, and the attempts."""
    for attempt in range(1, tries + 1):
        for fake in routers:
            result = await run_script(fake, "route", ("", call_id, arrival), uniqueid=uniqueid,
                                      reply=ivr_reply, timeout=60.0)
            if result is not None:
                return result, attempt
        await asyncio.sleep(0.1)
    raise AssertionError(f"no router took the re-entry of {call_id}")


async def until(predicate: Callable[[], Any], timeout: float, what: str) -> None:
    """Wait until ``predicate()`` is true."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.02)


def call_rows(pg_url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Call rows by call id: (outcome, agent, offers, arrival, overflow reason)."""
    import psycopg

    rows: dict[str, list[tuple[Any, ...]]] = {}
    with psycopg.connect(pg_url) as conn:
        for call_id, *rest in conn.execute(
                "SELECT call_id, outcome, agent_id, offers, arrival, overflow_reason"
                " FROM calls ORDER BY id"):
            rows.setdefault(call_id, []).append(tuple(rest))
    return rows


@pytest.mark.slow
async def test_standby_takes_over_with_calls_held_ringing_and_talking(
        tmp_path: Path, pg_url: str, record_property: Callable[[str, object], None]) -> None:
    """The active router is SIGKILLed with two callers held, one ringing and one talking:
    the standby is active within 5 s, the held callers re-enter (the one who came and
    re-entered first is offered first), the ringing and talking calls finish on their agents,
    no call is offered twice and every call has exactly one record, with its first arrival."""
    a, b = Router(tmp_path, "a", pg_url), Router(tmp_path, "b", pg_url)
    try:
        a.start()
        await a.wait_for("acd_active")
        b.start()
        await b.wait_for("acd_standby")
        status, body = await b.get("/health")
        assert status == 200 and json.loads(body)["role"] == "standby"
        _, metrics = await b.get("/metrics")
        assert 'acd_router_role{role="standby"} 1.0' in metrics
        assert 'acd_router_role{role="active"} 0.0' in metrics
        _, metrics = await a.get("/metrics")
        assert 'acd_router_role{role="active"} 1.0' in metrics
        with pytest.raises(OSError):  # the standby takes no FastAGI calls
            await asyncio.open_connection("127.0.0.1", b.agi_port)

        fake_a, fake_b = FakeAsterisk(a.agi_port), FakeAsterisk(b.agi_port)
        channels = FakeChannels()
        await a.login(TALKER)
        talking = await route_to_dial(fake_a, "1795609297.31", channels)
        assert talking.agent == TALKER and await talking.answer(fake_a) == "ok"
        await a.login(RINGER)
        ringing = await route_to_dial(fake_a, "1795609297.32", channels)
        assert ringing.agent == RINGER
        first, _ = await hold(fake_a, "1795609297.33")
        arrival_first = str(int(time.time()))
        await asyncio.sleep(0.05)
        second, _ = await hold(fake_a, "1795609297.34")
        arrival_second = str(int(time.time()))

        assert a.proc is not None
        t_kill = time.monotonic()
        a.proc.kill()  # SIGKILL: no goodbye, the lock session ends with the socket
        a.proc.wait(10)
        # The held sessions end with a call id and nothing decided: the dialplan re-enters.
        assert await asyncio.wait_for(first, 5.0) == {"ACD_CALL_ID": "1795609297.33"}
        assert await asyncio.wait_for(second, 5.0) == {"ACD_CALL_ID": "1795609297.34"}

        async def b_listens() -> bool:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", b.agi_port)
            except OSError:
                return False
            writer.close()
            return True

        await until(b_listens, 10.0, "the standby never took over")
        takeover_s = time.monotonic() - t_kill
        record_property("takeover_s", round(takeover_s, 3))
        print(f"\nfailover: standby active (FastAGI listening) {takeover_s:.2f} s after "
              f"SIGKILL; runtime start {(await b.wait_for('acd_active'))['start_s']} s")
        assert takeover_s < 5.0, f"takeover took {takeover_s:.2f} s"
        status, body = await b.get("/health")
        assert status == 200 and json.loads(body)["role"] == "active", body

        # Held callers come back (the first one first) and wait with their place.
        reentries = [asyncio.create_task(reenter([fake_a, fake_b], "1795609297.33",
                                                 "1795609297.33", arrival_first))]
        await asyncio.sleep(0.3)
        reentries.append(asyncio.create_task(reenter([fake_a, fake_b], "1795609297.34",
                                                     "1795609297.34", arrival_second)))
        await asyncio.sleep(0.3)
        # The ringing agent answers and both talks end on the new router.
        assert await ringing.answer(fake_b) == "ok"
        assert (await talking.agent_hangs_up(fake_b) or {}).get("ACD_RESULT") == "ended"
        assert (await ringing.agent_hangs_up(fake_b) or {}).get("ACD_RESULT") == "ended"
        # A fresh agent takes the held caller who came first; the other hangs up waiting.
        assert not any(t.done() for t in reentries)
        await b.login(SPARE)
        offered, _ = await asyncio.wait_for(reentries[0], 10.0)
        assert offered["ACD_AGENT"] == SPARE and offered["ACD_TARGET"]
        assert not reentries[1].done()
        spare_call = await answer_and_end(fake_b, "1795609297.33", SPARE, channels)
        assert spare_call == "ok"
        reentries[1].cancel()  # the caller hangs up: Asterisk ends the session, then h
        await asyncio.gather(reentries[1], return_exceptions=True)
        await run_script(fake_b, "ended", ("1795609297.34",), uniqueid="1795609297.34",
                         extension="h")

        async def all_written() -> bool:
            return len(call_rows(pg_url)) == 4

        await until(all_written, 10.0, f"rows: {call_rows(pg_url)}")
        rows = call_rows(pg_url)
        assert {k: [(r[0], r[1], r[2]) for r in v] for k, v in rows.items()} == {
            talking.call_id: [("answered", TALKER, 1)],
            ringing.call_id: [("answered", RINGER, 1)],
            "1795609297.33": [("answered", SPARE, 1)],
            "1795609297.34": [("abandoned", None, 0)],
        }
        # The held callers kept their arrival from before the failover.
        assert rows["1795609297.33"][0][3] <= int(arrival_first) + 1
        assert rows["1795609297.34"][0][3] <= int(arrival_second) + 1
        b.stop()  # SIGTERM: an ordinary stop of the router now active
        assert b.proc is not None and b.proc.returncode == 0
    finally:
        for router in (a, b):
            if router.proc is not None and router.proc.poll() is None:
                router.stop()


async def answer_and_end(fake: FakeAsterisk, uniqueid: str, agent: str,
                         channels: FakeChannels) -> str:
    """The offered agent answers, talks, and hangs up (the dialplan's ``answered`` and
    ``ended``); the answer the engine gave."""
    from acd.testing.fake_agi import DialInProgress

    call = DialInProgress(uniqueid, uniqueid, agent, channels)
    answer = await call.answer(fake)
    await call.agent_hangs_up(fake)
    return answer


@pytest.mark.slow
async def test_an_active_router_that_loses_its_lock_stops_before_the_standby_starts(
        tmp_path: Path, pg_url: str) -> None:
    """When the server ends the active router's lock session (here: an administrator
    terminates it), the active router stops routing before the standby holds the lock,
    exits with status 75, and its held caller re-enters at the new router with one record."""
    import psycopg

    a, b = Router(tmp_path, "a", pg_url), Router(tmp_path, "b", pg_url)
    try:
        a.start()
        await a.wait_for("acd_active")
        b.start()
        await b.wait_for("acd_standby")
        fake_a, fake_b = FakeAsterisk(a.agi_port), FakeAsterisk(b.agi_port)
        held, _ = await hold(fake_a, "1795609297.41")
        with psycopg.connect(pg_url, autocommit=True) as admin:
            [(terminated,)] = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'acd-leader' AND pid IN"
                " (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted)"
            ).fetchall()
        assert terminated
        # Fenced: the held caller is handed back at once (nothing decided), the process ends.
        assert await asyncio.wait_for(held, 5.0) == {"ACD_CALL_ID": "1795609297.41"}
        assert a.proc is not None and a.proc.wait(10) == 75
        lost = await a.wait_for_in_log("leader_lock_lost")
        taken = await b.wait_for("leader_lock_acquired")
        assert lost["timestamp"] < taken["timestamp"], (lost, taken)
        await b.wait_for("acd_active")
        entry = asyncio.create_task(reenter([fake_a, fake_b], "1795609297.41",
                                            "1795609297.41", str(int(time.time()))))

        async def queued_again() -> bool:
            return any(e.get("event") == "call_queued" and e.get("call_id") == "1795609297.41"
                       for e in b.events())

        await until(queued_again, 10.0, "the re-entry was not queued at the new router")
        entry.cancel()  # the caller hangs up while waiting
        await asyncio.gather(entry, return_exceptions=True)

        async def written() -> bool:
            return "1795609297.41" in call_rows(pg_url)

        await until(written, 10.0, "no record")
        assert [r[0] for r in call_rows(pg_url)["1795609297.41"]] == ["abandoned"]
    finally:
        for router in (a, b):
            if router.proc is not None and router.proc.poll() is None:
                router.stop()


# ------------------------------------------------------------------ ARI (Stasis) mode


def prompt_started(fake: FakeAri, channel_id: str, prompt: str) -> bool:
    """True once the fake started ``prompt`` on the channel."""
    return any(e["type"] == "PlaybackStarted"
               and e["playback"]["target_uri"] == f"channel:{channel_id}"
               and e["playback"]["media_uri"].endswith("/" + prompt) for e in fake.event_log)


def held(fake: FakeAri, channel_id: str) -> bool:
    """True while the caller is in a holding bridge."""
    return any(b.bridge_type == "holding" and channel_id in b.channels
               for b in fake.bridges.values())


def agent_leg(fake: FakeAri, endpoint: str) -> str | None:
    """The agent leg ringing or talking at ``endpoint``."""
    legs = [c.id for c in fake.channels.values() if c.kind == "agent" and c.endpoint == endpoint]
    return legs[-1] if legs else None


def talking(fake: FakeAri, channel_id: str, leg: str | None) -> bool:
    """True while caller and agent leg share a mixing bridge."""
    return leg is not None and any(
        b.bridge_type == "mixing" and channel_id in b.channels and leg in b.channels
        for b in fake.bridges.values())


def prompt_finished(fake: FakeAri, channel_id: str, prompt: str) -> bool:
    """True once ``prompt`` stopped playing on the channel (played out or stopped)."""
    return any(e["type"] == "PlaybackFinished"
               and e["playback"]["target_uri"] == f"channel:{channel_id}"
               and e["playback"]["media_uri"].endswith("/" + prompt) for e in fake.event_log)


async def stasis_call(fake: FakeAri, router: Router, number: str) -> str:
    """A caller enters Stasis and chooses technical support (declining a callback if the
    flow offers one), until the router has queued the call."""
    call_id = fake.inject_call(number, "Olga", ("8800100",))

    async def at_menu() -> bool:
        return prompt_started(fake, call_id, "main_menu")

    await until(at_menu, 10.0, "main menu")
    await fake.send_dtmf(call_id, "1")
    declined = False

    async def queued() -> bool:
        nonlocal declined
        if not declined and prompt_started(fake, call_id, "callback_offer"):
            declined = True
            await fake.send_dtmf(call_id, "2")
        return any(e.get("event") == "call_queued" and e.get("call_id") == call_id
                   for e in router.events())

    await until(queued, 10.0, "queued")
    return call_id


@pytest.mark.slow
async def test_standby_takes_over_the_stasis_application(
        tmp_path: Path, pg_url: str, record_property: Callable[[str, object], None]) -> None:
    """ARI mode: the active router is SIGKILLed with one caller held in the holding bridge,
    one ringing an agent and one talking; the standby takes over within 5 s and adopts all
    three from Asterisk: the ring is answered and connected, the held caller is offered to
    the next agent, each call is offered once and ends with exactly one record."""
    fake = FakeAri(speed=2.0, media_seconds=dict.fromkeys(MEDIA_SECONDS, 0.05),
                   default_media_s=0.05)
    await fake.start()
    ari = (f"ari: {{url: '{fake.url}', hold_grace_s: 60}}\n")
    env = {"ACD_ARI_USER": fake.username, "ACD_ARI_PASSWORD": fake.password}
    a, b = Router(tmp_path, "a", pg_url, ari, env), Router(tmp_path, "b", pg_url, ari, env)
    try:
        fake.script_agent("PJSIP/1002", AgentScript(answer_after=None))
        a.start()
        await a.wait_for("acd_active")
        b.start()
        await b.wait_for("acd_standby")
        await a.login(TALKER)
        talker = await stasis_call(fake, a, "+79161230001")

        async def talks() -> bool:
            return talking(fake, talker, agent_leg(fake, "PJSIP/1001"))

        await until(talks, 10.0, "talking")
        await a.login(RINGER)
        ringer = await stasis_call(fake, a, "+79161230002")

        async def rings() -> bool:
            return agent_leg(fake, "PJSIP/1002") is not None

        await until(rings, 10.0, "ringing")
        waiting = await stasis_call(fake, a, "+79161230003")

        async def on_hold() -> bool:
            return held(fake, waiting)

        await until(on_hold, 10.0, "held")
        talk_leg, ring_leg = agent_leg(fake, "PJSIP/1001"), agent_leg(fake, "PJSIP/1002")
        assert talk_leg is not None and ring_leg is not None

        assert a.proc is not None
        t_kill = time.monotonic()
        a.proc.kill()
        a.proc.wait(10)

        async def adopted() -> bool:
            return fake.websocket_connections >= 2 and any(
                e.get("event") == "acd_serving" for e in b.events())

        await until(adopted, 10.0, "the standby never took over ARI")
        takeover_s = time.monotonic() - t_kill
        record_property("ari_takeover_s", round(takeover_s, 3))
        print(f"\nfailover (ARI): standby serving and subscribed {takeover_s:.2f} s after "
              "SIGKILL")
        assert takeover_s < 5.0

        fake.agent_answers(ring_leg)

        async def ring_connected() -> bool:
            return talking(fake, ringer, ring_leg)

        await until(ring_connected, 10.0, "the ring answered after takeover was not connected")
        await b.login(SPARE)

        async def held_connected() -> bool:
            return talking(fake, waiting, agent_leg(fake, "PJSIP/1004"))

        await until(held_connected, 10.0, "the held caller was not offered to the next agent")
        for leg in (talk_leg, ring_leg, agent_leg(fake, "PJSIP/1004")):
            assert leg is not None
            fake.hangup(leg)

        async def all_written() -> bool:
            return len(call_rows(pg_url)) == 3

        await until(all_written, 10.0, f"rows: {call_rows(pg_url)}")
        rows = call_rows(pg_url)
        assert {k: [(r[0], r[1], r[2]) for r in v] for k, v in rows.items()} == {
            talker: [("answered", TALKER, 1)],
            ringer: [("answered", RINGER, 1)],
            waiting: [("answered", SPARE, 1)],
        }
    finally:
        for router in (a, b):
            if router.proc is not None and router.proc.poll() is None:
                router.stop()
        await fake.stop()
