"""The Stasis application against the fake ARI server: IVR, hold, offers, talk, faults."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from arikit import REPO, RU_CALLER, Rig, eventually

from acd.asterisk.ari.app import OVERFLOW_CONTEXT
from acd.asterisk.ari.calls import HOLD_PREFIX, TALK_PREFIX, Phase
from acd.asterisk.ari.channel import TRANSFER_CONTEXT
from acd.asterisk.ari.models import parse_event
from acd.core.model import (
    AgentState,
    CallQueued,
    CallRequeued,
    CancelOffer,
    OfferCallback,
    Outcome,
)
from acd.testing.fake_ari import AgentScript

AGENT = "msk-tech-ru-001"
AGENT_EP = "PJSIP/1001"
AGENT2 = "msk-tech-ru-002"
AGENT2_EP = "PJSIP/1002"


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with Rig() as r:
        yield r


def no_bridges(rig: Rig) -> bool:
    return not rig.fake.bridges


async def test_call_goes_ivr_hold_offer_talk_hangup_wrap_up(rig: Rig) -> None:
    """Stasis -> IVR -> hold -> originate -> bridge -> agent hangup -> wrap-up, no bridge left."""
    rig.service.login(AGENT)
    call_id = await rig.to_queue()
    await eventually(lambda: rig.talking(call_id), what="caller and agent bridged")
    queued = [o for o in rig.outputs if isinstance(o, CallQueued)]
    assert queued and queued[0].queue == "tech" and queued[0].language == "ru"
    assert rig.agent_state(AGENT) is AgentState.ON_CALL
    originate = [r for r in rig.fake.requests if r.method == "POST" and r.path == "/channels"]
    assert originate[0].params["endpoint"] == AGENT_EP
    assert originate[0].params["appArgs"] == f"agent,{call_id}"
    assert originate[0].params["timeout"] == "15"
    assert originate[0].params["channelId"].startswith("acd-agent-")
    holds = [r for r in rig.fake.requests if r.path.startswith(f"/bridges/{HOLD_PREFIX}")]
    assert any(r.path.endswith("/moh") for r in holds)
    leg = rig.leg_of(call_id)
    assert leg is not None
    rig.fake.hangup(leg)
    await eventually(lambda: call_id not in rig.fake.channels, what="caller hung up")
    ended = rig.ended(call_id)
    assert ended is not None and ended.outcome is Outcome.ANSWERED
    assert rig.agent_state(AGENT) is AgentState.WRAP_UP
    await eventually(lambda: no_bridges(rig), what="bridges destroyed")
    assert not rig.app.calls and not rig.app.legs


async def test_caller_hangup_in_talk_ends_agent_leg(rig: Rig) -> None:
    """The caller hanging up during the talk hangs up the agent and starts wrap-up."""
    rig.service.login(AGENT)
    call_id = await rig.to_queue()
    await eventually(lambda: rig.talking(call_id))
    leg = rig.leg_of(call_id)
    rig.fake.hangup(call_id)
    await eventually(lambda: leg not in rig.fake.channels, what="agent leg hung up")
    assert rig.agent_state(AGENT) is AgentState.WRAP_UP
    await eventually(lambda: no_bridges(rig))


async def test_ring_no_answer_pauses_agent_and_reoffers(rig: Rig) -> None:
    """An unanswered leg (cause 19) pauses the agent `rona`; the call is offered to the next."""
    rig.fake.script_agent(AGENT_EP, AgentScript(answer_after=None))
    rig.service.login(AGENT)
    call_id = await rig.to_queue()
    await eventually(lambda: rig.agent_state(AGENT) is AgentState.PAUSED, what="rona pause")
    snap = {s.agent_id: s for s in rig.service.router.agent_snapshot()}
    assert snap[AGENT].reason == "rona"
    requeued = [o for o in rig.outputs if isinstance(o, CallRequeued)]
    assert requeued and requeued[0].reason == "no_answer"
    assert rig.app.calls[call_id].phase is Phase.HOLD
    assert any(b.id.startswith(HOLD_PREFIX) and call_id in b.channels
               for b in rig.fake.bridges.values())
    rig.service.login(AGENT2)
    await eventually(lambda: rig.talking(call_id), what="re-offered call bridged")
    assert rig.agent_state(AGENT2) is AgentState.ON_CALL


async def test_router_ring_timeout_withdraws_the_leg() -> None:
    """When the router's ring timer fires first, the engine hangs up the ringing leg."""
    async with Rig(speed=1.0) as rig:  # the fake would ring the whole originate timeout
        rig.fake.script_agent(AGENT_EP, AgentScript(answer_after=None))
        rig.service.login(AGENT)
        call_id = await rig.to_queue()
        await eventually(lambda: rig.leg_of(call_id) in rig.fake.channels, what="ringing")
        leg = rig.leg_of(call_id)
        rig.clock.advance(rig.service.center.config.queues["tech"].ring_timeout_s)
        await eventually(lambda: leg not in rig.fake.channels, what="leg withdrawn")
        assert any(isinstance(o, CancelOffer) and o.reason == "ring_timeout"
                   for o in rig.outputs)
        assert rig.agent_state(AGENT) is AgentState.PAUSED
        assert rig.in_router(call_id)


