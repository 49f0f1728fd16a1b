"""The asyncio driver: commands reach the call's owner, timers fire on the loop, events fan out."""

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
from acd.runtime.router_service import Command, RouterService

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
def service() -> RouterService:
    return RouterService(load_center(CENTER))


async def test_offer_goes_to_the_owner_and_answer_reenters_safely(service: RouterService) -> None:
    """An owner answering inside handle_command is processed after the current fan-out."""
    seen: list[Output] = []
    service.observe(lambda o, _wall: seen.append(o))
    service.login("msk-tech-ru-001")
    owner = Owner(service, answer=True)
    service.call_arrived(owner, "c1", "tech", "ru", "RU")
    assert [type(c) for c in owner.commands] == [Offer]
    assert service.router.agent_state("msk-tech-ru-001") is AgentState.ON_CALL
    names = [type(o).__name__ for o in seen]
    assert names.index("Offer") < names.index("CallAnswered")


async def test_ring_timeout_fires_from_the_event_loop(service: RouterService) -> None:
    """With nobody answering, the ring timer fires on the loop, cancels the offer, pauses rona."""
    service.router._queues["tech"].ring_timeout_s = 0.05  # a short ring for the test
    service.login("msk-tech-ru-001")
    owner = Owner(service, answer=False)
    service.call_arrived(owner, "c1", "tech", "ru", "RU")
    assert [type(c) for c in owner.commands] == [Offer]
    await asyncio.sleep(0.2)
    assert any(isinstance(c, CancelOffer) and c.reason == "ring_timeout" for c in owner.commands)
    assert service.router.agent_state("msk-tech-ru-001") is AgentState.PAUSED


async def test_short_timer_really_fires(service: RouterService) -> None:
    """A wrap-up of a fraction of a second ends by itself through loop.call_at."""
    service.login("msk-tech-ru-001")
    owner = Owner(service, answer=True)
    service.call_arrived(owner, "c1", "tech", "ru", "RU")
    service.router._queues["tech"].wrap_up_s = 0.05  # a short wrap-up for the test
    ended: list[CallEnded] = []
    service.observe(lambda o, _w: ended.append(o) if isinstance(o, CallEnded) else None)
    service.hangup("c1")
    assert ended and ended[0].outcome is Outcome.ANSWERED
    assert service.router.agent_state("msk-tech-ru-001") is AgentState.WRAP_UP
    await asyncio.sleep(0.2)
    assert service.router.agent_state("msk-tech-ru-001") is AgentState.READY


async def test_owner_failure_does_not_stop_routing(service: RouterService) -> None:
    """An exception in one owner is logged; the router and other observers carry on."""

    class Broken:
        def handle_command(self, command: Command) -> None:
            raise RuntimeError("boom")

    seen: list[Output] = []
    service.observe(lambda o, _w: seen.append(o))
    service.login("msk-tech-ru-001")
    service.call_arrived(Broken(), "c1", "tech", "ru", "RU")
    assert any(isinstance(o, Offer) for o in seen)
