"""Which dial string rings an agent from the PBX that holds the caller (two sites, two PBXs).

Each PBX reaches its own agents' phones directly (the agent's endpoint, as the roster or the
login gives it) and the other PBXs' agents through an inter-site trunk, whose dial string comes
from a template in the service settings, such as ``PJSIP/{ext}@kyiv`` (``{ext}``: the agent's
extension from the roster). The choice is made for the PBX that holds the caller, because that
is where ``Dial()`` runs (FastAGI) and where the agent leg is originated (ARI).

Pure: no I/O; the service settings build a :class:`PbxMap` and the router service asks it for
every offer. Every string it returns is checked against the one dial-string grammar
(:mod:`acd.core.dialstring`); a template is checked when the settings are loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from acd.core.dialstring import dial_string_problem, is_dial_string

#: The placeholder a trunk template must contain: the agent's extension.
EXT: Final = "{ext}"
#: What ``acd check`` substitutes for ``{ext}`` to check a template against the grammar.
_SAMPLE_EXT: Final = "1001"


def trunk_template_problem(template: str) -> str | None:
    """Why ``template`` is not an inter-site trunk template, or None if it is one.

    A template holds ``{ext}`` exactly once and, with an extension in its place, is one dial
    string of the grammar (so no extension of the roster can turn it into two).
    """
    if template.count(EXT) != 1:
        return f"a trunk template holds {EXT} exactly once (such as PJSIP/{EXT}@kyiv)"
    rest = template.replace(EXT, "")
    if "{" in rest or "}" in rest:
        return f"{EXT} is the only placeholder a trunk template may hold"
    why = dial_string_problem(template.replace(EXT, _SAMPLE_EXT))
    return None if why is None else f"with {EXT}={_SAMPLE_EXT} it is {why}"


@dataclass(frozen=True, slots=True)
class PbxMap:
    """Where each agent's phone is, and how each PBX reaches the other PBXs' agents."""

    #: Agent id -> the PBX its phone is registered on.
    agent_pbx: Mapping[str, str]
    #: Agent id -> its extension (what ``{ext}`` becomes in a trunk template).
    extensions: Mapping[str, str]
    #: (PBX holding the caller, PBX of the agent) -> trunk template.
    trunks: Mapping[tuple[str, str], str] = field(default_factory=dict)
    #: (agent, caller's PBX) -> the trunk dial string, built and checked once (about 8 us).
    _trunked: dict[tuple[str, str], str | None] = field(default_factory=dict, compare=False,
                                                        repr=False)

    def dial_string(self, agent_id: str, endpoint: str, caller_pbx: str | None) -> str | None:
        """The dial string that rings ``agent_id`` from ``caller_pbx``; None when there is none.

        ``endpoint`` is the agent's own endpoint (roster or login), used as it is when the
        caller is on the agent's PBX, or when either PBX is unknown (single-PBX setups). None
        means the caller's PBX has no trunk to the agent's (``acd check`` refuses such a
        configuration) or the trunk string is not one of the grammar: the offer cannot be
        dialled.
        """
        agent_pbx = self.agent_pbx.get(agent_id)
        if caller_pbx is None or agent_pbx is None or caller_pbx == agent_pbx:
            return endpoint
        key = (agent_id, caller_pbx)
        if key not in self._trunked:  # the trunk string does not depend on the endpoint
            self._trunked[key] = choose_dial_string(endpoint, agent_pbx,
                                                    self.extensions.get(agent_id),
                                                    caller_pbx, self.trunks)
        return self._trunked[key]


def choose_dial_string(endpoint: str, agent_pbx: str | None, extension: str | None,
                       caller_pbx: str | None, trunks: Mapping[tuple[str, str], str]
                       ) -> str | None:
    """The dial string for an agent on ``agent_pbx`` from a caller on ``caller_pbx``.

    The agent's ``endpoint`` on the same PBX (or when a PBX is not known); the trunk template
    for the pair with ``{ext}`` = ``extension`` otherwise; None when the pair has no trunk, the
    agent has no extension, or the result is not one dial string of the grammar.
    """
    if caller_pbx is None or agent_pbx is None or caller_pbx == agent_pbx:
        return endpoint
    template = trunks.get((caller_pbx, agent_pbx))
    if template is None or not extension:
        return None
    dial = template.replace(EXT, extension)
    return dial if is_dial_string(dial) else None
