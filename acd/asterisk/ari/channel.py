"""The IVR's :class:`ivr.channel.Channel` over ARI: prompts, keys, lookups for one caller.

Prompts are played with playback ids of our own, so the engine knows which PlaybackFinished
ends which prompt; a key pressed during a menu prompt stops it (barge-in). Every wait also ends
when the caller hangs up (:class:`ivr.channel.CallerHungUp`) and has a deadline of its own, so a
lost event can delay a caller but never strand one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from acd.asterisk.ari.calls import AriCall, quietly, retry
from acd.asterisk.ari.client import AriClient, AriError
from acd.runtime.ivrsetup import IvrSetup
from acd.runtime.router_service import RouterService
from ivr import actions as a
from ivr.channel import CallerHungUp

log = logging.getLogger(__name__)

#: Longest a prompt may play before the engine stops waiting for its PlaybackFinished.
MAX_PROMPT_S = 120.0
#: Longest a customer-directory lookup may take before the call goes on without a card.
LOOKUP_TIMEOUT_S = 2.0
#: Dialplan context for blind transfers out of the IVR (see extensions-stasis.conf).
TRANSFER_CONTEXT = "acd-stasis-transfer"
#: How long a voicemail waits, after the caller hung up, for Asterisk to report the recording
#: (Asterisk stops and stores a recording on hangup and reports it just after the hangup).
RECORDING_AFTER_HANGUP_S = 5.0


class AriIvrChannel:
    """Runs IVR actions on one caller's channel through ARI."""

    def __init__(
        self,
        client: AriClient,
        call: AriCall,
        setup: IvrSetup,
        service: RouterService,
        *,
        transfer_context: str = TRANSFER_CONTEXT,
    ) -> None:
        self.client = client
        self.call = call
        self.setup = setup
        self.service = service
        self.transfer_context = transfer_context

    # ------------------------------------------------------------ waiting

    async def _wait(self, ready: Callable[[], bool], timeout: float | None, *,
                    hangup_ends: bool = True) -> bool:
        """Wait until `ready()` (True) or the timeout (False); raise if the caller hangs up,
        unless ``hangup_ends`` is False (waiting for news that comes after a hangup)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        call = self.call
        while True:
            if hangup_ends and call.hung_up:
                raise CallerHungUp(call.call_id)
            if ready():
                return True
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return False
            call.changed.clear()
            try:
                await asyncio.wait_for(call.changed.wait(), remaining)
            except TimeoutError:
                continue

    async def start_prompt(self, sound: str) -> str:
        """Start playing `sound` to the caller; return the playback id."""
        call = self.call
        if call.hung_up:
            raise CallerHungUp(call.call_id)
        playback_id = call.next_id("pb")
        call.pending_playbacks.add(playback_id)
        try:
            await retry(
                lambda: self.client.play(call.call_id, f"sound:{sound}", playback_id=playback_id)
            )
        except AriError as exc:
            call.pending_playbacks.discard(playback_id)
            if call.hung_up:
                raise CallerHungUp(call.call_id) from None
            # A missing prompt must not stop the call: the caller just does not hear it.
            log.warning("prompt %s not played to %s: %s", sound, call.call_id, exc)
            call.playbacks_done.add(playback_id)
        return playback_id

    async def stop_prompt(self, playback_id: str) -> None:
        """Stop a prompt that is still playing (barge-in)."""
        if playback_id not in self.call.playbacks_done:
            await quietly(lambda: self.client.stop_playback(playback_id))
            self.call.playback_finished(playback_id)

    async def wait_prompt(self, playback_id: str) -> None:
        """Wait for the prompt to end."""
        done = self.call.playbacks_done
        if not await self._wait(lambda: playback_id in done, MAX_PROMPT_S):
            await self.stop_prompt(playback_id)
        done.discard(playback_id)

    # ------------------------------------------------------------ Channel protocol

    async def play(self, prompt: str, language: str, sound: str) -> None:
        """Play a prompt to the end (keys pressed meanwhile are kept for the next menu)."""
        await self.wait_prompt(await self.start_prompt(sound))

    async def collect(
        self,
        prompt: str,
        language: str,
        sound: str,
        max_digits: int,
        timeout_s: float,
        terminator: str = "#",
    ) -> str | None:
        """Play the prompt, stop it on the first key, then take keys until `max_digits`,
        the terminator, or `timeout_s` without a key."""
        call = self.call
        call.digits.clear()  # keys pressed before the question are not answers to it
        playback_id = await self.start_prompt(sound)
        done = call.playbacks_done
        await self._wait(lambda: bool(call.digits) or playback_id in done, MAX_PROMPT_S)
        if call.digits:
            await self.stop_prompt(playback_id)
        done.discard(playback_id)
        collected = ""
        while len(collected) < max(1, max_digits):
            if not await self._wait(lambda: bool(call.digits), timeout_s):
                break
            digit = call.digits.popleft()
            if terminator and digit == terminator:
                break
            collected += digit
        return collected or None

    async def lookup_customer(self, number: str) -> list[a.CustomerCard]:
        """Customer cards for the number; none when the directory fails or is slow."""
        directory = self.setup.customers
        if directory is None:
            return []
        try:
            return await asyncio.wait_for(directory.find(number), LOOKUP_TIMEOUT_S)
        except Exception as exc:  # a directory failure must not drop the call: no card then
            log.warning("customer lookup failed for %s: %s", self.call.call_id, exc,
                        exc_info=True)
            return []

    async def lookup_order(self, order_number: str) -> str | None:
        """No order system is connected to the ARI shell yet: every order is unknown."""
        return None

    async def estimate_wait(self, queue: str, language: str) -> float:
        """Expected wait for a new call in `queue`, from the router."""
        try:
            return float(self.service.ewt_new(queue, language))
        except KeyError:
            return 0.0

    async def voicemail(self, queue: str, language: str, max_seconds: float) -> str | None:
        """Record a message (ARI recording named after the call); None if nothing recorded."""
        call = self.call
        name = call.next_id("vm")
        call.recordings_open.add(name)
        try:
            try:
                await self.client.record(call.call_id, name, max_duration_s=int(max_seconds))
            except AriError as exc:
                if call.hung_up:
                    raise CallerHungUp(call.call_id) from None
                log.warning("voicemail not recorded for %s: %s", call.call_id, exc)
                return None
            try:
                finished = await self._wait(lambda: name in call.recordings_done,
                                            max_seconds + 5)
            except CallerHungUp:
                # A message left before hanging up still counts, as on any voicemail system;
                # hanging up is the usual way to end one. Wait for Asterisk's report of it.
                await self._wait(lambda: name in call.recordings_done,
                                 RECORDING_AFTER_HANGUP_S, hangup_ends=False)
                return name if call.recordings_done.get(name) else None
            return name if finished and call.recordings_done.get(name) else None
        finally:
            call.recordings_open.discard(name)

    async def create_callback(self, task: a.CallbackTask) -> None:
        """Store the callback task where the service keeps them."""
        if self.setup.callbacks is not None:
            self.setup.callbacks.add(task)

    async def transfer(self, number: str) -> None:
        """Continue in the transfer context with the (configured, trusted) number."""
        call = self.call
        call.left = True
        await quietly(
            lambda: self.client.continue_in_dialplan(
                call.call_id, context=self.transfer_context, extension=number, priority=1
            )
        )

    async def hangup(self, reason: str) -> None:
        """Hang the caller up (the flow is done with the call)."""
        call = self.call
        call.left = True
        await quietly(lambda: self.client.hangup(call.call_id, "normal"))
