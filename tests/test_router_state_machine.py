"""Routing invariants under any interleaving, as Hypothesis state machines over the router.

Two machines drive :class:`acd.core.router.Router` through
:class:`acd.testing.switchboard.Switchboard`: one over the reference center (config/center.yaml,
281 agents), one over a small random-ish center drawn per example. Rules interleave arrivals
(known and unknown queues, languages and countries, with priorities), abandons, hand-backs to
the dialplan, answers, no-answers, talk-ending hangups, callbacks, logins (refused double
logins; a login after a logout during a call cancels that logout), logouts, pauses, readies and
time jumps (to the next deadline, by an amount, or a late driver that does not advance). After
every step the switchboard checks: no agent is offered two calls and no call two agents; an
agent is logged out only by its own logout, at once or when its call has ended; every call ends
exactly once; FIFO within priority and eligibility (eligibility recomputed from profiles, config
and ``StepApplied`` events); no call goes to an ineligible agent; no call waits while an
eligible agent is ready; agent states from events match ``agent_snapshot()``; ``next_deadline``
is never in the past after advancing.

The default (``ci``) settings run 100 examples of up to 100 steps per machine, about 20,000
checked steps in all, in well under a minute on two cores. For a deeper run::

    HYPOTHESIS_PROFILE=long .venv/bin/pytest tests/test_router_state_machine.py

``long`` runs 1,000 examples of up to 200 steps per machine (several minutes). Any request
may come while timers are due (a late driver): the router runs them first, and when it then
refuses the request it keeps their outputs for its next call, which the switchboard checks.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from routerkit import (
    OTHER,
    agent,
    build,
    center_data,
    drive,
    random_center_data,
    reference_center,
    settle,
)

from acd.core.model import (
    AgentAlreadyLoggedIn,
    AgentNotLoggedIn,
    AgentState,
    CallState,
    CancelOffer,
    InvalidPauseReason,
)
from acd.testing.switchboard import Switchboard

_PROFILES = {
    "ci": settings(max_examples=100, stateful_step_count=100, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow]),
    "long": settings(max_examples=1000, stateful_step_count=200, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow]),
}
SETTINGS = _PROFILES.get(os.environ.get("HYPOTHESIS_PROFILE", "ci"), _PROFILES["ci"])

TIME_JUMPS = st.one_of(st.sampled_from([0.0, 1.0, 5.0, 8.0, 12.0, 15.0, 20.0, 30.0, 150.0,
                                        700.0, 1300.0]),
                       st.floats(min_value=0.0, max_value=120.0))


class RouterMachine(RuleBasedStateMachine):
    """Rules shared by both centers; subclasses open the center in an ``initialize`` rule."""

    def __init__(self) -> None:
        super().__init__()
        self._sb: Switchboard | None = None
        self.calls = 0
        self.ok = True

    @property
    def sb(self) -> Switchboard:
        """The switchboard (opened by the initialize rule, which always runs first)."""
        assert self._sb is not None
        return self._sb

    def act(self, action: Callable[[], object]) -> None:
        """Run one action; ``ok`` stays False if it fails, so teardown does not pile on."""
        self.ok = False
        action()
        self.ok = True

    def agent_request(self, agent_id: str, action: Callable[[], object]) -> None:
        """Run an agent's request. With timers due, the wrap-up that a pending logout waits
        for may end first and log the agent out: the request is then refused, rightly."""
        wrap_up_may_end = self.sb.timers_due() and self.sb.agents[agent_id].logout_pending
        try:
            self.act(action)
        except AgentNotLoggedIn:
            if not wrap_up_may_end or self.sb.agents[agent_id].state is not \
                    AgentState.LOGGED_OUT:
                raise
            self.ok = True

    def choose(self, data: st.DataObject, items: list[str]) -> str:
        """One of ``items``, drawn by Hypothesis."""
        return data.draw(st.sampled_from(items))

    # --- callers

    @rule(data=st.data(), priority=st.sampled_from([0, 0, 1, 3]))
    def arrive(self, data: st.DataObject, priority: int) -> None:
        """A call arrives, sometimes with an unknown queue, language or country."""
        cfg = self.sb.config
        queue = self.choose(data, [*cfg.queues, "billing"])
        language = self.choose(data, [*cfg.languages, "xx"])
        country = self.choose(data, [*cfg.countries, "ZZ", OTHER])
        self.calls += 1
        call_id = f"c{self.calls}"
        self.act(lambda: self.sb.arrive(call_id, queue, language, country, priority))

    @rule(seed=st.integers(0, 2**16), n=st.integers(2, 12))
    def burst(self, seed: int, n: int) -> None:
        """Several calls arrive at once (a peak), to build queues and exercise expansion."""
        rng = random.Random(seed)
        cfg = self.sb.config
        for _ in range(n):
            self.calls += 1
            call_id = f"c{self.calls}"
            args = (rng.choice(list(cfg.queues)), rng.choice(list(cfg.languages)),
                    rng.choice(list(cfg.countries)), rng.choice([0, 0, 1]))
            self.act(lambda c=call_id, a=args: self.sb.arrive(c, *a))  # type: ignore[misc]

    @precondition(lambda self: self._sb is not None and bool(
        self.sb.calls_in(CallState.QUEUED) or self.sb.calls_in(CallState.RINGING)))
    @rule(data=st.data())
    def abandon(self, data: st.DataObject) -> None:
        """A caller hangs up while queued or while an agent is being rung."""
        call_id = self.choose(data, self.sb.calls_in(CallState.QUEUED)
                              + self.sb.calls_in(CallState.RINGING))
        self.act(lambda: self.sb.hangup(call_id))

    @precondition(lambda self: self._sb is not None and bool(
        self.sb.calls_in(CallState.QUEUED) or self.sb.calls_in(CallState.RINGING)))
    @rule(data=st.data())
    def withdraw(self, data: st.DataObject) -> None:
        """The service hands a queued or rung caller back to the dialplan (shutdown)."""
        call_id = self.choose(data, self.sb.calls_in(CallState.QUEUED)
                              + self.sb.calls_in(CallState.RINGING))
        self.act(lambda: self.sb.withdraw(call_id))

    @precondition(lambda self: self._sb is not None and bool(self.sb.calls_in(CallState.RINGING)))
    @rule(data=st.data())
    def answer(self, data: st.DataObject) -> None:
        """The rung agent answers."""
        call_id = self.choose(data, self.sb.calls_in(CallState.RINGING))
        self.act(lambda: self.sb.answer(call_id))

    @precondition(lambda self: self._sb is not None and bool(self.sb.calls_in(CallState.RINGING)))
    @rule(data=st.data(), reason=st.sampled_from(["no_answer", "busy", "unavailable"]))
    def no_answer(self, data: st.DataObject, reason: str) -> None:
        """The telephony side reports that the offer failed."""
        call_id = self.choose(data, self.sb.calls_in(CallState.RINGING))
        self.act(lambda: self.sb.no_answer(call_id, reason))

    @precondition(lambda self: self._sb is not None and bool(
        self.sb.calls_in(CallState.TALKING)))
    @rule(data=st.data())
    def talk_ends(self, data: st.DataObject) -> None:
        """A conversation ends."""
        call_id = self.choose(data, self.sb.calls_in(CallState.TALKING))
        self.act(lambda: self.sb.hangup(call_id))

    @precondition(lambda self: self._sb is not None and bool(self.sb.calls_in(CallState.QUEUED)))
    @rule(data=st.data())
    def callback(self, data: st.DataObject) -> None:
        """A waiting caller takes a callback."""
        call_id = self.choose(data, self.sb.calls_in(CallState.QUEUED))
        self.act(lambda: self.sb.accept_callback(call_id))

    # --- agents

    @precondition(lambda self: self._sb is not None
                  and bool(self.sb.agents_in(AgentState.LOGGED_OUT)))
    @rule(data=st.data(), paused=st.booleans())
    def login(self, data: st.DataObject, paused: bool) -> None:
        """A logged-out agent logs in, ready or paused."""
        agent_id = self.choose(data, self.sb.agents_in(AgentState.LOGGED_OUT))
        reason = self.choose(data, list(self.sb.config.pause_reasons)) if paused else None
        self.act(lambda: self.sb.login(agent_id, reason))

    def logged_in(self) -> list[str]:
        """Agents in any state but logged out."""
        return self.sb.agents_in(*(s for s in AgentState if s is not AgentState.LOGGED_OUT))

    def logging_out(self) -> list[str]:
        """Agents who logged out during a call that has not ended yet."""
        return [a for a, v in self.sb.agents.items() if v.logout_pending]

    @precondition(lambda self: self._sb is not None and bool(
        set(self.logged_in()) - set(self.logging_out())))
    @rule(data=st.data())
    def double_login(self, data: st.DataObject) -> None:
        """A second login of a logged-in agent is refused and changes nothing."""
        agent_id = self.choose(data, sorted(set(self.logged_in()) - set(self.logging_out())))
        with pytest.raises(AgentAlreadyLoggedIn):
            self.sb.login(agent_id)

    @precondition(lambda self: self._sb is not None and bool(self.sb.agents_in(AgentState.ON_CALL)))
    @rule(data=st.data())
    def logout_on_call(self, data: st.DataObject) -> None:
        """An agent on a call logs out: the logout waits for the call to end."""
        agent_id = self.choose(data, self.sb.agents_in(AgentState.ON_CALL))
        self.act(lambda: self.sb.logout(agent_id))

    @precondition(lambda self: self._sb is not None and bool(self.logging_out()))
    @rule(data=st.data(), paused=st.booleans())
    def login_again_during_call(self, data: st.DataObject, paused: bool) -> None:
        """An agent who logged out during a call logs in again: they stay logged in."""
        agent_id = self.choose(data, self.logging_out())
        reason = self.choose(data, list(self.sb.config.pause_reasons)) if paused else None
        self.act(lambda: self.sb.login(agent_id, reason))

    @precondition(lambda self: self._sb is not None and bool(self.logged_in()))
    @rule(data=st.data())
    def logout(self, data: st.DataObject) -> None:
        """An agent logs out (deferred while on a call)."""
        agent_id = self.choose(data, self.logged_in())
        self.agent_request(agent_id, lambda: self.sb.logout(agent_id))

    @precondition(lambda self: self._sb is not None and bool(self.logged_in()))
    @rule(data=st.data())
    def pause(self, data: st.DataObject) -> None:
        """An agent pauses with a configured reason."""
        agent_id = self.choose(data, self.logged_in())
        reason = self.choose(data, list(self.sb.config.pause_reasons))
        self.agent_request(agent_id, lambda: self.sb.pause(agent_id, reason))

    @precondition(lambda self: self._sb is not None and bool(self.logged_in()))
    @rule(data=st.data())
    def bad_pause(self, data: st.DataObject) -> None:
        """A pause with an unconfigured reason is refused and changes nothing."""
        agent_id = self.choose(data, self.logged_in())
        with pytest.raises(InvalidPauseReason):
            self.sb.pause(agent_id, "smoking")

    @precondition(lambda self: self._sb is not None and bool(self.logged_in()))
    @rule(data=st.data())
    def ready(self, data: st.DataObject) -> None:
        """An agent makes themself ready (ignored while ringing or already ready)."""
        agent_id = self.choose(data, self.logged_in())
        self.agent_request(agent_id, lambda: self.sb.make_ready(agent_id))

    # --- time

    @rule()
    def to_deadline(self) -> None:
        """The driver wakes the router at its next deadline."""
        self.act(self.sb.advance_to_deadline)

    @rule(dt=TIME_JUMPS)
    def advance_by(self, dt: float) -> None:
        """Time passes and the driver advances the router."""
        self.act(lambda: self.sb.advance(self.sb.now + dt))

    @rule(dt=st.sampled_from([1.0, 16.0, 60.0]))
    def late_driver(self, dt: float) -> None:
        """Time passes without an advance; the next event runs the due timers itself."""
        self.sb.set_clock(self.sb.now + dt)

    # --- checks

    @invariant()
    def router_agrees_with_model(self) -> None:
        """Every whole-state invariant holds after every step."""
        if self._sb is not None:
            self.act(self.sb.check)

    @invariant()
    def ready_lines_hold_the_ready_agents(self) -> None:
        """Each ready line links, both ways and once each, exactly the ready agents with a
        place in it, longest idle first; a place is linked only while its agent is ready."""
        if self._sb is None:
            return
        f = self.sb.router._f
        for line in f.ready.values():
            seen = []
            slot, prev = line.head, None
            while slot is not None:
                assert slot.line is line and slot.prev is prev
                seen.append(slot.agent)
                prev, slot = slot, slot.next
            assert line.tail is prev
            assert all(a.state is AgentState.READY for a in seen)
            assert len({a.profile.id for a in seen}) == len(seen)
            idle = [a.idle_since for a in seen]
            assert idle == sorted(idle), idle
        for a in f.agents.values():
            for slot in a.ready_slots:
                linked = slot.prev is not None or slot.line.head is slot
                assert linked == (a.state is AgentState.READY), (a.profile.id, a.state)

    def teardown(self) -> None:
        """Hang up every call and run every timer: each call ends exactly once, none is lost."""
        if self._sb is not None and self.ok:
            settle(self.sb)


class ReferenceCenterMachine(RouterMachine):
    """The reference center with a random part of its 281 agents logged in."""

    @initialize(rng=st.randoms(use_true_random=False), staffed=st.integers(0, 60),
                paused=st.integers(0, 8))
    def open_center(self, rng: random.Random, staffed: int, paused: int) -> None:
        """Open the reference center; ``staffed`` agents log in, ``paused`` of them paused."""
        loaded = reference_center()
        self._sb = Switchboard(loaded.config, loaded.agents, snapshot_every=8)
        chosen = rng.sample(list(self.sb.agents), staffed)
        for i, agent_id in enumerate(chosen):
            self.sb.login(agent_id, "break" if i < paused else None)
        self.sb.check()


class RandomCenterMachine(RouterMachine):
    """A small random-ish center (2-3 queues, 3-24 agents), drawn per example."""

    @initialize(seed=st.integers(0, 2**32 - 1), staffed=st.floats(0.0, 1.0))
    def open_center(self, seed: int, staffed: float) -> None:
        """Open a center drawn from ``seed``; a ``staffed`` share of its agents log in."""
        rng = random.Random(seed)
        config, agents = build(random_center_data(rng))
        self._sb = Switchboard(config, agents)
        for agent_id in list(self.sb.agents):
            if rng.random() < staffed:
                self.sb.login(agent_id)
        self.sb.check()


TestReferenceCenter = ReferenceCenterMachine.TestCase
TestReferenceCenter.settings = SETTINGS
TestRandomCenter = RandomCenterMachine.TestCase
TestRandomCenter.settings = SETTINGS


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_seeded_reference_run_keeps_every_invariant(seed: int) -> None:
    """3,000 seeded random actions on the reference center keep every invariant and settle."""
    loaded = reference_center()
    sb = Switchboard(loaded.config, loaded.agents, snapshot_every=10)
    rng = random.Random(seed)
    for agent_id in rng.sample(list(sb.agents), 40):
        sb.login(agent_id)
    drive(sb, rng, 3000)
    settle(sb)
    assert sb.stats["offers"] > 1000 and sb.stats["answered"] > 100


def test_router_is_deterministic() -> None:
    """The same seeded actions on two fresh routers give identical outputs."""
    logs = []
    loaded = reference_center()
    for _ in range(2):
        rng = random.Random(7)
        sb = Switchboard(loaded.config, loaded.agents, snapshot_every=50)
        for agent_id in rng.sample(list(sb.agents), 30):
            sb.login(agent_id)
        drive(sb, rng, 1000)
        logs.append(sb.log)
    assert logs[0] == logs[1] and len(logs[0]) > 1000


def test_refused_request_with_due_timers_loses_no_output() -> None:
    """A double login sent after the ring timeout fell due is refused, and the timeout's
    outputs (cancel the ringing, requeue the call, pause the agent) still reach the driver."""
    sb = Switchboard(*build(center_data([agent("a")])))
    sb.login("a")
    sb.arrive("c1", "tech", "ru", "RU")
    assert sb.offers == {"c1": "a"}
    sb.set_clock(sb.now + 20.0)  # the 15 s ring timeout is due, not yet run
    with pytest.raises(AgentAlreadyLoggedIn):
        sb.login("a")
    sb.check()
    assert CancelOffer("c1", "a", "ring_timeout") in sb.log
    assert sb.offers == {} and sb.calls_in(CallState.QUEUED) == ["c1"]
    assert sb.agents["a"].state is AgentState.PAUSED
