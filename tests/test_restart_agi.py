"""Restarts in FastAGI mode: calls in Dial() survive the engine and report to the next one.

The fake Asterisk plays the dialplan's side (``acd.testing.fake_agi.DialInProgress``): a call
in ``Dial()`` lives in Asterisk, so its later ``answered``/``dialresult``/``ended`` scripts
reach the restarted engine with the channel variables the first engine set. A crash is
modelled by closing the observer gate before stopping (nothing more reaches the database, as
after ``kill -9``); a SIGTERM is the ordinary stop.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_ami_callbacks import SECRET as AMI_SECRET
from test_ami_callbacks import USER as AMI_USER
from test_ami_callbacks import FakeAmi
from test_serve import ivr_reply
from test_serve import settings_file as serve_settings

from acd.asterisk.ami import AmiChannelProbe, AmiTarget
from acd.config.load import load_center
from acd.config.policy import center_policy
from acd.core.model import (
    AgentAlreadyLoggedIn,
    AgentState,
    CallEnded,
    CallOffered,
    CallState,
    CancelOffer,
    DuplicateCall,
    Outcome,
    Output,
)
from acd.core.router import Router
from acd.service.app import Runtime
from acd.service.settings import load_settings
from acd.service.state import RestartBounds
from acd.testing.clock import ManualClock
from acd.testing.fake_agi import (
    DialInProgress,
    FakeAsterisk,
    FakeChannels,
    environment_block,
    variables_set,
)

ROOT = Path(__file__).resolve().parents[1]
CENTER = load_center(ROOT / "config" / "center.yaml")
TALKER, RINGER, WRAPPER, SPARE = ("msk-tech-ru-001", "msk-tech-ru-002", "msk-tech-ru-003",
                                  "msk-tech-ru-004")


def settings_file(tmp_path: Path) -> Path:
    """Settings on ephemeral ports, records in ``tmp_path`` (kept across restarts)."""
    return serve_settings(tmp_path, grace_s=0.2)


async def route_to_dial(fake: FakeAsterisk, uniqueid: str,
                        channels: FakeChannels) -> DialInProgress:
    """A call through the IVR and the queue until the engine sets the dial variables."""
    call = await fake.connect()
    await call.send_environment(environment_block("route", args=("100",), uniqueid=uniqueid))
    variables: dict[str, str] = {}
    while (command := await call.read_command(10.0)) is not None:
        variables.update(variables_set(command))
        await call.reply(ivr_reply(command))
    await call.close()
    assert variables.get("ACD_TARGET"), variables
    return DialInProgress(uniqueid, variables["ACD_CALL_ID"], variables["ACD_AGENT"], channels)


async def start_holding(fake: FakeAsterisk, uniqueid: str) -> asyncio.Task[list[str]]:
    """A caller on hold; the task ends when the engine lets go of the session."""
    call = await fake.connect()
    await call.send_environment(environment_block("route", args=("100",), uniqueid=uniqueid))
    seen = asyncio.Event()

    async def talk() -> list[str]:
        commands = []
        while (command := await call.read_command(60.0)) is not None:
            commands.append(command)
            if command.startswith("SET MUSIC ON"):
                seen.set()
            await call.reply(ivr_reply(command))
        await call.close()
        seen.set()
        return commands

    task = asyncio.create_task(talk())
    await asyncio.wait_for(seen.wait(), 10.0)
    return task


def offers_to(outputs: list[Output], agents: set[str]) -> list[str]:
    """Calls offered to any of ``agents`` in ``outputs``."""
    return [o.call_id for o in outputs if isinstance(o, CallOffered) and o.agent_id in agents]


def records(runtime: Runtime) -> dict[str, list[tuple[str, str | None, str | None]]]:
    """Call rows by call id: (outcome, agent, overflow reason)."""
    rows: dict[str, list[tuple[str, str | None, str | None]]] = {}
    for call_id, outcome, agent, reason in runtime.db.execute(
            "SELECT call_id, outcome, agent_id, overflow_reason FROM calls"):
        rows.setdefault(call_id, []).append((outcome, agent, reason))
    return rows


async def crash(runtime: Runtime) -> None:
    """The engine dies at once: nothing it would do next reaches the database."""
    runtime.gate.closed = True
    await runtime.stop()


@pytest.mark.parametrize("death", ["kill", "term"])
async def test_restart_with_calls_ringing_talking_wrapping_up_and_held(
        tmp_path: Path, death: str) -> None:
    """After a restart no busy agent is offered a call, the talking and ringing calls end
    with their real outcome and wrap-up, and every call has exactly one record."""
    settings = load_settings(settings_file(tmp_path), {})
    channels = FakeChannels()
    first = Runtime(settings, clock=ManualClock())
    await first.start()
    try:
        s = first.service
        fake = FakeAsterisk(first.agi_port)
        s.login(WRAPPER)
        wrapped = await route_to_dial(fake, "1795609297.10", channels)
        assert wrapped.agent == WRAPPER and await wrapped.answer(fake) == "ok"
        await wrapped.agent_hangs_up(fake)
        s.login(TALKER)
        talking = await route_to_dial(fake, "1795609297.11", channels)
        assert talking.agent == TALKER and await talking.answer(fake) == "ok"
        s.login(RINGER)
        ringing = await route_to_dial(fake, "1795609297.12", channels)
        assert ringing.agent == RINGER
        held = await start_holding(fake, "1795609297.13")
        assert s.router.agent_state(WRAPPER) is AgentState.WRAP_UP
    finally:
        await (crash(first) if death == "kill" else first.stop())
    await asyncio.wait_for(held, 5.0)  # the held caller's session ended: dialplan fallback

    clock = ManualClock()
    second = Runtime(settings, clock=clock)
    await second.start()
    seen: list[Output] = []
    second.service.observe(lambda o, wall: seen.append(o))
    try:
        s = second.service
        router = s.router
        fake = FakeAsterisk(second.agi_port)
        assert router.agent_state(TALKER) is AgentState.ON_CALL
        assert router.call_state(talking.call_id) is CallState.TALKING
        assert router.agent_state(RINGER) is AgentState.RINGING
        assert router.call_state(ringing.call_id) is CallState.RINGING
        assert router.agent_state(WRAPPER) is AgentState.WRAP_UP
        assert router.call_state("1795609297.13") is None
        # A new call waits rather than go to any of the three busy agents.
        newcomer = await start_holding(fake, "1795609297.14")
        assert router.call_state("1795609297.14") is CallState.QUEUED
        # The ringing agent answers after the restart; talk ends on both calls.
        assert await ringing.answer(fake) == "ok"
        assert router.agent_state(RINGER) is AgentState.ON_CALL
        assert (await talking.agent_hangs_up(fake) or {}).get("ACD_RESULT") == "ended"
        assert router.agent_state(TALKER) is AgentState.WRAP_UP
        await ringing.agent_hangs_up(fake)
        assert router.agent_state(RINGER) is AgentState.WRAP_UP
        assert offers_to(seen, {TALKER, RINGER, WRAPPER}) == []
        # Wrap-up ends: the first agent free takes the waiting call, exactly once.
        await clock.advance_and_settle(31.0)
        assert offers_to(seen, {TALKER, RINGER, WRAPPER}) == ["1795609297.14"]
        await asyncio.wait_for(newcomer, 5.0)
        rows = records(second)
        assert rows[talking.call_id] == [("answered", TALKER, None)]
        assert rows[ringing.call_id] == [("answered", RINGER, None)]
        assert rows[wrapped.call_id] == [("answered", WRAPPER, None)]
        # Killed: the fallback took the caller unseen, written at settle; stopped: handed back.
        held_reason = "engine_restart" if death == "kill" else None
        assert rows["1795609297.13"] == [("overflowed", None, held_reason)]
        assert all(len(r) == 1 for r in rows.values())
    finally:
        await second.stop()


async def test_a_restored_ringing_call_keeps_its_place_after_no_answer(tmp_path: Path) -> None:
    """A Dial() that rang out while the engine was down holds the caller again with their
    original arrival, and the next agent free is offered it."""
    settings = load_settings(settings_file(tmp_path), {})
    first = Runtime(settings, clock=ManualClock())
    await first.start()
    try:
        first.service.login(RINGER)
        ringing = await route_to_dial(FakeAsterisk(first.agi_port), "1795609297.21",
                                      FakeChannels())
    finally:
        await crash(first)
    second = Runtime(settings, clock=ManualClock())
    await second.start()
    try:
        s = second.service
        fake = FakeAsterisk(second.agi_port)
        result = asyncio.create_task(ringing.no_answer(fake, reply=ivr_reply))
        for _ in range(100):
            if s.router.call_state(ringing.call_id) is CallState.QUEUED:
                break
            await asyncio.sleep(0.01)
        assert s.router.call_state(ringing.call_id) is CallState.QUEUED
        assert s.router.agent_state(RINGER) is AgentState.PAUSED  # ring-no-answer
        s.login(SPARE)
        variables = await asyncio.wait_for(result, 5.0)
        assert variables is not None and variables["ACD_AGENT"] == SPARE
        assert s.router.call_state(ringing.call_id) is CallState.RINGING
    finally:
        await second.stop()


async def test_a_restored_ring_nobody_reports_is_not_offered_to_anyone_else(
        tmp_path: Path) -> None:
    """A Dial() that ended while no engine listened (its report lost) keeps its agent and is
    offered to no one else; once Asterisk says the caller is gone it ends as abandoned and
    its agent is free."""
    settings = load_settings(settings_file(tmp_path), {})
    channels = FakeChannels()
    first = Runtime(settings, clock=ManualClock())
    await first.start()
    try:
        first.service.login(RINGER)
        ringing = await route_to_dial(FakeAsterisk(first.agi_port), "1795609297.51",
                                      channels)
    finally:
        await crash(first)
    clock = ManualClock()
    second = Runtime(settings, clock=clock)
    await second.start()
    second.restart.probe = channels
    seen: list[Output] = []
    second.service.observe(lambda o, wall: seen.append(o))
    try:
        s = second.service
        s.login(SPARE)
        await clock.advance_and_settle(16.0)  # past the tech queue's ring timeout
        assert s.router.call_state(ringing.call_id) is CallState.RINGING
        assert s.router.agent_state(RINGER) is AgentState.RINGING
        await clock.advance_and_settle(30.0)  # first check: the caller is still there
        assert channels.asked == [ringing.call_id]
        channels.live.discard(ringing.uniqueid)  # the caller leaves the fallback queue
        await clock.advance_and_settle(RestartBounds().check_every_s)
        assert s.router.call_state(ringing.call_id) is None
        assert s.router.agent_state(RINGER) is AgentState.READY
        assert offers_to(seen, {SPARE, RINGER}) == []
        assert records(second)[ringing.call_id] == [("abandoned", None, None)]
    finally:
        await second.stop()


@pytest.mark.parametrize(("reachable", "reason"), [(True, "gone_after_restart"),
                                                    (False, "unknown_after_restart")])
async def test_a_restored_call_nobody_reports_on_is_ended_by_asking_asterisk(
        tmp_path: Path, reachable: bool, reason: str) -> None:
    """A talking call whose end never reaches the engine is ended when Asterisk says its
    channel is gone, or at the talk bound when Asterisk cannot be asked; its agent wraps up."""
    settings = load_settings(settings_file(tmp_path), {})
    channels = FakeChannels(reachable=reachable)
    first = Runtime(settings, clock=ManualClock())
    await first.start()
    try:
        first.service.login(TALKER)
        fake = FakeAsterisk(first.agi_port)
        talking = await route_to_dial(fake, "1795609297.31", channels)
        assert await talking.answer(fake) == "ok"
    finally:
        await crash(first)
    channels.live.discard(talking.uniqueid)  # the call ended while no engine listened
    clock = ManualClock()
    second = Runtime(settings, clock=clock)
    await second.start()
    try:
        board = second.restart
        board.probe = channels
        bounds = RestartBounds()
        router = second.service.router
        await clock.advance_and_settle(bounds.first_check_s + 0.1)
        if reachable:
            assert channels.asked == [talking.call_id]
        else:
            assert router.agent_state(TALKER) is AgentState.ON_CALL  # not guessed over
            await clock.advance_and_settle(bounds.max_talk_s)
        assert router.call_state(talking.call_id) is None
        assert router.agent_state(TALKER) is AgentState.WRAP_UP
        assert board.endings == {talking.call_id: reason}
        assert records(second)[talking.call_id] == [("answered", TALKER, None)]
    finally:
        await second.stop()


# ---------------------------------------------------------------- asking the Manager


@dataclass
class ChannelListingAmi(FakeAmi):
    """The fake Manager, also answering CoreShowChannels with its channels, as Asterisk does:
    a Success response with EventList start, one CoreShowChannel event per channel, then
    CoreShowChannelsComplete, all with the action's ActionID."""

    uniqueids: tuple[str, ...] = ()

    def _reply(self, headers: dict[str, str]) -> str:
        if headers.get("Action") != "CoreShowChannels":
            return super()._reply(headers)
        action_id = headers.get("ActionID", "")
        parts = [f"Response: Success\r\nEventList: start\r\nMessage: Channels will follow\r\n"
                 f"ActionID: {action_id}\r\n\r\n"]
        for uniqueid in self.uniqueids:
            parts.append(f"Event: CoreShowChannel\r\nActionID: {action_id}\r\n"
                         f"Channel: PJSIP/trunk-{uniqueid}\r\nUniqueid: {uniqueid}\r\n"
                         f"Linkedid: {uniqueid}\r\nApplication: Dial\r\n\r\n")
        parts.append(f"Event: CoreShowChannelsComplete\r\nActionID: {action_id}\r\n"
                     f"EventList: Complete\r\nListItems: {len(self.uniqueids)}\r\n\r\n")
        return "".join(parts)


