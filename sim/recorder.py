"""What a replication writes down while it runs: call rows, agent time, queue depth samples.

:mod:`sim.engine` decides what happens (callers, agents, the router and each call's machine);
this module only records it and turns the record into a :class:`~sim.records.RunResult` at the
end. It reads the router's domain events (``CallEnded``, ``AgentStateChanged``) and a few facts
the router never sees (calls that end in the IVR, queue depth samples).

It is called for every agent state change and every call, so it is compiled with the engine
(``setup.py``): native fields, lists and a buffer of packed call rows while the run goes,
numpy once per batch of calls.

Memory stays bounded by the run's intervals, not its calls: every :data:`CALL_BATCH` ended
calls, the batch is counted into per-interval KPI tallies (:class:`sim.kpi.TallyAccumulator`),
its waits are kept (20 bytes a call, for percentiles), its rows go to a CSV file when asked
(``calls_csv``), and the rows are dropped unless the call log is asked for (``keep_calls``).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Final

import numpy as np

from acd.config.schema import CenterConfig
from acd.core.model import AgentProfile, AgentState, AgentStateChanged, CallEnded, Outcome
from acd.core.router import OTHER
from sim.callscsv import CallsCsv
from sim.kpi import TallyAccumulator
from sim.records import (
    ABANDONED,
    AGENT_TIME,
    ANSWERED,
    BUSY,
    CALLBACK,
    CALLBACK_WORK,
    CALLBACK_WORK_REASON,
    NO_SITE,
    OVERFLOWED,
    PAUSED,
    READY,
    AgentTime,
    CallLog,
    RunResult,
    WaitLog,
)

if TYPE_CHECKING:
    # Compiled, a native 64-bit integer (list positions); annotations only, never imported at
    # run time.
    from mypy_extensions import i64

# sim.records is not compiled: its codes, read once into typed finals here, are C integers in
# the compiled recorder instead of a module dictionary lookup (and a boxed int) per use.
_READY: Final[int] = READY
_BUSY: Final[int] = BUSY
_PAUSED: Final[int] = PAUSED
_CALLBACK_WORK_REASON: Final[str] = CALLBACK_WORK_REASON
_ANSWERED: Final[int] = ANSWERED
_ABANDONED: Final[int] = ABANDONED
_CALLBACK: Final[int] = CALLBACK
_OVERFLOWED: Final[int] = OVERFLOWED
_CALLBACK_WORK: Final[int] = CALLBACK_WORK
_NO_SITE: Final[int] = NO_SITE

#: How often queue depth is sampled (simulated seconds); final, so compiled code has it inline.
DEPTH_SAMPLE_S: Final = 60.0
#: Ended calls counted into the tallies at a time (bounds the rows held at once).
CALL_BATCH = 1 << 16

#: The call log's columns and their types.
_COLUMN_TYPES: dict[str, type] = {
    "arrival_s": np.float64, "queued_s": np.float64, "wait_s": np.float64,
    "talk_s": np.float64, "queue": np.int16, "language": np.int16, "country": np.int16,
    "site": np.int16, "outcome": np.int8, "repeat": np.int8}
# A call row as packed bytes: the four times, then the six small codes in one integer (see
# _pack), native byte order and sizes, no padding. A batch's rows are written into one buffer
# and read back as columns by numpy at once; one integer instead of six fields spares
# ``pack_into`` five conversions and the caller five boxed arguments per row.
_ROW = struct.Struct("@4dq")
_ROW_DTYPE = np.dtype([("arrival_s", np.float64), ("queued_s", np.float64),
                       ("wait_s", np.float64), ("talk_s", np.float64), ("codes", np.int64)])
assert _ROW.size == _ROW_DTYPE.itemsize
_ROW_SIZE: Final[int] = _ROW.size
_PACK_ROW: Final = _ROW.pack_into
#: Bits of a queue, language, country or site code in a row's codes (each stored plus one, so
#: -1, unknown or no site, is 0); the outcome (8 bits) and the repeat flag follow them. The
#: whole stays under 2**62, an unboxed integer in compiled code.
_CODE_BITS: Final = 12
_CODE_MASK: Final = (1 << _CODE_BITS) - 1
_OUTCOME_SHIFT: Final = 4 * _CODE_BITS
_REPEAT_SHIFT: Final = _OUTCOME_SHIFT + 8
#: The most names a code can stand for (queues, languages, countries or sites).
MAX_CODES: Final = _CODE_MASK - 1


def _groups(queue: int, language: int, country: int) -> int:
    """A call's queue, language and country codes as the low bits of its row's codes."""
    return ((queue + 1) | (language + 1) << _CODE_BITS
            | (country + 1) << 2 * _CODE_BITS)


def _pack(groups: int, site: int, outcome: int, repeat: int) -> int:
    """A row's codes: ``groups`` (:func:`_groups`), the site, the outcome and the repeat flag."""
    return (groups | (site + 1) << 3 * _CODE_BITS | outcome << _OUTCOME_SHIFT
            | repeat << _REPEAT_SHIFT)


