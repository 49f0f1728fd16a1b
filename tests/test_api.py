"""The HTTP API of a running service: agent states, snapshots, health, auth, limits, errors."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from acd.core.model import AgentState, QueueSnapshot
from acd.service.api import _dumps
from acd.service.app import Runtime
from acd.service.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def settings_file(tmp_path: Path, extra: str = "") -> Path:
    """A service settings file on ephemeral ports with a database in ``tmp_path``."""
    path = tmp_path / "service.yaml"
    path.write_text(f"center: {ROOT / 'config' / 'center.yaml'}\n"
                    f"flows: {ROOT / 'config' / 'ivr'}\n"
                    "agi: {port: 0}\nhttp: {port: 0, max_body_bytes: 1024}\n"
                    "records: {database: acd.sqlite3}\nshutdown_grace_s: 1\n" + extra)
    return path


async def started(tmp_path: Path, token: str | None = TOKEN) -> Runtime:
    env = {"ACD_API_TOKEN": token} if token else {}
    runtime = Runtime(load_settings(settings_file(tmp_path), env))
    await runtime.start()
    return runtime


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[Runtime, aiohttp.ClientSession]]:
    runtime = await started(tmp_path)
    async with aiohttp.ClientSession(f"http://127.0.0.1:{runtime.http_port}") as http:
        yield runtime, http
    await runtime.stop()


async def call(http: aiohttp.ClientSession, method: str, path: str,
               **kw: Any) -> tuple[int, dict[str, Any]]:
    async with http.request(method, path, **kw) as resp:
        assert resp.content_type == "application/json"
        return resp.status, await resp.json()


async def test_agent_life_cycle(api: tuple[Runtime, aiohttp.ClientSession]) -> None:
    """Login, pause with a reason, ready and logout change the router's agent state."""
    runtime, http = api
    agent = "/v1/agents/msk-tech-ru-001"
    assert await call(http, "POST", f"{agent}/login", headers=AUTH) == (
        200, {"agent_id": "msk-tech-ru-001", "state": "ready"})
    status, body = await call(http, "POST", f"{agent}/pause", headers=AUTH,
                              json={"reason": "lunch"})
    assert (status, body["state"]) == (200, "paused")
    status, body = await call(http, "GET", agent)
    assert (body["state"], body["reason"], body["site"]) == ("paused", "lunch", "moscow")
    assert (await call(http, "POST", f"{agent}/ready", headers=AUTH))[1]["state"] == "ready"
    assert (await call(http, "POST", f"{agent}/logout", headers=AUTH))[1]["state"] == \
        "logged_out"
    assert runtime.service.router.agent_state("msk-tech-ru-001") is AgentState.LOGGED_OUT


async def test_refusals_have_clear_statuses(api: tuple[Runtime, aiohttp.ClientSession]) -> None:
    """Double login 409, unknown agent 404, bad reason 422 listing the valid reasons."""
    _, http = api
    await call(http, "POST", "/v1/agents/msk-tech-ru-001/login", headers=AUTH)
    status, body = await call(http, "POST", "/v1/agents/msk-tech-ru-001/login", headers=AUTH)
    assert status == 409 and body["error"] == "already_logged_in"
    assert "already logged in" in body["message"]
    status, body = await call(http, "POST", "/v1/agents/nobody-1/ready", headers=AUTH)
    assert status == 404 and body["error"] == "unknown_agent" and "nobody-1" in body["message"]
    status, body = await call(http, "POST", "/v1/agents/msk-tech-ru-001/pause", headers=AUTH,
                              json={"reason": "nap"})
    assert status == 422 and "lunch" in body["valid"] and "nap" in body["message"]
    status, body = await call(http, "POST", "/v1/agents/msk-tech-ru-001/pause", headers=AUTH)
    assert status == 422 and body["error"] == "missing_field"
    status, body = await call(http, "POST", "/v1/agents/msk-tech-ru-002/ready", headers=AUTH)
    assert status == 409 and body["error"] == "not_logged_in"


async def test_login_endpoint_must_be_a_dial_string(
        api: tuple[Runtime, aiohttp.ClientSession]) -> None:
    """A login endpoint outside the dial-string grammar is refused at once (422, agent still
    logged out), so it never fails an offer later; one of the grammar is used as given."""
    runtime, http = api
    url = "/v1/agents/msk-tech-ru-001/login"
    for bad in ("PJSIP/1001&PJSIP/1002", "PJSIP/1001,30", "Local/${X}@a", "PSJIP/1001"):
        status, body = await call(http, "POST", url, headers=AUTH, json={"endpoint": bad})
        assert (status, body["error"]) == (422, "bad_endpoint"), bad
        assert "endpoint" in body["message"]
        assert runtime.service.router.agent_state("msk-tech-ru-001") is AgentState.LOGGED_OUT
    status, body = await call(http, "POST", url, headers=AUTH,
                              json={"endpoint": "Local/1001@agents/n"})
    assert (status, body["state"]) == (200, "ready")


