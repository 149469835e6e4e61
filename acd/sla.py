"""Live service-level / KPI tracker (pure: no I/O, no clock; times are epoch seconds).

Follows the KPI conventions of :mod:`acd.log_events` and ../shared/DOMAIN.md,
so that a recompute over the event log gives the same numbers:

- A call is *offered* to the line, queue and skill it was first queued with
  and is counted in a window by the time of its queue *outcome*: answered
  (first answer only: a transfer never answers twice), abandoned, overflowed
  to a callback, or lost. A call still waiting is "waiting now", in no window.
  The outcome is the earliest one: a later report (lost after the answer) is
  ignored, an earlier one reported late replaces it, as in ``acd.kpi_sql``.
- The 15 s clock starts at first queue entry; ``wait_s`` of an outcome is
  taken as reported. ``wait_s <= answer_target_s`` is within target, so
  exactly 15.0 s counts as within.
- A short abandon is an abandon with ``wait_s <= short_abandon_s`` (exactly
  5.0 s is short, the same ``<=`` as the 15 s target), excluded from the
  denominators of the rates.
- Rates share one denominator, offered - short abandons: 15秒接通率 =
  within target / it, 人工接通率 = answered / it, abandon rate = (abandoned -
  short abandons) / it. Short abandons leave the abandon rate too, so that
  answer + abandon + (callback + lost) shares add up to 100 % and a caller
  who hung up at once (a misdial) counts nowhere. The Asterisk-style
  ``rate_15s_of_answered`` (within / answered) is shown beside, named as such.
- Rolling windows are closed intervals ``[now - w, now]`` over outcome time;
  "today" is ``[local midnight in day_tz, now]``; "24h" is ``[now - 86400, now]``.
- Talk time counts answered calls by the time they ended; AHT (talk + all
  wrap-ups of the call) by the time the handling completed: the end of the
  last wrap-up, or the call end while no wrap-up is recorded (so a call's
  talk-only entry moves to its wrap-up end when one arrives).
- An overflow to another queue (:meth:`ServiceLevelTracker.call_moved`) keeps
  the call waiting and keeps its KPI attribution on the first queue: the
  clock did not restart, and the first queue is the one that failed to answer
  in time. "Waiting now" shows it in the queue where it waits at present.

Every query is answered from per-scope running sums (one scope per
``all`` / ``line:<v>`` / ``queue:<v>`` / ``skill:<v>``), so a window costs two
binary searches whatever its size; an input appends to at most four scopes
(O(1) amortised, plus a binary search for a late one).
"""

from __future__ import annotations

import itertools
import logging
import math
import operator
from array import array
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from acd import log_events as ev
from acd.alarms import (
    CLEARED,
    RAISED,
    SLA_BREACH,
    SLA_FORECAST,
    Alarm,
    AlarmBook,
    ForecastInputs,
    forecast_service_level,
)

log = logging.getLogger(__name__)

DAY_S = 86400.0
WINDOW_NAMES = ("15m", "30m", "60m", "today", "24h")
"""Window names with the default settings: the rolling ``windows_s``, then today and 24 h."""
TODAY = "today"
LAST_24H = "24h"
DIMENSIONS = ("all", "line", "queue", "skill")

AGENT_STATES = ("LOGGED_OUT", "AVAILABLE", "RESERVED", "RINGING", "ON_CALL", "WRAP_UP", "PAUSED")
BUSY_STATES = frozenset({"RINGING", "ON_CALL", "WRAP_UP"})
"""Occupancy numerator: time spent on a call (ringing counts: the agent is committed to it)."""
STAFFED_STATES = frozenset({"AVAILABLE", "RESERVED", "RINGING", "ON_CALL", "WRAP_UP"})
"""Occupancy denominator: logged-in time minus PAUSED time."""

ANSWERED = "ANSWERED"
ABANDONED = "ABANDONED"
OVERFLOWED = "OVERFLOWED_TO_CALLBACK"
LOST = "LOST"
_OUTCOME_RANK = {ANSWERED: 0, ABANDONED: 1, OVERFLOWED: 2, LOST: 3}
"""Which outcome is the call's when two carry the same time (the recompute's order)."""

# Columns of the outcome series.
_OFFERED, _ANSWERED, _WITHIN, _ABANDONED, _SHORT, _OVERFLOWED, _LOST, _WAIT_SUM = range(8)
_OUTCOME_WIDTH = 8
# Columns of the handling series.
_HANDLE_SUM, _HANDLE_COUNT, _TALK_SUM, _TALK_COUNT = range(4)
_HANDLING_WIDTH = 4

_PRUNE_EVERY_S = 60.0
_COMPACT_AFTER = 1024


def window_name(seconds: int) -> str:
    """Display name of a rolling window: 900 -> "15m", 45 -> "45s"."""
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"


def scope_key(dim: str, value: str | None) -> str:
    """``"all"`` or ``"<dim>:<value>"``, the scope names used by snapshots and alarms."""
    if dim == "all":
        return "all"
    if dim not in DIMENSIONS:
        raise ValueError(f"dim must be one of {DIMENSIONS}, got {dim!r}")
    if value is None:
        raise ValueError(f"dim {dim!r} needs a value")
    return f"{dim}:{value}"


