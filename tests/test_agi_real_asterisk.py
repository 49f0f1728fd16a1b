"""Optional: the route script against a real Asterisk running config/asterisk/extensions.conf.

Skipped unless ``ACD_TEST_ASTERISK_HOST`` and the ARI credentials are set (see
config/asterisk/README.md). The call is originated through ARI into ``acd-inbound``; the
other leg waits in a Stasis application that this test holds open.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiohttp
import pytest

from acd.asterisk.agi import commands
from acd.asterisk.agi.route import CallPath
from acd.asterisk.agi.server import AgiSession, FastAgiServer, Handler
from acd.config.load import load_center
from acd.core.model import CallState
from acd.runtime.ivrsetup import IvrSetup, load_ivr
from acd.runtime.router_service import RouterService
from ivr.testing import compile_flow, prompts

ROOT = Path(__file__).resolve().parents[1]
HOST = os.environ.get("ACD_TEST_ASTERISK_HOST", "")
USER = os.environ.get("ACD_TEST_ASTERISK_ARI_USER", "")
PASSWORD = os.environ.get("ACD_TEST_ASTERISK_ARI_PASSWORD", "")
ARI_PORT = int(os.environ.get("ACD_TEST_ASTERISK_ARI_PORT", "8088"))
AGI_BIND = os.environ.get("ACD_TEST_ASTERISK_AGI_BIND", "127.0.0.1:4573")
APP = "acd-test-caller"

pytestmark = [
    pytest.mark.asterisk,
    pytest.mark.skipif(
        not (HOST and USER and PASSWORD),
        reason="set ACD_TEST_ASTERISK_HOST, _ARI_USER and _ARI_PASSWORD to run against Asterisk"),
]


async def test_real_asterisk_queues_and_holds_the_caller() -> None:
    """Asterisk's dialplan reaches `route` with the dialled number; the caller is held."""
    center = load_center(ROOT / "config" / "center.yaml")
    base = load_ivr(center, ROOT / "config" / "ivr")
    flow = compile_flow({"flow": "real", "start": "q", "default_queue": "tech",
                         "prompts": prompts(), "nodes": {"q": {"type": "queue"}}})
    service = RouterService(center)
    path = CallPath(service, IvrSetup(center, base.known, {"main": flow}))
    seen: asyncio.Queue[AgiSession] = asyncio.Queue()
    route = path.handler_for("route")
    assert route is not None

    async def watched_route(session: AgiSession) -> None:
        seen.put_nowait(session)
        await route(session)

    def lookup(script: str) -> Handler | None:
        return watched_route if script == "route" else path.handler_for(script)

    host, _, port = AGI_BIND.rpartition(":")
    server = FastAgiServer(lookup, host, int(port))
    await server.start()
    base_url = f"http://{HOST}:{ARI_PORT}/ari"
    auth = aiohttp.BasicAuth(USER, PASSWORD)
    try:
        async with aiohttp.ClientSession(auth=auth) as http, http.ws_connect(
                f"{base_url}/events", params={"app": APP}):
            async with http.post(f"{base_url}/channels", params={
                    "endpoint": "Local/100@acd-inbound", "app": APP}) as response:
                assert response.status == 200, await response.text()
                channel_id = (await response.json())["id"]
            try:
                session = await asyncio.wait_for(seen.get(), 10.0)
                assert session.env.args[:1] == ("100",)
                async with asyncio.timeout(10.0):
                    while service.router.calls_in_router == 0:
                        await asyncio.sleep(0.05)
                call_id = next(iter(path.calls))
                assert service.router.call_state(call_id) is CallState.QUEUED
            finally:
                async with http.delete(f"{base_url}/channels/{channel_id}"):
                    pass
            async with asyncio.timeout(10.0):
                while service.router.calls_in_router:
                    await asyncio.sleep(0.05)
    finally:
        await server.close(grace=2.0)
        service.close()


async def test_real_asterisk_sets_every_variable_of_one_array_write() -> None:
    """One ``SET VARIABLE ARRAY(...)`` (how the engine sets a routed call's call id, language
    and dial variables at once) sets each name in Asterisk, read back with GET VARIABLE."""
    pairs = [("ACD_CALL_ID", "1795609297.11"), ("CHANNEL(language)", "uk"),
             ("ACD_TARGET", "PJSIP/kyiv/sip:1001@[2001:db8::5]:5060"),
             ("ACD_AGENT", "kyi-tech-uk-001"), ("ACD_RING_TIMEOUT", "15")]
    read_back: asyncio.Queue[dict[str, str]] = asyncio.Queue()

    async def array_then_read(session: AgiSession) -> None:
        reply = await session.command(commands.set_variables(pairs))
        assert reply.code == 200
        values = {}
        for name, _ in pairs:
            got = await session.command(commands.get_variable(name))
            values[name] = got.data or ""
        # Nothing to dial: the dialplan hangs up.
        await session.command(commands.set_variables([("ACD_TARGET", ""), ("ACD_RESULT",
                                                                           "hangup")]))
        read_back.put_nowait(values)

    host, _, port = AGI_BIND.rpartition(":")
    server = FastAgiServer(lambda _script: array_then_read, host, int(port))
    await server.start()
    base_url = f"http://{HOST}:{ARI_PORT}/ari"
    auth = aiohttp.BasicAuth(USER, PASSWORD)
    try:
        async with aiohttp.ClientSession(auth=auth) as http, http.ws_connect(
                f"{base_url}/events", params={"app": APP}):
            async with http.post(f"{base_url}/channels", params={
                    "endpoint": "Local/100@acd-inbound", "app": APP}) as response:
                assert response.status == 200, await response.text()
                channel_id = (await response.json())["id"]
            try:
                values = await asyncio.wait_for(read_back.get(), 10.0)
            finally:
                async with http.delete(f"{base_url}/channels/{channel_id}"):
                    pass
        assert values == dict(pairs)
    finally:
        await server.close(grace=2.0)
