"""Routing policies: which available agent gets a queue's next call.

A policy gives each available agent a sort key per queue; the core keeps a
heap per queue ordered by it, so choosing an agent costs O(log n) instead of a
scan. The key is computed when the agent becomes available and kept while it
stays available, so it may only depend on what does not change meanwhile: the
agent's spec, ``idle_since`` and ``calls_handled``.
"""

from __future__ import annotations

from typing import Protocol

from acd.agents import Agent
from acd.queues import QueueSpec

__all__ = ["LongestIdle", "RoutingPolicy", "SkillsLevel", "default_policy"]

AgentKey = tuple[float, ...]


class RoutingPolicy(Protocol):
    """Orders the available agents serving a queue: the lowest key is offered
    the queue's next call."""

    def agent_key(self, agent: Agent, queue: QueueSpec) -> AgentKey: ...


class LongestIdle:
    """The agent idle for the longest time (earliest ``idle_since``) first."""

    def agent_key(self, agent: Agent, queue: QueueSpec) -> AgentKey:
        return (agent.idle_since,)

    def __repr__(self) -> str:
        return "LongestIdle()"


class SkillsLevel:
    """The agent with the highest level in the queue's skill first, then the
    longest idle among equals. Agents serving the queue through their home
    queue set without the skill rank as level 0; a queue without a skill is
    plain longest idle.

    With ``level_first=False`` the level is ignored (longest idle among the
    qualified), which is :class:`LongestIdle`.
    """

    def __init__(self, *, level_first: bool = True) -> None:
        self.level_first = level_first

    def agent_key(self, agent: Agent, queue: QueueSpec) -> AgentKey:
        if not self.level_first:
            return (agent.idle_since,)
        return (-queue.level_of(agent.spec), agent.idle_since)

    def __repr__(self) -> str:
        return f"SkillsLevel(level_first={self.level_first})"


def default_policy(*, level_first: bool) -> RoutingPolicy:
    """The policy used when none is given: :class:`SkillsLevel`."""
    return SkillsLevel(level_first=level_first)
