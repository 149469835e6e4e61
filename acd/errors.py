"""Errors of the ACD core. Agent actions raise them before changing anything."""

from __future__ import annotations

__all__ = ["AcdError", "InvalidAgentAction", "UnknownAgent", "UnknownQueue"]


class AcdError(Exception):
    """Base of the ACD's domain errors."""


class UnknownAgent(AcdError):
    """No agent with this id is configured."""

    def __init__(self, agent_id: str) -> None:
        super().__init__(f"unknown agent {agent_id!r}: not in the configured agents")
        self.agent_id = agent_id


class UnknownQueue(AcdError):
    """No queue with this name is configured."""

    def __init__(self, queue: str, context: str = "") -> None:
        where = f" ({context})" if context else ""
        super().__init__(f"unknown queue {queue!r}{where}: not in the configured queues")
        self.queue = queue


class InvalidAgentAction(AcdError):
    """The action is not possible in the agent's current state; the message
    says the state and what to do instead."""
