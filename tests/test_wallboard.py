"""The live wallboard: its page and stream on ``acd serve``, what a snapshot says, and the
bounds on fan-out (one snapshot per tick shared by all pages, stale snapshots dropped for a
slow page, a cap on open pages)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from test_serve import ivr_reply, script, settings_file

from acd.config.load import load_center
from acd.core.model import CallAnswered, CallEnded, CallQueued, Outcome
from acd.runtime.router_service import RouterService
from acd.service.app import Runtime
from acd.service.settings import CONFIG_DIR, WallboardSettings, load_settings
from acd.service.wallboard import Subscriber, Wallboard
from acd.testing.clock import ManualClock
from acd.testing.fake_agi import FakeAsterisk, FakeCall, environment_block, variables_set

AGENT = "msk-tech-ru-001"


class HeldCall:
    """A FastAGI call held in queue (music on hold) until the router offers it an agent."""

    def __init__(self, call: FakeCall) -> None:
        self.call = call
        self.variables: dict[str, str] = {}
        self.task = asyncio.get_running_loop().create_task(self._until_offer())

    async def _until_offer(self) -> None:
        while (command := await self.call.read_command(30.0)) is not None:
            self.variables.update(variables_set(command))
            await self.call.reply(ivr_reply(command))
        await self.call.close()


async def hold_call(port: int, uniqueid: str) -> HeldCall:
    """Place a call through the reference IVR (menu 1, Russian) and wait until it is on hold."""
    call = await FakeAsterisk(port).connect()
    await call.send_environment(environment_block("route", args=("100",), uniqueid=uniqueid,
                                                  callerid="+79161234567"))
    while (command := await call.read_command(10.0)) != "SET MUSIC ON default":
        assert command is not None, "the call ended before it was queued"
        await call.reply(ivr_reply(command))
    await call.reply("200 result=0")
    return HeldCall(call)


async def started(tmp_path: Path, wallboard: str = "") -> Runtime:
    """``acd serve``'s runtime on ephemeral ports, with wallboard settings if given."""
    path = settings_file(tmp_path)
    if wallboard:
        path.write_text(path.read_text().replace("http: {port: 0}",
                                                 f"http: {{port: 0, wallboard: {wallboard}}}"))
    runtime = Runtime(load_settings(path, {}))
    await runtime.start()
    return runtime


async def snapshots(response: aiohttp.ClientResponse) -> AsyncIterator[dict[str, object]]:
    """The JSON snapshots of an open event stream."""
    async for line in response.content:
        if line.startswith(b"data: "):
            yield json.loads(line[6:])


def queue_row(snapshot: dict[str, object], queue: str) -> dict[str, object]:
    rows = snapshot["queues"]
    assert isinstance(rows, list)
    return next(r for r in rows if r["queue"] == queue)


