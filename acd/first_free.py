"""First-free routing (pure): the simplest policy that keeps the foundation's
calls flowing. The full ACD (skills, priorities, RONA, wrap-up) replaces it.

Waiting callers are served in queue-entry order; each goes to the registered,
idle, unreserved agent who has been idle longest, never to an agent who already
let this call ring out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class WaitingCaller:
    call_id: str
    queued_at: float
    skip_agents: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Assignment:
    call_id: str
    agent: str


@dataclass
class FirstFreeRouter:
    agents: list[str]
    idle_since: dict[str, float] = field(default_factory=dict)
    reserved: dict[str, str] = field(default_factory=dict)
    """agent -> call_id sent to it and not yet ringing."""

    def assign(
        self, waiting: Iterable[WaitingCaller], *, registered: set[str], busy: Callable[[str], bool]
    ) -> list[Assignment]:
        """Pair waiting callers with free agents; reserves the agents it returns."""
        pending_calls = set(self.reserved.values())
        free = [
            a for a in self.agents if a in registered and a not in self.reserved and not busy(a)
        ]
        free.sort(key=lambda a: self.idle_since.get(a, 0.0))
        out = []
        for caller in sorted(waiting, key=lambda c: c.queued_at):
            if caller.call_id in pending_calls:
                continue
            agent = next((a for a in free if a not in caller.skip_agents), None)
            if agent is None:
                continue
            free.remove(agent)
            self.reserved[agent] = caller.call_id
            out.append(Assignment(caller.call_id, agent))
        return out

    def release(self, agent: str) -> None:
        self.reserved.pop(agent, None)

    def release_call(self, call_id: str) -> None:
        for agent, reserved_call in list(self.reserved.items()):
            if reserved_call == call_id:
                del self.reserved[agent]

    def agent_freed(self, agent: str, at: float) -> None:
        self.idle_since[agent] = at
