"""Work orders on the feature contract: created from calls on the agent
desktop, synced to the city 12345 platform through a transactional outbox,
the city's status events applied back."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from acd.alarms import CLEARED, RAISED, Alarm
from common.call_changes import CallArrived, CallChange
from common.tasks import start_task
from cti.feature import ConfigSection, Feature

from . import http
from .calendar import DueState
from .city.signing import Verifier
from .cli import add_commands
from .config import WorkOrderConfig, validate_workorders
from .deliver import adapter_for
from .nonces import PgNonceStore
from .outbox import CHANNEL, DeliverySettings, DeliveryWorker, outbox_stats, purge_delivered
from .service import CallFacts, WorkOrderService
from .store import OrderStore

if TYPE_CHECKING:
    from cti.runtime import Runtime

__all__ = ["FEATURE"]

log = logging.getLogger(__name__)

RECENT_CALLS = 2000
MONITOR_EVERY_S = 5.0
PURGE_EVERY_S = 3600.0
RECONCILE_AT = (2, 30)
"""Local time (hour, minute) of the daily reconciliation of the day before."""


class RecentCalls:
    """The facts of the calls seen lately: an agent fills the form during
    or right after the call, when the call model may have let it go."""

    def __init__(self, runtime: Runtime, size: int = RECENT_CALLS) -> None:
        self._runtime = runtime
        self._size = size
        self._facts: OrderedDict[str, CallFacts] = OrderedDict()
        self._recording = "recording" in runtime.services or any(
            f.name == "recording" for f in runtime.features
        )

    def on_change(self, change: CallChange) -> None:
        if isinstance(change, CallArrived):
            self._facts[change.call_id] = CallFacts(
                change.call_id,
                change.caller_number,
                change.line,
                (),
                change.call_id if self._recording else None,
            )
            while len(self._facts) > self._size:
                self._facts.popitem(last=False)

    def __call__(self, call_id: str) -> CallFacts | None:
        call = self._runtime.model.calls.get(call_id)
        if call is not None:
            return CallFacts(
                call_id,
                call.caller_number,
                call.line,
                tuple(call.ivr_choices),
                call_id if self._recording else None,
            )
        return self._facts.get(call_id)


class SyncMonitor:
    """Alarms: orders past (超期) or near (临期) their deadline, dead letters
    in the outbox, and a city that has not taken our messages for a while.
    Each is raised once and cleared when it no longer holds."""

    def __init__(
        self, pool: Any, publish: Any, service: WorkOrderService, *, lag_alarm_s: float = 300.0
    ) -> None:
        self._pool = pool
        self._publish = publish
        self._service = service
        self._lag_alarm_s = lag_alarm_s
        self._active: dict[str, Alarm] = {}

    async def check(self) -> list[Alarm]:
        stats = await outbox_stats(self._pool)
        due = await self._service.due()
        overdue = [o.order_no for o, state in due if state is DueState.OVERDUE]
        near = [o.order_no for o, state in due if state is DueState.NEAR]
        wanted = {
            "WORKORDER_OVERDUE": (
                f"{len(overdue)} work order(s) past their deadline (超期), e.g. {overdue[0]}"
                if overdue
                else None
            ),
            "WORKORDER_NEAR_DUE": (
                f"{len(near)} work order(s) near their deadline (临期), e.g. {near[0]}"
                if near
                else None
            ),
            "WORKORDER_DEAD_LETTER": (
                f"{len(stats.dead)} work-order message(s) dead-lettered, e.g. "
                f"{stats.dead[0]['order_no']} {stats.dead[0]['kind']}: "
                f"{stats.dead[0]['last_error']}; fix and retry (hotline workorders outbox --retry)"
                if stats.dead
                else None
            ),
            "WORKORDER_SYNC_LAG": (
                f"{stats.depth} message(s) wait for the city, the oldest {stats.oldest_age_s:.0f} s"
                if stats.oldest_age_s is not None and stats.oldest_age_s > self._lag_alarm_s
                else None
            ),
        }
        changed = []
        for kind, message in wanted.items():
            if message and kind not in self._active:
                self._active[kind] = Alarm(
                    kind, RAISED, "all", None, None, 0.0, time.time(), message
                )
                changed.append(self._active[kind])
            elif not message and kind in self._active:
                del self._active[kind]
                changed.append(
                    Alarm(kind, CLEARED, "all", None, None, 0.0, time.time(), "recovered")
                )
        for alarm in changed:
            self._publish(alarm)
        return changed


@contextlib.asynccontextmanager
async def run(runtime: Runtime, section: WorkOrderConfig) -> AsyncIterator[None]:
    store = OrderStore(runtime.pool, prefix=section.prefix)
    recent = RecentCalls(runtime)
    runtime.bus.subscribe(CallChange, recent.on_change, name="workorders: calls")
    service = WorkOrderService(
        store=store,
        pool=runtime.pool,
        calendar=section.calendar(),
        rules=section.rules(),
        near_hours=section.near_hours,
        call_facts=recent,
        clock=lambda: datetime.fromtimestamp(runtime.clock(), UTC),
        publish=runtime.bus.publish,
        on_draft=lambda order: _link_recording(runtime, order),
    )
    secrets = {section.city_app_key: section.city_secret.encode()} if section.city_secret else {}
    runtime.app[http.WORKORDERS] = http.WebhookGate(
        service=service, verifier=Verifier(secrets, nonces=PgNonceStore(runtime.pool))
    )
    runtime.services["workorders"] = service
    monitor = SyncMonitor(runtime.pool, runtime.bus.publish, service)
    async with contextlib.AsyncExitStack() as stack:
        tasks: list[asyncio.Task[None]] = []
        workers: list[DeliveryWorker] = []
        if section.city_url:
            session = await stack.enter_async_context(aiohttp.ClientSession())
            adapter = adapter_for(
                {
                    "adapter": section.city_adapter,
                    "city_url": section.city_url,
                    "app_key": section.app_key,
                    "secret": section.secret,
                    "token": section.token,
                    "timeout_s": section.timeout_s,
                },
                session,
            )
            settings = DeliverySettings(
                lease_s=section.lease_s,
                dead_after_s=section.dead_after_h * 3600,
                dedup_window_s=section.dedup_window_h * 3600,
            )
            workers = [
                DeliveryWorker(
                    runtime.pool, adapter, name=f"{runtime.config.engine_id}-{n}", settings=settings
                )
                for n in range(section.delivery_workers)
            ]
            tasks += [
                start_task(w.run(), name=f"workorders: deliver {n}") for n, w in enumerate(workers)
            ]
            if section.city_adapter == "polling":
                tasks.append(
                    start_task(_poll(runtime, service, adapter, section), name="workorders: poll")
                )
            tasks.append(
                start_task(
                    _reconcile_daily(runtime, adapter, section), name="workorders: reconcile"
                )
            )
        tasks.append(start_task(_wake_on_notify(runtime.pool, workers), name="workorders: notify"))
        tasks.append(start_task(_every(MONITOR_EVERY_S, monitor.check), name="workorders: alarms"))
        tasks.append(
            start_task(
                _every(PURGE_EVERY_S, lambda: _purge(runtime.pool, section.keep_delivered_days)),
                name="workorders: purge",
            )
        )
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def _link_recording(runtime: Runtime, order: Any) -> None:
    """The call's recording lists the orders made from it (searchable by
    work order), when the recording feature runs."""
    recording = runtime.services.get("recording")
    if recording is not None and order.call_id:
        await recording.catalog.link_work_order(order.call_id, order.order_no)


async def _every(period_s: float, work: Any) -> None:
    while True:
        try:
            await work()
        except Exception:  # the database or the city away: next period
            log.exception("workorders: periodic %s failed", getattr(work, "__name__", "task"))
        await asyncio.sleep(period_s)


async def _purge(pool: Any, keep_days: int) -> None:
    await purge_delivered(pool, older_than_s=keep_days * 86400.0)
    await PgNonceStore(pool).purge()


async def _wake_on_notify(pool: Any, workers: list[DeliveryWorker]) -> None:
    """Workers start on a new message at once (they also poll each second)."""
    if not workers:
        return
    while True:
        try:
            async with pool.acquire() as conn:

                def wake(*_: Any) -> None:
                    for worker in workers:
                        worker.wake()

                await conn.add_listener(CHANNEL, wake)
                try:
                    await asyncio.Future()  # until cancelled
                finally:
                    with contextlib.suppress(Exception):
                        await conn.remove_listener(CHANNEL, wake)
        except (OSError, TimeoutError) as exc:
            log.warning("workorders: no NOTIFY listener (%s); workers poll", exc)
            await asyncio.sleep(5.0)


async def _reconcile_daily(runtime: Runtime, adapter: Any, section: WorkOrderConfig) -> None:
    """Every day at RECONCILE_AT local time: yesterday's orders against the
    city's list, gaps repaired; an alarm while a gap remains."""
    from datetime import timedelta

    from .reconcile import reconcile_day

    tz = section.calendar().tz
    while True:
        now = datetime.now(tz)
        run_at = now.replace(hour=RECONCILE_AT[0], minute=RECONCILE_AT[1], second=0, microsecond=0)
        if run_at <= now:
            run_at += timedelta(days=1)
        await asyncio.sleep((run_at - now).total_seconds())
        day = (run_at - timedelta(days=1)).date()
        try:
            report = await reconcile_day(runtime.pool, adapter, day, tz=str(tz))
        except Exception:
            log.exception("workorders: reconciliation of %s did not run", day)
            continue
        log.warning(
            "workorders: reconciled %s: ours %d, the city's %d, matched %d, repaired %d,"
            " resent %d, unknown here %d",
            day,
            report.ours,
            report.theirs,
            report.matched,
            len(report.number_repaired),
            len(report.resent),
            len(report.unknown_at_ours),
        )
        runtime.bus.publish(
            Alarm(
                "WORKORDER_RECONCILE",
                CLEARED if report.ok else RAISED,
                "all",
                None,
                None,
                0.0,
                time.time(),
                f"reconciliation of {day}: {len(report.resent)} resent, "
                f"{len(report.unknown_at_ours)} unknown here",
            )
        )


