"""The asyncio driver: commands reach the call's owner, timers fire on its clock, events fan out."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from acd.config.load import load_center
from acd.core.model import (
    AgentState,
    CallEnded,
    CancelOffer,
    Offer,
    Outcome,
    Output,
)
from acd.runtime.router_service import Command, LoopClock, RouterService
from acd.testing.capture import capture_outputs
from acd.testing.clock import ManualClock

CENTER = Path(__file__).resolve().parents[1] / "config" / "center.yaml"


class Owner:
    """Records commands; answers offers at once when told to."""

    def __init__(self, service: RouterService, answer: bool) -> None:
        self.service = service
        self.answer = answer
        self.commands: list[Command] = []

    def handle_command(self, command: Command) -> None:
        self.commands.append(command)
        if self.answer and isinstance(command, Offer):
            self.service.offer_answered(command.call_id)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def service(clock: ManualClock) -> RouterService:
    return RouterService(load_center(CENTER), clock)


async def test_offer_goes_to_the_owner_and_answer_reenters_safely(service: RouterService) -> None:
    """An owner answering inside handle_command is processed after the current fan-out."""
    service.login("msk-tech-ru-001")
    owner = Owner(service, answer=True)
    with capture_outputs(service) as seen:
        service.call_arrived(owner, "c1", "tech", "ru", "RU")
    assert [type(c) for c in owner.commands] == [Offer]
    assert service.router.agent_state("msk-tech-ru-001") is AgentState.ON_CALL
    names = [type(o).__name__ for o in seen]
    assert names.index("Offer") < names.index("CallAnswered")


async def test_ring_timeout_fires_from_the_clock(service: RouterService,
                                                 clock: ManualClock) -> None:
    """With nobody answering, the ring timer fires on the clock, cancels the offer, pauses rona."""
    ring_timeout = service.center.config.queues["tech"].ring_timeout_s
    service.login("msk-tech-ru-001")
    owner = Owner(service, answer=False)
    service.call_arrived(owner, "c1", "tech", "ru", "RU")
    assert [type(c) for c in owner.commands] == [Offer]
    clock.advance(ring_timeout - 0.001)
    assert [type(c) for c in owner.commands] == [Offer]
    clock.advance(0.001)
    assert any(isinstance(c, CancelOffer) and c.reason == "ring_timeout" for c in owner.commands)
    assert service.router.agent_state("msk-tech-ru-001") is AgentState.PAUSED


async def test_wrap_up_timer_really_fires(service: RouterService, clock: ManualClock) -> None:
    """The queue's wrap-up ends by itself when the clock reaches it, through clock.call_at."""
    wrap_up = service.center.config.queues["tech"].wrap_up_s
    service.login("msk-tech-ru-001")
    owner = Owner(service, answer=True)
    service.call_arrived(owner, "c1", "tech", "ru", "RU")
    ended: list[CallEnded] = []
    service.observe(lambda o, _w: ended.append(o) if isinstance(o, CallEnded) else None)
    service.hangup("c1")
    assert ended and ended[0].outcome is Outcome.ANSWERED
    assert service.router.agent_state("msk-tech-ru-001") is AgentState.WRAP_UP
    assert clock.next_at() == pytest.approx(clock.now() + wrap_up)
    clock.advance(wrap_up)
    assert service.router.agent_state("msk-tech-ru-001") is AgentState.READY


async def test_default_clock_is_the_event_loop() -> None:
    """Without a clock the service reads the running loop's time and its call_at really fires."""
    loop = asyncio.get_running_loop()
    service = RouterService(load_center(CENTER))
    assert isinstance(service.clock, LoopClock)
    before = loop.time()
    assert before <= service.now() <= loop.time()
    fired = loop.create_future()
    handle = service.clock.call_at(service.now() + 0.01, lambda: fired.set_result(loop.time()))
    assert isinstance(handle, asyncio.TimerHandle)
    assert await asyncio.wait_for(fired, 2.0) >= before + 0.01


async def test_reschedule_cancels_the_earlier_timer(service: RouterService,
                                                    clock: ManualClock) -> None:
    """An answered offer cancels the ring timer: advancing past it changes nothing."""
    ring_timeout = service.center.config.queues["tech"].ring_timeout_s
    service.login("msk-tech-ru-001")
    owner = Owner(service, answer=False)
    service.call_arrived(owner, "c1", "tech", "ru", "RU")
    service.offer_answered("c1", "msk-tech-ru-001")
    assert clock.next_at() is None
    clock.advance(ring_timeout)
    assert [type(c) for c in owner.commands] == [Offer]
    assert service.router.agent_state("msk-tech-ru-001") is AgentState.ON_CALL


async def test_owner_failure_does_not_stop_routing(service: RouterService) -> None:
    """An exception in one owner is logged; the router and other observers carry on."""

    class Broken:
        def handle_command(self, command: Command) -> None:
            raise RuntimeError("boom")

    service.login("msk-tech-ru-001")
    with capture_outputs(service) as seen:
        service.call_arrived(Broken(), "c1", "tech", "ru", "RU")
    assert any(isinstance(o, Offer) for o in seen)


async def test_capture_outputs_keeps_only_the_block(service: RouterService) -> None:
    """capture_outputs collects what the service fans out inside the block, in order, and
    stops at its end; other observers keep seeing everything."""
    everything: list[Output] = []
    service.observe(lambda o, _w: everything.append(o))
    service.login("msk-tech-ru-001")
    owner = Owner(service, answer=False)
    with capture_outputs(service) as inside:
        service.call_arrived(owner, "c1", "tech", "ru", "RU")
    service.hangup("c1")
    assert [type(o) for o in inside] == [type(o) for o in everything[1:len(inside) + 1]]
    assert any(isinstance(o, Offer) for o in inside)
    assert not any(isinstance(o, CallEnded) for o in inside)
    assert any(isinstance(o, CallEnded) for o in everything)
