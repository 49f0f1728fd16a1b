"""Errors a user can act on: each names the file, the place in it and the bad value."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

#: Exit status for bad input (command line, config, flows, traffic files), as the README says.
EXIT_BAD_INPUT = 2
#: Exit status of ``--check`` when a service-level or answer-rate target is missed.
EXIT_TARGET_MISSED = 1
#: Exit status of an unexpected exception: a bug (EX_SOFTWARE from sysexits.h).
EXIT_BUG = 70
#: Where problems with command-line values are reported from (in place of a file name).
COMMAND_LINE = "<command line>"


def format_path(loc: Sequence[str | int]) -> str:
    """Render a location such as ``("queues", "tech", 2)`` as ``queues.tech[2]``."""
    out = ""
    for part in loc:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "<root>"


@dataclass(frozen=True)
class Problem:
    """One thing wrong in an input file: where it is, what the value was, why it is wrong."""

    file: str
    path: str
    value: object
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        got = "" if self.value is None else f" (got {self.value!r})"
        return f"{where}: {self.path}: {self.message}{got}"


@dataclass
class InputError(Exception):
    """Bad input: one or more problems, each naming file, path and value. Exits with status 2."""

    problems: list[Problem] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(self.__str__())

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


class ConfigError(InputError):
    """The center configuration (or a flow or traffic file) is invalid."""


class UsageError(InputError):
    """A command-line value is invalid: each problem names the option and the value given."""


def usage(option: str, value: object, message: str) -> Problem:
    """A problem with the command-line value ``value`` of ``option`` (``--days``)."""
    return Problem(COMMAND_LINE, option, value, message)
