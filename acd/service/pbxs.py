"""PBXs as configuration: the ``pbxs`` list of the service settings, checked against the center.

A two-site center has one Asterisk per site, joined by an inter-site trunk::

    pbxs:
      - name: msk
        site: moscow
        ari: {url: "http://10.1.0.5:8088", user_env: ACD_ARI_USER_MSK,
              password_env: ACD_ARI_PASSWORD_MSK}
        agi_sources: [10.1.0.5]
        trunks: {kyiv: "PJSIP/{ext}@kyiv"}
      - name: kyiv
        site: kyiv
        ...

Each agent's phone is on its site's PBX unless a PBX lists the agent (or its group) under
``agents``. A call knows the PBX it arrived on (the ARI client that delivered its StasisStart;
for FastAGI the connection's source address, matched against ``agi_sources``), and an offer's
dial string is the agent's own endpoint on the same PBX, the PBX's trunk template to the
agent's PBX otherwise (:mod:`acd.core.pbx`). Without a ``pbxs`` list the service speaks to one
implicit PBX (the top-level ``ari`` settings) and dials every agent's own endpoint, as before.

:func:`pbx_problems` is what ``acd check --service`` and ``acd serve`` refuse a list for: an
unknown site or PBX, a bad trunk template or source address, an agent on two PBXs, and a PBX
that receives calls but cannot reach the agents of another PBX (no trunk for the pair).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field, field_validator

from acd.config.load import LoadedCenter
from acd.config.schema import Strict
from acd.core.model import AgentProfile
from acd.core.pbx import PbxMap, trunk_template_problem
from acd.errors import Problem

PbxName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class PbxAri(Strict):
    """A PBX's ARI: its URL and where its credentials are (the single ``ari`` settings' shape)."""

    url: str
    app: str = "acd"
    user_env: str = "ACD_ARI_USER"
    password_env: str = "ACD_ARI_PASSWORD"
    hold_grace_s: Annotated[int, Field(ge=5, le=60)] = 60


class PbxAmi(Strict):
    """A PBX's Asterisk Manager Interface (its liveness for FastAGI-only PBXs)."""

    host: str
    port: Annotated[int, Field(ge=1, le=65535)] = 5038
    user_env: str = "ACD_AMI_USER"
    secret_env: str = "ACD_AMI_SECRET"


class PbxSettings(Strict):
    """One Asterisk: its name, site, how the engine reaches it and how it reaches the others."""

    name: PbxName
    #: A site of the center config.
    site: PbxName
    ari: PbxAri | None = None
    ami: PbxAmi | None = None
    #: Addresses or networks (``10.1.0.5``, ``10.1.0.0/24``) its FastAGI connections come from.
    agi_sources: list[str] = Field(default_factory=list)
    #: Agents (ids) or agent groups (names) whose phones are on this PBX although their site
    #: is another one; the rest of a site's agents are on the site's PBX.
    agents: list[str] = Field(default_factory=list)
    #: Other PBX name -> the dial string that reaches that PBX's agents from here, ``{ext}``
    #: being the agent's extension: ``PJSIP/{ext}@kyiv``.
    trunks: dict[PbxName, str] = Field(default_factory=dict)
    #: The PBX counts as down once its ARI websocket (or AMI) has been down this long.
    down_after_s: Annotated[float, Field(gt=0, le=600)] = 10.0

    @field_validator("agi_sources")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for source in value:
            try:
                ipaddress.ip_network(source, strict=False)
            except ValueError:
                raise ValueError(f"{source!r} is not an IP address or network "
                                 "(such as 10.1.0.5 or 10.1.0.0/24)") from None
        return value

    @field_validator("trunks")
    @classmethod
    def _templates(cls, value: dict[str, str]) -> dict[str, str]:
        for target, template in value.items():
            why = trunk_template_problem(template)
            if why is not None:
                raise ValueError(f"trunk to {target!r}: {why}")
        return value

    def networks(self) -> list[Network]:
        """``agi_sources`` as networks."""
        return [ipaddress.ip_network(s, strict=False) for s in self.agi_sources]

    @property
    def receives_calls(self) -> bool:
        """Whether calls can arrive on this PBX (it has ARI or FastAGI sources)."""
        return self.ari is not None or bool(self.agi_sources)


