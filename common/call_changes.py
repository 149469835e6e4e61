"""What the call model reports after each event: typed "call changes".

The engine fans these out (ACD, KPI tracker, event log, dashboards). Every
change names its call and carries ``at``, Asterisk's time of the event that
caused it, so a replay reports the same times as the live run.

Two audiences read them:

* per-call / KPI: :class:`CallArrived`, :class:`CallQueued`,
  :class:`CallAnswered` (once per call: the 15 s clock stops here),
  :class:`CallEnded`, :class:`CallLost`;
* per-agent: :class:`AgentRinging`, :class:`AgentNoAnswer`,
  :class:`CallAnswered` (its ``agent``) or :class:`AgentConnected` (any later
  agent, e.g. a transfer target), :class:`AgentLeft`, :class:`CallTransferred`.
  An agent still connected when the caller hangs up is released by
  :class:`CallEnded` (the call's last ``agent``).

Changes are values: nobody changes one after it is reported. They are plain
slotted dataclasses rather than frozen ones only because a frozen dataclass
costs three times as much to build, and building them is on the ingest path.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = [
    "CallPhase",
    "AgentConnected",
    "AgentLeft",
    "AgentNoAnswer",
    "AgentRinging",
    "CallAnswered",
    "CallArrived",
    "CallChange",
    "CallEnded",
    "CallLost",
    "CallQueued",
    "CallTransferred",
]


class CallPhase(Enum):
    """Where a citizen's call is, from the caller's point of view."""

    # Members are singletons compared by identity: hash them the same way
    # (Enum's own __hash__ is a Python-level hash(self._name_); phases are
    # looked up in sets on the ingest path).
    __hash__ = object.__hash__

    ARRIVED = "ARRIVED"  # trunk channel exists, not yet queued (greeting / IVR)
    QUEUED = "QUEUED"  # waiting for a human (first entry, after a failed ring, ...)
    RINGING = "RINGING"  # an agent leg is ringing for it
    CONNECTED = "CONNECTED"  # caller bridged with an agent
    AFTER_CALL = "AFTER_CALL"  # agent hung up first, caller still on the line (survey)
    ENDED = "ENDED"  # caller channel hung up


@dataclass(slots=True)
class CallChange:
    """Base of all changes."""

    call_id: str
    at: float


@dataclass(slots=True)
class CallArrived(CallChange):
    """A citizen's call reached the switch (greeting/IVR; not yet offered)."""

    line: str | None
    caller_number: str
    caller_name: str
    dialled: str


@dataclass(slots=True)
class CallQueued(CallChange):
    """The caller waits for a human. ``requeued`` is False only for the first
    entry, the one that starts the 15 s clock."""

    line: str | None
    queue: str | None
    requeued: bool
    app_queue: bool = False
    """Asterisk's app_queue serves this caller (a line routed by app_queue):
    the engine never routes it, and counts it only where configured."""


@dataclass(slots=True)
class AgentRinging(CallChange):
    """An agent's phone is being rung for the call."""

    agent: str


@dataclass(slots=True)
class CallAnswered(CallChange):
    """The first agent answered; ``wait_s`` is the caller's queue wait (KPI)."""

    agent: str
    wait_s: float | None


@dataclass(slots=True)
class AgentConnected(CallChange):
    """A further agent (after a transfer) is now talking to the caller of an
    already answered call. Not an answer for the KPIs."""

    agent: str


@dataclass(slots=True)
class AgentNoAnswer(CallChange):
    """A ring of an agent for the caller failed: NOANSWER, BUSY, CHANUNAVAIL,
    CONGESTION... (``acd.dial_outcomes`` tells whose fault it was).

    ``rang_s``: seconds from the dial to its end; None when the dial failed
    before the agent's phone had a channel (an unregistered phone, no media
    port): then only the dialplan's ``HotlineDialResult`` reports it."""

    agent: str
    dial_status: str
    rang_s: float | None = None


@dataclass(slots=True)
class CallTransferred(CallChange):
    """An agent transferred the caller; ``kind`` is ``"blind"`` or ``"attended"``."""

    from_agent: str | None
    target: str
    kind: str


@dataclass(slots=True)
class AgentLeft(CallChange):
    """An agent's leg left the caller (hung up, transferred away) while the
    caller stays on the line."""

    agent: str


@dataclass(slots=True)
class CallEnded(CallChange):
    """The caller's channel hung up."""

    abandoned: bool
    wait_s: float | None
    talk_s: float | None
    cause: str | None


@dataclass(slots=True)
class CallLost(CallChange):
    """The call vanished while the AMI link was down (found by a resync)."""

    reason: str
