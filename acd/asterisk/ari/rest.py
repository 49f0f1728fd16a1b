"""ARI's REST half: typed requests for channels, bridges, playbacks and applications.

Credentials live only inside a redacting holder and never reach a log line, a repr or an
exception text. Every request has its own deadline, so no call waits on a silent socket.

Requests that change a call (answer, continue, originate, bridges and what is in them, music,
the queue variable) are retried with backoff while Asterisk answers 5xx, times out or cannot
be reached, for at most ``change_budget_s`` (an originate: at most its ring timeout); clean-up
(hanging up, destroying a bridge) for at most ``cleanup_budget_s``, until Asterisk confirms it
(a 404 says it is gone already). A 4xx is never retried: the call moved on. When the budget is
spent the request raises :class:`~acd.asterisk.ari.errors.AriUnavailable`, which callers do not
retry again. Reads are not retried here; their callers decide.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar
from urllib.parse import quote, urlsplit

import aiohttp
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_before_delay

from acd.asterisk.ari.errors import (
    TRANSIENT_ERRORS,
    AriConnectionError,
    AriError,
    AriNotFound,
    AriTimeout,
    AriUnavailable,
    error_for_status,
)
from acd.asterisk.ari.models import (
    Application,
    Bridge,
    Channel,
    MalformedEvent,
    Playback,
    loads_bounded,
)

log = logging.getLogger(__name__)

M_co = TypeVar("M_co", covariant=True)

#: Largest REST response body decoded (a channel list of thousands of calls fits).
MAX_RESPONSE_CHARS = 64 << 20

#: Hangup reasons ARI accepts on DELETE /channels/{id}.
HANGUP_REASONS = frozenset(
    {
        "normal",
        "busy",
        "congestion",
        "no_answer",
        "timeout",
        "rejected",
        "unallocated",
        "normal_unspecified",
        "number_incomplete",
        "codec_mismatch",
        "interworking",
        "failure",
        "answered_elsewhere",
    }
)


def basic_authorization(username: str, password: str) -> str:
    """The HTTP Basic ``Authorization`` header value ARI expects."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