@dataclass(frozen=True)
class Pbx:
    """A resolved PBX: its settings and its credentials, read from the environment."""

    settings: PbxSettings
    ari_user: str | None = None
    ari_password: str | None = None
    ami_user: str | None = None
    ami_secret: str | None = None

    @property
    def name(self) -> str:
        """The PBX's name."""
        return self.settings.name

    @property
    def site(self) -> str:
        """The PBX's site."""
        return self.settings.site

    def __repr__(self) -> str:
        # Credentials never reach a log line through a repr.
        ari = self.settings.ari.url if self.settings.ari is not None else None
        return f"Pbx({self.name!r}, site={self.site!r}, ari={ari!r})"


def resolve_pbxs(pbxs: Sequence[PbxSettings], env: dict[str, str]) -> tuple[Pbx, ...]:
    """Each PBX with its credentials read from the variables its settings name."""
    out = []
    for p in pbxs:
        ari, ami = p.ari, p.ami
        out.append(Pbx(
            p,
            ari_user=env.get(ari.user_env) or None if ari is not None else None,
            ari_password=env.get(ari.password_env) or None if ari is not None else None,
            ami_user=env.get(ami.user_env) or None if ami is not None else None,
            ami_secret=env.get(ami.secret_env) or None if ami is not None else None))
    return tuple(out)


def agent_pbxs(pbxs: Sequence[PbxSettings], agents: Iterable[AgentProfile]) -> dict[str, str]:
    """Agent id -> its PBX: a PBX that lists the agent or its group, else its site's only PBX
    (agents without one are left out; :func:`pbx_problems` names them)."""
    by_site: dict[str, list[str]] = {}
    listed: dict[str, str] = {}
    for p in pbxs:
        by_site.setdefault(p.site, []).append(p.name)
        for member in p.agents:
            listed.setdefault(member, p.name)
    out: dict[str, str] = {}
    for a in agents:
        pbx = listed.get(a.id) or listed.get(a.group)
        if pbx is None and len(by_site.get(a.site, ())) == 1:
            pbx = by_site[a.site][0]
        if pbx is not None:
            out[a.id] = pbx
    return out


def pbx_map(pbxs: Sequence[PbxSettings], agents: Sequence[AgentProfile]) -> PbxMap | None:
    """What the router service dials with (None without a ``pbxs`` list: one implicit PBX)."""
    if not pbxs:
        return None
    return PbxMap(agent_pbxs(pbxs, agents), {a.id: a.extension for a in agents},
                  {(p.name, target): template for p in pbxs
                   for target, template in p.trunks.items()})


def pbx_of_address(pbxs: Sequence[PbxSettings], host: str | None) -> str | None:
    """The PBX whose ``agi_sources`` hold ``host`` (a peer address), or None."""
    if host is None:
        return None
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for p in pbxs:
        if any(address in net for net in p.networks()):
            return p.name
    return None


def pbx_problems(pbxs: Sequence[PbxSettings], center: LoadedCenter, file: str
                 ) -> list[Problem]:
    """Everything wrong with the ``pbxs`` list for ``center`` (each naming file, path, value)."""
    problems: list[Problem] = []
    sites = center.config.sites
    names: dict[str, int] = {}
    for i, p in enumerate(pbxs):
        if p.name in names:
            problems.append(Problem(file, f"pbxs[{i}].name", p.name,
                                    f"the same name as pbxs[{names[p.name]}]"))
        names.setdefault(p.name, i)
        if p.site not in sites:
            problems.append(Problem(file, f"pbxs[{i}].site", p.site,
                                    f"not a site of the center; valid: {', '.join(sites)}"))
    problems += _source_problems(pbxs, file)
    problems += _member_problems(pbxs, center.agents, file)
    for i, p in enumerate(pbxs):
        for target in p.trunks:
            if target not in names:
                problems.append(Problem(file, f"pbxs[{i}].trunks.{target}", target,
                                        f"not a PBX of the list; valid: {', '.join(names)}"))
            elif target == p.name:
                problems.append(Problem(file, f"pbxs[{i}].trunks.{target}", target,
                                        "a PBX reaches its own agents directly, not by trunk"))
    if problems:
        return problems
    return _reach_problems(pbxs, center.agents, file)


