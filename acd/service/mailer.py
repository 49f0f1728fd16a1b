"""The shift summary by e-mail, at configured local times (``summary_mail`` in the settings).

At each scheduled local time (08:00 and 20:00 Europe/Moscow in the reference config) the
service sends the summary of the calls that arrived since the previous scheduled time, as a
text body with an HTML alternative. Times are wall-clock times in the configured zone, so a
DST change moves them with the clock on the wall: a time that does not exist that day (inside
a spring-forward gap) is sent when the clock has jumped past it, a time that happens twice
(fall back) is sent once, at its first occurrence.

Nothing here may hold up routing: the call records are read on a thread (with a connection
of its own, read-only) and the mail is sent with :mod:`smtplib` on a thread too; a failed
delivery is retried with :mod:`tenacity` (transient failures only: connection problems, 4xx
replies), then logged. A time missed while the service was down is not sent afterwards.
"""

from __future__ import annotations

import asyncio
import smtplib
import sqlite3
import ssl
import time as _time
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from acd.config.load import LoadedCenter
from acd.runtime.records import open_store, read_calls
from acd.runtime.router_service import Clock
from acd.runtime.store import RecordStore
from acd.service.report import render, summarize
from acd.service.schedule import next_send, parse_times, previous_send

if TYPE_CHECKING:
    from acd.service.manager_settings import SummaryMailSettings

log = structlog.get_logger("acd.mailer")

#: A long wait is cut in pieces this long, so a wall clock that was set back is noticed.
_RECHECK_S = 300.0


# ---------------------------------------------------------------------- the mail

def build_message(settings: SummaryMailSettings, center: LoadedCenter, rows: Any,
                  since: datetime, until: datetime, survey_target: float = 4.75
                  ) -> EmailMessage:
    """The summary of ``rows`` for ``[since, until)`` (with the earlier calls first-call
    resolution looks back on) as a text mail with an HTML alternative."""
    zone = ZoneInfo(settings.timezone)
    since, until = since.astimezone(zone), until.astimezone(zone)
    summary = summarize(rows, center.config, since, until, settings.interval_min,
                        settings.min_calls, groups={a.id: a.group for a in center.agents},
                        fcr_windows_s=[h * 3600.0 for h in settings.fcr_windows_h],
                        survey_target=survey_target)
    sl = summary.center.figures()["sl"]
    message = EmailMessage()
    message["Subject"] = (f"Shift summary {since:%Y-%m-%d %H:%M} - {until:%Y-%m-%d %H:%M} "
                          f"({settings.timezone}): SL "
                          + ("-" if sl is None else f"{sl:.1%}")
                          + f", {summary.center.offered} call"
                          + ("" if summary.center.offered == 1 else "s"))
    message["From"] = settings.sender or ""
    message["To"] = ", ".join(settings.to)
    message["Date"] = formatdate(until.timestamp(), localtime=False)
    message["Message-ID"] = make_msgid("acd-summary")
    message.set_content(render(summary, "text"))
    message.add_alternative(render(summary, "html"), subtype="html")
    return message


def deliver(message: EmailMessage, settings: SummaryMailSettings, user: str | None,
            password: str | None) -> None:
    """Send ``message`` through the configured SMTP server (blocking: run it on a thread)."""
    smtp = settings.smtp
    context = ssl.create_default_context(cafile=smtp.ca_file)
    client: smtplib.SMTP
    if smtp.security == "ssl":
        client = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout_s, context=context)
    else:
        client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s)
    with client:
        if smtp.security == "starttls":
            client.starttls(context=context)
        if user and password:
            client.login(user, password)
        client.send_message(message)


