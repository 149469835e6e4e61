"""Work orders in PostgreSQL: numbering, loading, and saving a change
together with its outbox messages in ONE transaction (the transactional
outbox: an order change is never stored without the message that reports
it to the city, nor a message without its change)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

from .core import OutboxEvent, WorkOrder, order_from_dict, order_to_dict
from .numbering import format_order_no

__all__ = ["ConcurrentChange", "OrderMissing", "OrderStore"]


class OrderMissing(LookupError):
    """No such work order."""


class ConcurrentChange(RuntimeError):
    """The order changed since it was read (another desk, the city): read it
    again and retry."""


Change = Callable[[WorkOrder], tuple[WorkOrder, list[OutboxEvent]]]


class OrderStore:
    def __init__(self, pool: Any, *, prefix: str) -> None:
        self._pool = pool
        self.prefix = prefix

    async def next_order_no(self, conn: Any, day: date) -> str:
        """The day's next number (in the caller's transaction, if any)."""
        seq = await conn.fetchval(
            "INSERT INTO work_order_day (prefix, day, last) VALUES ($1, $2, 1)"
            " ON CONFLICT (prefix, day) DO UPDATE SET last = work_order_day.last + 1"
            " RETURNING last",
            self.prefix,
            day,
        )
        return format_order_no(self.prefix, day, int(seq))

    async def create(
        self, day: date, build: Callable[[str], tuple[WorkOrder, list[OutboxEvent]]]
    ) -> WorkOrder:
        """A new order numbered now; *build* makes it from its number."""
        async with self._pool.acquire() as conn:
            # The number in a short transaction of its own: the day's counter
            # row is not held locked while the order is built and written
            # (creations would queue behind it). A failed creation leaves a
            # gap in the day's numbers, never a reused number.
            order_no = await self.next_order_no(conn, day)
            async with conn.transaction():
                order, events = build(order_no)
                await self._insert(conn, order, events)
        return order

    async def _insert(self, conn: Any, order: WorkOrder, events: Sequence[OutboxEvent]) -> None:
        await conn.execute(
            "INSERT INTO work_order (order_no, city_order_no, call_id, channel, caller_number,"
            " appellant_name, appeal_type, title, status, created_at, updated_at, doc,"
            " version, agent, deadline)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb, $13, $14, $15)",
            *_columns(order),
            order.created_by or None,
            order.deadline,
        )
        await _enqueue(conn, events)

    async def get(self, order_no: str) -> WorkOrder:
        row = await self._pool.fetchrow("SELECT doc FROM work_order WHERE order_no = $1", order_no)
        if row is None or row["doc"] is None:
            raise OrderMissing(f"no work order {order_no}")
        return order_from_dict(json.loads(row["doc"]))

    async def change(self, order_no: str, change: Change, *, conn: Any = None) -> WorkOrder:
        """Apply *change* to the stored order and store the result with its
        outbox messages, atomically. The order row is locked meanwhile, so
        two changes of one order never interleave."""
        if conn is None:
            async with self._pool.acquire() as own, own.transaction():
                return await self._change(own, order_no, change)
        return await self._change(conn, order_no, change)

    async def _change(self, conn: Any, order_no: str, change: Change) -> WorkOrder:
        row = await conn.fetchrow(
            "SELECT doc FROM work_order WHERE order_no = $1 FOR UPDATE", order_no
        )
        if row is None or row["doc"] is None:
            raise OrderMissing(f"no work order {order_no}")
        order = order_from_dict(json.loads(row["doc"]))
        new, events = change(order)
        if new is order:
            return order
        await _update(conn, order, new)
        await _enqueue(conn, events)
        return new

    async def list(
        self,
        *,
        status: Sequence[str] = (),
        agent: str | None = None,
        caller_number: str | None = None,
        overdue_first: bool = True,
        limit: int = 100,
    ) -> list[WorkOrder]:
        clauses, args = ["doc IS NOT NULL"], []
        if status:
            args.append(list(status))
            clauses.append(f"status = ANY(${len(args)})")
        if agent:
            args.append(agent)
            clauses.append(f"agent = ${len(args)}")
        if caller_number:
            args.append(caller_number)
            clauses.append(f"caller_number = ${len(args)}")
        order_by = "deadline ASC NULLS LAST, created_at" if overdue_first else "created_at DESC"
        args.append(limit)
        rows = await self._pool.fetch(
            f"SELECT doc FROM work_order WHERE {' AND '.join(clauses)}"
            f" ORDER BY {order_by} LIMIT ${len(args)}",
            *args,
        )
        return [order_from_dict(json.loads(r["doc"])) for r in rows]


def _columns(order: WorkOrder) -> tuple[Any, ...]:
    return (
        order.order_no,
        order.city_order_no,
        order.call_id,
        order.channel.value,
        order.caller_number or None,
        order.appellant_name,
        order.appeal_type.value if order.appeal_type else None,
        order.title,
        order.status.value,
        order.created_at,
        order.updated_at,
        json.dumps(order_to_dict(order), ensure_ascii=False),
        order.version,
    )


async def _update(conn: Any, old: WorkOrder, new: WorkOrder) -> None:
    done = await conn.execute(
        "UPDATE work_order SET city_order_no = $2, call_id = $3, channel = $4,"
        " caller_number = $5, appellant_name = $6, appeal_type = $7, title = $8, status = $9,"
        " created_at = $10, updated_at = $11, doc = $12::jsonb, version = $13, deadline = $15"
        " WHERE order_no = $1 AND version = $14",
        *_columns(new),
        old.version,
        new.deadline,
    )
    if not done.endswith(" 1"):
        raise ConcurrentChange(f"work order {old.order_no} changed meanwhile; read it again")


async def _enqueue(conn: Any, events: Sequence[OutboxEvent]) -> None:
    for event in events:
        await conn.execute(
            "INSERT INTO workorder_outbox (order_no, seq, kind, idempotency_key, payload)"
            " VALUES ($1, $2, $3, $4, $5::jsonb)",
            event.order_no,
            event.sequence,
            event.kind.value,
            event.idempotency_key,
            json.dumps(event.payload, ensure_ascii=False),
        )
        await conn.execute(
            "INSERT INTO workorder_outbox_order (order_no, pending) VALUES ($1, 1)"
            " ON CONFLICT (order_no) DO UPDATE SET pending = workorder_outbox_order.pending + 1",
            event.order_no,
        )
    if events:
        await conn.execute("NOTIFY workorder_outbox")
