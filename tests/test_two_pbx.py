"""Two sites, two PBXs, one router: a Moscow caller answered by a Kyiv agent through the
inter-site trunk, and a Kyiv outage moving the queue to Moscow (two fake ARI servers)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from arikit import RU_CALLER, CallbackList, eventually, reference_center
from prometheus_client import CollectorRegistry

from acd.core.model import AgentState, CallEnded, Output
from acd.runtime.ivrsetup import load_ivr
from acd.runtime.router_service import RouterService
from acd.service.metrics import ServiceMetrics
from acd.service.pbx_links import PbxLinks
from acd.service.settings import load_settings
from acd.testing.ari_objects import AgentScript
from acd.testing.clock import ManualClock
from acd.testing.fake_ari import FakeAri

ROOT = Path(__file__).resolve().parents[1]
#: A Kyiv agent who takes Russian tech calls (extension 2301), and a Moscow one (1001).
KYIV_AGENT, KYIV_EXT = "kyi-support-ru-001", "2301"
MOSCOW_AGENT = "msk-tech-ru-001"
LATE_KYIV_AGENT = "kyi-support-ru-002"
#: After 12 s the tech queue opens every site to a Moscow caller (config/center.yaml).
ADD_SITES_S = 12.0

SETTINGS = """\
center: {center}
flows: {flows}
pbxs:
  - name: msk
    site: moscow
    ari: {{url: "{msk}", user_env: ARI_USER, password_env: ARI_PASSWORD_MSK}}
    trunks: {{kyiv: "PJSIP/{{ext}}@kyiv"}}
    down_after_s: 0.2
  - name: kyiv
    site: kyiv
    ari: {{url: "{kyiv}", user_env: ARI_USER, password_env: ARI_PASSWORD_KYIV}}
    trunks: {{msk: "PJSIP/{{ext}}@moscow"}}
    down_after_s: 0.2
"""


class TwoSites:
    """Two fake PBXs (channel ids apart by ``systemname``), one router on a manual clock, and
    the service's PBX links: a client, a Stasis application and a watch per PBX."""

    def __init__(self, tmp_path: Path) -> None:
        self.msk = FakeAri(speed=20.0, system_name="msk", password="m-secret")
        self.kyiv = FakeAri(speed=20.0, system_name="kyiv", password="k-secret")
        self.tmp_path = tmp_path
        self.clock = ManualClock()
        self.outputs: list[Output] = []
        self.registry = CollectorRegistry()
        self.links: PbxLinks

    async def start(self) -> None:
        await self.msk.start()
        await self.kyiv.start()
        path = self.tmp_path / "service.yaml"
        path.write_text(SETTINGS.format(center=ROOT / "config" / "center.yaml",
                                        flows=ROOT / "config" / "ivr", msk=self.msk.url,
                                        kyiv=self.kyiv.url), encoding="utf-8")
        settings = load_settings(path, {"ARI_USER": "acd", "ARI_PASSWORD_MSK": "m-secret",
                                        "ARI_PASSWORD_KYIV": "k-secret"})
        center = reference_center()
        self.service = RouterService(center, self.clock)
        self.service.observe(lambda o, _wall: self.outputs.append(o))
        setup = load_ivr(center, ROOT / "config" / "ivr", callbacks=CallbackList())
        self.metrics = ServiceMetrics(center.config, self.registry)
        self.links = PbxLinks(self.service, setup, settings.pbxs, settings.file)
        self.links.listen(lambda pbx, site, up: self.metrics.pbx_up.labels(pbx, site).set(up))
        await self.links.start()
        for watch in self.links.watches.values():
            watch.poll_s = 0.02
        for app in self.links.apps.values():
            await asyncio.wait_for(app.ready.wait(), 3.0)

    async def stop(self) -> None:
        await self.links.stop()
        self.service.close()
        await self.msk.stop()
        await self.kyiv.stop()

    def pbx_up(self, pbx: str, site: str) -> float | None:
        return self.registry.get_sample_value("acd_pbx_up", {"pbx": pbx, "site": site})

    def state(self, agent_id: str) -> AgentState:
        return self.service.router.agent_state(agent_id)

    def reason(self, agent_id: str) -> str | None:
        return next(a.reason for a in self.service.router.agent_snapshot()
                    if a.agent_id == agent_id)

    def ended(self, call_id: str) -> CallEnded | None:
        return next((o for o in self.outputs
                     if isinstance(o, CallEnded) and o.call_id == call_id), None)

    async def queue_caller(self, fake: FakeAri, pbx: str) -> str:
        """A Russian caller on ``fake`` presses 1 (tech) and declines a callback: queued."""
        call_id = fake.inject_call(RU_CALLER, "Olga", ("8800100",))
        app = self.links.apps[pbx]

        def played(prompt: str) -> bool:
            return any(e["type"] == "PlaybackStarted"
                       and e["playback"]["target_uri"] == f"channel:{call_id}"
                       and e["playback"]["media_uri"].endswith("/" + prompt)
                       for e in fake.event_log)

        await eventually(lambda: played("main_menu"), what="main menu")
        await fake.send_dtmf(call_id, "1")
        await eventually(lambda: self.service.router.call_state(call_id) is not None
                         or played("callback_offer"), what="queued or asked")
        if self.service.router.call_state(call_id) is None:
            await fake.send_dtmf(call_id, "2")
        await eventually(lambda: self.service.router.call_state(call_id) is not None
                         and app.calls[call_id].machine is not None, what="queued")
        return call_id

    def originates(self, fake: FakeAri) -> list[dict[str, Any]]:
        """The agent legs the engine originated on ``fake``, as request parameters."""
        return [dict(r.params) for r in fake.requests
                if r.method == "POST" and r.path.startswith("/channels") and r.status < 300
                and "endpoint" in r.params]


