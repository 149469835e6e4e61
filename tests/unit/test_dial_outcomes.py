"""acd.dial_outcomes: every DIALSTATUS Asterisk can report, and the back-off."""

from __future__ import annotations

import pytest

from acd.dial_outcomes import DialOutcome, SkipPolicy, classify_dial

Outcome = DialOutcome
RING_S = 15.0


def classify(status: str, rang_s: float | None = 3.0, registered: bool = True) -> DialOutcome:
    return classify_dial(status, rang_s=rang_s, ring_timeout_s=RING_S, registered=registered)


@pytest.mark.parametrize(
    ("status", "rang_s", "registered", "expected"),
    [
        # Rang the whole ring time: the agent let it ring (RONA).
        ("NOANSWER", 15.0, True, Outcome.NO_ANSWER),
        ("NOANSWER", 14.2, True, Outcome.NO_ANSWER),  # event clock vs Dial's timer
        ("noanswer", 20.0, True, Outcome.NO_ANSWER),
        # NOANSWER well before the ring time: SIP 480 maps to cause 19 at once.
        ("NOANSWER", 0.05, True, Outcome.REFUSED),
        ("NOANSWER", 13.9, True, Outcome.REFUSED),
        ("NOANSWER", None, True, Outcome.REFUSED),
        ("BUSY", 0.1, True, Outcome.BUSY),  # 486 / 600
        ("BUSY", None, False, Outcome.BUSY),
        ("CONGESTION", 0.1, True, Outcome.CONGESTION),  # 503
        ("CHANUNAVAIL", None, True, Outcome.UNAVAILABLE),  # no RTP port, 488
        ("CHANUNAVAIL", 0.2, True, Outcome.UNAVAILABLE),
        ("CHANUNAVAIL", None, False, Outcome.OFFLINE),  # no contact registered
        (" chanunavail ", None, False, Outcome.OFFLINE),
        ("CANCEL", 3.0, True, Outcome.CANCELLED),
        ("DONTCALL", 1.0, True, Outcome.REFUSED),
        ("TORTURE", 1.0, True, Outcome.REFUSED),
        ("INVALIDARGS", None, True, Outcome.UNAVAILABLE),
        ("SOMETHING-NEW", None, True, Outcome.UNAVAILABLE),  # unknown: never the agent's fault
        ("", None, False, Outcome.OFFLINE),
    ],
)
def test_every_dial_status_is_classified(status, rang_s, registered, expected):
    assert classify(status, rang_s, registered) is expected


def test_only_a_full_ring_out_is_the_agents_fault():
    faults = {outcome for outcome in DialOutcome if outcome.agents_fault}
    assert faults == {Outcome.NO_ANSWER}
    assert not Outcome.CANCELLED.is_failure
    assert all(o.is_failure for o in DialOutcome if o is not Outcome.CANCELLED)


def test_an_answered_dial_has_no_failure_outcome():
    with pytest.raises(ValueError, match="answered dial"):
        classify("ANSWER")


def test_skips_double_per_failure_in_a_row_up_to_a_cap():
    policy = SkipPolicy(busy_skip_s=4.0, unavailable_backoff_s=5.0, unavailable_backoff_max_s=30.0)
    assert [policy.skip_s(Outcome.BUSY, n) for n in (1, 2, 3, 4, 9)] == [4.0, 8.0, 16.0, 30.0, 30.0]
    assert policy.skip_s(Outcome.REFUSED, 2) == 8.0
    assert [policy.skip_s(Outcome.UNAVAILABLE, n) for n in (1, 2, 3, 4, 5, 60)] == [
        5.0,
        10.0,
        20.0,
        30.0,
        30.0,
        30.0,
    ]
    assert policy.skip_s(Outcome.CONGESTION, 2) == 10.0
    assert policy.skip_s(Outcome.OFFLINE, 1) == 0.0  # presence takes it out
    assert policy.skip_s(Outcome.CANCELLED, 1) == 0.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"busy_skip_s": -1.0}, "busy_skip_s must be >= 0"),
        ({"unavailable_backoff_s": float("nan")}, "unavailable_backoff_s must be >= 0"),
        ({"unavailable_backoff_s": 10.0, "unavailable_backoff_max_s": 5.0}, "max_s must be >="),
        ({"busy_skip_s": 10.0, "unavailable_backoff_max_s": 5.0}, "and busy_skip_s"),
    ],
)
def test_skip_policy_refuses_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SkipPolicy(**kwargs)
