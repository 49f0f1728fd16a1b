"""`acd check`: exit 0 with a coverage summary for a good config, exit 2 with every problem."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from configkit import REFERENCE, REPO, WIDE_COLUMNS, reference_data, run_check, write_config

from acd.cli import main, report_bug
from acd.config.load import load_center
from acd.errors import EXIT_BAD_INPUT, ConfigError


def _expected_cells(data: dict[str, Any]) -> Counter[tuple[str, str, str]]:
    """Agents per (language, site, skill), computed straight from the YAML groups."""
    cells: Counter[tuple[str, str, str]] = Counter()
    for group in data["agent_groups"].values():
        blocks = group.get("language_mix") or [{"count": group["count"],
                                                 "languages": group["languages"]}]
        for block in blocks:
            for lang in block["languages"]:
                for skill in group["skills"]:
                    cells[(lang, group["site"], skill)] += block["count"]
    return cells


def _cell_total(cell: str) -> int:
    """``"113 (15)"`` -> 128 (tenured plus newcomers); ``"-"`` -> 0."""
    cell = cell.strip()
    if cell == "-":
        return 0
    tenured, _, newcomers = cell.partition("(")
    return int(tenured) + (int(newcomers.rstrip(")")) if newcomers else 0)


def _row(out: str, first: str) -> list[str]:
    """The cells of the table row whose first cell is ``first``."""
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("│|").split("│")]
        if cells and cells[0] == first:
            return cells[1:]
    raise AssertionError(f"no row {first!r} in:\n{out}")


def _assert_coverage_table(out: str) -> None:
    data = reference_data()
    expected = _expected_cells(data)
    columns = [(site, skill) for site in data["sites"] for skill in data["skills"]]
    for lang in data["languages"]:
        cells = _row(out, lang)
        assert len(cells) == len(columns), (lang, cells)
        got = {col: _cell_total(c) for col, c in zip(columns, cells, strict=True)}
        assert got == {(site, skill): expected[(lang, site, skill)] for site, skill in columns}, \
            lang


def test_check_reference_exits_0_with_summary(capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """`acd check config/center.yaml` exits 0 and prints size, coverage table and ok line."""
    code, out, err = run_check(REFERENCE, capsys, monkeypatch)
    assert code == 0, err
    assert err == ""
    assert "281 agents in 12 groups on 2 sites" in out
    assert "4 queues; 12 countries; 12 languages; SL target 85% within 20 s" in out
    assert f"ok: {REFERENCE}" in out
    _assert_coverage_table(out)


def test_summary_cells_for_known_languages(capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Kazakh: 8 tech agents in Moscow and none in Kyiv; Ukrainian tech in Kyiv: 40+10+30+9=89."""
    _, out, _ = run_check(REFERENCE, capsys, monkeypatch)
    kk = _row(out, "kk")
    # Columns: moscow tech, repair, orders, voc, then kyiv tech, repair, orders, voc.
    assert _cell_total(kk[0]) == 8
    assert kk[4:] == ["-", "-", "-", "-"]
    uk = _row(out, "uk")
    assert uk[:4] == ["-", "-", "-", "-"]
    assert _cell_total(uk[4]) == 40 + 30 + 10 + 9
    assert _cell_total(uk[7]) == 9


def test_summary_country_table(capsys: pytest.CaptureFixture[str],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The countries table gives language, fallback, home site and native speakers per country."""
    _, out, _ = run_check(REFERENCE, capsys, monkeypatch)
    assert _row(out, "KZ") == ["kk", "ru", "moscow", "8"]
    assert _row(out, "UA") == ["uk", "ru", "kyiv", str(40 + 30 + 22 + 10 + 9)]
    assert _row(out, "RU") == ["ru", "-", "moscow", "281"]
    assert _row(out, "LV") == ["lv", "ru", "kyiv", "4"]


def test_summary_prints_coverage_warnings(capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Coverage warnings (voc served only in Russian to Belarus callers) reach the output."""
    _, out, _ = run_check(REFERENCE, capsys, monkeypatch)
    assert "warning: queue voc: BY callers are served only in ru, not be" in out


def test_check_default_config_is_the_reference(capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """`acd check` without a path checks the shipped reference center."""
    monkeypatch.setenv("COLUMNS", WIDE_COLUMNS)
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "281 agents" in out
    assert "center.yaml" in out


def test_check_via_python_dash_m() -> None:
    """`python -m acd check config/center.yaml` exits 0 and prints the same coverage table."""
    env = {**os.environ, "COLUMNS": WIDE_COLUMNS}
    proc = subprocess.run([sys.executable, "-m", "acd", "check", "config/center.yaml"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "ok: config/center.yaml" in proc.stdout
    _assert_coverage_table(proc.stdout)


def test_broken_config_via_python_dash_m(tmp_path: Path) -> None:
    """`python -m acd check` on a broken file really exits with status 2 and names the problem."""
    data = reference_data()
    data["countries"]["KZ"]["language"] = "kz"
    path = write_config(tmp_path, data)
    env = {**os.environ, "COLUMNS": WIDE_COLUMNS}
    proc = subprocess.run([sys.executable, "-m", "acd", "check", str(path)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == EXIT_BAD_INPUT
    assert proc.stdout == ""
    assert f"{path}:" in proc.stderr
    assert "countries.KZ.language: unknown language" in proc.stderr
    assert "(got 'kz')" in proc.stderr


def test_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A config path that does not exist exits 2 with 'cannot read file' and the path."""
    missing = tmp_path / "nope.yaml"
    code, out, err = run_check(missing, capsys, monkeypatch)
    assert code == EXIT_BAD_INPUT
    assert out == ""
    assert f"{missing}: <root>: cannot read file" in err
    assert "1 problem(s)" in err


def test_problems_one_per_line_on_a_narrow_console(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Each problem is printed whole on one line even when stderr is not a wide terminal."""
    data = reference_data()
    data["countries"]["KZ"]["language"] = "kz"
    data["agent_groups"]["msk-voc"]["site"] = "minsk"
    deep = tmp_path / ("a-rather-long-directory-name-" * 3)
    deep.mkdir()
    path = write_config(deep, data)
    with pytest.raises(ConfigError) as info:
        load_center(path)
    monkeypatch.delenv("COLUMNS", raising=False)
    capsys.readouterr()
    assert main(["check", str(path)]) == EXIT_BAD_INPUT
    lines = capsys.readouterr().err.splitlines()
    for problem in info.value.problems:
        assert str(problem) in lines


def test_version_is_the_installed_one(capsys: pytest.CaptureFixture[str]) -> None:
    """acd --version prints the version the package metadata records, and exits 0."""
    from importlib.metadata import version

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"acd {version('acd-engine')}"


def test_help_documents_the_exit_statuses(capsys: pytest.CaptureFixture[str]) -> None:
    """acd --help ends with the exit statuses 0, 1, 2 and 70 and what each means."""
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for line in ("0   done", "1   --check: the service-level or answer-rate target was missed",
                 "2   bad input or usage", "70  anything else is a bug"):
        assert line in out


def test_a_bug_prints_its_traceback_and_exits_70(capsys: pytest.CaptureFixture[str]) -> None:
    """An unexpected exception is reported as a bug with its traceback, exit 70 (not 1 or 2)."""
    try:
        {}["missing"]  # a real KeyError, with a real traceback
    except KeyError as exc:
        code = report_bug(exc)
    err = capsys.readouterr().err
    assert code == 70
    assert "Traceback" in err and "KeyError: 'missing'" in err
    assert err.rstrip().endswith("this is a bug, please report it with the command line and "
                                 "the traceback above (exit status 70)")
