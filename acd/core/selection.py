"""Who takes which call: eligibility, the agent a waiting call gets, the call a freed agent
takes, and the buckets waiting calls sit in (see :mod:`acd.core.router` for why buckets).

Functions over the :class:`~acd.core.floor.Floor`; they choose, the router offers.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Sequence

from acd.core.agent_states import occupancy
from acd.core.floor import AgentRt, CallRt, Floor, QueueRt
from acd.core.policy import AgentSelection

# Newcomer tiers a call looks at, in order (each a tuple of ``newcomer`` flags).
_TENURED_ONLY: tuple[tuple[bool, ...], ...] = ((False,),)
_NEWCOMERS_LAST: tuple[tuple[bool, ...], ...] = ((False,), (True,))
_ANYONE: tuple[tuple[bool, ...], ...] = ((False, True),)


def eligible(agent: AgentRt, call: CallRt) -> bool:
    """True when ``agent`` may take ``call`` under the call's current routing rule."""
    p = agent.profile
    level = p.skills.get(call.q.skill)
    if level is None or level < call.min_level:
        return False
    if not call.all_sites and p.site != call.home_site:
        return False
    if p.countries is not None and call.country not in p.countries:
        return False
    return not (p.newcomer and not call.newcomers_ok)


def agent_for(f: Floor, now: float, call: CallRt) -> AgentRt | None:
    """The best ready agent for a waiting call, or None.

    Candidates are taken tier by tier: home site before other sites (site affinity), then
    tenured before newcomers (``last_resort``); the first tier with an eligible agent wins.
    """
    q = call.q
    tiers_key = (call.home_site, call.all_sites, q.site_affinity)
    site_tiers = f.site_tiers.get(tiers_key)
    if site_tiers is None:
        site_tiers = f.site_tiers[tiers_key] = tiers_for(f, *tiers_key)
    if not call.newcomers_ok:
        novice_tiers = _TENURED_ONLY
    elif q.newcomers_last_resort:
        novice_tiers = _NEWCOMERS_LAST
    else:
        novice_tiers = _ANYONE
    skill = q.skill
    langs = (call.language, *call.fallbacks) if call.accept_fallback else (call.language,)
    ready = f.ready
    longest_idle = q.longest_idle
    for sites in site_tiers:
        for novices in novice_tiers:
            best: AgentRt | None = None
            best_key: tuple[float, ...] | None = None
            for lang in langs:
                for site in sites:
                    for novice in novices:
                        group = ready.get((skill, lang, site, novice))
                        if not group:
                            continue
                        if longest_idle:
                            # Each dict is in idle order: its first eligible agent is its
                            # longest idle; the best of the dicts' firsts wins.
                            for agent in group.values():
                                if eligible(agent, call):
                                    if best is None or agent.idle_since < best.idle_since \
                                            or (agent.idle_since == best.idle_since
                                                and agent.index < best.index):
                                        best = agent
                                    break
                            continue
                        for agent in group.values():
                            if not eligible(agent, call):
                                continue
                            key = selection_key(f, now, q, agent)
                            if best_key is None or key < best_key:
                                best, best_key = agent, key
            if best is not None:
                return best
    return None


def selection_key(f: Floor, now: float, q: QueueRt, agent: AgentRt) -> tuple[float, ...]:
    """The agent's rank under the queue's agent selection (smallest first)."""
    policy = q.selection
    if policy is AgentSelection.highest_proficiency:
        return (-agent.profile.skills[q.skill], agent.idle_since, agent.index)
    if policy is AgentSelection.least_occupied:
        return (occupancy(now, agent), agent.idle_since, agent.index)
    if policy is AgentSelection.round_robin:
        return ((agent.index - q.rr_last - 1) % len(f.agents),)
    return (agent.idle_since, agent.index)


def tiers_for(f: Floor, home: str | None, all_sites: bool, affinity: bool
              ) -> tuple[tuple[str, ...], ...]:
    """The sites a call looks at, tier by tier: home first under site affinity."""
    if not all_sites:
        return ((home,),) if home is not None else ()
    if home is None or not affinity:
        return (f.sites,)
    return ((home,), tuple(s for s in f.sites if s != home))


def call_for(f: Floor, agent: AgentRt) -> CallRt | None:
    """The best waiting call for a freed agent, or None."""
    best: CallRt | None = None
    best_key: tuple[int, float, int] | None = None
    buckets = f.buckets
    for key in f.agent_buckets[agent.profile.id]:
        b = buckets.get(key)
        if not b:
            continue
        for neg_prio, seq, call in b:
            if best_key is not None and neg_prio > best_key[0]:
                break
            if eligible(agent, call):
                k = (neg_prio, call.arrived + call.q.sort_offset, seq)
                if best_key is None or k < best_key:
                    best, best_key = call, k
                break
    return best


# --- buckets


def bucket_in(f: Floor, call: CallRt, langs: Sequence[str]) -> None:
    """Put a waiting call into its queue's line and its buckets for ``langs``."""
    entry = (-call.priority, call.seq, call)
    qn = call.q.name
    buckets = f.buckets
    if not call.buckets:
        insort(call.q.line, entry[:2])
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
    key = (-call.priority, call.seq)
    line = call.q.line
    i = bisect_left(line, key)
    if i < len(line) and line[i] == key:
        del line[i]
    for b in call.buckets:
        i = bisect_left(b, key)
        if i < len(b) and b[i][2] is call:
            del b[i]
    call.buckets = []


# --- estimates


def ahead(call: CallRt) -> int:
    """Calls waiting ahead of ``call`` in its queue."""
    return bisect_left(call.q.line, (-call.priority, call.seq))


def ewt_for(f: Floor, q: QueueRt, ahead: int) -> float:
    """Estimated wait behind ``ahead`` calls: calls ahead x AHT / staffed agents."""
    staffed = f.staffed[q.skill]
    if staffed == 0:
        return float("inf")
    return (ahead + 1) * q.aht_s / staffed
