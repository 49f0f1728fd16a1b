"""The alert rules' own unit tests (promtool), and a runbook section behind every alert."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PROM = ROOT / "config" / "prometheus"
RULES = PROM / "alerts.yml"
RULE_TESTS = PROM / "alerts_test.yml"
OPERATIONS = ROOT / "docs" / "operations.md"
#: One SL window (the rolling SL and the per-interval figure both use 15 minutes).
WINDOW_MIN = 15


def alert_rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in data["groups"] for rule in group["rules"]]


def rule_tests() -> list[dict[str, Any]]:
    data = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))
    assert data["rule_files"] == ["alerts.yml"]
    tests: list[dict[str, Any]] = data["tests"]
    return tests


def minutes(duration: str) -> float:
    """A Prometheus duration such as ``15m`` or ``1h`` in minutes."""
    units = {"s": 1 / 60, "m": 1.0, "h": 60.0}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+)([smh])", duration))


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading (lower case, punctuation dropped)."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def runbook_sections() -> dict[str, list[str]]:
    """Anchor -> lines of each ``###`` section of docs/operations.md."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in OPERATIONS.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            current = None
            if line.startswith("### "):
                current = sections.setdefault(github_anchor(line[4:]), [])
            continue
        if current is not None and line.strip():
            current.append(line)
    return sections


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed "
                    "(Debian: apt-get install prometheus)")
def test_promtool_unit_tests_of_the_alert_rules_pass() -> None:
    """`promtool test rules config/prometheus/alerts_test.yml` passes: each alert fires when
    and only when its test says (SL within one window, a closed queue without agents
    silent, the router down, ...)."""
    done = subprocess.run(["promtool", "test", "rules", str(RULE_TESTS)], capture_output=True,
                          text=True, timeout=120, cwd=PROM)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_has_a_firing_unit_test() -> None:
    """Each alert appears in alerts_test.yml with at least one evaluation where it fires and
    one where it must not, so no rule ships untested."""
    firing: set[str] = set()
    silent: set[str] = set()
    for test in rule_tests():
        for case in test.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else silent).add(case["alertname"])
    names = {str(r["alert"]) for r in alert_rules()}
    assert names == firing, names ^ firing
    assert names == silent, names ^ silent


def test_every_alert_links_its_own_short_runbook_section() -> None:
    """runbook_url names a section of docs/operations.md that exists, one per alert, short."""
    sections = runbook_sections()
    seen = set()
    for rule in alert_rules():
        url = rule["annotations"]["runbook_url"]
        page, _, anchor = url.partition("#")
        assert page == "docs/operations.md", url
        assert anchor == github_anchor(rule["alert"]), url
        assert anchor in sections, f"no section '### {rule['alert']}' in {OPERATIONS.name}"
        assert 2 <= len(sections[anchor]) <= 12, f"{rule['alert']}: keep the runbook short"
        seen.add(anchor)
    assert len(seen) == len(alert_rules())


def test_the_window_alert_fires_within_one_window() -> None:
    """The SL window alert reads one 15-minute window and has no `for` on top of it."""
    rule = {str(r["alert"]): r for r in alert_rules()}["AcdServiceLevelWindowBelowTarget"]
    ranges = {minutes(r) for r in re.findall(r"\[(\w+)\]", rule["expr"])}
    assert ranges == {WINDOW_MIN}
    assert minutes(str(rule.get("for", "0m"))) == 0
    assert "< 0.85" in rule["expr"] and ">= 10" in rule["expr"]


def test_queue_without_agents_only_while_open() -> None:
    """AcdQueueWithoutAgents joins the business-hours gauge: a closed queue never alerts."""
    rule = {str(r["alert"]): r for r in alert_rules()}["AcdQueueWithoutAgents"]
    expr = " ".join(str(rule["expr"]).split())
    assert "acd_queue_agents_logged_in == 0 and on (queue) acd_queue_open == 1" in expr
