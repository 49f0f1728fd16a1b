"""Settings of what the center's managers get: the shift summary by e-mail (``summary_mail``)
and the post-call survey (``survey``), sections of the service settings
(:mod:`acd.service.settings`). Both are off unless enabled.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from acd.config.schema import Port, Strict
from acd.service.schedule import times_problem, zone_problem


class SmtpSettings(Strict):
    """The mail server the shift summary goes through; credentials come from the environment."""

    host: str = "127.0.0.1"
    port: Port = 25
    #: ``starttls`` upgrades a plain connection (port 587), ``ssl`` is TLS from the start (465).
    security: Literal["none", "starttls", "ssl"] = "starttls"
    #: PEM file of the CAs that sign the server's certificate (absolute path; default: the
    #: system's CAs), for a mail server with a private CA.
    ca_file: str | None = None
    user_env: str = "ACD_SMTP_USER"
    password_env: str = "ACD_SMTP_PASSWORD"
    timeout_s: Annotated[float, Field(gt=0, le=300)] = 30.0


class SummaryMailSettings(Strict):
    """The shift summary by e-mail at local times (:mod:`acd.service.mailer`); off unless
    enabled. Each mail covers the calls since the previous scheduled time."""

    model_config = ConfigDict(populate_by_name=True)
    enabled: bool = False
    #: Local times ``HH:MM`` (quoted in YAML: unquoted 20:00 is a number there).
    times: Annotated[list[str], Field(min_length=1, max_length=48)] = Field(
        default_factory=lambda: ["08:00", "20:00"])
    timezone: str = "Europe/Moscow"
    sender: str | None = Field(default=None, alias="from")
    to: list[str] = Field(default_factory=list)
    smtp: SmtpSettings = SmtpSettings()
    #: Sending attempts per summary; waits between them double from ``retry_delay_s``.
    attempts: Annotated[int, Field(ge=1, le=20)] = 5
    retry_delay_s: Annotated[float, Field(gt=0, le=3600)] = 30.0
    max_retry_delay_s: Annotated[float, Field(gt=0, le=86_400)] = 600.0
    interval_min: Annotated[int, Field(ge=1, le=1440)] = 30
    min_calls: Annotated[int, Field(ge=1)] = 10
    #: First-call resolution: a repeat within each of these many hours (24 h and 7 days).
    fcr_windows_h: Annotated[list[Annotated[float, Field(gt=0, le=8784)]],
                             Field(min_length=1, max_length=4)] = Field(
                                 default_factory=lambda: [24.0, 168.0])

    @field_validator("times", mode="before")
    @classmethod
    def _local_times(cls, value: object) -> object:
        why = times_problem(value)
        if why is not None:
            raise ValueError(why)
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        why = zone_problem(value)
        if why is not None:
            raise ValueError(why)
        return value

    @field_validator("to")
    @classmethod
    def _recipients(cls, value: list[str]) -> list[str]:
        bad = [a for a in value if "@" not in a or any(c in a for c in "\r\n,;<> ")]
        if bad:
            raise ValueError(f"not an e-mail address: {bad[0]!r}")
        return value

    @model_validator(mode="after")
    def _addressed(self) -> SummaryMailSettings:
        if self.enabled and (not self.sender or not self.to):
            raise ValueError("an enabled summary mail needs 'from' and at least one 'to' address")
        if self.sender and any(c in self.sender for c in "\r\n"):
            raise ValueError("'from' must be one line")
        return self


class SurveySettings(Strict):
    """The post-call survey: after the agent hangs up, the caller rates the call (1 to 5)."""

    enabled: bool = False
    #: The IVR flow that asks; its ``survey_score`` variable (1..5) goes on the call's record.
    flow: str = "survey"
    #: The average score aimed at (wallboard and mailed summary).
    target: Annotated[float, Field(ge=1, le=5)] = 4.75
