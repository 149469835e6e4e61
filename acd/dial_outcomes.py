"""Why an agent's phone did not take a call, and what that costs the agent (pure).

A ring that ends without an answer is not always the agent's fault. Only a
phone that rang for the whole ring time and was not picked up is a ring-no-
answer (RONA: the agent is paused, a person must resume). A busy phone, a
phone that refuses the call at once (SIP 480 "temporarily unavailable", 503,
488 when the switch ran out of media ports), or one that cannot be reached is
skipped for a short while and the caller goes straight to the next agent: a
switch-side glitch must never become a staffing collapse.

Inputs are Asterisk's ``DIALSTATUS`` (``DialEnd`` or the dialplan's
``HotlineDialResult``), how long the phone rang, and whether the phone is
registered. Asterisk maps a SIP 480 to ``NOANSWER`` *at once* (cause 19), a
486/600 to ``BUSY``, a 503 to ``CONGESTION`` and anything it could not even
start (no contact, no RTP port, 488) to ``CHANUNAVAIL``; so ``NOANSWER``
before the ring time is up is a refusal, not a ring-out.

No I/O, no clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

__all__ = ["DialOutcome", "SkipPolicy", "classify_dial"]


class DialOutcome(Enum):
    """What a failed ring of an agent's phone means for the agent."""

    NO_ANSWER = "no_answer"
    """Rang the whole ring time, nobody picked up: RONA (the agent's doing)."""
    BUSY = "busy"
    """The phone said busy (486/600): skipped briefly, never paused."""
    REFUSED = "refused"
    """Refused at once (480, or NOANSWER long before the ring time): skipped."""
    UNAVAILABLE = "unavailable"
    """The switch could not reach a registered phone (CHANUNAVAIL): skipped
    with a back-off, never paused."""
    CONGESTION = "congestion"
    """The switch or the phone is overloaded (503, CONGESTION): back-off."""
    OFFLINE = "offline"
    """CHANUNAVAIL and the phone is not registered: presence takes it out
    until it registers again."""
    CANCELLED = "cancelled"
    """The caller hung up or the engine moved the caller: nobody's fault."""

    @property
    def agents_fault(self) -> bool:
        return self is DialOutcome.NO_ANSWER

    @property
    def is_failure(self) -> bool:
        """A dial that should have worked and did not (the switch-fault
        guard counts these)."""
        return self is not DialOutcome.CANCELLED


# A NOANSWER this much before the ring time is up was a refusal, not a ring-out
# (Dial's timer and the event clock can disagree by a few hundred ms).
_RING_OUT_SLACK_S = 1.0

_BY_STATUS = {
    "BUSY": DialOutcome.BUSY,
    "CONGESTION": DialOutcome.CONGESTION,
    "CANCEL": DialOutcome.CANCELLED,
    "DONTCALL": DialOutcome.REFUSED,
    "TORTURE": DialOutcome.REFUSED,
    "INVALIDARGS": DialOutcome.UNAVAILABLE,
}


def classify_dial(
    dial_status: str,
    *,
    rang_s: float | None,
    ring_timeout_s: float,
    registered: bool,
) -> DialOutcome:
    """The outcome of a ring that did not end in ANSWER.

    ``rang_s``: seconds from the dial to its end (None: the phone never rang,
    e.g. the dial failed before a channel existed). Unknown statuses count
    as UNAVAILABLE: never the agent's fault when we cannot tell.
    """
    status = dial_status.strip().upper()
    if status == "ANSWER":
        raise ValueError("an answered dial has no failure outcome")
    if status == "NOANSWER":
        if rang_s is not None and rang_s >= ring_timeout_s - _RING_OUT_SLACK_S:
            return DialOutcome.NO_ANSWER
        return DialOutcome.REFUSED
    if status == "CHANUNAVAIL" or status not in _BY_STATUS:
        return DialOutcome.UNAVAILABLE if registered else DialOutcome.OFFLINE
    return _BY_STATUS[status]


@dataclass(frozen=True)
class SkipPolicy:
    """How long an agent is skipped after a failed ring that was not its fault.

    BUSY and REFUSED start at ``busy_skip_s`` (the agent may well be free in a
    moment), UNAVAILABLE and CONGESTION at ``unavailable_backoff_s``; both
    double per failure of that agent in a row, up to
    ``unavailable_backoff_max_s``: a phone that refuses every call is not
    offered each caller first for ever, and a glitch costs a few seconds.
    """

    busy_skip_s: float = 5.0
    unavailable_backoff_s: float = 5.0
    unavailable_backoff_max_s: float = 60.0

    def __post_init__(self) -> None:
        for key in ("busy_skip_s", "unavailable_backoff_s", "unavailable_backoff_max_s"):
            value = getattr(self, key)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"SkipPolicy.{key} must be >= 0 seconds, got {value!r}")
        if self.unavailable_backoff_max_s < max(self.unavailable_backoff_s, self.busy_skip_s):
            raise ValueError(
                "SkipPolicy.unavailable_backoff_max_s must be >= unavailable_backoff_s "
                "and busy_skip_s"
            )

    def skip_s(self, outcome: DialOutcome, consecutive_failures: int) -> float:
        """Seconds the agent is skipped; ``consecutive_failures`` counts this
        one (>= 1). 0 for outcomes that skip nobody."""
        if outcome in (DialOutcome.BUSY, DialOutcome.REFUSED, DialOutcome.NO_ANSWER):
            base = self.busy_skip_s
        elif outcome in (DialOutcome.UNAVAILABLE, DialOutcome.CONGESTION):
            base = self.unavailable_backoff_s
        else:
            return 0.0
        exponent = max(0, min(consecutive_failures - 1, 16))
        return min(self.unavailable_backoff_max_s, base * float(2**exponent))
