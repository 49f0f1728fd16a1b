"""Who takes which call: eligibility, the agent a waiting call gets, the call a freed agent
takes, and the buckets waiting calls sit in (see :mod:`acd.core.router` for why buckets).

Functions over the :class:`~acd.core.floor.Floor`; they choose, the router offers.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Sequence
from heapq import heapify, heappop
from typing import Final

from acd.core.agent_states import occupancy
from acd.core.floor import AgentRt, CallRt, Floor, QueueRt
from acd.core.model import AgentProfile, AgentState, CallState
from acd.core.policy import AgentSelection

_INF: Final = float("inf")

# Newcomer tiers a call looks at, in order (each a tuple of ``newcomer`` flags). Final:
# compiled, a module constant is then a static, not a lookup in the module's dict.
_TENURED_ONLY: Final[tuple[tuple[bool, ...], ...]] = ((False,),)
_NEWCOMERS_LAST: Final[tuple[tuple[bool, ...], ...]] = ((False,), (True,))
_ANYONE: Final[tuple[tuple[bool, ...], ...]] = ((False, True),)


def eligible(agent: AgentRt, call: CallRt) -> bool:
    """True when ``agent`` may take ``call`` under the call's current routing rule."""
    p = agent.profile
    level = agent.skills.get(call.q.skill)
    if level is None or level < call.min_level:
        return False
    if not call.all_sites and p.site != call.home_site:
        return False
    if not serves(p, call.country):
        return False
    return not (p.newcomer and not call.newcomers_ok)


def serves(p: AgentProfile, country: str) -> bool:
    """``p`` takes calls from ``country`` (an agent without a country list takes any)."""
    return p.countries is None or country in p.countries


def agent_for(f: Floor, now: float, call: CallRt) -> AgentRt | None:
    """The best ready agent for a waiting call, or None.

    Candidates are taken tier by tier: home site before other sites (site affinity), then
    tenured before newcomers (``last_resort``); the first tier with an eligible agent wins.
    """
    q = call.q
    by_lang = q.ready
    if by_lang is None:
        return None
    site_tiers = sites_of(f, call)
    if not call.newcomers_ok:
        novice_tiers = _TENURED_ONLY
    elif q.newcomers_last_resort:
        novice_tiers = _NEWCOMERS_LAST
    else:
        novice_tiers = _ANYONE
    # The call's own language, then its fallbacks once a step allowed them (by index: no
    # tuple built per look, as ``call.langs()`` would).
    language, fallbacks = call.language, call.fallbacks
    n_langs = 1 + len(fallbacks) if call.accept_fallback else 1
    min_level, country = call.min_level, call.country
    longest_idle = q.longest_idle
    for sites in site_tiers:
        for novices in novice_tiers:
            best: AgentRt | None = None
            best_key: tuple[float, ...] | None = None
            for i in range(n_langs):
                by_site = by_lang.get(language if i == 0 else fallbacks[i - 1])
                if by_site is None:
                    continue
                for site in sites:
                    pair = by_site[site]
                    if pair is None:
                        continue
                    for novice in novices:
                        slot = pair[1 if novice else 0].head
                        if longest_idle:
                            # Each line is in idle order: its first eligible agent is its
                            # longest idle; the best of the lines' firsts wins. The line
                            # already holds the skill, language, site and newcomer tier the
                            # call looks at: what is left of ``eligible`` is the level (the
                            # slot's) and the agent's countries.
                            while slot is not None:
                                if slot.level >= min_level:
                                    agent = slot.agent
                                    if serves(agent.profile, country):
                                        if best is None or agent.idle_since < best.idle_since \
                                                or (agent.idle_since == best.idle_since
                                                    and agent.ready_seq < best.ready_seq):
                                            best = agent
                                        break
                                slot = slot.next
                            continue
                        while slot is not None:
                            agent = slot.agent
                            slot = slot.next
                            if not eligible(agent, call):
                                continue
                            key = selection_key(f, now, q, agent)
                            if best_key is None or key < best_key:
                                best, best_key = agent, key
            if best is not None:
                return best
    return None


def selection_key(f: Floor, now: float, q: QueueRt, agent: AgentRt) -> tuple[float, ...]:
    """The agent's rank under the queue's agent selection (smallest first). Of agents idle
    since the same moment (a shift start, a reload logging everyone back in longest idle
    first), the one that became ready first ranks first, as it stands ahead in its ready
    lines."""
    policy = q.selection
    if policy is AgentSelection.highest_proficiency:
        return (-agent.skills[q.skill], agent.idle_since, agent.ready_seq)
    if policy is AgentSelection.least_occupied:
        return (occupancy(now, agent), agent.idle_since, agent.ready_seq)
    if policy is AgentSelection.round_robin:
        return ((agent.index - q.rr_last - 1) % len(f.agents),)
    return (agent.idle_since, agent.ready_seq)


