"""The ready-line walk of ``agent_for`` against its reference: every ready agent, ``eligible()``.

:func:`acd.core.selection.agent_for` finds the agent for a waiting call by walking the floor's
ready lines (by skill, language, site and newcomer tier), reading each slot's stored skill
level instead of calling :func:`~acd.core.selection.eligible`. The reference here looks at
every agent on the roster: ready, ``eligible()`` for the call, speaking one of the languages
the call accepts now (its own, and its fallbacks once a step allowed them); ranked by tier
(the home site before other sites under site affinity, tenured before newcomers under
``last_resort``), then by the queue's agent selection (longest idle; highest level, then
longest idle; least occupied, then longest idle; round robin), agents idle since the same
moment by the order in which they became ready, as :func:`~acd.core.selection.selection_key`
ranks them. The reference takes that order from the order of the router's
``AgentStateChanged`` events to ready (the switchboard's model), not from the router's count.

A Hypothesis state machine drives a real router over small random centers (the rules of
tests/test_router_state_machine.py: logins, pauses, readies, logouts, arrivals, answers, ring
timeouts, expansion steps over time) and, after every step, asks ``agent_for`` about every call
waiting in the router and about probe calls for every queue, language, caller country (and an
unknown one, without a home site) and every expansion step the call can wait at; each answer
must be the reference's.

Among longest-idle agents ready since the same moment the walk once took the one that became
ready first when both stood in one ready line, and the one earlier on the roster across lines;
both now take the one that became ready first (tests at the end).
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, precondition, rule
from routerkit import OTHER, agent, build, center_data, one, queue, random_center_data
from test_router_state_machine import RandomCenterMachine

from acd.config.policy import center_policy
from acd.core.agent_states import occupancy
from acd.core.floor import AgentRt, CallRt, Floor
from acd.core.model import AgentState, CallState, Offer
from acd.core.policy import AgentSelection, CenterPolicy, NewcomerPolicy
from acd.core.router import Router
from acd.core.selection import agent_for, eligible, selection_key
from acd.testing.switchboard import Switchboard


def order_key(f: Floor, now: float, call: CallRt, a: AgentRt, selection: AgentSelection,
              ready_order: int) -> tuple[float, ...]:
    """The queue's agent selection as a key, smallest first (design section 4): longest idle;
    highest level in the skill, then longest idle; least occupied, then longest idle; round
    robin, the next agent on the roster after the last one offered a call of the queue.
    Agents idle since the same moment go in the order they became ready (``ready_order``)."""
    if selection is AgentSelection.highest_proficiency:
        return (-a.profile.skills[call.q.skill], a.idle_since, ready_order)
    if selection is AgentSelection.least_occupied:
        return (occupancy(now, a), a.idle_since, ready_order)
    if selection is AgentSelection.round_robin:
        return ((a.index - call.q.rr_last - 1) % len(f.agents),)
    return (a.idle_since, ready_order)


def reference_best(f: Floor, policy: CenterPolicy, now: float, call: CallRt,
                   ready_order: Mapping[str, int]) -> AgentRt | None:
    """The agent the reference ranks first for ``call``, from every agent on the roster
    (``ready_order``: by agent id, the order in which agents last became ready)."""
    qp = policy.queues[call.q.name]
    langs = {call.language, *call.fallbacks} if call.accept_fallback else {call.language}
    affinity = call.all_sites and call.home_site is not None and qp.site_affinity
    last_resort = qp.newcomers is NewcomerPolicy.last_resort

    def rank(a: AgentRt) -> tuple[object, ...]:
        p = a.profile
        tier = (affinity and p.site != call.home_site, last_resort and p.newcomer)
        return (*tier, *order_key(f, now, call, a, qp.agent_selection, ready_order[p.id]))

    candidates = [a for a in f.agents.values()
                  if a.state is AgentState.READY and eligible(a, call)
                  and not langs.isdisjoint(a.profile.languages)]
    return min(candidates, key=rank, default=None)


def probe_calls(f: Floor, policy: CenterPolicy, now: float) -> list[CallRt]:
    """Calls that are not in the router, one per queue, language, caller country (and none
    known) and expansion step a waiting call can be at, with that step's rule applied."""
    probes = []
    for name, qp in policy.queues.items():
        q = f.queues[name]
        for language in policy.languages:
            for country in [*policy.countries, OTHER]:
                c = policy.countries.get(country)
                home = c.home_site if c is not None else None
                fallbacks = tuple(x for x in c.fallback_languages if x != language) \
                    if c is not None else ()
                level, sites, fallback, novices = (qp.min_level, qp.all_sites or home is None,
                                                   False, qp.newcomers is not
                                                   NewcomerPolicy.exclude)
                for step in range(len(qp.expansion) + 1):
                    if step:
                        rule = qp.expansion[step - 1]
                        if rule.overflow:
                            break  # the call leaves the queue at this step
                        level = min(level, rule.min_level) if rule.min_level is not None \
                            else level
                        sites = sites or rule.add_sites is not None
                        fallback = fallback or rule.accept_fallback_languages
                        novices = novices or rule.include_newcomers
                    call = CallRt(f"probe-{name}-{language}-{country}-{step}", q, language,
                                  country, home, f.site_at[home] if home is not None else -1,
                                  fallbacks, q.priority, now, f.seq + 1, None)
                    call.min_level, call.all_sites = level, sites
                    call.accept_fallback, call.newcomers_ok, call.step = fallback, novices, step
                    probes.append(call)
    return probes


