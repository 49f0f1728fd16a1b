"""The IVR's `Channel` over a FastAGI session: prompts, digits, voicemail, every step bounded.

Each IVR action becomes one AGI command with its own deadline (prompt length allowance plus
the digit timeout), so a silent Asterisk costs a bounded wait. Results that only the dialplan
can act on (transfer, hang up) are left as channel variables for it: the dialplan drives, the
engine decides. Caller-supplied text never reaches a command: prompts and queue names come
from config, recordings are named from the validated call id.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from acd.asterisk.agi import commands
from acd.asterisk.agi.codec import Reply
from acd.asterisk.agi.server import AgiSession
from acd.runtime.ivrsetup import IvrSetup
from ivr import actions as a
from ivr.caller import is_e164
from ivr.channel import CallerHungUp

log = logging.getLogger(__name__)

#: Channel variables the engine leaves for the dialplan (names are fixed, never caller text).
TARGET, AGENT, CALL_ID, RING_TIMEOUT = "ACD_TARGET", "ACD_AGENT", "ACD_CALL_ID", "ACD_RING_TIMEOUT"
RESULT, REASON, QUEUE, LANGUAGE = "ACD_RESULT", "ACD_REASON", "ACD_QUEUE", "ACD_LANGUAGE"
TRANSFER = "ACD_TRANSFER"


@dataclass(frozen=True)
class Deadlines:
    """How long each kind of AGI command may take before the session is given up."""

    #: Plain commands (SET VARIABLE, SET MUSIC, GET VARIABLE): Asterisk answers at once.
    command_s: float = 5.0
    #: Allowance for playing one prompt (STREAM FILE, the prompt part of GET DATA).
    prompt_s: float = 60.0
    #: Customer directory look-up; on timeout the call goes on without a card.
    lookup_s: float = 1.0
    #: Extra time on top of a recording's maximum length (RECORD FILE).
    record_margin_s: float = 15.0


def record_file(name: str, fmt: str, max_ms: int, silence_s: int = 5) -> bytes:
    """``RECORD FILE``: record after a beep until ``#``, ``silence_s`` of silence or ``max_ms``."""
    return commands.encode_command(
        "RECORD FILE", name, fmt, "#", max_ms, "BEEP", f"s={silence_s}"
    )


class AgiChannel:
    """One caller's IVR over FastAGI (implements `ivr.channel.Channel`)."""

    def __init__(
        self,
        session: AgiSession,
        setup: IvrSetup,
        call_id: str,
        estimate_wait: Callable[[str, str], float],
        deadlines: Deadlines = Deadlines(),
        voicemail_dir: str = "acd-voicemail",
    ) -> None:
        self.session = session
        self.setup = setup
        self.call_id = call_id
        self._estimate_wait = estimate_wait
        self.deadlines = deadlines
        self.voicemail_dir = voicemail_dir

    async def _run(self, command: bytes, timeout: float) -> Reply:
        """Send a command; a refusal on a dead channel (511) means the caller is gone."""
        reply = await self.session.command(command, timeout=timeout)
        if reply.code == 511:
            raise CallerHungUp(commands.verb_of(command))
        return reply

    def _gone_if_failed(self, reply: Reply, what: str) -> None:
        # result=-1 is both "caller hung up" and "file missing": only the hangup flag tells.
        if reply.result == -1 and self.session.hung_up:
            raise CallerHungUp(what)

    async def play(self, prompt: str, language: str, sound: str) -> None:
        """``STREAM FILE`` the prompt; a missing sound file is logged and skipped."""
        reply = await self._run(commands.stream_file(sound), self.deadlines.prompt_s)
        self._gone_if_failed(reply, f"play {prompt}")
        if reply.result == -1:
            log.warning("Prompt %s (%s) could not be played on %s.", prompt, sound,
                        self.session.env.channel)

    async def collect(self, prompt: str, language: str, sound: str, max_digits: int,
                      timeout_s: float, terminator: str = "#") -> str | None:
        """``GET DATA`` with bounded digits (``#`` ends input in Asterisk); None on timeout."""
        digits = max(1, min(max_digits, commands.MAX_DIGITS))
        timeout_ms = max(0, int(timeout_s * 1000))
        deadline = timeout_s + self.deadlines.prompt_s
        reply = await self._run(commands.get_data(sound, timeout_ms, digits), deadline)
        self._gone_if_failed(reply, f"collect {prompt}")
        entered = commands.digits_entered(reply)
        return entered or None

    async def lookup_customer(self, number: str) -> list[a.CustomerCard]:
        """Cards from the customer directory, bounded; none when it is slow or failing."""
        directory = self.setup.customers
        if directory is None:
            return []
        try:
            async with asyncio.timeout(self.deadlines.lookup_s):
                return list(await directory.find(number))
        except TimeoutError:
            log.warning("Customer directory took more than %s s; no card for %s.",
                        self.deadlines.lookup_s, self.call_id)
            return []

    async def lookup_order(self, order_number: str) -> str | None:
        """No order system is wired to the FastAGI shell: every order is unknown."""
        return None

    async def estimate_wait(self, queue: str, language: str) -> float:
        """The router's estimated wait for a call arriving now in ``language``."""
        return self._estimate_wait(queue, language)

    async def voicemail(self, queue: str, language: str, max_seconds: float) -> str | None:
        """``RECORD FILE`` named after the call id; None when nothing was recorded."""
        reference = f"{self.voicemail_dir}/{queue}-{self.call_id}"
        max_ms = max(1000, int(max_seconds * 1000))
        deadline = max_seconds + self.deadlines.record_margin_s
        reply = await self._run(record_file(reference, "wav", max_ms), deadline)
        if reply.result == -1 and not reply.endpos:
            self._gone_if_failed(reply, "voicemail")
            return None
        return reference if reply.endpos is None or reply.endpos > 0 else None

    async def create_callback(self, task: a.CallbackTask) -> None:
        """Hand the callback task to the service's sink (if one is configured)."""
        if self.setup.callbacks is not None:
            self.setup.callbacks.add(task)
        else:
            log.warning("No callback sink configured; callback task for %s dropped.",
                        self.call_id)

    async def transfer(self, number: str) -> None:
        """Leave the (config) number for the dialplan, which dials it through its trunk."""
        if not is_e164(number):
            raise ValueError(f"Transfer number {number!r} is not an E.164 number.")
        await self.set_result("transfer", TRANSFER, number)

    async def hangup(self, reason: str) -> None:
        """Tell the dialplan to hang up (it plays nothing more)."""
        await self.set_result("hangup", REASON, reason)

    async def set_result(self, result: str, *pairs: str) -> None:
        """Set ``ACD_RESULT`` and name/value pairs (names from this module, values safe)."""
        names, values = pairs[::2], pairs[1::2]
        for name, value in zip(names, values, strict=True):
            await self.session.command(commands.set_variable(name, commands.clean_text(value)),
                                       timeout=self.deadlines.command_s)
        await self.session.command(commands.set_variable(RESULT, result),
                                   timeout=self.deadlines.command_s)
