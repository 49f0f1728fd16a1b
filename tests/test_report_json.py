"""summary.json's per-interval tables: every defined value kept to six decimals, whole numbers
written without ``.0``, and a KPI with no value anywhere (one replication's CI half-widths,
by site most KPIs) written as null instead of a table of nulls."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from reportkit import ZONE, long_run

from sim import kpi, report


def old_interval_size(summary: kpi.Summary) -> int:
    """Bytes the interval tables took in the earlier format (every value a float, every
    undefined one a null), computed here."""
    def rows(arr: np.ndarray) -> list[list[float | None]]:
        return [[None if v != v else v for v in row] for row in np.round(arr, 6).tolist()]

    return len(json.dumps({dim: {"groups": list(t.groups), "start_s": t.start_s.tolist(),
                                 "targets": list(t.targets),
                                 "mean": {k: rows(v) for k, v in t.mean.items()},
                                 "half_width": {k: rows(v) for k, v in t.half_width.items()}}
                           for dim, t in summary.intervals.items()}))


def test_every_defined_interval_value_survives_and_undefined_kpis_are_null(
        tmp_path: Path) -> None:
    """With one replication each half-width table is null and each mean table holds the
    rounded means exactly (NaN as null); a KPI undefined everywhere is null; the file is at
    most half the size of the earlier format."""
    runs = [long_run(9.0, seed=7)]
    summary = kpi.summarise(runs, timezone=ZONE)
    report.write_json(tmp_path / "summary.json", summary, results=runs)
    text = (tmp_path / "summary.json").read_text(encoding="utf-8")
    doc = json.loads(text)
    for dim, table in summary.intervals.items():
        got = doc["intervals"][dim]
        assert all(v is None for v in got["half_width"].values()), dim
        for k, arr in table.mean.items():
            if not np.isfinite(arr).any():
                assert got["mean"][k] is None, (dim, k)
                continue
            loaded = np.array([[np.nan if v is None else v for v in row]
                               for row in got["mean"][k]], dtype=float)
            np.testing.assert_array_equal(loaded, np.round(arr, 6), err_msg=f"{dim} {k}")
    assert doc["intervals"]["site"]["mean"]["offered"] is None  # by site: answered calls only
    values = [v for t in doc["intervals"].values() for rows in t["mean"].values() if rows
              for row in rows for v in row]
    assert not any(isinstance(v, float) and v.is_integer() for v in values)  # 0, not 0.0
    assert '"offered": [[0, 0' in text
    assert len(text.split('"intervals": ')[1]) < 0.5 * old_interval_size(summary)


def test_several_replications_keep_their_half_widths(tmp_path: Path) -> None:
    """With two replications the half-width tables are written, value for value, to 0.01
    percentage point for shares and a thousandth of a second for times."""
    runs = [long_run(2.0, seed=s) for s in (1, 2)]
    summary = kpi.summarise(runs, timezone=ZONE)
    report.write_json(tmp_path / "summary.json", summary, results=runs)
    doc = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    hw = summary.intervals[kpi.ALL].half_width["sl_offered"]
    loaded = np.array([[np.nan if v is None else v for v in row]
                       for row in doc["intervals"]["all"]["half_width"]["sl_offered"]])
    np.testing.assert_array_equal(loaded, np.round(hw, 4))  # 0.01 percentage point
    asa = summary.intervals["queue"].half_width["asa_s"]
    loaded = np.array([[np.nan if v is None else v for v in row]
                       for row in doc["intervals"]["queue"]["half_width"]["asa_s"]])
    np.testing.assert_array_equal(loaded, np.round(asa, 3))
    assert doc == report.summary_to_dict(summary, results=runs)
