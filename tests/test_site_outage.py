"""Site outage without the network: which agents a PBX going down pauses ``site_down`` and
which it makes ready when it returns, the watch's grace, and the AMI greeting probe."""

from __future__ import annotations

import asyncio

from arikit import reference_center

from acd.core.model import AgentState, CallState, CancelOffer
from acd.runtime.router_service import RouterService
from acd.service.sites import PbxWatch, SiteOutage, ami_probe
from acd.testing.capture import capture_outputs
from acd.testing.clock import ManualClock

KYIV = ["kyi-support-ru-001", "kyi-support-ru-002", "kyi-support-ru-003", "kyi-support-ru-004"]
MOSCOW = "msk-tech-ru-001"


def _outage(clock: ManualClock | None = None) -> tuple[RouterService, SiteOutage]:
    service = RouterService(reference_center(), clock or ManualClock())
    agents = {a: "kyiv" for a in KYIV} | {MOSCOW: "msk"}
    return service, SiteOutage(service, {"msk": "moscow", "kyiv": "kyiv"}, agents)


def _reason(service: RouterService, agent_id: str) -> tuple[AgentState, str | None]:
    snap = next(a for a in service.router.agent_snapshot() if a.agent_id == agent_id)
    return snap.state, snap.reason


class _Owner:
    def handle_command(self, command: object) -> None:
        """Commands are not carried out here."""


def test_pbx_down_pauses_its_working_agents_and_pbx_up_readies_only_those() -> None:
    """Ready and talking agents of the PBX pause ``site_down`` (talking: after the call); an
    agent at lunch keeps lunch, a logged-out one stays out, the other PBX's agent is untouched;
    on return only the ``site_down`` ones are ready again."""
    clock = ManualClock()
    service, outage = _outage(clock)
    ready, talking, lunch, _out = KYIV
    service.login(talking)
    service.call_arrived(_Owner(), "c1", "tech", "uk", "UA")
    service.offer_answered("c1", talking)
    service.login(ready)
    service.login(lunch, paused_reason="lunch")
    service.login(MOSCOW)
    assert service.router.agent_state(talking) is AgentState.ON_CALL
    changes: list[tuple[str, str, bool]] = []
    outage.listen(lambda pbx, site, up: changes.append((pbx, site, up)))
    ended: list[int] = []

    def end_calls() -> int:
        ended.append(1)
        return 3

    outage.holds_calls("kyiv", end_calls)

    outage.pbx_down("kyiv")
    assert _reason(service, ready) == (AgentState.PAUSED, "site_down")
    assert service.router.agent_state(talking) is AgentState.ON_CALL  # pause after the call
    assert _reason(service, lunch) == (AgentState.PAUSED, "lunch")
    assert service.router.agent_state(_out) is AgentState.LOGGED_OUT
    assert service.router.agent_state(MOSCOW) is AgentState.READY
    assert ended == [1] and outage.up == {"msk": True, "kyiv": False}
    service.hangup("c1")
    clock.advance(31.0)  # the tech queue's 30 s wrap-up ends into the pending pause
    assert _reason(service, talking) == (AgentState.PAUSED, "site_down")
    outage.pbx_down("kyiv")  # already down: nothing happens twice
    assert ended == [1]

    outage.pbx_up("kyiv")
    assert service.router.agent_state(ready) is AgentState.READY
    assert service.router.agent_state(talking) is AgentState.READY
    assert _reason(service, lunch) == (AgentState.PAUSED, "lunch")
    assert changes == [("msk", "moscow", True), ("kyiv", "kyiv", True),
                       ("kyiv", "kyiv", False), ("kyiv", "kyiv", True)]