def sites_of(f: Floor, call: CallRt) -> tuple[tuple[int, ...], ...]:
    """The site numbers ``call`` looks at now, tier by tier: its home site only while its
    rule keeps it there; else every site, its home site first under site affinity. Read
    from the floor's tiers by the home site's number, without a key built or hashed."""
    home = call.home_at
    if not call.all_sites:
        return f.home_tiers[home] if home >= 0 else ()
    if home < 0 or not call.q.site_affinity:
        return f.all_tiers
    return f.affinity_tiers[home]


def call_for(f: Floor, agent: AgentRt) -> CallRt | None:
    """The best waiting call for a freed agent, or None."""
    best: CallRt | None = None
    best_key: tuple[int, float, int] | None = None
    for b in agent.buckets:
        if not b:
            continue
        for neg_prio, _arrived, seq, call in b:
            if best_key is not None and neg_prio > best_key[0]:
                break
            if eligible(agent, call):
                k = (neg_prio, call.arrived + call.q.sort_offset, seq)
                if best_key is None or k < best_key:
                    best, best_key = call, k
                break
    return best


# --- buckets


def place(call: CallRt) -> tuple[int, float, int]:
    """A waiting call's place in its queue's line and buckets: priority first, then arrival
    (a call restored with an earlier ``arrived_at``, after a restart or a failover, goes
    where it was), then the order the router took calls in (ties, and every call that
    arrived in the router's own time, whose arrival grows with it)."""
    return (-call.priority, call.arrived, call.seq)


def bucket_in(f: Floor, call: CallRt, langs: Sequence[str]) -> None:
    """Put a waiting call into its queue's line and its buckets for ``langs``."""
    entry = (-call.priority, call.arrived, call.seq, call)
    qn = call.q.name
    buckets = f.buckets
    if not call.buckets:
        insort(call.q.line, entry[:3])
    for lang in langs:
        b = buckets.get((qn, lang))
        if b is None:
            b = buckets[(qn, lang)] = []
        insort(b, entry)
        call.buckets.append(b)


def bucket_out(call: CallRt) -> None:
    """Take a call out of its queue's line and every bucket it sits in."""
    if not call.buckets:
        return
    key = place(call)
    line = call.q.line
    i = bisect_left(line, key)
    if i < len(line) and line[i] == key:
        del line[i]
    for b in call.buckets:
        i = bisect_left(b, key)
        if i < len(b) and b[i][3] is call:
            del b[i]
    call.buckets = []


# --- estimates


def ahead(call: CallRt) -> int:
    """Calls waiting ahead of ``call`` in its queue."""
    return bisect_left(call.q.line, place(call))


#: An on-call agent's remaining talk is taken as at least this share of the mean talk: talk
#: times vary widely, so a call past its mean is not about to end (a lognormal talk's mean
#: remaining life even grows with the time already talked).
RESIDUAL_FLOOR: Final = 0.5


def ewt_for(f: Floor, now: float, call: CallRt) -> float:
    """Estimated remaining wait of a waiting ``call`` at ``now``, from the floor's live state.

    Zero when an agent eligible for the call is ready (or the call already rings one);
    infinite when no logged-in agent could ever take it. Otherwise the call is served at its
    ``ahead + 1``-th *service opportunity* among the agents who may take it: an agent in
    wrap-up frees at its wrap-up's known end, a ready agent that only a later expansion step
    makes eligible frees at that step, and an agent ringing or on a call frees at a rate of
    one over its expected remaining handle time (mean talk less the talk elapsed, floored at
    :data:`RESIDUAL_FLOOR` of the mean, plus wrap-up). Agents join the pool at the expansion
    step that makes them eligible (:func:`pool_for`). ``ahead`` counts the calls waiting
    before this one in the buckets it waits in (its queue x the languages it accepts now).
    The estimate never exceeds the time left until the queue's maximum wait.

    It walks the pool once (a few microseconds compiled for a pool of 200), so it is computed
    when asked (announcements, a callback offer, the dialler's pacing), never per event.
    """
    if call.state is not CallState.QUEUED:
        return 0.0
    q = call.q
    entered = call.entered
    deadline = entered + q.max_wait_s
    applied = call.step
    step_after = q.step_after
    fixed: list[float] = []
    # Busy agents free at a rate; the pool is in step order, so the rates of the agents a step
    # admits are summed in ``rate`` and pass to ``joins``/``joined`` when the step changes.
    joins: list[float] = []
    joined: list[float] = []
    rate = 0.0
    group = applied
    group_at = now
    for agent, steps in pool_for(f, call):
        st = agent.state
        if st is AgentState.LOGGED_OUT or st is AgentState.PAUSED:
            continue
        since = now
        if steps > applied:
            since = entered + step_after[steps - 1]
            if since >= deadline:
                continue
            since = max(since, now)
        if st is AgentState.READY:
            if steps <= applied:
                return 0.0
            fixed.append(since)
        elif st is AgentState.WRAP_UP:
            # free_at is set as a wrap-up starts; one that began another way (restored after
            # a restart) is taken to last the queue's configured wrap-up.
            free = agent.free_at if agent.free_at >= agent.since else agent.since + q.wrap_up_s
            fixed.append(free if free > since else since)
        else:
            busy = agent.call
            bq = busy.q if busy is not None else q
            talk = bq.aht_s - bq.wrap_up_s
            if st is AgentState.ON_CALL:
                left = talk - (now - agent.since)
                talk = left if left > RESIDUAL_FLOOR * talk else RESIDUAL_FLOOR * talk
            handle = talk + bq.wrap_up_s
            if steps != group:
                if rate > 0.0:
                    joins.append(group_at)
                    joined.append(rate)
                rate, group, group_at = 0.0, steps, since
            rate += 1.0 / handle if handle > 1.0 else 1.0
    if rate > 0.0:
        joins.append(group_at)
        joined.append(rate)
    key = place(call)
    need = 1.0 + _waiting_before(f, q.name, call.language, key)
    if call.accept_fallback:
        for other in call.fallbacks:
            need += _waiting_before(f, q.name, other, key)
    heapify(fixed)  # usually only the first few are needed: cheaper than a sort
    wait = _opportunity(now, need, fixed, joins, joined, 1.0 / max(1.0, q.aht_s))
    return wait if wait == _INF else min(wait, max(0.0, deadline - now))


