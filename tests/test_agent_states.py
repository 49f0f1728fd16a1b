"""The agent transition table: what it allows, what it refuses, and that the router keeps to it."""

from __future__ import annotations

import random

import pytest
from routerkit import Switchboard, agent, build, center_data, drive, of_type

from acd.config.policy import center_policy
from acd.core import agent_states
from acd.core.agent_states import AGENT_TRANSITIONS, allowed, legal, set_state
from acd.core.errors import IllegalAgentMove
from acd.core.floor import Floor
from acd.core.model import AgentState, AgentStateChanged


def test_every_state_has_a_way_out_and_every_event_a_source() -> None:
    """Each agent state can be left on some event, and each listed move names a target."""
    sources = {state for state, _event in AGENT_TRANSITIONS}
    assert sources == set(AgentState)
    assert all(AGENT_TRANSITIONS.values())
    assert allowed(AgentState.ON_CALL, agent_states.OFFER) == frozenset()
    assert allowed(AgentState.WRAP_UP, agent_states.WRAP_UP_ENDED) == {
        AgentState.READY, AgentState.PAUSED, AgentState.LOGGED_OUT}


def test_illegal_move_names_the_state_and_the_event() -> None:
    """Offering a call to a logged-out agent is refused with its state and the event named."""
    config, agents = build(center_data([agent("a")]))
    floor = Floor(center_policy(config), agents)
    a = floor.agents["a"]
    with pytest.raises(IllegalAgentMove, match=r"'a' is logged_out: on 'offer' it cannot go "
                                                r"to ringing \(from logged_out, 'offer' may go "
                                                r"to: nowhere\)"):
        set_state(floor, 0.0, a, agent_states.OFFER, AgentState.RINGING, None)
    assert a.state is AgentState.LOGGED_OUT and floor.out == []


def test_a_legal_target_on_the_wrong_event_is_refused() -> None:
    """Logging in may make an agent ready; the same target on 'answer' is refused."""
    config, agents = build(center_data([agent("a")]))
    floor = Floor(center_policy(config), agents)
    a = floor.agents["a"]
    with pytest.raises(IllegalAgentMove, match="on 'answer'"):
        set_state(floor, 0.0, a, agent_states.ANSWER, AgentState.READY, None)
    set_state(floor, 0.0, a, agent_states.LOGIN, AgentState.READY, None)
    assert a.state is AgentState.READY
    assert of_type(floor.out, AgentStateChanged)[0].state is AgentState.READY


def test_random_router_days_only_make_moves_the_table_lists() -> None:
    """Random interleavings raise no illegal move, and each agent's changes follow the table."""
    data = center_data([agent("a"), agent("b", site="kyiv"), agent("c", newcomer=True)])
    sb = Switchboard(*build(data))
    drive(sb, random.Random(7), 600)
    moves = {(state, target) for (state, _event), targets in AGENT_TRANSITIONS.items()
             for target in targets}
    last = dict.fromkeys(sb.agents, AgentState.LOGGED_OUT)
    seen: set[tuple[AgentState, AgentState]] = set()
    for change in of_type(sb.log, AgentStateChanged):
        move = (last[change.agent_id], change.state)
        assert move in moves, move
        seen.add(move)
        last[change.agent_id] = change.state
    assert len(seen) >= 8  # the drive reached most of the table, not just login and logout


def test_the_quick_legality_check_agrees_with_the_table() -> None:
    """For every state, event and target, ``legal`` allows exactly the moves the table lists."""
    events = {event for _state, event in AGENT_TRANSITIONS}
    for old in AgentState:
        for event in events | {"no_such_event"}:
            for target in AgentState:
                assert legal(old, event, target) == (target in allowed(old, event)), \
                    (old, event, target)
