"""The wallboard as a browser shows it: Debian's headless Chromium opens ``/wallboard`` on a
running service fed by the fake Asterisk; a call shows up waiting within 1 s, and once it is
answered the agent shows talking. The DOM is read over the DevTools protocol (aiohttp's
websocket client); a screenshot is written to ``$ACD_TEST_ARTIFACTS`` (else the test's
temporary directory). Skipped when no ``chromium`` is installed (``.ci/run`` installs it)."""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import shutil
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from test_serve import script
from test_wallboard import AGENT, hold_call, started

from acd.service.app import Runtime
from acd.testing.fake_agi import FakeAsterisk

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (Debian: "
                                "apt-get install chromium); .ci/run installs it")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")
WAITING = ("document.querySelector('#queues tr[data-queue=\"tech\"] [data-field=\"waiting\"]')"
           "?.textContent ?? ''")
AGENT_STATE = (f"document.querySelector('#agents tr[data-agent=\"{AGENT}\"] .state')"
               "?.textContent ?? ''")


class DevTools:
    """A minimal Chrome DevTools protocol client over one page's websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command and return its result (events in between are skipped)."""
        ident = next(self._ids)
        await self.ws.send_json({"id": ident, "method": method, "params": params})
        while True:
            message = await self.ws.receive_json(timeout=30)
            if message.get("id") == ident:
                assert "error" not in message, message
                result: dict[str, Any] = message["result"]
                return result

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    async def until(self, expression: str, wanted: str, timeout: float) -> float:
        """Poll ``expression`` until it equals ``wanted``; the seconds it took."""
        t0 = time.monotonic()
        seen = None
        while time.monotonic() - t0 < timeout:
            seen = await self.evaluate(expression)
            if seen == wanted:
                return time.monotonic() - t0
            await asyncio.sleep(0.02)
        raise AssertionError(f"{expression} stayed {seen!r}, never {wanted!r}")


async def open_page(profile: Path, url: str) -> tuple[asyncio.subprocess.Process, str]:
    """Start Chromium on ``url``; its DevTools websocket address for that page."""
    assert CHROMIUM is not None
    browser = await asyncio.create_subprocess_exec(
        CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
        "--window-size=1280,900", url,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    active = profile / "DevToolsActivePort"
    async with asyncio.timeout(60):
        while not (active.exists() and active.read_text().count("\n") >= 1):
            await asyncio.sleep(0.1)
        port = int(active.read_text().splitlines()[0])
        async with aiohttp.ClientSession() as http:
            while True:
                async with http.get(f"http://127.0.0.1:{port}/json/list") as resp:
                    pages = [p for p in await resp.json() if p.get("type") == "page"
                             and p.get("url", "").startswith(url)]
                if pages:
                    return browser, str(pages[0]["webSocketDebuggerUrl"])
                await asyncio.sleep(0.1)


def staff_a_few(runtime: Runtime) -> None:
    """Log in every 16th agent of the roster, one in three paused, so the board has rows."""
    reasons = sorted(runtime.service.center.config.pause_reasons)
    for n, profile in enumerate(runtime.service.center.agents[::16]):
        if runtime.service.router.agent_state(profile.id).value == "logged_out":
            runtime.service.login(profile.id, paused_reason=reasons[n % len(reasons)]
                                  if n % 3 == 2 else None)


async def test_the_page_shows_a_call_waiting_then_the_agent_talking(tmp_path: Path) -> None:
    """A call shows as waiting on the page within 1 s of being queued; answered, its agent
    shows as talking; the screenshot is a PNG of the whole board."""
    runtime = await started(tmp_path)
    browser = None
    try:
        url = f"http://127.0.0.1:{runtime.http_port}/wallboard"
        browser, address = await open_page(tmp_path / "profile", url)
        async with aiohttp.ClientSession() as http, http.ws_connect(
                address, max_msg_size=64 * 1024 * 1024) as ws:
            page = DevTools(ws)
            await page.until("document.getElementById('status').textContent", "live", 30)
            await page.until(WAITING, "0", 5)
            runtime.service.login("msk-tech-ru-002", paused_reason="lunch")
            held = await hold_call(runtime.agi_port, "1795609297.31")
            shown_in = await page.until(WAITING, "1", 5)
            assert shown_in < 1.0, f"the waiting call took {shown_in:.2f} s to show"
            runtime.service.login(AGENT)
            await asyncio.wait_for(held.task, 5.0)
            await script(FakeAsterisk(runtime.agi_port), "answered", "1795609297.31", AGENT)
            talking_in = await page.until(AGENT_STATE, "talking", 5)
            assert talking_in < 1.0
            assert await page.until(WAITING, "0", 2) >= 0
            staff_a_few(runtime)
            await page.call("Emulation.setDeviceMetricsOverride", width=1280, height=1000,
                            deviceScaleFactor=1, mobile=False)
            await asyncio.sleep(1.0)  # the next snapshot, drawn
            shot = await page.call("Page.captureScreenshot", format="png")
            png = base64.b64decode(shot["data"])
            assert png.startswith(b"\x89PNG") and len(png) > 10_000
            out = Path(os.environ.get("ACD_TEST_ARTIFACTS", tmp_path))
            out.mkdir(parents=True, exist_ok=True)
            (out / "wallboard.png").write_bytes(png)
    finally:
        if browser is not None and browser.returncode is None:
            browser.terminate()
            await browser.wait()
        await runtime.stop()