def pool_for(f: Floor, call: CallRt) -> list[tuple[AgentRt, int]]:
    """The agents who may ever take ``call`` in its queue, each with the number of the
    queue's expansion steps after which it may (at most the steps already applied when it
    may now), in that order. Built once per queue, language, country and step, from the
    roster alone."""
    q = call.q
    key = (q.name, call.language, call.country, call.step)
    pool = f.pools.get(key)
    if pool is not None:
        return pool
    pool = []
    level, sites = q.min_level, q.all_sites or call.home_site is None
    fallback, novices = False, q.newcomers_ok
    rules = [(level, sites, fallback, novices)]
    for step in q.expansion:
        if step.min_level is not None:
            level = min(level, step.min_level)
        sites = sites or bool(step.add_sites)
        fallback = fallback or step.accept_fallback_languages
        novices = novices or step.include_newcomers
        rules.append((level, sites, fallback, novices))
    skill = q.skill
    language, fallbacks, home, country = call.language, call.fallbacks, call.home_site, call.country
    applied = call.step
    n_rules = len(rules)
    # One list per step (roster order within it): their concatenation is the pool in step
    # order, without sorting.
    by_step: list[list[tuple[AgentRt, int]]] = [[] for _ in range(n_rules)]
    for agent in f.skilled.get(skill, ()):
        p = agent.profile
        langs = p.languages
        speaks = language in langs
        if not speaks:
            other = False
            for lang in fallbacks:
                if lang in langs:
                    other = True
                    break
            if not other:
                continue
        if p.countries is not None and country not in p.countries:
            continue
        have = p.skills[skill]
        novice = p.newcomer
        for steps in range(n_rules):
            lvl, all_sites, fb, nov = rules[steps]
            if have >= lvl and (speaks or fb) and (all_sites or p.site == home) \
                    and (nov or not novice):
                at = steps if steps > applied else applied
                by_step[at].append((agent, at))
                break
    for group in by_step:
        pool.extend(group)
    f.pools[key] = pool
    return pool


def _waiting_before(f: Floor, queue: str, language: str, key: tuple[int, float, int]) -> int:
    """Calls waiting in bucket ``(queue, language)`` before a call with ``key``."""
    b = f.buckets.get((queue, language))
    return bisect_left(b, key) if b else 0


def _opportunity(now: float, need: float, fixed: list[float], joins: list[float],
                 joined: list[float], rerate: float) -> float:
    """Seconds from ``now`` until ``need`` service opportunities have come.

    ``fixed`` (a heap, consumed) are single opportunities at known times; each such agent then
    serves a call and frees again at ``rerate``. At ``joins[i]`` (sorted) agents freeing at a total
    rate ``joined[i]`` join.
    """
    got = 0.0
    rate = 0.0
    t = now
    j = 0
    n_joins = len(joins)
    while fixed or j < n_joins:
        one = j >= n_joins or (len(fixed) > 0 and fixed[0] <= joins[j])
        at = fixed[0] if one else joins[j]
        if rate > 0.0 and got + rate * (at - t) >= need:
            return t + (need - got) / rate - now
        got += rate * (at - t)
        t = at
        if one:
            heappop(fixed)
            got += 1.0
            if got >= need:
                return at - now
            rate += rerate
        else:
            rate += joined[j]
            j += 1
    if rate > 0.0:
        return t + (need - got) / rate - now
    return _INF
