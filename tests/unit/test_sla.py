"""Unit tests for acd.sla: the live KPI tracker (windows, rates, occupancy, snapshot)."""

from __future__ import annotations

import json
import random
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from acd import log_events as ev
from acd.sla import WINDOW_NAMES, KpiSettings, ServiceLevelTracker

SHANGHAI = ZoneInfo("Asia/Shanghai")
# 2024-03-10 10:00 Asia/Shanghai: well after local midnight, so "today" spans the hour before.
T0 = datetime(2024, 3, 10, 10, 0, tzinfo=SHANGHAI).timestamp()


def _queue(
    tracker: ServiceLevelTracker,
    call_id: str,
    at: float,
    *,
    line: str = "12345",
    queue: str = "general",
    skill: str | None = "consult",
) -> None:
    tracker.call_queued(call_id, at=at, line=line, queue=queue, skill=skill)


def _answered(
    tracker: ServiceLevelTracker, call_id: str, wait_s: float, at: float = T0, **dims: str
) -> None:
    _queue(tracker, call_id, at - wait_s, **dims)
    tracker.call_answered(call_id, at=at, wait_s=wait_s, agent="1001")


def _abandoned(
    tracker: ServiceLevelTracker, call_id: str, wait_s: float, at: float = T0, **dims: str
) -> None:
    _queue(tracker, call_id, at - wait_s, **dims)
    tracker.call_abandoned(call_id, at=at, wait_s=wait_s)


# ---------------------------------------------------------------- definitions


def test_15_0_seconds_counts_as_within_but_15_1_does_not() -> None:
    tracker = ServiceLevelTracker()
    _answered(tracker, "a", 14.9)
    _answered(tracker, "b", 15.0)
    _answered(tracker, "c", 15.1)
    stats = tracker.window("15m", now=T0)
    assert (stats.offered, stats.answered, stats.answered_within_target) == (3, 3, 2)
    assert stats.rate_15s == pytest.approx(2 / 3)


def test_short_abandon_is_excluded_from_the_denominator() -> None:
    tracker = ServiceLevelTracker()
    _answered(tracker, "a", 10.0)
    _abandoned(tracker, "short", 3.0)
    _abandoned(tracker, "edge", 5.0)  # exactly short_abandon_s: short
    _abandoned(tracker, "long", 8.0)
    stats = tracker.window("15m", now=T0)
    assert stats.offered == 4 and stats.abandoned == 3 and stats.short_abandons == 2
    # Denominator 4 - 2 = 2: the answer within 15 s and the 8 s abandon.
    assert stats.rate_15s == pytest.approx(1 / 2)
    assert stats.abandon_rate == pytest.approx(1 / 2)
    assert stats.answer_rate == pytest.approx(1 / 2)


def test_both_rate_variants_on_one_data_set() -> None:
    tracker = ServiceLevelTracker()
    for call_id, wait_s in [("w2", 2), ("w10", 10), ("w15", 15.0), ("w14", 14.9)]:
        _answered(tracker, call_id, wait_s)
    _answered(tracker, "l15", 15.1)
    _answered(tracker, "l40", 40)
    _abandoned(tracker, "ab3", 3)
    _abandoned(tracker, "ab5", 5.0)
    _abandoned(tracker, "ab8", 8)
    _queue(tracker, "cb", T0 - 60)
    tracker.call_overflowed_to_callback("cb", at=T0, wait_s=60)
    _queue(tracker, "lost", T0 - 30)
    tracker.call_lost("lost", at=T0)

    stats = tracker.window("15m", now=T0)
    # offered 11 = 6 answered + 3 abandoned + 1 callback + 1 lost; 2 short -> denominator 9.
    assert stats.offered == 11
    assert stats.answered == 6 and stats.answered_within_target == 4
    assert stats.overflowed_to_callback == 1 and stats.lost == 1
    assert stats.rate_15s == pytest.approx(4 / 9)  # 15秒接通率, ÷ (offered - short)
    assert stats.rate_15s_of_answered == pytest.approx(4 / 6)  # Asterisk-style, ÷ answered
    assert stats.answer_rate == pytest.approx(6 / 9)
    assert stats.abandon_rate == pytest.approx(1 / 9)  # only the 8 s abandon
    # The shares of the denominator add up: 6 answered + 1 abandon + 1 callback + 1 lost = 9.
    assert stats.asa_s == pytest.approx((2 + 10 + 15 + 14.9 + 15.1 + 40) / 6)


