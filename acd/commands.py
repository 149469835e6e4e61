"""What the ACD core asks the engine to do, or tells it happened.

Every method of :class:`acd.core.Acd` returns a list of these, in the order
they happened. All are dataclasses and carry ``at`` (epoch seconds). They
are values nobody changes once returned; not ``frozen`` because a frozen
dataclass costs three times as much to build, and the ACD returns one or
more per call change. They deliberately have no ``__slots__``: the service
serialises them with ``vars()``.
"""

from __future__ import annotations

from dataclasses import dataclass

from acd.agents import AgentState

__all__ = [
    "AgentStateChanged",
    "CallOverflowed",
    "Command",
    "ConnectCall",
    "OfferCallback",
    "ReservationExpired",
]


@dataclass
class ConnectCall:
    """Send the caller to ring this agent. The agent is RESERVED for the call
    until ``ringing`` (or until the reservation times out)."""

    call_id: str
    agent: str
    queue: str
    at: float


@dataclass
class OfferCallback:
    """The caller hears "we will call you back", a callback request is
    recorded and the caller leaves the queue (the core has removed it).

    ``estimated_wait_s`` is None when nobody serves the queue (the wait is
    unbounded): never ``inf``, which JSON and PostgreSQL ``jsonb`` refuse.
    """

    call_id: str
    queue: str
    at: float
    estimated_wait_s: float | None


@dataclass
class CallOverflowed:
    """Informational: the core moved the waiting call to another queue.
    ``estimated_wait_s`` (in ``from_queue``) is None when nobody served it."""

    call_id: str
    from_queue: str
    to_queue: str
    at: float
    estimated_wait_s: float | None


@dataclass
class AgentStateChanged:
    """An agent changed state. ``reason`` is the pause reason when ``new`` is
    PAUSED (the RONA reason for a RONA); ``event`` names what caused it
    (``login``, ``routed``, ``no_answer``, ``wrap-up timeout``...)."""

    agent: str
    old: AgentState
    new: AgentState
    at: float
    reason: str | None
    event: str = ""


@dataclass
class ReservationExpired:
    """Informational: the agent never started ringing for the call within
    ``reservation_timeout_s``; both are released and the call waits again."""

    call_id: str
    agent: str
    at: float


Command = ConnectCall | OfferCallback | CallOverflowed | AgentStateChanged | ReservationExpired
