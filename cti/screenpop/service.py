"""Screen-pop performed: on ``AgentRinging`` (a bus subscriber with a few
workers, so that pops for different agents do not wait on each other), the
caller's history is read from PostgreSQL (bounded in time: a slow database
delays the pop by at most ``history_timeout_s``, never the call) and the frame
is pushed to the agent's WebSockets."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from common.call_changes import AgentRinging

from .core import PastCall, PastOrder, screen_pop

__all__ = ["Pusher", "ScreenPopService"]

log = logging.getLogger(__name__)

SENT_KEPT = 1_000


class Pusher(Protocol):
    def agent_connected(self, agent: str) -> bool: ...
    def unmasked_for(self, agent: str) -> bool: ...
    async def send_to_agent(self, agent: str, frame: Mapping[str, Any]) -> int: ...


_OUTCOME_OF_KIND = {
    "CALL_ANSWERED": "answered",
    "CALL_ABANDONED": "abandoned",
    "CALL_LOST": "lost",
    "CALL_OVERFLOWED": "overflowed",
    "CALL_FALLBACK": "fallback",
}
_HISTORY_SQL = """
SELECT call_id,
       extract(epoch FROM min(at)) AS at,
       min(line) AS line,
       max(agent) FILTER (WHERE kind = 'CALL_ANSWERED') AS agent,
       (array_agg(kind ORDER BY at) FILTER (WHERE kind IN
           ('CALL_ANSWERED', 'CALL_ABANDONED', 'CALL_LOST', 'CALL_OVERFLOWED',
            'CALL_FALLBACK')))[1] AS outcome_kind
FROM acd_event
WHERE caller_number = $1 AND call_id <> $2 AND call_id IS NOT NULL
GROUP BY call_id
ORDER BY min(at) DESC
LIMIT $3
"""


_ORDERS_SQL = """
SELECT order_no, city_order_no, status, appeal_type, title,
       extract(epoch FROM created_at) AS created_at
FROM work_order
WHERE caller_number = $1
ORDER BY created_at DESC
LIMIT $2
"""


class ScreenPopService:
    """Pushes a screen-pop to the agent's desktop when its phone starts ringing."""

    def __init__(
        self,
        *,
        calls: Any,
        last_agent_for: Callable[[str], str | None],
        pusher: Pusher,
        pool: Any,
        history_limit: int = 10,
        history_timeout_s: float = 0.15,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._calls = calls
        self._last_agent_for = last_agent_for
        self._pusher = pusher
        self._pool = pool
        self._history_limit = history_limit
        self._history_timeout_s = history_timeout_s
        self._clock = clock
        self.sent: deque[tuple[str, str, float]] = deque(maxlen=SENT_KEPT)
        """The latest pops: (call_id, agent, seconds from the ring event to the
        frame sent)."""

    def wanted(self, change: AgentRinging) -> bool:
        """Only rings of agents with a desktop open are popped."""
        return self._pusher.agent_connected(change.agent)

    async def on_ringing(self, change: AgentRinging, seen_at: float | None = None) -> None:
        await self._pop(change, self._clock() if seen_at is None else seen_at)

    async def _pop(self, change: AgentRinging, seen_at: float) -> None:
        call = self._calls.get(change.call_id)
        if call is None:
            return  # the caller hung up meanwhile
        history, orders = await asyncio.gather(
            self._history(call.caller_number, call.call_id), self._orders(call.caller_number)
        )
        frame = screen_pop(
            orders=orders,
            call=call,
            agent=change.agent,
            rung_at=change.at,
            history=history,
            repeat_agent=self._last_agent_for(call.caller_number),
            unmasked=self._pusher.unmasked_for(change.agent),
        )
        sent = await self._pusher.send_to_agent(change.agent, frame)
        if sent:
            self.sent.append((call.call_id, change.agent, self._clock() - seen_at))

    async def _fetch(self, what: str, sql: str, *args: Any) -> list[Any]:
        """Rows for the pop, or none when the database is slow, down or
        refuses: the pop goes out anyway, within its time bound."""
        if self._pool is None:
            return []
        try:
            async with asyncio.timeout(self._history_timeout_s):
                return list(await self._pool.fetch(sql, *args))
        except (TimeoutError, OSError) as exc:
            log.warning("screen-pop without %s (database slow or down: %r)", what, exc)
        except Exception as exc:  # asyncpg errors
            log.warning("screen-pop without %s: %s", what, exc)
        return []

    async def _orders(self, number: str) -> list[PastOrder]:
        if not number:
            return []
        rows = await self._fetch("work orders", _ORDERS_SQL, number, self._history_limit)
        return [
            PastOrder(
                order_no=row["order_no"],
                city_order_no=row["city_order_no"],
                status=row["status"],
                appeal_type=row["appeal_type"],
                title=row["title"],
                created_at=float(row["created_at"]),
            )
            for row in rows
        ]

    async def _history(self, number: str, call_id: str) -> list[PastCall]:
        if not number:
            return []
        rows = await self._fetch("history", _HISTORY_SQL, number, call_id, self._history_limit)
        return [
            PastCall(
                call_id=row["call_id"],
                at=float(row["at"]),
                line=row["line"],
                agent=row["agent"],
                outcome=_OUTCOME_OF_KIND.get(row["outcome_kind"] or "", "unknown"),
            )
            for row in rows
        ]
