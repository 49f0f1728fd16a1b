"""The FastAGI call path against a real FastAgiServer, the reference center and a fake Asterisk."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from acd.asterisk.agi import commands
from acd.asterisk.agi.codec import LocalProtocolError
from acd.asterisk.agi.route import CallPath, RouteSettings, agi_handlers
from acd.asterisk.agi.server import FastAgiServer
from acd.config.load import center_from_data, load_center
from acd.core.model import (
    AgentState,
    CallEnded,
    CallState,
    Ignored,
    OfferCallback,
    Outcome,
    Output,
)
from acd.runtime.ivrsetup import IvrSetup, load_ivr
from acd.runtime.router_service import RouterService
from acd.testing.clock import ManualClock
from acd.testing.fake_agi import (
    FakeAsterisk,
    FakeCall,
    environment_block,
    load_transcript,
    variables_set,
)
from ivr.actions import CallbackTask

ROOT = Path(__file__).resolve().parents[1]
CENTER = ROOT / "config" / "center.yaml"
DIALPLAN = ROOT / "config" / "asterisk" / "extensions.conf"
CALLER = "+79161234567"
UNIQUEID = "1795609297.11"
#: The dial variables in one command (a held caller), and with the call id (an agent was free).
DIAL_VARIABLES = "SET VARIABLE ARRAY(ACD_TARGET,ACD_AGENT,ACD_RING_TIMEOUT)"
FIRST_DIAL_VARIABLES = "SET VARIABLE ARRAY(ACD_CALL_ID,ACD_TARGET,ACD_AGENT,ACD_RING_TIMEOUT)"


@dataclass
class CallbackList:
    """A callback sink that keeps tasks in memory."""

    tasks: list[CallbackTask] = field(default_factory=list)

    def add(self, task: CallbackTask) -> None:
        self.tasks.append(task)


@dataclass
class Rig:
    """A router service, the call path, a FastAGI server and a fake Asterisk pointed at it."""

    service: RouterService
    path: CallPath
    server: FastAgiServer
    fake: FakeAsterisk
    callbacks: CallbackList
    outputs: list[Output]
    clock: ManualClock

    def ended(self) -> list[CallEnded]:
        return [o for o in self.outputs if isinstance(o, CallEnded)]


@pytest.fixture(scope="module")
def base_setup() -> IvrSetup:
    return load_ivr(load_center(CENTER), ROOT / "config" / "ivr")


async def make_rig(base: IvrSetup, settings: RouteSettings | None = None) -> Rig:
    clock = ManualClock()
    service = RouterService(base.center, clock)
    callbacks = CallbackList()
    setup = IvrSetup(base.center, base.known, base.flows, None, callbacks)
    outputs: list[Output] = []
    service.observe(lambda o, _w: outputs.append(o))
    path = CallPath(service, setup, settings)
    server = FastAgiServer(path.handler_for, port=0, header_timeout=2.0)
    await server.start()
    return Rig(service, path, server, FakeAsterisk(server.port), callbacks, outputs, clock)


@pytest.fixture
async def rig(base_setup: IvrSetup) -> AsyncIterator[Rig]:
    r = await make_rig(base_setup)
    yield r
    await r.server.close(grace=0.5)
    r.service.close()


def ivr_reply(command: str) -> str:
    """How the caller answers the reference IVR: menu 1 (tech), no callback, prompts play."""
    if command.startswith("STREAM FILE"):
        return "200 result=0 endpos=8000"
    if command.startswith("GET DATA acd/ru/main_menu"):
        return "200 result=1"
    if command.startswith("GET DATA"):
        return "200 result= (timeout)"
    return "200 result=1"


async def start_call(rig: Rig, script: str = "route", *, args: tuple[str, ...] = ("100",),
                     **env: str) -> FakeCall:
    call = await rig.fake.connect()
    env.setdefault("uniqueid", UNIQUEID)
    await call.send_environment(environment_block(script, args=args, **env))  # type: ignore[arg-type]
    return call


async def answer_until(call: FakeCall, stop: str | re.Pattern[str]) -> list[str]:
    """Answer IVR commands until the server sends ``stop`` (left unanswered); all commands."""
    seen: list[str] = []
    while True:
        command = await call.read_command(5.0)
        assert command is not None, f"the server closed before {stop!r}; sent {seen}"
        seen.append(command)
        done = stop.fullmatch(command) if isinstance(stop, re.Pattern) else command == stop
        if done:
            return seen
        await call.reply(ivr_reply(command))


async def expect_all(call: FakeCall, *expected: str) -> None:
    """The next commands are exactly ``expected`` (each answered with success)."""
    for command in expected:
        await call.expect(command, "200 result=1")


async def script(rig: Rig, name: str, *args: str, channel: str | None = None,
                 extension: str = "s") -> list[str]:
    """Run a short re-entry script to completion, answering everything with success."""
    call = await start_call(rig, name, args=args, channel=channel or "PJSIP/trunk-00000001",
                            extension=extension)
    commands: list[str] = []
    while (command := await call.read_command(5.0)) is not None:
        commands.append(command)
        await call.reply("200 result=1")
    await call.close()
    return commands


async def queued_on_hold(rig: Rig, callerid: str = CALLER, uniqueid: str = UNIQUEID
                         ) -> FakeCall:
    """A call through the IVR into the queue, now hearing music on hold."""
    call = await start_call(rig, callerid=callerid, uniqueid=uniqueid)
    await answer_until(call, f"SET VARIABLE ACD_CALL_ID {uniqueid}")
    await call.reply("200 result=1")
    await call.expect("SET MUSIC ON default", "200 result=0")
    return call


async def until(condition: object, timeout: float = 2.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.005)


async def test_call_flows_from_ivr_to_wrap_up(rig: Rig) -> None:
    """Arrival, IVR digits, queue on hold, offer, variables, answered and ended: wrap-up."""
    call = await queued_on_hold(rig, callerid=CALLER)
    assert rig.service.router.call_state(UNIQUEID) is CallState.QUEUED
    # The agent logs in with *51 from their phone: the router offers them the waiting call.
    assert await script(rig, "agent", "login", channel="PJSIP/1001-0000002a") == [
        "SET VARIABLE ACD_AGENT_RESULT ok", "STREAM FILE agent-loginok \"\""]
    await expect_all(call, f"{DIAL_VARIABLES} PJSIP/1001,msk-tech-ru-001,15", "SET MUSIC OFF")
    assert await call.wait_closed(2.0)
    assert rig.service.router.agent_state("msk-tech-ru-001") is AgentState.RINGING
    # Dial's U() subroutine on the agent's channel reports the answer.
    assert await script(rig, "answered", UNIQUEID, "msk-tech-ru-001",
                        channel="PJSIP/1001-0000002b") == ["SET VARIABLE ACD_ANSWER ok"]
    assert rig.service.router.call_state(UNIQUEID) is CallState.TALKING
    # The agent hangs up; Dial returns ANSWER and the dialplan reports the end of talk.
    assert await script(rig, "ended", UNIQUEID, "msk-tech-ru-001") == [
        "SET VARIABLE ACD_RESULT ended"]
    assert rig.service.router.agent_state("msk-tech-ru-001") is AgentState.WRAP_UP
    assert [e.outcome for e in rig.ended()] == [Outcome.ANSWERED]
    # The h extension reports again: the router ignores it, nothing else changes.
    assert await script(rig, "ended", UNIQUEID, extension="h") == []
    assert any(isinstance(o, Ignored) and o.subject == UNIQUEID for o in rig.outputs)
    assert len(rig.ended()) == 1 and not rig.path.calls


async def test_ring_no_answer_reoffers_on_the_next_hold(rig: Rig) -> None:
    """NOANSWER pauses the agent with rona and the same session style offers the next agent."""
    rig.service.login("msk-tech-ru-001")
    rig.service.login("msk-tech-ru-002")
    call = await start_call(rig, callerid=CALLER)
    # The offer was waiting already: no music, the call id with the dial variables.
    await answer_until(call, f"{FIRST_DIAL_VARIABLES} {UNIQUEID},PJSIP/1001,msk-tech-ru-001,15")
    await call.reply("200 result=1")
    assert await call.wait_closed(2.0)
    again = await start_call(rig, "dialresult", args=(UNIQUEID, "NOANSWER", "msk-tech-ru-001"))
    await expect_all(again, f"{DIAL_VARIABLES} PJSIP/1002,msk-tech-ru-002,15")
    assert await again.wait_closed(2.0)
    assert rig.service.router.agent_state("msk-tech-ru-001") is AgentState.PAUSED
    snapshot = {a.agent_id: a for a in rig.service.router.agent_snapshot()}
    assert snapshot["msk-tech-ru-001"].reason == "rona"
    assert rig.service.router.agent_state("msk-tech-ru-002") is AgentState.RINGING


async def test_dial_result_after_the_routers_ring_timeout_is_not_reported_twice(
        rig: Rig) -> None:
    """When the router's ring timer already requeued the call, NOANSWER pauses nobody else."""
    ring_timeout = rig.service.center.config.queues["tech"].ring_timeout_s
    rig.service.login("msk-tech-ru-001")
    rig.service.login("msk-tech-ru-002")
    call = await start_call(rig, callerid=CALLER)
    await answer_until(call, f"{FIRST_DIAL_VARIABLES} {UNIQUEID},PJSIP/1001,msk-tech-ru-001,"
                             f"{ring_timeout:.0f}")
    await call.reply("200 result=1")
    assert await call.wait_closed(2.0)
    # The router's ring timer fires while Asterisk still rings: the next offer waits.
    rig.clock.advance(ring_timeout)
    await until(lambda: rig.service.router.agent_state("msk-tech-ru-002") is AgentState.RINGING)
    again = await start_call(rig, "dialresult", args=(UNIQUEID, "NOANSWER", "msk-tech-ru-001"))
    await expect_all(again, f"{DIAL_VARIABLES} PJSIP/1002,msk-tech-ru-002,{ring_timeout:.0f}")
    assert await again.wait_closed(2.0)
    requeued = [o for o in rig.outputs if type(o).__name__ == "CallRequeued"]
    assert len(requeued) == 1
    assert rig.service.router.agent_state("msk-tech-ru-002") is AgentState.RINGING


