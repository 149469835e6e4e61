"""Unit tests for acd.alarms and the tracker's SLA_BREACH / SLA_FORECAST rules."""

from __future__ import annotations

import pytest

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
from acd.erlang import service_level
from acd.sla import KpiSettings, ServiceLevelTracker

T0 = 1_700_000_000.0
SCOPES = {"all", "line:12345", "queue:general"}


def _answer(tracker: ServiceLevelTracker, call_id: str, at: float, wait_s: float) -> list[Alarm]:
    tracker.call_queued(call_id, at=at - wait_s, line="12345", queue="general", skill=None)
    return tracker.call_answered(call_id, at=at, wait_s=wait_s, agent="1001")


def _tracker(min_outcomes: int = 10) -> ServiceLevelTracker:
    return ServiceLevelTracker(KpiSettings(alarm_windows=("15m",), min_outcomes=min_outcomes))


# ------------------------------------------------------------------ AlarmBook


def test_alarm_book_reports_transitions_only() -> None:
    book = AlarmBook()
    raised = Alarm(SLA_BREACH, RAISED, "all", "15m", 0.8, 0.9, T0, "low")
    cleared = Alarm(SLA_BREACH, CLEARED, "all", "15m", 0.95, 0.9, T0 + 60, "ok")
    assert book.record(cleared) is None  # nothing to clear
    assert book.record(raised) is raised
    assert book.record(raised) is None  # no repeated raise
    assert book.active() == [raised]
    assert book.record(cleared) is cleared
    assert book.record(cleared) is None
    assert book.active() == []


# ------------------------------------------------------------------- forecast


def test_forecast_counts_waiting_callers_who_cannot_make_it() -> None:
    # 20 serving agents, 1 free, AHT 60 s: an agent frees up every 60 / 20 = 3 s.
    # Waits 20, 10, 6, 2 s (first in line first):
    #   20 s: the free agent takes it now, but 20 > 15          -> miss
    #   10 s + 1 * 3 s = 13 <= 15                                -> hit
    #    6 s + 2 * 3 s = 12                                      -> hit
    #    2 s + 3 * 3 s = 11                                      -> hit
    inputs = ForecastInputs(
        waiting=4,
        free_agents=1,
        serving_agents=20,
        calls_per_hour=0,
        aht_s=60,
        longest_wait_s=20,
        waits_s=(2.0, 20.0, 6.0, 10.0),
    )
    assert forecast_service_level(inputs, target_s=15) == pytest.approx(3 / 4)


def test_forecast_weights_new_arrivals_with_erlang_c() -> None:
    # As above plus 120 calls/h: 30 expected arrivals in 900 s, answered in time with
    # the Erlang C level of 20 agents at 2 erlangs (~100 %): (3 + 30 * SL) / 34.
    inputs = ForecastInputs(
        waiting=4,
        free_agents=1,
        serving_agents=20,
        calls_per_hour=120,
        aht_s=60,
        longest_wait_s=20,
        waits_s=(20.0, 10.0, 6.0, 2.0),
    )
    arrivals_level = service_level(20, 120, 60, 15)
    expected = (3 + 30 * arrivals_level) / 34
    assert forecast_service_level(inputs, target_s=15, horizon_s=900) == pytest.approx(expected)
    assert expected == pytest.approx(33 / 34, abs=1e-6)


def test_forecast_spreads_waits_when_only_the_longest_is_known() -> None:
    # 3 waiting, longest 30 s -> assumed 30, 15, 0 s; 3 free agents take them all now.
    # 30 misses, 15 is within (exactly 15 counts), 0 is within: 2 / 3.
    inputs = ForecastInputs(
        waiting=3, free_agents=3, serving_agents=5, calls_per_hour=0, aht_s=300, longest_wait_s=30
    )
    assert forecast_service_level(inputs, target_s=15) == pytest.approx(2 / 3)


def test_forecast_without_agents_or_without_calls() -> None:
    nobody = ForecastInputs(
        waiting=2, free_agents=0, serving_agents=0, calls_per_hour=60, aht_s=300, longest_wait_s=1
    )
    assert forecast_service_level(nobody, target_s=15) == 0.0
    quiet = ForecastInputs(
        waiting=0, free_agents=3, serving_agents=3, calls_per_hour=0, aht_s=300, longest_wait_s=0
    )
    assert forecast_service_level(quiet, target_s=15) == 1.0
    # Too few agents for the traffic (A = 1000 * 400 / 3600 = 111 > 100): Erlang C level 0.
    overloaded = ForecastInputs(
        waiting=0,
        free_agents=0,
        serving_agents=100,
        calls_per_hour=1000,
        aht_s=400,
        longest_wait_s=0,
    )
    assert forecast_service_level(overloaded, target_s=15) == 0.0


# ---------------------------------------------------------------- SLA_BREACH


