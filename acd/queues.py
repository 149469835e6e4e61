"""Queues, the callers waiting in them, and the ACD's settings."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from acd.agents import MAX_SKILL_LEVEL, MIN_SKILL_LEVEL, AgentSpec

__all__ = ["AcdSettings", "CallKey", "QueueSpec", "WaitingCall"]

# Service order of waiting calls: higher priority first, then first queue
# entry, then arrival order at the core. The call id makes the entry self-
# describing; it is never compared because ``enqueued_seq`` is unique.
CallKey = tuple[int, float, int, str]


@dataclass(frozen=True)
class QueueSpec:
    """A queue and who serves it.

    An agent serves the queue if the queue is in its home set
    (``AgentSpec.queues``) or it has ``skill`` at ``min_level`` or better.
    When the estimated wait of a caller exceeds ``overflow_wait_s`` the caller
    moves (once) to ``overflow_queue`` (both must be set for overflow to
    apply); otherwise, above ``callback_wait_s``, the caller is offered a
    callback instead of waiting.
    """

    name: str
    line: str
    skill: str | None = None
    min_level: int = 1
    overflow_queue: str | None = None
    overflow_wait_s: float | None = None
    callback_wait_s: float | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("queue name must not be empty")
        if not MIN_SKILL_LEVEL <= self.min_level <= MAX_SKILL_LEVEL:
            raise ValueError(
                f"queue {self.name}: min_level {self.min_level} is outside "
                f"{MIN_SKILL_LEVEL}..{MAX_SKILL_LEVEL}"
            )
        if self.overflow_queue == self.name:
            raise ValueError(f"queue {self.name}: overflow_queue cannot be the queue itself")
        for key in ("overflow_wait_s", "callback_wait_s"):
            value = getattr(self, key)
            if value is not None and not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"queue {self.name}: {key} must be >= 0 seconds, got {value!r}")

    def level_of(self, agent: AgentSpec) -> int:
        """The agent's level in this queue's skill; 0 without the skill (or
        for a queue without skill)."""
        if self.skill is None:
            return 0
        return agent.skills.get(self.skill, 0)

    def served_by(self, agent: AgentSpec) -> bool:
        if self.name in agent.queues:
            return True
        return self.skill is not None and self.level_of(agent) >= self.min_level


@dataclass
class WaitingCall:
    """A caller in a queue, from first entry until answered or gone.

    Read it freely; only :class:`acd.core.Acd` changes it.
    """

    call_id: str
    queue: str
    line: str
    caller_number: str
    priority: int
    queued_at: float
    """FIRST queue entry; never changes (KPIs and FIFO order use it)."""
    enqueued_seq: int
    """Order of arrival at the core: the last FIFO tiebreak."""
    preferred_agent: str | None = None
    """Repeat caller: only this agent may take the call until ``preferred_until``."""
    preferred_until: float | None = None
    skip_agents: set[str] = field(default_factory=set)
    """Agents that let this call ring out (RONA): never offered it again."""
    offered_to: str | None = None
    """The agent reserved for / ringing with this call (it is not waiting then)."""
    overflowed: bool = False

    @property
    def key(self) -> CallKey:
        """Service order: lower first."""
        return (-self.priority, self.queued_at, self.enqueued_seq, self.call_id)


@dataclass(frozen=True)
class AcdSettings:
    ring_timeout_s: float = 15.0
    """How long an agent's phone rings (the dialplan's Dial timeout)."""
    wrapup_s: float = 10.0
    rona_pause_reason: str = "no answer"
    repeat_caller_days: float = 7.0
    repeat_caller_wait_s: float = 20.0
    reservation_timeout_s: float = 5.0
    """ConnectCall sent but the agent never started ringing: release both."""
    default_aht_s: float = 400.0
    """Handle time assumed for the estimated wait before a queue has history."""
    level_first: bool = True
    """Skills policy: highest level first, then longest idle (False: longest idle
    among the qualified)."""
    aht_samples: int = 50
    """Handle times averaged per queue for the estimated wait."""
    answered_calls_kept: int = 10_000
    """Answered calls remembered so that a transfer back to a queue can requeue
    them (they are forgotten when the caller leaves)."""

    def __post_init__(self) -> None:
        for key in (
            "ring_timeout_s",
            "wrapup_s",
            "repeat_caller_days",
            "repeat_caller_wait_s",
            "reservation_timeout_s",
        ):
            value = getattr(self, key)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"AcdSettings.{key} must be >= 0 seconds, got {value!r}")
        if not (self.default_aht_s > 0 and math.isfinite(self.default_aht_s)):
            raise ValueError(f"AcdSettings.default_aht_s must be > 0, got {self.default_aht_s!r}")
        if self.aht_samples < 1 or self.answered_calls_kept < 0:
            raise ValueError("AcdSettings.aht_samples must be >= 1, answered_calls_kept >= 0")
