"""Helpers for config tests: the reference center as data, broken copies on disk, `acd check` runs.

Each broken-config test loads ``config/center.yaml`` as plain data, changes one thing, writes it
with ``yaml.safe_dump`` and checks what the loader and the CLI say about it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from acd.cli import main
from acd.config.load import load_center
from acd.errors import EXIT_BAD_INPUT, ConfigError, Problem

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "config" / "center.yaml"

#: Wide enough that rich never wraps a summary row or a problem line in captured output.
WIDE_COLUMNS = "1000"


@cache
def _reference_data() -> dict[str, Any]:
    with REFERENCE.open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    assert isinstance(data, dict)
    return data


def reference_data() -> dict[str, Any]:
    """A fresh deep copy of the reference center as plain data, safe to mutate."""
    return copy.deepcopy(_reference_data())


def write_config(tmp_path: Path, data: object, name: str = "center.yaml") -> Path:
    """Write ``data`` as block-style YAML (key order kept, so the roster order is kept)."""
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def line_after(text: str, *keys: str) -> int:
    """The 1-based line of the last of ``keys``, each searched (stripped) after the previous one.

    ``line_after(text, "queues:", "tech:", "expansion:")`` finds the ``expansion:`` key of the
    ``tech`` queue without trusting the loader's own line lookup.
    """
    lines = text.splitlines()
    start = 0
    found = -1
    for key in keys:
        for i in range(start, len(lines)):
            stripped = lines[i].strip()
            if stripped == key or stripped.startswith(key + " ") or stripped == "- " + key:
                found = i
                start = i + 1
                break
        else:
            raise AssertionError(f"{key!r} not found after line {start} in the written config")
    return found + 1


@dataclass
class Broken:
    """What the loader and `acd check` said about one broken config file."""

    path: Path
    text: str
    problems: list[Problem]
    stderr: str

    def problem(self, yaml_path: str) -> Problem:
        """The single problem reported at ``yaml_path`` (fails the test if not exactly one)."""
        found = [p for p in self.problems if p.path == yaml_path]
        assert len(found) == 1, f"expected one problem at {yaml_path}, got {self.problems}"
        return found[0]


def check_broken(tmp_path: Path, data: object, capsys: pytest.CaptureFixture[str],
                 monkeypatch: pytest.MonkeyPatch) -> Broken:
    """Write ``data``, require `acd check` to exit 2 and every problem to be printed verbatim."""
    path = write_config(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_center(path)
    problems = info.value.problems
    assert problems, "ConfigError without problems"
    monkeypatch.setenv("COLUMNS", WIDE_COLUMNS)
    capsys.readouterr()
    code = main(["check", str(path)])
    out = capsys.readouterr()
    assert code == EXIT_BAD_INPUT
    assert "ok:" not in out.out
    for p in problems:
        assert p.file == str(path)
        assert str(p) in out.err, f"{p} not printed; stderr was:\n{out.err}"
    return Broken(path, path.read_text(encoding="utf-8"), problems, out.err)


def run_check(path: Path | str, capsys: pytest.CaptureFixture[str],
              monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    """Run `acd check PATH` in-process with a wide console; return (exit code, stdout, stderr)."""
    monkeypatch.setenv("COLUMNS", WIDE_COLUMNS)
    capsys.readouterr()
    code = main(["check", str(path)])
    out = capsys.readouterr()
    return code, out.out, out.err