async def test_token_and_body_limits(api: tuple[Runtime, aiohttp.ClientSession]) -> None:
    """Mutations need the bearer token; bodies are capped and must be JSON objects."""
    _, http = api
    url = "/v1/agents/msk-tech-ru-001/login"
    status, body = await call(http, "POST", url)
    assert status == 401 and body["error"] == "unauthorised"
    status, _ = await call(http, "POST", url, headers={"Authorization": "Bearer wrong"})
    assert status == 401
    status, body = await call(http, "POST", url, headers=AUTH, data=b"x" * 4096)
    assert status == 413 and body["error"] == "body_too_large"
    status, body = await call(http, "POST", url, headers=AUTH, data=b"{not json")
    assert status == 400 and body["error"] == "bad_json"
    status, body = await call(http, "POST", url, headers=AUTH, json=["a"])
    assert status == 400
    status, body = await call(http, "GET", "/v1/nothing-here")
    assert status == 404 and body["error"] == "not_found"


async def test_no_token_configured_disables_mutations(tmp_path: Path) -> None:
    """Without a token, mutating endpoints answer 403 saying how to set one; reads work."""
    runtime = await started(tmp_path, token=None)
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{runtime.http_port}") as http:
            status, body = await call(http, "POST", "/v1/agents/msk-tech-ru-001/login",
                                      headers=AUTH)
            assert status == 403 and "ACD_API_TOKEN" in body["message"]
            assert (await call(http, "GET", "/health"))[0] == 200
    finally:
        await runtime.stop()


async def test_snapshots_health_and_metrics(api: tuple[Runtime, aiohttp.ClientSession]) -> None:
    """Queue and agent snapshots, health and /metrics reflect the router."""
    _, http = api
    await call(http, "POST", "/v1/agents/kyi-tech-uk-001/login", headers=AUTH,
               json={"paused_reason": "training"})
    _, body = await call(http, "GET", "/v1/queues")
    queues = {q["queue"]: q for q in body["queues"]}
    assert set(queues) == {"tech", "repair", "orders", "voc"}
    assert queues["tech"]["agents_logged_in"] == 1 and queues["tech"]["agents_ready"] == 0
    _, body = await call(http, "GET", "/v1/agents", params={"state": "paused"})
    assert [a["agent_id"] for a in body["agents"]] == ["kyi-tech-uk-001"]
    status, body = await call(http, "GET", "/v1/agents", params={"state": "asleep"})
    assert status == 422 and "ready" in body["valid"]
    status, body = await call(http, "GET", "/health")
    assert status == 200 and body["status"] == "ok" and body["agents_logged_in"] == 1
    async with http.get("/metrics") as resp:
        text = await resp.text()
        assert resp.status == 200 and resp.content_type == "text/plain"
    assert 'acd_agents{site="kyiv",state="paused"} 1.0' in text
    assert 'acd_queue_agents_logged_in{queue="tech"} 1.0' in text
    # The service's own registry carries the build, business hours and process series.
    assert 'acd_build_info{router="' in text and 'acd_queue_open{queue="tech"} 1.0' in text
    assert text.count("\nprocess_cpu_seconds_total ") == 1


def strict_json(text: str) -> Any:
    """Parse as RFC 8259 JSON: Python's extensions (Infinity, -Infinity, NaN) are errors."""
    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")
    return json.loads(text, parse_constant=refuse)


async def test_queue_ewt_without_agents_is_null_with_a_reason(
        api: tuple[Runtime, aiohttp.ClientSession]) -> None:
    """With nobody logged in, /v1/queues is strict JSON: ewt_s null and ewt_reason saying why;
    once an agent with the skill logs in, ewt_s is a number and the reason is null."""
    _, http = api
    async with http.get("/v1/queues") as resp:
        body = strict_json(await resp.text())
    queues = {q["queue"]: q for q in body["queues"]}
    assert {(q["ewt_s"], q["ewt_reason"]) for q in queues.values()} == \
        {(None, "no_agents_logged_in")}
    await call(http, "POST", "/v1/agents/msk-tech-ru-001/login", headers=AUTH)
    async with http.get("/v1/queues") as resp:
        body = strict_json(await resp.text())
    queues = {q["queue"]: q for q in body["queues"]}
    assert isinstance(queues["tech"]["ewt_s"], float) and queues["tech"]["ewt_reason"] is None
    assert (queues["voc"]["ewt_s"], queues["voc"]["ewt_reason"]) == \
        (None, "no_agents_logged_in")
    with pytest.raises(ValueError):
        strict_json('{"ewt_s": Infinity}')


