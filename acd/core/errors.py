"""The errors the router raises for requests it refuses.

They live apart from :mod:`acd.core.model` because that module may be compiled with mypyc,
and compiled classes cannot derive from built-in exceptions such as ``KeyError``.
"""

from __future__ import annotations


class RoutingError(Exception):
    """A request the router refuses; the message names the subject and the valid choices."""


class UnknownAgent(RoutingError, KeyError):
    """No agent with this id is on the roster."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown agent"


class UnknownCall(RoutingError, KeyError):
    """No call with this id is in the router."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown call"


class DuplicateCall(RoutingError):
    """A call with this id is already in the router."""


class AgentAlreadyLoggedIn(RoutingError):
    """Login refused: the agent is already logged in (double login)."""


class AgentNotLoggedIn(RoutingError):
    """The request needs a logged-in agent."""


class InvalidPauseReason(RoutingError):
    """The pause reason is not one of the configured reasons."""


class IllegalAgentMove(RuntimeError):
    """A bug, not a refusal: the router tried an agent state change its transition table
    (:data:`acd.core.agent_states.AGENT_TRANSITIONS`) does not allow; names the state and event."""


class CallMachineError(RoutingError):
    """An event that cannot happen in the call's phase (:mod:`acd.core.call`)."""


class LocalCallError(CallMachineError):
    """The driver misused the call machine (a command or fact fed in the wrong phase)."""


class RemoteCallError(CallMachineError):
    """The telephony side reported something impossible for the call's phase."""