async def test_caller_hangup_while_holding_is_an_abandon(rig: Rig) -> None:
    """The out-of-band HANGUP while on hold ends the session and records an abandon."""
    call = await queued_on_hold(rig, callerid=CALLER)
    await call.hangup()
    assert await call.wait_closed(2.0)
    await until(lambda: rig.ended())
    assert [e.outcome for e in rig.ended()] == [Outcome.ABANDONED]
    assert rig.service.router.call_state(UNIQUEID) is None and not rig.path.calls
    # The h extension reports the same call: ignored, still one ending.
    assert await script(rig, "ended", UNIQUEID, extension="h") == []
    assert len(rig.ended()) == 1


async def test_overflow_sets_the_result_for_the_dialplan(rig: Rig) -> None:
    """The queue's max wait overflows the held call to voicemail through ACD_RESULT."""
    tech = rig.service.center.config.queues["tech"]
    call = await queued_on_hold(rig, callerid=CALLER)
    # On the way to the max wait the caller lets the queue's callback offer pass.
    rig.clock.advance(next(s.after_s for s in tech.expansion if s.offer_callback))
    await call.expect("SET MUSIC OFF", "200 result=0")
    await call.expect("GET DATA acd/ru/callback_offer 6000 1", "200 result= (timeout)")
    await call.expect("SET MUSIC ON default", "200 result=0")
    rig.clock.advance(tech.max_wait_s - rig.clock.now())
    await expect_all(call, "SET MUSIC OFF",
                     "SET VARIABLE ARRAY(ACD_QUEUE,ACD_LANGUAGE,ACD_RESULT) tech,ru,voicemail")
    assert await call.wait_closed(2.0)
    assert [e.outcome for e in rig.ended()] == [Outcome.OVERFLOWED]