def test_every_response_body_is_strict_json() -> None:
    """Non-finite floats anywhere in a body (nested, in a snapshot dataclass) become null."""
    snap = QueueSnapshot("tech", 0, 0, 0, 0.0, 0, 0, float("inf"))
    text = _dumps({"a": float("nan"), "b": [1.5, float("-inf")], "q": snap})
    assert strict_json(text) == {"a": None, "b": [1.5, None],
                                 "q": {**dataclasses.asdict(snap), "ewt_s": None}}


async def test_reload_keeps_agents(api: tuple[Runtime, aiohttp.ClientSession]) -> None:
    """POST /v1/reload rebuilds the router from the config; agents keep their states."""
    runtime, http = api
    await call(http, "POST", "/v1/agents/msk-tech-ru-001/login", headers=AUTH)
    await call(http, "POST", "/v1/agents/msk-tech-ru-002/login", headers=AUTH,
               json={"paused_reason": "break"})
    old_router = runtime.service.router
    status, body = await call(http, "POST", "/v1/reload", headers=AUTH)
    assert status == 200 and body["status"] == "reloaded" and body["agents"] == 2
    assert "main" in body["flows"]
    assert runtime.service.router is not old_router
    state = runtime.service.router.agent_state
    assert state("msk-tech-ru-001") is AgentState.READY
    assert state("msk-tech-ru-002") is AgentState.PAUSED
    assert (await call(http, "POST", "/v1/reload"))[0] == 401


async def _raw(port: int, request: bytes) -> bytes:
    """Send raw bytes (headers aiohttp's client would refuse) and read the whole answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    try:
        async with asyncio.timeout(5):
            return await reader.read(65536)
    finally:
        writer.close()


async def test_non_ascii_authorization_is_401_not_500(
        api: tuple[Runtime, aiohttp.ClientSession]) -> None:
    """An Authorization header in UTF-8 or in bytes that are not UTF-8 is refused with 401."""
    runtime, _ = api
    for token in ("Bearer сек".encode(), b"Bearer \xff\xfe", b"\xff \xff"):
        answer = await _raw(runtime.http_port,
                            b"POST /v1/agents/msk-tech-ru-001/logout HTTP/1.1\r\nHost: acd\r\n"
                            b"Authorization: " + token + b"\r\nContent-Length: 0\r\n"
                            b"Connection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
        assert b'"unauthorised"' in answer


async def test_json_nested_8000_deep_is_400(tmp_path: Path) -> None:
    """A body nested 8,000 deep (within the default 16 KB cap) is refused as bad JSON."""
    path = tmp_path / "service.yaml"
    path.write_text(f"center: {ROOT / 'config' / 'center.yaml'}\n"
                    f"flows: {ROOT / 'config' / 'ivr'}\n"
                    "agi: {port: 0}\nhttp: {port: 0}\n"
                    "records: {database: acd.sqlite3}\nshutdown_grace_s: 1\n")
    runtime = Runtime(load_settings(path, {"ACD_API_TOKEN": TOKEN}))
    await runtime.start()
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{runtime.http_port}") as http:
            for body in (b"[" * 8000 + b"]" * 8000,
                         b'{"endpoint": ' + b"[" * 7000 + b"]" * 7000 + b"}"):
                status, answer = await call(http, "POST", "/v1/agents/msk-tech-ru-001/login",
                                            headers=AUTH, data=body)
                assert (status, answer["error"]) == (400, "bad_json")
    finally:
        await runtime.stop()


async def test_login_refuses_chained_and_multi_line_endpoints(
        api: tuple[Runtime, aiohttp.ClientSession]) -> None:
    """Endpoints that would dial a second target or carry a newline are refused (422)."""
    runtime, http = api
    url = "/v1/agents/msk-tech-ru-001/login"
    for bad in ("PJSIP/1001&Local/900@outbound", "PJSIP/1001\nLocal/900@outbound",
                "PJSIP/1001\r", "PJSIP/1001 ", "PJSIP/10\x0001"):
        status, body = await call(http, "POST", url, headers=AUTH, json={"endpoint": bad})
        assert (status, body["error"]) == (422, "bad_endpoint"), repr(bad)
    assert runtime.service.router.agent_state("msk-tech-ru-001") is AgentState.LOGGED_OUT
