"""Service settings (``config/service.yaml``): where to listen, where to keep records, secrets.

Every field has an embedded default, so ``acd serve`` starts on a fresh clone with no file:
FastAGI on 127.0.0.1:4573, HTTP on 127.0.0.1:8080, records in ``var/acd.sqlite3`` under the
working directory. Relative paths in a settings file are relative to that file's directory.
Secrets (the API token, ARI credentials, the records database's password) come from
environment variables named in the file.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from acd import shipped
from acd.callbacks.dialler import trunk_problem
from acd.config import yamlsafe
from acd.config.load import validate_strict
from acd.config.schema import Port, Strict
from acd.errors import ConfigError, Problem
from acd.runtime.store import redact
from acd.service.manager_settings import SummaryMailSettings, SurveySettings
from acd.service.pbxs import Pbx, PbxSettings, pbx_problems, resolve_pbxs

#: The shipped config directory (the reference center and its IVR flows).
CONFIG_DIR = shipped.config_dir()

class AgiSettings(Strict):
    """The FastAGI listener."""

    host: str = "127.0.0.1"
    port: Port = 4573
    header_timeout_s: Annotated[float, Field(gt=0, le=60)] = 5.0
    command_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 120.0
    max_sessions: Annotated[int, Field(ge=1, le=100_000)] = 2000
    #: Admission control: new calls go to the dialplan fallback at once while the event
    #: loop is later than this (null: off) ...
    #: The defaults shed only when the service is seriously late (a caller does not notice a
    #: quarter second); a box sized for tight latency sets both near 0.02 (docs/performance.md).
    max_loop_lag_s: Annotated[float | None, Field(gt=0, le=60)] = 0.25
    #: ... or while time to first command (accept to first AGI command) is above this.
    max_ttfc_s: Annotated[float | None, Field(gt=0, le=60)] = 0.5


class WallboardSettings(Strict):
    """The live wallboard (``/wallboard``): how often it updates and how many pages it serves."""

    enabled: bool = True
    #: Open event streams at most; the next page gets 503.
    max_subscribers: Annotated[int, Field(ge=1, le=10_000)] = 100
    #: Snapshots per second at most, however busy the router is (changes are coalesced).
    max_updates_per_s: Annotated[float, Field(gt=0, le=20)] = 4.0
    #: A snapshot at least this often, so waits and times in state keep moving on screen.
    refresh_s: Annotated[float, Field(gt=0, le=60)] = 2.0
    #: A page that has not taken a snapshot for this long is disconnected.
    write_timeout_s: Annotated[float, Field(gt=0, le=300)] = 10.0
    keepalive_s: Annotated[float, Field(gt=0, le=300)] = 15.0
    #: The rolling service-level window ("last 15 minutes").
    sl_window_s: Annotated[float, Field(gt=0, le=86_400)] = 900.0


class HttpSettings(Strict):
    """The HTTP API and ``/metrics``."""

    host: str = "127.0.0.1"
    port: Port = 8080
    max_body_bytes: Annotated[int, Field(ge=256, le=1_048_576)] = 16_384
    #: HTTP connections at once (its own budget: HTTP can never take FastAGI's descriptors).
    max_connections: Annotated[int, Field(ge=1, le=100_000)] = 256
    #: Deadline for a request's headers (from the connection, or the end of the last request).
    header_timeout_s: Annotated[float, Field(gt=0, le=300)] = 10.0
    #: Deadline for reading a request body.
    body_timeout_s: Annotated[float, Field(gt=0, le=300)] = 10.0
    #: Bearer token for mutating endpoints; the variable named by ``token_env`` overrides it.
    token: str | None = None
    token_env: str = "ACD_API_TOKEN"
    wallboard: WallboardSettings = WallboardSettings()


class AriSettings(Strict):
    """The ARI application; disabled while ``url`` is empty."""

    url: str | None = None
    app: str = "acd"
    user_env: str = "ACD_ARI_USER"
    password_env: str = "ACD_ARI_PASSWORD"
    #: A queued caller outlives a dead engine by at most this long, then the dialplan's T
    #: extension takes them to the fallback (whole seconds of TIMEOUT(absolute)); at most 60,
    #: so no caller waits longer than the queue's max wait plus ring time plus 60 s.
    hold_grace_s: Annotated[int, Field(ge=5, le=60)] = 60


class RecordSettings(Strict):
    """Call records, callback tasks and agent states: one SQLite file, or PostgreSQL."""

    database: str = "var/acd.sqlite3"
    #: ``normal``: a commit survives the process being killed (the WAL is in the OS page
    #: cache; on PostgreSQL, ``synchronous_commit`` off); ``full``: it also survives a power
    #: cut, at one fsync per call (PostgreSQL's default).
    synchronous: Literal["normal", "full"] = "normal"
    #: A PostgreSQL database instead of the SQLite file (routers sharing state), e.g.
    #: ``postgresql://acd@db.example:5432/acd``; its password comes from ``password_env``.
    url: str | None = None
    password_env: str = "ACD_RECORDS_PASSWORD"

    @field_validator("url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("postgresql", "postgres"):
            raise ValueError("must be a postgresql:// URL (or leave it out: the SQLite "
                             "file records.database)")
        if not parts.hostname or not parts.path.strip("/"):
            raise ValueError("must name a host and a database, e.g. "
                             "postgresql://acd@127.0.0.1:5432/acd")
        try:
            parts.port  # noqa: B018 (raises on a bad port)
        except ValueError as exc:
            raise ValueError(f"has a bad port: {exc}") from None
        return value


class LogSettings(Strict):
    """Structured logs on stdout."""

    format: Literal["auto", "json", "console"] = "auto"
    level: Literal["debug", "info", "warning", "error"] = "info"


class MetricSettings(Strict):
    """How the rolling service level is computed."""

    sl_window_s: Annotated[float, Field(gt=0, le=86_400)] = 900.0


class AmiSettings(Strict):
    """The Asterisk Manager Interface, used to originate callbacks in AGI-only deployments."""

    host: str = "127.0.0.1"
    port: Port = 5038
    user_env: str = "ACD_AMI_USER"
    secret_env: str = "ACD_AMI_SECRET"
    #: Dialplan context the answered customer enters (runs the ``callback`` AGI script).
    context: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = "acd-callback-out"
    #: Deadline for connecting, logging in and each reply other than the originate's.
    connect_timeout_s: Annotated[float, Field(gt=0, le=60)] = 5.0


class CallbackSettings(Strict):
    """The outbound callback dialler (``acd.callbacks.dialler``); off unless enabled."""

    enabled: bool = False
    #: ``ari`` originates through the Stasis application, ``ami`` through the Manager
    #: interface into the ``acd-callback-out`` dialplan context (FastAGI deployments).
    via: Literal["ari", "ami"] = "ari"
    #: Dial string of the customer: ``{number}`` is the E.164 number, ``{digits}`` the same
    #: without the plus.
    trunk: str = "PJSIP/{number}@trunk"
    #: Number shown to the customer (the center's number); digits and a leading plus only.
    caller_id: Annotated[str | None, Field(pattern=r"^\+?[0-9]{3,20}$")] = None
    retry_delay_s: Annotated[float, Field(ge=1, le=7 * 86_400)] = 900.0
    max_attempts: Annotated[int, Field(ge=1, le=20)] = 3
    concurrency: Annotated[int, Field(ge=1, le=100)] = 2
    #: Pacing: dial only while the queue's estimated wait is below this (null: no pacing).
    max_ewt_s: Annotated[float | None, Field(gt=0, le=86_400)] = 120.0
    ring_timeout_s: Annotated[float, Field(ge=5, le=300)] = 30.0
    poll_interval_s: Annotated[float, Field(gt=0, le=3600)] = 5.0
    flow: str = "callback"
    ami: AmiSettings = AmiSettings()

    @field_validator("trunk")
    @classmethod
    def _trunk_template(cls, value: str) -> str:
        why = trunk_problem(value)
        if why is not None:
            raise ValueError(why)
        return value


class StandbySettings(Strict):
    """Two routers, one active (``acd.service.leader``): off unless enabled.

    The lock lives in the PostgreSQL database the records are kept in (``records.url``, with
    the password from ``records.password_env``), or in ``url`` when set.
    """

    enabled: bool = False
    url: str | None = None
    #: The advisory lock's key: the same on both routers of one center, different for two
    #: centers sharing a database server ("acd" and 2; the record store's schema lock is 1).
    lock_key: Annotated[int, Field(ge=-(2**63), lt=2**63)] = 0x61636402
    #: Standby: how often the lock is asked for; active: how often the lock connection is
    #: checked.
    poll_interval_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    check_timeout_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    connect_timeout_s: Annotated[float, Field(gt=0, le=60)] = 3.0
    #: TCP keepalives of the lock session: how soon a dead router's lock frees.
    keepalive_idle_s: Annotated[int, Field(ge=1, le=3600)] = 3
    keepalive_interval_s: Annotated[int, Field(ge=1, le=3600)] = 1
    keepalive_count: Annotated[int, Field(ge=1, le=100)] = 3

    @model_validator(mode="after")
    def _fenced_first(self) -> StandbySettings:
        server = self.keepalive_idle_s + self.keepalive_interval_s * self.keepalive_count
        holder = self.poll_interval_s + self.check_timeout_s
        if server <= holder:
            raise ValueError(
                f"the server frees a silent router's lock after {server} s (keepalive_idle_s"
                " + keepalive_interval_s * keepalive_count), which must be longer than the"
                f" {holder} s the router takes to notice (poll_interval_s + check_timeout_s)")
        return self


class ServiceFile(Strict):
    """The YAML file's shape (paths still unresolved)."""

    version: Literal[1] = 1
    center: str | None = None
    flows: str | None = None
    customers: str | None = None
    agi: AgiSettings = AgiSettings()
    http: HttpSettings = HttpSettings()
    ari: AriSettings = AriSettings()
    records: RecordSettings = RecordSettings()
    logs: LogSettings = LogSettings()
    metrics: MetricSettings = MetricSettings()
    callbacks: CallbackSettings = CallbackSettings()
    #: The PBXs of a multi-site center (empty: one implicit PBX, the ``ari`` settings').
    pbxs: list[PbxSettings] = Field(default_factory=list)
    standby: StandbySettings = StandbySettings()
    summary_mail: SummaryMailSettings = SummaryMailSettings()
    survey: SurveySettings = SurveySettings()
    shutdown_grace_s: Annotated[float, Field(ge=0, le=600)] = 10.0