def test_empty_window_gives_none_not_division_errors() -> None:
    tracker = ServiceLevelTracker()
    stats = tracker.window("60m", now=T0)
    assert stats.offered == 0
    assert stats.rate_15s is None and stats.rate_15s_of_answered is None
    assert stats.answer_rate is None and stats.abandon_rate is None
    assert stats.asa_s is None and stats.aht_s is None and stats.avg_talk_s is None
    assert stats.talk_target_s == 400.0
    # Only short abandons: offered 1, denominator 0.
    _abandoned(tracker, "s", 1.0)
    stats = tracker.window("60m", now=T0)
    assert stats.offered == 1 and stats.rate_15s is None and stats.rate_15s_of_answered is None


def test_a_transfer_does_not_answer_twice() -> None:
    tracker = ServiceLevelTracker()
    _answered(tracker, "a", 20.0)
    tracker.call_answered("a", at=T0 + 120, wait_s=140.0, agent="1002")  # transferred
    tracker.call_abandoned("a", at=T0 + 200, wait_s=220.0)  # late report: ignored
    tracker.call_lost("a", at=T0 + 300)  # already answered: nothing
    stats = tracker.window("15m", now=T0 + 300)
    assert (stats.offered, stats.answered, stats.abandoned, stats.lost) == (1, 1, 0, 0)
    assert stats.asa_s == pytest.approx(20.0)


def test_repeated_queue_entry_keeps_the_first_clock_and_attribution() -> None:
    tracker = ServiceLevelTracker()
    _queue(tracker, "a", T0 - 10, queue="general")
    _queue(tracker, "a", T0 - 2, queue="medical")  # repeated input: ignored
    assert tracker.waiting_now(now=T0) == (1, 10.0)
    tracker.call_answered("a", at=T0, wait_s=10.0, agent="1001")
    assert tracker.window("15m", now=T0, dim="queue", value="general").answered == 1
    assert tracker.window("15m", now=T0, dim="queue", value="medical").offered == 0


def test_overflow_to_callback_is_offered_but_not_answered_nor_abandoned() -> None:
    tracker = ServiceLevelTracker()
    _queue(tracker, "cb", T0 - 90)
    tracker.call_overflowed_to_callback("cb", at=T0, wait_s=90.0)
    stats = tracker.window("15m", now=T0)
    assert (stats.offered, stats.answered, stats.abandoned) == (1, 0, 0)
    assert stats.overflowed_to_callback == 1
    assert stats.rate_15s == 0.0 and stats.answer_rate == 0.0 and stats.abandon_rate == 0.0
    assert tracker.waiting_now(now=T0) == (0, 0.0)


def test_lost_counts_only_for_a_call_still_waiting() -> None:
    tracker = ServiceLevelTracker()
    _queue(tracker, "w", T0 - 40)
    tracker.call_lost("w", at=T0)
    tracker.call_lost("never-queued", at=T0)
    _answered(tracker, "ans", 4.0)
    tracker.call_lost("ans", at=T0 + 1)
    stats = tracker.window("15m", now=T0 + 1)
    assert (stats.offered, stats.answered, stats.lost) == (2, 1, 1)
    assert stats.rate_15s == pytest.approx(1 / 2)


def test_answer_for_a_call_never_queued_is_ignored() -> None:
    tracker = ServiceLevelTracker()
    assert tracker.call_answered("ghost", at=T0, wait_s=3.0, agent="1001") == []
    assert tracker.window("15m", now=T0).offered == 0


# --------------------------------------------------------------------- windows


