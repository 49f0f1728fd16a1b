"""ARI REST errors lose no caller: call-changing requests are retried through a 5xx window,
clean-up until Asterisk confirms it, and a 4xx (the call moved on) is never retried."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from arikit import Rig, eventually

from acd.asterisk.ari.client import AriClient, AriConflict, AriNotFound, AriUnavailable
from acd.core.model import CallEnded, Outcome
from acd.testing.fake_ari import FakeAri

AGENTS = [f"msk-tech-ru-00{i}" for i in range(1, 5)]
CALLERS = [f"+7916123456{i}" for i in range(4)]


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with Rig() as r:
        yield r


def _leftovers(fake: FakeAri) -> list[str]:
    """Bridges and agent legs of the engine still in the fake Asterisk."""
    return sorted([b for b in fake.bridges if b.startswith("acd-")]
                  + [c for c in fake.channels if c.startswith("acd-agent-")])


async def test_callers_arriving_in_a_5xx_window_are_served_and_cleaned_up(rig: Rig) -> None:
    """Four callers arrive while every REST request answers 503: once it passes all four are
    answered, queued and bridged to agents; they hang up in a second 503 window, and once
    that passes no bridge or agent leg is left behind."""
    for agent in AGENTS:
        rig.service.login(agent)
    rig.fake.fail_requests(503)
    callers = [rig.fake.inject_call(number, "Olga", ("8800100",)) for number in CALLERS]
    await eventually(lambda: all(len(rig.fake.failed("POST", f"/channels/{c}/answer")) >= 2
                                 for c in callers), what="answers refused and retried")
    rig.fake.stop_failing()
    await asyncio.gather(*(rig.menu_to_queue(c) for c in callers))
    await eventually(lambda: all(rig.talking(c) for c in callers), what="all four talking")
    assert all(rig.fake.channels[c].state == "Up" for c in callers)

    rig.fake.fail_requests(503)
    for caller in callers:
        rig.fake.hangup(caller)
    await eventually(lambda: len(rig.fake.failed("DELETE")) >= 2 * len(callers),
                     what="clean-up refused")
    assert _leftovers(rig.fake)  # the window really held the clean-up back
    rig.fake.stop_failing()
    await eventually(lambda: not _leftovers(rig.fake), what="everything cleaned up")
    ended = [o for o in rig.outputs if isinstance(o, CallEnded)]
    assert sorted(e.call_id for e in ended) == sorted(callers)
    assert all(e.outcome is Outcome.ANSWERED for e in ended)


async def test_a_held_caller_survives_a_5xx_window_and_is_connected(rig: Rig) -> None:
    """A caller on hold when the window opens is offered once an agent logs in during it:
    the originate and the bridging are retried until Asterisk takes them."""
    call_id = await rig.to_queue()
    await eventually(lambda: rig.in_router(call_id))
    rig.fake.fail_requests(503)
    rig.service.login(AGENTS[0])
    await eventually(lambda: len(rig.fake.failed("POST", "/channels")) >= 2,
                     what="originate refused and retried")
    rig.fake.stop_failing()
    await eventually(lambda: rig.talking(call_id), what="bridged after the window")
    rig.fake.hangup(call_id)
    await eventually(lambda: not _leftovers(rig.fake), what="cleaned up")


@pytest.fixture
async def fake() -> AsyncIterator[FakeAri]:
    async with FakeAri() as f:
        yield f


def _client(fake: FakeAri) -> AriClient:
    return AriClient(fake.url, fake.username, fake.password, change_budget_s=0.2,
                     cleanup_budget_s=0.3, retry_initial_s=0.01, retry_max_s=0.05)


async def test_retries_stop_at_the_budget_and_say_so(
    fake: FakeAri, caplog: pytest.LogCaptureFixture
) -> None:
    """A 503 that never ends is retried until the budget is spent, then raises
    AriUnavailable (logged); the clean-up budget is its own."""
    caplog.set_level(logging.WARNING, logger="acd.asterisk.ari")
    caller = fake.inject_call()
    loop = asyncio.get_running_loop()
    async with _client(fake) as ari:
        fake.fail_requests(503)
        started = loop.time()
        with pytest.raises(AriUnavailable) as answer:
            await ari.answer(caller)
        assert 0.1 < loop.time() - started < 0.5
        assert answer.value.tries == len(fake.failed("POST", f"/channels/{caller}/answer")) > 2
        with pytest.raises(AriUnavailable) as hangup:
            await ari.hangup(caller)
        assert hangup.value.tries > answer.value.tries  # the longer clean-up budget
        assert "gave up after" in caplog.text
        fake.stop_failing()
        await ari.answer(caller)
        assert fake.channels[caller].state == "Up"


async def test_4xx_is_never_retried(fake: FakeAri) -> None:
    """404 (gone: for clean-up, confirmed) and 409 (wrong state) are raised on the first try."""
    caller = fake.inject_call()
    async with _client(fake) as ari:
        with pytest.raises(AriNotFound):
            await ari.hangup("gone-already")
        with pytest.raises(AriNotFound):
            await ari.destroy_bridge("gone-too")
        await ari.continue_in_dialplan(caller)
        with pytest.raises(AriConflict):
            await ari.answer(caller)  # left Stasis: the call moved on
    sent = [(r.method, r.path) for r in fake.requests]
    assert sent == [("DELETE", "/channels/gone-already"), ("DELETE", "/bridges/gone-too"),
                    ("POST", f"/channels/{caller}/continue"),
                    ("POST", f"/channels/{caller}/answer")]