def _source_problems(pbxs: Sequence[PbxSettings], file: str) -> list[Problem]:
    """A FastAGI source address must say one PBX."""
    problems: list[Problem] = []
    seen: list[tuple[Network, str]] = []
    for i, p in enumerate(pbxs):
        for j, net in enumerate(p.networks()):
            for other, owner in seen:
                if owner != p.name and net.version == other.version and net.overlaps(other):
                    problems.append(Problem(file, f"pbxs[{i}].agi_sources[{j}]", str(net),
                                            f"overlaps {other} of PBX {owner!r}: a connection "
                                            "from there would be on two PBXs"))
            seen.append((net, p.name))
    return problems


def _member_problems(pbxs: Sequence[PbxSettings], agents: Sequence[AgentProfile], file: str
                     ) -> list[Problem]:
    """Listed agents and groups exist and are listed once; every agent has a PBX."""
    problems: list[Problem] = []
    ids = {a.id for a in agents}
    groups = {a.group for a in agents}
    claimed: dict[str, str] = {}
    for i, p in enumerate(pbxs):
        for j, member in enumerate(p.agents):
            if member not in ids and member not in groups:
                problems.append(Problem(file, f"pbxs[{i}].agents[{j}]", member,
                                        "neither an agent id nor an agent group of the roster"))
            elif member in claimed and claimed[member] != p.name:
                problems.append(Problem(file, f"pbxs[{i}].agents[{j}]", member,
                                        f"already on PBX {claimed[member]!r}"))
            claimed.setdefault(member, p.name)
    for a in agents:
        if a.id in claimed and a.group in claimed and claimed[a.id] != claimed[a.group]:
            problems.append(Problem(file, "pbxs", a.id,
                                    f"listed on PBX {claimed[a.id]!r} and, by its group "
                                    f"{a.group!r}, on PBX {claimed[a.group]!r}"))
    placed = agent_pbxs(pbxs, agents)
    homeless: dict[str, list[str]] = {}
    for a in agents:
        if a.id not in placed:
            homeless.setdefault(a.site, []).append(a.id)
    for site, lost in homeless.items():
        count = sum(1 for p in pbxs if p.site == site)
        why = "no PBX" if count == 0 else f"{count} PBXs"
        problems.append(Problem(file, "pbxs", site,
                                f"site {site!r} has {why}, so {len(lost)} of its agents (such "
                                f"as {lost[0]!r}) have no PBX: give the site one PBX, or list "
                                "them (or their groups) under a PBX's agents"))
    return problems


def _reach_problems(pbxs: Sequence[PbxSettings], agents: Sequence[AgentProfile], file: str
                    ) -> list[Problem]:
    """Every PBX that receives calls has a trunk to every other PBX that has agents (a call
    may go to any agent once its queue opens every site)."""
    placed = agent_pbxs(pbxs, agents)
    example: dict[str, str] = {}
    for agent_id, pbx in placed.items():
        example.setdefault(pbx, agent_id)
    problems: list[Problem] = []
    for i, p in enumerate(pbxs):
        if not p.receives_calls:
            continue
        for target, agent_id in example.items():
            if target != p.name and target not in p.trunks:
                problems.append(Problem(
                    file, f"pbxs[{i}].trunks", target,
                    f"PBX {p.name!r} receives calls but cannot reach the agents on PBX "
                    f"{target!r} (such as {agent_id!r}); add a trunk template for it, "
                    f"such as {target}: PJSIP/{{ext}}@{target}"))
    return problems
