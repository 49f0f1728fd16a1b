"""The shift summary by e-mail: a real SMTP server (aiosmtpd) in the test process receives the
scheduled summary with the figures of a known record set; a failing server is retried, then
the failure is logged; scheduled local times are right across midnight and DST changes."""

from __future__ import annotations

import asyncio
import email
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from structlog.testing import capture_logs

from acd.config.load import load_center
from acd.errors import ConfigError
from acd.runtime.records import CALL_COLUMNS, open_database
from acd.service.mailer import SummaryMailer
from acd.service.manager_settings import SummaryMailSettings
from acd.service.schedule import next_send, parse_times, previous_send
from acd.service.settings import CONFIG_DIR, load_settings
from acd.testing.clock import ManualClock

MSK = ZoneInfo("Europe/Moscow")
BERLIN = ZoneInfo("Europe/Berlin")


def at(text: str) -> datetime:
    """An aware datetime from ISO text with its offset."""
    return datetime.fromisoformat(text)


@dataclass
class Inbox:
    """What the SMTP server was given; the first ``refuse`` deliveries get ``reply``."""

    refuse: int = 0
    reply: str = "451 4.3.0 Try again later"
    attempts: int = 0
    messages: list[EmailMessage] = field(default_factory=list)
    recipients: list[list[str]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.attempts += 1
        if self.attempts <= self.refuse:
            return self.reply
        self.messages.append(email.message_from_bytes(  # type: ignore[arg-type]
            envelope.content, policy=default_policy))
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    """A real SMTP server on a loopback port, delivering into an :class:`Inbox`."""
    box = Inbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


def mail_settings(port: int, **extra: Any) -> SummaryMailSettings:
    return SummaryMailSettings.model_validate({
        "enabled": True, "times": ["08:00", "20:00"], "timezone": "Europe/Moscow",
        "from": "acd@center.example", "to": ["boss@center.example", "shift@center.example"],
        "smtp": {"host": "127.0.0.1", "port": port, "security": "none", "timeout_s": 5},
        "retry_delay_s": 0.01, "max_retry_delay_s": 0.05, **extra})


def record(n: int, arrival: datetime, outcome: str, wait: float) -> tuple[object, ...]:
    t = arrival.timestamp()
    answered = t + wait if outcome == "answered" else None
    values = {"call_id": f"c{n}", "outcome": outcome, "entry_queue": "tech", "queue": "tech",
              "language": "ru", "country": "RU",
              "agent_id": "a1" if answered else None, "site": "moscow" if answered else None,
              "arrival": t, "queued": t, "offered": answered, "answered": answered,
              "ended": t + wait + 60.0, "wait_s": wait, "talk_s": 60.0 if answered else 0.0,
              "offers": 1, "overflow_target": None, "overflow_reason": None}
    return tuple(values[c] for c in CALL_COLUMNS)


@pytest.fixture
def database(tmp_path: Path) -> Path:
    """The night of 1-2 March (20:00-08:00 Moscow): 10 calls, 8 answered within 20 s, 1 in
    45 s, 1 abandoned; one call at 19:59 and one at 08:00 fall outside the period. The same
    number made calls c0 (20:30, scored 5) and c4 (00:15, scored 3): one repeat."""
    rows = [record(n, at(f"2026-03-01T{20 + n}:30+03:00"), "answered", 10.0) for n in range(4)]
    rows += [record(4 + n, at(f"2026-03-02T0{n}:15+03:00"), "answered", 5.0) for n in range(4)]
    rows.append(record(8, at("2026-03-02T05:00+03:00"), "answered", 45.0))
    rows.append(record(9, at("2026-03-02T06:00+03:00"), "abandoned", 30.0))
    rows.append(record(10, at("2026-03-01T19:59+03:00"), "abandoned", 3.0))
    rows.append(record(11, at("2026-03-02T08:00+03:00"), "abandoned", 3.0))
    path = tmp_path / "acd.sqlite3"
    db = open_database(path)
    db.executemany(f"INSERT INTO calls ({', '.join(CALL_COLUMNS)}) VALUES "
                   f"({', '.join('?' * len(CALL_COLUMNS))})", rows)
    db.execute("UPDATE calls SET caller = '+79161234567', survey_score = 5 WHERE call_id = 'c0'")
    db.execute("UPDATE calls SET caller = '+79161234567', survey_score = 3 WHERE call_id = 'c4'")
    db.close()
    return path


def mailer(settings: SummaryMailSettings, database: Path, clock: ManualClock) -> SummaryMailer:
    center = load_center(CONFIG_DIR / "center.yaml")
    return SummaryMailer(settings, database, lambda: center, clock, wall=clock.now)


async def arrived(box: Inbox, sender: SummaryMailer, count: int = 1,
                  within_s: float = 10.0) -> None:
    """Wait (real time: the delivery runs on a thread) until ``count`` messages arrived and
    the sender has finished with them."""
    for _ in range(int(within_s / 0.02)):
        if len(box.messages) >= count and sender.sent + sender.failed >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{len(box.messages)} messages arrived, expected {count}")


async def test_scheduled_summary_arrives_with_the_periods_figures(
        inbox: tuple[Inbox, int], database: Path) -> None:
    """At 08:00 Moscow the summary of 20:00-08:00 arrives as text with an HTML alternative,
    with the period's SL (8 of 10 within 20 s), FCR and survey figures, nothing is sent a
    minute before, and the 20:00 mail covers 08:00-20:00."""
    box, port = inbox
    clock = ManualClock(at("2026-03-02T07:58:00+03:00").timestamp())
    sender = mailer(mail_settings(port), database, clock)
    with capture_logs() as logs:
        task = asyncio.get_running_loop().create_task(sender.run())
        try:
            await clock.advance_and_settle(60.0)
            await asyncio.sleep(0.2)
            assert box.attempts == 0
            await clock.advance_and_settle(60.0)
            await arrived(box, sender)
            # The next one, at 20:00, covers the day since the morning's (the 08:00 call).
            await clock.advance_and_settle(12 * 3600.0)
            await arrived(box, sender, count=2)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert box.messages[1]["Subject"] == ("Shift summary 2026-03-02 08:00 - 2026-03-02 20:00 "
                                          "(Europe/Moscow): SL 0.0%, 1 call")
    message = box.messages[0]
    assert box.recipients[0] == ["boss@center.example", "shift@center.example"]
    assert message["From"] == "acd@center.example"
    assert message["Subject"] == ("Shift summary 2026-03-01 20:00 - 2026-03-02 08:00 "
                                  "(Europe/Moscow): SL 80.0%, 10 calls")
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "calls that arrived from 2026-03-01T20:00:00+03:00 until 2026-03-02T08:00:00+03:00" \
        in text
    center = next(line for line in text.splitlines() if line.startswith("center"))
    assert center.split()[1:4] == ["10", "80.0%", "90.0%"]
    assert html.startswith("<!doctype html>") and "80.0%" in html
    lines = text.splitlines()
    fcr = lines[lines.index(next(x for x in lines if x.startswith("First-call"))) + 2]
    assert fcr.split() == ["center", "2", "50.0%", "50.0%"]
    survey = lines[lines.index(next(x for x in lines if x.startswith("Post-call"))) + 2]
    assert survey.split() == ["center", "2", "4.00", "0", "0", "1", "0", "1", "BELOW",
                              "TARGET"]
    assert "<h2>Post-call survey</h2>" in html
    sent = [e for e in logs if e["event"] == "summary_mail_sent"]
    assert len(sent) == 2 and sent[0]["attempts"] == 1
    assert sender.next_slot() == at("2026-03-03T08:00+03:00")


async def test_a_failing_server_is_retried_until_it_takes_the_mail(
        inbox: tuple[Inbox, int], database: Path) -> None:
    """Two 451 replies are retried; the third attempt delivers, and each failure is logged."""
    box, port = inbox
    box.refuse = 2
    sender = mailer(mail_settings(port), database, ManualClock())
    with capture_logs() as logs:
        ok = await sender.send(at("2026-03-01T20:00+03:00"), at("2026-03-02T08:00+03:00"))
    assert ok and box.attempts == 3 and len(box.messages) == 1
    assert [e["attempt"] for e in logs if e["event"] == "summary_mail_attempt_failed"] == [1, 2]
    assert sender.sent == 1 and sender.failed == 0


async def test_a_server_that_keeps_failing_is_logged_after_the_last_attempt(
        inbox: tuple[Inbox, int], database: Path) -> None:
    """A server that always answers 451 gets every attempt, then the failure is logged once."""
    box, port = inbox
    box.refuse = 100
    sender = mailer(mail_settings(port, attempts=3), database, ManualClock())
    with capture_logs() as logs:
        ok = await sender.send(at("2026-03-01T20:00+03:00"), at("2026-03-02T08:00+03:00"))
    assert not ok and box.attempts == 3 and not box.messages
    failed = [e for e in logs if e["event"] == "summary_mail_failed"]
    assert len(failed) == 1 and failed[0]["attempts"] == 3 and "451" in failed[0]["error"]
    assert failed[0]["log_level"] == "error" and sender.failed == 1


async def test_a_permanent_refusal_is_not_retried(inbox: tuple[Inbox, int],
                                                  database: Path) -> None:
    """A 550 reply will not change on retry: one attempt, then the failure is logged."""
    box, port = inbox
    box.refuse, box.reply = 100, "550 5.7.1 Relaying denied"
    sender = mailer(mail_settings(port), database, ManualClock())
    with capture_logs() as logs:
        ok = await sender.send(at("2026-03-01T20:00+03:00"), at("2026-03-02T08:00+03:00"))
    assert not ok and box.attempts == 1
    assert [e["attempts"] for e in logs if e["event"] == "summary_mail_failed"] == [1]


async def test_no_server_listening_is_retried_then_logged(database: Path) -> None:
    """A refused connection is a transient failure: every attempt is made, then logged."""
    sender = mailer(mail_settings(free_port(), attempts=2), database, ManualClock())
    with capture_logs() as logs:
        ok = await sender.send(at("2026-03-01T20:00+03:00"), at("2026-03-02T08:00+03:00"))
    assert not ok
    assert [e["attempt"] for e in logs if e["event"] == "summary_mail_attempt_failed"] == [1]
    assert [e["stage"] for e in logs if e["event"] == "summary_mail_failed"] == ["smtp"]


async def test_the_send_after_spring_forward_covers_eleven_hours(
        inbox: tuple[Inbox, int], database: Path) -> None:
    """Driven by a ManualClock over the night Berlin moves to summer time, the 08:00 summary
    goes out at 06:00 UTC (not 07:00) and covers 20:00 CET to 08:00 CEST."""
    box, port = inbox
    clock = ManualClock(at("2026-03-28T20:00:00+01:00").timestamp())
    sender = mailer(mail_settings(port, timezone="Europe/Berlin"), database, clock)
    with capture_logs() as logs:
        task = asyncio.get_running_loop().create_task(sender.run())
        try:
            await clock.advance_and_settle(11 * 3600 - 1.0)
            await asyncio.sleep(0.2)
            assert box.attempts == 0
            await clock.advance_and_settle(1.0)
            await arrived(box, sender)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    sent = next(e for e in logs if e["event"] == "summary_mail_sent")
    assert sent["since"] == "2026-03-28T20:00:00+01:00"
    assert sent["until"] == "2026-03-29T08:00:00+02:00"
    assert clock.now() == at("2026-03-29T06:00:00+00:00").timestamp()


def test_schedule_across_midnight() -> None:
    """A midnight send follows 23:59 on the same night and covers the whole previous day."""
    times = parse_times(["00:00"])
    slot = next_send(at("2026-03-02T23:59:59+03:00"), times, MSK)
    assert slot == at("2026-03-03T00:00+03:00")
    assert previous_send(slot, times, MSK) == at("2026-03-02T00:00+03:00")
    times = parse_times(["20:00", "08:00"])
    assert next_send(at("2026-03-02T20:00+03:00"), times, MSK) == at("2026-03-03T08:00+03:00")
    assert previous_send(at("2026-03-03T08:00+03:00"), times, MSK) == \
        at("2026-03-02T20:00+03:00")


def test_schedule_across_dst_changes() -> None:
    """Berlin's DST nights: 11 h and 13 h periods, a gap time sent after the jump, an
    ambiguous time sent once, at its first occurrence."""
    times = parse_times(["08:00", "20:00"])
    spring = next_send(at("2026-03-28T21:00+01:00"), times, BERLIN)
    assert spring == at("2026-03-29T06:00+00:00")
    assert (spring - previous_send(spring, times, BERLIN)).total_seconds() == 11 * 3600
    autumn = next_send(at("2026-10-24T21:00+02:00"), times, BERLIN)
    assert autumn == at("2026-10-25T07:00+00:00")
    assert (autumn - previous_send(autumn, times, BERLIN)).total_seconds() == 13 * 3600
    night = parse_times(["02:30"])
    gap = next_send(at("2026-03-28T03:00+01:00"), night, BERLIN)
    assert gap == at("2026-03-29T03:30+02:00")
    assert next_send(gap, night, BERLIN) == at("2026-03-30T02:30+02:00")
    first = next_send(at("2026-10-25T00:00+02:00"), night, BERLIN)
    assert first == at("2026-10-25T02:30+02:00")
    assert next_send(first, night, BERLIN) == at("2026-10-26T02:30+01:00")
    assert next_send(first, night, BERLIN).astimezone(UTC).hour == 1


def test_settings_refuse_unquoted_times_and_missing_addresses(tmp_path: Path) -> None:
    """Unquoted 20:00 (a YAML number), an unknown zone and an enabled mail without recipients
    are refused at load, naming the key."""
    path = tmp_path / "service.yaml"
    path.write_text("summary_mail: {enabled: false, times: ['08:00', 20:00]}\n")
    with pytest.raises(ConfigError, match="1200 is a number"):
        load_settings(path, {})
    path.write_text("summary_mail: {timezone: Europe/Mordor}\n")
    with pytest.raises(ConfigError, match="not an IANA time zone"):
        load_settings(path, {})
    path.write_text("summary_mail: {enabled: true, from: acd@example.org}\n")
    with pytest.raises(ConfigError, match="at least one 'to'"):
        load_settings(path, {})
    path.write_text("summary_mail: {enabled: true, from: a@example.org, to: [b@example.org],"
                    " smtp: {user_env: MAIL_USER, password_env: MAIL_PASSWORD}}\n")
    settings = load_settings(path, {"MAIL_USER": "u", "MAIL_PASSWORD": "secret"})
    assert settings.smtp_user == "u" and settings.smtp_password == "secret"
    assert "secret" not in repr(settings)


async def test_the_service_runs_the_mailer_only_when_enabled(tmp_path: Path) -> None:
    """``acd serve`` schedules the summary mail at the next configured local time when
    ``summary_mail.enabled`` is set, with the SMTP login from the environment, and stops it
    at shutdown; without it there is no mailer."""
    from test_serve import settings_file

    from acd.service.app import Runtime

    path = settings_file(tmp_path)
    base = path.read_text()
    path.write_text(base + "summary_mail: {enabled: true, from: acd@center.example, "
                    "to: [boss@center.example], times: ['08:00', '20:00']}\n")
    runtime = Runtime(load_settings(path, {"ACD_SMTP_USER": "acd", "ACD_SMTP_PASSWORD": "pw"}))
    await runtime.start()
    try:
        assert runtime.mailer is not None and runtime.mailer.user == "acd"
        now = datetime.now(UTC)
        slot = runtime.mailer.next_slot()
        assert now < slot <= now + timedelta(hours=12)
        assert slot.astimezone(MSK).strftime("%H:%M") in ("08:00", "20:00")
        task = runtime._mailer_task
        assert task is not None and not task.done()
    finally:
        await runtime.stop()
    assert task.done()
    path.write_text(base)
    runtime = Runtime(load_settings(path, {}))
    await runtime.start()
    try:
        assert runtime.mailer is None
    finally:
        await runtime.stop()


@dataclass
class Logins:
    """The SMTP logins a server saw (mechanism, user, password)."""

    seen: list[tuple[str, str, str]] = field(default_factory=list)

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str,
                 auth_data: Any) -> AuthResult:
        self.seen.append((mechanism, auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=auth_data.password == b"s3cret")


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
@pytest.mark.parametrize("security", ["starttls", "ssl"])
async def test_tls_and_login_from_the_environment(database: Path, tmp_path: Path,
                                                  security: str) -> None:
    """Over STARTTLS (the server refuses anything before it) and over TLS from the start,
    the certificate is checked against the configured CA and the login is the one the
    environment gives; the mail arrives."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    box, logins, port = Inbox(), Logins(), free_port()
    tls = ({"tls_context": server_context, "require_starttls": True}
           if security == "starttls"
           # aiosmtpd cannot tell that a TLS-wrapped socket is encrypted: let it offer AUTH.
           else {"ssl_context": server_context, "server_hostname": "127.0.0.1",
                 "auth_require_tls": False})
    controller = Controller(box, hostname="127.0.0.1", port=port, authenticator=logins,
                            auth_required=True, **tls)
    controller.start()
    try:
        path = tmp_path / "service.yaml"
        path.write_text(
            "summary_mail: {enabled: true, from: acd@center.example, to: [boss@center.example],"
            f" smtp: {{host: 127.0.0.1, port: {port}, security: {security},"
            f" ca_file: '{ca_file}', user_env: MAIL_USER, password_env: MAIL_PASSWORD}}}}\n")
        settings = load_settings(path, {"MAIL_USER": "acd", "MAIL_PASSWORD": "s3cret"})
        center = load_center(CONFIG_DIR / "center.yaml")
        sender = SummaryMailer(settings.summary_mail, database, lambda: center, ManualClock(),
                               user=settings.smtp_user, password=settings.smtp_password)
        ok = await sender.send(at("2026-03-01T20:00+03:00"), at("2026-03-02T08:00+03:00"))
    finally:
        controller.stop()
    assert ok and len(box.messages) == 1
    assert [(user, password) for _, user, password in logins.seen] == [("acd", "s3cret")]


async def test_an_untrusted_certificate_is_refused(database: Path, tmp_path: Path) -> None:
    """A server whose certificate the configured CAs did not sign gets no mail: the
    failure is logged (a certificate does not fix itself: no retry)."""
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(server_context)
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    box, port = Inbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port, tls_context=server_context)
    controller.start()
    try:
        settings = mail_settings(port, smtp={"host": "127.0.0.1", "port": port,
                                             "security": "starttls", "ca_file": str(other)})
        sender = mailer(settings, database, ManualClock())
        with capture_logs() as logs:
            ok = await sender.send(at("2026-03-01T20:00+03:00"), at("2026-03-02T08:00+03:00"))
    finally:
        controller.stop()
    assert not ok and not box.messages and box.attempts == 0
    failed = [e for e in logs if e["event"] == "summary_mail_failed"]
    assert len(failed) == 1 and "CERTIFICATE_VERIFY_FAILED" in failed[0]["error"]
    assert failed[0]["attempts"] == 1


async def test_a_failure_at_one_time_does_not_end_the_schedule(
        inbox: tuple[Inbox, int], database: Path) -> None:
    """An unexpected error while preparing the 08:00 mail is logged, and the 20:00 mail
    still goes out."""
    box, port = inbox
    center = load_center(CONFIG_DIR / "center.yaml")
    calls = 0

    def flaky() -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("center unavailable")
        return center

    clock = ManualClock(at("2026-03-02T07:59:00+03:00").timestamp())
    sender = SummaryMailer(mail_settings(port), database, flaky, clock, wall=clock.now)
    with capture_logs() as logs:
        task = asyncio.get_running_loop().create_task(sender.run())
        try:
            await clock.settle()  # the schedule starts at 07:59
            await clock.advance_and_settle(60.0)
            await clock.advance_and_settle(12 * 3600.0)
            for _ in range(500):  # the delivery runs on a thread: real time
                if sender.sent:
                    break
                await asyncio.sleep(0.02)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert [e.get("stage") for e in logs if e["event"] == "summary_mail_failed"] == ["bug"]
    assert sender.failed == 1 and sender.sent == 1 and len(box.messages) == 1
    assert "2026-03-02 08:00 - 2026-03-02 20:00" in str(box.messages[0]["Subject"])
