"""Collect every problem in an input file (up to a cap) and raise them together."""

from __future__ import annotations

from acd.config.messages import shown
from acd.config.yamlsafe import line_of_path
from acd.errors import ConfigError, Problem

#: Most problems reported for one file; a user fixes the first ones and runs again.
MAX_PROBLEMS = 50


class ProblemList:
    """Problems found in one file so far; :meth:`raise_if_any` turns them into a ConfigError."""

    def __init__(self, file: str, cap: int = MAX_PROBLEMS, text: str | None = None) -> None:
        """``text``: the file's YAML, so that problems without a line get the path's line."""
        self.file = file
        self.text = text
        self.cap = cap
        self.problems: list[Problem] = []
        self.dropped = 0

    def add(self, path: str, value: object, message: str, line: int | None = None) -> None:
        """Record one problem, or count it once the cap is reached."""
        if len(self.problems) < self.cap:
            if line is None and self.text is not None:
                line = line_of_path(self.text, path)
            self.problems.append(Problem(self.file, path, shown(value), message, line))
        else:
            self.dropped += 1

    def __bool__(self) -> bool:
        return bool(self.problems)

    def raise_if_any(self) -> None:
        """Raise a ConfigError listing every recorded problem (and how many were left out)."""
        if not self.problems:
            return
        problems = list(self.problems)
        if self.dropped:
            problems.append(Problem(self.file, "<root>", self.dropped,
                                    f"{self.dropped} more problems not shown"))
        raise ConfigError(problems)