@dataclass(frozen=True)
class Settings:
    """Resolved settings: absolute paths, secrets read from the environment."""

    file: str | None
    center: Path
    flows: Path
    customers: Path | None
    database: Path
    agi: AgiSettings
    http: HttpSettings
    ari: AriSettings
    records: RecordSettings
    logs: LogSettings
    metrics: MetricSettings
    shutdown_grace_s: float
    token: str | None
    ari_user: str | None
    ari_password: str | None
    callbacks: CallbackSettings = field(default_factory=CallbackSettings)
    ami_user: str | None = None
    ami_secret: str | None = None
    #: The PBXs with their credentials (empty: one implicit PBX; see acd.service.pbxs).
    pbxs: tuple[Pbx, ...] = ()
    records_password: str | None = None
    standby: StandbySettings = field(default_factory=StandbySettings)
    summary_mail: SummaryMailSettings = field(default_factory=SummaryMailSettings)
    smtp_user: str | None = None
    smtp_password: str | None = None
    survey: SurveySettings = field(default_factory=SurveySettings)

    def __repr__(self) -> str:
        # Secrets never reach a log line through a repr.
        return (f"Settings(file={self.file!r}, center={str(self.center)!r}, "
                f"agi={self.agi.host}:{self.agi.port}, http={self.http.host}:{self.http.port}, "
                f"database={self.records.url or str(self.database)!r}, ari={self.ari.url!r})")


