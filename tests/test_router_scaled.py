"""On a scaled center, every offer the router makes is the one a brute-force scan would make.

The router finds agents and calls through indexes (ready agents by skill, language, site and
newcomer flag; waiting calls by queue and language; agents' eligible queues). This test keeps
its own plain model of the floor, built only from the router's outputs, and checks each
``Offer`` against a scan of every agent or every waiting call, so an index can never silently
change who gets a call.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from routerkit import REFERENCE_CENTER

from acd.config.load import LoadedCenter, load_center
from acd.config.policy import center_policy
from acd.config.scale import scaled_center
from acd.core.model import (
    AgentState,
    AgentStateChanged,
    CallAnswered,
    CallEnded,
    CallOffered,
    CallQueued,
    CallRequeued,
    Offer,
    Output,
    StepApplied,
)
from acd.core.policy import AgentSelection, CallSelection, CenterPolicy, NewcomerPolicy
from acd.core.router import Router
from acd.core.selection import pool_for

COUNTRIES = ("RU", "UA", "KZ", "BY", "UZ", "AZ", "GE", "AM", "KG", "MD", "TJ", "LV")


@cache
def _center() -> LoadedCenter:
    return scaled_center(load_center(REFERENCE_CENTER), 2)


@dataclass
class ModelCall:
    """A call as the model sees it: where it waits and its routing rule now."""

    id: str
    seq: int
    arrived: float
    language: str
    country: str
    queue: str = ""
    steps: int = 0
    ringing: bool = False


@dataclass
class Model:
    """The floor rebuilt from outputs alone; brute-force choices over it."""

    policy: CenterPolicy
    center: LoadedCenter
    state: dict[str, AgentState] = field(default_factory=dict)
    idle_since: dict[str, float] = field(default_factory=dict)
    calls: dict[str, ModelCall] = field(default_factory=dict)
    seq: int = 0
    offers: int = 0

    def rule(self, call: ModelCall) -> tuple[int, bool, bool, bool]:
        """The call's (min level, all sites, accept fallback, newcomers ok) after its steps."""
        q = self.policy.queues[call.queue]
        home = self.home(call)
        level, all_sites = q.min_level, q.all_sites or home is None
        fallback, novices = False, q.newcomers is not NewcomerPolicy.exclude
        for step in q.expansion[:call.steps]:
            if step.min_level is not None:
                level = min(level, step.min_level)
            all_sites = all_sites or bool(step.add_sites)
            fallback = fallback or step.accept_fallback_languages
            novices = novices or step.include_newcomers
        return level, all_sites, fallback, novices

    def home(self, call: ModelCall) -> str | None:
        c = self.policy.countries.get(call.country)
        return c.home_site if c is not None else None

    def languages(self, call: ModelCall) -> tuple[str, ...]:
        """The languages the call accepts now."""
        c = self.policy.countries.get(call.country)
        fallbacks = tuple(f for f in c.fallback_languages if f != call.language) if c else ()
        return (call.language, *fallbacks) if self.rule(call)[2] else (call.language,)

    def eligible(self, index: int, call: ModelCall) -> bool:
        """Whether roster agent ``index`` may take ``call`` now (language included)."""
        p = self.center.agents[index]
        level, all_sites, _, novices = self.rule(call)
        skill = self.policy.queues[call.queue].skill
        return (p.skills.get(skill, 0) >= level
                and any(lang in p.languages for lang in self.languages(call))
                and (all_sites or p.site == self.home(call))
                and (p.countries is None or call.country in p.countries)
                and (novices or not p.newcomer))

    def best_agents(self, call: ModelCall) -> set[str]:
        """The agents a scan of every ready agent ranks first for ``call`` (several only when
        they became ready at the same instant: the router then takes the one that became
        ready first within a ready list, else the first on the roster)."""
        q = self.policy.queues[call.queue]
        home = self.home(call)
        _, all_sites, _, novices = self.rule(call)
        ranked = []
        for i, p in enumerate(self.center.agents):
            if self.state.get(p.id) is not AgentState.READY or not self.eligible(i, call):
                continue
            site_tier = int(all_sites and q.site_affinity and home is not None
                            and p.site != home)
            novice_tier = int(novices and q.newcomers is NewcomerPolicy.last_resort
                              and p.newcomer)
            if q.agent_selection is AgentSelection.highest_proficiency:
                rank: tuple[float, ...] = (-p.skills[q.skill], self.idle_since[p.id])
            else:
                assert q.agent_selection is AgentSelection.longest_idle
                rank = (self.idle_since[p.id],)
            ranked.append(((site_tier, novice_tier, *rank), p.id))
        best = min((r for r, _ in ranked), default=None)
        return {agent_id for r, agent_id in ranked if r == best}

    def best_call(self, agent_id: str) -> str | None:
        """The waiting call a scan of every waiting call picks for a freed agent."""
        index = next(i for i, p in enumerate(self.center.agents) if p.id == agent_id)
        ranked = []
        for call in self.calls.values():
            if call.ringing or not call.queue or not self.eligible(index, call):
                continue
            q = self.policy.queues[call.queue]
            offset = q.sl_threshold_s if q.call_selection is CallSelection.sl_aware else 0.0
            ranked.append(((-q.priority, call.arrived + offset, call.seq), call.id))
        return min(ranked)[1] if ranked else None

    def absorb(self, outputs: list[Output]) -> None:
        """Follow the router's outputs, checking each offer against the brute-force choice."""
        previous: Output | None = None
        for o in outputs:
            if isinstance(o, AgentStateChanged):
                if o.state is AgentState.RINGING:
                    self.check_offer(o, previous, outputs)
                self.state[o.agent_id] = o.state
                if o.state is AgentState.READY:
                    self.idle_since[o.agent_id] = o.at
            elif isinstance(o, CallQueued):
                call = self.calls.get(o.call_id)
                if call is None:
                    self.seq += 1
                    call = self.calls[o.call_id] = ModelCall(o.call_id, self.seq, o.at,
                                                             o.language, o.country)
                call.queue, call.steps, call.ringing = o.queue, 0, False
            elif isinstance(o, StepApplied):
                self.calls[o.call_id].steps += 1
            elif isinstance(o, CallRequeued):
                self.calls[o.call_id].ringing = False
            elif isinstance(o, Offer):
                self.calls[o.call_id].ringing = True
            elif isinstance(o, CallAnswered | CallEnded):
                self.calls.pop(o.call_id, None)
            previous = o

    def check_offer(self, ringing: AgentStateChanged, previous: Output | None,
                    outputs: list[Output]) -> None:
        """``ringing`` starts an offer: the agent freed just before takes the best call for
        it; otherwise the call looking for an agent gets the best ready agent."""
        at = outputs.index(ringing)
        offer = next(o for o in outputs[at:] if isinstance(o, Offer))
        assert offer.agent_id == ringing.agent_id
        call = self.calls[offer.call_id]
        self.offers += 1
        if isinstance(previous, AgentStateChanged) and previous.agent_id == ringing.agent_id \
                and previous.state is AgentState.READY:
            self.state[ringing.agent_id] = AgentState.READY
            self.idle_since[ringing.agent_id] = previous.at
            assert self.best_call(ringing.agent_id) == call.id, (ringing, call)
        else:
            assert ringing.agent_id in self.best_agents(call), (ringing, call)


