"""Agents as the ACD sees them: a configured seat (:class:`AgentSpec`) and its
live routing state (:class:`Agent`).

State machine (every transition is made by :class:`acd.core.Acd` and logged
as ``agent 1001: OLD -[event]-> NEW``)::

    LOGGED_OUT -login-> AVAILABLE -routed-> RESERVED -ringing-> RINGING -answered-> ON_CALL
    ON_CALL -agent_released-> WRAP_UP -wrap-up end-> AVAILABLE (or PAUSED if a pause was asked)
    RESERVED|RINGING -no_answer-> PAUSED (RONA: rang the whole ring time)
    RESERVED|RINGING -busy / refused / unavailable / congestion-> AVAILABLE,
        skipped for a short back-off (not the agent's fault: never paused)
    RESERVED|RINGING -caller left / reservation expired / ring cancelled-> AVAILABLE
    AVAILABLE|WRAP_UP -pause-> PAUSED -resume-> AVAILABLE
    any but RINGING|ON_CALL -logout-> LOGGED_OUT

Only an AVAILABLE agent whose phone is registered (not ``offline``), not busy
with a call the ACD did not give it (``busy_external``) and not in a back-off
after a failed ring (``skip_until``) is ever offered a call. None of these
three changes the agent's state: presence and switch faults are not pauses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType

__all__ = ["MAX_SKILL_LEVEL", "MIN_SKILL_LEVEL", "Agent", "AgentSpec", "AgentState"]

MIN_SKILL_LEVEL = 1
MAX_SKILL_LEVEL = 10


class AgentState(Enum):
    """Where an agent is in the routing state machine (see the module docstring)."""

    # Members are singletons compared by identity: hash them the same way.
    # Enum's own __hash__ is a Python-level hash(self._name_), and the ACD
    # keys its per-queue counters by state on every state change.
    __hash__ = object.__hash__

    LOGGED_OUT = "LOGGED_OUT"
    AVAILABLE = "AVAILABLE"
    RESERVED = "RESERVED"  # chosen for a call (ConnectCall sent), phone not ringing yet
    RINGING = "RINGING"
    ON_CALL = "ON_CALL"
    WRAP_UP = "WRAP_UP"  # after-call work (话后处理)
    PAUSED = "PAUSED"  # 示忙: break, training, RONA...


# States in which the agent is bound to one call (``Agent.call_id`` is set).
CALL_STATES = frozenset(
    {AgentState.RESERVED, AgentState.RINGING, AgentState.ON_CALL, AgentState.WRAP_UP}
)
# Logged in and not paused: counts as staffing a queue for the estimated wait.
STAFFED_STATES = frozenset(
    {
        AgentState.AVAILABLE,
        AgentState.RESERVED,
        AgentState.RINGING,
        AgentState.ON_CALL,
        AgentState.WRAP_UP,
    }
)


@dataclass(frozen=True)
class AgentSpec:
    """A configured seat.

    ``skills`` maps a skill to a level from 1 to 10 (higher is better);
    ``queues`` is the agent's home queue set, served regardless of skill.
    """

    agent_id: str  # the SIP extension, e.g. "1001"
    name: str
    skills: Mapping[str, int] = field(default_factory=dict)
    queues: tuple[str, ...] = ()
    mobile: str | None = None

    def __post_init__(self) -> None:
        if not self.agent_id:
            raise ValueError("agent_id must not be empty")
        for skill, level in self.skills.items():
            if isinstance(level, bool) or not isinstance(level, int):
                raise ValueError(
                    f"agent {self.agent_id}: skill {skill!r} level must be an integer, "
                    f"got {level!r}"
                )
            if not MIN_SKILL_LEVEL <= level <= MAX_SKILL_LEVEL:
                raise ValueError(
                    f"agent {self.agent_id}: skill {skill!r} level {level} is outside "
                    f"{MIN_SKILL_LEVEL}..{MAX_SKILL_LEVEL}"
                )
        # A private read-only copy: the caller's dict may change later, the spec must not.
        object.__setattr__(self, "skills", MappingProxyType(dict(self.skills)))
        object.__setattr__(self, "queues", tuple(self.queues))


@dataclass
class Agent:
    """The live state of one agent. Read it freely; only :class:`acd.core.Acd`
    changes it (its indexes follow every change it makes)."""

    spec: AgentSpec
    state: AgentState = AgentState.LOGGED_OUT
    state_since: float = 0.0
    pause_reason: str | None = None
    call_id: str | None = None
    """The call the agent is reserved for, ringing for, talking on or wrapping up."""
    idle_since: float = 0.0
    """When the agent last became available after work (login, resume, end of
    wrap-up); the longest-idle policies order by it. A reservation released
    through no fault of the agent (the caller hung up) keeps it."""
    calls_handled: int = 0
    busy_external: bool = False
    """The agent's phone has a live channel the ACD did not give it."""
    offline: bool = False
    """The agent's phone is not registered (presence): not routable until it is."""
    skip_until: float | None = None
    """After a ring that failed through no fault of the agent (busy, refused,
    unreachable): not routable until then."""
    # Beyond the required fields:
    queue: str | None = None
    """Queue of ``call_id`` (for the handle-time average of that queue)."""
    answered_at: float | None = None
    pending_pause: str | None = None
    """A pause asked for during a call: applied when the call (and wrap-up) ends."""
    deadline: float | None = None
    """End of the current wrap-up or reservation (a timer of the core)."""

    @property
    def agent_id(self) -> str:
        return self.spec.agent_id

    @property
    def routable(self) -> bool:
        """May be offered a call now."""
        return (
            self.state is AgentState.AVAILABLE
            and not self.busy_external
            and not self.offline
            and self.skip_until is None
        )
