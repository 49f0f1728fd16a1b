"""Agent state changes: one transition table, and the moves the router makes with it.

:data:`AGENT_TRANSITIONS` says which state an agent may go to from which state on which event
(the h11 shape). Every change of an agent's state goes through :func:`set_state`, which
refuses a move the table does not list with :class:`~acd.core.errors.IllegalAgentMove`, naming
the state and the event: such a move is a bug in the router, never a refused request (requests
are checked, and refused, before anything moves).
"""

from __future__ import annotations

from typing import Final

from acd.core.errors import IllegalAgentMove
from acd.core.floor import AgentRt, Floor
from acd.core.model import AgentState, AgentStateChanged

# Events that move an agent.
LOGIN: Final = "login"
READY: Final = "ready"
PAUSE: Final = "pause"
LOGOUT: Final = "logout"
OFFER: Final = "offer"
ANSWER: Final = "answer"
#: The offer was not answered: ring timeout, or the dial failed.
NO_ANSWER: Final = "no_answer"
#: The call left while it rang the agent (caller hung up, or the call was withdrawn).
CALLER_GONE: Final = "caller_gone"
CALL_ENDED: Final = "call_ended"
WRAP_UP_ENDED: Final = "wrap_up_ended"
#: The ring-no-answer pause ran out (``rona_auto_ready_after_s``).
AUTO_READY: Final = "auto_ready"
#: After a restart: a logged-out agent is put straight back on the call (ringing, talking)
#: or the wrap-up it had, so it is never offered a call before that call is over.
ADOPT: Final = "adopt"

#: The pause reason of agents whose PBX is down (given by the engine, valid without config).
SITE_DOWN: Final = "site_down"
#: Pause reasons the engine gives by itself: always valid, whatever the config lists.
SYSTEM_PAUSE_REASONS: Final = frozenset({SITE_DOWN})

_LOGGED_OUT: Final = AgentState.LOGGED_OUT
_READY: Final = AgentState.READY
_RINGING: Final = AgentState.RINGING
_ON_CALL: Final = AgentState.ON_CALL
_WRAP_UP: Final = AgentState.WRAP_UP
_PAUSED: Final = AgentState.PAUSED

#: (state, event) -> the states the agent may go to. A pair not listed is an illegal move.
AGENT_TRANSITIONS: Final[dict[tuple[AgentState, str], frozenset[AgentState]]] = {
    (_LOGGED_OUT, LOGIN): frozenset({_READY, _PAUSED}),
    (_LOGGED_OUT, ADOPT): frozenset({_RINGING, _ON_CALL, _WRAP_UP}),
    (_READY, OFFER): frozenset({_RINGING}),
    (_READY, PAUSE): frozenset({_PAUSED}),
    (_READY, LOGOUT): frozenset({_LOGGED_OUT}),
    (_RINGING, ANSWER): frozenset({_ON_CALL}),
    (_RINGING, NO_ANSWER): frozenset({_PAUSED}),
    (_RINGING, CALLER_GONE): frozenset({_READY}),
    (_RINGING, PAUSE): frozenset({_PAUSED}),
    (_RINGING, LOGOUT): frozenset({_LOGGED_OUT}),
    (_ON_CALL, CALL_ENDED): frozenset({_WRAP_UP}),
    # Wrap-up ends into the state asked for during the call (pause, logout), else ready.
    (_WRAP_UP, WRAP_UP_ENDED): frozenset({_READY, _PAUSED, _LOGGED_OUT}),
    (_WRAP_UP, READY): frozenset({_READY}),
    (_WRAP_UP, PAUSE): frozenset({_PAUSED}),
    (_WRAP_UP, LOGOUT): frozenset({_LOGGED_OUT}),
    (_PAUSED, READY): frozenset({_READY}),
    (_PAUSED, AUTO_READY): frozenset({_READY}),
    (_PAUSED, PAUSE): frozenset({_PAUSED}),
    (_PAUSED, LOGOUT): frozenset({_LOGGED_OUT}),
}


def _moves_by_event() -> dict[str, tuple[tuple[AgentState, AgentState], ...]]:
    # The table per event as (from, to) pairs: checked by identity, without hashing an enum.
    moves: dict[str, list[tuple[AgentState, AgentState]]] = {}
    for (state, event), targets in AGENT_TRANSITIONS.items():
        moves.setdefault(event, []).extend((state, t) for t in sorted(targets))
    return {event: tuple(pairs) for event, pairs in moves.items()}


