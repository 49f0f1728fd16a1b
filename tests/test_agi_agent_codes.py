"""Agent feature codes (*51 login, *52 logout, *53<n> pause, *54 ready) over FastAGI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from acd.asterisk.agi.agent_codes import AgentCodes
from acd.asterisk.agi.route import CallPath
from acd.asterisk.agi.server import FastAgiServer
from acd.config.load import LoadedCenter, load_center
from acd.core.model import AgentState
from acd.runtime.ivrsetup import load_ivr
from acd.runtime.router_service import RouterService
from acd.service.reload import ObserverGate, rebuild
from acd.testing.fake_agi import FakeAsterisk, environment_block

ROOT = Path(__file__).resolve().parents[1]
CENTER = ROOT / "config" / "center.yaml"
PHONE = "PJSIP/1001-0000002a"  # msk-tech-ru-001's desk phone
AGENT = "msk-tech-ru-001"


@pytest.fixture(scope="module")
def center() -> LoadedCenter:
    return load_center(ROOT / "config" / "center.yaml")


@pytest.fixture
async def served(center: LoadedCenter) -> AsyncIterator[tuple[RouterService, FakeAsterisk]]:
    service = RouterService(center)
    path = CallPath(service, load_ivr(center, ROOT / "config" / "ivr"))
    server = FastAgiServer(path.handler_for, port=0)
    await server.start()
    yield service, FakeAsterisk(server.port)
    await server.close(grace=0.5)


async def dial_code(fake: FakeAsterisk, *args: str, channel: str = PHONE) -> list[str]:
    """Run the ``agent`` script as the dialplan does for a feature code; the commands sent."""
    call = await fake.connect()
    await call.send_environment(environment_block("agent", args=args, channel=channel,
                                                  extension="*51", callerid="1001"))
    sent = []
    while (command := await call.read_command(5.0)) is not None:
        sent.append(command)
        await call.reply("200 result=1")
    await call.close()
    return sent


async def test_login_then_double_login_is_a_prompt_not_a_crash(
        served: tuple[RouterService, FakeAsterisk]) -> None:
    """*51 logs the phone's agent in; a second *51 plays 'already logged in' and changes nothing."""
    service, fake = served
    assert await dial_code(fake, "login") == [
        "SET VARIABLE ACD_AGENT_RESULT ok", 'STREAM FILE agent-loginok ""']
    assert service.router.agent_state(AGENT) is AgentState.READY
    assert await dial_code(fake, "login") == [
        "SET VARIABLE ACD_AGENT_RESULT already_logged_in", 'STREAM FILE agent-alreadyon ""']
    assert service.router.agent_state(AGENT) is AgentState.READY


async def test_pause_with_numbered_reason_ready_and_logout(
        served: tuple[RouterService, FakeAsterisk]) -> None:
    """*532 pauses with the second configured reason, *54 makes ready, *52 logs out."""
    service, fake = served
    await dial_code(fake, "login")
    assert (await dial_code(fake, "pause", "2"))[0] == "SET VARIABLE ACD_AGENT_RESULT ok"
    snapshot = {a.agent_id: a for a in service.router.agent_snapshot()}
    assert snapshot[AGENT].state is AgentState.PAUSED
    assert snapshot[AGENT].reason == service.center.config.pause_reasons[1]
    assert (await dial_code(fake, "ready"))[0] == "SET VARIABLE ACD_AGENT_RESULT ok"
    assert service.router.agent_state(AGENT) is AgentState.READY
    assert await dial_code(fake, "logout") == [
        "SET VARIABLE ACD_AGENT_RESULT ok", 'STREAM FILE agent-loggedoff ""']
    assert service.router.agent_state(AGENT) is AgentState.LOGGED_OUT


async def test_refusals_are_named(served: tuple[RouterService, FakeAsterisk]) -> None:
    """Bad pause number, not logged in, unknown phone and unknown action each get a result."""
    service, fake = served
    assert (await dial_code(fake, "pause", "1"))[0] == \
        "SET VARIABLE ACD_AGENT_RESULT not_logged_in"
    await dial_code(fake, "login")
    assert (await dial_code(fake, "pause", "99"))[0] == "SET VARIABLE ACD_AGENT_RESULT bad_reason"
    assert service.router.agent_state(AGENT) is AgentState.READY
    assert await dial_code(fake, "login", channel="PJSIP/9999-00000001") == [
        "SET VARIABLE ACD_AGENT_RESULT unknown_agent", 'STREAM FILE agent-incorrect ""']
    assert (await dial_code(fake, "reboot"))[0] == "SET VARIABLE ACD_AGENT_RESULT unknown_action"


def test_device_lookup_uses_the_channel_not_the_caller_id(center: LoadedCenter) -> None:
    """The agent is found from the authenticated channel name; pause numbers are 1-based."""
    codes = AgentCodes(RouterService(center))
    assert codes.agent_for_channel("PJSIP/1001-0000002a") == AGENT
    assert codes.agent_for_channel("PJSIP/1001") == AGENT
    assert codes.agent_for_channel('PJSIP/"1001-x') is None
    reasons = center.config.pause_reasons
    assert codes.pause_reason("1") == reasons[0] and codes.pause_reason("") == reasons[0]
    assert codes.pause_reason("0") is None and codes.pause_reason("x") is None


# ---------------------------------------- agent codes after a reload


def _reordered_center(tmp_path: Path) -> Path:
    text = CENTER.read_text(encoding="utf-8")
    old = "pause_reasons: [break, lunch, training, meeting, coaching, technical, rona]"
    assert old in text
    path = tmp_path / "center.yaml"
    path.write_text(text.replace(
        old, "pause_reasons: [lunch, break, training, meeting, coaching, technical, rona]"),
        encoding="utf-8")
    return path


async def test_pause_codes_follow_the_reloaded_pause_reasons(tmp_path: Path) -> None:
    """After a reload that reorders pause_reasons, ``*531`` pauses with the new first reason."""
    center = load_center(CENTER)
    service = RouterService(center)
    path = CallPath(service, load_ivr(center, ROOT / "config" / "ivr"))
    rebuild(service, load_center(_reordered_center(tmp_path)), {}, ObserverGate(),
            lambda _agent: None)
    assert path.agents.apply(PHONE, "login") == ("ok", "agent-loginok")
    assert path.agents.apply(PHONE, "pause", "1")[0] == "ok"
    reasons = {a.agent_id: a.reason for a in service.router.agent_snapshot()}
    assert reasons[AGENT] == "lunch"
    service.close()
