"""A test rig for the Stasis application: the reference center, a FakeAri and a running app."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import Any

from acd.asterisk.ari.app import StasisApp
from acd.asterisk.ari.client import AriClient
from acd.config.load import LoadedCenter, load_center
from acd.core.model import AgentState, CallEnded, Output
from acd.runtime.ivrsetup import IvrSetup, load_ivr
from acd.runtime.router_service import RouterService
from acd.testing.clock import ManualClock
from acd.testing.fake_ari import FakeAri
from ivr.actions import CallbackTask

REPO = Path(__file__).resolve().parents[1]
#: A Moscow mobile number: Russian caller, so the flow goes straight to the main menu.
RU_CALLER = "+79161234567"


@cache
def reference_center() -> LoadedCenter:
    """The reference center, loaded once per test session."""
    return load_center(REPO / "config" / "center.yaml")


@dataclass
class CallbackList:
    """A callback sink that keeps tasks in a list."""

    tasks: list[CallbackTask] = field(default_factory=list)

    def add(self, task: CallbackTask) -> None:
        """Keep the task."""
        self.tasks.append(task)


async def eventually(check: Callable[[], object], timeout: float = 3.0, what: str = "") -> None:
    """Poll `check` until it is truthy, failing the test after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.005)


class Rig:
    """FakeAri + RouterService + StasisApp, started and stopped together."""

    def __init__(self, *, speed: float = 20.0, request_timeout: float = 2.0,
                 fake: FakeAri | None = None, **client_options: Any) -> None:
        self.fake = fake or FakeAri(speed=speed)
        self.own_fake = fake is None
        self.request_timeout = request_timeout
        #: Retry budgets and backoff for the AriClient (keyword arguments), defaults fast.
        self.client_options = {"retry_initial_s": 0.01, "retry_max_s": 0.05, **client_options}
        self.outputs: list[Output] = []
        self.callbacks = CallbackList()
        #: The router's clock: it moves only when a test advances it (kept across restarts).
        self.clock = ManualClock()
        self.service: RouterService
        self.client: AriClient
        self.app: StasisApp
        self.setup: IvrSetup
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Rig:
        if self.own_fake:
            await self.fake.start()
        await self.start_app()
        return self

    async def start_app_with_clock(self, wall_clock: Callable[[], float]) -> None:
        """Start the app with a wall clock of the test's choosing."""
        await self.start_app(wall_clock)

    async def start_app(self, wall_clock: Callable[[], float] | None = None) -> None:
        """A fresh router, client and app (as a restarted engine would have)."""
        center = reference_center()
        self.outputs.clear()
        self.service = RouterService(center, self.clock)
        self.service.observe(lambda o, _wall: self.outputs.append(o))
        self.setup = load_ivr(center, REPO / "config" / "ivr", callbacks=self.callbacks)
        self.client = AriClient(
            self.fake.url, self.fake.username, self.fake.password,
            request_timeout=self.request_timeout, backoff_initial=0.01, backoff_max=0.05,
            heartbeat=None, **self.client_options,
        )
        self.app = StasisApp(self.service, self.client, self.setup)
        if wall_clock is not None:
            self.app.wall_clock = wall_clock
        self._task = asyncio.create_task(self.app.run())
        await asyncio.wait_for(self.app.ready.wait(), 3.0)

    async def stop_app(self) -> None:
        """Stop the engine (cancel run) without touching the calls in Asterisk."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.client.close()
        self.service.close()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop_app()
        if self.own_fake:
            await self.fake.stop()

    # ------------------------------------------------------------ helpers

    def ended(self, call_id: str) -> CallEnded | None:
        """The router's CallEnded for the call, if it has ended."""
        for o in self.outputs:
            if isinstance(o, CallEnded) and o.call_id == call_id:
                return o
        return None

    def agent_state(self, agent_id: str) -> AgentState:
        """The router's state of an agent."""
        return self.service.router.agent_state(agent_id)

    def prompt_started(self, channel_id: str, prompt: str, nth: int = 1) -> bool:
        """True once the fake has started `prompt` on the channel `nth` times."""
        return self.prompt_count(channel_id, prompt) >= nth

    def prompt_count(self, channel_id: str, prompt: str) -> int:
        """How many times the fake has started `prompt` on the channel."""
        count = 0
        for e in self.fake.event_log:
            if e["type"] == "PlaybackStarted":
                pb: dict[str, Any] = e["playback"]
                if pb["target_uri"] == f"channel:{channel_id}" and pb["media_uri"].endswith(
                        "/" + prompt):
                    count += 1
        return count

    async def to_queue(self, number: str = RU_CALLER, key: str = "1") -> str:
        """A caller runs the main menu and presses `key` (1 = tech); returns the call id."""
        call_id = self.fake.inject_call(number, "Olga", ("8800100",))
        return await self.menu_to_queue(call_id, key)

    async def menu_to_queue(self, call_id: str, key: str = "1") -> str:
        """The caller already in Stasis answers the main menu (and declines a callback)."""
        await eventually(lambda: self.prompt_started(call_id, "main_menu"), what="main menu")
        await self.fake.send_dtmf(call_id, key)
        # With few agents logged in the estimated wait is long and the flow offers a callback:
        # "2" declines it and the caller is queued.
        await eventually(lambda: self.in_router(call_id) or call_id not in self.fake.channels
                         or self.prompt_started(call_id, "callback_offer"), what="queue")
        if self.prompt_started(call_id, "callback_offer") and not self.in_router(call_id):
            await self.fake.send_dtmf(call_id, "2")
        return call_id

    def in_router(self, call_id: str) -> bool:
        """True while the router holds the call."""
        return self.service.router.call_state(call_id) is not None

    def leg_of(self, call_id: str) -> str | None:
        """The agent leg the app has for the call."""
        call = self.app.calls.get(call_id)
        return call.leg.channel_id if call is not None and call.leg is not None else None

    def talking(self, call_id: str) -> bool:
        """True once the caller and an agent leg share a mixing bridge in the fake."""
        leg = self.leg_of(call_id)
        return any(
            b.bridge_type == "mixing" and call_id in b.channels and leg in b.channels
            for b in self.fake.bridges.values()
        )
