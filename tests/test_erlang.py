"""Erlang B/C/A formulas against reference values and an independently solved Markov chain."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.erlang import (
    ErlangA,
    agents_for_service_level,
    agents_per_interval,
    asa_c,
    erlang_b,
    erlang_c,
    occupancy_c,
    offered_load,
    service_level_a,
    service_level_c,
)

RATE, AHT, THRESHOLD, TARGET = 0.5, 180.0, 20.0, 0.85


def test_reference_center_service_level() -> None:
    """0.5 calls/s with AHT 180 s gives SL(20 s) 87.37% with 98 agents and 83.35% with 97."""
    assert round(100 * service_level_c(RATE, AHT, 98, THRESHOLD), 2) == 87.37
    assert round(100 * service_level_c(RATE, AHT, 97, THRESHOLD), 2) == 83.35


def test_reference_center_staffing_is_98() -> None:
    """98 is the smallest Erlang C staffing for 85% within 20 s at 90 Erlangs."""
    assert agents_for_service_level(RATE, AHT, THRESHOLD, TARGET) == 98


def test_erlang_b_table_value() -> None:
    """Erlang B of 5 Erlangs on 10 lines is the textbook 1.84%."""
    assert erlang_b(10, 5.0) == pytest.approx(0.018385, abs=1e-6)


def _erlang_c_by_factorials(agents: int, load: float) -> float:
    """Erlang C from its defining sum, in log space so that large staffing does not overflow."""
    log_terms = [k * math.log(load) - math.lgamma(k + 1) for k in range(agents)]
    log_last = (
        agents * math.log(load) - math.lgamma(agents + 1) + math.log(agents / (agents - load))
    )
    top = max([*log_terms, log_last])
    total = sum(math.exp(t - top) for t in log_terms) + math.exp(log_last - top)
    return math.exp(log_last - top) / total


@pytest.mark.parametrize(("agents", "load"), [(3, 2.0), (98, 90.0), (480, 460.0), (900, 850.5)])
def test_erlang_c_matches_defining_sum(agents: int, load: float) -> None:
    """The Erlang B recursion gives the same Erlang C as the defining sum, even for 900 agents."""
    assert erlang_c(agents, load) == pytest.approx(_erlang_c_by_factorials(agents, load), rel=1e-9)


def test_erlang_c_asa_and_occupancy() -> None:
    """ASA is C * AHT / (c - a) and occupancy is a / c; an unstable queue has infinite ASA."""
    c = erlang_c(98, 90.0)
    assert asa_c(RATE, AHT, 98) == pytest.approx(c * AHT / 8)
    assert occupancy_c(RATE, AHT, 98) == pytest.approx(90 / 98)
    assert asa_c(RATE, AHT, 90) == math.inf
    assert service_level_c(RATE, AHT, 90, THRESHOLD) == 0.0


def _chain(rate: float, aht: float, agents: int, patience: float, queue_cap: int) -> np.ndarray:
    """Stationary distribution of the M/M/c+M birth-death chain, solved from Q^T pi = 0."""
    size = agents + queue_cap + 1
    states = np.arange(size)
    deaths = np.minimum(states, agents) / aht + np.maximum(states - agents, 0) / patience
    generator = np.zeros((size, size))
    generator[states[:-1], states[:-1] + 1] = rate
    generator[states[1:], states[1:] - 1] = deaths[1:]
    generator[states, states] = -generator.sum(axis=1)
    system = np.vstack([generator.T, np.ones(size)])
    rhs = np.zeros(size + 1)
    rhs[-1] = 1.0
    pi, *_ = np.linalg.lstsq(system, rhs, rcond=None)
    return np.asarray(pi)


def _tagged_call(
    agents: int, aht: float, patience: float, queue_cap: int, threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For a call with i callers ahead: P(answered), E[wait; answered], P(answered by threshold).

    The last is computed by uniformizing the tagged call's own absorbing chain.
    """
    ahead = np.arange(queue_cap)
    moves = agents / aht + ahead / patience  # someone ahead is answered or abandons
    theta = 1.0 / patience
    p_served = np.cumprod(moves / (moves + theta))
    mean_part = np.zeros(queue_cap)
    previous = 0.0
    for i in range(queue_cap):
        previous = p_served[i] / (moves[i] + theta) + moves[i] / (moves[i] + theta) * previous
        mean_part[i] = previous
    # States 0..cap-1 = callers ahead, cap = answered (absorbing); abandoning leaks out.
    uniform_rate = float(moves.max() + theta)
    step = np.zeros((queue_cap + 1, queue_cap + 1))
    step[ahead, ahead] = 1.0 - (moves + theta) / uniform_rate
    step[ahead[1:], ahead[:-1]] = moves[1:] / uniform_rate
    step[0, queue_cap] = moves[0] / uniform_rate
    step[queue_cap, queue_cap] = 1.0
    answered = np.zeros(queue_cap + 1)
    answered[queue_cap] = 1.0
    mean_jumps = uniform_rate * threshold
    weight = math.exp(-mean_jumps)
    by_threshold = np.zeros(queue_cap + 1)
    for k in range(int(mean_jumps + 20 * math.sqrt(mean_jumps) + 50)):
        by_threshold += weight * answered
        answered = step @ answered
        weight *= mean_jumps / (k + 1)
    return p_served, mean_part, by_threshold[:queue_cap]