def test_windows_roll_by_outcome_time() -> None:
    tracker = ServiceLevelTracker()
    _answered(tracker, "old", 5.0, at=T0 - 16 * 60)
    _answered(tracker, "edge", 5.0, at=T0 - 15 * 60)  # [now - 900, now] is closed
    _answered(tracker, "new", 5.0, at=T0 - 60)
    offered = {name: tracker.window(name, now=T0).offered for name in WINDOW_NAMES}
    assert offered == {"15m": 2, "30m": 3, "60m": 3, "today": 3, "24h": 3}
    # 50 min later: [now - 3600, now] starts at T0 - 600, after "old" and "edge".
    later = {name: tracker.window(name, now=T0 + 3000).offered for name in WINDOW_NAMES}
    assert later == {"15m": 0, "30m": 0, "60m": 1, "today": 3, "24h": 3}


def test_calls_count_by_outcome_not_by_queue_entry() -> None:
    tracker = ServiceLevelTracker()
    _queue(tracker, "a", T0 - 1000)  # queued 16.7 min ago, answered 1 min ago
    tracker.call_answered("a", at=T0 - 60, wait_s=940.0, agent="1001")
    assert tracker.window("15m", now=T0).offered == 1
    _queue(tracker, "b", T0 - 30)  # still waiting: in no window
    assert tracker.window("15m", now=T0).offered == 1
    assert tracker.waiting_now(now=T0) == (1, 30.0)


def test_today_starts_at_shanghai_midnight() -> None:
    midnight = datetime(2024, 3, 10, 0, 0, tzinfo=SHANGHAI).timestamp()
    assert midnight == 1_710_000_000.0  # 2024-03-09 16:00 UTC
    tracker = ServiceLevelTracker()
    _answered(tracker, "yesterday", 5.0, at=midnight - 1)  # 23:59:59 on 9 March, local
    _answered(tracker, "today", 5.0, at=midnight + 1)  # 00:00:01 on 10 March, local
    now = midnight + 2 * 3600
    assert tracker.window("today", now=now).offered == 1
    assert tracker.window("24h", now=now).offered == 2
    assert tracker.window_range("today", now=now) == (midnight, now)
    # Same instants with the day in UTC: both are on 9 March (15:59:59 and 16:00:01 UTC).
    utc = ServiceLevelTracker(KpiSettings(day_tz="UTC"))
    _answered(utc, "yesterday", 5.0, at=midnight - 1)
    _answered(utc, "today", 5.0, at=midnight + 1)
    assert utc.window("today", now=now).offered == 2


def test_custom_range() -> None:
    tracker = ServiceLevelTracker()
    for n in range(10):
        _answered(tracker, f"c{n}", 5.0, at=T0 + 600 * n)
    assert tracker.window((T0 + 600, T0 + 1800), now=T0 + 6000).offered == 3
    assert tracker.window((T0 - 86400, T0 + 5400), now=T0 + 6000).offered == 10
    with pytest.raises(ValueError):
        tracker.window((T0 + 10, T0), now=T0)
    with pytest.raises(ValueError):
        tracker.window("45m", now=T0)


def test_late_outcome_is_inserted_in_time_order() -> None:
    tracker = ServiceLevelTracker()
    _answered(tracker, "a", 5.0, at=T0)
    _answered(tracker, "b", 20.0, at=T0 + 600)
    _answered(tracker, "late", 30.0, at=T0 + 100)  # reported after b
    stats = tracker.window((T0 + 50, T0 + 200), now=T0 + 600)
    assert stats.answered == 1 and stats.asa_s == pytest.approx(30.0)
    stats = tracker.window((T0 + 500, T0 + 700), now=T0 + 600)
    assert stats.answered == 1 and stats.asa_s == pytest.approx(20.0)
    assert tracker.window("15m", now=T0 + 600).asa_s == pytest.approx(55.0 / 3)


def test_old_outcomes_are_pruned_after_a_day() -> None:
    tracker = ServiceLevelTracker()
    _answered(tracker, "old", 5.0, at=T0)
    assert tracker.window((T0 - 1, T0 + 1), now=T0).offered == 1
    # Two days later an input prunes it (older than 24 h and than local midnight).
    _answered(tracker, "new", 5.0, at=T0 + 2 * 86400)
    assert tracker.window((T0 - 1, T0 + 1), now=T0 + 2 * 86400).offered == 0
    assert tracker.window("24h", now=T0 + 2 * 86400).offered == 1
    assert "old" not in tracker._calls


