"""The service's links to the PBXs of a ``pbxs`` list: one ARI client and Stasis application per
PBX with ARI, a watch per PBX (:mod:`acd.service.sites`), and the dial-string map.

Why one client per PBX, originating the agent leg on the caller's PBX through the trunk
(``POST /channels`` with ``endpoint=PJSIP/2001@kyiv`` on the Moscow PBX): the caller's channel,
its holding bridge and the mixing bridge all live on that PBX, so one Stasis application owns
the whole call, as in a single-PBX setup; a restart or reconnect adopts it from one PBX's
channels and variables; the Kyiv PBX sees an ordinary inbound trunk call to an extension. The
alternatives were worse: originating on the agent's PBX and joining the two PBXs' bridges
(two applications own one call, a media path the engine has to build and tear down across two
ARIs, and a reconnect of either breaks it), or redirecting the caller to the agent's PBX before
ringing (the caller leaves the engine's hold, a failed ring cannot bring them back).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from acd.config.load import LoadedCenter
from acd.core.agent_states import SITE_DOWN
from acd.core.model import AgentState, AgentStateChanged, Output
from acd.errors import ConfigError, InputError, Problem
from acd.runtime.ivrsetup import IvrSetup
from acd.runtime.router_service import RouterService
from acd.service.pbxs import Pbx, agent_pbxs, pbx_map, pbx_of_address, pbx_problems
from acd.service.sites import PbxWatch, SiteOutage, ami_probe, ari_probe

log = logging.getLogger(__name__)


class PbxLinks:
    """Clients, applications and watches of every PBX; started and stopped together."""

    def __init__(self, service: RouterService, setup: IvrSetup, pbxs: Sequence[Pbx],
                 file: str | None = None) -> None:
        self.service = service
        self.setup = setup
        self.pbxs = tuple(pbxs)
        self.file = file or "<defaults>"
        settings = [p.settings for p in self.pbxs]
        self.outage = SiteOutage(service, {p.name: p.site for p in self.pbxs},
                                 agent_pbxs(settings, service.center.agents))
        #: PBX name -> its ARI client and Stasis application (PBXs with ARI only).
        self.clients: dict[str, Any] = {}
        self.apps: dict[str, Any] = {}
        self.watches: dict[str, PbxWatch] = {}
        self._tasks: list[asyncio.Task[None]] = []
        service.pbx_map = pbx_map(settings, service.center.agents)
        service.observe(self._agent_ready)

    def check(self, center: LoadedCenter) -> None:
        """Refuse (ConfigError) a center whose roster the PBX list cannot reach (a reload)."""
        problems = pbx_problems([p.settings for p in self.pbxs], center, self.file)
        if problems:
            raise ConfigError(problems)

    def reconfigure(self, center: LoadedCenter, setup: IvrSetup) -> None:
        """After a reload: the new roster's PBXs and dial strings, the new IVR for every PBX."""
        settings = [p.settings for p in self.pbxs]
        self.service.pbx_map = pbx_map(settings, center.agents)
        self.outage.agent_pbx = agent_pbxs(settings, center.agents)
        self.setup = setup
        for app in self.apps.values():
            app.setup = setup

    def _agent_ready(self, output: Output, _wall: float) -> None:
        """An agent of a PBX that is down who becomes ready (a login, the end of a pause) is
        paused ``site_down`` at once: a ring to a phone on a dead PBX could only fail."""
        if isinstance(output, AgentStateChanged) and output.state is AgentState.READY:
            pbx = self.outage.agent_pbx.get(output.agent_id)
            if pbx is not None and not self.outage.up.get(pbx, True):
                self.service.pause(output.agent_id, SITE_DOWN)

    def pbx_of_peer(self, host: str | None) -> str | None:
        """The PBX a FastAGI connection from ``host`` is on (None: none of them)."""
        return pbx_of_address([p.settings for p in self.pbxs], host)

    def problems(self) -> list[Problem]:
        """PBXs with ARI whose credentials are not in the environment."""
        out = []
        for i, p in enumerate(self.pbxs):
            ari = p.settings.ari
            if ari is not None and (not p.ari_user or not p.ari_password):
                out.append(Problem(self.file, f"pbxs[{i}].ari", ari.url,
                                   f"ARI of PBX {p.name!r} is configured but {ari.user_env} / "
                                   f"{ari.password_env} are not set"))
        return out

    async def start(self, restored: Any = None) -> None:
        """Open every PBX's ARI application and start the watches (ARI: the websocket; a
        FastAGI-only PBX with AMI: the AMI port; a PBX with neither is never called down)."""
        from acd.asterisk.ari.app import StasisApp
        from acd.asterisk.ari.client import AriClient

        problems = self.problems()
        if problems:
            raise InputError(problems)
        loop = asyncio.get_running_loop()
        for p in self.pbxs:
            s = p.settings
            if s.ari is not None:
                assert p.ari_user is not None and p.ari_password is not None
                client = AriClient(s.ari.url, p.ari_user, p.ari_password, s.ari.app)
                app = StasisApp(self.service, client, self.setup, s.ari.app)
                app.pbx = p.name
                app.restored = restored
                app.hold_grace_s = float(s.ari.hold_grace_s)
                self.clients[p.name], self.apps[p.name] = client, app
                self.outage.holds_calls(p.name, app.pbx_down)
                self._tasks.append(loop.create_task(self._run(p.name, app, client)))
                probe, poll_s = ari_probe(client.connected), 0.5  # reads a flag: cheap
            elif s.ami is not None:
                # A connection per look: every few seconds, not every half second.
                probe, poll_s = ami_probe(s.ami.host, s.ami.port), 5.0
            else:
                continue
            watch = self.watches[p.name] = PbxWatch(self.outage, p.name, probe, s.down_after_s,
                                                    poll_s=poll_s)
            self._tasks.append(loop.create_task(watch.run()))

    async def _run(self, pbx: str, app: Any, client: Any) -> None:
        """One PBX's Stasis application, supervised as the single one is."""
        while True:
            try:
                await app.run()
            except Exception as exc:  # CancelledError is not an Exception: it stops us
                log.error("ari application of PBX %s failed: %s", pbx, exc, exc_info=exc)
            else:
                if client.closed:
                    return
            await asyncio.sleep(1.0)

    def health(self) -> dict[str, object]:
        """Per PBX: its site, whether it is up, and whether its ARI is connected."""
        out: dict[str, object] = {}
        for p in self.pbxs:
            client = self.clients.get(p.name)
            out[p.name] = {"site": p.site, "up": self.outage.up.get(p.name, True),
                           "ari_connected": None if client is None
                           else client.connected.is_set()}
        return out

    async def channel_exists(self, call_id: str) -> bool | None:
        """Whether a restored call's channel exists on any PBX (the restart board's probe):
        True when one PBX has it, False when every PBX says it has not, else None."""
        answers = [await app.channel_exists(call_id) for app in self.apps.values()]
        if True in answers:
            return True
        return None if None in answers or not answers else False

    def listen(self, listener: Callable[[str, str, bool], None]) -> None:
        """Call ``listener(pbx, site, up)`` for every PBX now and on every change."""
        self.outage.listen(listener)

    async def stop(self) -> None:
        """Stop the watches and applications, close the clients (calls stay in Asterisk)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        for client in self.clients.values():
            await client.close()