async def test_callback_offer_accepted_while_holding(rig: Rig) -> None:
    """The router's callback offer is asked with one digit; 1 ends the call as a callback task."""
    call = await queued_on_hold(rig, callerid=CALLER)
    rig.path.calls[UNIQUEID].handle_command(OfferCallback(UNIQUEID, 300.0))
    await call.expect("SET MUSIC OFF", "200 result=0")
    await call.expect("GET DATA acd/ru/callback_offer 6000 1", "200 result=1")
    await expect_all(call, "SET VARIABLE ARRAY(ACD_QUEUE,ACD_LANGUAGE,ACD_RESULT) tech,ru,callback")
    assert await call.wait_closed(2.0)
    assert [e.outcome for e in rig.ended()] == [Outcome.CALLBACK]
    assert [(t.number, t.queue, t.reason) for t in rig.callbacks.tasks] == [
        (CALLER, "tech", "offer")]


async def test_callback_offer_declined_resumes_music(rig: Rig) -> None:
    """Any other key (or none) puts the caller back on music, still queued."""
    call = await queued_on_hold(rig, callerid=CALLER)
    rig.path.calls[UNIQUEID].handle_command(OfferCallback(UNIQUEID, 300.0))
    await call.expect("SET MUSIC OFF", "200 result=0")
    await call.expect("GET DATA acd/ru/callback_offer 6000 1", "200 result= (timeout)")
    await call.expect("SET MUSIC ON default", "200 result=0")
    assert rig.service.router.call_state(UNIQUEID) is CallState.QUEUED
    await call.hangup()
    assert await call.wait_closed(2.0)


