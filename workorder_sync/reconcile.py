"""The daily reconciliation with the city: our orders of a day against the
city's list, by ``city_order_no``. Reports the gaps and repairs what can be
repaired without guessing: a city number we never received (the answer to
CREATE was lost and the message then dead-lettered) is taken from the city's
list; an order the city does not have, whose CREATE we count as delivered,
is sent again (same idempotency key, so a city that does have it answers
"duplicate")."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from .city.base import CityAdapter

__all__ = ["ReconcileReport", "reconcile_day"]


@dataclass
class ReconcileReport:
    day: date
    ours: int = 0
    theirs: int = 0
    matched: int = 0
    number_repaired: list[tuple[str, str]] = field(default_factory=list)
    """(order_no, city_order_no) learnt from the city's list."""
    resent: list[str] = field(default_factory=list)
    """Our orders the city does not list although we delivered them: CREATE queued again."""
    not_yet_sent: list[str] = field(default_factory=list)
    """Our orders whose CREATE is still in the outbox (not a gap: in flight)."""
    unknown_at_ours: list[str] = field(default_factory=list)
    """City orders naming an order number we do not have."""

    @property
    def ok(self) -> bool:
        return not (self.resent or self.unknown_at_ours)


async def reconcile_day(pool: Any, adapter: CityAdapter, day: date, *, tz: str) -> ReconcileReport:
    report = ReconcileReport(day)
    theirs = await adapter.list_orders(day)
    report.theirs = len(theirs)
    city_by_order = {order_no: city_no for city_no, order_no in theirs if order_no}
    city_numbers = {city_no for city_no, _ in theirs}
    rows = await pool.fetch(
        "SELECT order_no, city_order_no FROM work_order WHERE doc IS NOT NULL"
        " AND (created_at AT TIME ZONE $2)::date = $1 AND status <> 'DRAFT'",
        day,
        tz,
    )
    report.ours = len(rows)
    ours = {r["order_no"]: r["city_order_no"] for r in rows}
    for order_no, city_no in ours.items():
        if city_no and city_no in city_numbers:
            report.matched += 1
            continue
        known = city_by_order.get(order_no)
        if not city_no and known:
            await pool.execute(
                "UPDATE work_order SET city_order_no = $2,"
                " doc = jsonb_set(doc, '{city_order_no}', to_jsonb($2::text))"
                " WHERE order_no = $1 AND city_order_no IS NULL",
                order_no,
                known,
            )
            report.number_repaired.append((order_no, known))
            continue
        create = await pool.fetchrow(
            "SELECT id, state FROM workorder_outbox WHERE order_no = $1 AND kind = 'CREATE'",
            order_no,
        )
        if create is None:
            continue  # never meant for the city (a draft, a local-only order)
        if create["state"] != "delivered":
            report.not_yet_sent.append(order_no)
            continue
        await _resend(pool, create["id"], order_no)
        report.resent.append(order_no)
    report.unknown_at_ours = sorted(o for o in city_by_order if o not in ours)
    return report


async def _resend(pool: Any, message_id: int, order_no: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "UPDATE workorder_outbox SET state = 'pending', delivered_at = NULL,"
            " first_attempt_at = NULL WHERE id = $1",
            message_id,
        )
        await conn.execute(
            "INSERT INTO workorder_outbox_order (order_no, pending) VALUES ($1, 1)"
            " ON CONFLICT (order_no) DO UPDATE SET pending = workorder_outbox_order.pending + 1,"
            " next_at = now()",
            order_no,
        )
        await conn.execute("NOTIFY workorder_outbox")


def report_json(report: ReconcileReport) -> str:
    return json.dumps(report.__dict__, default=str, ensure_ascii=False)
