"""IVR in the simulator: every arrival walks the real call flow before it reaches the router.

The traffic forecast already says which queue and language a call is for, so the simulated
caller's key presses are FORCED where they decide the queue or the language: the digit path
for each (queue, language) is found once by exploring the flow graph and cached as a copy of
the flow whose menus on that path always give the forced answer. Everything else comes from the
flow itself: prompt lengths (time in IVR), abandons during the IVR, customer lookups, business
hours and holidays (after-hours voicemail), callback offers against the router's wait estimate.
A key press the flow cannot force (no path to the queue or language) stays random.
"""

from __future__ import annotations

import dataclasses
import heapq
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from acd.config.schema import CenterConfig
from ivr import flow as f
from ivr.conditions import CURRENT_QUEUE, Combine, Condition, VarIn
from ivr.engine import CallContext
from ivr.known import known_from_center
from ivr.loader import load_flow
from ivr.simulated import EstimateWaitFn, SimulatedCaller
from sim.traffic import Arrival

#: A forced answer of "no input" (the caller lets the prompt time out).
NO_INPUT: None = None
#: Outcome statuses that hand the call to the router.
QUEUED = frozenset({"queued", "hop_limit"})

# (node id, language, queue): what the exploration tracks; answers are keyed by node id.
_State = tuple[str, str, str]
_FREE = "\x00free"
# An edge: the answer that takes it (or _FREE), the next state, and its cost.
_Edge = tuple[str | None, _State, int]
#: Cost of a branch case that depends on chance (clock, customer card, wait): branches usually
#: test the exception (a VIP, a complaint), so a path through ``otherwise`` is preferred.
_CHANCE_COST = 100
_UNREACHED = 1 << 60


def load_sim_flow(path: str | Path, config: CenterConfig) -> f.Flow:
    """Load and check a flow against the center's names (cached per path and center)."""
    known = known_from_center(config)
    # The names a flow is checked against decide the result, so they are part of the key.
    key = (str(Path(path).resolve()), repr(known))
    flow = _FLOWS.get(key)
    if flow is None:
        flow = _FLOWS[key] = load_flow(path, known)
    return flow


_FLOWS: dict[tuple[str, str], f.Flow] = {}


def _collect_value(node: f.CollectDigits) -> str:
    """A digit string the node accepts: its most likely simulated answer, else ones."""
    for _, value in node.sim.choices:
        if (value is not None and value.isdigit()
                and node.min_digits <= len(value) <= node.max_digits):
            return value
    return "1" * max(1, node.min_digits)


def _decide(cond: Condition, language: str, queue: str, country: str) -> bool | None:
    """A condition's value when it depends only on language, queue or country; else None."""
    if isinstance(cond, VarIn):
        known = {"language": language, "queue": queue, "country": country}
        return known[cond.name] in cond.values if cond.name in known else None
    if isinstance(cond, Combine):
        parts = [_decide(p, language, queue, country) for p in cond.parts]
        if cond.op == "not":
            return None if parts[0] is None else not parts[0]
        stop = cond.op == "any"  # any: one True decides; all: one False decides
        if stop in parts:
            return stop
        return None if None in parts else not stop
    return None


def _branch_edges(node: f.Branch, state: _State, country: str) -> list[_Edge]:
    _, language, queue = state
    out: list[_Edge] = []
    for cond, target in node.cases:
        decided = _decide(cond, language, queue, country)
        if decided is False:
            continue
        out.append((_FREE, (target, language, queue), 1 if decided else _CHANCE_COST))
        if decided:
            return out
    return [*out, (_FREE, (node.otherwise, language, queue), 1)]


def _edges(node: f.Node, language: str, queue: str, country: str) -> list[_Edge]:
    """Where a caller in (language, queue) can go from ``node``, labelled by the answer."""
    def to(nid: str, lang: str = language, q: str = queue) -> _State:
        return nid, lang, q

    if isinstance(node, f.Menu):
        out: list[_Edge] = []
        for digit, opt in node.options.items():
            out.append((digit, to(opt.next, opt.set.get("language", language),
                                  opt.set.get("queue", queue)), 1))
        # No input costs a little more: a caller who wants a queue presses its key.
        out.append((NO_INPUT, to(node.on_fail), 2))
        return out
    if isinstance(node, f.ChooseLanguage):
        out = [(digit, to(node.next, lang), 1) for digit, lang in node.options.items()]
        return [*out, (NO_INPUT, to(node.next), 1)]
    if isinstance(node, f.CollectDigits):
        return [(_collect_value(node), to(node.next), 1), (NO_INPUT, to(node.on_fail), 1)]
    if isinstance(node, f.Branch):
        return _branch_edges(node, (node.id, language, queue), country)
    if isinstance(node, f.SetVars):
        return [(_FREE, to(node.next, node.values.get("language", language),
                           node.values.get("queue", queue)), 1)]
    # Branches, callback offers, lookups, plays, voicemail: the caller does not choose here
    # (or, for a callback offer, the choice is the caller's own and stays random).
    return [(_FREE, to(t), 1) for t in node.targets()]


def _goal(node: f.Node, language: str, queue: str, want_queue: str,
          want_language: str | None) -> bool:
    if not isinstance(node, f.ToQueue):
        return False
    q = queue if node.queue in ("", CURRENT_QUEUE) else node.queue
    return q == want_queue and (want_language is None or language == want_language)