def test_breach_raises_once_at_min_outcomes_and_clears_once_back_at_target() -> None:
    tracker = _tracker()
    at = T0
    for n in range(8):
        assert _answer(tracker, f"ok{n}", at, 5.0) == []
        at += 10
    # 9th outcome: 8/9 = 88.9 % < 90 %, but only 9 calls: below min_outcomes, no alarm.
    assert _answer(tracker, "late1", at, 30.0) == []
    at += 10
    # 10th outcome: 8/10 = 80 %, 10 calls -> raised for every scope of the call.
    raised = _answer(tracker, "late2", at, 30.0)
    assert {a.scope for a in raised} == SCOPES
    assert all(a.kind == SLA_BREACH and a.state == RAISED for a in raised)
    assert all(a.window == "15m" and a.value == pytest.approx(0.8) for a in raised)
    assert all(a.target == 0.9 and a.at == at for a in raised)
    assert "80.0%" in raised[0].message and "90.0%" in raised[0].message
    at += 10
    # Still below target: no repeated raise. 9/11 ... 17/19 stay below 90 %.
    for n in range(9):
        assert _answer(tracker, f"more{n}", at, 5.0) == []
        at += 10
    assert tracker.evaluate_alarms(now=at) == []  # what outcomes returned is not repeated
    # 18/20 = 90.0 %: back to target -> cleared, once.
    cleared = _answer(tracker, "more9", at, 5.0)
    assert {a.scope for a in cleared} == SCOPES
    assert all(a.state == CLEARED and a.value == pytest.approx(0.9) for a in cleared)
    assert tracker.evaluate_alarms(now=at) == []
    assert tracker.active_alarms() == []


def test_short_abandons_do_not_count_towards_min_outcomes() -> None:
    tracker = _tracker()
    at = T0
    for n in range(9):
        _answer(tracker, f"late{n}", at, 40.0)
        at += 1
    for n in range(5):
        tracker.call_queued(f"s{n}", at=at - 2, line="12345", queue="general", skill=None)
        assert tracker.call_abandoned(f"s{n}", at=at, wait_s=2.0) == []
        at += 1
    # The 10th counted call is an abandon at 8 s: 0/10 -> raised by call_abandoned.
    tracker.call_queued("ab", at=at - 8, line="12345", queue="general", skill=None)
    raised = tracker.call_abandoned("ab", at=at, wait_s=8.0)
    assert {a.scope for a in raised} == SCOPES and raised[0].value == 0.0


def test_breach_clears_when_the_window_rolls_empty() -> None:
    tracker = _tracker(min_outcomes=2)
    _answer(tracker, "a", T0, 20.0)
    assert {a.scope for a in _answer(tracker, "b", T0 + 1, 20.0)} == SCOPES
    # 15 min later both calls are still in [now - 900, now]: nothing changes.
    assert tracker.evaluate_alarms(now=T0 + 900) == []
    cleared = tracker.evaluate_alarms(now=T0 + 902)
    assert {a.scope for a in cleared} == SCOPES
    assert all(a.state == CLEARED and a.value is None for a in cleared)
    assert tracker.evaluate_alarms(now=T0 + 960) == []


def test_breach_is_evaluated_per_window() -> None:
    tracker = ServiceLevelTracker(KpiSettings(min_outcomes=1))
    raised = _answer(tracker, "a", T0, 20.0)
    windows = {a.window for a in raised if a.scope == "all"}
    assert windows == {"15m", "30m", "60m", "today", "24h"}
    assert len(raised) == 3 * 5


# -------------------------------------------------------------- SLA_FORECAST


def test_forecast_alarm_raises_and_clears_once() -> None:
    tracker = _tracker()
    bad = ForecastInputs(
        waiting=4,
        free_agents=1,
        serving_agents=20,
        calls_per_hour=0,
        aht_s=60,
        longest_wait_s=20,
        waits_s=(20.0, 10.0, 6.0, 2.0),
    )
    good = ForecastInputs(
        waiting=1, free_agents=2, serving_agents=20, calls_per_hour=120, aht_s=60, longest_wait_s=3
    )
    raised = tracker.evaluate_alarms(now=T0, forecast_inputs=bad)
    assert len(raised) == 1
    assert raised[0].kind == SLA_FORECAST and raised[0].state == RAISED
    assert raised[0].scope == "all" and raised[0].window is None
    assert raised[0].value == pytest.approx(0.75) and raised[0].target == 0.9
    assert tracker.evaluate_alarms(now=T0 + 5, forecast_inputs=bad) == []
    assert tracker.evaluate_alarms(now=T0 + 10) == []  # no inputs: left as it is
    assert [a.kind for a in tracker.active_alarms()] == [SLA_FORECAST]
    cleared = tracker.evaluate_alarms(now=T0 + 15, forecast_inputs=good)
    assert [(a.kind, a.state) for a in cleared] == [(SLA_FORECAST, CLEARED)]
    assert tracker.evaluate_alarms(now=T0 + 20, forecast_inputs=good) == []


def test_forecast_inputs_come_from_the_tracker() -> None:
    settings = KpiSettings(forecast_horizon_s=900)
    tracker = ServiceLevelTracker(settings)
    for n, state in enumerate(["AVAILABLE", "ON_CALL", "WRAP_UP", "PAUSED", "LOGGED_OUT"]):
        tracker.agent_state(f"a{n}", state, at=T0, queues=["general"])
    # 6 calls queued in the last 15 min -> 24 calls/h; two are still waiting.
    for n in range(6):
        tracker.call_queued(f"c{n}", at=T0 + 100 * n, line="12345", queue="general", skill=None)
    for n in range(4):
        tracker.call_answered(f"c{n}", at=T0 + 100 * n + 4, wait_s=4, agent="a1")
    tracker.call_ended("c0", at=T0 + 304, talk_s=300)
    inputs = tracker.forecast_inputs(now=T0 + 600, dim="queue", value="general")
    assert inputs.waiting == 2
    assert sorted(inputs.waits_s) == [100.0, 200.0]
    assert inputs.longest_wait_s == 200.0
    assert inputs.free_agents == 1
    assert inputs.serving_agents == 3  # AVAILABLE, ON_CALL, WRAP_UP
    assert inputs.calls_per_hour == pytest.approx(24.0)
    assert inputs.aht_s == pytest.approx(300.0)
