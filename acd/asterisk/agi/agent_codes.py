"""Agent feature codes over FastAGI: login ``*51``, logout ``*52``, pause ``*53<n>``, ready ``*54``.

The dialplan runs ``AGI(agi://127.0.0.1:4573/agent,<action>[,<n>])`` from the agent's phone.
The agent is the roster entry whose endpoint (or extension) is the calling channel's
``technology/resource``: Asterisk authenticated that device, unlike the caller id it sends.
Every outcome is played back (a stock Asterisk sound) and left in ``ACD_AGENT_RESULT``; a
refused request (double login, unknown phone, bad pause number) is a prompt, never a crash.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from acd.asterisk.agi import commands
from acd.asterisk.agi.server import AgiSession
from acd.core.model import (
    AgentAlreadyLoggedIn,
    AgentNotLoggedIn,
    InvalidPauseReason,
    RoutingError,
    UnknownAgent,
)
from acd.runtime.router_service import RouterService

log = logging.getLogger(__name__)

#: Channel variable with the outcome: ok, already_logged_in, not_logged_in, unknown_agent,
#: bad_reason, unknown_action, refused.
AGENT_RESULT = "ACD_AGENT_RESULT"
ACTIONS = ("login", "logout", "pause", "ready")


@dataclass(frozen=True)
class AgentPrompts:
    """Sound files played for each outcome (Asterisk core sounds by default)."""

    login: str = "agent-loginok"
    logout: str = "agent-loggedoff"
    pause: str = "beep"
    ready: str = "beep"
    already_logged_in: str = "agent-alreadyon"
    unknown_agent: str = "agent-incorrect"
    refused: str = "beeperr"


class AgentCodes:
    """Handles the ``agent`` script for every agent on the roster."""

    def __init__(self, service: RouterService, prompts: AgentPrompts = AgentPrompts(),
                 command_timeout_s: float = 5.0) -> None:
        self.service = service
        self.prompts = prompts
        self.command_timeout_s = command_timeout_s
        self.pause_reasons: tuple[str, ...] = ()
        self._by_device: dict[str, str] = {}
        self._center: object = None
        self._follow_config()

    def _follow_config(self) -> None:
        # A reload swaps the service's center: roster and pause reasons must follow it.
        center = self.service.center
        if center is self._center:
            return
        self._center = center
        self.pause_reasons = tuple(center.config.pause_reasons)
        self._by_device = {}
        for agent in center.agents:
            self._by_device[agent.endpoint] = agent.id
            self._by_device.setdefault(f"PJSIP/{agent.extension}", agent.id)

    def agent_for_channel(self, channel: str) -> str | None:
        """The agent whose device placed ``channel`` (``PJSIP/1001-0000002a`` -> its agent)."""
        self._follow_config()
        device, _, _ = channel.rpartition("-")
        return self._by_device.get(device or channel)

    def pause_reason(self, number: str) -> str | None:
        """Pause reason ``number`` (1-based, in configured order); None when out of range."""
        self._follow_config()
        if not number:
            return self.pause_reasons[0] if self.pause_reasons else None
        if not number.isascii() or not number.isdigit() or len(number) > 2:
            return None
        index = int(number) - 1
        return self.pause_reasons[index] if 0 <= index < len(self.pause_reasons) else None

    async def handle(self, session: AgiSession) -> None:
        """Carry out one feature code and tell the agent how it went."""
        args = session.env.args
        action = args[0] if args else ""
        result, sound = self.apply(session.env.channel, action, args[1] if len(args) > 1 else "")
        timeout = self.command_timeout_s
        await session.command(commands.set_variable(AGENT_RESULT, result), timeout=timeout)
        if not session.hung_up:
            await session.command(commands.stream_file(sound), timeout=timeout + 10.0)

    def apply(self, channel: str, action: str, argument: str = "") -> tuple[str, str]:
        """Apply ``action`` for the agent on ``channel``; return (result, sound to play)."""
        p = self.prompts
        if action not in ACTIONS:
            return "unknown_action", p.refused
        agent_id = self.agent_for_channel(channel)
        if agent_id is None:
            log.warning("Feature code %s from %r, which is no agent's device.", action,
                        channel[:80])
            return "unknown_agent", p.unknown_agent
        try:
            if action == "login":
                self.service.login(agent_id)
                return "ok", p.login
            if action == "logout":
                self.service.logout(agent_id)
                return "ok", p.logout
            if action == "pause":
                reason = self.pause_reason(argument)
                if reason is None:
                    return "bad_reason", p.refused
                self.service.pause(agent_id, reason)
                return "ok", p.pause
            self.service.ready(agent_id)
            return "ok", p.ready
        except AgentAlreadyLoggedIn:
            return "already_logged_in", p.already_logged_in
        except AgentNotLoggedIn:
            return "not_logged_in", p.refused
        except InvalidPauseReason:
            return "bad_reason", p.refused
        except UnknownAgent:
            return "unknown_agent", p.unknown_agent
        except RoutingError as exc:
            log.warning("Feature code %s for %s refused: %s", action, agent_id, exc)
            return "refused", p.refused
