"""Structured logs: JSON lines on stdout (a readable console format on a terminal).

Every router event is logged at ``info`` by :class:`EventLog`, with ``call_id`` bound for
call events and ``agent_id`` for agent events, so ``grep '"call_id": "1795609297.11"'``
tells one call's story. Standard-library ``logging`` records (the FastAGI server, the
driver) go through the same renderer. Caller numbers are never logged by this module.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from enum import Enum
from typing import Any, Literal, TextIO

import structlog

from acd.core.model import Output

Format = Literal["auto", "json", "console"]

_SHARED: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def configure_logging(fmt: Format = "auto", level: str = "info",
                      stream: TextIO | None = None) -> None:
    """Send structlog and stdlib logging to ``stream`` (stdout) as JSON or console lines."""
    out = stream if stream is not None else sys.stdout
    console = fmt == "console" or (fmt == "auto" and out.isatty())
    renderer: Any = (structlog.dev.ConsoleRenderer() if console
                     else structlog.processors.JSONRenderer(sort_keys=False))
    numeric = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[*_SHARED, structlog.processors.format_exc_info,
                    structlog.processors.UnicodeDecoder(),
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        foreign_pre_chain=[*_SHARED, structlog.stdlib.add_logger_name,
                           structlog.stdlib.ExtraAdder()],
    ))
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_acd", False):
            root.removeHandler(old)
    handler._acd = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(numeric)
    # aiohttp's access log would print every scrape; warnings still get through.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def event_fields(output: Output) -> dict[str, object]:
    """An output's fields as JSON-friendly values (enums by value, floats rounded)."""
    fields: dict[str, object] = {}
    for f in dataclasses.fields(output):
        value = getattr(output, f.name)
        if isinstance(value, Enum):
            value = value.value
        elif isinstance(value, float):
            value = round(value, 3)
        fields[f.name] = value
    return fields


class EventLog:
    """A service observer that logs every router output (events and commands) at info."""

    def __init__(self, logger: Any = None) -> None:
        self._log = logger if logger is not None else structlog.get_logger("acd.events")

    def __call__(self, output: Output, wall: float) -> None:
        """Log ``output`` as one event named after its type, e.g. ``call_answered``."""
        fields = event_fields(output)
        name = _snake(type(output).__name__)
        fields.pop("at", None)  # the router's monotonic clock means nothing to a reader
        call_id = fields.pop("call_id", None)
        log = self._log if call_id is None else self._log.bind(call_id=call_id)
        log.info(name, **fields)


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")
