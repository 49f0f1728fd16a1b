"""Agent states kept in SQLite, so a restart brings every agent back as they were.

Every ``AgentStateChanged`` is written (one committed upsert); at start :func:`restore_agents`
logs agents back in: paused agents stay paused with their reason, ready agents come back ready
in their old idle order. Agents who were ringing, talking or in wrap-up come back ready:
in FastAGI mode their calls did not survive the restart (the dialplan has taken over them).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import structlog

from acd.core.model import AgentState, AgentStateChanged, Output, RoutingError
from acd.runtime.router_service import RouterService

log = structlog.get_logger("acd.state")


@dataclass(frozen=True)
class SavedAgent:
    """One agent's last known state (``since`` in Unix seconds)."""

    agent_id: str
    state: AgentState
    reason: str | None
    endpoint: str | None
    since: float


class AgentStateStore:
    """A service observer that persists agent states; also remembers login endpoints."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __call__(self, output: Output, wall: float) -> None:
        """Persist an ``AgentStateChanged`` (other outputs are ignored)."""
        if isinstance(output, AgentStateChanged):
            self.db.execute(
                "INSERT INTO agent_states (agent_id, state, reason, since) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (agent_id) DO UPDATE SET state = excluded.state,"
                " reason = excluded.reason, since = excluded.since,"
                # An API login's endpoint ends with that login; the API sets it again after
                # its own login, any other login uses the roster's endpoint.
                " endpoint = CASE WHEN excluded.state = 'logged_out' THEN NULL"
                " ELSE agent_states.endpoint END",
                (output.agent_id, output.state.value, output.reason, wall))

    def set_endpoint(self, agent_id: str, endpoint: str | None) -> None:
        """Remember the endpoint an agent logged in from (None: the roster's default)."""
        self.db.execute("UPDATE agent_states SET endpoint = ? WHERE agent_id = ?",
                        (endpoint, agent_id))

    def endpoint(self, agent_id: str) -> str | None:
        """The endpoint an agent last logged in from through the API (None: the roster's)."""
        row = self.db.execute("SELECT endpoint FROM agent_states WHERE agent_id = ?",
                              (agent_id,)).fetchone()
        return row[0] if row is not None else None

    def saved(self) -> list[SavedAgent]:
        """Every stored agent, longest in their state first."""
        rows = self.db.execute(
            "SELECT agent_id, state, reason, endpoint, since FROM agent_states ORDER BY since"
        ).fetchall()
        out = []
        for agent_id, state, reason, endpoint, since in rows:
            try:
                out.append(SavedAgent(agent_id, AgentState(state), reason, endpoint, since))
            except ValueError:
                log.warning("agent_state_unreadable", agent_id=agent_id, state=state)
        return out


def restore_agents(service: RouterService, saved: list[SavedAgent]) -> int:
    """Log saved agents back in; returns how many. Unknown agents are skipped with a warning."""
    config = service.center.config
    roster = set(service.router.agent_ids())
    restored = 0
    # Paused first, then ready in their old idle order, so longest-idle stays first.
    order = sorted(saved, key=lambda a: (a.state is not AgentState.PAUSED, a.since))
    for agent in order:
        if agent.state is AgentState.LOGGED_OUT:
            continue
        if agent.agent_id not in roster:
            log.warning("agent_not_restored", agent_id=agent.agent_id,
                        why="no longer on the roster")
            continue
        reason = None
        if agent.state is AgentState.PAUSED:
            # A reason dropped from the config still leaves the agent paused, as needing
            # attention (the RONA reason), rather than suddenly taking calls.
            reason = (agent.reason if agent.reason in config.pause_reasons
                      else config.rona.pause_reason)
        try:
            service.login(agent.agent_id, agent.endpoint, reason)
        except RoutingError as exc:
            log.warning("agent_not_restored", agent_id=agent.agent_id, why=str(exc))
            continue
        restored += 1
    return restored
