"""Latency-based admission control: late new calls go to the fallback, admitted ones stay."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from acd.asterisk.agi.route import CallPath
from acd.asterisk.agi.server import Admission, FastAgiServer
from acd.config.load import load_center
from acd.runtime.ivrsetup import IvrSetup, load_ivr
from acd.runtime.router_service import RouterService
from acd.service.metrics import ServiceMetrics
from acd.testing.fake_agi import FakeAsterisk, FakeCall, environment_block
from ivr.testing import compile_flow, prompts

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Rig:
    """The call path with a one-node flow (straight to the queue) behind admission control."""

    service: RouterService
    path: CallPath
    server: FastAgiServer
    fake: FakeAsterisk
    admission: Admission
    registry: CollectorRegistry

    def shed(self, reason: str) -> float | None:
        return self.registry.get_sample_value("acd_calls_shed_total", {"reason": reason})


@pytest.fixture(scope="module")
def setup() -> IvrSetup:
    center = load_center(ROOT / "config" / "center.yaml")
    base = load_ivr(center, ROOT / "config" / "ivr")
    flow = compile_flow({"flow": "t", "start": "q", "default_queue": "tech",
                         "prompts": prompts(), "nodes": {"q": {"type": "queue"}}})
    return IvrSetup(center, base.known, {"main": flow})


async def make_rig(setup: IvrSetup, max_loop_lag_s: float | None,
                   max_ttfc_s: float | None) -> Rig:
    service = RouterService(setup.center)
    registry = CollectorRegistry()
    metrics = ServiceMetrics(setup.center.config, registry)
    admission = Admission(max_loop_lag_s, max_ttfc_s,
                          on_shed=lambda why: metrics.shed.labels(why).inc())
    path = CallPath(service, setup)
    path.admission = admission
    server = FastAgiServer(path.handler_for, port=0, admission=admission)
    await server.start()
    return Rig(service, path, server, FakeAsterisk(server.port), admission, registry)


@pytest.fixture
async def rigs() -> AsyncIterator[list[Rig]]:
    made: list[Rig] = []
    yield made
    for rig in made:
        await rig.server.close(grace=0.5)
        rig.service.close()


async def queued_call(rig: Rig, n: int) -> FakeCall:
    """A call that is admitted: it gets its call id, language and music on hold."""
    call = await rig.fake.connect()
    await call.send_environment(environment_block("route", args=("100",),
                                                  uniqueid=f"1795609297.{n}"))
    first = await call.read_command()
    assert first is not None and first.startswith("SET VARIABLE ACD_CALL_ID")
    await call.reply("200 result=1")
    while (command := await call.read_command()) != "SET MUSIC ON default":
        assert command is not None
        await call.reply("200 result=1")
    await call.reply("200 result=0")
    return call


async def blocked_arrival(rig: Rig, n: int, block_s: float = 0.2) -> tuple[FakeCall, float]:
    """A call whose environment is sent just before the event loop is blocked."""
    call = await rig.fake.connect()
    await asyncio.sleep(0.05)  # the server has accepted it
    await call.send_environment(environment_block("route", args=("100",),
                                                  uniqueid=f"1795609297.{n}"))
    time.sleep(block_s)  # the point: the loop is stuck for block_s
    return call, time.perf_counter()


async def test_a_blocked_loop_hands_the_next_call_back_and_keeps_the_admitted_one(
    setup: IvrSetup, rigs: list[Rig]
) -> None:
    """After the loop is blocked 200 ms, the next call is closed with no command (fallback),
    counted with reason loop_lag, never reaches the router; the held call is untouched."""
    rig = await make_rig(setup, max_loop_lag_s=0.05, max_ttfc_s=None)
    rigs.append(rig)
    held = await queued_call(rig, 1)
    assert rig.service.router.calls_in_router == 1
    call, unblocked = await blocked_arrival(rig, 2)
    assert await call.wait_closed(timeout=1.0)
    assert time.perf_counter() - unblocked < 0.25  # at once: no IVR, no queue
    assert rig.shed("loop_lag") == 1.0 and rig.path.stats.turned_away == 1
    assert rig.service.router.calls_in_router == 1
    await asyncio.sleep(0.1)  # the probe fires on time again: calls are admitted again
    later = await queued_call(rig, 3)
    assert rig.service.router.calls_in_router == 2
    await held.hangup()
    await later.hangup()
    assert await held.wait_closed() and await later.wait_closed()


async def test_a_call_already_late_for_its_first_command_is_handed_back(
    setup: IvrSetup, rigs: list[Rig]
) -> None:
    """With only the time-to-first-command bound, a call held up 200 ms since its accept is
    handed back with reason ttfc, and the loop-lag signal is not consulted."""
    rig = await make_rig(setup, max_loop_lag_s=None, max_ttfc_s=0.05)
    rigs.append(rig)
    call, _ = await blocked_arrival(rig, 1)
    assert await call.wait_closed(timeout=1.0)
    assert rig.shed("ttfc") == 1.0 and rig.shed("loop_lag") == 0.0
    assert rig.service.router.calls_in_router == 0


async def test_slow_first_commands_turn_calls_away_until_the_window_passes() -> None:
    """A slow first command seen recently refuses new calls; two windows later they are
    admitted again (the guard recovers by itself once admitted calls stop being slow)."""
    admission = Admission(max_loop_lag_s=None, max_ttfc_s=0.02, window_s=0.05)
    admission.first_command(0.005)
    assert admission.refuse(0.0) is None
    admission.first_command(0.08)
    assert admission.refuse(0.0) == "ttfc"
    await asyncio.sleep(0.12)
    assert admission.refuse(0.0) is None
    assert admission.shed == {"ttfc": 1}


async def test_loop_lag_probe_measures_its_own_lateness() -> None:
    """The probe reports near zero on an idle loop and the block's length after one."""
    admission = Admission(max_loop_lag_s=0.05, max_ttfc_s=None, probe_interval_s=0.01)
    admission.start()
    try:
        await asyncio.sleep(0.05)
        assert admission.loop_lag() < 0.1
        time.sleep(0.15)  # a blocked loop is what is measured
        assert admission.loop_lag() >= 0.13  # overdue already, before the probe fires
        await asyncio.sleep(0.001)  # the overdue probe fires first
        assert admission.lag_s >= 0.13
        await asyncio.sleep(0.05)
        assert admission.loop_lag() < 0.1
    finally:
        admission.stop()
