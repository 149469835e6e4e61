"""Working-day calendar and work-order deadlines (pure: times are passed in).

**Working day.** Monday to Friday, except the configured public holidays;
plus the configured make-up working days (调休), e.g. a Saturday worked to
bridge a holiday. A make-up day wins over the weekend; a date cannot be both.

**Counting rule.** A deadline of N working days (N >= 1) from an acceptance
at local time T on day D (local = the calendar's zone, Asia/Shanghai) ends at
23:59:59 local on the N-th working day strictly after D. The acceptance day
never counts, whatever its hour; an acceptance on a non-working day therefore
counts from the next working day, which is day 1. Example (holidays
10-01..10-07, Saturday 10-10 worked): 2 working days from Wednesday
2026-09-30 10:00 end on Friday 2026-10-09 23:59:59; 1 working day from Friday
2026-10-09 ends on Saturday 2026-10-10 23:59:59.

**Minutes.** A deadline in minutes (Tianjin: life and property 15 minutes to
take the order) runs round the clock and ignores the calendar.

Which rule applies to an order is configuration (:class:`DeadlineRules`): by
time-limit class first (urgency beats the kind of appeal), then by appeal type,
then the default. Guangdong: CONSULT 2 working days, HELP/SUGGEST 10,
COMPLAINT/REPORT 15. Tianjin: LIFE_SAFETY 15 minutes, UTILITIES 30 minutes,
otherwise 1 working day. In TOML::

    [workorders.deadlines.by_class]
    LIFE_SAFETY = { minutes = 15 }
    [workorders.deadlines.by_appeal]
    CONSULT = { working_days = 2 }
    [workorders.deadlines]
    default = { working_days = 1 }

No holiday schedule is built in: each year's official schedule (国务院办公厅
节假日安排) is configuration.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from enum import StrEnum
from typing import Any, Final, Literal, TypeVar
from zoneinfo import ZoneInfo

from workorder_sync.core import AppealType, TimeLimitClass, WorkOrder

__all__ = [
    "SHANGHAI",
    "Calendar",
    "CalendarError",
    "DeadlineRule",
    "DeadlineRules",
    "DueState",
    "deadline_for",
    "due_state",
]

SHANGHAI: Final = ZoneInfo("Asia/Shanghai")
_END_OF_DAY: Final = time(23, 59, 59)
_E = TypeVar("_E", bound=StrEnum)


class CalendarError(ValueError):
    """A bad calendar or deadline configuration; the message names the entry."""


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} {value.isoformat()} has no time zone")


@dataclass(frozen=True)
class Calendar:
    """Weekends off, ``holidays`` off, ``workdays`` (调休) on."""

    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()
    tz: tzinfo = field(default=SHANGHAI)

    def __post_init__(self) -> None:
        both = sorted(self.holidays & self.workdays)
        if both:
            raise CalendarError(f"{both[0].isoformat()} is both a holiday and a make-up workday")
        weekdays = sorted(d for d in self.workdays if d.weekday() < 5)
        if weekdays:
            raise CalendarError(
                f"make-up workday {weekdays[0].isoformat()} is a {weekdays[0]:%A}, "
                "already a working day"
            )

    @classmethod
    def from_config(
        cls, holidays: Iterable[str], workdays: Iterable[str], *, tz: tzinfo = SHANGHAI
    ) -> Calendar:
        """Dates as ``YYYY-MM-DD`` or ranges ``YYYY-MM-DD..YYYY-MM-DD`` (inclusive)."""
        return cls(
            holidays=frozenset(_parse_dates("holidays", holidays)),
            workdays=frozenset(_parse_dates("workdays", workdays)),
            tz=tz,
        )

    def is_working_day(self, day: date) -> bool:
        if day in self.workdays:
            return True
        return day.weekday() < 5 and day not in self.holidays

    def add_working_days(self, start: datetime, n: int, *, tz: tzinfo | None = None) -> datetime:
        """23:59:59 local on the ``n``-th working day after ``start``'s local
        day (see the module docstring), in ``tz`` (default: the calendar's)."""
        _require_aware("start", start)
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"working days must be a whole number >= 1, not {n!r}")
        zone = self.tz if tz is None else tz
        day = start.astimezone(zone).date()
        counted = 0
        while counted < n:
            day += timedelta(days=1)
            if self.is_working_day(day):
                counted += 1
        return datetime.combine(day, _END_OF_DAY, tzinfo=zone)


def _parse_dates(key: str, entries: Iterable[str]) -> Iterable[date]:
    for i, entry in enumerate(entries):
        where = f"{key}[{i}]"
        if not isinstance(entry, str):
            raise CalendarError(f"{where}: {entry!r} is not a date (YYYY-MM-DD)")
        first_text, sep, last_text = entry.partition("..")
        first = _parse_date(where, first_text)
        if not sep:
            yield first
            continue
        last = _parse_date(where, last_text)
        if last < first:
            raise CalendarError(f"{where}: range {entry!r} ends before it starts")
        while first <= last:
            yield first
            first += timedelta(days=1)


def _parse_date(where: str, text: str) -> date:
    try:
        if len(text.strip()) != 10:
            raise ValueError
        return date.fromisoformat(text.strip())
    except ValueError:
        raise CalendarError(f"{where}: {text!r} is not a date (YYYY-MM-DD)") from None


