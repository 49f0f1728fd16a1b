"""The post-call survey: when the agent hangs up, FastAGI sends the caller to the survey
(``ACD_SURVEY=1``, then the ``survey`` script) and ARI moves the caller into the survey flow
instead of hanging up; the caller's 1-5 is stored on the call's record, which also carries the
caller's number."""

from __future__ import annotations

import re
from pathlib import Path

from arikit import RU_CALLER, Rig, eventually
from test_serve import CALLER, route_until_offer, script, settings_file

from acd.runtime.records import CallRecords, open_database
from acd.service.app import Runtime
from acd.service.settings import load_settings
from acd.testing.fake_agi import FakeAsterisk, environment_block

AGENT = "msk-tech-ru-001"


def survey_settings(tmp_path: Path, enabled: bool) -> Path:
    path = settings_file(tmp_path)
    path.write_text(path.read_text() + f"survey: {{enabled: {str(enabled).lower()}}}\n")
    return path


async def survey(fake: FakeAsterisk, call_id: str, digit: str | None) -> list[str]:
    """Run the ``survey`` script as ``[acd-survey]`` does; the caller presses ``digit``."""
    call = await fake.connect()
    await call.send_environment(environment_block("survey", args=(call_id,),
                                                  uniqueid=call_id))
    commands = []
    while (command := await call.read_command(5.0)) is not None:
        commands.append(command)
        if command.startswith("GET DATA"):
            await call.reply(f"200 result={digit}" if digit else "200 result= (timeout)")
        elif command.startswith("STREAM FILE"):
            await call.reply("200 result=0 endpos=8000")
        else:
            await call.reply("200 result=1")
    await call.close()
    return commands


async def talk(fake: FakeAsterisk, uniqueid: str) -> list[str]:
    """Route a call to the agent, answer it, and let the agent hang up (``talked``)."""
    _, variables = await route_until_offer(fake, uniqueid, CALLER)
    assert variables["ACD_AGENT"] == AGENT
    await script(fake, "answered", uniqueid, AGENT)
    return await script(fake, "ended", uniqueid, AGENT)


def stored(runtime: Runtime, call_id: str) -> tuple[object, ...]:
    return tuple(runtime.db.execute(
        "SELECT outcome, caller, customer_id, survey_score FROM calls WHERE call_id = ?",
        (call_id,)).fetchone())


async def test_the_agent_hangs_up_and_the_callers_score_is_stored(tmp_path: Path) -> None:
    """The ``ended`` script sets ACD_SURVEY=1 after ACD_RESULT=ended; the survey asks in the
    call's language, thanks the caller and stores 4 on the answered call's record."""
    runtime = Runtime(load_settings(survey_settings(tmp_path, True), {}))
    await runtime.start()
    try:
        runtime.service.login(AGENT)
        fake = FakeAsterisk(runtime.agi_port)
        ended = await talk(fake, "1795609297.21")
        assert ended[-2:] == ["SET VARIABLE ACD_RESULT ended", "SET VARIABLE ACD_SURVEY 1"]
        commands = await survey(fake, "1795609297.21", "4")
        assert re.match(r"GET DATA acd/ru/survey_question \d+ 1", commands[0])
        assert commands[1].startswith("STREAM FILE acd/ru/survey_thanks")
        assert stored(runtime, "1795609297.21") == ("answered", CALLER, None, 4)
        assert runtime.call_path.survey.answered == 1
        # Once per call: a second run of the script for the same call asks nothing.
        assert await survey(fake, "1795609297.21", "1") == []
        assert stored(runtime, "1795609297.21")[3] == 4
        assert runtime.wallboard is not None
        assert runtime.wallboard.snapshot()["survey_today"] == {
            "answers": 1, "average": 4.0, "target": 4.75}
    finally:
        await runtime.stop()


async def test_the_wallboard_survey_average_survives_a_restart(tmp_path: Path) -> None:
    """A restarted service shows today's survey answers from the records on the wallboard,
    and counts a second call from the same number as a repeat (the records of the last
    7 days are read at start)."""
    settings = load_settings(survey_settings(tmp_path, True), {})
    runtime = Runtime(settings)
    await runtime.start()
    try:
        runtime.service.login(AGENT)
        fake = FakeAsterisk(runtime.agi_port)
        await talk(fake, "1795609297.24")
        await survey(fake, "1795609297.24", "2")
    finally:
        await runtime.stop()
    again = Runtime(settings)
    await again.start()
    try:
        assert again.wallboard is not None
        assert again.wallboard.snapshot()["survey_today"] == {
            "answers": 1, "average": 2.0, "target": 4.75}
        again.service.ready(AGENT)  # restored in wrap-up
        await talk(FakeAsterisk(again.agi_port), "1795609297.25")
        get = again.registry.get_sample_value
        assert get("acd_calls_identified_total", {"queue": "tech"}) == 1
        assert get("acd_repeat_calls_total", {"queue": "tech", "window": "24h"}) == 1
    finally:
        await again.stop()