def transient(exc: BaseException) -> bool:
    """Whether another attempt may succeed: no connection, a dropped one, or a 4xx reply."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return False  # the certificate will not change by the next attempt
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(400 <= code < 500 for code, _ in exc.recipients.values())
    return isinstance(exc, (OSError, smtplib.SMTPServerDisconnected))


# ---------------------------------------------------------------------- the scheduler

class SummaryMailer:
    """Sends the shift summary at each scheduled local time, never on the event loop's time.

    ``clock`` schedules the waits (the service's clock: a ``ManualClock`` in tests), ``wall``
    reads the time of day in Unix seconds; ``center`` gives the center of the moment (it
    follows reloads).
    """

    def __init__(self, settings: SummaryMailSettings, database: Path,
                 center: Callable[[], LoadedCenter], clock: Clock,
                 wall: Callable[[], float] = _time.time, user: str | None = None,
                 password: str | None = None, survey_target: float = 4.75,
                 records_url: str | None = None, records_password: str | None = None) -> None:
        self.settings = settings
        self.database = database
        #: The records in PostgreSQL (``records.url``) instead of the SQLite ``database``.
        self.records_url = records_url
        self.records_password = records_password
        self.center = center
        self.clock = clock
        self.wall = wall
        self.user = user
        self.password = password
        self.survey_target = survey_target
        self.zone = ZoneInfo(settings.timezone)
        self.times = parse_times(settings.times)
        self.sent = 0
        self.failed = 0

    def next_slot(self) -> datetime:
        """When the next summary goes out (UTC)."""
        return next_send(datetime.fromtimestamp(self.wall(), UTC), self.times, self.zone)

    async def run(self) -> None:
        """Send at every scheduled time until cancelled."""
        while True:
            slot = self.next_slot()
            log.info("summary_mail_scheduled", at=slot.astimezone(self.zone).isoformat())
            await self._sleep_until(slot.timestamp())
            try:
                await self.send(previous_send(slot, self.times, self.zone), slot)
            except Exception:  # a bug here must not end the schedule (CancelledError does)
                self.failed += 1
                log.exception("summary_mail_failed", stage="bug", until=slot.isoformat())

    async def _sleep_until(self, wall_at: float) -> None:
        loop = asyncio.get_running_loop()
        while (left := wall_at - self.wall()) > 0:
            woken: asyncio.Future[None] = loop.create_future()

            def wake(f: asyncio.Future[None] = woken) -> None:
                if not f.done():
                    f.set_result(None)

            timer = self.clock.call_at(self.clock.now() + min(left, _RECHECK_S), wake)
            try:
                await woken
            finally:
                timer.cancel()

    async def send(self, since: datetime, until: datetime) -> bool:
        """Summarize ``[since, until)`` and mail it, retrying transient failures; True if sent.

        Failures are logged, never raised (the next scheduled summary is still sent).
        """
        s = self.settings
        center = self.center()
        since, until = since.astimezone(self.zone), until.astimezone(self.zone)
        try:
            message = await asyncio.to_thread(self._message, center, since, until)
        except sqlite3.Error as exc:
            self.failed += 1
            log.error("summary_mail_failed", since=since.isoformat(), until=until.isoformat(),
                      stage="records", error=str(exc))
            return False

        def attempt_failed(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome is not None else None
            log.warning("summary_mail_attempt_failed", attempt=state.attempt_number,
                        of=s.attempts, error=f"{type(exc).__name__}: {exc}")

        retrying = AsyncRetrying(
            stop=stop_after_attempt(s.attempts),
            wait=wait_exponential(multiplier=s.retry_delay_s, max=s.max_retry_delay_s),
            retry=retry_if_exception(transient), before_sleep=attempt_failed, reraise=True)
        try:
            async for attempt in retrying:
                with attempt:
                    await asyncio.to_thread(deliver, message, s, self.user, self.password)
        except (OSError, smtplib.SMTPException) as exc:
            self.failed += 1
            log.error("summary_mail_failed", since=since.isoformat(), until=until.isoformat(),
                      stage="smtp", attempts=retrying.statistics.get("attempt_number"),
                      error=f"{type(exc).__name__}: {exc}")
            return False
        self.sent += 1
        log.info("summary_mail_sent", since=since.isoformat(), until=until.isoformat(),
                 to=len(s.to), attempts=retrying.statistics.get("attempt_number"),
                 subject=str(message["Subject"]))
        return True

    def _message(self, center: LoadedCenter, since: datetime, until: datetime
                 ) -> EmailMessage:
        """Read the period's records (own read-only connection) and build the mail."""
        look_back = max(self.settings.fcr_windows_h) * 3600.0
        db: RecordStore | sqlite3.Connection
        if self.records_url:
            db = open_store(self.records_url, password=self.records_password)
        else:
            db = sqlite3.connect(self.database.resolve().as_uri() + "?mode=ro", uri=True)
        try:
            rows = list(read_calls(db, since.timestamp() - look_back, until.timestamp()))
        finally:
            db.close()
        return build_message(self.settings, center, rows, since, until, self.survey_target)