def _drive(seed: int, events: int) -> Model:
    """Seeded random traffic and agent activity on the 2x center, checked offer by offer."""
    center = _center()
    policy = center_policy(center.config)
    router = Router(policy, center.agents)
    model = Model(policy, center)
    rng = random.Random(seed)
    now = 0.0
    ids = [a.id for a in center.agents]
    # Random, distinct event times: agents rarely become ready at the same instant (the
    # model accepts any of those tied; see Model.best_agents).
    logged = rng.sample(ids, k=len(ids) * 3 // 4)
    for agent_id in logged:
        now += rng.uniform(0.001, 0.01)
        model.absorb(router.login(now, agent_id))
    talking: list[str] = []
    n = 0
    for _ in range(events):
        now += rng.expovariate(2.0)
        deadline = router.next_deadline()
        while deadline is not None and deadline <= now:
            model.absorb(router.advance(deadline))
            deadline = router.next_deadline()
        r = rng.random()
        ringing = [c.id for c in model.calls.values() if c.ringing]
        waiting = [c.id for c in model.calls.values() if not c.ringing and c.queue]
        if r < 0.35:
            n += 1
            queue = rng.choice(list(policy.queues))
            country = rng.choice(COUNTRIES)
            c = policy.countries[country]
            lang = c.language if rng.random() < 0.7 else "ru"
            out = router.call_arrived(now, f"c{n}", queue, lang, country)
        elif r < 0.55 and ringing:
            cid = rng.choice(ringing)
            if rng.random() < 0.1:
                out = router.offer_failed(now, cid)
            else:
                out = router.offer_answered(now, cid)
                talking.append(cid)
        elif r < 0.80 and talking:
            out = router.hangup(now, talking.pop(rng.randrange(len(talking))))
        elif r < 0.85 and waiting:
            out = router.hangup(now, rng.choice(waiting))
        elif r < 0.92:
            agent_id = rng.choice(logged)
            state = model.state.get(agent_id)
            if state is AgentState.PAUSED:
                out = router.ready(now, agent_id)
            elif state is AgentState.READY:
                out = router.pause(now, agent_id, "break")
            else:
                continue
        else:
            continue
        model.absorb(out)
    return model


@settings(max_examples=12, deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_offers_on_a_scaled_center_match_brute_force_selection(seed: int) -> None:
    """Every offer on the 2x reference center is the brute-force choice of agent or call."""
    model = _drive(seed, 400)
    assert model.offers > 50


def _pool_by_definition(model: Model, call: ModelCall, applied: int) -> list[tuple[str, int]]:
    """Who may ever take ``call`` and after how many steps (at least ``applied``), in step
    order then roster order: straight from the rule at each step, agent by agent."""
    entries = []
    for i, p in enumerate(model.center.agents):
        for steps in range(len(model.policy.queues[call.queue].expansion) + 1):
            call.steps = steps
            if model.eligible(i, call):
                entries.append((max(steps, applied), i, p.id))
                break
    call.steps = applied
    return [(agent_id, steps) for steps, _, agent_id in sorted(entries)]


@pytest.mark.parametrize("queue", ["tech", "orders", "voc"])
def test_wait_estimate_pools_match_the_rule_step_by_step(queue: str) -> None:
    """The agents a wait estimate walks, with the step admitting each, are those the queue's
    rule admits at each step, for every country, language and step already applied."""
    center = _center()
    policy = center_policy(center.config)
    router = Router(policy, center.agents)
    model = Model(policy, center)
    for country, c in policy.countries.items():
        for language in {c.language, "ru"}:
            for applied in range(len(policy.queues[queue].expansion) + 1):
                probe = router._probe(queue, language, country, 0.0)
                probe.step = applied
                got = [(a.profile.id, steps) for a, steps in pool_for(router._f, probe)]
                call = ModelCall("", 0, 0.0, language, country, queue, applied)
                assert got == _pool_by_definition(model, call, applied), (country, language)


_PROGRESS = (CallQueued, StepApplied, CallOffered, CallAnswered)


def test_router_without_progress_events_gives_every_other_output_unchanged() -> None:
    """A router built with ``progress=False`` gives, request by request, exactly the outputs of
    the default router less CallQueued, StepApplied, CallOffered and CallAnswered."""
    center = _center()
    policy = center_policy(center.config)
    full = Router(policy, center.agents)
    quiet = Router(policy, center.agents, progress=False)
    model = Model(policy, center)
    rng = random.Random(7)
    seen: set[type] = set()

    def both(request: str, *args: object) -> list[Output]:
        out: list[Output] = getattr(full, request)(*args)
        seen.update(type(o) for o in out)
        assert getattr(quiet, request)(*args) == [o for o in out if not isinstance(o, _PROGRESS)]
        return out

    now = 0.0
    ids = [a.id for a in center.agents]
    for agent_id in ids[: len(ids) * 3 // 4]:
        now += 0.01
        model.absorb(both("login", now, agent_id))
    talking: list[str] = []
    for n in range(600):
        now += rng.expovariate(2.0)
        deadline = full.next_deadline()
        assert quiet.next_deadline() == deadline
        while deadline is not None and deadline <= now:
            model.absorb(both("advance", deadline))
            deadline = full.next_deadline()
        ringing = [c.id for c in model.calls.values() if c.ringing]
        if rng.random() < 0.5:
            country = rng.choice(COUNTRIES)
            queue = rng.choice(list(policy.queues))
            lang = policy.countries[country].language
            model.absorb(both("call_arrived", now, f"c{n}", queue, lang, country))
        elif ringing:
            cid = rng.choice(ringing)
            model.absorb(both("offer_answered", now, cid))
            talking.append(cid)
        elif talking:
            cid = talking.pop(rng.randrange(len(talking)))
            model.absorb(both("hangup", now, cid))
    assert set(_PROGRESS) <= seen