def test_an_offer_to_an_agent_of_the_downed_pbx_is_withdrawn_and_the_call_requeued() -> None:
    """The ring to a Kyiv agent is cancelled (CancelOffer) and the call waits again, so the
    next free agent of the other site takes it."""
    service, outage = _outage()
    agent = KYIV[0]
    service.login(agent)
    with capture_outputs(service) as outputs:
        service.call_arrived(_Owner(), "c1", "tech", "uk", "UA")
        assert service.router.agent_state(agent) is AgentState.RINGING
        outage.pbx_down("kyiv")
    assert [(o.agent_id, o.reason) for o in outputs if isinstance(o, CancelOffer)] == \
        [(agent, "agent_paused")]
    assert service.router.call_state("c1") is CallState.QUEUED


async def test_the_watch_calls_a_pbx_down_only_after_the_grace_and_up_at_once() -> None:
    """A link down for less than ``down_after_s`` changes nothing; past it the PBX is down;
    the first good look brings it back."""
    _service, outage = _outage()
    now = [0.0]
    link = [False]

    async def probe() -> bool:
        return link[0]

    watch = PbxWatch(outage, "kyiv", probe, down_after_s=10.0, clock=lambda: now[0])
    await watch.check()
    now[0] = 9.9
    await watch.check()
    assert outage.up["kyiv"] is True
    now[0] = 10.0
    await watch.check()
    assert outage.up["kyiv"] is False
    link[0] = True
    await watch.check()
    assert outage.up["kyiv"] is True and watch.down_since is None


async def test_the_ami_probe_wants_asterisks_greeting() -> None:
    """Up when the port greets with ``Asterisk Call Manager/``; down for another greeting or
    a refused connection."""
    greeting = [b"Asterisk Call Manager/9.0.0\r\n"]

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(greeting[0])
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        assert await ami_probe("127.0.0.1", port)() is True
        greeting[0] = b"SSH-2.0-OpenSSH_9.6\r\n"
        assert await ami_probe("127.0.0.1", port)() is False
    finally:
        server.close()
        await server.wait_closed()
    _service, outage = _outage()
    watch = PbxWatch(outage, "msk", ami_probe("127.0.0.1", port, 1.0), down_after_s=0.0)
    await watch.check()  # connection refused: down
    assert outage.up["msk"] is False


def test_after_a_restart_the_first_sight_of_the_pbx_readies_agents_left_site_down() -> None:
    """Agents restored paused ``site_down`` are ready once their PBX is first seen up, a
    lunch pause is kept, and nothing is announced as a return (the PBX was never down here)."""
    service, outage = _outage()
    service.login(KYIV[0], paused_reason="site_down")  # as the restart board restores it
    service.login(KYIV[1], paused_reason="lunch")
    changes: list[tuple[str, str, bool]] = []
    outage.listen(lambda pbx, site, up: changes.append((pbx, site, up)))
    outage.pbx_up("kyiv")
    assert service.router.agent_state(KYIV[0]) is AgentState.READY
    assert _reason(service, KYIV[1]) == (AgentState.PAUSED, "lunch")
    assert changes == [("msk", "moscow", True), ("kyiv", "kyiv", True)]
    service.pause(KYIV[0], "site_down")
    outage.pbx_up("kyiv")  # seen before and still up: nothing more
    assert _reason(service, KYIV[0]) == (AgentState.PAUSED, "site_down")


def test_site_down_survives_a_restart_and_a_config_reload() -> None:
    """An agent paused ``site_down`` comes back so after a restart (not as ``rona``) and keeps
    it across a reload, so the PBX's return can ready them."""
    from acd.service.reload import ObserverGate, rebuild
    from acd.service.state import SavedAgent, restore

    service, _ = _outage()
    saved = [SavedAgent(KYIV[0], AgentState.PAUSED, "site_down", None, 0.0)]
    assert restore(service, saved).agents == 1
    assert _reason(service, KYIV[0]) == (AgentState.PAUSED, "site_down")
    rebuild(service, reference_center(), {}, ObserverGate(), lambda _a: None)
    assert _reason(service, KYIV[0]) == (AgentState.PAUSED, "site_down")