@dataclass(frozen=True)
class DeadlineRule:
    """``amount`` minutes (round the clock) or working days (on the calendar)."""

    kind: Literal["minutes", "working_days"]
    amount: int

    def __post_init__(self) -> None:
        if self.kind not in ("minutes", "working_days"):
            raise CalendarError(f"deadline kind {self.kind!r} is not minutes or working_days")
        if isinstance(self.amount, bool) or not isinstance(self.amount, int) or self.amount < 1:
            raise CalendarError(f"deadline amount {self.amount!r} is not a whole number >= 1")

    def deadline(self, accepted_at: datetime, calendar: Calendar) -> datetime:
        _require_aware("accepted_at", accepted_at)
        if self.kind == "minutes":
            return (accepted_at + timedelta(minutes=self.amount)).astimezone(calendar.tz)
        return calendar.add_working_days(accepted_at, self.amount)


@dataclass(frozen=True)
class DeadlineRules:
    """Deadline per time-limit class, else per appeal type, else ``default``."""

    by_class: Mapping[TimeLimitClass, DeadlineRule] = field(default_factory=dict)
    by_appeal: Mapping[AppealType, DeadlineRule] = field(default_factory=dict)
    default: DeadlineRule | None = None

    def rule_for(self, subject: WorkOrder | TimeLimitClass | AppealType) -> DeadlineRule:
        if isinstance(subject, WorkOrder):
            time_limit_class: TimeLimitClass | None = subject.time_limit_class
            appeal_type = subject.appeal_type
        elif isinstance(subject, TimeLimitClass):
            time_limit_class, appeal_type = subject, None
        else:
            time_limit_class, appeal_type = None, subject
        if time_limit_class is not None and time_limit_class in self.by_class:
            return self.by_class[time_limit_class]
        if appeal_type is not None and appeal_type in self.by_appeal:
            return self.by_appeal[appeal_type]
        if self.default is None:
            raise CalendarError(
                f"no deadline rule for class {time_limit_class} / appeal {appeal_type} "
                "and no default"
            )
        return self.default

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, key: str = "deadlines") -> DeadlineRules:
        """From ``{"by_class": {...}, "by_appeal": {...}, "default": {...}}``, each
        rule ``{"minutes": N}`` or ``{"working_days": N}``; errors name the key."""
        unknown = sorted(set(config) - {"by_class", "by_appeal", "default"})
        if unknown:
            raise CalendarError(f"{key}.{unknown[0]}: unknown key")
        by_class = {
            _config_enum(TimeLimitClass, f"{key}.by_class", name): _config_rule(
                f"{key}.by_class.{name}", value
            )
            for name, value in _config_table(f"{key}.by_class", config.get("by_class", {})).items()
        }
        by_appeal = {
            _config_enum(AppealType, f"{key}.by_appeal", name): _config_rule(
                f"{key}.by_appeal.{name}", value
            )
            for name, value in _config_table(
                f"{key}.by_appeal", config.get("by_appeal", {})
            ).items()
        }
        default = config.get("default")
        return cls(
            by_class=by_class,
            by_appeal=by_appeal,
            default=None if default is None else _config_rule(f"{key}.default", default),
        )


def _config_table(where: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise CalendarError(f"{where}: expected a table, got {type(value).__name__}")
    return value


def _config_enum(enum: type[_E], where: str, name: str) -> _E:
    try:
        return enum(name)
    except ValueError:
        choices = ", ".join(m.value for m in enum)
        raise CalendarError(f"{where}.{name}: unknown, expected one of {choices}") from None


def _config_rule(where: str, value: Any) -> DeadlineRule:
    table = _config_table(where, value)
    kind: Literal["minutes", "working_days"]
    if set(table) == {"minutes"}:
        kind = "minutes"
    elif set(table) == {"working_days"}:
        kind = "working_days"
    else:
        raise CalendarError(f"{where}: expected {{ minutes = N }} or {{ working_days = N }}")
    try:
        return DeadlineRule(kind, table[kind])
    except CalendarError as e:
        raise CalendarError(f"{where}: {e}") from None


def deadline_for(
    subject: WorkOrder | TimeLimitClass | AppealType,
    accepted_at: datetime,
    rules: DeadlineRules,
    calendar: Calendar,
) -> datetime:
    """The deadline of an order (or of a class / appeal type) accepted at
    ``accepted_at``, in the calendar's zone."""
    return rules.rule_for(subject).deadline(accepted_at, calendar)


class DueState(StrEnum):
    ON_TIME = "ON_TIME"
    NEAR = "NEAR"  # 临期
    OVERDUE = "OVERDUE"  # 超期


def due_state(deadline: datetime, now: datetime, near_hours: float) -> DueState:
    """OVERDUE once ``now`` is past ``deadline``; NEAR while at most
    ``near_hours`` remain (the deadline instant itself is still NEAR);
    ON_TIME before."""
    _require_aware("deadline", deadline)
    _require_aware("now", now)
    if near_hours < 0:
        raise ValueError(f"near_hours must be >= 0, not {near_hours!r}")
    if now > deadline:
        return DueState.OVERDUE
    if deadline - now <= timedelta(hours=near_hours):
        return DueState.NEAR
    return DueState.ON_TIME
