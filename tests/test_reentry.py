"""FastAGI re-entry: a caller held by a router that died comes back to ``route`` with its call
id and arrival (config/asterisk/extensions.conf, ``[acd-dispatch]``) and keeps its place."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

from test_restart_agi import crash, records, settings_file, start_holding
from test_serve import ivr_reply

from acd.core.model import CallOffered, CallState, Output
from acd.service.app import Runtime
from acd.service.settings import load_settings
from acd.testing.clock import ManualClock
from acd.testing.fake_agi import FakeAsterisk, run_script

AGENT = "msk-tech-ru-004"
ROOT = Path(__file__).resolve().parents[1]


async def re_entry_after_a_crash(tmp_path: Path, newcomer: bool
                                 ) -> tuple[str, list[str], list[tuple[str, str | None,
                                                                       str | None]], float]:
    """A caller held when the engine died re-enters the next engine (after a ``newcomer``
    queued there, if asked); one agent logs in. Returns the agent the re-entered call was
    offered to, the calls offered in order, the re-entered call's rows, and its recorded
    arrival minus the Unix second it was held at."""
    settings = load_settings(settings_file(tmp_path), {})
    first = Runtime(settings, clock=ManualClock())
    await first.start()
    try:
        held = await start_holding(FakeAsterisk(first.agi_port), "1795609297.61")
        arrival = str(int(time.time()))
    finally:
        await crash(first)
    await asyncio.wait_for(held, 5.0)
    await asyncio.sleep(0.05)  # the re-entered call has waited longer than the newcomer

    second = Runtime(settings, clock=ManualClock())
    await second.start()
    seen: list[Output] = []
    second.service.observe(lambda o, wall: seen.append(o))
    try:
        s = second.service
        fake = FakeAsterisk(second.agi_port)
        later = await start_holding(fake, "1795609297.62") if newcomer else None
        back = asyncio.create_task(run_script(fake, "route", ("", "1795609297.61", arrival),
                                              uniqueid="1795609297.61", reply=ivr_reply))
        for _ in range(200):
            if s.router.call_state("1795609297.61") is CallState.QUEUED:
                break
            await asyncio.sleep(0.01)
        assert s.router.call_state("1795609297.61") is CallState.QUEUED
        s.login(AGENT)
        offered = [o.call_id for o in seen if isinstance(o, CallOffered)]
        if later is not None:
            s.hangup("1795609297.61")
            await asyncio.wait_for(later, 5.0)
            variables = await asyncio.wait_for(back, 5.0)
        else:
            variables = await asyncio.wait_for(back, 5.0)
            s.hangup("1795609297.61")
        rows = records(second)["1795609297.61"]
        [(arrived,)] = second.db.execute(
            "SELECT arrival FROM calls WHERE call_id = ?", ("1795609297.61",)).fetchall()
        return (variables or {}).get("ACD_AGENT", ""), offered, rows, arrived - int(arrival)
    finally:
        await second.stop()


async def test_a_re_entered_caller_keeps_its_call_and_its_arrival(tmp_path: Path) -> None:
    """A caller held when the engine died re-enters with its call id and arrival, skips the
    IVR, is offered to the next agent free, and its one record keeps its first arrival."""
    agent, offered, rows, arrived = await re_entry_after_a_crash(tmp_path, newcomer=False)
    assert agent == AGENT and offered == ["1795609297.61"]
    assert rows == [("abandoned", None, None)]  # hung up while its agent rang
    assert arrived <= 1.0  # its arrival before the crash, not its re-entry


async def test_a_re_entered_caller_is_offered_before_a_later_caller(tmp_path: Path) -> None:
    """A re-entered caller is offered before a caller who arrived after it (at the new
    engine, before the re-entry)."""
    _, offered, _, _ = await re_entry_after_a_crash(tmp_path, newcomer=True)
    assert offered[0] == "1795609297.61"


async def test_a_re_entry_the_engine_does_not_know_goes_to_the_fallback(tmp_path: Path) -> None:
    """A re-entry whose call id the engine is not following is turned away with
    ``ACD_CALL_ID`` emptied and nothing decided, so the dialplan takes its fallback."""
    runtime = Runtime(load_settings(settings_file(tmp_path), {}), clock=ManualClock())
    await runtime.start()
    try:
        variables = await run_script(FakeAsterisk(runtime.agi_port), "route",
                                     ("", "1795609297.71", "1795609290"),
                                     uniqueid="1795609297.71", reply=ivr_reply)
        assert variables == {"ACD_CALL_ID": ""}
        assert runtime.service.router.call_state("1795609297.71") is None
    finally:
        await runtime.stop()


class QueuedElsewhere:
    """The owner of a call queued straight into the router: it takes no commands."""

    def handle_command(self, command: object) -> None:
        """Nothing rings for this call in the test; its commands are dropped."""


def flows_with_priority(tmp_path: Path, priority: int) -> Path:
    """Settings whose reference IVR queues every caller with ``priority``."""
    flows = tmp_path / "ivr"
    shutil.copytree(ROOT / "config" / "ivr", flows)
    main = flows / "main.yaml"
    text = main.read_text()
    assert "default_priority: 0\n" in text
    main.write_text(text.replace("default_priority: 0\n", f"default_priority: {priority}\n"))
    path = settings_file(tmp_path)
    text = path.read_text()
    assert f"flows: {ROOT / 'config' / 'ivr'}\n" in text
    path.write_text(text.replace(f"flows: {ROOT / 'config' / 'ivr'}\n", f"flows: {flows}\n"))
    return path


async def test_a_re_entered_caller_keeps_its_priority(tmp_path: Path) -> None:
    """A priority-5 caller held when the engine died re-enters the next engine with
    priority 5: it is offered before a priority-0 call that was queued there before it."""
    settings = load_settings(flows_with_priority(tmp_path, 5), {})
    first = Runtime(settings, clock=ManualClock())
    await first.start()
    try:
        held = await start_holding(FakeAsterisk(first.agi_port), "1795609297.81")
        arrival = str(int(time.time()))
        [(queue, language, country, priority)] = first.db.execute(
            "SELECT queue, language, country, priority FROM live_calls WHERE call_id = ?",
            ("1795609297.81",)).fetchall()
        assert priority == 5
    finally:
        await crash(first)
    await asyncio.wait_for(held, 5.0)

    second = Runtime(settings, clock=ManualClock())
    await second.start()
    seen: list[Output] = []
    second.service.observe(lambda o, wall: seen.append(o))
    try:
        s = second.service
        s.call_arrived(QueuedElsewhere(), "plain-0", queue, language, country, 0)
        back = asyncio.create_task(run_script(
            FakeAsterisk(second.agi_port), "route", ("", "1795609297.81", arrival),
            uniqueid="1795609297.81", reply=ivr_reply))
        for _ in range(200):
            if s.router.call_state("1795609297.81") is CallState.QUEUED:
                break
            await asyncio.sleep(0.01)
        assert s.router.call_state("1795609297.81") is CallState.QUEUED
        assert s.priority_of("1795609297.81") == 5
        s.login(AGENT)
        assert [o.call_id for o in seen if isinstance(o, CallOffered)] == ["1795609297.81"]
        variables = await asyncio.wait_for(back, 5.0)
        assert (variables or {}).get("ACD_AGENT") == AGENT
        s.hangup("1795609297.81")
        s.hangup("plain-0")
    finally:
        await second.stop()
