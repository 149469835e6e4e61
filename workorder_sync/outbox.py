"""Delivery of the outbox to the city: any number of workers, in any
number of processes or machines, each message delivered in order per order
and, as far as the city can tell, exactly once.

How the known failure modes of PostgreSQL queues are avoided:

* **two workers breaking one order's sequence**: workers take *orders*, not
  messages (``workorder_outbox_order``, ``FOR UPDATE SKIP LOCKED`` then a
  lease), and deliver that order's messages in ``seq`` order; nobody else
  touches the order while the lease holds;
* **a crashed worker's message stuck in flight**: the lease expires and the
  order is taken again; the message goes again with the same idempotency key
  (the city answers "duplicate"), and a CREATE older than the city's
  de-duplication window is looked up before it is sent again;
* **one poison message blocking everything**: a refusal (4xx) or a message
  failing for longer than ``dead_after_s`` becomes a dead letter that blocks
  its own order only (later messages of that order must not overtake it);
  an alarm is raised and ``retry_dead`` sends it again;
* **unbounded growth**: delivered messages are purged after
  ``keep_delivered_s``, and the heads of orders with nothing left with them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from common.backoff import Backoff

from .city.base import CityAdapter, CityEvent, CityRejected, CityUnavailable

__all__ = ["DeliveryWorker", "OutboxStats", "outbox_stats", "purge_delivered", "retry_dead"]

log = logging.getLogger(__name__)

CHANNEL = "workorder_outbox"
BATCH = 50
IDLE_POLL_S = 1.0


@dataclass(frozen=True)
class DeliverySettings:
    lease_s: float = 30.0
    dead_after_s: float = 3 * 24 * 3600.0
    """A message failing this long (the city down for days) becomes dead."""
    dedup_window_s: float = 24 * 3600.0
    """The city's de-duplication window: a CREATE first tried longer ago than
    this is looked up before it is sent again."""
    backoff: Backoff = Backoff(base_s=1.0, cap_s=300.0)


_DATABASE_AWAY = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
)
"""A worker survives PostgreSQL going away and coming back."""


class LeaseLost(Exception):
    """Another worker took the order (this one was too slow): stop here."""


class DeliveryWorker:
    def __init__(
        self,
        pool: Any,
        adapter: CityAdapter,
        *,
        name: str,
        settings: DeliverySettings = DeliverySettings(),
        on_dead: Callable[[str, str], None] = lambda order_no, reason: None,
    ) -> None:
        self.pool = pool
        self.adapter = adapter
        self.name = name
        self.settings = settings
        self.on_dead = on_dead
        self.delivered = 0
        self.failures = 0
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()  # before looking: a NOTIFY meanwhile is not lost
            try:
                busy = await self.run_once()
            except _DATABASE_AWAY as exc:
                log.warning("outbox worker %s: %s; retrying", self.name, exc)
                busy = False
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), IDLE_POLL_S)

    async def run_once(self) -> bool:
        """Take one order with messages due and deliver them; False if none.
        The whole order is worked on one connection: a claim, the messages,
        one statement per delivered message, the release."""
        async with self.pool.acquire() as conn:
            claimed = await conn.fetchrow(
                "UPDATE workorder_outbox_order o SET lease_until = now()"
                " + make_interval(secs => $2), worker = $1"
                " WHERE o.order_no = (SELECT order_no FROM workorder_outbox_order"
                "   WHERE pending > 0 AND NOT blocked AND next_at <= now()"
                "     AND (lease_until IS NULL OR lease_until < now())"
                "   ORDER BY next_at LIMIT 1 FOR UPDATE SKIP LOCKED)"
                " RETURNING o.order_no, o.failures,"
                " (SELECT city_order_no FROM work_order w WHERE w.order_no = o.order_no)",
                self.name,
                self.settings.lease_s,
            )
            if claimed is None:
                return False
            order_no = claimed["order_no"]
            try:
                await self._deliver_order(conn, order_no, claimed["failures"], claimed[2])
            except LeaseLost:
                log.warning(
                    "outbox worker %s: lost order %s to another worker", self.name, order_no
                )
        return True

    async def _deliver_order(
        self, conn: Any, order_no: str, failures: int, city_no: str | None
    ) -> None:
        # When the first attempt was matters for a CREATE retried after the
        # city's de-duplication window: noted before anything is sent.
        messages = await conn.fetch(
            "UPDATE workorder_outbox SET first_attempt_at = coalesce(first_attempt_at, now())"
            " WHERE id IN (SELECT id FROM workorder_outbox WHERE order_no = $1"
            "   AND state = 'pending' ORDER BY seq LIMIT $2)"
            " RETURNING id, seq, kind, idempotency_key, payload, attempts, first_attempt_at,"
            " created_at",
            order_no,
            BATCH,
        )
        for message in sorted(messages, key=lambda m: m["seq"]):
            try:
                city_no = await self._deliver(message, order_no, city_no)
            except CityRejected as exc:
                await self._dead(conn, message, order_no, f"refused by the city: {exc}")
                return
            except (CityUnavailable, ValueError) as exc:
                await self._later(conn, message, order_no, failures + 1, str(exc))
                return
            await self._done(conn, message, order_no, city_no)
        await conn.execute(
            "UPDATE workorder_outbox_order SET lease_until = NULL, worker = NULL"
            " WHERE order_no = $1 AND worker = $2",
            order_no,
            self.name,
        )

    async def _deliver(self, message: Any, order_no: str, city_no: str | None) -> str | None:
        kind = message["kind"]
        age = datetime.now(UTC) - message["first_attempt_at"]
        if kind == "CREATE" and age > timedelta(seconds=self.settings.dedup_window_s):
            # The city may have forgotten the key: ask before creating again.
            found = await self.adapter.lookup(order_no)
            if found:
                return found
        if kind != "CREATE" and not city_no:
            raise ValueError(f"{order_no}: no city number yet for {kind} (CREATE not answered)")
        event = CityEvent(
            order_no=order_no,
            seq=message["seq"],
            kind=kind,
            idempotency_key=message["idempotency_key"],
            payload=json.loads(message["payload"]),
            city_order_no=city_no,
            created_at=message["created_at"],
        )
        delivered = await self.adapter.deliver(event)
        return delivered.city_order_no or city_no

    async def _done(self, conn: Any, message: Any, order_no: str, city_no: str | None) -> None:
        marked = await conn.fetchval(
            "WITH head AS (UPDATE workorder_outbox_order SET pending = pending - 1, failures = 0"
            "   WHERE order_no = $1 AND worker = $2 AND lease_until > now() RETURNING 1)"
            " UPDATE workorder_outbox SET state = 'delivered', delivered_at = now(),"
            " attempts = attempts + 1, last_error = NULL"
            " WHERE id = $3 AND EXISTS (SELECT 1 FROM head) RETURNING 1",
            order_no,
            self.name,
            message["id"],
        )
        if not marked:
            raise LeaseLost(order_no)
        if message["kind"] == "CREATE" and city_no:
            await conn.execute(
                "UPDATE work_order SET city_order_no = $2,"
                " doc = jsonb_set(doc, '{city_order_no}', to_jsonb($2::text))"
                " WHERE order_no = $1 AND city_order_no IS NULL",
                order_no,
                city_no,
            )
        self.delivered += 1

    async def _later(
        self, conn: Any, message: Any, order_no: str, failures: int, error: str
    ) -> None:
        self.failures += 1
        first = message["first_attempt_at"]
        if datetime.now(UTC) - first > timedelta(seconds=self.settings.dead_after_s):
            await self._dead(conn, message, order_no, f"failing since {first.isoformat()}: {error}")
            return
        delay = self.settings.backoff.compute(failures)
        await conn.execute(
            "WITH m AS (UPDATE workorder_outbox SET attempts = attempts + 1, last_error = $5"
            "   WHERE id = $4 RETURNING 1)"
            " UPDATE workorder_outbox_order SET failures = $3, lease_until = NULL, worker = NULL,"
            " next_at = now() + make_interval(secs => $6) WHERE order_no = $1 AND worker = $2",
            order_no,
            self.name,
            failures,
            message["id"],
            error,
            delay,
        )

    async def _dead(self, conn: Any, message: Any, order_no: str, reason: str) -> None:
        async with conn.transaction():
            await conn.execute(
                "UPDATE workorder_outbox SET state = 'dead', attempts = attempts + 1,"
                " last_error = $2 WHERE id = $1",
                message["id"],
                reason,
            )
            await conn.execute(
                "UPDATE workorder_outbox_order SET blocked = true, lease_until = NULL,"
                " worker = NULL WHERE order_no = $1",
                order_no,
            )
        log.error("outbox: %s message %d dead: %s", order_no, message["id"], reason)
        self.on_dead(order_no, reason)


@dataclass(frozen=True)
class OutboxStats:
    depth: int
    oldest_age_s: float | None
    dead: list[dict[str, Any]]


async def outbox_stats(pool: Any) -> OutboxStats:
    row = await pool.fetchrow(
        "SELECT count(*) AS depth, min(created_at) AS oldest FROM workorder_outbox"
        " WHERE state = 'pending'"
    )
    dead = await pool.fetch(
        "SELECT id, order_no, seq, kind, attempts, last_error, created_at"
        " FROM workorder_outbox WHERE state = 'dead' ORDER BY id"
    )
    oldest = row["oldest"]
    return OutboxStats(
        depth=int(row["depth"]),
        oldest_age_s=(datetime.now(UTC) - oldest).total_seconds() if oldest else None,
        dead=[dict(r) for r in dead],
    )


async def retry_dead(pool: Any, message_id: int) -> bool:
    """Send a dead letter again (an operator fixed the cause)."""
    async with pool.acquire() as conn, conn.transaction():
        order_no = await conn.fetchval(
            "UPDATE workorder_outbox SET state = 'pending', first_attempt_at = NULL,"
            " last_error = NULL WHERE id = $1 AND state = 'dead' RETURNING order_no",
            message_id,
        )
        if order_no is None:
            return False
        await conn.execute(
            "UPDATE workorder_outbox_order SET blocked = false, failures = 0, next_at = now()"
            " WHERE order_no = $1",
            order_no,
        )
        await conn.execute(f"NOTIFY {CHANNEL}")
    return True


async def purge_delivered(pool: Any, *, older_than_s: float) -> int:
    """Delivered messages older than *older_than_s*, and the delivery heads of
    orders with nothing left (kept out of the hot path)."""
    done = await pool.execute(
        "DELETE FROM workorder_outbox WHERE state = 'delivered'"
        " AND delivered_at < now() - make_interval(secs => $1)",
        older_than_s,
    )
    await pool.execute(
        "DELETE FROM workorder_outbox_order WHERE pending = 0 AND NOT blocked"
        " AND (lease_until IS NULL OR lease_until < now())"
    )
    return int(done.split()[-1])
