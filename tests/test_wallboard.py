"""The live wallboard: its page and stream on ``acd serve``, what a snapshot says, and the
bounds on fan-out (one snapshot per tick shared by all pages, stale snapshots dropped for a
slow page, a cap on open pages)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from test_serve import ivr_reply, script, settings_file

from acd.config.load import load_center
from acd.core.model import (
    AgentState,
    CallAnswered,
    CallEnded,
    CallMoved,
    CallQueued,
    Offer,
    Outcome,
)
from acd.runtime.router_service import RouterService
from acd.service.app import Runtime
from acd.service.settings import CONFIG_DIR, WallboardSettings, load_settings
from acd.service.wallboard import Subscriber, Wallboard, encode
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



class AnswerAtOnce:
    """A call's owner whose agent picks up every offer at once."""

    def __init__(self, service: RouterService) -> None:
        self.service = service

    def handle_command(self, command: object) -> None:
        if isinstance(command, Offer):
            self.service.offer_answered(command.call_id, command.agent_id)


def test_kept_agent_view_matches_one_rebuilt_from_the_router() -> None:
    """After a seeded mix of logins, pauses, calls, hang-ups and logouts, the agent list and
    counts kept from router outputs equal those a new board rebuilds from the router's agent
    snapshot, and the published bytes are the snapshot's plain JSON."""
    rng = random.Random(18)
    wall = [1_790_000_000.0]
    clock = ManualClock()
    board = board_on(clock, wall)
    service = board._source()
    service.observe(board.observe)
    board.snapshot()  # from here the board keeps its view from the router's outputs
    agents = list(service.router.agent_ids())
    config = service.center.config
    queues, countries = list(config.queues), list(config.countries)
    for n in range(600):
        agent_id = rng.choice(agents)
        state = service.router.agent_state(agent_id)
        roll = rng.random()
        with contextlib.suppress(Exception):  # a refused request (e.g. a pause while busy)
            if state is AgentState.LOGGED_OUT and roll < 0.6:
                service.login(agent_id, paused_reason=rng.choice([None, "lunch", "break"]))
            elif roll < 0.15:
                service.logout(agent_id)
            elif roll < 0.3:
                service.pause(agent_id, rng.choice(["lunch", "break", "training"]))
            elif roll < 0.45:
                service.ready(agent_id)
            elif roll < 0.85:
                country = rng.choice(countries)
                service.call_arrived(AnswerAtOnce(service), f"c{n}", rng.choice(queues),
                                     config.countries[country].language, country)
            else:
                talking = [a.call_id for a in service.router.agent_snapshot() if a.call_id]
                if talking:
                    service.hangup(rng.choice(talking))
        clock.advance(rng.expovariate(1.0))
        if n % 50 == 0:
            kept = board.snapshot()
            fresh = board_on(clock, wall)
            fresh._source = board._source
            rebuilt = fresh.snapshot()
            assert kept["agents"] == rebuilt["agents"]
            assert kept["agents_by"] == rebuilt["agents_by"]
            assert encode(kept) == json.dumps(kept, separators=(",", ":")).encode()
    assert any(a["state"] == "talking" for a in kept["agents"])  # type: ignore[index]
    assert any(a["state"] == "paused" for a in kept["agents"])  # type: ignore[index]


def test_late_calls_follow_a_call_moved_to_another_queue() -> None:
    """A call waiting past the threshold counts as a miss in the queue it waits in now, not
    in the one it left, and no longer once it is answered."""
    wall = [1_790_000_000.0]
    board = board_on(ManualClock(), wall)
    board.observe(CallQueued("m", "tech", "ru", "RU", 0.0), wall[0] - 30)
    board.observe(CallQueued("n", "tech", "ru", "RU", 0.0), wall[0] - 5)
    assert queue_row(board.snapshot(), "tech")["sl_window"] == 0.0
    board.observe(CallMoved("m", "tech", "repair", 0.0), wall[0])
    snap = board.snapshot()
    assert queue_row(snap, "tech")["sl_window"] is None
    assert queue_row(snap, "repair")["sl_window"] == 0.0
    board.observe(CallAnswered("m", AGENT, "repair", 30.0, 0.0), wall[0])
    snap = board.snapshot()
    assert queue_row(snap, "repair")["sl_window"] == 0.0  # answered late: a decided miss
    assert queue_row(snap, "repair")["calls_today"] == 1


async def test_an_attached_page_gets_chunks_and_is_dropped_when_it_stops_reading() -> None:
    """Tied to its connection, a subscriber writes each snapshot as an HTTP chunk at once;
    when the page stops reading it skips snapshots once its buffer is full, and closes after
    ``write_timeout_s`` that far behind."""
    ours, theirs = socket.socketpair()
    transport, _ = await asyncio.get_running_loop().create_connection(asyncio.Protocol,
                                                                      sock=ours)
    try:
        sub = Subscriber()
        sub.offer(b"data: held\n\n")  # before it is attached: held, then sent on attach
        sub.attach(transport, chunked=True, max_buffer=64 * 1024, write_timeout_s=0.2)
        sub.offer(b"data: 1\n\n")
        theirs.setblocking(False)
        await asyncio.sleep(0.05)
        assert theirs.recv(1024) == b"c\r\ndata: held\n\n\r\n" + b"9\r\ndata: 1\n\n\r\n"
        big = b"data: " + b"x" * 200_000 + b"\n\n"
        for _ in range(50):  # nobody reads: the socket fills, then the transport's buffer
            sub.offer(big)
        assert sub.dropped > 0 and not sub.closed
        await asyncio.sleep(0.3)
        sub.offer(big)
        sub.offer(big)
        assert sub.closed
    finally:
        transport.close()
        theirs.close()


async def test_many_pages_see_a_call_waiting_within_a_second(tmp_path: Path) -> None:
    """With twenty pages open on one service, every page shows a new call waiting within 1 s,
    from the same snapshot bytes."""
    runtime = await started(tmp_path)
    url = f"http://127.0.0.1:{runtime.http_port}/wallboard/events"
    try:
        async with aiohttp.ClientSession() as http:
            responses = [await http.get(url) for _ in range(20)]
            streams = [snapshots(r) for r in responses]
            for stream in streams:
                await until(stream, lambda s: True, 3.0)
            held = await hold_call(runtime.agi_port, "1795609297.22")
            t0 = time.monotonic()
            seen = await asyncio.gather(*(until(s, lambda s: queue_row(s, "tech")["waiting"]
                                                == 1, 3.0) for s in streams))
            assert time.monotonic() - t0 < 1.0
            assert len({json.dumps(s) for s in seen}) == 1
            for r in responses:
                r.close()
            held.task.cancel()
            await held.call.close()
    finally:
        await runtime.stop()


async def test_a_quiet_stream_gets_keep_alives(tmp_path: Path) -> None:
    """When no snapshot went out for ``keepalive_s``, the page gets a keep-alive comment."""
    runtime = await started(tmp_path, "{keepalive_s: 0.3, refresh_s: 60}")
    url = f"http://127.0.0.1:{runtime.http_port}/wallboard/events"
    try:
        async with aiohttp.ClientSession() as http, http.get(url) as resp:
            lines = []
            async with asyncio.timeout(3.0):
                async for line in resp.content:
                    lines.append(line)
                    if line == b": keep-alive\n":
                        break
            assert any(line.startswith(b"data: ") for line in lines)
    finally:
        await runtime.stop()