async def until(stream: AsyncIterator[dict[str, object]], test: object,
                timeout: float) -> dict[str, object]:
    """The first snapshot for which ``test(snapshot)`` holds, within ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        async for snap in stream:
            if test(snap):  # type: ignore[operator]
                return snap
    raise AssertionError("the stream ended")


async def test_page_and_stream_follow_a_call_from_waiting_to_talking(tmp_path: Path) -> None:
    """The page is served; its stream shows a call waiting within 1 s and then the agent
    talking, and the SL of the answered call counts for today."""
    runtime = await started(tmp_path)
    base = f"http://127.0.0.1:{runtime.http_port}"
    try:
        async with aiohttp.ClientSession() as http:
            for path, kind in (("/wallboard", "text/html"), ("/wallboard/wallboard.js",
                                                             "text/javascript"),
                               ("/wallboard/wallboard.css", "text/css")):
                async with http.get(base + path) as resp:
                    assert resp.status == 200 and resp.content_type == kind
            async with http.get(base + "/wallboard/nope.txt") as resp:
                assert resp.status == 404
            async with http.get(base + "/wallboard/events") as resp:
                assert resp.headers["Content-Type"] == "text/event-stream"
                stream = snapshots(resp)
                first = await until(stream, lambda s: True, 3.0)
                assert queue_row(first, "tech")["waiting"] == 0
                assert any(a["kind"] == "language" for a in first["alerts"])  # type: ignore
                held = await hold_call(runtime.agi_port, "1795609297.21")
                t0 = time.monotonic()
                await until(stream, lambda s: queue_row(s, "tech")["waiting"] == 1, 3.0)
                assert time.monotonic() - t0 < 1.0
                runtime.service.login(AGENT)
                await asyncio.wait_for(held.task, 5.0)
                assert held.variables["ACD_AGENT"] == AGENT
                await script(FakeAsterisk(runtime.agi_port), "answered", "1795609297.21", AGENT)
                snap = await until(stream, lambda s: any(
                    a["agent_id"] == AGENT and a["state"] == "talking"
                    for a in s["agents"]), 3.0)  # type: ignore[attr-defined]
                tech = queue_row(snap, "tech")
                assert tech["waiting"] == 0 and tech["sl_today"] == 1.0
                assert tech["answer_rate_today"] == 1.0 and tech["calls_today"] == 1
                by_site = {r["name"]: r["states"] for r in snap["agents_by"]["site"]}  # type: ignore
                assert by_site["moscow"] == {"talking": 1}
    finally:
        await runtime.stop()


async def test_subscriber_cap_answers_503_and_frees_a_place_on_disconnect(
        tmp_path: Path) -> None:
    """Past ``max_subscribers`` open streams the next page gets 503; closing one frees it."""
    runtime = await started(tmp_path, "{max_subscribers: 2}")
    url = f"http://127.0.0.1:{runtime.http_port}/wallboard/events"
    try:
        async with aiohttp.ClientSession() as http:
            first = await http.get(url)
            second = await http.get(url)
            async with http.get(url) as third:
                assert third.status == 503
                assert (await third.json())["error"] == "too_many_wallboards"
            first.close()
            assert runtime.wallboard is not None
            async with asyncio.timeout(3.0):
                while len(runtime.wallboard.subscribers) > 1:
                    await asyncio.sleep(0.02)
            async with http.get(url) as again:
                assert again.status == 200
            second.close()
    finally:
        await runtime.stop()


async def test_stop_ends_open_streams_at_once(tmp_path: Path) -> None:
    """Open wallboard pages do not hold up shutdown."""
    runtime = await started(tmp_path)
    url = f"http://127.0.0.1:{runtime.http_port}/wallboard/events"
    async with aiohttp.ClientSession() as http:
        resp = await http.get(url)
        await until(snapshots(resp), lambda s: True, 3.0)
        t0 = time.monotonic()
        await runtime.stop()
        assert time.monotonic() - t0 < 3.0
        resp.close()


def test_a_slow_subscriber_keeps_only_the_newest_snapshot() -> None:
    """A page that has not read keeps one snapshot, the newest; the others are dropped."""
    sub = Subscriber()
    for n in range(5):
        sub.offer(f"data: {n}\n\n".encode())
    assert sub.latest == b"data: 4\n\n" and sub.dropped == 4
    assert asyncio.run(sub.next(0.1)) == b"data: 4\n\n"
    assert asyncio.run(sub.next(0.01)) is None


def board_on(clock: ManualClock, wall: list[float]) -> Wallboard:
    service = RouterService(load_center(CONFIG_DIR / "center.yaml"), clock)
    return Wallboard(lambda: service, WallboardSettings(), clock=lambda: wall[0])


def test_service_level_of_the_window_and_of_today() -> None:
    """Answered within 20 s counts as good, late and abandoned calls as misses, a call still
    waiting past 20 s as a miss already; the 15-minute window forgets older calls while
    today keeps them, and an SL below target raises an alert."""
    wall = [1_790_000_000.0]  # 2026-09-21 17:33 Moscow
    board = board_on(ManualClock(), wall)
    board.observe(CallAnswered("a", AGENT, "tech", 5.0, 0.0), wall[0])
    board.observe(CallAnswered("b", AGENT, "tech", 30.0, 0.0), wall[0])
    board.observe(CallQueued("c", "tech", "ru", "RU", 0.0), wall[0])
    board.observe(CallEnded("c", Outcome.ABANDONED, "tech", "ru", "RU", 0.0, 8.0, None, None,
                            0.0, 8.0), wall[0])
    wall[0] += 1000  # the first three are out of the 15-minute window now
    board.observe(CallAnswered("d", AGENT, "tech", 1.0, 0.0), wall[0])
    board.observe(CallQueued("e", "tech", "ru", "RU", 0.0), wall[0] - 25)
    tech = queue_row(board.snapshot(), "tech")
    assert tech["sl_window"] == 0.5  # d good, e waiting 25 s: a miss
    assert tech["sl_today"] == 2 / 5  # a, d good of a, b, c, d and e waiting
    assert tech["answer_rate_today"] == 3 / 4
    alerts = board.snapshot()["alerts"]
    assert {"kind": "sl", "queue": "tech"} in [{k: a[k] for k in ("kind", "queue")}
                                               for a in alerts if a["kind"] == "sl"]  # type: ignore


def test_today_starts_again_at_local_midnight() -> None:
    """Today's tally is for the center's local day (the first site's time zone)."""
    wall = [1_789_937_000.0]  # 2026-09-20 23:43 Moscow
    board = board_on(ManualClock(), wall)
    board.observe(CallAnswered("a", AGENT, "tech", 50.0, 0.0), wall[0])
    wall[0] += 20 * 60  # 00:03 the next day
    tech = queue_row(board.snapshot(), "tech")
    assert tech["calls_today"] == 0 and tech["sl_today"] is None
    assert tech["sl_window"] is None  # 20 min ago: out of the window too


def test_agents_by_state_reason_and_language() -> None:
    """Logged-in agents are grouped by site, group and each language they speak, paused ones
    by reason; a callers' language nobody logged in speaks is an alert."""
    wall = [1_790_000_000.0]
    clock = ManualClock()
    board = board_on(clock, wall)
    service = board._source()
    service.login(AGENT)
    service.login("msk-tech-ru-002", paused_reason="lunch")
    snap = board.snapshot()
    by_group = {r["name"]: r["states"] for r in snap["agents_by"]["group"]}  # type: ignore
    assert sum(by_group[next(iter(by_group))].values()) == 2
    by_language = {r["name"]: r["states"] for r in snap["agents_by"]["language"]}  # type: ignore
    assert by_language["ru"] == {"ready": 1, "paused:lunch": 1}
    assert [a["agent_id"] for a in snap["agents"]] == [AGENT, "msk-tech-ru-002"]  # type: ignore
    languages = {a["language"] for a in snap["alerts"] if a["kind"] == "language"}  # type: ignore
    assert "ru" not in languages and "kk" in languages


async def test_one_snapshot_per_tick_is_shared_by_every_page() -> None:
    """A burst of router events with many pages open yields a few snapshots (at most the
    rate limit), each the same bytes for every page."""
    wall = [time.time()]
    board = board_on(ManualClock(), wall)
    board.settings = WallboardSettings(max_updates_per_s=4.0, refresh_s=60.0)
    subs = [board.subscribe() for _ in range(50)]
    board.start()
    try:
        for n in range(200):
            board.observe(CallQueued(f"c{n}", "tech", "ru", "RU", 0.0), wall[0])
            await asyncio.sleep(0.005)  # about 1 s of events
        await asyncio.sleep(0.3)
    finally:
        await board.close()
    assert 2 <= board.snapshots <= 6
    messages = {s.latest for s in subs if s is not None}
    assert len(messages) == 1 and all(s is not None and s.dropped for s in subs)

