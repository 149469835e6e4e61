"""workorder_sync.calendar: working days across a holiday with make-up
weekend days (调休), deadline rules per city, the 临期/超期 boundaries and the
configuration errors. The holiday dates are examples, not an official schedule."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from workorder_sync.calendar import (
    SHANGHAI,
    Calendar,
    CalendarError,
    DeadlineRule,
    DeadlineRules,
    DueState,
    deadline_for,
    due_state,
)
from workorder_sync.core import AppealType, Channel, TimeLimitClass, WorkOrder

# Example: a week off from 10-01, bridged by working Sunday 09-27 and Saturday 10-10.
CAL = Calendar.from_config(
    holidays=["2026-10-01..2026-10-07"], workdays=["2026-09-27", "2026-10-10"]
)


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


def end_of(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=SHANGHAI)


GUANGDONG = DeadlineRules.from_config(
    {
        "by_appeal": {
            "CONSULT": {"working_days": 2},
            "HELP": {"working_days": 10},
            "SUGGEST": {"working_days": 10},
            "COMPLAINT": {"working_days": 15},
            "REPORT": {"working_days": 15},
        },
        "default": {"working_days": 10},
    }
)
TIANJIN = DeadlineRules.from_config(
    {
        "by_class": {"LIFE_SAFETY": {"minutes": 15}, "UTILITIES": {"minutes": 30}},
        "default": {"working_days": 1},
    }
)


def test_working_days_around_the_holiday() -> None:
    assert CAL.is_working_day(date(2026, 9, 25))  # Friday
    assert not CAL.is_working_day(date(2026, 9, 26))  # Saturday
    assert CAL.is_working_day(date(2026, 9, 27))  # Sunday, made up
    assert CAL.is_working_day(date(2026, 9, 30))
    assert not any(CAL.is_working_day(date(2026, 10, d)) for d in range(1, 8))
    assert CAL.is_working_day(date(2026, 10, 8))
    assert CAL.is_working_day(date(2026, 10, 10))  # Saturday, made up
    assert not CAL.is_working_day(date(2026, 10, 11))  # Sunday


def test_two_working_days_before_the_holiday_end_after_it() -> None:
    accepted = local(2026, 9, 30, 10, 0)
    assert CAL.add_working_days(accepted, 2) == end_of(date(2026, 10, 9))
    assert CAL.add_working_days(accepted, 1) == end_of(date(2026, 10, 8))


def test_one_working_day_from_friday_lands_on_the_make_up_saturday() -> None:
    assert CAL.add_working_days(local(2026, 10, 9, 16, 30), 1) == end_of(date(2026, 10, 10))
    assert CAL.add_working_days(local(2026, 10, 9, 16, 30), 2) == end_of(date(2026, 10, 12))


def test_an_acceptance_on_a_day_off_counts_from_the_next_working_day() -> None:
    for day in (3, 7):  # during the holiday
        assert CAL.add_working_days(local(2026, 10, day, 9, 0), 1) == end_of(date(2026, 10, 8))
    # Saturday 09-26, then the made-up Sunday 09-27 is the first working day.
    assert CAL.add_working_days(local(2026, 9, 26, 9, 0), 1) == end_of(date(2026, 9, 27))
    # Without the make-up day the weekend is skipped.
    plain = Calendar()
    assert plain.add_working_days(local(2026, 9, 26, 9, 0), 1) == end_of(date(2026, 9, 28))


def test_the_day_is_the_local_day() -> None:
    # 2026-09-29 17:00 UTC is 2026-09-30 01:00 in Shanghai: day D is 09-30.
    utc = datetime(2026, 9, 29, 17, 0, tzinfo=UTC)
    result = CAL.add_working_days(utc, 1)
    assert result == end_of(date(2026, 10, 8))
    assert result.tzinfo is SHANGHAI
    assert CAL.add_working_days(local(2026, 9, 30, 23, 59), 1) == end_of(date(2026, 10, 8))


def test_add_working_days_rejects() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        CAL.add_working_days(datetime(2026, 9, 30, 10, 0), 1)
    with pytest.raises(ValueError, match=">= 1, not 0"):
        CAL.add_working_days(local(2026, 9, 30, 10, 0), 0)


def order(appeal: AppealType, limit: TimeLimitClass = TimeLimitClass.GENERAL) -> WorkOrder:
    at = local(2026, 9, 30, 10, 0)
    return WorkOrder(
        order_no="GD20260930000001",
        channel=Channel.PHONE_12345,
        created_at=at,
        updated_at=at,
        appeal_type=appeal,
        time_limit_class=limit,
    )


def test_guangdong_deadlines_by_appeal_type() -> None:
    accepted = local(2026, 9, 30, 10, 0)
    assert deadline_for(order(AppealType.CONSULT), accepted, GUANGDONG, CAL) == end_of(
        date(2026, 10, 9)
    )
    # 10 working days: 10-08, 09, 10 (Sat), 12..16, 19, 20.
    assert deadline_for(AppealType.HELP, accepted, GUANGDONG, CAL) == end_of(date(2026, 10, 20))
    assert deadline_for(AppealType.COMPLAINT, accepted, GUANGDONG, CAL) == end_of(
        date(2026, 10, 27)
    )
    assert deadline_for(AppealType.PRAISE, accepted, GUANGDONG, CAL) == end_of(date(2026, 10, 20))


def test_tianjin_minutes_ignore_the_calendar() -> None:
    accepted = local(2026, 10, 3, 23, 50)  # a holiday, late at night
    assert deadline_for(
        order(AppealType.HELP, TimeLimitClass.LIFE_SAFETY), accepted, TIANJIN, CAL
    ) == local(2026, 10, 4, 0, 5)
    assert deadline_for(TimeLimitClass.UTILITIES, accepted, TIANJIN, CAL) == local(
        2026, 10, 4, 0, 20
    )
    assert deadline_for(order(AppealType.CONSULT), accepted, TIANJIN, CAL) == end_of(
        date(2026, 10, 8)
    )


def test_the_class_rule_beats_the_appeal_rule() -> None:
    rules = replace(GUANGDONG, by_class={TimeLimitClass.LIFE_SAFETY: DeadlineRule("minutes", 15)})
    accepted = local(2026, 9, 30, 10, 0)
    urgent = order(AppealType.COMPLAINT, TimeLimitClass.LIFE_SAFETY)
    assert deadline_for(urgent, accepted, rules, CAL) == local(2026, 9, 30, 10, 15)


def test_no_rule_and_no_default_is_an_error() -> None:
    rules = DeadlineRules.from_config({"by_appeal": {"CONSULT": {"working_days": 2}}})
    with pytest.raises(CalendarError, match="no deadline rule for class GENERAL / appeal HELP"):
        deadline_for(order(AppealType.HELP), local(2026, 9, 30, 10, 0), rules, CAL)


@pytest.mark.parametrize(
    ("remaining", "state"),
    [
        (timedelta(hours=30), DueState.ON_TIME),
        (timedelta(hours=24, seconds=1), DueState.ON_TIME),
        (timedelta(hours=24), DueState.NEAR),
        (timedelta(minutes=1), DueState.NEAR),
        (timedelta(0), DueState.NEAR),
        (timedelta(microseconds=-1), DueState.OVERDUE),
        (timedelta(days=-3), DueState.OVERDUE),
    ],
)
def test_due_state_boundaries(remaining: timedelta, state: DueState) -> None:
    deadline = end_of(date(2026, 10, 9))
    assert due_state(deadline, deadline - remaining, near_hours=24) is state


def test_due_state_rejects() -> None:
    deadline = end_of(date(2026, 10, 9))
    with pytest.raises(ValueError, match="no time zone"):
        due_state(deadline, datetime(2026, 10, 9, 12, 0), 24)
    with pytest.raises(ValueError, match="near_hours must be >= 0"):
        due_state(deadline, deadline, -1)
    assert due_state(deadline, deadline, 0) is DueState.NEAR


@pytest.mark.parametrize(
    ("holidays", "workdays", "message"),
    [
        (["2026-10-32"], [], r"^holidays\[0\]: '2026-10-32' is not a date \(YYYY-MM-DD\)$"),
        (["2026-10-01", "20261002"], [], r"^holidays\[1\]: '20261002' is not a date"),
        (["2026-10-07..2026-10-01"], [], r"^holidays\[0\]: range .* ends before it starts$"),
        (["2026-10-01..2026-1-07"], [], r"^holidays\[0\]: '2026-1-07' is not a date"),
        ([], ["2026-09-28"], r"^make-up workday 2026-09-28 is a Monday, already a working day$"),
        ([], [20260927], r"^workdays\[0\]: 20260927 is not a date"),
        (["2026-10-10"], ["2026-10-10"], r"^2026-10-10 is both a holiday and a make-up workday$"),
    ],
)
def test_calendar_config_errors_name_the_date(
    holidays: list[str], workdays: list[str], message: str
) -> None:
    with pytest.raises(CalendarError, match=message):
        Calendar.from_config(holidays, workdays)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"by_class": {"FAST": {"minutes": 5}}}, r"^deadlines\.by_class\.FAST: unknown"),
        ({"by_appeal": {"HELP": {"hours": 5}}}, r"^deadlines\.by_appeal\.HELP: expected"),
        ({"by_appeal": {"HELP": {"working_days": 0}}}, r"^deadlines\.by_appeal\.HELP: .*>= 1"),
        ({"default": {"minutes": 1.5}}, r"^deadlines\.default: deadline amount 1.5"),
        ({"default": 3}, r"^deadlines\.default: expected a table, got int"),
        ({"by_class": []}, r"^deadlines\.by_class: expected a table"),
        ({"defaults": {}}, r"^deadlines\.defaults: unknown key"),
    ],
)
def test_deadline_config_errors_name_the_key(config: dict[str, object], message: str) -> None:
    with pytest.raises(CalendarError, match=message):
        DeadlineRules.from_config(config)
