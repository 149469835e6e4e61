"""acd.switch_guard: trips on a burst of failures across agents, hands back
the RONA pauses of the burst, clears with hysteresis once dials succeed."""

from __future__ import annotations

import pytest

from acd.switch_guard import GuardSettings, SwitchGuard


def guard(**kwargs: float) -> SwitchGuard:
    settings = {"window_s": 30.0, "min_agents": 3, "share": 0.5, "clear_answers": 2}
    settings.update(kwargs)
    return SwitchGuard(GuardSettings(**settings))  # type: ignore[arg-type]


def test_trips_when_many_agents_fail_and_hands_back_the_bursts_pauses():
    g = guard()
    assert g.dial_answered("1001", 0.0) is None
    assert g.dial_failed("1002", "NO_ANSWER", 10.0) is None
    g.agent_paused_for_no_answer("1002", 10.0)
    assert g.dial_failed("1003", "UNAVAILABLE", 11.0) is None
    assert g.may_pause
    trip = g.dial_failed("1004", "UNAVAILABLE", 12.0)
    assert trip is not None and trip.tripped
    assert (trip.failing, trip.dialled) == (3, 4)
    assert trip.outcomes == {"NO_ANSWER": 1, "UNAVAILABLE": 2}
    assert trip.resume == ("1002",)
    assert "3 of 4 agents" in trip.describe() and "UNAVAILABLE 2" in trip.describe()
    assert not g.may_pause
    # Tripped once: more failures report nothing new.
    assert g.dial_failed("1005", "CONGESTION", 13.0) is None


def test_a_pause_older_than_the_window_is_not_undone():
    g = guard()
    g.dial_failed("1002", "NO_ANSWER", 0.0)
    g.agent_paused_for_no_answer("1002", 0.0)
    for n, at in enumerate((40.0, 41.0, 42.0)):
        transition = g.dial_failed(f"200{n}", "UNAVAILABLE", at)
    assert transition is not None and transition.tripped
    assert transition.resume == ()  # 1002's pause was its own, long before the burst


def test_few_agents_or_a_small_share_never_trip():
    g = guard(min_agents=3, share=0.5)
    # Two agents failing again and again: not "many agents".
    for at in range(10):
        assert g.dial_failed(f"100{at % 2}", "BUSY", float(at)) is None
    # Three failing among ten dialled: below the share.
    g = guard(min_agents=3, share=0.5)
    for n in range(7):
        g.dial_answered(f"20{n}", float(n))
    for n in range(3):
        assert g.dial_failed(f"30{n}", "UNAVAILABLE", 10.0 + n) is None
    assert g.may_pause and g.counts(12.0) == (3, 10)


def test_an_agent_that_answers_again_no_longer_counts_as_failing():
    g = guard(min_agents=2)
    g.dial_failed("1001", "BUSY", 0.0)
    g.dial_answered("1001", 1.0)
    assert g.dial_failed("1002", "BUSY", 2.0) is None
    assert g.counts(2.0) == (1, 2)


def test_clears_after_answers_once_the_failing_share_is_low_and_not_before():
    g = guard(min_agents=3, share=0.5, clear_answers=2)
    for n in range(4):
        g.dial_failed(f"100{n}", "UNAVAILABLE", float(n))
    assert g.tripped
    # One answer: not enough evidence.
    assert g.dial_answered("1000", 5.0) is None
    # Two answers, but 2 of 4 agents still failing in the window (share 0.5).
    assert g.dial_answered("1001", 6.0) is None and g.tripped
    # The failures age out of the window while dials succeed.
    assert g.dial_answered("2001", 33.0) is None  # failing 1 of 4: 0.25, not below 0.25
    clear = g.dial_answered("2002", 34.0)
    assert clear is not None and not clear.tripped
    assert (clear.failing, clear.dialled) == (0, 4)
    assert g.may_pause and "succeed again" in clear.describe()


def test_no_dials_at_all_keeps_it_tripped():
    g = guard(min_agents=2, clear_answers=1)
    g.dial_failed("1", "CONGESTION", 0.0)
    g.dial_failed("2", "CONGESTION", 0.1)
    assert g.tripped
    assert g.counts(1000.0) == (0, 0)
    assert g.tripped  # nothing said the switch is back


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window_s": 0.0}, "window_s must be > 0"),
        ({"min_agents": 0}, "min_agents must be >= 1"),
        ({"share": 1.5}, r"share must be within \(0, 1\]"),
        ({"share": 0.0}, "share must be within"),
        ({"clear_answers": 0}, "clear_answers must be >= 1"),
    ],
)
def test_settings_refuse_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GuardSettings(**kwargs)
