"""Site outage: a PBX the engine cannot reach takes its agents and its calls out of routing.

The signal is the engine's own link to the PBX, watched by :class:`PbxWatch`: the ARI websocket
(a persistent connection with heartbeats, which drops at once when Asterisk stops or restarts
and comes back through the client's reconnect) and, for a FastAGI-only PBX, the AMI port (a
connection that must greet with ``Asterisk Call Manager``). A PBX counts as down once that
link has been down for ``down_after_s`` (a grace, so a websocket blip or an Asterisk reload
does not empty a site). The absence of FastAGI traffic is not used: a quiet night looks the
same, and a PBX whose dialplan has fallen back to ``Queue()`` sends none while it is up.

When a PBX goes down (:meth:`SiteOutage.pbx_down`):

- the calls it held are lost to the engine (a crashed PBX took them with it; a PBX cut off
  from the engine sends its held callers to the dialplan fallback when their absolute timeout
  fires): each ends in the router, so it is never offered to an agent of the surviving site;
- its agents are paused with the reason ``site_down``: a call ringing one of them through the
  trunk is withdrawn and goes back to its queue, where the agents of the other site take it
  (at once when its routing already allows every site, else at its ``add_sites`` step);
- ``acd_pbx_up{pbx,site}`` drops to 0 (alert ``AcdPbxDown``).

When it returns (:meth:`SiteOutage.pbx_up`) the ARI application reconciles with what the PBX
holds (callers still in Stasis are adopted with their first arrival time), and the agents
paused ``site_down`` are made ready; an agent a supervisor paused otherwise meanwhile stays so.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

from acd.core.agent_states import SITE_DOWN
from acd.core.model import AgentState, RoutingError
from acd.runtime.router_service import RouterService

log = logging.getLogger(__name__)

#: Agent states in which the agent is working (paused ``site_down`` when its PBX goes down).
_WORKING = (AgentState.READY, AgentState.RINGING, AgentState.ON_CALL, AgentState.WRAP_UP)
#: The first bytes an Asterisk Manager Interface sends.
AMI_GREETING = b"Asterisk Call Manager/"


class SiteOutage:
    """What a PBX going down or coming back does to routing (see the module docstring)."""

    def __init__(self, service: RouterService, sites: Mapping[str, str],
                 agent_pbx: Mapping[str, str]) -> None:
        self.service = service
        #: PBX name -> its site.
        self.sites = dict(sites)
        self.agent_pbx = dict(agent_pbx)
        #: PBX name -> whether it is up (every PBX is presumed up until its watch says not).
        self.up: dict[str, bool] = dict.fromkeys(self.sites, True)
        #: Per PBX: what ends the calls it held when it goes down (its ARI application).
        self._call_holders: dict[str, list[Callable[[], int]]] = {}
        self._listeners: list[Callable[[str, str, bool], None]] = []
        #: PBXs seen up at least once (the first sight readies agents a restart left paused).
        self._seen_up: set[str] = set()

    def holds_calls(self, pbx: str, end_calls: Callable[[], int]) -> None:
        """Call ``end_calls()`` (it returns how many it ended) when ``pbx`` goes down."""
        self._call_holders.setdefault(pbx, []).append(end_calls)

    def listen(self, listener: Callable[[str, str, bool], None]) -> None:
        """Call ``listener(pbx, site, up)`` now for every PBX and on every change."""
        self._listeners.append(listener)
        for pbx, up in self.up.items():
            listener(pbx, self.sites[pbx], up)

    def agents_of(self, pbx: str) -> list[str]:
        """The agents whose phones are on ``pbx``."""
        return [a for a, p in self.agent_pbx.items() if p == pbx]

    def pbx_down(self, pbx: str) -> None:
        """``pbx`` is down: end its calls, pause its working agents ``site_down``."""
        if not self.up.get(pbx, False):
            return
        self.up[pbx] = False
        self.service.pbxs_down.add(pbx)
        lost = sum(end_calls() for end_calls in self._call_holders.get(pbx, ()))
        router = self.service.router
        paused = 0
        for agent_id in self.agents_of(pbx):
            if router.agent_state(agent_id) in _WORKING:
                try:
                    self.service.pause(agent_id, SITE_DOWN)
                except RoutingError as exc:  # e.g. logged out in between: nothing to pause
                    log.warning("agent %s not paused for PBX %s: %s", agent_id, pbx, exc)
                    continue
                paused += 1
        log.error("PBX %s (site %s) is down: %d calls it held ended, %d agents paused %s",
                  pbx, self.sites[pbx], lost, paused, SITE_DOWN)
        self._tell(pbx, False)

    def pbx_up(self, pbx: str) -> None:
        """``pbx`` is back (or seen up for the first time): its agents paused ``site_down`` are
        ready again (after a restart during an outage they come back paused so)."""
        first = pbx not in self._seen_up
        self._seen_up.add(pbx)
        if self.up.get(pbx, True) and not first:
            return
        was_down = not self.up.get(pbx, True)
        self.up[pbx] = True
        self.service.pbxs_down.discard(pbx)
        ready = 0
        agents = set(self.agents_of(pbx))
        for snap in self.service.router.agent_snapshot():
            if snap.agent_id in agents and snap.state is AgentState.PAUSED \
                    and snap.reason == SITE_DOWN:
                self.service.ready(snap.agent_id)
                ready += 1
        if was_down:
            log.warning("PBX %s (site %s) is back: %d agents ready again", pbx,
                        self.sites[pbx], ready)
            self._tell(pbx, True)
        elif ready:
            log.warning("PBX %s (site %s) is up: %d agents paused %s before a restart are "
                        "ready again", pbx, self.sites[pbx], ready, SITE_DOWN)

    def _tell(self, pbx: str, up: bool) -> None:
        for listener in self._listeners:
            listener(pbx, self.sites[pbx], up)


class PbxWatch:
    """Polls a PBX's link and tells :class:`SiteOutage` when it has been down past the grace
    and when it is back."""

    def __init__(self, outage: SiteOutage, pbx: str, probe: Callable[[], Awaitable[bool]],
                 down_after_s: float, *, poll_s: float = 0.5,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.outage = outage
        self.pbx = pbx
        self.probe = probe
        self.down_after_s = down_after_s
        self.poll_s = poll_s
        self.clock = clock
        #: When the link was first seen down (None: up at the last look).
        self.down_since: float | None = None

    async def run(self) -> None:
        """Look every ``poll_s`` until cancelled."""
        while True:
            await self.check()
            await asyncio.sleep(self.poll_s)

    async def check(self) -> None:
        """Look once and act on what is seen."""
        try:
            up = await self.probe()
        except (OSError, TimeoutError) as exc:
            log.debug("probe of PBX %s failed: %s", self.pbx, exc)
            up = False
        now = self.clock()
        if up:
            self.down_since = None
            self.outage.pbx_up(self.pbx)
            return
        if self.down_since is None:
            self.down_since = now
        if now - self.down_since >= self.down_after_s:
            self.outage.pbx_down(self.pbx)


def ari_probe(connected: asyncio.Event) -> Callable[[], Awaitable[bool]]:
    """A probe that reads an ARI client's ``connected`` event (set while the websocket is up)."""

    async def probe() -> bool:
        return connected.is_set()

    return probe


def ami_probe(host: str, port: int, timeout_s: float = 3.0) -> Callable[[], Awaitable[bool]]:
    """A probe that connects to the AMI port and reads Asterisk's greeting (no login: the
    greeting alone proves the Asterisk process accepts connections)."""

    async def probe() -> bool:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                greeting = await reader.readline()
            finally:
                writer.close()
                await writer.wait_closed()
        return greeting.startswith(AMI_GREETING)

    return probe

