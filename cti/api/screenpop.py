"""Screen-pop: what an agent's desktop shows the moment its phone rings.

:func:`screen_pop` is pure: the ringing call as the call model sees it, the
caller's earlier calls from the event log, whether the caller is a repeat
caller (首接负责), and whether the agent's role may see the number unmasked.
:class:`ScreenPopService` wires it: it listens to the engine's call changes
and, on ``AgentRinging``, reads the caller's history from PostgreSQL (bounded
in time: a slow database delays the pop by at most ``history_timeout_s``,
never the call) and pushes the frame to the agent's WebSockets.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cti.calls import AgentRinging, CallChange

from .roles import mask_number

__all__ = ["PastCall", "PastOrder", "ScreenPopService", "mask_name", "screen_pop"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PastOrder:
    """One of the caller's work orders, newest first."""

    order_no: str
    city_order_no: str | None
    status: str
    appeal_type: str
    title: str
    created_at: float


@dataclass(frozen=True)
class PastCall:
    """One of the caller's earlier calls, from the event log."""

    call_id: str
    at: float
    line: str | None
    agent: str | None
    outcome: str  # "answered", "abandoned", "lost", "overflowed", "fallback" or "unknown"


def mask_name(name: str, *, visible: bool) -> str:
    """``张三丰`` -> ``张**``: the family name (first character) only."""
    if visible or len(name) <= 1:
        return name
    return name[0] + "*" * (len(name) - 1)


def screen_pop(
    *,
    call: Any,
    agent: str,
    rung_at: float,
    history: Sequence[PastCall],
    repeat_agent: str | None,
    unmasked: bool,
    orders: Sequence[PastOrder] = (),
) -> dict[str, Any]:
    """The screen-pop frame for ``agent`` ringing for ``call`` (a call-model ``Call``)."""
    queued_at = call.queued_at if call.queued_at is not None else call.arrived_at
    return {
        "type": "screen_pop",
        "call_id": call.call_id,
        "agent": agent,
        "line": call.line,
        "dialled": call.dialled,
        "caller_number": mask_number(call.caller_number, visible=unmasked),
        "caller_name": mask_name(call.caller_name, visible=unmasked),
        "number_masked": not unmasked,
        "ivr": list(getattr(call, "ivr_choices", ()) or ()),
        "waited_s": round(max(0.0, rung_at - queued_at), 1),
        "rung_at": rung_at,
        "repeat_caller": bool(history) or bool(orders),
        "last_agent": repeat_agent,
        # A transferred call: who passed it on (an agent, or None for a queue move).
        "transferred_from": call.transfers[-1][0] if getattr(call, "transfers", None) else None,
        "history": [
            {
                "call_id": past.call_id,
                "at": past.at,
                "line": past.line,
                "agent": past.agent,
                "outcome": past.outcome,
            }
            for past in history
        ],
        "work_orders": [
            {
                "order_no": order.order_no,
                "city_order_no": order.city_order_no,
                "status": order.status,
                "appeal_type": order.appeal_type,
                "title": order.title,
                "created_at": order.created_at,
            }
            for order in orders
        ],
    }


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
        engine: Any,
        pusher: Pusher,
        pool: Any,
        history_limit: int = 10,
        history_timeout_s: float = 0.15,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self._pusher = pusher
        self._pool = pool
        self._history_limit = history_limit
        self._history_timeout_s = history_timeout_s
        self._clock = clock
        self._tasks: set[asyncio.Task[None]] = set()
        self.sent: list[tuple[str, str, float]] = []
        """(call_id, agent, seconds from the ring event to the frame sent)."""

    def on_change(self, change: CallChange) -> None:
        """An engine listener (synchronous): the work goes to an owned task."""
        if not isinstance(change, AgentRinging) or not self._pusher.agent_connected(change.agent):
            return
        task = asyncio.get_running_loop().create_task(self._pop(change, self._clock()))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("screen-pop failed", exc_info=task.exception())

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _pop(self, change: AgentRinging, seen_at: float) -> None:
        call = self._engine.model.calls.get(change.call_id)
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
            repeat_agent=self._engine.last_agent_for(call.caller_number),
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
