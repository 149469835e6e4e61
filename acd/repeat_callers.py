"""Repeat callers (首接负责): the agent who last answered each number, kept
for ``acd.repeat_caller_days`` so that the ACD can offer the caller to that
agent first and the screen-pop can say so. Fed by the ACD's event-log rows;
filled at start from the event log (see :mod:`acd.restore`)."""

from __future__ import annotations

from collections.abc import Mapping

from acd import log_events as E
from acd.log_events import LogEvent

__all__ = ["RepeatCallers"]


class RepeatCallers:
    def __init__(self, *, window_s: float) -> None:
        self.window_s = window_s
        self._last: dict[str, tuple[str, float]] = {}

    def __len__(self) -> int:
        return len(self._last)

    def record(self, event: LogEvent) -> None:
        """An event-log row: an answered call remembers its caller's agent."""
        if event.kind == E.CALL_ANSWERED and event.caller_number and event.agent:
            self._last[event.caller_number] = (event.agent, event.at)

    def restore(self, found: Mapping[str, tuple[str, float]]) -> None:
        """Numbers -> (agent, answered at), read from the event log at start."""
        self._last.update(found)

    def last_agent_for(self, number: str, now: float) -> str | None:
        """The agent who last answered *number* within the window, or None."""
        found = self._last.get(number)
        if found is None:
            return None
        agent, at = found
        return agent if now - at <= self.window_s else None
