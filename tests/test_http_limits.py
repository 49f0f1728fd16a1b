"""HTTP slow clients: header and body deadlines, and a connection budget of its own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from acd.service.app import Runtime
from acd.service.settings import load_settings
from acd.testing.fake_agi import FakeAsterisk, environment_block

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "s3cret-token"


async def start(tmp_path: Path, header_timeout_s: float) -> Runtime:
    path = tmp_path / "service.yaml"
    path.write_text(f"center: {ROOT / 'config' / 'center.yaml'}\n"
                    f"flows: {ROOT / 'config' / 'ivr'}\n"
                    "agi: {port: 0}\n"
                    "http: {port: 0, max_connections: 16, "
                    f"header_timeout_s: {header_timeout_s}, body_timeout_s: 0.5}}\n"
                    "records: {database: acd.sqlite3}\nshutdown_grace_s: 1\n")
    rt = Runtime(load_settings(path, {"ACD_API_TOKEN": TOKEN}))
    await rt.start()
    return rt


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    rt = await start(tmp_path, 0.5)
    yield rt
    await rt.stop()


@pytest.fixture
async def patient(tmp_path: Path) -> AsyncIterator[Runtime]:
    """A service whose header deadline (30 s) outlasts the test: slow clients stay."""
    rt = await start(tmp_path, 30.0)
    yield rt
    await rt.stop()


async def connect(rt: Runtime) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", rt.http_port)


async def closed_after(reader: asyncio.StreamReader, limit: float = 3.0) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and when it closed (seconds from now)."""
    started = time.perf_counter()
    data = b""
    async with asyncio.timeout(limit):
        try:
            while chunk := await reader.read(65536):
                data += chunk
        except ConnectionError:
            pass
    return data, time.perf_counter() - started


async def test_headers_that_never_end_are_dropped_at_the_deadline(runtime: Runtime) -> None:
    """A request whose headers stop half-way is disconnected after header_timeout_s."""
    reader, writer = await connect(runtime)
    writer.write(b"GET /health HTTP/1.1\r\nHost: acd\r\n")
    data, took = await closed_after(reader)
    assert data == b"" and 0.3 <= took < 1.5
    writer.close()


async def test_an_idle_keep_alive_connection_is_dropped_too(runtime: Runtime) -> None:
    """After a complete request, the next request's headers have the same deadline."""
    reader, writer = await connect(runtime)
    writer.write(b"GET /health HTTP/1.1\r\nHost: acd\r\n\r\n")
    data, took = await closed_after(reader)
    assert data.startswith(b"HTTP/1.1 200") and took < 1.5
    writer.close()


async def test_a_huge_declared_body_is_refused_and_the_connection_dropped(
    runtime: Runtime,
) -> None:
    """Content-Length 100 MB with 19 bytes sent: 413 at once, and the connection is not
    held for the rest (closed by the deadline, well before the 12 s seen before)."""
    reader, writer = await connect(runtime)
    writer.write(b"POST /v1/agents/msk-tech-ru-001/login HTTP/1.1\r\nHost: acd\r\n"
                 b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
                 b"Content-Type: application/json\r\nContent-Length: 100000000\r\n\r\n"
                 b'{"endpoint": "PJSIP')
    data, took = await closed_after(reader)
    assert data.startswith(b"HTTP/1.1 413") and took < 1.5


async def test_a_body_that_stops_arriving_is_dropped_at_the_body_deadline(
    runtime: Runtime,
) -> None:
    """A 500-byte body of which 19 bytes come: 408 after body_timeout_s, then closed."""
    reader, writer = await connect(runtime)
    writer.write(b"POST /v1/agents/msk-tech-ru-001/login HTTP/1.1\r\nHost: acd\r\n"
                 b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
                 b"Content-Type: application/json\r\nContent-Length: 500\r\n\r\n"
                 b'{"endpoint": "PJSIP')
    data, took = await closed_after(reader)
    assert 0.3 <= took < 1.5
    assert data == b"" or data.startswith(b"HTTP/1.1 408")
    assert runtime.service.router.agent_state("msk-tech-ru-001").value == "logged_out"


async def test_slow_http_clients_cannot_starve_fastagi(patient: Runtime) -> None:
    """40 slow HTTP connections: 16 are held (the budget), the rest closed at once, and a
    FastAGI call is served meanwhile; once they are gone, HTTP answers again."""
    runtime = patient
    conns = []
    for _ in range(40):
        reader, writer = await connect(runtime)
        writer.write(b"GET /health HTTP/1.1\r\n")
        conns.append((reader, writer))
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)
    held = []
    closed = 0
    for reader, writer in conns:
        try:
            async with asyncio.timeout(0.02):
                data = await reader.read(100)
            closed += data == b""
            writer.close()
        except ConnectionError:
            closed += 1
        except TimeoutError:
            held.append(writer)
    assert (len(held), closed) == (16, 24)
    call = await FakeAsterisk(runtime.agi_port).connect()
    await call.send_environment(environment_block("route", args=("100",)))
    assert await call.read_command(timeout=2.0) is not None
    await call.hangup()
    for writer in held:
        writer.close()
    await asyncio.sleep(0.1)
    async with aiohttp.ClientSession() as http, \
            http.get(f"http://127.0.0.1:{runtime.http_port}/health") as resp:
        assert resp.status == 200