async def test_hostile_caller_id_never_reaches_a_command(rig: Rig) -> None:
    """Quotes, a 4 KiB caller id and non-digits stay out of every command; the call queues."""
    hostile = '"; EXEC System(rm -rf /) ;\\' + "Z" * 4096
    name = 'Ива"н \\" SET VARIABLE ACD_TARGET evil'
    call = await start_call(rig, callerid=hostile, calleridname=name,
                            uniqueid='1795609297.12"x')
    commands = await answer_until(call, re.compile(r"SET VARIABLE ACD_CALL_ID acd-\d+-1"))
    await call.reply("200 result=1")
    commands.append(await call.expect("SET MUSIC ON default", "200 result=0"))
    for command in commands:
        assert "EXEC" not in command and "ZZZ" not in command and "evil" not in command
        assert '"x' not in command
    assert rig.service.router.calls_in_router == 1
    await call.hangup()
    assert await call.wait_closed(2.0)


async def test_overloaded_path_turns_calls_away_at_once(base_setup: IvrSetup) -> None:
    """Over max_calls a new call gets no command and a prompt close, so the fallback runs."""
    rig = await make_rig(base_setup, RouteSettings(max_calls=1))
    try:
        first = await queued_on_hold(rig, callerid=CALLER)
        second = await start_call(rig, callerid=CALLER, uniqueid="1795609297.99")
        assert await second.wait_closed(0.5)
        assert second.commands == [] and rig.path.stats.turned_away == 1
        await first.hangup()
        assert await first.wait_closed(2.0)
    finally:
        await rig.server.close(grace=0.5)


async def test_drain_hands_held_callers_back_to_the_dialplan(rig: Rig) -> None:
    """At shutdown a held caller's session ends with no target and the call leaves the router,
    recorded as overflowed (handed back to the dialplan), not as an abandon."""
    call = await queued_on_hold(rig, callerid=CALLER)
    rig.path.drain()
    assert await call.wait_closed(2.0)
    assert rig.service.router.call_state(UNIQUEID) is None
    assert [(e.call_id, e.outcome) for e in rig.ended()] == [(UNIQUEID, Outcome.OVERFLOWED)]
    assert await (await start_call(rig, callerid=CALLER, uniqueid="1.2")).wait_closed(0.5)


async def test_stale_answer_is_refused(rig: Rig) -> None:
    """An answer from an agent whose offer was withdrawn is refused (ACD_ANSWER=refused)."""
    assert await script(rig, "answered", "1795609297.77", "msk-tech-ru-001") == [
        "SET VARIABLE ACD_ANSWER refused"]


