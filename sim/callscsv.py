"""A replication's call rows as CSV (``acd sim run --calls-csv``), written as the run goes.

One row per call, in the order calls end (sort by ``arrival_s`` for the order of the call
log); times in seconds from the run start written exactly (``repr``), so that reading the file
back gives the same numbers, and names instead of codes. An empty ``queued_s`` means the call
never reached a queue; an empty ``site`` that it was not answered.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import TextIO

import numpy as np

from sim.records import NO_SITE, OUTCOMES, CallLog

#: The columns, in order.
COLUMNS = ("arrival_s", "queued_s", "wait_s", "talk_s", "queue", "language", "country", "site",
           "outcome")


def _time(value: float) -> str:
    return "" if math.isnan(value) else repr(value)


def _name(names: tuple[str, ...], code: int) -> str:
    """The name of a code; blank for none (-1: an unknown queue or language, no site)."""
    return names[code] if code >= 0 else ""


class CallsCsv:
    """Appends batches of ended calls to a CSV file; :meth:`close` when the run is over."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: TextIO = self.path.open("w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._fh)
        self._writer.writerow(COLUMNS)

    def write(self, calls: CallLog) -> None:
        """Append ``calls``' rows."""
        names = (calls.queues, calls.languages, calls.countries)
        sites = calls.sites
        self._writer.writerows(
            (repr(arrival), _time(queued), repr(wait), repr(talk), _name(names[0], q),
             _name(names[1], lang), _name(names[2], c), _name(sites, site), OUTCOMES[o])
            for arrival, queued, wait, talk, q, lang, c, site, o in zip(
                calls.arrival_s.tolist(), calls.queued_s.tolist(), calls.wait_s.tolist(),
                calls.talk_s.tolist(), calls.queue.tolist(), calls.language.tolist(),
                calls.country.tolist(), calls.site.tolist(), calls.outcome.tolist(),
                strict=True))

    def close(self) -> None:
        """Flush and close the file."""
        self._fh.close()


def read_calls_csv(path: str | Path, queues: tuple[str, ...], languages: tuple[str, ...],
                   countries: tuple[str, ...], sites: tuple[str, ...]) -> CallLog:
    """A call log from a file :class:`CallsCsv` wrote, with the codes of the names given."""
    with Path(path).open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))

    def floats(key: str) -> np.ndarray:
        return np.array([math.nan if r[key] == "" else float(r[key]) for r in rows],
                        dtype=np.float64)

    def codes(key: str, names: tuple[str, ...], blank: int = -1) -> np.ndarray:
        return np.array([blank if r[key] == "" else names.index(r[key]) for r in rows],
                        dtype=np.int16)

    return CallLog(
        arrival_s=floats("arrival_s"), queued_s=floats("queued_s"), wait_s=floats("wait_s"),
        talk_s=floats("talk_s"), queue=codes("queue", queues),
        language=codes("language", languages), country=codes("country", countries),
        site=codes("site", sites, NO_SITE),
        outcome=np.array([OUTCOMES.index(r["outcome"]) for r in rows], dtype=np.int8),
        queues=queues, languages=languages, countries=countries, sites=sites)