# ------------------------------------------------------------------ dimensions


def test_attribution_per_line_queue_and_skill() -> None:
    tracker = ServiceLevelTracker()
    _answered(tracker, "a", 5.0, line="12345", queue="general", skill="consult")
    _answered(tracker, "b", 30.0, line="12345", queue="medical", skill="medical")
    _answered(tracker, "c", 5.0, line="96181", queue="general", skill="consult")
    _abandoned(tracker, "d", 9.0, line="96181", queue="medical", skill=None)

    def rate(dim: str, value: str | None = None) -> float | None:
        return tracker.window("15m", now=T0, dim=dim, value=value).rate_15s

    assert rate("all") == pytest.approx(2 / 4)
    assert rate("line", "12345") == pytest.approx(1 / 2)
    assert rate("line", "96181") == pytest.approx(1 / 2)
    assert rate("queue", "general") == pytest.approx(2 / 2)
    assert rate("queue", "medical") == pytest.approx(0 / 2)
    assert rate("skill", "consult") == pytest.approx(2 / 2)
    assert rate("skill", "medical") == pytest.approx(0 / 1)
    assert rate("skill", "unknown") is None
    with pytest.raises(ValueError):
        tracker.window("15m", now=T0, dim="queue")
    with pytest.raises(ValueError):
        tracker.window("15m", now=T0, dim="agent", value="1001")


def test_overflow_to_another_queue_keeps_attribution_but_waits_there() -> None:
    tracker = ServiceLevelTracker()
    _queue(tracker, "a", T0 - 40, queue="general")
    tracker.call_moved("a", queue="overflow")
    assert tracker.waiting_now(now=T0, dim="queue", value="general") == (0, 0.0)
    assert tracker.waiting_now(now=T0, dim="queue", value="overflow") == (1, 40.0)
    assert tracker.waiting_now(now=T0, dim="line", value="12345") == (1, 40.0)
    tracker.call_answered("a", at=T0, wait_s=40.0, agent="2001")
    assert tracker.window("15m", now=T0, dim="queue", value="general").answered == 1
    assert tracker.window("15m", now=T0, dim="queue", value="overflow").offered == 0
    assert tracker.waiting_now(now=T0, dim="queue", value="overflow") == (0, 0.0)


def test_waiting_now_counts_and_longest_wait() -> None:
    tracker = ServiceLevelTracker()
    _queue(tracker, "a", T0 - 25)
    _queue(tracker, "b", T0 - 5, queue="medical")
    _queue(tracker, "c", T0 - 12)
    assert tracker.waiting_now(now=T0) == (3, 25.0)
    assert tracker.waiting_now(now=T0, dim="queue", value="general") == (2, 25.0)
    tracker.call_abandoned("a", at=T0, wait_s=25.0)
    assert tracker.waiting_now(now=T0 + 1, dim="queue", value="general") == (1, 13.0)


# ---------------------------------------------------------- handling and talk


def test_asa_aht_and_average_talk() -> None:
    tracker = ServiceLevelTracker()
    _answered(tracker, "a", 10.0, at=T0)
    _answered(tracker, "b", 20.0, at=T0 + 30)
    tracker.call_ended("a", at=T0 + 300, talk_s=300.0)
    # Before a's wrap-up is recorded its handling is the talk alone, complete at call end.
    assert tracker.window("15m", now=T0 + 301).aht_s == pytest.approx(300.0)
    tracker.wrapup_ended("a", at=T0 + 360, wrap_s=60.0, agent="1001")
    tracker.wrapup_ended("a", at=T0 + 360, wrap_s=60.0, agent="1001")  # repeat: ignored
    tracker.call_ended("b", at=T0 + 230, talk_s=200.0)  # no wrap-up recorded
    tracker.call_ended("b", at=T0 + 240, talk_s=210.0)  # repeat: ignored
    stats = tracker.window("15m", now=T0 + 400)
    assert stats.asa_s == pytest.approx(15.0)
    assert stats.aht_s == pytest.approx((360.0 + 200.0) / 2)
    assert stats.avg_talk_s == pytest.approx((300.0 + 200.0) / 2)
    assert stats.talk_target_s == 400.0
    # A window holding a's call end but not its wrap-up end: talk counts, handling does not.
    stats = tracker.window((T0 + 250, T0 + 330), now=T0 + 400)
    assert stats.avg_talk_s == pytest.approx(300.0)
    assert stats.aht_s is None