async def test_handler_table_and_entry_point() -> None:
    """agi_handlers returns a lookup with every dialplan script and None for others."""
    center = load_center(CENTER)
    lookup = agi_handlers(RouterService(center), load_ivr(center, ROOT / "config" / "ivr"))
    for name in ("route", "answered", "dialresult", "ended", "agent"):
        assert lookup(name) is not None
    assert lookup("hold") is None


# ------------------------------------------------------------------ the shipped dialplan

_LINE_RE = re.compile(r"(exten|same)\s*=>\s*(.*)")


def parse_dialplan(text: str) -> dict[str, dict[str, set[str]]]:
    """Contexts -> extensions -> labels (priority "1" included) of an extensions.conf."""
    contexts: dict[str, dict[str, set[str]]] = {}
    context = ""
    exten = ""
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if line.startswith("[") and line.endswith("]"):
            context = line[1:-1]
            contexts[context] = {}
            continue
        match = _LINE_RE.match(line)
        if not match:
            continue
        kind, rest = match.groups()
        if kind == "exten":
            exten, _, rest = rest.partition(",")
            contexts[context].setdefault(exten, {"1"})
        priority = rest.partition(",")[0]
        label = re.fullmatch(r"n?\((\w+)\)|n|\d+", priority)
        assert label is not None, f"bad priority {priority!r} in {raw!r}"
        if label.group(1):
            contexts[context][exten].add(label.group(1))
    return contexts


def test_dialplan_names_only_known_scripts_and_targets() -> None:
    """Every AGI script in extensions.conf has a handler and every Goto target exists."""
    text = DIALPLAN.read_text(encoding="utf-8")
    contexts = parse_dialplan(text)
    center = load_center(CENTER)
    path = CallPath(RouterService(center), load_ivr(center, ROOT / "config" / "ivr"))
    # Requests go through the [acd-agi] subroutine (the router, then the standby).
    scripts = re.findall(r"(?:AGI\(\$\{ACD_AGI\}/|Gosub\(acd-agi,s,1\()([a-z_]+)", text)
    assert set(scripts) >= {"route", "answered", "dialresult", "ended", "agent"}
    assert set(scripts) <= path.scripts
    assert "acd-answered" in contexts and "s" in contexts["acd-answered"]
    assert re.search(r"U\(acd-answered\^", text)
    targets: list[tuple[str, str]] = []  # (context of the jump, target)
    context = ""
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if line.startswith("["):
            context = line[1:-1]
        for jump in re.findall(r"GotoIf\([^?]*\?([^)]*)\)", line):
            targets += [(context, t) for t in jump.split(":") if t]
        targets += [(context, t) for t in re.findall(r"\bGoto\(([^)]*)\)", line)]
    assert targets
    for origin, target in targets:
        parts = target.split(",")
        if len(parts) == 3:
            ctx, exten, label = parts
        elif len(parts) == 2:
            ctx, (exten, label) = origin, parts
        else:
            ctx, exten, label = origin, "", parts[0]
        if exten:
            assert label in contexts[ctx][exten], f"{target} from [{origin}]"
        else:
            assert any(label in labels for labels in contexts[ctx].values()), target


async def test_hangup_during_the_ivr_never_reaches_the_router(rig: Rig) -> None:
    """A caller who hangs up during the welcome prompt is an IVR abandon, not a queued call."""
    call = await start_call(rig, callerid=CALLER)
    await call.expect('STREAM FILE acd/ru/welcome ""', "HANGUP", "200 result=-1 endpos=1200")
    assert await call.wait_closed(2.0)
    assert rig.service.router.calls_in_router == 0 and not rig.path.calls


async def test_caller_gone_while_the_agent_rings_frees_the_agent(rig: Rig) -> None:
    """The h extension's report during ringing is an abandon and the agent is ready again."""
    rig.service.login("msk-tech-ru-001")
    rig.service.login("msk-tech-ru-002")
    call = await start_call(rig, callerid=CALLER)
    await answer_until(call, f"{FIRST_DIAL_VARIABLES} {UNIQUEID},PJSIP/1001,msk-tech-ru-001,15")
    await call.reply("200 result=1")
    assert await call.wait_closed(2.0)
    assert await script(rig, "ended", UNIQUEID, extension="h") == []
    assert [e.outcome for e in rig.ended()] == [Outcome.ABANDONED]
    assert rig.service.router.agent_state("msk-tech-ru-001") is AgentState.READY


