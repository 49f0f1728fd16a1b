"""Reconnect and restart: the engine rebuilds its calls from what Asterisk holds."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from arikit import Rig, eventually

from acd.asterisk.ari.calls import HOLD_PREFIX, QUEUED_VAR, TALK_PREFIX, Phase, QueueSlot
from acd.asterisk.ari.models import Application, Bridge, Channel, DialplanLocation
from acd.asterisk.ari.reconcile import Snapshot, epoch_of, plan_adoption
from acd.core.model import AgentState, CallAnswered, CallQueued, CallRequeued, Outcome
from acd.testing.fake_ari import AgentScript

AGENT = "msk-tech-ru-001"
AGENT_EP = "PJSIP/1001"
AGENT2 = "msk-tech-ru-002"


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with Rig() as r:
        yield r


async def outage(rig: Rig) -> None:
    """Drop the event websocket and keep refusing it until `restore`."""
    await rig.fake.drop_websocket(refuse_next=1_000_000)


async def restore(rig: Rig, count: int = 1) -> None:
    """Let the client back in and wait for the app to reconcile."""
    rig.fake.accept_websocket()
    await eventually(lambda: rig.app.reconciliations >= count, what="reconciled")
    await rig.app.idle()


# ---------------------------------------------------------------- pure parts


def chan(cid: str, created: str = "2026-01-01T10:00:00.000+0000") -> Channel:
    return Channel(cid, f"PJSIP/x-{cid}", "Up", creationtime=created,
                   dialplan=DialplanLocation("stasis", "8800100", 1, "Stasis", "acd,8800100"))


def test_queue_slot_round_trip_and_garbage() -> None:
    """The ACD_QUEUED value reads back as written; anything else is refused."""
    slot = QueueSlot("tech", "ru", "RU", 5, "cust|42", 1700000000.5)
    back = QueueSlot.decode(slot.encode())
    assert back == QueueSlot("tech", "ru", "RU", 5, "cust_42", 1700000000.5)
    assert QueueSlot.decode("tech|ru") is None
    assert QueueSlot.decode("tech|ru|RU|x|c|1") is None


def test_epoch_of_reads_ari_timestamps() -> None:
    """ARI creation times become epoch seconds; junk gives None."""
    assert epoch_of("1970-01-01T00:01:00.500+0000") == 60.5
    assert epoch_of("yesterday") is None


def test_plan_sorts_what_a_cold_start_finds() -> None:
    """Queued callers re-queue oldest first; talks are kept; leftovers are removed."""
    waiting_late = chan("c-late", "2026-01-01T10:00:05.000+0000")
    waiting_early = chan("c-early", "2026-01-01T10:00:01.000+0000")
    in_ivr = chan("c-ivr")
    talking = chan("c-talk")
    leg = chan("acd-agent-c-talk-3")
    ringing_leg = chan("acd-agent-c-early-9")
    snap = Snapshot.of(
        Application("acd", ("c-late", "c-early", "c-ivr", "c-talk", "acd-agent-c-talk-3")),
        [waiting_late, waiting_early, in_ivr, talking, leg, ringing_leg],
        [
            Bridge("acd-hold-c-late-1", "holding", channels=("c-late",)),
            Bridge("acd-talk-c-talk-2", "mixing", channels=("c-talk", "acd-agent-c-talk-3")),
            Bridge("acd-hold-gone-1", "holding"),
            Bridge("someone-elses", "mixing"),
        ],
    )
    queued = {"c-late": QueueSlot("tech", "ru", "RU").encode(),
              "c-early": QueueSlot("orders", "uk", "UA").encode(), "c-ivr": None}
    plan = plan_adoption(snap, queued)
    assert [r.channel.id for r in plan.requeue] == ["c-early", "c-late"]
    assert plan.requeue[1].hold_bridge == "acd-hold-c-late-1"
    assert plan.requeue[0].hold_bridge is None
    assert [c.id for c in plan.restart_ivr] == ["c-ivr"]
    assert [(t.caller.id, t.agent_leg) for t in plan.talks] == [("c-talk", "acd-agent-c-talk-3")]
    assert plan.hangup_legs == ["acd-agent-c-early-9"]
    assert plan.destroy_bridges == ["acd-hold-gone-1"]


# ---------------------------------------------------------------- websocket drops


async def test_drop_during_offer_agent_answered_meanwhile(rig: Rig) -> None:
    """An agent answering while the websocket is down is bridged after the reconnect."""
    rig.fake.script_agent(AGENT_EP, AgentScript(answer_after=None))
    rig.service.login(AGENT)
    call_id = await rig.to_queue()
    await eventually(lambda: rig.leg_of(call_id) in rig.fake.channels, what="ringing")
    leg = rig.leg_of(call_id) or ""
    await outage(rig)
    rig.fake.agent_answers(leg)  # StasisStart is lost
    await restore(rig)
    await eventually(lambda: rig.talking(call_id), what="bridged after reconcile")
    assert any(isinstance(o, CallAnswered) for o in rig.outputs)
    assert rig.agent_state(AGENT) is AgentState.ON_CALL


async def test_drop_with_calls_on_hold_and_in_talk_loses_none(rig: Rig) -> None:
    """Calls on hold and in talk survive a drop: same bridges, same router state."""
    rig.service.login(AGENT)
    talking = await rig.to_queue()
    await eventually(lambda: rig.talking(talking))
    waiting = await rig.to_queue("+79031234567")
    await eventually(lambda: rig.in_router(waiting))
    bridges_before = set(rig.fake.bridges)
    await outage(rig)
    await restore(rig)
    assert set(rig.app.calls) == {talking, waiting}
    assert set(rig.fake.bridges) == bridges_before
    assert rig.app.calls[waiting].phase is Phase.HOLD and rig.in_router(waiting)
    assert rig.app.calls[talking].phase is Phase.TALKING
    queued = [o for o in rig.outputs if isinstance(o, CallQueued)]
    assert len(queued) == 2  # nobody was queued twice
    rig.fake.hangup(rig.leg_of(talking) or "")  # events flow again after the reconnect
    await eventually(lambda: rig.ended(talking) is not None)
    rig.service.login(AGENT2)
    await eventually(lambda: rig.talking(waiting), what="held caller offered after the drop")


async def test_caller_gone_during_drop_is_ended(rig: Rig) -> None:
    """A caller who hung up while the websocket was down is abandoned and its bridge removed."""
    call_id = await rig.to_queue()
    await eventually(lambda: rig.in_router(call_id))
    await outage(rig)
    rig.fake.hangup(call_id)
    await restore(rig)
    ended = rig.ended(call_id)
    assert ended is not None and ended.outcome is Outcome.ABANDONED
    await eventually(lambda: not rig.fake.bridges, what="hold bridge destroyed")
    assert not rig.app.calls


async def test_ringing_leg_gone_during_drop_fails_the_offer(rig: Rig) -> None:
    """An agent leg that vanished unanswered during the drop is a failed offer."""
    rig.fake.script_agent(AGENT_EP, AgentScript(answer_after=None))
    rig.service.login(AGENT)
    call_id = await rig.to_queue()
    await eventually(lambda: rig.leg_of(call_id) in rig.fake.channels, what="ringing")
    await outage(rig)
    rig.fake.hangup(rig.leg_of(call_id) or "", cause=19)
    await restore(rig)
    assert [o.reason for o in rig.outputs if isinstance(o, CallRequeued)] == ["unavailable"]
    assert rig.agent_state(AGENT) is AgentState.PAUSED
    assert rig.in_router(call_id) and rig.app.calls[call_id].phase is Phase.HOLD


async def test_agent_gone_during_drop_ends_the_talk(rig: Rig) -> None:
    """An agent who hung up during the drop ends the talk: caller hung up, agent in wrap-up."""
    rig.service.login(AGENT)
    call_id = await rig.to_queue()
    await eventually(lambda: rig.talking(call_id))
    await outage(rig)
    rig.fake.hangup(rig.leg_of(call_id) or "")
    await restore(rig)
    await eventually(lambda: call_id not in rig.fake.channels, what="caller hung up")
    assert rig.agent_state(AGENT) is AgentState.WRAP_UP
    await eventually(lambda: not rig.fake.bridges)


async def test_foreign_leftovers_are_removed_on_reconnect(rig: Rig) -> None:
    """Our bridges no call owns are destroyed on reconnect; other bridges are left alone."""
    from acd.asterisk.ari.client import AriClient

    async with AriClient(rig.fake.url, rig.fake.username, rig.fake.password) as other:
        await other.create_bridge("holding", bridge_id=HOLD_PREFIX + "orphan")
        await other.create_bridge("mixing", bridge_id="not-ours")
    await outage(rig)
    await restore(rig)
    await eventually(lambda: HOLD_PREFIX + "orphan" not in rig.fake.bridges)
    assert "not-ours" in rig.fake.bridges


# ---------------------------------------------------------------- cold start


async def test_cold_start_adopts_held_and_talking_calls(rig: Rig) -> None:
    """A restarted engine re-queues held callers with their old arrival time and puts talks
    back on their agents (from the channel variables), so the hangup ends them with wrap-up."""
    rig.service.login(AGENT)
    talking = await rig.to_queue()
    await eventually(lambda: rig.talking(talking))
    waiting = await rig.to_queue("+79031234567")
    await eventually(lambda: rig.in_router(waiting))
    assert rig.fake.channels[waiting].variables[QUEUED_VAR].startswith("tech|ru|RU|")
    await rig.stop_app()
    await eventually(lambda: not rig.fake._subscribers, what="old websocket closed")
    await rig.start_app()  # a new router knows nothing; the app adopts from Asterisk
    await rig.app.idle()
    assert rig.in_router(waiting)
    queued = [o for o in rig.outputs if isinstance(o, CallQueued)]
    assert [q.call_id for q in queued] == [waiting]
    assert rig.app.calls[waiting].hold_bridge in rig.fake.bridges
    assert rig.app.calls[talking].phase is Phase.TALKING
    assert not rig.app.calls[talking].unmanaged
    assert rig.agent_state(AGENT) is AgentState.ON_CALL
    assert any(b.startswith(TALK_PREFIX) for b in rig.fake.bridges)
    rig.fake.hangup(rig.leg_of(talking) or "")  # the adopted talk still cleans up
    await eventually(lambda: talking not in rig.fake.channels, what="caller hung up")
    ended = rig.ended(talking)
    assert ended is not None and ended.outcome is Outcome.ANSWERED and ended.agent_id == AGENT
    assert rig.agent_state(AGENT) is AgentState.WRAP_UP
    rig.service.login(AGENT2)
    await eventually(lambda: rig.talking(waiting), what="adopted caller offered")
    await eventually(lambda: not any(b.startswith(HOLD_PREFIX) for b in rig.fake.bridges))


async def test_cold_start_keeps_waiting_time(rig: Rig) -> None:
    """A re-queued caller's wait counts from when it was first queued, not from the restart."""
    clock = [1_000_000.0]
    call_id = await rig.to_queue()
    await eventually(lambda: rig.in_router(call_id))
    await rig.stop_app()
    await eventually(lambda: not rig.fake._subscribers)
    slot = QueueSlot.decode(rig.fake.channels[call_id].variables[QUEUED_VAR])
    assert slot is not None
    clock[0] = slot.queued_at_epoch + 42.0  # the engine was down for 42 s
    await rig.start_app_with_clock(lambda: clock[0])
    tech = next(q for q in rig.service.queue_snapshot() if q.queue == "tech")
    assert tech.waiting == 1 and abs(tech.oldest_wait_s - 42.0) < 0.5