def test_wrap_ups_of_a_transferred_call_add_up() -> None:
    # Answered by 1001, transferred to 1002; each agent wraps up. AHT = talk + both
    # wrap-ups, complete at the last one (as the recompute from the log sums them).
    tracker = ServiceLevelTracker()
    _answered(tracker, "a", 5.0, at=T0)
    tracker.call_answered("a", at=T0 + 100, wait_s=105.0, agent="1002")  # not a 2nd answer
    tracker.call_ended("a", at=T0 + 400, talk_s=400.0)
    tracker.wrapup_ended("a", at=T0 + 130, wrap_s=30.0, agent="1001")
    tracker.wrapup_ended("a", at=T0 + 450, wrap_s=50.0, agent="1002")
    assert tracker.window((T0, T0 + 449), now=T0 + 500).aht_s is None
    stats = tracker.window("15m", now=T0 + 500)
    assert stats.aht_s == pytest.approx(480.0) and stats.avg_talk_s == pytest.approx(400.0)


def test_unanswered_call_end_has_no_talk() -> None:
    tracker = ServiceLevelTracker()
    _abandoned(tracker, "a", 8.0)
    tracker.call_ended("a", at=T0 + 1, talk_s=None)
    _abandoned(tracker, "b", 9.0)
    tracker.call_ended("b", at=T0 + 1, talk_s=50.0)  # talk without an answer: not counted
    stats = tracker.window("15m", now=T0 + 1)
    assert stats.avg_talk_s is None and stats.aht_s is None


def test_the_earliest_outcome_is_the_calls_outcome() -> None:
    # After a reconnect the engine may report the call lost, then learn it had been
    # answered before that: the earliest outcome counts, as in the recompute.
    tracker = ServiceLevelTracker()
    _queue(tracker, "a", T0 - 10)
    tracker.call_lost("a", at=T0 + 100)
    tracker.call_answered("a", at=T0, wait_s=10.0, agent="1001")
    stats = tracker.window("15m", now=T0 + 100)
    assert (stats.offered, stats.answered, stats.lost) == (1, 1, 0)
    assert stats.answered_within_target == 1
    # A later outcome never replaces it.
    tracker.call_abandoned("a", at=T0 + 200, wait_s=210.0)
    assert tracker.window("15m", now=T0 + 200).abandoned == 0


# ------------------------------------------------------------- agents


def _agent_timeline(tracker: ServiceLevelTracker) -> None:
    # a1 in "general" for the hour [T0, T0 + 3600]:
    #   0-600 AVAILABLE, 600-610 RINGING, 610-1210 ON_CALL, 1210-1270 WRAP_UP,
    #   1270-1800 AVAILABLE, 1800-2400 PAUSED, 2400-3600 AVAILABLE.
    # busy = 10 + 600 + 60 = 670 s; staffed = 3600 - 600 paused = 3000 s.
    tracker.agent_state("a1", "AVAILABLE", at=T0, queues=["general"], skills=["consult"])
    for offset, state in [
        (600, "RINGING"),
        (610, "ON_CALL"),
        (1210, "WRAP_UP"),
        (1270, "AVAILABLE"),
        (1800, "PAUSED"),
        (2400, "AVAILABLE"),
    ]:
        tracker.agent_state("a1", state, at=T0 + offset)
    # a2 in "medical": logged out until T0 + 3000, then available (600 s staffed, 0 busy).
    tracker.agent_state("a2", "LOGGED_OUT", at=T0 - 7200, queues=["medical"])
    tracker.agent_state("a2", "AVAILABLE", at=T0 + 3000)


