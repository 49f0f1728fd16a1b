"""The shipped configuration: one source (config/), found through importlib.resources anywhere."""

from __future__ import annotations

import email
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from acd import shipped
from acd.cli import build_parser
from acd.service.settings import CONFIG_DIR, load_settings
from sim.run import default_scenario

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "config"


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_checkout_reads_the_top_level_config_through_the_symlink() -> None:
    """In a checkout (editable install) acd/defaults links to config/, whose files are used."""
    link = REPO / "acd" / "defaults"
    assert link.is_symlink() and os.readlink(link) == "../config"
    assert shipped.config_dir() == CONFIG.resolve()
    assert shipped.center_file() == CONFIG.resolve() / "center.yaml"
    assert shipped.reference_scenario().read_bytes() == \
        (CONFIG / "scenarios" / "reference.yaml").read_bytes()


def test_every_default_path_comes_from_the_shipped_tree() -> None:
    """Each command's default file or directory is inside the shipped tree and exists there."""
    parser = build_parser()
    root = shipped.config_dir()
    defaults = {
        "acd check": parser.parse_args(["check"]).config,
        "acd sim run": parser.parse_args(["sim", "run"]).scenario,
        "acd sim staff": parser.parse_args(["sim", "staff"]).scenario,
        "acd ivr check --config": parser.parse_args(["ivr", "check"]).config,
        "acd ivr check --flow-dir": parser.parse_args(["ivr", "check"]).flow_dir,
        "sim.run.default_scenario": default_scenario(),
        "settings center": load_settings(None, {}).center,
        "settings flows": load_settings(None, {}).flows,
    }
    for what, value in defaults.items():
        path = Path(value)
        assert path.is_relative_to(root), what
        assert path.exists(), what
    assert root == CONFIG_DIR
    assert Path(defaults["acd sim run"]) == Path(defaults["acd sim staff"]) == \
        shipped.reference_scenario()


def test_no_module_finds_config_next_to_its_own_file() -> None:
    """No package module builds a path to config/ or data/ from __file__; acd.shipped finds them."""
    offenders = []
    for package in ("acd", "ivr", "sim"):
        for source in sorted((REPO / package).rglob("*.py")):
            text = source.read_text(encoding="utf-8")
            if "__file__" in text and re.search(r"""["'](config|data)["']""", text):
                offenders.append(source.relative_to(REPO).as_posix())
    assert offenders == []


def _build_wheel(dest: Path) -> Path:
    """A pure-Python wheel built from a clean copy of the sources (no stale build/ leaks in)."""
    src = dest / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.so", "native_build.txt")
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md", "LICENSE", "MANIFEST.in",
                 "mypyc.ini"):
        shutil.copy2(REPO / name, src / name)
    for name in ("acd", "ivr", "sim", "config"):
        shutil.copytree(REPO / name, src / name, symlinks=True, ignore=ignore)
    env = {**os.environ, "ACD_PURE_PYTHON": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(dest / "dist"), str(src)],
                   check=True, env=env, cwd=dest, capture_output=True)
    (wheel,) = (dest / "dist").glob("*.whl")
    return wheel


@pytest.mark.slow
def test_wheel_ships_the_config_and_runs_on_it_outside_the_checkout(tmp_path: Path) -> None:
    """The wheel holds config/ as real files and a license; unpacked elsewhere, acd runs on them."""
    wheel = _build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        shipped_files = {n.removeprefix("acd/defaults/"): zf.read(n) for n in names
                         if n.startswith("acd/defaults/") and not n.endswith("/")}
        (meta_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = email.message_from_bytes(zf.read(meta_name))
        licenses = [n for n in names if ".dist-info/licenses/" in n]
        zf.extractall(tmp_path / "site")
    assert shipped_files == _files(CONFIG)
    assert metadata["License-Expression"] == "Apache-2.0"
    assert [n.rsplit("/", 1)[1] for n in licenses] == ["LICENSE"]
    assert not (tmp_path / "site" / "acd" / "defaults").is_symlink()

    run_dir = tmp_path / "elsewhere"
    run_dir.mkdir()
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site"), "ACD_PURE_PYTHON": "1"}

    def acd(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "acd.cli", *args], cwd=run_dir, env=env,
                              capture_output=True, text=True, timeout=300)

    where = subprocess.run(
        [sys.executable, "-c", "import acd, acd.shipped as s; print(acd.__file__); "
                               "print(s.config_dir())"],
        cwd=run_dir, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert [Path(p).is_relative_to(tmp_path / "site") for p in where] == [True, True]

    check = acd("check")
    assert check.returncode == 0, check.stderr
    assert f"ok: {tmp_path / 'site' / 'acd' / 'defaults' / 'center.yaml'}" in check.stdout
    flows = acd("ivr", "check")
    assert flows.returncode == 0, flows.stderr
    assert "flow main" in flows.stdout and "flow callback" in flows.stdout
    sim = acd("sim", "run", "--days", "0.05", "-r", "1", "-j", "1", "--out", "sim")
    assert sim.returncode == 0, sim.stderr
    assert re.search(r"^SL .*target 85% / 20 s", sim.stdout, re.MULTILINE)
    assert (run_dir / "sim" / "summary.json").is_file()
    init = acd("init", "cfg")
    assert init.returncode == 0, init.stderr
    assert _files(run_dir / "cfg") == _files(CONFIG)