@pytest.mark.parametrize(("template", "target"), [
    ("Local/{ext}@agents/n", "Local/1001@agents/n"),
    ("PJSIP/moscow/sip:{ext}@10.0.0.5:5060", "PJSIP/moscow/sip:1001@10.0.0.5:5060")])
async def test_endpoints_acd_check_accepts_are_dialled(template: str, target: str) -> None:
    """A roster template `acd check` accepts (Local with /n, PJSIP with a SIP URI) is dialled:
    the offer reaches the dialplan instead of pausing the agent `rona`."""
    data = yaml.safe_load(CENTER.read_text(encoding="utf-8"))
    data["agent_groups"]["msk-tech-ru"]["endpoint"] = template
    center = center_from_data(data, str(CENTER))
    r = await make_rig(load_ivr(center, ROOT / "config" / "ivr"))
    try:
        r.service.login("msk-tech-ru-001")
        call = await start_call(r, callerid=CALLER)
        sent = await answer_until(
            call, f'{FIRST_DIAL_VARIABLES} "{UNIQUEID},{target},msk-tech-ru-001,15"')
        await call.reply("200 result=1")
        assert await call.wait_closed(2.0)
        assert variables_set(sent[-1]) == {"ACD_CALL_ID": UNIQUEID, "ACD_TARGET": target,
                                           "ACD_AGENT": "msk-tech-ru-001",
                                           "ACD_RING_TIMEOUT": "15"}
        assert r.service.router.agent_state("msk-tech-ru-001") is AgentState.RINGING
    finally:
        await r.server.close(grace=0.5)
        r.service.close()


UA_CALLER = "+380441234567"


async def ivr_to_queue(call: FakeCall, press: dict[str, str] | None = None) -> list[str]:
    """Answer the IVR (``press``: replies for GET DATA prompts) up to the command that sets
    ACD_CALL_ID; that command and the rest up to the music on hold, answered with success."""
    press = press or {}
    while True:
        command = await call.read_command(5.0)
        assert command is not None
        if "ACD_CALL_ID" in variables_set(command):
            break
        prompt = command.split(" ")[2] if command.startswith("GET DATA") else ""
        await call.reply(f"200 result={press[prompt]}" if prompt in press
                         else ivr_reply(command))
    await call.reply("200 result=1")
    after: list[str] = [command]
    while (command := await call.read_command(5.0)) is not None:
        after.append(command)
        await call.reply("200 result=0" if command.startswith("SET MUSIC") else "200 result=1")
        if command.startswith("SET MUSIC ON"):
            return after
    raise AssertionError(f"the session closed before music on hold; sent {after}")


async def test_channel_language_follows_the_callers_country(rig: Rig) -> None:
    """A Ukrainian caller on an English channel: after queueing, CHANNEL(language) is uk, so
    VoiceMail and the fallback queue speak Ukrainian; then music on hold as before."""
    call = await start_call(rig, callerid=UA_CALLER, language="en")
    assert await ivr_to_queue(call) == [
        f"SET VARIABLE ARRAY(ACD_CALL_ID,CHANNEL(language)) {UNIQUEID},uk",
        "SET MUSIC ON default"]
    assert rig.path.calls[UNIQUEID].language == "uk"
    await call.hangup()
    assert await call.wait_closed(2.0)


async def test_channel_language_follows_the_ivr_choice(rig: Rig) -> None:
    """A Ukrainian caller who presses 9 for Russian gets CHANNEL(language) ru, not uk."""
    call = await start_call(rig, callerid=UA_CALLER, language="en")
    sent = await ivr_to_queue(call, {"acd/uk/choose_russian": "9"})
    assert sent == [f"SET VARIABLE ARRAY(ACD_CALL_ID,CHANNEL(language)) {UNIQUEID},ru",
                    "SET MUSIC ON default"]
    assert rig.path.calls[UNIQUEID].language == "ru"
    await call.hangup()
    assert await call.wait_closed(2.0)