def _unpack(codes: np.ndarray) -> dict[str, np.ndarray]:
    """The code columns of a batch of rows, as the call log types them."""
    def field(shift: int) -> np.ndarray:
        return ((codes >> shift & _CODE_MASK) - 1).astype(np.int16)

    return {"queue": field(0), "language": field(_CODE_BITS), "country": field(2 * _CODE_BITS),
            "site": field(3 * _CODE_BITS),
            "outcome": (codes >> _OUTCOME_SHIFT & 0xFF).astype(np.int8),
            "repeat": (codes >> _REPEAT_SHIFT & 1).astype(np.int8)}


class _Clock:
    """One agent's open span of agent time: its key (site x category; -1 when logged out)
    and since when, in native fields (no list lookups or boxed float per state change)."""

    def __init__(self, base: int) -> None:
        #: The first key of the agent's site.
        self.base = base
        self.key = -1
        self.since = 0.0
        #: The interval ``since`` lies in.
        self.interval = 0


class Recorder:
    """One replication's record: a row per offered call, agent seconds per interval, site and
    category, and queue depths once a simulated minute."""

    def __init__(self, config: CenterConfig, agents: Sequence[AgentProfile], horizon_s: float,
                 interval_s: float, keep_calls: bool = True, calls_csv: str | None = None,
                 call_batch: int = CALL_BATCH) -> None:
        self.config = config
        self.horizon_s = horizon_s
        self.interval_s = interval_s
        self.queues = tuple(config.queues)
        self.languages = tuple(config.languages)
        self.countries = (*config.countries, OTHER)
        self.sites = tuple(config.sites)
        self._code_q = {n: i for i, n in enumerate(self.queues)}
        self._code_l = {n: i for i, n in enumerate(self.languages)}
        self._code_c = {n: i for i, n in enumerate(self.countries)}
        self._code_s = {n: i for i, n in enumerate(self.sites)}
        #: The code of a country not in the config ("other", the last).
        self._other_c = len(self.countries) - 1
        for kind, names in (("queues", self.queues), ("languages", self.languages),
                            ("countries", self.countries), ("sites", self.sites)):
            if len(names) > MAX_CODES:
                raise ValueError(f"The simulator records at most {MAX_CODES} {kind}; the "
                                 f"config has {len(names)}.")
        n_cat = len(AGENT_TIME)
        # Agent time is accrued as states change: seconds per (interval, site x category) in a
        # flat list, and each agent's open span, by the agent's index in ``agents`` (the order
        # the spans still open at the end are closed in).
        self._agent_site = [self._code_s[a.site] for a in agents]
        self._clock_list = [_Clock(site * n_cat) for site in self._agent_site]
        self._agent_index = {a.id: i for i, a in enumerate(agents)}
        self._n_int = math.ceil(horizon_s / interval_s)
        self._n_keys = len(self.sites) * n_cat
        self._acc = [0.0] * (self._n_int * self._n_keys)
        # The interval of the last state change, [_now_lo, _now_hi): state changes come in
        # time order, so most fall in it, where a float floor division costs 170 instructions.
        # Only for whole seconds per interval, whose multiples are exact floats: there the
        # bounds test gives what ``t // interval_s`` gives.
        self._now_k = -1
        self._now_lo = 0.0
        self._now_hi = 0.0
        self._whole_interval = interval_s.is_integer() and 0.0 < interval_s < 2.0 ** 31
        # Queue depth samples are summed (exact: integers) and maxed per (interval, queue) as
        # they come, so a long run keeps no list per sampled minute.
        self._n_samples = 0
        self._depth_n = [0] * self._n_int
        self._depth_sum = [0] * (self._n_int * len(self.queues))
        self._depth_top = [0] * (self._n_int * len(self.queues))
        self._rows = bytearray(_ROW_SIZE * call_batch)
        self._n_rows = 0
        sl = config.center.service_level
        self._tally = TallyAccumulator(
            {"queues": self.queues, "languages": self.languages, "countries": self.countries,
             "sites": self.sites}, horizon_s, interval_s, sl.threshold_s,
            tuple((config.sl_for(q).threshold_s, config.sl_for(q).target) for q in self.queues),
            config.center.short_abandon_s)
        self._keep_calls = keep_calls
        self._kept: list[CallLog] = []
        self._waits: list[WaitLog] = []
        self._csv = CallsCsv(calls_csv) if calls_csv is not None else None
        self._n_calls = 0
        self._call_batch = call_batch

    # ------------------------------------------------------------------------- calls

    def group_code(self, queue: str, language: str, country: str) -> int:
        """The codes of a call's queue, language and country, in one integer, as
        :meth:`call_ended` takes them (a name not in the config: unknown; a country: other)."""
        return _groups(self._q(queue), self._l(language), self._c(country))

    def agent_index(self, agent_id: str) -> int:
        """The index of ``agent_id`` in the roster the recorder was built with, as
        :meth:`agent_state` and :meth:`call_ended` take it."""
        return self._agent_index[agent_id]

    def ivr_ended(self, arrival_s: float, queue: str, language: str, country: str,
                  outcome: int) -> None:
        """A caller who never reached the router (hung up or left in the IVR)."""
        self._row(arrival_s, math.nan, 0.0, 0.0,
                  _pack(self.group_code(queue, language, country), _NO_SITE, outcome, 0))

    def callback_work(self, began_s: float, waited_s: float, talk_s: float, queue: str,
                      language: str, country: str, site: str) -> None:
        """An agent of ``site`` did the outbound call of an accepted callback or a voicemail,
        from ``began_s``, ``waited_s`` after it was due (a row, never an offered call)."""
        self._row(began_s, math.nan, waited_s, talk_s,
                  _pack(self.group_code(queue, language, country), self._code_s[site],
                        _CALLBACK_WORK, 0))

    def call_ended(self, arrival_s: float, o: CallEnded, groups: int, agent: int = -1,
                   repeat: bool = False) -> None:
        """The router ended a call that reached the IVR at ``arrival_s``.

        The caller gives what it already knows of the call as codes, sparing a lookup by name
        per call: ``groups``, the call's :meth:`group_code` (of ``o.queue``, ``o.language``
        and ``o.country``), and ``agent``, the :meth:`agent_index` of ``o.agent_id`` (-1: look
        its site up by name). ``repeat``: a redial of a caller who called the queue before.
        """
        site = _NO_SITE
        if o.outcome is Outcome.ANSWERED:
            code = _ANSWERED
            if o.site:
                site = self._agent_site[agent] if agent >= 0 else self._code_s[o.site]
        elif o.outcome is Outcome.ABANDONED:
            code = _ABANDONED
        elif o.outcome is Outcome.CALLBACK:
            code = _CALLBACK
        else:
            code = _OVERFLOWED
        self._row(arrival_s, o.arrived, o.wait_s, o.talk_s,
                  _pack(groups, site, code, 1 if repeat else 0))

    def _row(self, arrival_s: float, queued_s: float, wait_s: float, talk_s: float,
             codes: int) -> None:
        """Write one call row (``codes``: :func:`_pack`) into the batch; count the batch once
        it is full."""
        _PACK_ROW(self._rows, self._n_rows * _ROW_SIZE, arrival_s, queued_s, wait_s, talk_s,
                  codes)
        self._n_rows += 1
        if self._n_rows >= self._call_batch:
            self._flush()

    def _flush(self) -> None:
        """Count the rows held into the tallies (and the CSV file), then let them go."""
        n = self._n_rows
        if n == 0:
            return
        self._n_rows = 0
        self._n_calls += n
        rows = np.frombuffer(self._rows, dtype=_ROW_DTYPE, count=n)
        # Copies: the buffer is written over by the next batch.
        columns = {f: rows[f].copy() for f in ("arrival_s", "queued_s", "wait_s", "talk_s")}
        columns.update(_unpack(rows["codes"]))
        calls = CallLog(**columns, queues=self.queues, languages=self.languages,
                        countries=self.countries, sites=self.sites)
        self._tally.add(calls)
        offered = ~np.isnan(calls.queued_s) & (calls.queued_s >= 0)
        self._waits.append(WaitLog(calls.queued_s[offered], calls.wait_s[offered],
                                   calls.queue[offered], calls.language[offered], self.queues,
                                   self.languages))
        if self._csv is not None:
            self._csv.write(calls)
        if self._keep_calls:
            self._kept.append(calls)

    # ------------------------------------------------------------------------ agents

    def agent_state(self, o: AgentStateChanged, agent: int) -> None:
        """An agent changed state: close the span of the previous one (``agent``: the
        :meth:`agent_index` of ``o.agent_id``)."""
        # Identity tests on the state, not a dict: an Enum member hashes in Python code.
        state = o.state
        if state is AgentState.READY:
            category = _READY
        elif state is AgentState.PAUSED:
            # An agent doing callback work (an outbound call) is busy, not on a break.
            category = _BUSY if o.reason == _CALLBACK_WORK_REASON else _PAUSED
        elif state is AgentState.LOGGED_OUT:
            category = -1
        else:  # ringing, on a call, wrapping up
            category = _BUSY
        clock = self._clock_list[agent]
        at = o.at
        if clock.key >= 0:
            self._accrue(clock.key, clock.interval, clock.since, at)
        clock.since = at
        clock.interval = self._interval_of(at)
        clock.key = clock.base + category if category >= 0 else -1

    def _interval_of(self, t: float) -> int:
        """``t // interval_s``, from the interval of the last state change when ``t`` is in
        it."""
        if self._now_lo <= t < self._now_hi:
            return self._now_k
        k = int(t // self.interval_s)
        if self._whole_interval and k >= 0:
            self._now_k = k
            self._now_lo = k * self.interval_s
            self._now_hi = (k + 1) * self.interval_s
        return k

    def _accrue(self, key: i64, k: i64, t0: float, t1: float) -> None:
        """Add one agent's span [t0, t1) in ``key`` to the intervals it covers, from the
        interval ``k`` that ``t0`` lies in."""
        interval = self.interval_s
        acc = self._acc
        n_keys: i64 = self._n_keys
        n_int: i64 = self._n_int
        while t0 < t1 and k < n_int:
            end = float(k + 1) * interval
            if t1 < end:
                end = t1
            i = k * n_keys + key
            # Read, add and store as floats: ``+=`` on a list item is a generic (boxed) add.
            total: float = acc[i]
            acc[i] = total + (end - t0)
            t0 = end
            k += 1

    # ------------------------------------------------------------------------ queues

    def depths(self, depths: list[int]) -> None:
        """Every queue's waiting calls, sampled every :data:`DEPTH_SAMPLE_S` from the start."""
        k = int(self._n_samples * DEPTH_SAMPLE_S // self.interval_s)
        self._n_samples += 1
        if k >= self._n_int:
            return
        self._depth_n[k] += 1
        n_q = len(self.queues)
        base = k * n_q
        total = self._depth_sum
        top = self._depth_top
        for q in range(n_q):
            depth = depths[q]
            total[base + q] += depth
            if depth > top[base + q]:
                top[base + q] = depth

    # ------------------------------------------------------------------------ result

    def _q(self, name: str) -> int:
        return self._code_q.get(name, -1)

    def _l(self, name: str) -> int:
        return self._code_l.get(name, -1)

    def _c(self, name: str) -> int:
        return self._code_c.get(name, self._other_c)

    def _agent_seconds(self, now: float) -> np.ndarray:
        """Seconds per (interval, site, category), the spans still open ending ``now``."""
        for clock in self._clock_list:
            if clock.key >= 0:
                self._accrue(clock.key, clock.interval, clock.since, now)
                clock.since = now
                clock.interval = self._interval_of(now)
        return np.array(self._acc, dtype=float).reshape(self._n_int, len(self.sites),
                                                        len(AGENT_TIME))

    def _depth_per_interval(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and maximum calls waiting per (interval, queue); 0 without samples."""
        shape = (self._n_int, len(self.queues))
        counts = np.array(self._depth_n)[:, None]
        mean = np.divide(np.array(self._depth_sum, dtype=float).reshape(shape), counts,
                         out=np.zeros(shape), where=counts > 0)
        return mean, np.array(self._depth_top, dtype=float).reshape(shape)

    def _call_log(self) -> CallLog:
        """Every kept call, in order of arrival (stable: calls arriving together in order of
        their end)."""
        kept = self._kept
        empty = np.zeros(0)
        calls = CallLog(**{f: (np.concatenate([getattr(c, f) for c in kept]) if kept
                               else empty.astype(dtype))
                           for f, dtype in _COLUMN_TYPES.items()},
                        queues=self.queues, languages=self.languages, countries=self.countries,
                        sites=self.sites)
        order = np.argsort(calls.arrival_s, kind="stable")
        return CallLog(**{f: (getattr(calls, f)[order] if f in _COLUMN_TYPES
                              else getattr(calls, f))
                          for f in calls.__dataclass_fields__})

    def _wait_log(self) -> WaitLog:
        parts = self._waits

        def joined(f: str, dtype: type) -> np.ndarray:
            return (np.concatenate([getattr(w, f) for w in parts]) if parts
                    else np.zeros(0, dtype=dtype))

        return WaitLog(joined("queued_s", np.float64), joined("wait_s", np.float64),
                       joined("queue", np.int16), joined("language", np.int16), self.queues,
                       self.languages)

    def result(self, seed: int, start: datetime, now: float, wall_s: float) -> RunResult:
        """The replication's records, agent spans still open closed at ``now``."""
        self._flush()
        if self._csv is not None:
            self._csv.close()
        depth_mean, depth_max = self._depth_per_interval()
        config = self.config
        sl = config.center.service_level
        return RunResult(
            seed=seed, calls=self._call_log() if self._keep_calls else None,
            agent_time=AgentTime(self._agent_seconds(now), self.sites, self.interval_s),
            start_iso=start.isoformat(), duration_s=self.horizon_s,
            interval_s=self.interval_s, threshold_s=sl.threshold_s, target=sl.target,
            queue_sl=tuple((config.sl_for(q).threshold_s, config.sl_for(q).target)
                           for q in self.queues),
            short_abandon_s=config.center.short_abandon_s, wall_s=wall_s,
            queue_depth_mean=depth_mean, queue_depth_max=depth_max,
            tallies=self._tally.tallies(), waits=self._wait_log(), n_calls=self._n_calls)

