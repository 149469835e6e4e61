"""The rows of the append-only ACD event log (PostgreSQL table ``acd_event``).

Every queue, agent and call event the engine acts on becomes one ``LogEvent``;
every KPI can be recomputed from these rows alone. This module is the contract
between the engine (which emits them), the writer (which stores them, retrying
until committed, exactly once) and the recompute queries.

KPI conventions (see ../shared/DOMAIN.md):
- A call is *offered* to the queue it first entered (``CALL_QUEUED``, at the
  moment the 15 s clock starts) and belongs to a window by the time of its
  queue *outcome*: ``CALL_ANSWERED`` (first answer only), ``CALL_ABANDONED``,
  ``CALL_OVERFLOWED`` to a callback, or ``CALL_LOST``. Calls still waiting are
  reported as "waiting now", not in windows.
- ``wait_s`` on an outcome row is seconds from first queue entry to the outcome.
- A short abandon is an abandon with ``wait_s <= short_abandon_s``.
- A transfer never creates a second offer or a second answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Call events
CALL_ARRIVED = "CALL_ARRIVED"
CALL_QUEUED = "CALL_QUEUED"  # first queue entry: the call is offered
CALL_REQUEUED = "CALL_REQUEUED"  # back in queue after a ring without answer (RONA)
CALL_OFFERED_TO_AGENT = "CALL_OFFERED_TO_AGENT"  # ACD chose an agent (ConnectCall)
AGENT_RINGING = "AGENT_RINGING"
CALL_ANSWERED = "CALL_ANSWERED"  # outcome; wait_s set; first answer only
AGENT_CONNECTED = "AGENT_CONNECTED"  # a later agent (transfer target) answered
AGENT_NO_ANSWER = "AGENT_NO_ANSWER"
CALL_TRANSFERRED = "CALL_TRANSFERRED"
CALL_ABANDONED = "CALL_ABANDONED"  # outcome; wait_s set
CALL_OVERFLOWED = (
    "CALL_OVERFLOWED"  # data: {"to_queue": q} or {"to": "callback"} (outcome only for callback)
)
CALL_FALLBACK = "CALL_FALLBACK"  # the dialplan safety net took the caller (engine absent or late)
CALL_ENDED = "CALL_ENDED"  # talk_s set when the call was answered
CALL_LOST = "CALL_LOST"  # vanished while the engine was disconnected; outcome if never answered

# Agent events
AGENT_LOGIN = "AGENT_LOGIN"
AGENT_LOGOUT = "AGENT_LOGOUT"
AGENT_PAUSED = "AGENT_PAUSED"  # data: {"reason": "..."}
AGENT_RESUMED = "AGENT_RESUMED"
AGENT_STATE = "AGENT_STATE"  # data: {"old": "...", "new": "...", "reason": "..."}
WRAPUP_ENDED = "WRAPUP_ENDED"  # wrap_s set

CALL_KINDS = frozenset(
    {
        CALL_ARRIVED,
        CALL_QUEUED,
        CALL_REQUEUED,
        CALL_OFFERED_TO_AGENT,
        AGENT_RINGING,
        CALL_ANSWERED,
        AGENT_CONNECTED,
        AGENT_NO_ANSWER,
        CALL_TRANSFERRED,
        CALL_ABANDONED,
        CALL_OVERFLOWED,
        CALL_FALLBACK,
        CALL_ENDED,
        CALL_LOST,
    }
)
AGENT_KINDS = frozenset(
    {AGENT_LOGIN, AGENT_LOGOUT, AGENT_PAUSED, AGENT_RESUMED, AGENT_STATE, WRAPUP_ENDED}
)
KINDS = CALL_KINDS | AGENT_KINDS


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One row of the ACD event log. The field order is part of the contract
    (``AcdService._log`` builds rows positionally)."""

    at: float  # epoch seconds when it happened (Asterisk's event time where there is one)
    kind: str
    call_id: str | None = None
    line: str | None = None
    queue: str | None = None
    skill: str | None = None
    agent: str | None = None
    caller_number: str | None = None
    wait_s: float | None = None
    talk_s: float | None = None
    wrap_s: float | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    seq: int = 0
    """Distinguishes repeats of one kind for one subject (the 2nd RONA of a call)."""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown event kind {self.kind!r}")
        if self.call_id is None and self.agent is None:
            raise ValueError(f"{self.kind} needs a call_id or an agent")

    @property
    def dedup_key(self) -> str:
        """Idempotency key: a retried write of the same event is stored once."""
        if self.call_id is not None:
            return f"{self.call_id}:{self.kind}:{self.seq}"
        # Agent events recur for ever (a login every day) and an engine restart
        # starts its counters again: the event's own time keeps them apart,
        # and a retried write repeats that time exactly.
        return f"agent:{self.agent}:{self.kind}:{self.at:.6f}:{self.seq}"