def load_settings(path: str | Path | None = None,
                  environ: dict[str, str] | None = None) -> Settings:
    """Read a settings file (or the embedded defaults when ``path`` is None)."""
    env = dict(os.environ) if environ is None else environ
    if path is None:
        return resolve(ServiceFile(), None, Path.cwd(), env)
    file = str(path)
    data, text = yamlsafe.read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([Problem(file, "<root>", type(data).__name__,
                                   "the service settings must be a mapping", 1)])
    parsed = validate_strict(ServiceFile, data, file, lambda loc: yamlsafe.line_of(text, loc))
    settings = resolve(parsed, file, Path(path).resolve().parent, env)
    if parsed.pbxs:
        _check_pbxs(parsed, settings, file, text)
    return settings


def _check_pbxs(parsed: ServiceFile, settings: Settings, file: str, text: str) -> None:
    """The ``pbxs`` list against the center it serves (see acd.service.pbxs)."""
    from acd.config.load import load_center

    problems = pbx_problems(parsed.pbxs, load_center(settings.center), file)
    if parsed.ari.url:
        problems.append(Problem(file, "ari.url", parsed.ari.url,
                                "with a pbxs list each PBX has its own ari settings"))
    if problems:
        raise ConfigError([dataclasses.replace(p, line=yamlsafe.line_of_path(text, p.path))
                           for p in problems])


