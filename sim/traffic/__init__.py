"""Traffic for the simulator: forecast (Poisson per interval), call-log and queue_log replay."""

from sim.traffic.arrival import NATIVE_LANGUAGE, Arrival, StaffingEvent, TrafficSource
from sim.traffic.callers import caller_numbers, country_of_number
from sim.traffic.distributions import (
    Constant,
    Distribution,
    Empirical,
    Exponential,
    Gamma,
    LogNormal,
    parse_distribution,
)
from sim.traffic.forecast import (
    ArrivalBatch,
    ForecastSource,
    Overdispersion,
    QueueHandling,
    Stream,
)
from sim.traffic.profile import ReferenceProfile, build_reference_profile
from sim.traffic.queue_log import QueueLogMapping, QueueLogReplay, load_queue_log
from sim.traffic.replay import CallLog, load_call_log
from sim.traffic.spec import TrafficSpec, load_traffic

__all__ = [
    "NATIVE_LANGUAGE", "Arrival", "ArrivalBatch", "CallLog", "Constant", "Distribution",
    "Empirical", "Exponential", "ForecastSource", "Gamma", "LogNormal", "Overdispersion",
    "QueueHandling", "QueueLogMapping", "QueueLogReplay", "ReferenceProfile", "StaffingEvent",
    "Stream", "TrafficSource", "TrafficSpec", "build_reference_profile", "caller_numbers",
    "country_of_number", "load_call_log", "load_queue_log", "load_traffic",
    "parse_distribution",
]
