"""The work orders' service: performs what the desktop, the supervisors and
the city ask, through the pure core, storing each change with its outbox
messages in one transaction. The city's status events are applied once
each and in the city's order per order."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .calendar import Calendar, DeadlineRules, DueState, deadline_for, due_state
from .city.base import StatusEvent
from .city.rest import status_event_from_json, status_event_to_json
from .core import Action, Status, WorkOrder, apply, new_draft
from .inbound import Verdict, apply_events, order_events
from .store import OrderStore

__all__ = ["CallFacts", "Received", "WorkOrderChanged", "WorkOrderService"]

log = logging.getLogger(__name__)

OPEN = tuple(
    s.value
    for s in Status
    if s not in (Status.DRAFT, Status.ARCHIVED, Status.CLOSED, Status.EVALUATED)
)


@dataclass(frozen=True)
class CallFacts:
    """What the engine knows of a call, to pre-fill its work order."""

    call_id: str
    caller_number: str
    line: str | None
    ivr_choices: tuple[str, ...]
    recording_id: str | None


@dataclass(frozen=True, slots=True)
class WorkOrderChanged:
    """Published on the bus after an order changed (desktops, the demo)."""

    order_no: str
    status: str
    city_order_no: str | None
    by: str  # "local" or "city"


@dataclass(frozen=True)
class Received:
    """What became of one status event from the city."""

    event_id: str
    verdict: str  # applied | duplicate | waiting | refused | unknown_order
    reason: str = ""


class WorkOrderService:
    def __init__(
        self,
        *,
        store: OrderStore,
        pool: Any,
        calendar: Calendar,
        rules: DeadlineRules,
        near_hours: float,
        call_facts: Callable[[str], CallFacts | None],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        publish: Callable[[Any], None] = lambda change: None,
        on_draft: Callable[[WorkOrder], Awaitable[None]] | None = None,
    ) -> None:
        self.publish = publish
        self.on_draft = on_draft
        """Told of each new draft (the recording's catalog links the order)."""
        self.store = store
        self.pool = pool
        self.calendar = calendar
        self.rules = rules
        self.near_hours = near_hours
        self.call_facts = call_facts
        self.clock = clock

    # -- the desktop ----------------------------------------------------------
    async def draft_from_call(self, call_id: str, agent: str) -> WorkOrder:
        """A draft pre-filled from the call (caller, line, IVR choices,
        recording); LookupError if the engine does not know the call."""
        facts = self.call_facts(call_id)
        if facts is None:
            raise LookupError(f"no call {call_id}")
        now = self.clock()

        def build(order_no: str) -> tuple[WorkOrder, list[Any]]:
            draft = new_draft(
                order_no=order_no,
                agent=agent,
                at=now,
                line=facts.line,
                call_id=call_id,
                caller_number=facts.caller_number,
                recording_id=facts.recording_id,
                ivr_choices=facts.ivr_choices,
            )
            return draft, []

        order = await self.store.create(now.astimezone(self.calendar.tz).date(), build)
        if self.on_draft is not None:
            try:
                await self.on_draft(order)
            except Exception:  # the link is a convenience: the order stands
                log.exception("work order %s: linking it to its call failed", order.order_no)
        return order

    async def act(
        self,
        order_no: str,
        action: Action,
        *,
        actor: str,
        reason: str = "",
        data: Mapping[str, Any] | None = None,
    ) -> WorkOrder:
        """Apply *action* (TransitionError, PreconditionError, FieldError
        from the core: nothing stored). Accepting sets the deadline."""
        now = self.clock()

        def change(order: WorkOrder) -> tuple[WorkOrder, list[Any]]:
            values = dict(data or {})
            if action is Action.ACCEPT and "deadline" not in values:
                probe, _ = apply(order, action, actor=actor, at=now, reason=reason, data=values)
                values["deadline"] = deadline_for(probe, now, self.rules, self.calendar)
            return apply(order, action, actor=actor, at=now, reason=reason, data=values)

        order = await self.store.change(order_no, change)
        self.publish(
            WorkOrderChanged(order.order_no, order.status.value, order.city_order_no, "local")
        )
        return order

    async def due(self, *, now: datetime | None = None) -> list[tuple[WorkOrder, DueState]]:
        """Open orders near (临期) or past (超期) their deadline, overdue first."""
        now = now or self.clock()
        out = []
        for order in await self.store.list(status=OPEN, limit=1000):
            if order.deadline is None:
                continue
            state = due_state(order.deadline, now, self.near_hours)
            if state is not DueState.ON_TIME:
                out.append((order, state))
        out.sort(key=lambda pair: (pair[1] is not DueState.OVERDUE, pair[0].deadline))
        return out

    # -- the city -------------------------------------------------------------
    async def receive(self, events: Sequence[StatusEvent]) -> list[Received]:
        """Apply the city's status events: each once (by event id), in the
        city's sequence per order (an early one waits for the missing ones),
        a refused one recorded with its reason and changing nothing."""
        return [await self._receive_one(event) for event in events]

    async def _receive_one(self, event: StatusEvent) -> Received:
        body = json.dumps(status_event_to_json(event), ensure_ascii=False)
        async with self.pool.acquire() as conn, conn.transaction():
            fresh = await conn.fetchval(
                "INSERT INTO workorder_inbound (event_id, city_order_no, order_no, city_seq, kind,"
                " body, state) VALUES ($1, $2, $3, $4, $5, $6::jsonb, 'waiting')"
                " ON CONFLICT (event_id) DO NOTHING RETURNING 1",
                event.event_id,
                event.city_order_no,
                event.order_no,
                event.city_seq,
                event.kind,
                body,
            )
            if not fresh:
                return Received(event.event_id, "duplicate", "event id seen before")
            row = await conn.fetchrow(
                "SELECT order_no, city_seq FROM work_order WHERE city_order_no = $1"
                " OR ($2::text IS NOT NULL AND order_no = $2) ORDER BY city_order_no NULLS LAST"
                " LIMIT 1 FOR UPDATE",
                event.city_order_no,
                event.order_no,
            )
            if row is None:
                await self._mark(conn, [event], "refused", "no such order here")
                return Received(event.event_id, "unknown_order", "no such order here")
            waiting = [
                status_event_from_json(json.loads(r["body"]))
                for r in await conn.fetch(
                    "SELECT body FROM workorder_inbound WHERE city_order_no = $1"
                    " AND state = 'waiting' AND event_id <> $2 ORDER BY city_seq",
                    event.city_order_no,
                    event.event_id,
                )
            ]
            decision = order_events(row["city_seq"], waiting, event)
            if decision.verdict is Verdict.DUPLICATE:
                await self._mark(conn, [event], "duplicate", decision.reason)
                return Received(event.event_id, "duplicate", decision.reason)
            if decision.verdict is Verdict.WAIT:
                return Received(event.event_id, "waiting", decision.reason)
            result: Any = None

            def change(order: WorkOrder) -> tuple[WorkOrder, list[Any]]:
                nonlocal result
                result = apply_events(
                    order, row["city_seq"], decision.ready, at_received=self.clock()
                )
                return result.order, []

            await self.store.change(row["order_no"], change, conn=conn)
            await conn.execute(
                "UPDATE work_order SET city_seq = $2 WHERE order_no = $1",
                row["order_no"],
                result.last_applied_seq,
            )
            await self._mark(conn, list(result.applied), "applied", "")
            for refused, why in result.refused:
                await self._mark(conn, [refused], "refused", why)
                log.warning(
                    "city event %s for %s refused: %s", refused.event_id, row["order_no"], why
                )
        if result.applied:
            order = result.order
            self.publish(
                WorkOrderChanged(order.order_no, order.status.value, order.city_order_no, "city")
            )
        mine = next((why for e, why in result.refused if e.event_id == event.event_id), None)
        if mine is not None:
            return Received(event.event_id, "refused", mine)
        if any(e.event_id == event.event_id for e in result.applied):
            return Received(event.event_id, "applied")
        return Received(event.event_id, "waiting", "behind a refused event of this order")

    @staticmethod
    async def _mark(conn: Any, events: Sequence[StatusEvent], state: str, reason: str) -> None:
        for event in events:
            await conn.execute(
                "UPDATE workorder_inbound SET state = $2, reason = $3,"
                " applied_at = CASE WHEN $2 = 'applied' THEN now() END WHERE event_id = $1",
                event.event_id,
                state,
                reason or None,
            )
