"""KPI alarms (pure): the alarm record, the raise/clear bookkeeping and the
short-term service-level forecast behind ``SLA_FORECAST``.

An alarm is identified by ``(kind, scope, window)``. Only transitions are ever
reported: a RAISED alarm is not raised again while it is active, and a CLEARED
is only reported for an active alarm.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from acd.erlang import service_level

SLA_BREACH = "SLA_BREACH"
SLA_FORECAST = "SLA_FORECAST"
RAISED = "RAISED"
CLEARED = "CLEARED"

AlarmKey = tuple[str, str, str | None]


@dataclass(frozen=True)
class Alarm:
    """One alarm transition.

    ``scope`` is ``"all"`` or ``"<dim>:<value>"`` (``"line:12345"``,
    ``"queue:12345-general"``, ``"skill:medical"``); ``window`` the KPI window
    name (``"15m"``, ``"today"``...) or None for the forecast; ``value`` the rate
    that caused the transition (None when a window emptied), ``target`` the
    configured rate target.
    """

    kind: str
    state: str
    scope: str
    window: str | None
    value: float | None
    target: float
    at: float
    message: str

    @property
    def key(self) -> AlarmKey:
        return (self.kind, self.scope, self.window)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)


class AlarmBook:
    """The set of active alarms; turns wanted states into transitions."""

    def __init__(self) -> None:
        self._active: dict[AlarmKey, Alarm] = {}

    def is_active(self, kind: str, scope: str, window: str | None) -> bool:
        return (kind, scope, window) in self._active

    def record(self, alarm: Alarm) -> Alarm | None:
        """Apply a RAISED or CLEARED alarm; return it if it changed the state, else None."""
        if alarm.state == RAISED:
            if alarm.key in self._active:
                return None
            self._active[alarm.key] = alarm
            return alarm
        if alarm.state == CLEARED:
            if self._active.pop(alarm.key, None) is None:
                return None
            return alarm
        raise ValueError(f"alarm state must be {RAISED} or {CLEARED}, got {alarm.state!r}")

    def active(self) -> list[Alarm]:
        """The active alarms (their RAISED records), oldest first."""
        return sorted(self._active.values(), key=lambda a: (a.at, a.kind, a.scope))


@dataclass(frozen=True)
class ForecastInputs:
    """What the forecast needs to know about one scope right now.

    ``serving_agents`` are the agents taking calls (logged in and not paused,
    free or busy); ``free_agents`` the part of them free right now.
    ``calls_per_hour`` the recent arrival rate and ``aht_s`` the recent
    average handling time. ``waits_s`` (optional) are the current waits of
    the callers in the queue, used instead of ``waiting`` / ``longest_wait_s``
    when given; without them the ``waiting`` callers are assumed spread evenly
    from ``longest_wait_s`` down to 0 s.
    """

    waiting: int
    free_agents: int
    serving_agents: int
    calls_per_hour: float
    aht_s: float
    longest_wait_s: float
    waits_s: tuple[float, ...] = ()


def _current_waits(inputs: ForecastInputs) -> list[float]:
    """Waits of the queued callers, longest (first in line) first."""
    if inputs.waits_s:
        return sorted(inputs.waits_s, reverse=True)
    n = inputs.waiting
    if n <= 0:
        return []
    if n == 1:
        return [inputs.longest_wait_s]
    return [inputs.longest_wait_s * (n - 1 - k) / (n - 1) for k in range(n)]


def forecast_service_level(
    inputs: ForecastInputs, *, target_s: float, horizon_s: float = 900.0
) -> float:
    """Expected share of the next ``horizon_s`` seconds' callers answered within ``target_s``.

    Method: two groups of callers, weighted by their number.

    1. Callers already waiting, served first-in-first-out. The first
       ``free_agents`` of them are answered now. Caller k beyond those waits
       for the (k - free_agents + 1)-th agent to become free; with all
       ``serving_agents`` busy and exponential handling times an agent frees up
       every ``aht_s / serving_agents`` seconds on average, so its expected
       extra wait is ``(k - free_agents + 1) * aht_s / serving_agents``. A
       caller whose current wait + expected extra wait exceeds ``target_s`` is
       counted as a miss (with no serving agent at all every one of them misses).
    2. Callers who will arrive in the horizon, ``calls_per_hour * horizon_s /
       3600`` of them, answered in time with the Erlang C service level of
       ``serving_agents`` at ``calls_per_hour`` and ``aht_s``
       (:func:`acd.erlang.service_level`; 0 when the staff cannot keep up).

    Returns (hits of group 1 + Erlang C level × size of group 2) / (size of
    both); 1.0 when nobody waits and nobody is expected.
    """
    if horizon_s < 0 or inputs.aht_s < 0 or inputs.calls_per_hour < 0:
        raise ValueError(f"horizon_s, aht_s and calls_per_hour must be >= 0: {inputs}, {horizon_s}")
    serving = max(inputs.serving_agents, inputs.free_agents, 0)
    free = max(inputs.free_agents, 0)
    hits = 0
    waits = _current_waits(inputs)
    for position, wait_s in enumerate(waits):
        if position < free:
            extra_s = 0.0
        elif serving == 0:
            extra_s = math.inf
        else:
            extra_s = (position - free + 1) * inputs.aht_s / serving
        if wait_s + extra_s <= target_s:
            hits += 1
    expected_arrivals = inputs.calls_per_hour * horizon_s / 3600.0
    if expected_arrivals > 0:
        arrivals_level = service_level(serving, inputs.calls_per_hour, inputs.aht_s, target_s)
    else:
        arrivals_level = 1.0
    total = len(waits) + expected_arrivals
    if total == 0:
        return 1.0
    return (hits + arrivals_level * expected_arrivals) / total