def test_occupancy_from_a_hand_made_timeline() -> None:
    tracker = ServiceLevelTracker()
    _agent_timeline(tracker)
    now = T0 + 3600
    assert tracker.occupancy(now=now, dim="queue", value="general") == pytest.approx(670 / 3000)
    assert tracker.occupancy(now=now, dim="skill", value="consult") == pytest.approx(670 / 3000)
    assert tracker.occupancy(now=now, dim="queue", value="medical") == 0.0
    assert tracker.occupancy(now=now) == pytest.approx(670 / 3600)
    # Last 30 min: a1 paused 600 s then available 1200 s, a2 available 600 s: nobody busy.
    assert tracker.occupancy(now=now, window_s=1800) == 0.0
    # [T0 + 600, T0 + 1200]: a1 ringing 10 s then on a call; a2 logged out.
    assert tracker.occupancy(now=T0 + 1200, window_s=600) == pytest.approx(1.0)
    assert tracker.occupancy(now=now, dim="queue", value="nobody") is None


def test_agents_by_state() -> None:
    tracker = ServiceLevelTracker()
    _agent_timeline(tracker)
    tracker.agent_state("a3", "ON_CALL", at=T0 + 3500, queues=["general", "medical"])
    tracker.agent_state("a3", "ON_CALL", at=T0 + 3510)  # repeat: ignored
    everyone = tracker.agents_by_state()
    assert everyone == {
        "LOGGED_OUT": 0,
        "AVAILABLE": 2,
        "RESERVED": 0,
        "RINGING": 0,
        "ON_CALL": 1,
        "WRAP_UP": 0,
        "PAUSED": 0,
    }
    medical = tracker.agents_by_state(dim="queue", value="medical")
    assert (medical["AVAILABLE"], medical["ON_CALL"]) == (1, 1)
    with pytest.raises(ValueError):
        tracker.agent_state("a1", "LUNCH", at=T0)


# -------------------------------------------------------- event log and snapshot


def test_event_log_replay_matches_direct_inputs() -> None:
    rows = [
        ev.LogEvent(T0 - 20, ev.CALL_QUEUED, "a", line="12345", queue="general", skill="x"),
        ev.LogEvent(T0, ev.CALL_ANSWERED, "a", agent="1001", wait_s=20.0),
        ev.LogEvent(T0 + 50, ev.AGENT_CONNECTED, "a", agent="1002"),
        ev.LogEvent(T0 + 60, ev.CALL_ANSWERED, "a", agent="1002", wait_s=80.0, seq=1),
        ev.LogEvent(T0 + 100, ev.CALL_ENDED, "a", talk_s=100.0),
        ev.LogEvent(T0 + 130, ev.WRAPUP_ENDED, "a", agent="1001", wrap_s=30.0),
        ev.LogEvent(T0 - 9, ev.CALL_QUEUED, "b", line="12345", queue="general"),
        ev.LogEvent(T0, ev.CALL_OVERFLOWED, "b", data={"to_queue": "spill"}),
        ev.LogEvent(T0 + 1, ev.CALL_ABANDONED, "b", wait_s=10.0),
        ev.LogEvent(T0 - 50, ev.CALL_QUEUED, "c", line="96181", queue="general"),
        ev.LogEvent(T0 + 10, ev.CALL_OVERFLOWED, "c", wait_s=60.0, data={"to": "callback"}),
        ev.LogEvent(T0, ev.AGENT_STATE, agent="1001", data={"old": "x", "new": "ON_CALL"}),
    ]
    tracker = ServiceLevelTracker()
    for row in rows:
        tracker.apply_event(row)
    stats = tracker.window("15m", now=T0 + 200)
    assert (stats.offered, stats.answered, stats.answered_within_target) == (3, 1, 0)
    assert (stats.abandoned, stats.short_abandons, stats.overflowed_to_callback) == (1, 0, 1)
    assert stats.asa_s == pytest.approx(20.0)
    assert stats.aht_s == pytest.approx(130.0)
    assert tracker.agents_by_state()["ON_CALL"] == 1
    assert tracker.window("15m", now=T0 + 200, dim="queue", value="spill").offered == 0