@pytest.fixture
async def sites(tmp_path: Path) -> AsyncIterator[TwoSites]:
    rig = TwoSites(tmp_path)
    await rig.start()
    try:
        yield rig
    finally:
        await rig.stop()


async def test_moscow_caller_is_answered_by_a_kyiv_agent_through_the_trunk(
        sites: TwoSites) -> None:
    """The agent leg is originated on the Moscow PBX with Moscow's trunk to Kyiv and the Kyiv
    agent's extension, and the caller talks to the Kyiv agent through it."""
    sites.service.login(KYIV_AGENT)
    call_id = await sites.queue_caller(sites.msk, "msk")
    assert call_id.startswith("msk-")
    assert sites.service.pbx_of(call_id) == "msk"
    assert sites.state(KYIV_AGENT) is AgentState.READY  # home site only, for now
    await sites.clock.advance_and_settle(ADD_SITES_S + 0.5)
    await eventually(lambda: sites.state(KYIV_AGENT) is AgentState.ON_CALL, what="answered")
    (leg,) = sites.originates(sites.msk)
    assert leg["endpoint"] == f"PJSIP/{KYIV_EXT}@kyiv"
    assert sites.originates(sites.kyiv) == []  # nothing is originated on the agent's PBX
    app = sites.links.apps["msk"]
    assert app.calls[call_id].leg is not None
    leg_id = app.calls[call_id].leg.channel_id
    await eventually(lambda: any(b.bridge_type == "mixing" and call_id in b.channels
                                 and leg_id in b.channels for b in sites.msk.bridges.values()),
                     what="caller and trunk leg bridged on the Moscow PBX")


async def test_a_kyiv_caller_rings_a_kyiv_agent_at_the_agents_own_endpoint(
        sites: TwoSites) -> None:
    """Same PBX: the agent leg is originated on Kyiv at the agent's endpoint, no trunk."""
    sites.service.login(KYIV_AGENT)
    call_id = await sites.queue_caller(sites.kyiv, "kyiv")
    assert sites.service.pbx_of(call_id) == "kyiv"
    await sites.clock.advance_and_settle(ADD_SITES_S + 0.5)
    await eventually(lambda: sites.state(KYIV_AGENT) is AgentState.ON_CALL, what="answered")
    (leg,) = sites.originates(sites.kyiv)
    assert leg["endpoint"] == f"PJSIP/{KYIV_EXT}"
    assert sites.originates(sites.msk) == []