def forced_answers(flow: f.Flow, queue: str, language: str, country: str
                   ) -> dict[str, str | None] | None:
    """Answers per menu node that take a caller from ``country`` to ``queue`` in ``language``.

    Cheapest path over (node, language, queue). Branches on language, queue or country are
    decided; the others may go either way (clock, customer card, wait), and their cases cost
    more than ``otherwise``, so that forced answers hold on the path callers usually take.
    Falls back to reaching the queue in any language; None when the flow cannot reach it.
    """
    known = flow.known
    initial = known.countries.get(country, known.default_language)
    for want_language in (language, None):
        answers = _search(flow, initial, country, queue, want_language)
        if answers is not None:
            return answers
    return None


def _search(flow: f.Flow, initial_language: str, country: str, want_queue: str,
            want_language: str | None) -> dict[str, str | None] | None:
    start: _State = (flow.start, initial_language, flow.default_queue)
    best: dict[_State, int] = {start: 0}
    parent: dict[_State, tuple[_State, str | None] | None] = {start: None}
    todo: list[tuple[int, int, _State]] = [(0, 0, start)]
    order = 0
    while todo:
        cost, _, state = heapq.heappop(todo)
        if cost > best[state]:
            continue
        nid, lang, q = state
        node = flow.nodes[nid]
        if _goal(node, lang, q, want_queue, want_language):
            return _answers_on_path(flow, parent, state)
        for answer, nxt, step in _edges(node, lang, q, country):
            if nxt[0] in flow.nodes and cost + step < best.get(nxt, _UNREACHED):
                best[nxt] = cost + step
                parent[nxt] = (state, answer)
                order += 1
                heapq.heappush(todo, (cost + step, order, nxt))
    return None


def _answers_on_path(flow: f.Flow, parent: dict[_State, tuple[_State, str | None] | None],
                     goal: _State) -> dict[str, str | None]:
    answers: dict[str, str | None] = {}
    back = parent[goal]
    while back is not None:
        prev, answer = back
        if answer != _FREE and not isinstance(flow.nodes[prev[0]], f.CallbackOffer):
            # Walking back from the goal, the earliest visit of a node is written last and wins.
            answers[prev[0]] = answer
        back = parent[prev]
    return answers


def forced_flow(flow: f.Flow, answers: dict[str, str | None]) -> f.Flow:
    """A copy of ``flow`` whose nodes in ``answers`` always give that answer in simulation."""
    nodes = dict(flow.nodes)
    for nid, answer in answers.items():
        node = nodes[nid]
        spec = dataclasses.replace(node.sim, choices=((1.0, answer),), rest=answer)
        nodes[nid] = dataclasses.replace(node, sim=spec)
    return dataclasses.replace(flow, nodes=nodes, action_cache={})


@dataclass(frozen=True, slots=True)
class IvrResult:
    """How one arrival left the IVR: after ``elapsed_s``, with a status and routing fields."""

    elapsed_s: float
    status: str
    queue: str
    language: str
    priority: int
    customer_id: str | None


@dataclass
class IvrCost:
    """Wall-clock cost of the IVR walks in one run, to keep the engine honest about speed."""

    calls: int = 0
    seconds: float = 0.0

    @property
    def us_per_call(self) -> float:
        """Mean microseconds per simulated IVR walk."""
        return 1e6 * self.seconds / self.calls if self.calls else 0.0


class IvrCallers:
    """Walks arrivals through one flow with forced menu answers and a seeded random stream.

    ``epoch_s`` is the run's start as epoch seconds (flows test hours and holidays on it);
    ``estimate_wait(queue, language)`` is the router's wait estimate at the time of the walk.
    """

    def __init__(self, flow: f.Flow, epoch_s: float, rng: np.random.Generator,
                 estimate_wait: EstimateWaitFn | None = None) -> None:
        self.flow = flow
        self.epoch_s = epoch_s
        self.rng = rng
        self.estimate_wait = estimate_wait
        self.cost = IvrCost()
        self._callers: dict[tuple[str, str, str], SimulatedCaller] = {}

    def caller_for(self, queue: str, language: str, country: str) -> SimulatedCaller:
        """The simulated caller (a forced copy of the flow) for this kind of arrival."""
        key = (queue, language, country)
        caller = self._callers.get(key)
        if caller is None:
            answers = forced_answers(self.flow, queue, language, country)
            flow = forced_flow(self.flow, answers) if answers else self.flow
            # Every forced copy draws from the same generator: one reproducible stream.
            caller = self._callers[key] = SimulatedCaller(flow, self.rng,
                                                          estimate_wait=self.estimate_wait)
        return caller

    def walk(self, arrival: Arrival) -> IvrResult:
        """Walk one arrival through the flow (at its arrival time) and say where it went."""
        t0 = time.perf_counter()
        caller = self.caller_for(arrival.queue, arrival.language, arrival.country)
        ctx = CallContext(arrival.caller_number or "", self.epoch_s + arrival.t,
                          country=arrival.country)
        elapsed, outcome = caller.walk(ctx)
        result = IvrResult(elapsed, outcome.status, outcome.queue or arrival.queue,
                           outcome.language, outcome.priority + arrival.priority,
                           outcome.variables.get("customer_id") or arrival.customer_id)
        self.cost.calls += 1
        self.cost.seconds += time.perf_counter() - t0
        return result

    def paths(self) -> Iterator[tuple[tuple[str, str, str], str]]:
        """(queue, language, country) and the forced answers, for reports and tests."""
        for key, caller in sorted(self._callers.items()):
            forced = [f"{nid}={node.sim.rest or '-'}" for nid, node in caller.flow.nodes.items()
                      if node is not self.flow.nodes[nid]]
            yield key, ", ".join(forced)


def estimate_from(fn: Callable[[str], float]) -> EstimateWaitFn:
    """Adapt a per-queue wait estimate (the router's ``ewt_new``) to the IVR's signature."""
    return lambda queue, _language: fn(queue)