def test_snapshot_is_json_and_publishes_definitions() -> None:
    tracker = ServiceLevelTracker(KpiSettings(min_outcomes=1))
    _agent_timeline(tracker)
    _answered(tracker, "a", 30.0, at=T0 + 3500, queue="general", skill="consult")
    _queue(tracker, "w", T0 + 3590, line="96181", queue="medical", skill=None)
    snapshot = tracker.snapshot(now=T0 + 3600)
    text = json.dumps(snapshot, ensure_ascii=False)
    assert "15秒接通率" in text
    assert {"rate_15s", "rate_15s_of_answered", "abandon_rate", "occupancy"} <= set(
        snapshot["definitions"]
    )
    assert set(snapshot["all"]["windows"]) == set(WINDOW_NAMES)
    assert snapshot["all"]["windows"]["15m"]["rate_15s"] == 0.0
    assert snapshot["all"]["waiting"] == 1 and snapshot["all"]["longest_wait_s"] == 10.0
    assert snapshot["all"]["occupancy"] == pytest.approx(670 / 3600)
    assert snapshot["all"]["agents_by_state"]["AVAILABLE"] == 2
    assert set(snapshot["line"]) == {"12345", "96181"}
    assert set(snapshot["queue"]) == {"general", "medical"}
    assert set(snapshot["skill"]) == {"consult"}
    assert snapshot["queue"]["medical"]["waiting"] == 1
    assert snapshot["queue"]["general"]["windows"]["today"]["answered"] == 1
    assert snapshot["targets"]["rate_target"] == 0.9
    assert {(a["scope"], a["window"]) for a in snapshot["alarms"]} >= {("all", "15m")}
    assert all(a["state"] == "RAISED" for a in snapshot["alarms"])


def test_settings_are_validated_with_the_key_named() -> None:
    with pytest.raises(ValueError, match="rate_target"):
        KpiSettings(rate_target=90)
    with pytest.raises(ValueError, match="day_tz"):
        KpiSettings(day_tz="Mars/Olympus")
    with pytest.raises(ValueError, match="alarm_windows"):
        KpiSettings(alarm_windows=("5m",))
    assert KpiSettings(windows_s=(300, 90)).window_names == ("5m", "90s", "today", "24h")


def test_a_day_at_1000_calls_per_hour() -> None:
    # 24,000 outcomes in the 24 h before T0 (one every 3.58 s, so that every wrap-up also
    # ends before T0) across 2 lines, 4 queues and 3 skills, with talk and wrap-up.
    # Not a timing assertion: it shows the tracker copes with a full day of a big centre;
    # the printed time is for whoever runs it with -s (the snapshot takes a few ms).
    tracker = ServiceLevelTracker()
    start = T0 - 86_300
    for n in range(24_000):
        at = start + n * 3.58
        wait_s = float(n % 23)
        call_id = f"c{n}"
        tracker.call_queued(
            call_id,
            at=at - wait_s,
            line=("12345", "96181")[n % 2],
            queue=f"q{n % 4}",
            skill=("consult", "complaint", "medical")[n % 3],
        )
        if n % 10 == 9:
            tracker.call_abandoned(call_id, at=at, wait_s=wait_s)
            continue
        tracker.call_answered(call_id, at=at, wait_s=wait_s, agent=f"a{n % 120}")
        tracker.call_ended(call_id, at=at + 300, talk_s=300.0)
        tracker.wrapup_ended(call_id, at=at + 330, wrap_s=30.0)
    began = time.perf_counter()
    snapshot = tracker.snapshot(now=T0)
    elapsed_ms = (time.perf_counter() - began) * 1000
    print(f"snapshot over 24,000 outcomes: {elapsed_ms:.1f} ms")
    day = snapshot["all"]["windows"]["24h"]
    assert day["offered"] == 24_000
    assert day["answered"] == 21_600 and day["abandoned"] == 2_400
    assert day["aht_s"] == pytest.approx(330.0)
    assert set(snapshot["queue"]) == {"q0", "q1", "q2", "q3"}
    json.dumps(snapshot)