async def test_channel_already_in_the_calls_language_costs_no_command(rig: Rig) -> None:
    """A Russian caller on a channel whose language is ru already: no extra round trip."""
    call = await start_call(rig, callerid=CALLER, language="ru")
    assert await ivr_to_queue(call) == [f"SET VARIABLE ACD_CALL_ID {UNIQUEID}",
                                        "SET MUSIC ON default"]
    await call.hangup()
    assert await call.wait_closed(2.0)


@pytest.mark.parametrize("bad", ["../../etc/passwd", "ru fr", "", "ru\nHANGUP", "${X}", "9"])
def test_language_command_takes_only_language_codes(bad: str) -> None:
    """The CHANNEL(language) helper refuses anything but a language code (never a path)."""
    assert commands.set_language("en_GB") == b"SET VARIABLE CHANNEL(language) en_GB\n"
    with pytest.raises(LocalProtocolError):
        commands.set_language(bad)


# ------------------------------------------------------------------ round trips per routed call

async def test_free_agent_takes_the_call_in_one_command_after_the_ivr(rig: Rig) -> None:
    """With an agent free at once, the session sends exactly one command after the IVR (the
    call id and the dial variables in one SET VARIABLE ARRAY, no music) and closes."""
    rig.service.login("msk-tech-ru-001")
    call = await start_call(rig, callerid=CALLER)
    sent = await answer_until(call, re.compile(r"SET VARIABLE .*"))
    await call.reply("200 result=1")
    assert await call.wait_closed(2.0)
    assert sent == ['STREAM FILE acd/ru/welcome ""', "GET DATA acd/ru/main_menu 5000 1",
                    f"{FIRST_DIAL_VARIABLES} {UNIQUEID},PJSIP/1001,msk-tech-ru-001,15"]
    assert variables_set(sent[-1]) == {"ACD_CALL_ID": UNIQUEID, "ACD_TARGET": "PJSIP/1001",
                                       "ACD_AGENT": "msk-tech-ru-001",
                                       "ACD_RING_TIMEOUT": "15"}
    assert rig.service.router.agent_state("msk-tech-ru-001") is AgentState.RINGING
    assert rig.path.stats.offers_delivered == 1


async def test_free_agent_and_channel_language_share_the_one_command(rig: Rig) -> None:
    """A Ukrainian caller on an English channel with a free agent: CHANNEL(language) goes in
    the same single command as the call id and the dial variables."""
    rig.service.login("kyi-tech-uk-001")
    call = await start_call(rig, callerid=UA_CALLER, language="en")
    sent = await answer_until(call, re.compile(r"SET VARIABLE .*"))
    await call.reply("200 result=1")
    assert await call.wait_closed(2.0)
    assert all(c.startswith(("STREAM FILE", "GET DATA")) for c in sent[:-1])
    assert sent[-1] == ("SET VARIABLE ARRAY(ACD_CALL_ID,CHANNEL(language),ACD_TARGET,"
                        f"ACD_AGENT,ACD_RING_TIMEOUT) {UNIQUEID},uk,PJSIP/2001,"
                        "kyi-tech-uk-001,15")
    assert variables_set(sent[-1])["CHANNEL(language)"] == "uk"


async def test_held_caller_gets_the_agent_in_two_commands(rig: Rig) -> None:
    """A held caller's whole session after the IVR is: call id, music on, then (agent ready)
    the dial variables in one command and music off, and the session closes."""
    call = await start_call(rig, callerid=CALLER)
    sent = await answer_until(call, re.compile(r"SET VARIABLE .*"))
    await call.reply("200 result=1")
    await call.expect("SET MUSIC ON default", "200 result=0")
    rig.service.login("msk-tech-ru-001")
    await expect_all(call, f"{DIAL_VARIABLES} PJSIP/1001,msk-tech-ru-001,15", "SET MUSIC OFF")
    assert await call.wait_closed(2.0)
    assert call.commands[len(sent) - 1:] == [
        f"SET VARIABLE ACD_CALL_ID {UNIQUEID}", "SET MUSIC ON default",
        f"{DIAL_VARIABLES} PJSIP/1001,msk-tech-ru-001,15", "SET MUSIC OFF"]