@pytest.mark.parametrize(
    ("rate", "aht", "agents", "patience"),
    [
        (0.5, 180.0, 90, 300.0),
        (0.5, 180.0, 80, 120.0),
        (0.1, 60.0, 5, 30.0),
        (0.5, 180.0, 98, 600.0),
    ],
)
def test_erlang_a_matches_birth_death_chain(
    rate: float, aht: float, agents: int, patience: float
) -> None:
    """Every Erlang A measure equals the one computed from the numerically solved chain."""
    cap = 400
    pi = _chain(rate, aht, agents, patience, cap)
    p_served, mean_part, by_threshold = _tagged_call(agents, aht, patience, cap + 1, THRESHOLD)
    free = pi[:agents].sum()
    queued = pi[agents:]
    answered = free + float(queued @ p_served)
    queue = ErlangA(rate, aht, agents, patience)
    assert queue.p_wait == pytest.approx(queued.sum(), rel=1e-7)
    assert queue.p_abandon == pytest.approx(1.0 - answered, rel=1e-7)
    mean_queue = float(np.arange(cap + 1) @ queued)
    assert queue.p_abandon == pytest.approx(mean_queue / patience / rate, rel=1e-7)
    assert queue.answer_rate == pytest.approx(answered, rel=1e-9)
    assert queue.mean_wait == pytest.approx(mean_queue / rate, rel=1e-7)
    assert queue.asa == pytest.approx(float(queued @ mean_part) / answered, rel=1e-7)
    within = free + float(queued @ by_threshold)
    assert queue.sl_offered(THRESHOLD) == pytest.approx(within, rel=1e-7)
    assert queue.sl_answered(THRESHOLD) == pytest.approx(within / answered, rel=1e-7)
    assert queue.occupancy == pytest.approx(rate * aht * answered / agents, rel=1e-9)


def test_erlang_a_with_huge_patience_is_erlang_c() -> None:
    """As patience grows without bound, Erlang A converges to Erlang C at the reference load."""
    queue = ErlangA(RATE, AHT, 98, 1e9)
    assert queue.p_wait == pytest.approx(erlang_c(98, 90.0), rel=1e-6)
    assert queue.sl_offered(THRESHOLD) == pytest.approx(0.8736979568, rel=1e-6)
    assert queue.sl_answered(THRESHOLD) == pytest.approx(0.8736979568, rel=1e-6)
    assert queue.asa == pytest.approx(asa_c(RATE, AHT, 98), rel=1e-6)
    assert queue.p_abandon < 1e-7