def test_windows_match_a_brute_force_recount() -> None:
    # Random calls, outcomes reported slightly out of order, random windows: every
    # count and mean must equal a plain recount over the outcome list.
    rng = random.Random(12345)
    tracker = ServiceLevelTracker()
    outcomes: list[tuple[float, str, str, float]] = []  # (at, queue, kind, wait_s)
    handled: list[tuple[float, str, float]] = []  # (completed at, queue, talk + wrap)
    for n in range(600):
        queue = rng.choice(["general", "medical", "water"])
        queued_at = T0 + n * 5 + rng.uniform(-20, 20)
        wait_s = rng.choice([0.0, 3.0, 5.0, 8.0, 14.9, 15.0, 15.1, 40.0, rng.uniform(0, 60)])
        at = queued_at + wait_s
        call_id = f"r{n}"
        tracker.call_queued(call_id, at=queued_at, line="12345", queue=queue, skill=None)
        kind = rng.choice(["answered", "answered", "answered", "abandoned", "callback", "lost"])
        if kind == "answered":
            tracker.call_answered(call_id, at=at, wait_s=wait_s, agent="1001")
            talk_s, wrap_s = rng.uniform(30, 600), rng.choice([None, rng.uniform(5, 90)])
            tracker.call_ended(call_id, at=at + talk_s, talk_s=talk_s)
            if wrap_s is None:
                handled.append((at + talk_s, queue, talk_s))
            else:
                tracker.wrapup_ended(call_id, at=at + talk_s + wrap_s, wrap_s=wrap_s)
                handled.append((at + talk_s + wrap_s, queue, talk_s + wrap_s))
        elif kind == "abandoned":
            tracker.call_abandoned(call_id, at=at, wait_s=wait_s)
        elif kind == "callback":
            tracker.call_overflowed_to_callback(call_id, at=at, wait_s=wait_s)
        else:
            wait_s = at - queued_at
            tracker.call_lost(call_id, at=at)
        outcomes.append((at, queue, kind, wait_s))
    now = T0 + 4000
    for _ in range(50):
        start = T0 + rng.uniform(-100, 3500)
        end = start + rng.uniform(0, 1500)
        queue = rng.choice([None, "general", "water"])
        picked = [o for o in outcomes if start <= o[0] <= end and queue in (None, o[1])]
        answered = [o for o in picked if o[2] == "answered"]
        short = [o for o in picked if o[2] == "abandoned" and o[3] <= 5.0]
        within = [o for o in answered if o[3] <= 15.0]
        handles = [h[2] for h in handled if start <= h[0] <= end and queue in (None, h[1])]
        if queue is None:
            stats = tracker.window((start, end), now=now)
        else:
            stats = tracker.window((start, end), now=now, dim="queue", value=queue)
        assert stats.offered == len(picked)
        assert stats.answered == len(answered)
        assert stats.short_abandons == len(short)
        assert stats.answered_within_target == len(within)
        assert stats.lost == sum(1 for o in picked if o[2] == "lost")
        counted = len(picked) - len(short)
        assert stats.rate_15s == (pytest.approx(len(within) / counted) if counted else None)
        if answered:
            assert stats.asa_s == pytest.approx(sum(o[3] for o in answered) / len(answered))
        assert stats.aht_s == (pytest.approx(sum(handles) / len(handles)) if handles else None)


def test_a_call_ending_without_an_outcome_stops_waiting() -> None:
    tracker = ServiceLevelTracker()
    _queue(tracker, "a", T0 - 30)
    tracker.call_ended("a", at=T0, talk_s=None)
    assert tracker.waiting_now(now=T0 + 1) == (0, 0.0)
    assert tracker.window("15m", now=T0 + 1).offered == 0
    tracker.call_abandoned("a", at=T0, wait_s=30.0)  # the abandon reported late still counts
    assert tracker.window("15m", now=T0 + 1).abandoned == 1