async def test_busy_agent_is_a_failed_offer(rig: Rig) -> None:
    """A busy agent phone fails the offer with reason busy and the caller stays on hold."""
    rig.fake.script_agent(AGENT_EP, AgentScript(busy=True))
    rig.service.login(AGENT)
    call_id = await rig.to_queue()
    await eventually(lambda: any(isinstance(o, CallRequeued) for o in rig.outputs))
    requeued = [o for o in rig.outputs if isinstance(o, CallRequeued)]
    assert requeued[0].reason == "busy"
    assert rig.in_router(call_id)


async def test_caller_hangup_while_ringing_cancels_the_leg(rig: Rig) -> None:
    """A caller hanging up while the agent rings abandons the call and hangs up the leg."""
    rig.fake.script_agent(AGENT_EP, AgentScript(answer_after=None))
    rig.service.login(AGENT)
    call_id = await rig.to_queue()
    await eventually(lambda: rig.leg_of(call_id) in rig.fake.channels)
    leg = rig.leg_of(call_id)
    rig.fake.hangup(call_id)
    await eventually(lambda: leg not in rig.fake.channels, what="ringing leg hung up")
    ended = rig.ended(call_id)
    assert ended is not None and ended.outcome is Outcome.ABANDONED
    assert rig.agent_state(AGENT) is AgentState.READY
    await eventually(lambda: no_bridges(rig))


async def test_caller_hangup_on_hold_abandons(rig: Rig) -> None:
    """A caller hanging up on hold is an abandon and the holding bridge is destroyed."""
    call_id = await rig.to_queue()
    await eventually(lambda: rig.in_router(call_id), what="queued")
    assert rig.fake.bridges
    rig.fake.hangup(call_id)
    await eventually(lambda: rig.ended(call_id) is not None)
    assert rig.ended(call_id).outcome is Outcome.ABANDONED  # type: ignore[union-attr]
    await eventually(lambda: no_bridges(rig))
    assert not rig.app.calls


async def test_caller_hangup_in_ivr_never_reaches_router(rig: Rig) -> None:
    """A caller who hangs up during the menu is never queued and leaves nothing behind."""
    call_id = rig.fake.inject_call(RU_CALLER, "Olga", ("8800100",))
    await eventually(lambda: rig.prompt_started(call_id, "main_menu"))
    rig.fake.hangup(call_id)
    await eventually(lambda: not rig.app.calls, what="call forgotten")
    await rig.app.idle()
    assert not any(isinstance(o, CallQueued) for o in rig.outputs)
    assert no_bridges(rig)


