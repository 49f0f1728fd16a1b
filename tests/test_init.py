"""`acd init DIR`: the shipped configuration copied out for a user to edit."""

from __future__ import annotations

from pathlib import Path

import pytest

from acd.cli import main
from acd.config.load import load_center
from acd.errors import EXIT_BAD_INPUT
from sim.scenario import load_scenario

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "config"


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_init_copies_every_shipped_file_and_names_the_next_command(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A new DIR gets a byte-identical copy of config/; the output lists it and what to run next."""
    dest = tmp_path / "new" / "cfg"
    assert main(["init", str(dest)]) == 0
    out = capsys.readouterr().out
    copied, shipped = _tree(dest), _tree(CONFIG)
    assert copied == shipped
    assert {"center.yaml", "service.yaml", "ivr/main.yaml", "scenarios/reference.yaml",
            "traffic/reference.yaml", "asterisk/extensions.conf", "prometheus/alerts.yml",
            "grafana/dashboard.json"} <= set(copied)
    for name in copied:
        assert f"wrote {dest / name}" in out
    assert f"acd check {dest}/center.yaml" in out
    assert f"acd sim run {dest}/scenarios/reference.yaml" in out


def test_copied_scenarios_refer_to_the_copied_files(tmp_path: Path) -> None:
    """The copies' references (center, traffic, IVR flow) stay inside DIR, so edits there count."""
    dest = tmp_path / "cfg"
    assert main(["init", str(dest)]) == 0
    center = dest / "center.yaml"
    text = center.read_text(encoding="utf-8")
    assert "answer_rate_target: 0.96" in text
    center.write_text(text.replace("answer_rate_target: 0.96", "answer_rate_target: 0.9"),
                      encoding="utf-8")
    scenario = load_scenario(dest / "scenarios" / "reference-ivr.yaml")
    assert Path(scenario.center.path) == center.resolve()
    assert scenario.traffic_path == (dest / "traffic" / "reference.yaml").resolve()
    assert scenario.spec.behaviour.ivr_flow == str((dest / "ivr" / "main.yaml").resolve())
    assert scenario.center.config.center.answer_rate_target == pytest.approx(0.9)
    shipped_center = load_center(CONFIG / "center.yaml").config.center
    assert shipped_center.answer_rate_target == pytest.approx(0.96)


def test_init_accepts_an_existing_empty_directory(tmp_path: Path) -> None:
    """An empty existing DIR is filled like a new one."""
    assert main(["init", str(tmp_path)]) == 0
    assert (tmp_path / "center.yaml").read_bytes() == (CONFIG / "center.yaml").read_bytes()


def test_init_refuses_a_non_empty_directory_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A non-empty DIR without --force exits 2, names DIR and leaves it exactly as it was."""
    mine = tmp_path / "center.yaml"
    mine.write_text("my own center\n", encoding="utf-8")
    assert main(["init", str(tmp_path)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "<command line>: DIR: is not empty" in err and "--force" in err
    assert str(tmp_path) in err and "Traceback" not in err
    assert _tree(tmp_path) == {"center.yaml": b"my own center\n"}


def test_force_overwrites_shipped_names_and_keeps_other_files(tmp_path: Path) -> None:
    """--force rewrites the shipped names in a non-empty DIR and leaves the user's own files."""
    (tmp_path / "center.yaml").write_text("stale\n", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("keep me\n", encoding="utf-8")
    assert main(["init", "--force", str(tmp_path)]) == 0
    assert (tmp_path / "center.yaml").read_bytes() == (CONFIG / "center.yaml").read_bytes()
    assert (tmp_path / "notes.txt").read_text(encoding="utf-8") == "keep me\n"


def test_init_refuses_a_file_as_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A DIR that names an existing file exits 2 with the reason, even with --force."""
    target = tmp_path / "cfg"
    target.write_text("a file\n", encoding="utf-8")
    assert main(["init", "--force", str(target)]) == EXIT_BAD_INPUT
    assert "exists and is not a directory" in capsys.readouterr().err
    assert target.read_text(encoding="utf-8") == "a file\n"


def test_init_under_a_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A DIR whose parent is a file cannot be created: exit 2 naming DIR, no traceback."""
    (tmp_path / "plain").write_text("x\n", encoding="utf-8")
    dest = tmp_path / "plain" / "cfg"
    assert main(["init", str(dest)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "cannot write there" in err and str(dest) in err
