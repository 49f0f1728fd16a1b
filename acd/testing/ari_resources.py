"""The fake ARI server's REST resources: what each request does to the world, with the
status codes and body shapes Asterisk 22 answers (404 for an unknown id, 409 for a channel
not in Stasis, and so on). :class:`~acd.testing.fake_ari.FakeAri` routes requests here."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from acd.testing.ari_objects import DEFAULT_API_HANGUP_CAUSE, REASON_CAUSE, FakeBridge, FakeChannel
from acd.testing.ari_world import AriWorld


def error_response(status: int, message: str) -> web.Response:
    """An ARI error: the status with ``{"message": ...}``, as Asterisk sends it."""
    return web.json_response({"message": message}, status=status)


class AriResources(AriWorld):
    """The world with a request handler for each ARI resource the engine uses."""

    def _stasis_chan(self, request: web.Request) -> FakeChannel | web.Response:
        chan = self.channels.get(request.match_info["cid"])
        if chan is None:
            return error_response(404, "Channel not found")
        if not chan.in_stasis:
            return error_response(409, "Channel not in Stasis application")
        return chan

    # ------------------------------------------------------------ channel handlers

    async def _list_channels(self, request: web.Request) -> web.Response:
        return web.json_response([c.json() for c in self.channels.values()])

    async def _get_channel(self, request: web.Request) -> web.Response:
        chan = self.channels.get(request.match_info["cid"])
        if chan is None:
            return error_response(404, "Channel not found")
        return web.json_response(chan.json())

    async def _originate(self, request: web.Request) -> web.Response:
        params = dict(request.query)
        variables: Mapping[str, Any] = {}
        if request.can_read_body:
            try:
                body = await request.json()
            except ValueError:
                return error_response(400, "Error parsing request body")
            if isinstance(body, dict):
                variables = body.pop("variables", None) or {}
                params.update({k: str(v) for k, v in body.items()})
        endpoint = params.get("endpoint", "")
        if not endpoint:
            return error_response(400, "Endpoint must be specified")
        for wanted in (params.get("channelId"), params.get("otherChannelId")):
            if wanted and wanted in self.channels:
                return error_response(409, "Channel with given unique ID already exists")
        if "app" in params:
            if params["app"] != self.app:
                return error_response(400, "Fake ARI serves one application only")
            agent = self._new_agent(endpoint, params)
            agent.variables.update({str(k): str(v) for k, v in variables.items()})
            timeout = int(params.get("timeout", "30"))
            asyncio.get_running_loop().call_soon(self._dial_start, agent.id, timeout)
            return web.json_response(agent.json())
        leg1 = self._originate_caller(endpoint, params)
        if leg1 is None:
            return error_response(400, "The fake only originates Local/<exten>@<context> callers")
        return web.json_response(leg1.json())

    async def _delete_channel(self, request: web.Request) -> web.Response:
        chan = self.channels.get(request.match_info["cid"])
        if chan is None:
            return error_response(404, "Channel not found")
        reason = request.query.get("reason")
        if reason is not None and reason not in REASON_CAUSE:
            return error_response(400, "Invalid reason for hangup provided")
        cause = DEFAULT_API_HANGUP_CAUSE if reason is None else REASON_CAUSE[reason]
        self._hangup(chan, cause, soft=True)
        return web.Response(status=204)

    async def _answer(self, request: web.Request) -> web.Response:
        chan = self._stasis_chan(request)
        if isinstance(chan, web.Response):
            return chan
        self._answer_channel(chan)
        return web.Response(status=204)

    async def _ring(self, request: web.Request) -> web.Response:
        chan = self._stasis_chan(request)
        return chan if isinstance(chan, web.Response) else web.Response(status=204)

    async def _continue(self, request: web.Request) -> web.Response:
        chan = self._stasis_chan(request)
        if isinstance(chan, web.Response):
            return chan
        self._leave_stasis(chan)
        return web.Response(status=204)

    async def _play(self, request: web.Request) -> web.Response:
        chan = self._stasis_chan(request)
        if isinstance(chan, web.Response):
            return chan
        media = ",".join(request.query.getall("media", []))
        if not media:
            return error_response(400, "media is required")
        playback_id = request.query.get("playbackId") or self._uuid()
        if playback_id in self.playbacks:
            return error_response(409, "Playback with given ID already exists")
        pb = self._new_playback(chan, media, playback_id, request.query.get("lang"))
        body = pb.json()
        asyncio.get_running_loop().call_soon(self._start_playback, pb)
        return web.json_response(body, status=201)

    async def _record(self, request: web.Request) -> web.Response:
        """POST /channels/{id}/record (not recorded): a LiveRecording, queued, then started."""
        chan = self._stasis_chan(request)
        if isinstance(chan, web.Response):
            return chan
        name, fmt = request.query.get("name"), request.query.get("format")
        if not name or not fmt:
            return error_response(400, "Recording name and format are required")
        if name in self.recordings:
            return error_response(409, "Recording with the same name already in progress")
        rec = self._new_recording(chan, name, fmt)
        asyncio.get_running_loop().call_soon(self._start_recording, name)
        return web.json_response(dict(rec), status=201)

    async def _set_var(self, request: web.Request) -> web.Response:
        chan = self.channels.get(request.match_info["cid"])
        if chan is None:
            return error_response(404, "Channel not found")
        variable = request.query.get("variable")
        if not variable:
            return error_response(400, "Variable name is required")
        self._set_var_on(chan, variable, request.query.get("value", ""))
        return web.Response(status=204)

    async def _get_var(self, request: web.Request) -> web.Response:
        chan = self.channels.get(request.match_info["cid"])
        if chan is None:
            return error_response(404, "Channel not found")
        value = chan.variables.get(request.query.get("variable", ""))
        if value is None:
            return error_response(404, "Provided variable was not found")
        return web.json_response({"value": value})

    async def _get_playback(self, request: web.Request) -> web.Response:
        pb = self.playbacks.get(request.match_info["pid"])
        if pb is None:
            return error_response(404, "Playback not found")
        return web.json_response(pb.json())

    async def _stop_playback(self, request: web.Request) -> web.Response:
        if request.match_info["pid"] not in self.playbacks:
            return error_response(404, "Playback not found")
        self._finish_playback(request.match_info["pid"])
        return web.Response(status=204)

    # ------------------------------------------------------------ bridge handlers

    async def _list_bridges(self, request: web.Request) -> web.Response:
        return web.json_response([b.json() for b in self.bridges.values()])

    async def _create_bridge(self, request: web.Request) -> web.Response:
        kinds = request.query.get("type", "mixing").split(",")
        bridge_type = "holding" if "holding" in kinds else "mixing"
        bridge_id = request.query.get("bridgeId") or self._uuid()
        if bridge_id in self.bridges:
            return error_response(409, "Bridge with given ID already exists")  # not recorded
        bridge = self._create_bridge_named(bridge_id, bridge_type, request.query.get("name", ""))
        return web.json_response(bridge.json())

    async def _get_bridge(self, request: web.Request) -> web.Response:
        bridge = self.bridges.get(request.match_info["bid"])
        if bridge is None:
            return error_response(404, "Bridge not found")
        return web.json_response(bridge.json())

    async def _delete_bridge(self, request: web.Request) -> web.Response:
        bridge = self.bridges.get(request.match_info["bid"])
        if bridge is None:
            return error_response(404, "Bridge not found")
        self._destroy_bridge(bridge)
        return web.Response(status=204)

    def _bridge_members(
        self, request: web.Request, *, must_be_in: bool
    ) -> tuple[FakeBridge, list[FakeChannel]] | web.Response:
        bridge = self.bridges.get(request.match_info["bid"])
        if bridge is None:
            return error_response(404, "Bridge not found")
        ids = [c for c in ",".join(request.query.getall("channel", [])).split(",") if c]
        if not ids:
            return error_response(400, "channel is required")
        chans: list[FakeChannel] = []
        for cid in ids:
            chan = self.channels.get(cid)
            if chan is None:
                return error_response(400, "Channel not found")
            if not chan.in_stasis:
                return error_response(422, "Channel not in Stasis application")
            if must_be_in and chan.bridge_id != bridge.id:
                return error_response(422, "Channel not in this bridge")
            chans.append(chan)
        return bridge, chans

    async def _add_channel(self, request: web.Request) -> web.Response:
        found = self._bridge_members(request, must_be_in=False)
        if isinstance(found, web.Response):
            return found
        self._add_to_bridge(*found)
        return web.Response(status=204)

    async def _remove_channel(self, request: web.Request) -> web.Response:
        found = self._bridge_members(request, must_be_in=True)
        if isinstance(found, web.Response):
            return found
        self._remove_from_bridge(*found)
        return web.Response(status=204)

    async def _start_moh(self, request: web.Request) -> web.Response:
        bridge = self.bridges.get(request.match_info["bid"])
        if bridge is None:
            return error_response(404, "Bridge not found")
        bridge.moh_class = request.query.get("mohClass", "default")
        return web.Response(status=204)

    async def _stop_moh(self, request: web.Request) -> web.Response:
        bridge = self.bridges.get(request.match_info["bid"])
        if bridge is None:
            return error_response(404, "Bridge not found")
        bridge.moh_class = None
        return web.Response(status=204)

    # ------------------------------------------------------------ applications

    async def _list_apps(self, request: web.Request) -> web.Response:
        return web.json_response([self._app_json()])

    async def _get_app(self, request: web.Request) -> web.Response:
        if request.match_info["app"] != self.app:
            return error_response(404, "Application not found")
        return web.json_response(self._app_json())
