"""The Grafana dashboard: the 85% target line on the SL panels, `$queue` in every queue query."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest

from acd.config.load import load_center
from acd.runtime.router_service import RouterService
from acd.service.metrics import ServiceMetrics

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "config" / "grafana" / "dashboard.json"
CENTER = ROOT / "config" / "center.yaml"
QUEUE_FILTER = 'queue=~"$queue"'
#: A series name in PromQL with its optional label matchers.
_SELECTOR = re.compile(r"\b(acd_[a-z0-9_]+)\b(\{[^}]*\})?")


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def labels_by_series() -> dict[str, set[str]]:
    """Every exported series name -> its label names, from a live registry (every configured
    series exists from the start, so each family shows its labels)."""
    center = load_center(CENTER)

    async def collect() -> dict[str, set[str]]:
        service = RouterService(center)
        metrics = ServiceMetrics(center.config)
        metrics.collect_from(lambda: service)
        found: dict[str, set[str]] = {}
        for family in metrics.registry.collect():
            for sample in family.samples:
                found.setdefault(sample.name, set()).update(sample.labels)
        service.close()
        return found

    return asyncio.run(collect())


def test_selector_scanner_reads_matchers() -> None:
    """The scanner finds each acd_ series with its matchers (and none in function names)."""
    expr = ('sum by (queue) (rate(acd_a_total{queue=~"$queue",x="y"}[5m])) / '
            'histogram_quantile(0.9, acd_b_bucket)')
    assert _SELECTOR.findall(expr) == [("acd_a_total", '{queue=~"$queue",x="y"}'),
                                       ("acd_b_bucket", "")]


def test_every_query_on_a_queue_series_honours_the_queue_variable() -> None:
    """Each panel query on a series with a queue label filters it by `$queue`, so picking a
    queue narrows every panel it applies to (agents by site or routing latency have no
    queue label and show the whole center)."""
    labels = labels_by_series()
    checked = 0
    for panel in dashboard()["panels"]:
        for target in panel["targets"]:
            for name, matchers in _SELECTOR.findall(target["expr"]):
                assert name in labels, f"panel {panel['title']!r}: {name} is not exported"
                if "queue" in labels[name]:
                    checked += 1
                    assert QUEUE_FILTER in matchers, \
                        f"panel {panel['title']!r}: {name}{matchers} ignores $queue"
    assert checked >= 15


def test_the_queue_variable_lists_every_queue_and_all() -> None:
    """`$queue` is a multi-value variable over the exported queue label, with All = every queue."""
    [var] = [v for v in dashboard()["templating"]["list"] if v["name"] == "queue"]
    assert var["multi"] and var["includeAll"] and var["allValue"] == ".*"
    assert "label_values(acd_queue_calls_waiting, queue)" in var["query"]


@pytest.mark.parametrize("panel_id", [1, 2])
def test_service_level_panels_show_the_target_line(panel_id: int) -> None:
    """Both SL panels draw the center's target (85%) as a threshold line on a 0-100% axis."""
    target = load_center(CENTER).config.center.service_level.target
    assert target == 0.85
    [panel] = [p for p in dashboard()["panels"] if p["id"] == panel_id]
    assert "Service level" in panel["title"]
    defaults = panel["fieldConfig"]["defaults"]
    assert defaults["unit"] == "percentunit"
    assert (defaults["min"], defaults["max"]) == (0, 1)
    assert defaults["custom"]["thresholdsStyle"]["mode"] in ("line", "dashed",
                                                            "line+area", "dashed+area")
    steps = defaults["thresholds"]["steps"]
    assert [s["value"] for s in steps] == [None, target]
    assert steps[-1]["color"] == "green" and steps[0]["color"] == "red"