def test_erlang_a_infinite_patience_is_exactly_erlang_c() -> None:
    """patience=inf is Erlang C itself, and refuses an unstable load."""
    queue = ErlangA(RATE, AHT, 98, math.inf)
    assert queue.sl_offered(THRESHOLD) == service_level_c(RATE, AHT, 98, THRESHOLD)
    assert queue.p_abandon == 0.0
    with pytest.raises(ValueError, match="unstable"):
        ErlangA(RATE, AHT, 90, math.inf)


def test_erlang_a_overload_sheds_the_excess() -> None:
    """With long patience and too few agents, the abandon rate approaches 1 - c*mu/lambda."""
    queue = ErlangA(2.0, 300.0, 500, 1e6)
    assert queue.p_abandon == pytest.approx(1 - 500 / 600, rel=1e-4)
    assert queue.occupancy == pytest.approx(1.0, rel=1e-4)


def test_erlang_a_without_agents_loses_every_call() -> None:
    """No agents: every call abandons and no call is answered, so sl_answered is undefined."""
    queue = ErlangA(RATE, AHT, 0, 300.0)
    assert queue.p_abandon == pytest.approx(1.0)
    assert queue.sl_offered(THRESHOLD) == 0.0
    assert math.isnan(queue.sl_answered(THRESHOLD))


def test_erlang_a_large_center_is_finite() -> None:
    """A 1,000-agent center at 950 Erlangs gives probabilities inside [0, 1], quickly."""
    queue = ErlangA(950 / 300, 300.0, 1000, 60.0)
    assert 0 < queue.p_abandon < queue.p_wait < 1
    assert 0 < queue.sl_offered(THRESHOLD) < queue.sl_answered(THRESHOLD) <= 1


def test_staffing_with_erlang_a_is_minimal() -> None:
    """The Erlang A staffing meets the target and one agent fewer does not."""
    agents = agents_for_service_level(RATE, AHT, THRESHOLD, TARGET, model="A", patience=300.0)
    assert service_level_a(RATE, AHT, agents, 300.0, THRESHOLD) >= TARGET
    assert service_level_a(RATE, AHT, agents - 1, 300.0, THRESHOLD) < TARGET
    answered = agents_for_service_level(
        RATE, AHT, THRESHOLD, TARGET, model="A", patience=300.0, measure="answered"
    )
    assert ErlangA(RATE, AHT, answered, 300.0).sl_answered(THRESHOLD) >= TARGET
    assert ErlangA(RATE, AHT, answered - 1, 300.0).sl_answered(THRESHOLD) < TARGET


def test_staffing_per_interval() -> None:
    """Each interval gets the scalar staffing of its own rate; an empty interval needs nobody."""
    rates = [0.0, 0.1, 0.5, 2.0]
    staffing = agents_per_interval(rates, AHT, THRESHOLD, TARGET)
    assert staffing.tolist() == [
        0,
        *(agents_for_service_level(r, AHT, THRESHOLD, TARGET) for r in rates[1:]),
    ]
    assert staffing[2] == 98
    with_aht = agents_per_interval([0.5, 0.5], [180.0, 90.0], THRESHOLD, TARGET, "A", 300.0)
    assert with_aht[0] > with_aht[1]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: erlang_b(-1, 1.0), "agents"),
        (lambda: offered_load(-0.1, 180.0), "rate"),
        (lambda: offered_load(0.1, 0.0), "aht"),
        (lambda: ErlangA(0.1, 180.0, 5, 0.0), "patience"),
        (lambda: agents_for_service_level(0.5, 180.0, 20.0, 1.0), "target"),
        (lambda: agents_for_service_level(0.5, 180.0, 20.0, 0.8, model="A"), "patience"),
        (lambda: agents_for_service_level(0.5, 180.0, 20.0, 0.8, model="B"), "model"),  # type: ignore[arg-type]
        (lambda: agents_per_interval([[0.5]], 180.0, 20.0, 0.8), "interval"),
    ],
)
def test_bad_arguments_are_refused(call: object, message: str) -> None:
    """Invalid inputs raise ValueError naming the bad argument."""
    assert callable(call)
    with pytest.raises(ValueError, match=message):
        call()