async def test_cold_start_restarts_ivr_and_drops_orphan_legs(rig: Rig) -> None:
    """A caller caught in the IVR hears the flow again; a ringing agent leg is hung up."""
    rig.fake.script_agent(AGENT_EP, AgentScript(answer_after=None))
    rig.service.login(AGENT)
    ringing = await rig.to_queue()
    await eventually(lambda: rig.leg_of(ringing) in rig.fake.channels, what="ringing")
    leg = rig.leg_of(ringing)
    in_ivr = rig.fake.inject_call("+79161112233", "Ivan", ("8800100",))
    await eventually(lambda: rig.prompt_started(in_ivr, "main_menu"))
    await rig.stop_app()
    await eventually(lambda: not rig.fake._subscribers)
    await rig.start_app()
    await eventually(lambda: leg not in rig.fake.channels, what="orphan leg hung up")
    await eventually(lambda: rig.prompt_started(in_ivr, "main_menu", nth=2), what="ivr again")
    assert rig.in_router(ringing)


async def test_reconcile_survives_a_failing_snapshot(rig: Rig) -> None:
    """If Asterisk fails the snapshot after a reconnect, the engine reconciles again later."""
    call_id = await rig.to_queue()
    await eventually(lambda: rig.in_router(call_id))
    await outage(rig)
    rig.fake.hangup(call_id)
    rig.fake.fail_next(3, 500)  # the first snapshot read fails all three tries
    rig.fake.accept_websocket()
    await eventually(lambda: rig.app.reconciliations >= 1, timeout=5, what="late reconcile")
    ended = rig.ended(call_id)
    assert ended is not None and ended.outcome is Outcome.ABANDONED