async def test_kyiv_outage_moves_its_queue_to_moscow_and_kyiv_returns(sites: TwoSites) -> None:
    """Kyiv's ARI down past its grace: its agents pause ``site_down`` (the ring through the
    trunk is withdrawn and the Moscow caller goes to a Moscow agent; one logging in meanwhile
    is paused at once), the Kyiv caller it held leaves the router, acd_pbx_up says kyiv is 0;
    when Kyiv returns its agents are back and the caller still in Stasis there is adopted."""
    sites.msk.script_agent(f"PJSIP/{KYIV_EXT}@kyiv", AgentScript(answer_after=None))
    sites.service.login(KYIV_AGENT)
    sites.service.login(MOSCOW_AGENT, paused_reason="break")
    moscow_call = await sites.queue_caller(sites.msk, "msk")
    await sites.clock.advance_and_settle(ADD_SITES_S + 0.5)
    await eventually(lambda: sites.state(KYIV_AGENT) is AgentState.RINGING, what="ringing")
    (leg,) = sites.originates(sites.msk)
    assert leg["endpoint"] == f"PJSIP/{KYIV_EXT}@kyiv"
    kyiv_call = await sites.queue_caller(sites.kyiv, "kyiv")
    assert sites.pbx_up("kyiv", "kyiv") == 1.0

    sites.kyiv.fail_requests(503)
    await sites.kyiv.drop_websocket(refuse_next=10_000)
    await eventually(lambda: sites.state(KYIV_AGENT) is AgentState.PAUSED, what="site down")
    assert sites.reason(KYIV_AGENT) == "site_down"
    assert sites.pbx_up("kyiv", "kyiv") == 0.0
    assert sites.pbx_up("msk", "moscow") == 1.0
    # A Kyiv agent logging in meanwhile is paused at once: their phone cannot ring.
    sites.service.login(LATE_KYIV_AGENT)
    assert sites.reason(LATE_KYIV_AGENT) == "site_down"
    # The ring through the trunk is withdrawn; the Moscow caller waits again, its place kept.
    await eventually(lambda: sites.links.apps["msk"].calls[moscow_call].leg is None,
                     what="trunk leg released")
    assert sites.service.router.call_state(moscow_call) is not None
    # The Kyiv caller is no longer the engine's: it leaves the router and its app.
    ended = sites.ended(kyiv_call)
    assert ended is not None
    assert kyiv_call not in sites.links.apps["kyiv"].calls
    # A Moscow agent takes the Moscow caller.
    sites.msk.script_agent("PJSIP/1001", AgentScript(answer_after=0.0))
    sites.service.ready(MOSCOW_AGENT)
    await eventually(lambda: sites.state(MOSCOW_AGENT) is AgentState.ON_CALL,
                     what="moscow agent talking")
    assert [o["endpoint"] for o in sites.originates(sites.msk)] == [
        f"PJSIP/{KYIV_EXT}@kyiv", "PJSIP/1001"]

    sites.kyiv.stop_failing()
    sites.kyiv.accept_websocket()
    await eventually(lambda: sites.state(KYIV_AGENT) is AgentState.READY, timeout=5.0,
                     what="kyiv agent ready again")
    assert sites.pbx_up("kyiv", "kyiv") == 1.0
    assert sites.state(LATE_KYIV_AGENT) is not AgentState.PAUSED
    await eventually(lambda: sites.service.router.call_state(kyiv_call) is not None,
                     timeout=5.0, what="kyiv caller adopted back")
    assert sites.service.pbx_of(kyiv_call) == "kyiv"


# --- FastAGI: the PBX is the connection's source address ---------------------------------


def _ivr_reply(command: str) -> str:
    """The reference IVR answered as a Russian caller choosing tech (1), no callback."""
    if command.startswith("STREAM FILE"):
        return "200 result=0 endpos=8000"
    if command.startswith("GET DATA acd/ru/main_menu"):
        return "200 result=1"
    if command.startswith("GET DATA"):
        return "200 result= (timeout)"
    return "200 result=1"