loads = st.floats(min_value=0.5, max_value=300.0)
agent_counts = st.integers(min_value=1, max_value=400)
patiences = st.floats(min_value=5.0, max_value=3600.0)


@settings(max_examples=60, deadline=None)
@given(load=loads, agents=agent_counts, threshold=st.floats(min_value=0.0, max_value=120.0))
def test_erlang_c_service_level_rises_with_agents(
    load: float, agents: int, threshold: float
) -> None:
    """One more agent never lowers the Erlang C service level."""
    rate = load / AHT
    assert service_level_c(rate, AHT, agents + 1, threshold) >= service_level_c(
        rate, AHT, agents, threshold
    )


@settings(max_examples=60, deadline=None)
@given(load=loads, extra=st.floats(min_value=0.01, max_value=50.0), agents=agent_counts)
def test_erlang_c_service_level_falls_with_load(load: float, extra: float, agents: int) -> None:
    """More offered load never raises the Erlang C service level."""
    low = service_level_c(load / AHT, AHT, agents, THRESHOLD)
    high = service_level_c((load + extra) / AHT, AHT, agents, THRESHOLD)
    assert high <= low + 1e-12


@settings(max_examples=40, deadline=None)
@given(load=loads, agents=agent_counts, patience=patiences)
def test_erlang_a_more_agents_fewer_abandons_better_service(
    load: float, agents: int, patience: float
) -> None:
    """One more agent never raises Erlang A abandonment nor lowers either service level."""
    rate = load / AHT
    fewer = ErlangA(rate, AHT, agents, patience)
    more = ErlangA(rate, AHT, agents + 1, patience)
    assert more.p_abandon <= fewer.p_abandon + 1e-12
    # Round-off: in a queue overloaded several times over both SLs are ~1e-12 apart from 0.
    assert more.sl_offered(THRESHOLD) >= fewer.sl_offered(THRESHOLD) - 1e-9
    assert 0.0 <= more.p_abandon <= more.p_wait <= 1.0


@settings(max_examples=40, deadline=None)
@given(load=loads, agents=agent_counts, patience=patiences)
def test_erlang_a_abandonment_matches_conditional_formula(
    load: float, agents: int, patience: float
) -> None:
    """P(abandon) = P(wait) * (1/(rho*A) + 1 - 1/rho), Mandelbaum & Zeltyn's closed form."""
    rate = load / AHT
    queue = ErlangA(rate, AHT, agents, patience)
    rho = load / agents
    x, y = agents * patience / AHT, rate * patience
    # A = sum_j y^j / ((x+1)...(x+j)), summed directly here in plain floats.
    total, term, j = 1.0, 1.0, 0
    while term > 1e-18 * total or y > x + j:
        j += 1
        term *= y / (x + j)
        total += term
        if total > 1e250:
            return  # A overflows a plain float; the module's log-space sum covers this case
    expected = queue.p_wait * (1 / (rho * total) + 1 - 1 / rho)
    assert queue.p_abandon == pytest.approx(expected, rel=1e-6, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(load=loads, target=st.floats(min_value=0.5, max_value=0.99))
def test_erlang_c_staffing_is_the_smallest_meeting_target(load: float, target: float) -> None:
    """The staffing meets the target and one agent fewer misses it, for any load and target."""
    rate = load / AHT
    agents = agents_for_service_level(rate, AHT, THRESHOLD, target)
    assert service_level_c(rate, AHT, agents, THRESHOLD) >= target
    assert service_level_c(rate, AHT, agents - 1, THRESHOLD) < target