@pytest.mark.parametrize("pairs", [
    [("ACD_TARGET", "PJSIP/1001"), ("ACD_AGENT", "msk-tech-ru-001"), ("ACD_RING_TIMEOUT", "15")],
    [("ACD_CALL_ID", "acd-1795609297-3"), ("CHANNEL(language)", "en_GB"),
     ("ACD_TARGET", "PJSIP/kyiv/sip:1001@[2001:db8::5]:5060;transport=tcp"),
     ("ACD_AGENT", "kyi.tech_uk-001"), ("ACD_RING_TIMEOUT", "20")],
    [("ACD_QUEUE", "tech"), ("ACD_LANGUAGE", "ru"), ("ACD_RESULT", "")],
    [("ACD_TARGET", "Local/1001@agents/n")],
])
def test_set_variables_sets_exactly_the_pairs_in_asterisk(pairs: list[tuple[str, str]]) -> None:
    """One command sets every pair, as Asterisk's SET VARIABLE and ARRAY() read it (the fake's
    model of res_agi's parse_args and app.c's argument splitting)."""
    line = commands.set_variables(pairs).decode()
    assert line.endswith("\n") and line.count("\n") == 1
    assert variables_set(line[:-1]) == dict(pairs)
    assert line.startswith("SET VARIABLE ARRAY(" if len(pairs) > 1 else "SET VARIABLE ACD_")


@pytest.mark.parametrize("value", ["a,b", 'say "hi"', "back\\slash", "Dial(x)", "x(", "[::1",
                                   "]["])
def test_set_variables_refuses_values_array_would_split(value: str) -> None:
    """A value holding ARRAY()'s separator, quotes, escapes, parentheses or unbalanced brackets
    is refused rather than set the wrong variables."""
    with pytest.raises(LocalProtocolError):
        commands.set_variables([("ACD_A", "1"), ("ACD_B", value)])


@pytest.mark.parametrize("name", ["ACD X", "FOO(a,b)", "1ACD", "ARRAY(A,B)", ""])
def test_set_variables_refuses_names_array_cannot_set(name: str) -> None:
    """Only variable names and argument-free-of-commas functions go into ARRAY()."""
    with pytest.raises(LocalProtocolError):
        commands.set_variables([("ACD_A", "1"), (name, "2")])
    with pytest.raises(LocalProtocolError):
        commands.set_variables([])


def test_fake_reads_set_variable_as_the_recorded_asterisk_did() -> None:
    """The fake's model of SET VARIABLE yields the value a real Asterisk 22 read back after
    the recorded quoted, escaped SET VARIABLE (agi-basic.jsonl)."""
    rows = load_transcript(ROOT / "tests" / "recordings" / "asterisk" / "agi-basic.jsonl")
    texts = [(r.direction, r.text) for r in rows]
    set_at = next(i for i, (d, t) in enumerate(texts)
                  if d == ">" and str(t).startswith("SET VARIABLE ACD_NOTE "))
    get_at = texts.index((">", "GET VARIABLE ACD_NOTE"))
    reply = str(texts[get_at + 1][1])
    read_back = re.fullmatch(r"200 result=1 \((.*)\)\n", reply)
    assert read_back is not None
    assert variables_set(str(texts[set_at][1])) == {"ACD_NOTE": read_back.group(1)}


async def test_free_agent_call_lost_during_its_one_command_frees_the_agent(rig: Rig) -> None:
    """If Asterisk goes away while the one command is in flight, the call ends as abandoned
    and the agent it rang is ready again (the dialplan can never report on it)."""
    rig.service.login("msk-tech-ru-001")
    call = await start_call(rig, callerid=CALLER)
    await answer_until(call, f"{FIRST_DIAL_VARIABLES} {UNIQUEID},PJSIP/1001,msk-tech-ru-001,15")
    await call.close()
    await until(lambda: rig.ended())
    assert [e.outcome for e in rig.ended()] == [Outcome.ABANDONED]
    assert rig.service.router.agent_state("msk-tech-ru-001") is AgentState.READY
    assert not rig.path.calls
