"""Alert rules, the scrape config and the Grafana dashboard: valid, and only real metric names."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from acd.config.load import load_center
from acd.runtime.router_service import RouterService
from acd.service.metrics import ServiceMetrics

ROOT = Path(__file__).resolve().parents[1]
PROM = ROOT / "config" / "prometheus"
DASHBOARD = ROOT / "config" / "grafana" / "dashboard.json"
#: Series Prometheus makes itself for every target.
SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")


def exported_names() -> set[str]:
    """Every series name the service exposes, collected from a live registry."""
    center = load_center(ROOT / "config" / "center.yaml")
    service = RouterService(center)
    metrics = ServiceMetrics(center.config)
    metrics.collect_from(lambda: service)
    names: set[str] = set()
    for family in metrics.registry.collect():
        names.add(family.name)
        names.update(s.name for s in family.samples)
        if family.type == "counter":
            names.add(family.name + "_total")
        elif family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_count", "_sum"))
    return names


def metric_names(expr: str) -> set[str]:
    """Identifiers in a PromQL expression that name series (not functions, labels, keywords)."""
    text = re.sub(r'"[^"]*"', "", expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = _GROUPING.sub("", text)
    found = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        if text[m.end():].lstrip().startswith("("):
            continue  # a function
        if m.group().lower() not in KEYWORDS:
            found.add(m.group())
    return found


def alert_rules() -> list[dict[str, object]]:
    data = yaml.safe_load((PROM / "alerts.yml").read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    data = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in data["panels"] for t in p["targets"]]


def test_metric_name_extraction_sees_through_promql() -> None:
    """The PromQL scanner finds series names and skips functions, labels and keywords."""
    expr = ('sum by (queue) (rate(acd_a_total{queue=~"x|y"}[5m])) / on (queue) acd_b '
            '> 0.5 and up{job="acd"} == 0')
    assert metric_names(expr) == {"acd_a_total", "acd_b", "up"}


def test_alerts_cover_the_required_conditions() -> None:
    """SL below target for 15 min, queue depth, a queue without agents and router down."""
    rules = {str(r["alert"]): r for r in alert_rules()}
    assert rules["AcdServiceLevelBelowTarget"]["for"] == "15m"
    assert "acd_service_level_ratio < 0.85" in str(rules["AcdServiceLevelBelowTarget"]["expr"])
    assert "acd_queue_calls_waiting" in str(rules["AcdQueueDepthHigh"]["expr"])
    assert "acd_queue_agents_logged_in == 0" in str(rules["AcdQueueWithoutAgents"]["expr"])
    assert "up" in metric_names(str(rules["AcdRouterDown"]["expr"]))


async def test_every_expression_uses_exported_metrics() -> None:
    """Each series named in the alerts and panels is one the service really exports."""
    known = exported_names() | SYNTHETIC
    exprs = [str(r["expr"]) for r in alert_rules()] + dashboard_exprs()
    assert len(exprs) >= 15
    for expr in exprs:
        unknown = metric_names(expr) - known
        assert not unknown, f"{expr!r} uses {sorted(unknown)}"
    data = json.loads(DASHBOARD.read_text())
    for var in data["templating"]["list"]:
        for name in re.findall(r"acd_[a-z0-9_]+", json.dumps(var)):
            assert name in known, name


def test_dashboard_is_well_formed() -> None:
    """The dashboard parses, has unique panel ids and every panel has a query."""
    data = json.loads(DASHBOARD.read_text())
    assert data["uid"] and data["title"]
    ids = [p["id"] for p in data["panels"]]
    assert len(ids) == len(set(ids))
    for panel in data["panels"]:
        assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"])
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_rules_and_config() -> None:
    """`promtool check rules` and `check config` accept the shipped files."""
    for args in (["check", "rules", str(PROM / "alerts.yml")],
                 ["check", "config", str(PROM / "prometheus.yml")]):
        done = subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