async def _poll(runtime: Runtime, service: WorkOrderService, adapter: Any, section: Any) -> None:
    """The polling platform's status changes, from the persisted cursor."""
    while True:
        try:
            await poll_once(runtime.pool, service, adapter)
        except Exception:
            log.exception(
                "workorders: polling the city failed; next try in %.0f s", section.poll_every_s
            )
        await asyncio.sleep(section.poll_every_s)


async def poll_once(pool: Any, service: WorkOrderService, adapter: Any) -> int:
    """One pull of the city's status changes after the persisted cursor;
    they are applied, then the cursor is saved (a crash between the two
    pulls them again, and the event ids make that harmless)."""
    cursor = await pool.fetchval(
        "SELECT cursor FROM workorder_cursor WHERE adapter = $1", adapter.name
    )
    events, cursor = await adapter.pull(cursor, until=datetime.now(UTC))
    if events:
        await service.receive(events)
    if cursor:
        await pool.execute(
            "INSERT INTO workorder_cursor (adapter, cursor) VALUES ($1, $2)"
            " ON CONFLICT (adapter) DO UPDATE SET cursor = $2, updated_at = now()",
            adapter.name,
            cursor,
        )
    return len(events)


FEATURE = Feature(
    name="workorders",
    summary="work orders from calls, synced to the city 12345 platform exactly once and in order",
    config=ConfigSection(
        "workorders",
        WorkOrderConfig,
        validate_workorders,
        env={
            "HOTLINE_CITY_URL": "city_url",
            "HOTLINE_CITY_SECRET": "secret",
            "HOTLINE_CITY_TOKEN": "token",
            "HOTLINE_CITY_WEBHOOK_SECRET": "city_secret",
        },
    ),
    migrations=Path(__file__).parent / "migrations",
    routes=http.add_routes,
    openapi=http.openapi,
    run=run,
    commands=add_commands,
    requires=("agents",),
)
