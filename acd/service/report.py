"""``acd report summary``: the shift summary for management, from the service's call records.

For the calls that arrived in ``[since, until)``: service level (``sl_offered``: answered
within the threshold / offered), answer rate, ASA, AHT (talk time of answered calls) and
abandon rate for the center and by queue (the call's first queue), language, country, site
(of the answering agent; ``-`` for calls no agent answered) and interval in the center's local
time; the intervals that missed the SL target and the SL consistency (share of intervals with
at least ``min_calls`` offered calls that met it). Text, HTML (jinja2) or JSON.

First-call resolution: a call is a *repeat* when the same customer (customer id, else the
caller's number) called the same queue (the call's first queue) within the window before it
(24 h and 7 days by default). FCR = 1 - repeats / identified calls, by queue, and by agent and
group of the call repeated (the earlier call: the one that did not resolve the request; ``-``
when no agent answered it). Calls before ``since`` count only as the earlier calls. Post-call
survey: the average score, its distribution and the share of the target (4.75 by default) by
agent, group and queue, over the calls of the period that have a score.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2

from acd.cliargs import input_file, iso_time, output_file
from acd.config.schema import CenterConfig
from acd.errors import Problem, usage
from acd.runtime.records import read_calls
from acd.service.database import add_records_options
from acd.service.repeats import FCR_WINDOWS_S, customer_key, window_name

DIMENSIONS = ("queue", "language", "country", "site")
#: Groupings of first-call resolution and survey scores.
FCR_DIMENSIONS = ("queue", "agent", "group")
SURVEY_DIMENSIONS = ("agent", "group", "queue")
SURVEY_TARGET = 4.75


@dataclass
class Resolution:
    """First-call resolution of one group: identified calls and repeats per window."""

    calls: int = 0
    repeats: dict[str, int] = field(default_factory=dict)

    def figures(self, windows: Iterable[str]) -> dict[str, Any]:
        """Calls, repeats and FCR (None without identified calls) per window."""
        return {"calls": self.calls,
                "repeats": {w: self.repeats.get(w, 0) for w in windows},
                "fcr": {w: (None if not self.calls else 1 - self.repeats.get(w, 0) / self.calls)
                        for w in windows}}


@dataclass
class Scores:
    """Post-call survey answers of one group."""

    counts: list[int] = field(default_factory=lambda: [0] * 5)

    def figures(self, target: float) -> dict[str, Any]:
        """Answers, average (None without answers), distribution 1..5 and target met."""
        answers = sum(self.counts)
        average = (sum((i + 1) * n for i, n in enumerate(self.counts)) / answers
                   if answers else None)
        return {"answers": answers, "average": average,
                "distribution": {str(i + 1): n for i, n in enumerate(self.counts)},
                "met": None if average is None else average >= target}


@dataclass
class Tally:
    """Calls of one group and what became of them."""

    offered: int = 0
    answered: int = 0
    within: int = 0
    abandoned: int = 0
    wait_answered_s: float = 0.0
    talk_s: float = 0.0

    def add(self, row: Mapping[str, object], threshold_s: float) -> None:
        """Count one call record."""
        self.offered += 1
        wait = float(row["wait_s"] or 0.0)  # type: ignore[arg-type]
        if row["outcome"] == "answered":
            self.answered += 1
            self.within += wait <= threshold_s
            self.wait_answered_s += wait
            self.talk_s += float(row["talk_s"] or 0.0)  # type: ignore[arg-type]
        elif row["outcome"] == "abandoned":
            self.abandoned += 1

    def figures(self) -> dict[str, float | int | None]:
        """SL, answer rate, ASA, AHT and abandon rate (None where nothing counts)."""
        return {"offered": self.offered, "answered": self.answered,
                "sl": _share(self.within, self.offered),
                "answer_rate": _share(self.answered, self.offered),
                "asa_s": _mean(self.wait_answered_s, self.answered),
                "aht_s": _mean(self.talk_s, self.answered),
                "abandon_rate": _share(self.abandoned, self.offered)}


@dataclass
class Summary:
    """The figures of one period."""

    since: datetime
    until: datetime
    target: float
    threshold_s: float
    answer_rate_target: float
    interval_min: int
    min_calls: int
    center: Tally = field(default_factory=Tally)
    by: dict[str, dict[str, Tally]] = field(
        default_factory=lambda: {d: {} for d in DIMENSIONS})
    intervals: dict[str, Tally] = field(default_factory=dict)
    fcr_windows: tuple[str, ...] = ()
    fcr_center: Resolution = field(default_factory=Resolution)
    fcr: dict[str, dict[str, Resolution]] = field(
        default_factory=lambda: {d: {} for d in FCR_DIMENSIONS})
    unidentified: int = 0
    survey_target: float = SURVEY_TARGET
    survey_center: Scores = field(default_factory=Scores)
    survey: dict[str, dict[str, Scores]] = field(
        default_factory=lambda: {d: {} for d in SURVEY_DIMENSIONS})

    def as_json(self) -> dict[str, Any]:
        """Plain data for JSON and the templates."""
        intervals: list[dict[str, Any]] = [{"start": k, **t.figures()}
                                           for k, t in sorted(self.intervals.items())]
        judged = [i for i in intervals if i["offered"] >= self.min_calls]
        missed = [i for i in judged if i["sl"] is not None and i["sl"] < self.target]
        return {"since": self.since.isoformat(), "until": self.until.isoformat(),
                "target": {"sl": self.target, "threshold_s": self.threshold_s,
                           "answer_rate": self.answer_rate_target},
                "center": self.center.figures(),
                "by": {d: {k: t.figures() for k, t in sorted(rows.items())}
                       for d, rows in self.by.items()},
                "interval_min": self.interval_min, "intervals": intervals,
                "intervals_missed": [i["start"] for i in missed],
                "sl_consistency": _share(len(judged) - len(missed), len(judged)),
                "intervals_judged": len(judged), "min_calls": self.min_calls,
                "fcr": {"windows": list(self.fcr_windows),
                        "unidentified_calls": self.unidentified,
                        "center": self.fcr_center.figures(self.fcr_windows),
                        "by": {d: {k: r.figures(self.fcr_windows) for k, r in sorted(rows.items())}
                               for d, rows in self.fcr.items()}},
                "survey": {"target": self.survey_target,
                           "center": self.survey_center.figures(self.survey_target),
                           "by": {d: {k: c.figures(self.survey_target)
                                      for k, c in sorted(rows.items())}
                                  for d, rows in self.survey.items()}}}


def summarize(rows: Iterable[Mapping[str, object]], config: CenterConfig, since: datetime,
              until: datetime, interval_min: int = 30, min_calls: int = 10, *,
              groups: Mapping[str, str] | None = None,
              fcr_windows_s: Sequence[float] = FCR_WINDOWS_S,
              survey_target: float = SURVEY_TARGET) -> Summary:
    """The summary of the call records ``rows`` (as :func:`read_calls` yields them, in arrival
    order); rows before ``since`` only count as earlier calls for first-call resolution.
    ``groups``: agent id -> agent group."""
    sl = config.center.service_level
    zone = ZoneInfo(next(iter(config.sites.values())).timezone) if config.sites else None
    summary = Summary(since, until, sl.target, sl.threshold_s,
                      config.center.answer_rate_target, interval_min, min_calls,
                      fcr_windows=tuple(window_name(w) for w in fcr_windows_s),
                      survey_target=survey_target)
    repeats = _Repeats(summary, groups or {}, fcr_windows_s)
    first = since.timestamp()
    for row in rows:
        if float(row["arrival"]) < first:  # type: ignore[arg-type]
            repeats.remember(row)
            continue
        repeats.add(row)
        _add_score(summary, row, groups or {})
        queue = str(row["entry_queue"])
        threshold = (config.sl_for(queue) if queue in config.queues else sl).threshold_s
        summary.center.add(row, threshold)
        keys = {"queue": queue, "language": row["language"], "country": row["country"],
                "site": row["site"] or "-"}
        for dim, key in keys.items():
            summary.by[dim].setdefault(str(key), Tally()).add(row, threshold)
        arrival = datetime.fromtimestamp(float(row["arrival"]), zone)  # type: ignore[arg-type]
        minute = arrival.hour * 60 + arrival.minute
        start = arrival.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(
            minutes=minute - minute % interval_min)
        summary.intervals.setdefault(start.isoformat(timespec="minutes"), Tally()).add(
            row, threshold)
    return summary


class _Repeats:
    """Finds repeat calls: the last call of each customer to each queue, and who took it."""

    def __init__(self, summary: Summary, groups: Mapping[str, str],
                 windows_s: Sequence[float]) -> None:
        self.summary = summary
        self.groups = groups
        self.windows = list(zip(summary.fcr_windows, windows_s, strict=True))
        #: (queue, customer) -> (arrival, agent) of the customer's last call there.
        self.last: dict[tuple[str, str], tuple[float, str]] = {}

    def remember(self, row: Mapping[str, object]) -> tuple[float, str] | None:
        """Note the call as the customer's last; return the one before it, if any."""
        key = customer_key(row)
        if key is None:
            return None
        before = self.last.get(key)
        self.last[key] = (float(row["arrival"]), str(row["agent_id"] or "-"))  # type: ignore[arg-type]
        return before

    def add(self, row: Mapping[str, object]) -> None:
        """Count a call of the period: identified, and a repeat in which windows."""
        s = self.summary
        if customer_key(row) is None:
            s.unidentified += 1
            return
        agent = str(row["agent_id"] or "-")
        before = self.remember(row)
        groups = (s.fcr_center, s.fcr["queue"].setdefault(str(row["entry_queue"]), Resolution()))
        for r in (*groups, s.fcr["agent"].setdefault(agent, Resolution()),
                  s.fcr["group"].setdefault(self.groups.get(agent, "-"), Resolution())):
            r.calls += 1
        if before is None:
            return
        gap = float(row["arrival"]) - before[0]  # type: ignore[arg-type]
        first_agent = before[1]
        blamed = (*groups, s.fcr["agent"].setdefault(first_agent, Resolution()),
                  s.fcr["group"].setdefault(self.groups.get(first_agent, "-"), Resolution()))
        for name, window in self.windows:
            if gap <= window:
                for r in blamed:
                    r.repeats[name] = r.repeats.get(name, 0) + 1