class _Secret:
    """Holds a credential so that no repr, vars() dump or traceback local shows it."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "<redacted>"


def _ari_root(base_url: str) -> str:
    parts = urlsplit(base_url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError("ARI base_url must look like http://host:8088 (scheme and host).")
    if parts.username or parts.password:
        # Refuse rather than echo: the URL would otherwise carry secrets into logs.
        raise ValueError("ARI base_url must not contain credentials; pass username/password.")
    root = base_url.rstrip("/")
    return root if root.endswith("/ari") else root + "/ari"


def _q(resource_id: str) -> str:
    """Quote an id for a URL path: ids such as ``agent-1;2`` must stay one path segment."""
    if not resource_id:
        raise ValueError("An ARI resource id must not be empty.")
    return quote(resource_id, safe="")


def _join_args(values: str | Sequence[str]) -> str:
    if isinstance(values, str):
        return values
    for value in values:
        if "," in value:
            raise ValueError(f"A Stasis argument may not contain a comma: {value!r}.")
    return ",".join(values)


class AriRest:
    """The REST calls the engine needs, over one aiohttp session.

    Pass `session` to share an aiohttp session (then it stays open on :meth:`close_session`).
    """

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        app: str = "acd",
        session: aiohttp.ClientSession | None = None,
        *,
        request_timeout: float = 5.0,
        change_budget_s: float = 30.0,
        cleanup_budget_s: float = 120.0,
        retry_initial_s: float = 0.1,
        retry_max_s: float = 2.0,
        retry_rng: random.Random | None = None,
        retry_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._root = _ari_root(base_url)
        self._auth = _Secret(basic_authorization(username, password))
        self.app = app
        self._session = session
        self._owns_session = session is None
        self.request_timeout = request_timeout
        self.change_budget_s = change_budget_s
        self.cleanup_budget_s = cleanup_budget_s
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self._retry_rng = retry_rng if retry_rng is not None else random.Random(0)
        self._retry_sleep = retry_sleep

    @property
    def root(self) -> str:
        """The ARI root URL, ``http(s)://host:port/ari``."""
        return self._root

    def auth_headers(self) -> dict[str, str]:
        """The ``Authorization`` header for a request (never log it)."""
        return {"Authorization": self._auth.value}

    def http(self) -> aiohttp.ClientSession:
        """The aiohttp session, opened on first use."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close_session(self) -> None:
        """Close the session if this object opened it."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    # ------------------------------------------------------------ REST plumbing

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json_body: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Send one REST request under its own deadline; return the decoded body or None.

        Raises the `AriError` subclass matching the status, `AriTimeout` or `AriConnectionError`.
        """
        query = {k: str(v) for k, v in (params or {}).items()}
        deadline = aiohttp.ClientTimeout(total=timeout or self.request_timeout)
        started = time.monotonic()
        try:
            async with self.http().request(
                method,
                self._root + path,
                params=query,
                json=json_body,
                headers=self.auth_headers(),
                timeout=deadline,
            ) as resp:
                raw = await resp.read()
                status = resp.status
                is_json = resp.content_type == "application/json"
        except TimeoutError:
            raise AriTimeout(method, path, None, "no answer before the deadline") from None
        except aiohttp.ClientError as exc:
            raise AriConnectionError(method, path, None, type(exc).__name__) from None
        elapsed_ms = (time.monotonic() - started) * 1000
        log.debug("ari %s %s -> %s in %.1f ms", method, path, status, elapsed_ms)
        body = _decode(raw, is_json)
        if status >= 400:
            message = body.get("message") if isinstance(body, dict) else None
            text = message if isinstance(message, str) else (resp.reason or "error")
            raise error_for_status(status)(method, path, status, text)
        return body

    async def retried(
        self,
        budget_s: float,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json_body: Mapping[str, Any] | None = None,
    ) -> Any:
        """:meth:`request`, sent again with backoff on 5xx, timeouts and connection errors
        until ``budget_s`` would be passed; then :class:`AriUnavailable`. A 4xx is raised at
        once."""
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(TRANSIENT_ERRORS),
            stop=stop_before_delay(budget_s),
            wait=self._retry_wait,
            sleep=self._retry_sleep,
            before_sleep=self._log_retry,
            reraise=True,
        )
        started = time.monotonic()
        tries = 0
        try:
            async for attempt in retrying:
                with attempt:
                    tries += 1
                    return await self.request(method, path, params=params, json_body=json_body)
        except TRANSIENT_ERRORS as exc:
            gave_up = AriUnavailable(exc, tries, time.monotonic() - started)
            log.warning("%s", gave_up)
            raise gave_up from None
        raise AssertionError("unreachable: tenacity returns or raises")

    def _retry_wait(self, state: RetryCallState) -> float:
        nominal = min(self.retry_max_s, self.retry_initial_s * 2 ** (state.attempt_number - 1))
        return nominal / 2 + self._retry_rng.uniform(0, nominal / 2)

    @staticmethod
    def _log_retry(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        log.info("%s; try %d in %.2f s", error, state.attempt_number + 1, wait)

    async def _change(self, method: str, path: str, **kwargs: Any) -> Any:
        return await self.retried(self.change_budget_s, method, path, **kwargs)

    async def _clean(self, method: str, path: str, **kwargs: Any) -> Any:
        return await self.retried(self.cleanup_budget_s, method, path, **kwargs)

    # ------------------------------------------------------------ channels

    async def answer(self, channel_id: str) -> None:
        """Answer a ringing channel."""
        await self._change("POST", f"/channels/{_q(channel_id)}/answer")

    async def hangup(self, channel_id: str, reason: str | None = None) -> None:
        """Hang up a channel; `reason` is one of `HANGUP_REASONS` (Asterisk's default: normal)."""
        params: dict[str, str | int] = {}
        if reason is not None:
            if reason not in HANGUP_REASONS:
                valid = ", ".join(sorted(HANGUP_REASONS))
                raise ValueError(f"Unknown hangup reason {reason!r}; valid reasons: {valid}.")
            params["reason"] = reason
        await self._clean("DELETE", f"/channels/{_q(channel_id)}", params=params)

    async def play(
        self,
        channel_id: str,
        media: str | Sequence[str],
        *,
        lang: str | None = None,
        playback_id: str | None = None,
    ) -> Playback:
        """Start a prompt (``sound:...``) on a channel; a list plays one after another."""
        params: dict[str, str | int] = {"media": _join_args(media)}
        if lang:
            params["lang"] = lang
        if playback_id:
            params["playbackId"] = playback_id
        body = await self.request("POST", f"/channels/{_q(channel_id)}/play", params=params)
        return _one(Playback, body, "POST", "/channels/{id}/play")

    async def stop_playback(self, playback_id: str) -> None:
        """Stop a prompt; Asterisk then sends PlaybackFinished."""
        await self.request("DELETE", f"/playbacks/{_q(playback_id)}")

    async def get_channel(self, channel_id: str) -> Channel:
        """One channel's current snapshot."""
        body = await self.request("GET", f"/channels/{_q(channel_id)}")
        return _one(Channel, body, "GET", "/channels/{id}")

    async def list_channels(self) -> list[Channel]:
        """Every channel Asterisk has, in Stasis or not."""
        body = await self.request("GET", "/channels")
        return _each(Channel, body, "GET", "/channels")

    async def originate(
        self,
        endpoint: str,
        *,
        app: str | None = None,
        app_args: str | Sequence[str] | None = None,
        caller_id: str | None = None,
        timeout: int | None = None,
        channel_id: str | None = None,
        other_channel_id: str | None = None,
        variables: Mapping[str, str] | None = None,
        context: str | None = None,
        extension: str | None = None,
        priority: int | None = None,
    ) -> Channel:
        """Dial `endpoint` (an agent); once answered it enters Stasis `app` with `app_args`.

        Without `context`, the channel goes to this client's app. `timeout` is the ring timeout
        in seconds; an unanswered leg ends with ChannelDestroyed cause 19 (ring-no-answer).
        """
        params: dict[str, str | int] = {"endpoint": endpoint}
        if context is None:
            params["app"] = app or self.app
        else:
            params["context"] = context
        optional: dict[str, str | int | None] = {
            "appArgs": None if app_args is None else _join_args(app_args),
            "callerId": caller_id,
            "timeout": timeout,
            "channelId": channel_id,
            "otherChannelId": other_channel_id,
            "extension": extension,
            "priority": priority,
        }
        params.update({k: v for k, v in optional.items() if v is not None})
        body_in = {"variables": dict(variables)} if variables else None
        # Ringing an agent is worth retrying only while the agent would still be ringing.
        budget = self.change_budget_s if not timeout or timeout < 0 \
            else min(self.change_budget_s, float(timeout))
        body = await self.retried(budget, "POST", "/channels", params=params, json_body=body_in)
        return _one(Channel, body, "POST", "/channels")

    async def ring(self, channel_id: str) -> None:
        """Send ringing to a caller that is not answered yet."""
        await self.request("POST", f"/channels/{_q(channel_id)}/ring")

    async def continue_in_dialplan(
        self,
        channel_id: str,
        *,
        context: str | None = None,
        extension: str | None = None,
        priority: int | None = None,
    ) -> None:
        """Hand the channel back to the dialplan (e.g. the fallback branch); StasisEnd follows."""
        optional = {"context": context, "extension": extension, "priority": priority}
        params = {k: v for k, v in optional.items() if v is not None}
        await self._change("POST", f"/channels/{_q(channel_id)}/continue", params=params)

    async def set_channel_var(self, channel_id: str, variable: str, value: str) -> None:
        """Set a channel variable (the name must come from the engine, never from a caller)."""
        params = {"variable": variable, "value": value}
        await self._change("POST", f"/channels/{_q(channel_id)}/variable", params=params)

    async def get_channel_var(self, channel_id: str, variable: str) -> str | None:
        """A channel variable's value, or None when it is not set."""
        path = f"/channels/{_q(channel_id)}/variable"
        try:
            body = await self.request("GET", path, params={"variable": variable})
        except AriNotFound:
            return None
        value = body.get("value") if isinstance(body, Mapping) else None
        return value if isinstance(value, str) else None

    async def record(
        self,
        channel_id: str,
        name: str,
        *,
        max_duration_s: int = 120,
        max_silence_s: int = 10,
        file_format: str = "wav",
        beep: bool = True,
        terminate_on: str = "#",
    ) -> None:
        """Record the channel into `name`; RecordingFinished or RecordingFailed follows."""
        params: dict[str, str | int] = {
            "name": name,
            "format": file_format,
            "maxDurationSeconds": max_duration_s,
            "maxSilenceSeconds": max_silence_s,
            "ifExists": "overwrite",
            "beep": "true" if beep else "false",
            "terminateOn": terminate_on,
        }
        await self.request("POST", f"/channels/{_q(channel_id)}/record", params=params)

    async def get_playback(self, playback_id: str) -> Playback:
        """A prompt's current state (404 once it has finished)."""
        body = await self.request("GET", f"/playbacks/{_q(playback_id)}")
        return _one(Playback, body, "GET", "/playbacks/{id}")

    # ------------------------------------------------------------ bridges

    async def create_bridge(
        self, type: str = "mixing", *, name: str | None = None, bridge_id: str | None = None
    ) -> Bridge:
        """Create a bridge: ``holding`` (queue with MOH) or ``mixing`` (caller and agent)."""
        params: dict[str, str | int] = {"type": type}
        if name:
            params["name"] = name
        if bridge_id:
            params["bridgeId"] = bridge_id
        body = await self._change("POST", "/bridges", params=params)
        return _one(Bridge, body, "POST", "/bridges")

    async def get_bridge(self, bridge_id: str) -> Bridge:
        """One bridge's current snapshot."""
        body = await self.request("GET", f"/bridges/{_q(bridge_id)}")
        return _one(Bridge, body, "GET", "/bridges/{id}")

    async def list_bridges(self) -> list[Bridge]:
        """Every bridge Asterisk has."""
        body = await self.request("GET", "/bridges")
        return _each(Bridge, body, "GET", "/bridges")

    async def destroy_bridge(self, bridge_id: str) -> None:
        """Destroy a bridge; it outlives its last participant until this is called."""
        await self._clean("DELETE", f"/bridges/{_q(bridge_id)}")

    async def add_channel(
        self, bridge_id: str, channel_ids: str | Sequence[str], *, role: str | None = None
    ) -> None:
        """Put one or more channels into a bridge (moving them out of any other bridge)."""
        params: dict[str, str | int] = {"channel": _join_args(channel_ids)}
        if role:
            params["role"] = role
        await self._change("POST", f"/bridges/{_q(bridge_id)}/addChannel", params=params)

    async def remove_channel(self, bridge_id: str, channel_ids: str | Sequence[str]) -> None:
        """Take channels out of a bridge."""
        params: dict[str, str | int] = {"channel": _join_args(channel_ids)}
        await self._change("POST", f"/bridges/{_q(bridge_id)}/removeChannel", params=params)

    async def start_moh(self, bridge_id: str, moh_class: str = "default") -> None:
        """Play music on hold to everyone in a (holding) bridge."""
        params = {"mohClass": moh_class}
        await self._change("POST", f"/bridges/{_q(bridge_id)}/moh", params=params)

    async def stop_moh(self, bridge_id: str) -> None:
        """Stop music on hold in a bridge."""
        await self._change("DELETE", f"/bridges/{_q(bridge_id)}/moh")

    # ------------------------------------------------------------ applications

    async def get_application(self, app: str | None = None) -> Application:
        """Channels and bridges Asterisk holds for the app: what to reconcile against."""
        body = await self.request("GET", f"/applications/{_q(app or self.app)}")
        return _one(Application, body, "GET", "/applications/{app}")


def _decode(raw: bytes, is_json: bool) -> Any:
    if not raw:
        return None
    text = raw.decode("utf-8", errors="replace")
    if not is_json:
        return text
    try:
        return loads_bounded(text, "ARI response", MAX_RESPONSE_CHARS)
    except MalformedEvent:
        return text  # not what any caller expects: it raises AriError on the shape


class _Model(Protocol[M_co]):
    def from_json(self, data: Mapping[str, Any], where: str = ...) -> M_co: ...


def _one(model: _Model[M_co], body: Any, method: str, path: str) -> M_co:
    """The resource in a response; a malformed one is an AriError like any bad answer."""
    try:
        return model.from_json(_need_obj(body, method, path))
    except MalformedEvent as exc:
        raise AriError(method, path, None, f"malformed response: {exc}") from None


def _each(model: _Model[M_co], body: Any, method: str, path: str) -> list[M_co]:
    """The resources in a list response; malformed items are logged and left out, so one
    bad channel does not hide all the others from a reconcile."""
    items: list[M_co] = []
    for data in _need_list(body, method, path):
        try:
            items.append(model.from_json(data))
        except MalformedEvent as exc:
            log.warning("ari %s %s: item skipped: %s", method, path, exc)
    return items


def _need_obj(body: Any, method: str, path: str) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise AriError(method, path, None, "expected a JSON object in the response")
    return body


def _need_list(body: Any, method: str, path: str) -> list[Mapping[str, Any]]:
    if not isinstance(body, list) or not all(isinstance(b, Mapping) for b in body):
        raise AriError(method, path, None, "expected a JSON list of objects in the response")
    return body
