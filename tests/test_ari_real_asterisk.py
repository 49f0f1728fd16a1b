"""Optional: the Stasis application against a real Asterisk (skipped unless configured).

Set ACD_TEST_ARI_URL (e.g. http://127.0.0.1:8088), ACD_TEST_ARI_USER and ACD_TEST_ARI_PASSWORD,
and load tests/recordings/asterisk/recorded-with-extensions.conf on that Asterisk: the test
places a caller through its `stasis` context with the `caller_short` script (answer, wait 2 s,
hang up).
"""

from __future__ import annotations

import asyncio
import os

import pytest
from arikit import REPO, eventually, reference_center

from acd.asterisk.ari.app import StasisApp
from acd.asterisk.ari.client import AriClient
from acd.runtime.ivrsetup import load_ivr
from acd.runtime.router_service import RouterService

pytestmark = [
    pytest.mark.asterisk,
    pytest.mark.skipif(
        not os.environ.get("ACD_TEST_ARI_URL"), reason="set ACD_TEST_ARI_URL/_USER/_PASSWORD"
    ),
]


async def test_real_caller_hangs_up_in_ivr_and_nothing_is_left() -> None:
    """A real caller enters Stasis, hears the IVR, hangs up: no call, leg or bridge remains."""
    env = os.environ
    center = reference_center()
    service = RouterService(center)
    repo_ivr = REPO / "config" / "ivr"
    async with AriClient(env["ACD_TEST_ARI_URL"], env["ACD_TEST_ARI_USER"],
                         env["ACD_TEST_ARI_PASSWORD"]) as client:
        app = StasisApp(service, client, load_ivr(center, repo_ivr))
        task = asyncio.create_task(app.run())
        try:
            await asyncio.wait_for(app.ready.wait(), 10)
            await client.originate("Local/8800100@stasis", context="caller_short",
                                   extension="s", priority=1,
                                   caller_id="Olga <+79161234567>")
            await eventually(lambda: bool(app.calls), timeout=5, what="caller in Stasis")
            await eventually(lambda: not app.calls, timeout=10, what="caller gone")
            await app.idle()
            bridges = [b for b in await client.list_bridges() if b.id.startswith("acd-")]
            assert not bridges and service.router.calls_in_router == 0
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            service.close()