async def test_ivr_bug_sends_the_caller_back_to_the_dialplan(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unexpected error in the IVR hands the caller to the dialplan, not to silence."""
    async def broken_flow(*_args: object) -> None:
        raise RuntimeError("bug in a flow")

    monkeypatch.setattr("acd.asterisk.ari.inbound.run_flow", broken_flow)
    call_id = rig.fake.inject_call(RU_CALLER, "Olga", ("8800100",))
    await eventually(lambda: any(r.path == f"/channels/{call_id}/continue"
                                 for r in rig.fake.requests), what="continued in the dialplan")
    await eventually(lambda: not rig.app.calls, what="call forgotten")
    assert not any(isinstance(o, CallQueued) for o in rig.outputs)
    assert no_bridges(rig)


NIGHT_MSK = 1_772_496_000.0  # 2026-03-03 03:00 in Moscow: the orders line is closed


async def leave_voicemail(rig: Rig) -> tuple[str, str]:
    """A caller asks for orders at night, picks voicemail and starts speaking."""
    await rig.stop_app()
    await rig.start_app_with_clock(lambda: NIGHT_MSK)
    call_id = rig.fake.inject_call(RU_CALLER, "Olga", ("8800100",))
    await eventually(lambda: rig.prompt_started(call_id, "main_menu"), what="main menu")
    await rig.fake.send_dtmf(call_id, "2")
    await eventually(lambda: rig.prompt_started(call_id, "closed_options"), what="closed")
    await rig.fake.send_dtmf(call_id, "1")
    await eventually(lambda: any(r["target_uri"] == f"channel:{call_id}"
                                 for r in rig.fake.recordings.values()), what="recording")
    name = next(n for n, r in rig.fake.recordings.items()
                if r["target_uri"] == f"channel:{call_id}")
    return call_id, name


async def test_voicemail_ended_by_hanging_up_is_kept(rig: Rig) -> None:
    """Hanging up is how callers end a message: Asterisk reports the recording after the
    hangup, and the message still becomes a callback task."""
    call_id, name = await leave_voicemail(rig)
    rig.fake.hangup(call_id)
    await eventually(lambda: rig.callbacks.tasks, what="callback task")
    (task,) = rig.callbacks.tasks
    assert (task.queue, task.reason, task.recording) == ("orders", "voicemail", name)
    await eventually(lambda: not rig.app.calls and not rig.app._recording_after_hangup)


async def test_voicemail_ended_with_hash_is_kept(rig: Rig) -> None:
    """A message ended with # is thanked for and kept as a callback task."""
    call_id, name = await leave_voicemail(rig)
    rig.fake.finish_recording(name)
    await eventually(lambda: rig.prompt_started(call_id, "voicemail_thanks"), what="thanks")
    await eventually(lambda: rig.callbacks.tasks, what="callback task")
    assert rig.callbacks.tasks[0].recording == name


async def test_barge_in_stops_the_menu_prompt() -> None:
    """A key pressed during the menu prompt stops it (DELETE /playbacks/{our id})."""
    async with Rig(speed=0.5) as rig:  # prompts last 2 s: the key surely comes first
        call_id = await rig.to_queue()
        await eventually(lambda: rig.in_router(call_id), what="queued after barge-in")
        stops = [r for r in rig.fake.requests if r.method == "DELETE"
                 and r.path.startswith("/playbacks/acd-pb-")]
        assert stops and stops[0].status == 204


async def test_overflow_continues_in_the_dialplan(rig: Rig) -> None:
    """The router's Overflow sends the caller to the overflow context and ends the call there."""
    # The jump to max wait also makes the router offer a callback: the overflow waits for the
    # question's end (as every driver of the call machine does), so keep the question short.
    rig.app.callback_timeout_s = 0.1
    call_id = await rig.to_queue()
    await eventually(lambda: rig.in_router(call_id), what="queued")
    rig.clock.advance(rig.service.center.config.queues["tech"].max_wait_s)
    await eventually(lambda: rig.ended(call_id) is not None, what="overflowed")
    assert rig.ended(call_id).outcome is Outcome.OVERFLOWED  # type: ignore[union-attr]
    await eventually(lambda: any(r.path == f"/channels/{call_id}/continue"
                                 for r in rig.fake.requests))
    cont = next(r for r in rig.fake.requests if r.path == f"/channels/{call_id}/continue")
    assert cont.params == {"context": OVERFLOW_CONTEXT, "extension": "voicemail",
                           "priority": "1"}
    await eventually(lambda: no_bridges(rig) and not rig.app.calls)


async def test_callback_offer_on_hold_accepted(rig: Rig) -> None:
    """On OfferCallback the caller hears the question; "1" ends the wait as a stored callback."""
    call_id = await rig.to_queue()
    await eventually(lambda: rig.in_router(call_id))
    asked = rig.prompt_count(call_id, "callback_offer")
    rig.app.calls[call_id].handle_command(OfferCallback(call_id, 300.0))
    await eventually(lambda: rig.prompt_count(call_id, "callback_offer") > asked)
    assert rig.fake.bridges[rig.app.calls[call_id].hold_bridge or ""].moh_class is None
    await rig.fake.send_dtmf(call_id, "1")
    await eventually(lambda: rig.ended(call_id) is not None)
    assert rig.ended(call_id).outcome is Outcome.CALLBACK  # type: ignore[union-attr]
    assert rig.callbacks.tasks[0].number == RU_CALLER
    assert rig.callbacks.tasks[0].reason == "offer"
    await eventually(lambda: call_id not in rig.fake.channels and no_bridges(rig))


async def test_callback_offer_declined_resumes_music(rig: Rig) -> None:
    """Without a key the caller keeps waiting in queue with music on hold again."""
    rig.app.callback_timeout_s = 0.1
    call_id = await rig.to_queue()
    await eventually(lambda: rig.in_router(call_id))
    asked = rig.prompt_count(call_id, "callback_offer")
    rig.app.calls[call_id].handle_command(OfferCallback(call_id, 300.0))
    await eventually(lambda: rig.prompt_count(call_id, "callback_offer") > asked)
    hold = rig.app.calls[call_id].hold_bridge or ""
    await eventually(lambda: rig.fake.bridges[hold].moh_class == "default", what="moh again")
    assert rig.in_router(call_id)
    assert not rig.callbacks.tasks


async def test_rest_5xx_is_retried(rig: Rig) -> None:
    """Two 500s on answering are retried and the call still reaches the queue."""
    rig.fake.fail_next(2, 500)
    call_id = await rig.to_queue()
    await eventually(lambda: rig.in_router(call_id))
    answers = [r for r in rig.fake.requests if r.path == f"/channels/{call_id}/answer"]
    assert [r.status for r in answers] == [500, 500, 204]


async def test_slow_and_timed_out_replies() -> None:
    """A slow reply is waited for; one beyond the request deadline is retried."""
    async with Rig(request_timeout=0.3) as rig:
        rig.fake.delay_next(1, 0.1)
        call_id = rig.fake.inject_call(RU_CALLER, "Olga", ("8800100",))
        await eventually(lambda: rig.prompt_started(call_id, "main_menu"))
        rig.fake.delay_next(1, 0.6)  # the menu prompt's stop times out and is retried
        await rig.menu_to_queue(call_id)
        await eventually(lambda: rig.in_router(call_id), timeout=5)
        assert any(r.status == 200 and r.path == "/bridges" for r in rig.fake.requests)


async def test_persistent_5xx_on_originate_fails_the_offer() -> None:
    """An originate Asterisk keeps refusing is a failed offer; the call stays queued."""
    async with Rig(change_budget_s=0.2) as rig:  # originate is retried for 0.2 s, no longer
        call_id = await rig.to_queue()
        await eventually(lambda: rig.in_router(call_id))
        rig.fake.fail_requests(503, method="POST", path="/channels")
        rig.service.login(AGENT)
        await eventually(lambda: any(isinstance(o, CallRequeued) for o in rig.outputs))
        assert [o.reason for o in rig.outputs if isinstance(o, CallRequeued)] == ["unavailable"]
        assert rig.in_router(call_id)
        assert len(rig.fake.failed("POST", "/channels")) > 1  # retried before giving up


async def test_unknown_and_malformed_events_are_harmless(rig: Rig) -> None:
    """Unknown event types and broken JSON do not disturb a call in progress."""
    rig.service.login(AGENT)
    call_id = rig.fake.inject_call(RU_CALLER, "Olga", ("8800100",))
    rig.fake.send_event({"type": "ChannelTalkingStarted", "channel": {"id": call_id}})
    rig.fake.send_raw("{not json")
    rig.fake.send_event({"type": "ChannelDtmfReceived", "digit": 7})
    await rig.menu_to_queue(call_id)
    await eventually(lambda: rig.talking(call_id))


async def test_reordered_hangup_events_end_the_talk_once(rig: Rig) -> None:
    """The agent's hangup events delivered in reverse still end the call exactly once."""
    rig.service.login(AGENT)
    call_id = await rig.to_queue()
    await eventually(lambda: rig.talking(call_id))
    rig.fake.reorder_next_events(6)
    rig.fake.hangup(rig.leg_of(call_id) or "")
    await eventually(lambda: call_id not in rig.fake.channels)
    await eventually(lambda: no_bridges(rig))
    ended = [o for o in rig.outputs if getattr(o, "call_id", None) == call_id
             and type(o).__name__ == "CallEnded"]
    assert len(ended) == 1 and rig.agent_state(AGENT) is AgentState.WRAP_UP


async def test_two_callers_two_agents_in_parallel(rig: Rig) -> None:
    """Two concurrent calls are each bridged with their own agent and their own bridge."""
    rig.service.login(AGENT)
    rig.service.login(AGENT2)
    first, second = await asyncio.gather(rig.to_queue(), rig.to_queue("+79031234567"))
    await eventually(lambda: rig.talking(first) and rig.talking(second))
    talks = [b for b in rig.fake.bridges.values() if b.id.startswith(TALK_PREFIX)]
    assert len(talks) == 2


def conf_sections(name: str) -> dict[str, list[str]]:
    """An Asterisk .conf file as {section: [non-comment lines]}."""
    sections: dict[str, list[str]] = {}
    current = ""
    for raw in (REPO / "config" / "asterisk" / name).read_text(encoding="utf-8").splitlines():
        line = raw.split(";", 1)[0].strip()
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
            sections[current] = []
        elif line:
            sections.setdefault(current, []).append(line)
    return sections


def test_shipped_asterisk_config_matches_the_app() -> None:
    """The sample configs hand calls to Stasis(acd), offer the app's exits, bind to loopback."""
    dialplan = conf_sections("extensions-stasis.conf")
    assert any("Stasis(acd,${EXTEN})" in line for line in dialplan["acd-stasis-inbound"])
    overflow = " ".join(dialplan[OVERFLOW_CONTEXT])
    assert "exten => voicemail,1" in overflow and "exten => callback,1" in overflow
    assert TRANSFER_CONTEXT in dialplan and "acd-stasis-agents" in dialplan
    http = conf_sections("http.conf")["general"]
    assert "bindaddr = 127.0.0.1" in http and "enabled = yes" in http
    ari = conf_sections("ari.conf")
    assert "type = user" in ari["acd"] and "enabled = yes" in ari["general"]


@pytest.mark.parametrize(
    "name", ["ari-bridge-call.jsonl", "ari-rona-reconnect.jsonl", "ari-dtmf-hold-hangup.jsonl"]
)
async def test_recorded_event_sequences_are_handled(rig: Rig, name: str) -> None:
    """Every event a real Asterisk sent, fed to the app in order, ends with nothing held."""
    path = REPO / "tests" / "recordings" / "asterisk" / name
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    events = [parse_event(r["data"]) for r in rows if r["kind"] == "event"]
    for event in events:
        await rig.app.handle(event)  # REST calls for these foreign ids just fail (404)
        await asyncio.sleep(0)
    await rig.app.idle()
    assert not rig.app.calls and not rig.app.legs
    assert rig.service.router.calls_in_router == 0


# --------------------------------- music after the callback question


async def test_music_comes_back_when_an_offer_made_during_the_callback_question_fails(
) -> None:
    """An offer that arrives while the caller hears the callback question waits for the answer,
    rings with music on hold, and once withdrawn leaves the caller on hold with music."""
    async with Rig() as rig:
        rig.fake.script_agent(AGENT_EP, AgentScript(answer_after=None))
        call_id = await rig.to_queue()
        await eventually(lambda: rig.in_router(call_id))
        call = rig.app.calls[call_id]
        hold = call.hold_bridge or ""
        asked = rig.prompt_count(call_id, "callback_offer")
        call.handle_command(OfferCallback(call_id, 300.0))
        await eventually(lambda: rig.prompt_count(call_id, "callback_offer") > asked)
        rig.service.login(AGENT)  # the router offers the call during the question
        assert call.phase is Phase.HOLD  # the offer waits for the caller's answer
        await rig.fake.send_dtmf(call_id, "2")  # no callback, thanks
        await eventually(lambda: call.phase is Phase.RINGING, what="ringing")
        await eventually(lambda: rig.fake.bridges[hold].moh_class == "default",
                         timeout=1.0, what="music while the agent rings")
        rig.service.pause(AGENT, "break")  # the offer is withdrawn: back on hold
        assert call.phase is Phase.HOLD
        await eventually(lambda: rig.fake.bridges[hold].moh_class == "default",
                         timeout=1.0, what="music on hold again")


# --------------------------------- what the call machine settles for ARI


async def test_callback_accepted_without_a_caller_number_stores_nothing(rig: Rig) -> None:
    """A caller with no number is asked too; "1" ends the wait as a callback, nothing stored."""
    call_id = await rig.to_queue("anonymous")
    await eventually(lambda: rig.in_router(call_id))
    assert rig.app.calls[call_id].machine is not None
    assert rig.app.calls[call_id].machine.number is None  # type: ignore[union-attr]
    asked = rig.prompt_count(call_id, "callback_offer")
    rig.app.calls[call_id].handle_command(OfferCallback(call_id, 300.0))
    await eventually(lambda: rig.prompt_count(call_id, "callback_offer") > asked, what="asked")
    await rig.fake.send_dtmf(call_id, "1")
    await eventually(lambda: rig.ended(call_id) is not None)
    assert rig.ended(call_id).outcome is Outcome.CALLBACK  # type: ignore[union-attr]
    await eventually(lambda: call_id not in rig.fake.channels and no_bridges(rig))
    assert not rig.callbacks.tasks


async def test_overflow_to_callback_stores_the_task_and_continues_in_the_dialplan(
        rig: Rig) -> None:
    """A queue that overflows to a callback stores the caller's task, then the dialplan's
    ``callback`` extension confirms it (as on FastAGI)."""
    rig.app.wall_clock = lambda: 1796720400.0  # a Tuesday noon in Moscow: orders is open
    rig.app.callback_timeout_s = 0.1  # the callback question at the same jump stays short
    call_id = await rig.to_queue(key="2")  # orders
    await eventually(lambda: rig.in_router(call_id), what="queued")
    rig.clock.advance(rig.service.center.config.queues["orders"].max_wait_s)
    await eventually(lambda: rig.ended(call_id) is not None, what="overflowed")
    assert rig.ended(call_id).outcome is Outcome.OVERFLOWED  # type: ignore[union-attr]
    await eventually(lambda: any(r.path == f"/channels/{call_id}/continue"
                                 for r in rig.fake.requests))
    cont = next(r for r in rig.fake.requests if r.path == f"/channels/{call_id}/continue")
    assert cont.params == {"context": OVERFLOW_CONTEXT, "extension": "callback",
                           "priority": "1"}
    assert [(t.queue, t.number, t.reason) for t in rig.callbacks.tasks] == [
        ("orders", RU_CALLER, "offer")]
    await eventually(lambda: no_bridges(rig) and not rig.app.calls)


async def test_answer_for_a_withdrawn_offer_is_hung_up(rig: Rig) -> None:
    """An agent leg entering Stasis after its offer was withdrawn is hung up; the caller holds."""
    rig.fake.script_agent(AGENT_EP, AgentScript(answer_after=None))
    rig.service.login(AGENT)
    call_id = await rig.to_queue()
    await eventually(lambda: rig.leg_of(call_id) in rig.fake.channels, what="ringing")
    leg = rig.leg_of(call_id) or ""
    call = rig.app.calls[call_id]
    rig.fake.agent_answers(leg)  # the agent picks up; the app has not heard of it yet...
    rig.service.pause(AGENT, "break")  # ...when the router withdraws the offer
    await eventually(lambda: leg not in rig.fake.channels, what="stale leg hung up")
    await eventually(lambda: call.phase is Phase.HOLD, what="back on hold")
    assert not rig.talking(call_id)
    assert rig.fake.bridges[call.hold_bridge or ""].moh_class == "default"
    assert rig.in_router(call_id) and rig.agent_state(AGENT) is AgentState.PAUSED