async def test_fastagi_call_from_the_moscow_pbx_dials_a_kyiv_agent_through_the_trunk(
        ) -> None:
    """A FastAGI call from Moscow's address gets ACD_TARGET = Moscow's trunk to Kyiv with the
    Kyiv agent's extension; one from Kyiv's address the agent's own endpoint; one from an
    address of no PBX is handed to the dialplan fallback at once."""
    from acd.asterisk.agi.route import CallPath
    from acd.asterisk.agi.server import FastAgiServer
    from acd.service.pbxs import PbxSettings, pbx_map, pbx_of_address
    from acd.testing.fake_agi import FakeAsterisk, environment_block, variables_set

    center = reference_center()
    pbxs = [PbxSettings(name="msk", site="moscow", agi_sources=["127.0.0.1"],
                        trunks={"kyiv": "PJSIP/{ext}@kyiv"}),
            PbxSettings(name="kyiv", site="kyiv", agi_sources=["127.0.0.2"],
                        trunks={"msk": "PJSIP/{ext}@moscow"})]
    clock = ManualClock()
    service = RouterService(center, clock)
    service.pbx_map = pbx_map(pbxs, center.agents)
    path = CallPath(service, load_ivr(center, ROOT / "config" / "ivr"))
    path.pbx_of_peer = lambda host: pbx_of_address(pbxs, host)
    server = FastAgiServer(path.handler_for, port=0, header_timeout=2.0)
    await server.start()
    try:
        service.login(KYIV_AGENT)
        targets: dict[str, str] = {}
        for source, uniqueid in (("127.0.0.1", "1795609297.11"), ("127.0.0.2", "1795609297.12")):
            call = await FakeAsterisk(server.port, source=source).connect()
            await call.send_environment(environment_block("route", args=("100",),
                                                          uniqueid=uniqueid))
            # Through the IVR; a caller who must wait hears music until the trunk step.
            while (command := await call.read_command(5.0)) is not None \
                    and "ACD_TARGET" not in variables_set(command):
                if command == "SET MUSIC ON default":
                    await call.reply("200 result=0")
                    await clock.advance_and_settle(ADD_SITES_S + 0.5)
                else:
                    await call.reply(_ivr_reply(command))
            assert command is not None
            targets[source] = variables_set(command)["ACD_TARGET"]
            await call.close()
            service.offer_failed(uniqueid, "no_answer", KYIV_AGENT)
            service.hangup(uniqueid)
            service.ready(KYIV_AGENT)
        assert targets == {"127.0.0.1": f"PJSIP/{KYIV_EXT}@kyiv",
                           "127.0.0.2": f"PJSIP/{KYIV_EXT}"}
        stranger = await FakeAsterisk(server.port, source="127.0.0.3").connect()
        await stranger.send_environment(environment_block("route", args=("100",),
                                                          uniqueid="1795609297.13"))
        assert await stranger.read_command(5.0) is None  # closed: the dialplan falls back
        assert path.stats.turned_away == 1
        await stranger.close()
    finally:
        await server.close(grace=0.5)
        service.close()


async def test_acd_serve_with_two_pbxs_reports_each_pbx_and_which_site_is_down(
        tmp_path: Path) -> None:
    """`acd serve` with a pbxs list opens one Stasis application per PBX, reports each PBX in
    /health and acd_pbx_up, and says which site is down when one PBX's ARI goes away."""
    from acd.service.app import Runtime

    msk = FakeAri(speed=20.0, system_name="msk", password="m-secret")
    kyiv = FakeAri(speed=20.0, system_name="kyiv", password="k-secret")
    await msk.start()
    await kyiv.start()
    path = tmp_path / "service.yaml"
    path.write_text(SETTINGS.format(center=ROOT / "config" / "center.yaml",
                                    flows=ROOT / "config" / "ivr", msk=msk.url, kyiv=kyiv.url)
                    + "agi: {port: 0}\nhttp: {port: 0}\nrecords: {database: acd.sqlite3}\n"
                    "shutdown_grace_s: 1\nlogs: {format: json}\n", encoding="utf-8")
    env = {"ARI_USER": "acd", "ARI_PASSWORD_MSK": "m-secret", "ARI_PASSWORD_KYIV": "k-secret"}
    runtime = Runtime(load_settings(path, env))
    await runtime.start()
    try:
        links = runtime.pbx_links
        assert links is not None and set(links.apps) == {"msk", "kyiv"}
        for app in links.apps.values():
            await asyncio.wait_for(app.ready.wait(), 3.0)

        def up(pbx: str, site: str) -> float | None:
            return runtime.registry.get_sample_value("acd_pbx_up", {"pbx": pbx, "site": site})

        assert (up("msk", "moscow"), up("kyiv", "kyiv")) == (1.0, 1.0)
        assert runtime.health()["pbxs"] == {
            "msk": {"site": "moscow", "up": True, "ari_connected": True},
            "kyiv": {"site": "kyiv", "up": True, "ari_connected": True}}
        await kyiv.drop_websocket(refuse_next=10_000)
        await eventually(lambda: up("kyiv", "kyiv") == 0.0, timeout=5.0, what="kyiv down")
        assert up("msk", "moscow") == 1.0
        health = runtime.health()["pbxs"]
        assert isinstance(health, dict) and health["kyiv"]["up"] is False
    finally:
        await runtime.stop()
        await msk.stop()
        await kyiv.stop()