async def test_no_answer_and_unoffered_calls_store_nothing(tmp_path: Path) -> None:
    """A caller who presses nothing leaves no score; a call never offered the survey (an
    unknown id) is refused without a prompt."""
    runtime = Runtime(load_settings(survey_settings(tmp_path, True), {}))
    await runtime.start()
    try:
        runtime.service.login(AGENT)
        fake = FakeAsterisk(runtime.agi_port)
        await talk(fake, "1795609297.22")
        commands = await survey(fake, "1795609297.22", None)
        assert commands and all(c.startswith("GET DATA") or "ACD_RESULT" in c
                                or "ACD_REASON" in c for c in commands)
        assert stored(runtime, "1795609297.22") == ("answered", CALLER, None, None)
        assert await survey(fake, "1795609297.99", "5") == []
    finally:
        await runtime.stop()


async def test_without_the_setting_there_is_no_survey(tmp_path: Path) -> None:
    """With ``survey.enabled`` false (the default) the talk ends as before: no ACD_SURVEY."""
    runtime = Runtime(load_settings(survey_settings(tmp_path, False), {}))
    await runtime.start()
    try:
        runtime.service.login(AGENT)
        fake = FakeAsterisk(runtime.agi_port)
        ended = await talk(fake, "1795609297.23")
        assert ended == ["SET VARIABLE ACD_RESULT ended"]
        assert await survey(fake, "1795609297.23", "5") == []
        assert stored(runtime, "1795609297.23") == ("answered", CALLER, None, None)
    finally:
        await runtime.stop()


async def test_ari_moves_the_caller_to_the_survey_when_the_agent_hangs_up(
        tmp_path: Path) -> None:
    """Over ARI the agent's hang-up does not hang the caller up: the survey asks, the caller
    presses 5, the score and the caller's number are on the record, then the caller is hung
    up and no bridge is left."""
    async with Rig() as rig:
        records = CallRecords(open_database(tmp_path / "acd.sqlite3"))
        rig.service.observe(records)
        rig.app.records = records
        rig.app.survey_flow = "survey"
        rig.service.login(AGENT)
        call_id = await rig.to_queue()
        await eventually(lambda: rig.talking(call_id), what="caller and agent bridged")
        leg = rig.leg_of(call_id)
        assert leg is not None
        rig.fake.hangup(leg)
        await eventually(lambda: rig.prompt_started(call_id, "survey_question"),
                         what="survey question")
        assert call_id in rig.fake.channels and rig.ended(call_id) is not None
        await rig.fake.send_dtmf(call_id, "5")
        await eventually(lambda: call_id not in rig.fake.channels, what="caller hung up")
        assert rig.prompt_started(call_id, "survey_thanks")
        # The flow hangs up as it ends; the score is stored right after.
        await eventually(lambda: rig.app.surveys_answered == 1, what="score stored")
        row = records.db.execute("SELECT outcome, caller, survey_score FROM calls"
                                 " WHERE call_id = ?", (call_id,)).fetchone()
        assert tuple(row) == ("answered", RU_CALLER, 5)
        await eventually(lambda: not rig.fake.bridges, what="bridges destroyed")


async def test_ari_without_a_survey_hangs_the_caller_up_as_before(tmp_path: Path) -> None:
    """With no survey flow set, the caller is hung up after the agent and hears no survey;
    the record still carries the caller's number."""
    async with Rig() as rig:
        records = CallRecords(open_database(tmp_path / "acd.sqlite3"))
        rig.service.observe(records)
        rig.app.records = records
        rig.service.login(AGENT)
        call_id = await rig.to_queue()
        await eventually(lambda: rig.talking(call_id))
        rig.fake.hangup(rig.leg_of(call_id) or "")
        await eventually(lambda: call_id not in rig.fake.channels, what="caller hung up")
        assert not rig.prompt_started(call_id, "survey_question")
        row = records.db.execute("SELECT caller, survey_score FROM calls").fetchone()
        assert tuple(row) == (RU_CALLER, None)