@dataclass(frozen=True)
class KpiSettings:
    """KPI thresholds (DOMAIN.md asks for them to be configurable)."""

    answer_target_s: float = 15.0
    short_abandon_s: float = 5.0
    rate_target: float = 0.90
    talk_target_s: float = 400.0
    windows_s: tuple[int, ...] = (900, 1800, 3600)
    day_tz: str = "Asia/Shanghai"
    """"today" is the local calendar day in this zone."""
    forecast_horizon_s: float = 900.0
    min_outcomes: int = 10
    """No SLA_BREACH is raised on fewer outcomes (offered - short abandons) than
    this: two calls in time out of three is 67 %, which says nothing about the
    service, and night-shift alarms on such samples teach people to ignore alarms."""
    retention_s: float = DAY_S
    """Outcomes are kept at least this long, and always since local midnight."""
    alarm_windows: tuple[str, ...] | None = None
    """Windows watched by SLA_BREACH; None = every window."""

    def __post_init__(self) -> None:
        for name in ("answer_target_s", "short_abandon_s", "talk_target_s", "forecast_horizon_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"KpiSettings.{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 < self.rate_target <= 1.0:
            raise ValueError(f"KpiSettings.rate_target must be in (0, 1], got {self.rate_target}")
        if not self.windows_s or any(w <= 0 for w in self.windows_s):
            raise ValueError(
                f"KpiSettings.windows_s must be positive seconds, got {self.windows_s}"
            )
        if self.min_outcomes < 1:
            raise ValueError(f"KpiSettings.min_outcomes must be >= 1, got {self.min_outcomes}")
        if self.retention_s < max(DAY_S, *self.windows_s):
            raise ValueError(
                f"KpiSettings.retention_s must cover 24 h and every window, got {self.retention_s}"
            )
        try:
            ZoneInfo(self.day_tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"KpiSettings.day_tz: unknown time zone {self.day_tz!r}") from exc
        if self.alarm_windows is not None:
            unknown = set(self.alarm_windows) - set(self.window_names)
            if unknown:
                raise ValueError(f"KpiSettings.alarm_windows: unknown windows {sorted(unknown)}")

    @property
    def window_names(self) -> tuple[str, ...]:
        """The rolling windows' names, then "today" and "24h"."""
        return (*(window_name(w) for w in self.windows_s), TODAY, LAST_24H)


@dataclass(frozen=True)
class WindowStats:
    """KPIs of one scope over one window; rates and means are None when their denominator is 0."""

    offered: int
    answered: int
    answered_within_target: int
    abandoned: int
    short_abandons: int
    overflowed_to_callback: int
    lost: int
    rate_15s: float | None
    """15秒接通率: answered within target / (offered - short abandons)."""
    rate_15s_of_answered: float | None
    """Asterisk-style service level: answered within target / answered."""
    answer_rate: float | None
    """人工接通率: answered / (offered - short abandons)."""
    abandon_rate: float | None
    """(abandoned - short abandons) / (offered - short abandons)."""
    asa_s: float | None
    """Mean wait of the answered calls."""
    aht_s: float | None
    """Mean talk + wrap-up of the calls whose handling completed in the window."""
    avg_talk_s: float | None
    """Mean talk of the answered calls that ended in the window."""
    talk_target_s: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 else None


class _Series:
    """Time-ordered entries with running sums of a few columns.

    ``sum(start, end)`` is the difference of two running sums found by binary
    search. The running sums are one flat ``array("d")``, row after row, so
    appending a row or reading one is a C-level slice. Entries arrive almost in
    time order (append); a late entry is inserted and the running sums after it
    are shifted, which is cheap because late entries land near the end. Old
    rows are dropped by moving ``_head`` and compacting now and then.
    """

    __slots__ = ("_base", "_head", "_sums", "_times", "_width")

    def __init__(self, width: int) -> None:
        if width < 1:
            raise ValueError(f"a series needs at least one column, got {width}")
        self._width = width
        self._times = array("d")
        self._sums = array("d")
        self._head = 0
        self._base = array("d", [0.0] * width)

    def __len__(self) -> int:
        return len(self._times) - self._head

    def _row(self, index: int) -> array[float]:
        """Running sums up to and including row ``index`` (the base before the head)."""
        if index < self._head:
            return self._base
        width = self._width
        return self._sums[index * width : (index + 1) * width]

    def add(self, at: float, values: Sequence[float]) -> None:
        """Add ``values`` at time ``at`` (negative values retract an earlier entry)."""
        times, head, width, sums = self._times, self._head, self._width, self._sums
        if len(times) > head and times[-1] < at:
            # The usual case: entries come in time order.
            times.append(at)
            sums.extend(map(operator.add, sums[-width:], values))
            return
        index = bisect_right(times, at, head)
        if index > head and times[index - 1] == at:
            # Same instant as an existing row: fold into it (window sums only see times).
            first = index - 1
        else:
            times.insert(index, at)
            position = index * width
            sums[position:position] = array("d", map(operator.add, self._row(index - 1), values))
            first = index + 1
        # Late entries land near the end, so few running sums follow to be shifted.
        for column, value in enumerate(values):
            if value:
                for later in range(first * width + column, len(sums), width):
                    sums[later] += value

    def _bounds(self, start: float, end: float) -> tuple[int, int]:
        return (
            bisect_left(self._times, start, self._head),
            bisect_right(self._times, end, self._head),
        )

    def count(self, start: float, end: float) -> int:
        """Entries in ``[start, end]``."""
        low, high = self._bounds(start, end)
        return max(high - low, 0)

    def sum(self, start: float, end: float) -> list[float]:
        """Column sums over the entries in ``[start, end]``."""
        low, high = self._bounds(start, end)
        if high <= low:
            return [0.0] * self._width
        return list(map(operator.sub, self._row(high - 1), self._row(low - 1)))

    def differences(self, start: float, end: float, column_indexes: Sequence[int]) -> list[float]:
        """``sum(start, end)`` restricted to some columns (the hot path reads only those)."""
        low, high = self._bounds(start, end)
        if high <= low:
            return [0.0] * len(column_indexes)
        width, sums = self._width, self._sums
        upper = (high - 1) * width
        if low > self._head:
            lower = (low - 1) * width
            return [sums[upper + c] - sums[lower + c] for c in column_indexes]
        return [sums[upper + c] - self._base[c] for c in column_indexes]

    def rate_counts(self, starts: Sequence[float], end: float) -> list[tuple[float, float]]:
        """(answered within target, offered - short abandons) of an outcome series over
        ``[start, end]`` for each start: the alarm check's hot path, one search for the end.
        Counts are sums of 1.0s, exact in floating point."""
        times, head, width, sums = self._times, self._head, self._width, self._sums
        high = bisect_right(times, end, head)
        if high <= head:
            return [(0.0, 0.0)] * len(starts)
        upper = (high - 1) * width
        within = sums[upper + _WITHIN]
        counted = sums[upper + _OFFERED] - sums[upper + _SHORT]
        base = self._base
        out = []
        for start in starts:
            low = bisect_left(times, start, head, high)
            if low >= high:
                out.append((0.0, 0.0))
            elif low > head:
                lower = (low - 1) * width
                out.append(
                    (
                        within - sums[lower + _WITHIN],
                        counted - sums[lower + _OFFERED] + sums[lower + _SHORT],
                    )
                )
            else:
                out.append((within - base[_WITHIN], counted - base[_OFFERED] + base[_SHORT]))
        return out

    def prune(self, cutoff: float) -> None:
        """Drop the entries before ``cutoff``."""
        new_head = bisect_left(self._times, cutoff, self._head)
        if new_head == self._head:
            return
        self._base = self._row(new_head - 1)
        self._head = new_head
        if new_head == len(self._times) or (
            new_head >= _COMPACT_AFTER and 2 * new_head >= len(self._times)
        ):
            self._compact()

    def _compact(self) -> None:
        head, width = self._head, self._width
        del self._times[:head]
        # Rebasing the running sums on 0 keeps them small, so differences stay exact.
        kept = self._sums[head * width :]
        self._sums = array("d", map(operator.sub, kept, itertools.cycle(self._base)))
        self._base = array("d", [0.0] * width)
        self._head = 0


class _Times:
    """Sorted event times (queue entries), to count arrivals in a window."""

    __slots__ = ("_head", "_times")

    def __init__(self) -> None:
        self._times = array("d")
        self._head = 0

    def __len__(self) -> int:
        return len(self._times) - self._head

    def add(self, at: float) -> None:
        times = self._times
        if not times or times[-1] <= at:
            times.append(at)
        else:
            times.insert(bisect_right(times, at, self._head), at)

    def count(self, start: float, end: float) -> int:
        """Entries in ``[start, end]``."""
        low = bisect_left(self._times, start, self._head)
        return max(bisect_right(self._times, end, self._head) - low, 0)

    def prune(self, cutoff: float) -> None:
        """Drop the entries before ``cutoff``."""
        self._head = bisect_left(self._times, cutoff, self._head)
        if self._head == len(self._times) or (
            self._head >= _COMPACT_AFTER and 2 * self._head >= len(self._times)
        ):
            del self._times[: self._head]
            self._head = 0


@dataclass(slots=True)
class _Scope:
    outcomes: _Series = field(default_factory=lambda: _Series(_OUTCOME_WIDTH))
    handling: _Series = field(default_factory=lambda: _Series(_HANDLING_WIDTH))
    arrivals: _Times = field(default_factory=_Times)
    waiting: dict[str, float] = field(default_factory=dict)
    """call_id -> first queue entry, for the calls waiting in this scope now."""

    def is_empty(self) -> bool:
        return not (self.outcomes or self.handling or self.arrivals or self.waiting)


def _call_scopes(line: str, queue: str, skill: str | None) -> tuple[str, ...]:
    keys = ("all", f"line:{line}", f"queue:{queue}")
    return keys if skill is None else (*keys, f"skill:{skill}")


@dataclass(slots=True)
class _Call:
    call_id: str
    queued_at: float
    line: str
    queue: str
    skill: str | None
    scopes: tuple[str, ...]
    """Where its KPIs count: the line, queue and skill of first queue entry."""
    waiting_scopes: tuple[str, ...]
    """Where it is shown waiting: as ``scopes`` but with the queue it is in now."""
    outcome: str | None = None
    outcome_at: float | None = None
    outcome_values: tuple[float, ...] = ()
    """The row entered in the outcome series, to retract it if an earlier outcome turns up."""
    wait_s: float | None = None
    agent: str | None = None
    answered: bool = False
    """Some agent answered it (also after another outcome): only then do talk and AHT count."""
    ended_at: float | None = None
    talk_s: float | None = None
    wrap_at: float | None = None
    """End of the last wrap-up."""
    wrap_s: float = 0.0
    """All wrap-ups of the call (one per agent after a transfer)."""
    wraps_seen: set[tuple[str | None, float, float]] = field(default_factory=set)
    handling: tuple[float, float] | None = None
    """(completed at, talk + wrap-up) as currently entered in the handling series."""


@dataclass
class _AgentTimeline:
    times: list[float] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    scopes: list[frozenset[str]] = field(default_factory=list)
    queues: tuple[str, ...] = ()
    lines: tuple[str, ...] = ()
    skills: tuple[str, ...] = ()

    _memberships: tuple[tuple[Any, ...], frozenset[str]] | None = None

    def memberships(self) -> frozenset[str]:
        """The scopes the agent counts in; rebuilt only when its memberships change
        (this runs on every agent state change)."""
        source = (self.queues, self.lines, self.skills)
        cached = self._memberships
        if cached is not None and cached[0] == source:
            return cached[1]
        scopes = frozenset(
            {"all"}
            | {f"queue:{q}" for q in self.queues}
            | {f"line:{v}" for v in self.lines}
            | {f"skill:{s}" for s in self.skills}
        )
        self._memberships = (source, scopes)
        return scopes


def _definitions(settings: KpiSettings) -> dict[str, str]:
    target = f"{settings.answer_target_s:g}"
    short = f"{settings.short_abandon_s:g}"
    return {
        "attribution": (
            "每通电话计入其首次进入的热线、队列和技能; 溢出到其他队列不改变归属。"
            " Each call counts for the line, queue and skill it was first queued with;"
            " an overflow to another queue does not move it."
        ),
        "windows": (
            "按结果时间统计: 滚动窗口 [now - w, now], today = 本地零点 "
            f"({settings.day_tz}) 至今, 24h = [now - 86400, now]."
            " A call is counted by the time of its queue outcome."
        ),
        "offered": (
            "呼入量 offered = calls that entered a queue (clock starts at first queue entry),"
            " each with one outcome: answered, abandoned, overflowed to callback or lost."
        ),
        "short_abandons": f"短时放弃 = abandoned with wait <= {short} s.",
        "rate_15s": (
            f"15秒接通率 = answered with wait <= {target} s / (offered - short abandons);"
            f" exactly {target} s counts as within."
        ),
        "rate_15s_of_answered": (
            f"Asterisk-style service level = answered with wait <= {target} s / answered."
        ),
        "answer_rate": "人工接通率 = answered / (offered - short abandons).",
        "abandon_rate": (
            "放弃率 = (abandoned - short abandons) / (offered - short abandons);"
            " answer + abandon + (overflowed + lost) shares of that denominator add up to 1."
        ),
        "asa_s": "平均应答速度 ASA = mean wait (first queue entry to answer) of answered calls.",
        "aht_s": (
            "平均处理时长 AHT = mean (talk + wrap-up) of calls whose handling completed in"
            " the window (end of wrap-up, or call end while no wrap-up is recorded)."
        ),
        "avg_talk_s": (
            f"平均通话时长 = mean talk of answered calls ended in the window"
            f" (target {settings.talk_target_s:g} s)."
        ),
        "waiting": "排队数 = calls waiting now in the queue they are in now.",
        "longest_wait_s": "最长等待 = now - first queue entry of the longest-waiting call.",
        "occupancy": (
            "占用率 = (RINGING + ON_CALL + WRAP_UP time) / (logged-in time - PAUSED time)"
            " of the agents of the scope over the last hour."
        ),
        "agents_by_state": "坐席状态 = agents of the scope by current state.",
        "sla_breach": (
            f"SLA_BREACH raised when a window's 15秒接通率 < {settings.rate_target:.0%}"
            f" with at least {settings.min_outcomes} calls (offered - short abandons);"
            " cleared when back to target or when the window is empty."
        ),
        "sla_forecast": (
            f"SLA_FORECAST raised when the forecast 15 s rate for the next"
            f" {settings.forecast_horizon_s:g} s (callers waiting + Erlang C for new"
            f" arrivals) < {settings.rate_target:.0%}."
        ),
    }


class ServiceLevelTracker:
    """Live KPIs per line, queue and skill, the SLA alarms, and a JSON snapshot.

    Feed it the call and agent events as they happen (each input is idempotent
    per call: a repeat is ignored, logged at DEBUG); ask for windows, waiting
    calls, occupancy, agents by state, alarms or a full snapshot at any ``now``.

    SLA_BREACH, per scope and window: RAISED when the 15秒接通率 falls below
    ``rate_target`` on at least ``min_outcomes`` counted calls, CLEARED when it
    is back at or above the target (or the window has emptied). Outcome inputs
    return the transitions they cause at the outcome time; ``evaluate_alarms``
    finds those caused by windows rolling, and runs the SLA_FORECAST check.

    Memory: outcomes are kept for ``retention_s`` (24 h) and always since local
    midnight; older ones are dropped as newer inputs arrive.
    """

    def __init__(self, settings: KpiSettings | None = None) -> None:
        self.settings = settings if settings is not None else KpiSettings()
        self._tz = ZoneInfo(self.settings.day_tz)
        self._rolling = {window_name(w): float(w) for w in self.settings.windows_s}
        self._alarm_windows = (
            self.settings.alarm_windows
            if self.settings.alarm_windows is not None
            else self.settings.window_names
        )
        self._scopes: dict[str, _Scope] = {}
        self._calls: dict[str, _Call] = {}
        self._finished: deque[tuple[float, str]] = deque()
        """(outcome time, call_id) in input order, to forget old calls."""
        self._agents: dict[str, _AgentTimeline] = {}
        self._alarms = AlarmBook()
        self._latest = -math.inf
        self._next_prune = -math.inf
        self._day: tuple[float, float] | None = None

    # ------------------------------------------------------------------ inputs

    def call_queued(
        self, call_id: str, *, at: float, line: str, queue: str, skill: str | None
    ) -> None:
        """First queue entry: the call is offered and its 15 s clock starts at ``at``."""
        if call_id in self._calls:
            log.debug("call %s already queued: ignored", call_id)
            return
        scopes = _call_scopes(line, queue, skill)
        self._calls[call_id] = _Call(call_id, at, line, queue, skill, scopes, scopes)
        for key in scopes:
            scope = self._scope(key)
            scope.arrivals.add(at)
            scope.waiting[call_id] = at
        self._advance(at)

    def call_answered(self, call_id: str, *, at: float, wait_s: float, agent: str) -> list[Alarm]:
        """First answer by an agent: the outcome. A second answer (a transfer) is ignored."""
        within = 1.0 if wait_s <= self.settings.answer_target_s else 0.0
        return self._outcome(
            call_id, ANSWERED, at, wait_s, (1.0, 1.0, within, 0.0, 0.0, 0.0, 0.0, wait_s), agent
        )

    def call_abandoned(self, call_id: str, *, at: float, wait_s: float) -> list[Alarm]:
        """Caller hung up while waiting: outcome (short when ``wait_s <= short_abandon_s``)."""
        short = 1.0 if wait_s <= self.settings.short_abandon_s else 0.0
        return self._outcome(
            call_id, ABANDONED, at, wait_s, (1.0, 0.0, 0.0, 1.0, short, 0.0, 0.0, 0.0)
        )

    def call_overflowed_to_callback(self, call_id: str, *, at: float, wait_s: float) -> list[Alarm]:
        """The caller left the queue for a callback: offered, neither answered nor abandoned."""
        return self._outcome(
            call_id, OVERFLOWED, at, wait_s, (1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0)
        )

    def call_lost(self, call_id: str, *, at: float) -> list[Alarm]:
        """The call vanished while the engine was away: an outcome only if it was still waiting."""
        call = self._calls.get(call_id)
        wait_s = at - call.queued_at if call is not None else 0.0
        return self._outcome(call_id, LOST, at, wait_s, (1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0))

    def call_moved(self, call_id: str, *, queue: str) -> None:
        """Overflow to another queue: still waiting (shown there); KPIs stay with the first."""
        call = self._calls.get(call_id)
        if call is None or call.outcome is not None:
            log.debug("call %s moved but not waiting: ignored", call_id)
            return
        for key in call.waiting_scopes:
            self._scope(key).waiting.pop(call_id, None)
        call.waiting_scopes = _call_scopes(call.line, queue, call.skill)
        for key in call.waiting_scopes:
            self._scope(key).waiting[call_id] = call.queued_at

    def call_ended(self, call_id: str, *, at: float, talk_s: float | None) -> None:
        """Hang-up; ``talk_s`` is set when the call was answered (counts for talk time and AHT)."""
        call = self._calls.get(call_id)
        if call is None or call.talk_s is not None or (call.ended_at is not None and not talk_s):
            log.debug("call %s end unknown or repeated: ignored", call_id)
            return
        if call.ended_at is None and call.outcome is None:
            # No outcome was reported (yet): stop showing a departed caller as waiting.
            # A late abandon report still counts; without one the call is in no window,
            # as in a recompute from the log.
            log.warning("call %s ended while waiting, no queue outcome reported", call_id)
            for key in call.waiting_scopes:
                self._scope(key).waiting.pop(call_id, None)
            self._finished.append((at, call_id))
        call.ended_at = at
        if talk_s is not None:
            call.talk_s = talk_s
            self._update_handling(call)
        self._advance(at)

    def wrapup_ended(
        self, call_id: str, *, at: float, wrap_s: float, agent: str | None = None
    ) -> None:
        """End of an agent's after-call work for the call; handling is complete at the last one.

        The wrap-ups of one call add up (one per agent after a transfer); an
        identical input (same ``agent``, ``at`` and ``wrap_s``) is a repeat.
        """
        call = self._calls.get(call_id)
        key = (agent, at, wrap_s)
        if call is None or key in call.wraps_seen:
            log.debug("call %s wrap-up unknown or repeated: ignored", call_id)
            return
        call.wraps_seen.add(key)
        call.wrap_at = at if call.wrap_at is None else max(call.wrap_at, at)
        call.wrap_s += wrap_s
        self._update_handling(call)
        self._advance(at)

    def agent_state(
        self,
        agent: str,
        state: str,
        *,
        at: float,
        queues: Iterable[str] | None = None,
        lines: Iterable[str] | None = None,
        skills: Iterable[str] | None = None,
    ) -> None:
        """An agent's new state (one of ``AGENT_STATES``) from ``at``.

        ``queues`` / ``lines`` / ``skills``: the agent's memberships from now on,
        for the per-scope occupancy and agents by state; None keeps the previous.
        """
        if state not in AGENT_STATES:
            raise ValueError(f"unknown agent state {state!r}; expected one of {AGENT_STATES}")
        timeline = self._agents.setdefault(agent, _AgentTimeline())
        if queues is not None:
            timeline.queues = tuple(queues)
        if lines is not None:
            timeline.lines = tuple(lines)
        if skills is not None:
            timeline.skills = tuple(skills)
        memberships = timeline.memberships()
        if timeline.states and timeline.states[-1] == state and timeline.scopes[-1] == memberships:
            log.debug("agent %s already %s: ignored", agent, state)
            return
        index = bisect_right(timeline.times, at)
        timeline.times.insert(index, at)
        timeline.states.insert(index, state)
        timeline.scopes.insert(index, memberships)
        self._advance(at)

    def apply_event(self, event: ev.LogEvent) -> list[Alarm]:
        """Feed one row of the ACD event log (rebuild after a restart, or replay in tests)."""
        call_id = event.call_id
        if event.kind == ev.AGENT_STATE and event.agent is not None:
            new_state = event.data.get("new")
            if new_state in AGENT_STATES:
                queues = event.data.get("queues")
                self.agent_state(event.agent, str(new_state), at=event.at, queues=queues)
            return []
        if call_id is None:
            return []
        if event.kind == ev.CALL_QUEUED and event.line is not None and event.queue is not None:
            self.call_queued(
                call_id, at=event.at, line=event.line, queue=event.queue, skill=event.skill
            )
        elif event.kind == ev.CALL_ANSWERED and event.wait_s is not None:
            return self.call_answered(
                call_id, at=event.at, wait_s=event.wait_s, agent=event.agent or ""
            )
        elif event.kind == ev.CALL_ABANDONED and event.wait_s is not None:
            return self.call_abandoned(call_id, at=event.at, wait_s=event.wait_s)
        elif event.kind == ev.CALL_OVERFLOWED:
            if event.data.get("to") == "callback":
                wait_s = event.wait_s if event.wait_s is not None else 0.0
                return self.call_overflowed_to_callback(call_id, at=event.at, wait_s=wait_s)
            if event.data.get("to_queue"):
                self.call_moved(call_id, queue=str(event.data["to_queue"]))
        elif event.kind == ev.CALL_LOST:
            return self.call_lost(call_id, at=event.at)
        elif event.kind == ev.CALL_ENDED:
            self.call_ended(call_id, at=event.at, talk_s=event.talk_s)
        elif event.kind == ev.WRAPUP_ENDED and event.wrap_s is not None:
            self.wrapup_ended(call_id, at=event.at, wrap_s=event.wrap_s, agent=event.agent)
        return []

    # ----------------------------------------------------------------- queries

    def window_range(
        self, name_or_range: str | tuple[float, float], *, now: float
    ) -> tuple[float, float]:
        """The closed interval ``[start, end]`` a window name (or a custom range) stands for."""
        if isinstance(name_or_range, tuple):
            start, end = name_or_range
            if start > end:
                raise ValueError(f"window start {start} is after its end {end}")
            return (start, end)
        if name_or_range == TODAY:
            return (self._local_midnight(now), now)
        if name_or_range == LAST_24H:
            return (now - DAY_S, now)
        width = self._rolling.get(name_or_range)
        if width is None:
            raise ValueError(
                f"unknown window {name_or_range!r}; expected one of {self.settings.window_names}"
            )
        return (now - width, now)

    def window(
        self,
        name_or_range: str | tuple[float, float],
        *,
        now: float,
        dim: str = "all",
        value: str | None = None,
    ) -> WindowStats:
        """KPIs of a window (a name or a custom ``(start, end)`` over the retained data)."""
        start, end = self.window_range(name_or_range, now=now)
        return self._stats(scope_key(dim, value), start, end)

    def waiting_now(
        self, *, now: float, dim: str = "all", value: str | None = None
    ) -> tuple[int, float]:
        """(calls waiting, longest wait now in seconds from first queue entry)."""
        scope = self._scopes.get(scope_key(dim, value))
        return _waiting(scope, now)

    def occupancy(
        self, *, now: float, window_s: float = 3600, dim: str = "all", value: str | None = None
    ) -> float | None:
        """(RINGING + ON_CALL + WRAP_UP time) / (logged-in time minus PAUSED time).

        Over ``[now - window_s, now]``, summed over the agents who were members of
        the scope at the time; RESERVED and AVAILABLE count as staffed but not
        busy. None when nobody was staffed.
        """
        key = scope_key(dim, value)
        busy, staffed = self._occupancy_totals(now, window_s, only=key).get(key, (0.0, 0.0))
        return _ratio(busy, staffed)

    def agents_by_state(self, *, dim: str = "all", value: str | None = None) -> dict[str, int]:
        """Agents of the scope (by their current memberships) per current state."""
        key = scope_key(dim, value)
        return self._agents_by_state(only=key).get(key, dict.fromkeys(AGENT_STATES, 0))

    def forecast_inputs(
        self, *, now: float, dim: str = "all", value: str | None = None
    ) -> ForecastInputs:
        """The forecast's inputs for a scope, from what the tracker has been told.

        Arrival rate: calls queued in the last ``forecast_horizon_s``. AHT: the
        last hour's, else the last 24 h's, else ``talk_target_s``.
        """
        key = scope_key(dim, value)
        scope = self._scopes.get(key)
        by_state = self.agents_by_state(dim=dim, value=value)
        horizon = self.settings.forecast_horizon_s
        arrivals = scope.arrivals.count(now - horizon, now) if scope is not None else 0
        aht = self._stats(key, now - 3600.0, now).aht_s
        if aht is None:
            aht = self._stats(key, now - DAY_S, now).aht_s
        waits = tuple(now - queued for queued in scope.waiting.values()) if scope else ()
        return ForecastInputs(
            waiting=len(waits),
            free_agents=by_state["AVAILABLE"],
            serving_agents=sum(by_state[s] for s in STAFFED_STATES),
            calls_per_hour=arrivals * 3600.0 / horizon if horizon > 0 else 0.0,
            aht_s=aht if aht is not None else self.settings.talk_target_s,
            longest_wait_s=max(waits, default=0.0),
            waits_s=waits,
        )

    def active_alarms(self) -> list[Alarm]:
        """The alarms raised and not yet cleared."""
        return self._alarms.active()

    def evaluate_alarms(
        self,
        *,
        now: float,
        forecast_inputs: ForecastInputs | None = None,
        forecast_scope: str = "all",
    ) -> list[Alarm]:
        """Re-check every alarm at ``now``; return the transitions this call caused.

        Needed because windows roll: a breach can clear (or a window empty)
        without any new outcome. Each transition is returned once, by whichever
        call caused it (an outcome input or this). The forecast alarm for
        ``forecast_scope`` is evaluated only when ``forecast_inputs`` is given
        (see :meth:`forecast_inputs`); None leaves it as it is.
        """
        scopes = set(self._scopes) | {
            alarm.scope for alarm in self._alarms.active() if alarm.kind == SLA_BREACH
        }
        transitions = self._check_breaches(sorted(scopes), now)
        if forecast_inputs is not None:
            transitions.extend(self._check_forecast(forecast_scope, forecast_inputs, now))
        return transitions

    def rate_chart(self, *, now: float) -> list[dict[str, Any]]:
        """The 15 s answer rate of each hour of today so far (the contract's
        local day), for the console's chart: one point per hour, the current
        hour up to now."""
        start, _ = self.window_range(TODAY, now=now)
        points = []
        hour = start
        while hour < now:
            end = min(hour + 3600.0, now)
            # Windows are closed intervals: stop a hair short of the next hour
            # so that an outcome exactly on the hour counts once.
            last = end if end == now else end - 1e-6
            stats = self.window((hour, last), now=now)
            points.append(
                {
                    "from": hour,
                    "to": end,
                    "offered": stats.offered,
                    "answered": stats.answered,
                    "rate_15s": stats.rate_15s,
                }
            )
            hour += 3600.0
        return points

    def snapshot(self, *, now: float) -> dict[str, Any]:
        """Everything a wallboard shows, JSON-able.

        ``{"at", "targets", "definitions", "windows": {name: [start, end]},
        "all": <scope>, "line": {value: <scope>}, "queue": {...}, "skill": {...},
        "alarms": [active alarms]}``; a scope is ``{"scope", "windows": {name:
        WindowStats dict}, "waiting", "longest_wait_s", "agents_by_state",
        "occupancy"}``.
        """
        names = self.settings.window_names
        ranges = {name: self.window_range(name, now=now) for name in names}
        occupancy = self._occupancy_totals(now, 3600.0)
        by_state = self._agents_by_state()
        keys = set(self._scopes) | set(by_state) | {"all"}

        def scope_view(key: str) -> dict[str, Any]:
            waiting, longest = _waiting(self._scopes.get(key), now)
            busy, staffed = occupancy.get(key, (0.0, 0.0))
            return {
                "scope": key,
                "windows": {
                    name: self._stats(key, start, end).to_dict()
                    for name, (start, end) in ranges.items()
                },
                "waiting": waiting,
                "longest_wait_s": longest,
                "agents_by_state": by_state.get(key, dict.fromkeys(AGENT_STATES, 0)),
                "occupancy": _ratio(busy, staffed),
            }

        out: dict[str, Any] = {
            "at": now,
            "targets": {
                "answer_target_s": self.settings.answer_target_s,
                "short_abandon_s": self.settings.short_abandon_s,
                "rate_target": self.settings.rate_target,
                "talk_target_s": self.settings.talk_target_s,
                "min_outcomes": self.settings.min_outcomes,
                "day_tz": self.settings.day_tz,
            },
            "definitions": _definitions(self.settings),
            "windows": {name: [start, end] for name, (start, end) in ranges.items()},
            "all": scope_view("all"),
        }
        for dim in DIMENSIONS[1:]:
            prefix = f"{dim}:"
            out[dim] = {
                key[len(prefix) :]: scope_view(key)
                for key in sorted(keys)
                if key.startswith(prefix)
            }
        out["alarms"] = [alarm.to_dict() for alarm in self._alarms.active()]
        return out

    # --------------------------------------------------------------- internals

    def _scope(self, key: str) -> _Scope:
        scope = self._scopes.get(key)
        if scope is None:
            scope = self._scopes[key] = _Scope()
        return scope

    def _outcome(
        self,
        call_id: str,
        outcome: str,
        at: float,
        wait_s: float,
        values: tuple[float, ...],
        agent: str | None = None,
    ) -> list[Alarm]:
        call = self._calls.get(call_id)
        if call is None:
            log.debug("%s for unknown call %s: ignored (never queued)", outcome, call_id)
            return []
        if outcome == ANSWERED and not call.answered:
            call.answered = True
            self._update_handling(call)
        if call.outcome is not None:
            if call.outcome_at is None or (at, _OUTCOME_RANK[outcome]) >= (
                call.outcome_at,
                _OUTCOME_RANK[call.outcome],
            ):
                # A transfer's second answer, or a later report after the outcome.
                log.debug("%s for call %s already %s: ignored", outcome, call_id, call.outcome)
                return []
            # An earlier outcome reported late (after a reconnect): the earliest one is
            # the call's outcome, as in the recompute from the log.
            log.info("call %s: %s at %s replaces %s", call_id, outcome, at, call.outcome)
            retraction = tuple(-value for value in call.outcome_values)
            for key in call.scopes:
                self._scope(key).outcomes.add(call.outcome_at, retraction)
        call.outcome, call.outcome_at, call.outcome_values = outcome, at, values
        call.wait_s, call.agent = wait_s, agent
        for key in call.waiting_scopes:
            self._scope(key).waiting.pop(call_id, None)
        for key in call.scopes:
            self._scope(key).outcomes.add(at, values)
        self._finished.append((at, call_id))
        self._advance(at)
        return self._check_breaches(call.scopes, at)

    def _update_handling(self, call: _Call) -> None:
        """Enter (or move) the call's handling: talk + wrap-up, complete at the later end."""
        if call.talk_s is None or call.ended_at is None or not call.answered:
            return  # only answered calls are handled; a wrap-up alone waits for the talk
        talk_s, ended_at = call.talk_s, call.ended_at
        completed_at = ended_at if call.wrap_at is None else max(ended_at, call.wrap_at)
        handle_s = talk_s + call.wrap_s
        previous = call.handling
        if previous == (completed_at, handle_s):
            return
        for key in call.scopes:
            series = self._scope(key).handling
            if previous is None:
                # First time: the talk counts at call end, whatever comes later.
                if completed_at == ended_at:
                    series.add(ended_at, (handle_s, 1.0, talk_s, 1.0))
                    continue
                series.add(ended_at, (0.0, 0.0, talk_s, 1.0))
            else:
                # Retract the talk-only handling entered at call end: wrap-up is now known.
                series.add(previous[0], (-previous[1], -1.0, 0.0, 0.0))
            series.add(completed_at, (handle_s, 1.0, 0.0, 0.0))
        call.handling = (completed_at, handle_s)

    def _stats(self, key: str, start: float, end: float) -> WindowStats:
        scope = self._scopes.get(key)
        if scope is None:
            o = [0.0] * _OUTCOME_WIDTH
            h = [0.0] * _HANDLING_WIDTH
        else:
            o = scope.outcomes.sum(start, end)
            h = scope.handling.sum(start, end)
        offered = round(o[_OFFERED])
        answered = round(o[_ANSWERED])
        within = round(o[_WITHIN])
        abandoned = round(o[_ABANDONED])
        short = round(o[_SHORT])
        counted = offered - short
        return WindowStats(
            offered=offered,
            answered=answered,
            answered_within_target=within,
            abandoned=abandoned,
            short_abandons=short,
            overflowed_to_callback=round(o[_OVERFLOWED]),
            lost=round(o[_LOST]),
            rate_15s=_ratio(within, counted),
            rate_15s_of_answered=_ratio(within, answered),
            answer_rate=_ratio(answered, counted),
            abandon_rate=_ratio(abandoned - short, counted),
            asa_s=_ratio(o[_WAIT_SUM], answered),
            aht_s=_ratio(h[_HANDLE_SUM], round(h[_HANDLE_COUNT])),
            avg_talk_s=_ratio(h[_TALK_SUM], round(h[_TALK_COUNT])),
            talk_target_s=self.settings.talk_target_s,
        )

    def _local_midnight(self, now: float) -> float:
        day = self._day
        if day is not None and day[0] <= now < day[1]:
            return day[0]
        local_date = datetime.fromtimestamp(now, self._tz).date()
        start = datetime.combine(local_date, time(0), tzinfo=self._tz).timestamp()
        end = datetime.combine(local_date + timedelta(days=1), time(0), tzinfo=self._tz)
        self._day = (start, end.timestamp())
        return start

    def _check_breaches(self, keys: Iterable[str], now: float) -> list[Alarm]:
        # Runs on every outcome, so it reads only the three columns the 15 s rate
        # needs and skips straight past windows that can neither raise nor clear.
        names = self._alarm_windows
        starts = [self.window_range(name, now=now)[0] for name in names]
        target, minimum = self.settings.rate_target, self.settings.min_outcomes
        transitions = []
        for key in keys:
            scope = self._scopes.get(key)
            if scope is None:
                counts = [(0.0, 0.0)] * len(names)
            else:
                counts = scope.outcomes.rate_counts(starts, now)
            for name, (within, counted) in zip(names, counts, strict=True):
                below = counted > 0 and within / counted < target
                if self._alarms.is_active(SLA_BREACH, key, name):
                    if below:
                        continue
                elif counted < minimum or not below:
                    continue
                transition = self._breach_transition(key, name, round(within), round(counted), now)
                if transition is not None:
                    transitions.append(transition)
        return transitions

    def _breach_transition(
        self, scope: str, window: str, within: int, counted: int, at: float
    ) -> Alarm | None:
        target = self.settings.rate_target
        rate = _ratio(within, counted)
        label = f"{scope} {window}"
        if not self._alarms.is_active(SLA_BREACH, scope, window):
            if rate is None or counted < self.settings.min_outcomes or rate >= target:
                return None
            message = (
                f"15秒接通率低于目标 / 15-s answer rate below target: {label}"
                f" {rate:.1%} < {target:.1%} ({within}/{counted} calls)"
            )
            return self._alarms.record(
                Alarm(SLA_BREACH, RAISED, scope, window, rate, target, at, message)
            )
        # Clearing needs no minimum: back at target, or nothing left in the window to judge.
        if rate is not None and rate < target:
            return None
        if rate is None:
            message = f"15秒接通率告警解除 / SLA alarm cleared: {label} has no calls left"
        else:
            message = (
                f"15秒接通率恢复 / 15-s answer rate back to target: {label}"
                f" {rate:.1%} >= {target:.1%}"
            )
        return self._alarms.record(
            Alarm(SLA_BREACH, CLEARED, scope, window, rate, target, at, message)
        )

    def _check_forecast(self, scope: str, inputs: ForecastInputs, now: float) -> list[Alarm]:
        target = self.settings.rate_target
        level = forecast_service_level(
            inputs,
            target_s=self.settings.answer_target_s,
            horizon_s=self.settings.forecast_horizon_s,
        )
        detail = (
            f"{scope} next {self.settings.forecast_horizon_s:g} s: {level:.1%}"
            f" vs {target:.1%} ({inputs.waiting} waiting, {inputs.free_agents} free,"
            f" {inputs.serving_agents} serving, {inputs.calls_per_hour:g} calls/h)"
        )
        if level < target:
            alarm = Alarm(
                SLA_FORECAST,
                RAISED,
                scope,
                None,
                level,
                target,
                now,
                f"预测15秒接通率低于目标 / forecast 15-s answer rate below target: {detail}",
            )
        else:
            alarm = Alarm(
                SLA_FORECAST,
                CLEARED,
                scope,
                None,
                level,
                target,
                now,
                f"预测15秒接通率恢复 / forecast 15-s answer rate back to target: {detail}",
            )
        transition = self._alarms.record(alarm)
        return [] if transition is None else [transition]

    def _occupancy_totals(
        self, now: float, window_s: float, only: str | None = None
    ) -> dict[str, tuple[float, float]]:
        start = now - window_s
        totals: dict[str, list[float]] = {}
        for timeline in self._agents.values():
            times = timeline.times
            first = max(bisect_right(times, start) - 1, 0)
            for index in range(first, len(times)):
                if times[index] >= now:
                    break
                state = timeline.states[index]
                if state not in STAFFED_STATES:
                    continue
                until = times[index + 1] if index + 1 < len(times) else now
                seconds = min(until, now) - max(times[index], start)
                if seconds <= 0:
                    continue
                busy = seconds if state in BUSY_STATES else 0.0
                for key in timeline.scopes[index]:
                    if only is not None and key != only:
                        continue
                    total = totals.setdefault(key, [0.0, 0.0])
                    total[0] += busy
                    total[1] += seconds
        return {key: (busy, staffed) for key, (busy, staffed) in totals.items()}

    def _agents_by_state(self, only: str | None = None) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        for timeline in self._agents.values():
            if not timeline.states:
                continue
            state = timeline.states[-1]
            for key in timeline.scopes[-1]:
                if only is not None and key != only:
                    continue
                counts.setdefault(key, dict.fromkeys(AGENT_STATES, 0))[state] += 1
        return counts

    def _advance(self, at: float) -> None:
        """Track the latest event time and prune now and then (bounded memory)."""
        if at > self._latest:
            self._latest = at
        if self._latest < self._next_prune:
            return
        self._next_prune = self._latest + _PRUNE_EVERY_S
        cutoff = min(self._latest - self.settings.retention_s, self._local_midnight(self._latest))
        self._prune(cutoff)

    def _prune(self, cutoff: float) -> None:
        for key in list(self._scopes):
            scope = self._scopes[key]
            scope.outcomes.prune(cutoff)
            scope.handling.prune(cutoff)
            scope.arrivals.prune(cutoff)
            if scope.is_empty():
                del self._scopes[key]
        while self._finished and self._finished[0][0] < cutoff:
            _, call_id = self._finished.popleft()
            self._calls.pop(call_id, None)
        for timeline in self._agents.values():
            # Keep the last change before the cutoff: its state lasts into the retained time.
            drop = bisect_right(timeline.times, cutoff) - 1
            if drop > 0:
                del timeline.times[:drop]
                del timeline.states[:drop]
                del timeline.scopes[:drop]


def _waiting(scope: _Scope | None, now: float) -> tuple[int, float]:
    if scope is None or not scope.waiting:
        return (0, 0.0)
    return (len(scope.waiting), max(now - min(scope.waiting.values()), 0.0))