def resolve(parsed: ServiceFile, file: str | None, base: Path,
            env: dict[str, str]) -> Settings:
    """Turn relative paths into absolute ones and read secrets from ``env``."""

    def where(value: str | None, default: Path) -> Path:
        return default if value is None else (base / value).resolve()

    center = where(parsed.center, CONFIG_DIR / "center.yaml")
    problems = []
    if not center.is_file():
        problems.append(Problem(file or "<defaults>", "center", str(center),
                                "the center config file does not exist"))
    flows = where(parsed.flows, CONFIG_DIR / "ivr")
    if not flows.is_dir():
        problems.append(Problem(file or "<defaults>", "flows", str(flows),
                                "the IVR flow directory does not exist"))
    url = parsed.records.url
    if url is not None and urlsplit(url).password is not None:
        # Shown without the password: this message goes to logs.
        problems.append(Problem(file or "<defaults>", "records.url", redact(url),
                                "must not hold a password; set the variable named by "
                                f"records.password_env ({parsed.records.password_env}) instead"))
    if problems:
        raise ConfigError(problems)
    customers = (base / parsed.customers).resolve() if parsed.customers else None
    return Settings(
        file=file, center=center, flows=flows, customers=customers,
        database=(base / parsed.records.database).resolve(), agi=parsed.agi, http=parsed.http,
        ari=parsed.ari, records=parsed.records, logs=parsed.logs, metrics=parsed.metrics,
        shutdown_grace_s=parsed.shutdown_grace_s,
        token=env.get(parsed.http.token_env) or parsed.http.token or None,
        ari_user=env.get(parsed.ari.user_env) or None,
        ari_password=env.get(parsed.ari.password_env) or None,
        callbacks=parsed.callbacks,
        ami_user=env.get(parsed.callbacks.ami.user_env) or None,
        ami_secret=env.get(parsed.callbacks.ami.secret_env) or None,
        pbxs=resolve_pbxs(parsed.pbxs, env),
        records_password=env.get(parsed.records.password_env) or None,
        standby=parsed.standby,
        summary_mail=parsed.summary_mail,
        smtp_user=env.get(parsed.summary_mail.smtp.user_env) or None,
        smtp_password=env.get(parsed.summary_mail.smtp.password_env) or None,
        survey=parsed.survey)