_MOVES: Final = _moves_by_event()


def allowed(state: AgentState, event: str) -> frozenset[AgentState]:
    """The states an agent in ``state`` may go to on ``event`` (empty: the event is illegal)."""
    return AGENT_TRANSITIONS.get((state, event), frozenset())


def legal(old: AgentState, event: str, state: AgentState) -> bool:
    """True when the table lets an agent in ``old`` go to ``state`` on ``event``.

    The four moves every answered call makes are compared directly (compiled, a string
    comparison and two pointer tests, where reading the table costs a dict lookup and a loop
    over boxed pairs, about 250 machine instructions a move); the rest read the table.
    tests/test_agent_states.py checks that both agree with :data:`AGENT_TRANSITIONS`.
    """
    if event == OFFER:
        return old is _READY and state is _RINGING
    if event == ANSWER:
        return old is _RINGING and state is _ON_CALL
    if event == CALL_ENDED:
        return old is _ON_CALL and state is _WRAP_UP
    if event == WRAP_UP_ENDED:
        return old is _WRAP_UP and (state is _READY or state is _PAUSED
                                    or state is _LOGGED_OUT)
    return any(src is old and dst is state for src, dst in _MOVES.get(event, ()))


def _illegal(agent: AgentRt, event: str, state: AgentState) -> IllegalAgentMove:
    old = agent.state
    targets = ", ".join(sorted(allowed(old, event))) or "nowhere"
    return IllegalAgentMove(
        f"agent {agent.profile.id!r} is {old.value}: on {event!r} it cannot go to "
        f"{state.value} (from {old.value}, {event!r} may go to: {targets})")


def set_state(f: Floor, now: float, agent: AgentRt, event: str, state: AgentState,
              reason: str | None) -> None:
    """Move ``agent`` to ``state`` on ``event``, as the table allows, and report the change."""
    old = agent.state
    if not legal(old, event, state):
        raise _illegal(agent, event, state)
    if old is AgentState.READY and state is not AgentState.READY:
        # A ready agent is in each of its ready lines (enter_ready put it there).
        for slot in agent.ready_slots:
            slot.unlink()
    if state is AgentState.RINGING:
        agent.busy_since = now
    working = state is not AgentState.LOGGED_OUT and state is not AgentState.PAUSED
    was = old is not AgentState.LOGGED_OUT and old is not AgentState.PAUSED
    if working is not was:
        delta = 1 if working else -1
        for skill in agent.skills:
            f.staffed[skill] += delta
    agent.state = state
    agent.reason = reason
    agent.since = now
    agent.version += 1
    f.out.append(AgentStateChanged(agent.profile.id, state, reason, now))


def enter_ready(f: Floor, now: float, agent: AgentRt, event: str) -> None:
    """Make the agent ready and put it at the back of its ready lists (the router then
    looks for a call for it)."""
    set_state(f, now, agent, event, AgentState.READY, None)
    agent.idle_since = now
    f.readied += 1
    agent.ready_seq = f.readied
    agent.pending = None
    for slot in agent.ready_slots:
        slot.link()


def leave_wrap_up(f: Floor, now: float, agent: AgentRt, event: str, state: AgentState | None,
                  reason: str | None) -> bool:
    """End wrap-up into ``state`` (None: the state asked for during the call, else ready).

    True when the agent is now ready, so the router looks for a call for it.
    """
    stop_busy(now, agent)
    if state is None:
        state, reason = agent.pending or AgentState.READY, agent.pending_reason
    agent.pending, agent.pending_reason = None, None
    if state is AgentState.READY:
        enter_ready(f, now, agent, event)
        return True
    set_state(f, now, agent, event, state, reason)
    return False


def stop_busy(now: float, agent: AgentRt) -> None:
    """Close the agent's busy period (ringing, talking, wrap-up) for occupancy."""
    if agent.busy_since is not None:
        agent.busy_s += now - agent.busy_since
        agent.busy_since = None


def occupancy(now: float, agent: AgentRt) -> float:
    """Share of the agent's logged-in time spent busy."""
    logged = now - agent.login_at
    return agent.busy_s / logged if logged > 0 else 0.0