class SelectionMachine(RandomCenterMachine):
    """The random-center router machine, with ``agent_for`` checked against the reference."""

    @initialize(seed=st.integers(0, 2**32 - 1), staffed=st.floats(0.0, 1.0))
    def open_center(self, seed: int, staffed: float) -> None:
        """Open a random center (as the router machine does) whose groups are larger and
        often share one level, so that agents tie on level; a ``staffed`` share logs in."""
        rng = random.Random(seed)
        data = random_center_data(rng)
        extension = 100
        for group in data["agent_groups"].values():
            group["count"] = rng.randint(1, 5)
            group["level_spread"] = rng.choice([0, 0, 1, 2])
            group["first_extension"] = extension
            extension += group["count"]
        config, agents = build(data)
        self._sb = Switchboard(config, agents)
        for agent_id in list(self.sb.agents):
            if rng.random() < staffed:
                self.sb.login(agent_id)
        self.sb.check()

    @precondition(lambda self: self._sb is not None
                  and bool(self.sb.agents_in(AgentState.READY)))
    @rule(data=st.data(), dt=st.sampled_from([0.0, 1.0, 4.0]))
    def short_break(self, data: st.DataObject, dt: float) -> None:
        """A ready agent pauses and, ``dt`` later, is ready again: ready agents come to differ
        in idle time (more than calls alone make them), so the selection's ties are tested."""
        agent_id = self.choose(data, self.sb.agents_in(AgentState.READY))
        reason = self.choose(data, list(self.sb.config.pause_reasons))
        self.act(lambda: self.sb.pause(agent_id, reason))
        self.act(lambda: self.sb.advance(self.sb.now + dt))
        self.agent_request(agent_id, lambda: self.sb.make_ready(agent_id))

    @invariant()
    def agent_for_is_the_reference_choice(self) -> None:
        """For every waiting call and every probe call, ``agent_for`` returns the very agent
        the reference ranks first, or None exactly when no ready agent may take the call."""
        if self._sb is None:
            return
        router = self.sb.router
        f, now = router._f, self.sb.now
        ready_order = {agent_id: v.ready_order for agent_id, v in self.sb.agents.items()}
        waiting = [c for c in f.calls.values() if c.state is CallState.QUEUED]
        for call in waiting + probe_calls(f, router.policy, now):
            got = agent_for(f, now, call)
            best = reference_best(f, router.policy, now, call, ready_order)
            where = (call.id, call.language, call.country, call.step,
                     router.policy.queues[call.q.name].agent_selection.value)
            assert got is best, (where, got.profile.id if got else None,
                                 best.profile.id if best else None)
            assert got is None or (got.state is AgentState.READY and eligible(got, call)), where


TestSelectionAgainstReference = SelectionMachine.TestCase
TestSelectionAgainstReference.settings = settings(
    max_examples=80, stateful_step_count=50, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])


def test_of_two_agents_idle_since_one_moment_the_first_ready_takes_the_call() -> None:
    """Two agents ready since the same moment, in one ready line or in two: the call goes to
    the one that became ready first (here the later on the roster), whichever line each
    stands in, as ``selection_key`` ranks them."""
    for kyiv in (False, True):  # "a" in b's line, or in a line of its own at the other site
        a = agent("a", site="kyiv") if kyiv else agent("a")
        tech = queue("tech", routing={"sites": "all", "site_affinity": False})
        config, agents = build(center_data([a, agent("b")], {"tech": tech}))
        router = Router(center_policy(config), agents)
        router.login(0.0, "b")
        router.login(0.0, "a")
        f = router._f
        first = min(f.agents.values(), key=lambda x: selection_key(f, 0.0, f.queues["tech"], x))
        assert first.profile.id == "b"
        offer = one(router.call_arrived(0.0, "c1", "tech", "ru", "RU"), Offer)
        assert offer.agent_id == "b", (kyiv, offer.agent_id)


def test_after_a_reload_the_longest_idle_agent_takes_the_call_across_lines() -> None:
    """A config reload logs every ready agent back in at one instant, longest idle first: the
    next call still goes to the agent that had been idle longest, also when the two agents
    stand in different ready lines (two sites) and the other is earlier on the roster."""
    from recordkit import AnsweringOwner

    from acd.config.load import LoadedCenter
    from acd.runtime.router_service import RouterService
    from acd.service.reload import ObserverGate, rebuild
    from acd.testing.capture import capture_outputs
    from acd.testing.clock import ManualClock

    tech = queue("tech", routing={"sites": "all", "site_affinity": False})
    config, agents = build(center_data([agent("a", site="kyiv"), agent("b")], {"tech": tech}))
    center = LoadedCenter("test-center.yaml", config, agents)
    clock = ManualClock()
    service = RouterService(center, clock)
    service.login("b")  # idle since 0
    clock.advance(60.0)
    service.login("a")  # idle since 60, but first on the roster
    clock.advance(60.0)
    rebuild(service, center, {}, ObserverGate(), lambda _agent: None)
    with capture_outputs(service) as outputs:
        service.call_arrived(AnsweringOwner(service), "c1", "tech", "ru", "RU")
    assert [o.agent_id for o in outputs if isinstance(o, Offer)] == ["b"]
