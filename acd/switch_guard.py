"""The systemic-fault guard (pure): many agents failing at once is the switch.

When dials to many different agents fail within a short window (the media
server ran out of RTP ports, a SIP proxy or a network segment is down, the
agents' phones all lost their registrations at once), the failures say
nothing about the agents. Pausing each "no answer" would empty the floor
exactly when callers pile up. The guard watches every dial's outcome; when

    distinct agents whose last dial in the window failed >= ``min_agents``  and
    those agents / distinct agents dialled in the window >= ``share``

it *trips*: nobody is paused for a ring-no-answer while it is tripped, and
the agents paused by RONA since the burst began are handed back to be
resumed. It clears (with hysteresis) once ``clear_answers`` dials have been
answered since it tripped and the failing share is below half of ``share``.
Routing goes on throughout.

No I/O, no clock: every input carries its time.
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

__all__ = ["GuardSettings", "GuardTransition", "SwitchGuard"]


@dataclass(frozen=True)
class GuardSettings:
    window_s: float = 30.0
    min_agents: int = 5
    share: float = 0.5
    clear_answers: int = 3

    def __post_init__(self) -> None:
        if not (self.window_s > 0 and math.isfinite(self.window_s)):
            raise ValueError(f"GuardSettings.window_s must be > 0, got {self.window_s!r}")
        if self.min_agents < 1:
            raise ValueError(f"GuardSettings.min_agents must be >= 1, got {self.min_agents!r}")
        if not 0 < self.share <= 1:
            raise ValueError(f"GuardSettings.share must be within (0, 1], got {self.share!r}")
        if self.clear_answers < 1:
            raise ValueError(
                f"GuardSettings.clear_answers must be >= 1, got {self.clear_answers!r}"
            )


@dataclass(frozen=True)
class GuardTransition:
    """The guard tripped (``tripped`` True) or cleared.

    ``failing``/``dialled``: distinct agents in the window; ``outcomes``: the
    failed dials in the window by outcome name; ``resume``: on a trip, the
    agents paused for a ring-no-answer since the burst began (the caller
    resumes those still paused for that reason).
    """

    tripped: bool
    at: float
    failing: int
    dialled: int
    outcomes: dict[str, int]
    resume: tuple[str, ...] = ()

    def describe(self) -> str:
        seen = ", ".join(f"{name} {n}" for name, n in sorted(self.outcomes.items())) or "none"
        if self.tripped:
            return (
                f"dials to {self.failing} of {self.dialled} agents failed within the window "
                f"({seen}): the switch or the network, not the agents; nobody is paused for "
                f"no answer until dials succeed again ({len(self.resume)} RONA pauses undone)"
            )
        return (
            f"dials succeed again ({self.failing} of {self.dialled} agents failing in the "
            "window); ring-no-answer pauses apply again"
        )


@dataclass
class SwitchGuard:
    settings: GuardSettings = field(default_factory=GuardSettings)
    tripped: bool = False
    tripped_at: float | None = None
    answers_since_trip: int = 0
    # agent -> (time of its last dial in the window, failed outcome name or None)
    _last: OrderedDict[str, tuple[float, str | None]] = field(default_factory=OrderedDict)
    # (time, outcome name) of the failed dials in the window, oldest first
    _failures: list[tuple[float, str]] = field(default_factory=list)
    # RONA pauses in the window: agent -> time
    _pauses: dict[str, float] = field(default_factory=dict)
    # Agents in _last whose last dial failed (kept with _last, not recounted)
    _failing: int = 0

    def dial_answered(self, agent: str, at: float) -> GuardTransition | None:
        self._record(agent, at, None)
        if self.tripped:
            self.answers_since_trip += 1
        return self._evaluate(at)

    def dial_failed(self, agent: str, outcome: str, at: float) -> GuardTransition | None:
        """A dial of ``agent`` failed (``outcome``: a DialOutcome name)."""
        self._record(agent, at, outcome)
        self._failures.append((at, outcome))
        return self._evaluate(at)

    def agent_paused_for_no_answer(self, agent: str, at: float) -> None:
        """The engine paused ``agent`` for a ring-no-answer (remembered for
        the window, so that a trip can undo it)."""
        self._pauses[agent] = at

    @property
    def may_pause(self) -> bool:
        """False while tripped: a ring-no-answer is then skipped, not paused."""
        return not self.tripped

    def counts(self, now: float) -> tuple[int, int]:
        """(failing agents, dialled agents) in the window ending at ``now``."""
        self._expire(now)
        return self._failing, len(self._last)

    # -- internals ------------------------------------------------------------------

    def _record(self, agent: str, at: float, failed: str | None) -> None:
        previous = self._last.pop(agent, None)
        if previous is not None and previous[1] is not None:
            self._failing -= 1
        self._last[agent] = (at, failed)
        if failed is not None:
            self._failing += 1

    def _expire(self, now: float) -> None:
        horizon = now - self.settings.window_s
        while self._last:
            agent, (at, failed) = next(iter(self._last.items()))
            if at >= horizon:
                break
            del self._last[agent]
            if failed is not None:
                self._failing -= 1
        drop = 0
        while drop < len(self._failures) and self._failures[drop][0] < horizon:
            drop += 1
        if drop:
            del self._failures[:drop]
        if self._pauses:
            for agent in [a for a, at in self._pauses.items() if at < horizon]:
                del self._pauses[agent]

    def _outcomes(self) -> dict[str, int]:
        return dict(Counter(name for _, name in self._failures))

    def _evaluate(self, now: float) -> GuardTransition | None:
        failing, dialled = self.counts(now)
        share = failing / dialled if dialled else 0.0
        s = self.settings
        if not self.tripped and failing >= s.min_agents and share >= s.share:
            self.tripped = True
            self.tripped_at = now
            self.answers_since_trip = 0
            resume = tuple(sorted(self._pauses))
            self._pauses.clear()
            return GuardTransition(True, now, failing, dialled, self._outcomes(), resume)
        if self.tripped and self.answers_since_trip >= s.clear_answers and share < s.share / 2:
            self.tripped = False
            self.tripped_at = None
            return GuardTransition(False, now, failing, dialled, self._outcomes())
        return None