@pytest.mark.filterwarnings(r"ignore::DeprecationWarning:asterisk\.manager")
async def test_the_manager_says_whether_a_restored_call_still_exists() -> None:
    """The AMI probe reads CoreShowChannels: a listed uniqueid exists, an unlisted one does
    not, and a generated call id or a Manager that refuses the login cannot be told."""
    server = ChannelListingAmi(uniqueids=("1795609297.41",))
    await server.start()
    try:
        probe = AmiChannelProbe(AmiTarget("127.0.0.1", server.port, AMI_USER, AMI_SECRET,
                                          connect_timeout_s=1.0))
        assert await probe.channel_exists("1795609297.41") is True
        assert await probe.channel_exists("1795609297.42") is False
        assert await probe.channel_exists("acd-1795609297-3") is None
        assert len(server.named("CoreShowChannels")) == 2  # the generated id was not asked
        server.accept_login = False
        assert await probe.channel_exists("1795609297.41") is None
        probe.close()
    finally:
        await server.stop()


# ---------------------------------------------------------------- the router's entry points


def test_adopt_call_puts_a_call_back_on_a_logged_out_agent_only() -> None:
    """A restored call lands on its agent (ringing with a ring timeout, or talking since its
    answer); a logged-in agent or a call already in the router is refused."""
    router = Router(center_policy(CENTER.config), CENTER.agents)
    router.adopt_call(100.0, "talk", "tech", "ru", "RU", TALKER, arrived_at=40.0,
                      answered_at=60.0)
    router.adopt_call(100.0, "ring", "tech", "ru", "RU", RINGER, arrived_at=90.0)
    assert router.agent_state(TALKER) is AgentState.ON_CALL
    assert router.agent_state(RINGER) is AgentState.RINGING
    with pytest.raises(AgentAlreadyLoggedIn):
        router.adopt_call(101.0, "other", "tech", "ru", "RU", TALKER, arrived_at=100.0)
    with pytest.raises(DuplicateCall):
        router.adopt_call(101.0, "talk", "tech", "ru", "RU", SPARE, arrived_at=100.0)
    out = router.advance(100.0 + 15.0)  # the tech queue's ring timeout
    assert any(isinstance(o, CancelOffer) and o.call_id == "ring" for o in out)
    assert router.call_state("ring") is CallState.QUEUED
    ended = [o for o in router.hangup(200.0, "talk") if isinstance(o, CallEnded)]
    assert ended[0].outcome is Outcome.ANSWERED and ended[0].agent_id == TALKER
    assert (ended[0].wait_s, ended[0].talk_s) == (20.0, 140.0)
    assert router.agent_state(TALKER) is AgentState.WRAP_UP


def test_adopt_wrap_up_keeps_the_agent_out_for_the_rest_of_it() -> None:
    """An agent restored into wrap-up takes no call until its remaining wrap-up is over."""
    router = Router(center_policy(CENTER.config), CENTER.agents)
    router.adopt_wrap_up(0.0, WRAPPER, 10.0)
    router.call_arrived(1.0, "c1", "tech", "ru", "RU")
    assert router.agent_state(WRAPPER) is AgentState.WRAP_UP
    assert router.call_state("c1") is CallState.QUEUED
    out = router.advance(10.0)
    assert any(isinstance(o, CallOffered) and o.agent_id == WRAPPER for o in out)