def _add_score(summary: Summary, row: Mapping[str, object], groups: Mapping[str, str]) -> None:
    score = row.get("survey_score")
    if score is None or not 1 <= int(score) <= 5:  # type: ignore[call-overload]
        return
    agent = str(row["agent_id"] or "-")
    keys = {"agent": agent, "group": groups.get(agent, "-"), "queue": str(row["entry_queue"])}
    summary.survey_center.counts[int(score) - 1] += 1  # type: ignore[call-overload]
    for dim, key in keys.items():
        summary.survey[dim].setdefault(key, Scores()).counts[int(score) - 1] += 1  # type: ignore[call-overload]


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _mean(total: float, count: int) -> float | None:
    return total / count if count else None


# ---------------------------------------------------------------------- rendering

def _pct(value: object) -> str:
    return "-" if value is None else f"{float(value):.1%}"  # type: ignore[arg-type]


def _sec(value: object) -> str:
    return "-" if value is None else f"{float(value):.1f} s"  # type: ignore[arg-type]


_ENV = jinja2.Environment(autoescape=jinja2.select_autoescape(default=True),
                          undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
_ENV.filters["pct"] = _pct
_ENV.filters["sec"] = _sec
_ENV.filters["score"] = lambda v: "-" if v is None else f"{float(v):.2f}"
_ROW = ("<td>{{ f.offered }}</td><td>{{ f.sl|pct }}</td><td>{{ f.answer_rate|pct }}</td>"
        "<td>{{ f.asa_s|sec }}</td><td>{{ f.aht_s|sec }}</td><td>{{ f.abandon_rate|pct }}</td>")
HTML = _ENV.from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Shift summary {{ s.since }}</title>
<style>body{font-family:system-ui,sans-serif;margin:1.5rem}table{border-collapse:collapse;
margin-bottom:1.2rem}td,th{border-bottom:1px solid #ccc;padding:.2rem .6rem;text-align:right}
td:first-child,th:first-child{text-align:left}.miss{color:#b00;font-weight:600}</style>
</head><body>
<h1>Shift summary</h1>
<p>Calls that arrived from {{ s.since }} until {{ s.until }}. Target: {{ s.target.sl|pct }}
answered within {{ s.target.threshold_s }} s, answer rate {{ s.target.answer_rate|pct }}.</p>
{% set f = s.center %}
<table><tr><th></th><th>offered</th><th>SL</th><th>answer rate</th><th>ASA</th><th>AHT</th>
<th>abandon rate</th></tr><tr><td>center</td>""" + _ROW + """</tr></table>
<p>SL consistency: {{ s.sl_consistency|pct }} of {{ s.intervals_judged }} intervals with at
least {{ s.min_calls }} calls met the target.
{% if s.intervals_missed %}<span class="miss">Missed: {{ s.intervals_missed|join(", ") }}
</span>{% endif %}</p>
{% for dim, rows in s.by.items() %}
<h2>By {{ dim }}</h2>
<table><tr><th>{{ dim }}</th><th>offered</th><th>SL</th><th>answer rate</th><th>ASA</th>
<th>AHT</th><th>abandon rate</th></tr>
{% for name, f in rows.items() %}<tr><td>{{ name }}</td>""" + _ROW + """</tr>
{% endfor %}</table>
{% endfor %}
<h2>By interval ({{ s.interval_min }} min)</h2>
<table><tr><th>start</th><th>offered</th><th>SL</th><th>answer rate</th><th>ASA</th>
<th>AHT</th><th>abandon rate</th></tr>
{% for f in s.intervals %}<tr{% if f.start in s.intervals_missed %} class="miss"{% endif %}>
<td>{{ f.start }}</td>""" + _ROW + """</tr>
{% endfor %}</table>
{% set w = s.fcr.windows %}
<h2>First-call resolution</h2>
<p>A repeat: the same customer called the same queue again within {{ w|join(" / ") }}.
{{ s.fcr.unidentified_calls }} calls without a number or customer id are not counted.</p>
<table><tr><th></th><th>calls</th>{% for x in w %}<th>FCR {{ x }}</th>{% endfor %}</tr>
<tr><td>center</td><td>{{ s.fcr.center.calls }}</td>{% for x in w %}
<td>{{ s.fcr.center.fcr[x]|pct }}</td>{% endfor %}</tr>
{% for dim, rows in s.fcr.by.items() %}{% for name, r in rows.items() %}
<tr><td>{{ dim }} {{ name }}</td><td>{{ r.calls }}</td>{% for x in w %}
<td>{{ r.fcr[x]|pct }}</td>{% endfor %}</tr>
{% endfor %}{% endfor %}</table>
<h2>Post-call survey</h2>
<p>Target: an average of at least {{ s.survey.target }} of 5.</p>
<table><tr><th></th><th>answers</th><th>average</th><th>1</th><th>2</th><th>3</th><th>4</th>
<th>5</th></tr>
{% for name, c in [("center", s.survey.center)] + s.survey.rows %}
<tr{% if c.met == false %} class="miss"{% endif %}><td>{{ name }}</td><td>{{ c.answers }}</td>
<td>{{ c.average|score }}</td>{% for k in ["1", "2", "3", "4", "5"] %}
<td>{{ c.distribution[k] }}</td>{% endfor %}</tr>
{% endfor %}</table>
</body></html>
""")


def render_text(data: Mapping[str, Any]) -> str:
    """The summary as plain text (for a terminal or an e-mail body)."""
    head = f"{'':24} {'offered':>8} {'SL':>7} {'answer':>7} {'ASA':>8} {'AHT':>8} {'aband.':>7}"

    def line(name: str, f: Mapping[str, Any]) -> str:
        return (f"{name[:24]:24} {f['offered']:>8} {_pct(f['sl']):>7} "
                f"{_pct(f['answer_rate']):>7} {_sec(f['asa_s']):>8} {_sec(f['aht_s']):>8} "
                f"{_pct(f['abandon_rate']):>7}")

    t = data["target"]
    out = [f"Shift summary: calls that arrived from {data['since']} until {data['until']}",
           f"Target: {_pct(t['sl'])} answered within {t['threshold_s']:g} s, answer rate "
           f"{_pct(t['answer_rate'])}", "", head, line("center", data["center"])]
    for dim, rows in data["by"].items():
        out += ["", f"by {dim}"] + [line(name, f) for name, f in rows.items()]
    out += ["", f"by interval ({data['interval_min']} min)"]
    out += [line(i["start"], i) + ("  MISSED" if i["start"] in data["intervals_missed"] else "")
            for i in data["intervals"]]
    out += ["", f"SL consistency: {_pct(data['sl_consistency'])} of {data['intervals_judged']} "
            f"intervals with at least {data['min_calls']} calls met the target"]
    return "\n".join(out + _fcr_text(data["fcr"]) + _survey_text(data["survey"])) + "\n"


def _fcr_text(fcr: Mapping[str, Any]) -> list[str]:
    windows = fcr["windows"]

    def line(name: str, r: Mapping[str, Any]) -> str:
        return f"{name[:24]:24} {r['calls']:>8} " + " ".join(
            f"{_pct(r['fcr'][w]):>8}" for w in windows)

    out = ["", f"First-call resolution (repeat: same customer, same queue within "
           f"{' / '.join(windows)}; {fcr['unidentified_calls']} calls unidentified)",
           f"{'':24} {'calls':>8} " + " ".join(f"{'FCR ' + w:>8}" for w in windows),
           line("center", fcr["center"])]
    for dim, rows in fcr["by"].items():
        out += [line(f"{dim} {name}", r) for name, r in rows.items()]
    return out


def _survey_text(survey: Mapping[str, Any]) -> list[str]:
    def line(name: str, c: Mapping[str, Any]) -> str:
        average = "-" if c["average"] is None else f"{c['average']:.2f}"
        spread = " ".join(f"{c['distribution'][k]:>4}" for k in "12345")
        below = "  BELOW TARGET" if c["met"] is False else ""
        return f"{name[:24]:24} {c['answers']:>8} {average:>8} {spread}{below}"

    out = ["", f"Post-call survey (target: average >= {survey['target']:g} of 5)",
           f"{'':24} {'answers':>8} {'average':>8} " + " ".join(f"{k:>4}" for k in "12345"),
           line("center", survey["center"])]
    for dim in ("agent", "group"):
        out += [line(f"{dim} {name}", c) for name, c in survey["by"][dim].items()]
    return out


def render(summary: Summary, form: str) -> str:
    """The summary as ``text``, ``html`` or ``json``."""
    data = summary.as_json()
    if form == "json":
        return json.dumps(data, indent=2) + "\n"
    if form == "html":
        survey = data["survey"]
        rows = [(f"{dim} {name}", c) for dim in ("agent", "group")
                for name, c in survey["by"][dim].items()]
        return HTML.render(s={**data, "survey": {**survey, "rows": rows}})
    return render_text(data)


# ---------------------------------------------------------------------- command line

def _cmd_summary(args: argparse.Namespace, console: Any) -> int:
    from acd.config.load import load_center
    from acd.service.database import open_records_read_only, read_problem, records_source
    from acd.service.settings import load_settings

    settings = load_settings(args.config)
    src = records_source(args.db, args.password_env, settings)
    center = load_center(settings.center)
    store = open_records_read_only(src)
    windows = [h * 3600.0 for h in (args.fcr_window or (24, 168))]
    try:
        summary = summarize(
            read_calls(store, args.since.timestamp() - max(windows), args.until.timestamp()),
            center.config, args.since, args.until, args.interval, args.min_calls,
            groups={a.id: a.group for a in center.agents}, fcr_windows_s=windows,
            survey_target=args.survey_target)
    except store.errors as exc:
        raise read_problem(src, exc) from None
    finally:
        store.close()
    text = render(summary, args.format)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        console.print(f"summary written to {args.out}")
    else:
        print(text, end="")
    return 0


def _check_summary(args: argparse.Namespace) -> list[Problem]:
    problems = output_file("--out", args.out) if args.out else []
    if args.config is not None:
        problems += input_file("--config", args.config)
    if args.until <= args.since:
        problems.append(usage("--until", args.until.isoformat(),
                              f"must be after --since {args.since.isoformat()}"))
    for hours in args.fcr_window or ():
        if not 0 < hours <= 24 * 366:
            problems.append(usage("--fcr-window", f"{hours:g}",
                                  "must be more than 0 and at most a year in hours"))
    if not 1 <= args.survey_target <= 5:
        problems.append(usage("--survey-target", f"{args.survey_target:g}",
                              "must be a score from 1 to 5"))
    if not 1 <= args.interval <= 1440 or 1440 % args.interval:
        problems.append(usage("--interval", str(args.interval),
                              "must divide a day in whole minutes (15, 30, 60, ...)"))
    return problems


def register(sub: Any) -> None:
    """Add ``report summary`` to the ``acd`` subparsers."""
    report = sub.add_parser("report", help="reports from the service's call records")
    report_sub = report.add_subparsers(dest="report_command", required=True)
    p = report_sub.add_parser("summary", help="the shift summary: SL, answer rate, ASA, AHT, "
                              "abandons by queue, language, country, site and interval")
    p.add_argument("--since", type=iso_time, required=True,
                   help="first arrival, ISO 8601 with UTC offset, e.g. 2026-03-02T08:00+03:00")
    p.add_argument("--until", type=iso_time, required=True, help="arrivals before this time")
    add_records_options(p)
    p.add_argument("--format", choices=("text", "html", "json"), default="text")
    p.add_argument("--out", help="write to this file instead of standard output")
    p.add_argument("--interval", type=int, default=30, help="interval length in minutes")
    p.add_argument("--min-calls", type=int, default=10,
                   help="calls an interval needs to count for SL consistency")
    p.add_argument("--fcr-window", type=float, action="append", metavar="HOURS",
                   help="first-call resolution: a repeat within this many hours (repeat the "
                   "option for more figures; default 24 and 168)")
    p.add_argument("--survey-target", type=float, default=SURVEY_TARGET,
                   help="the post-call survey's target average score (default 4.75)")
    p.set_defaults(func=_cmd_summary, validate=_check_summary)
