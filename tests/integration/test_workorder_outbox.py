"""The work-order outbox on a real PostgreSQL against the city simulator (a
real HTTP server): orders created and edited while the city fails requests,
loses answers and goes down for a while are delivered exactly once each and
in order per order, by one or several workers; a refused (poison) message
dead-letters without holding up the other orders, and is sent again by hand."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import aiohttp
import asyncpg
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer

from common.backoff import Backoff
from common.db import migrate_all
from cti.stack.postgres import PrivatePostgres
from workorder_sync.city.rest import RestCityAdapter
from workorder_sync.city.simulator import (
    SIMULATOR,
    CitySimulator,
    SimulatorConfig,
    build_simulator,
)
from workorder_sync.core import Action, apply, new_draft
from workorder_sync.feature import FEATURE
from workorder_sync.outbox import (
    DeliverySettings,
    DeliveryWorker,
    outbox_stats,
    purge_delivered,
    retry_dead,
)
from workorder_sync.store import OrderStore

pytestmark = pytest.mark.integration

DAY = date(2026, 12, 7)
FAST = DeliverySettings(lease_s=10.0, backoff=Backoff(base_s=0.05, cap_s=0.5))


@pytest_asyncio.fixture
async def dsn(private_postgres: PrivatePostgres) -> str:
    return private_postgres.dsn


@pytest_asyncio.fixture
async def pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(dsn, min_size=2, max_size=12)
    try:
        await migrate_all(pool, [(FEATURE.name, FEATURE.migrations)])
        yield pool
    finally:
        await pool.close()


@pytest_asyncio.fixture
async def city() -> AsyncIterator[tuple[CitySimulator, str]]:
    app = build_simulator(SimulatorConfig(auto_progress=False, hang_s=2.0))
    async with TestServer(app) as server:
        yield app[SIMULATOR], str(server.make_url("/"))


def _fields(n: int) -> dict[str, Any]:
    return {
        "title": f"路灯不亮 {n}",
        "appeal_type": "HELP",
        "content": "某路路灯坏了",
        "disposition": "DISPATCH",
        "division_code": "440304",
    }


async def make_orders(store: OrderStore, count: int) -> list[str]:
    """Orders taken on the phone, sent to dispatch (CREATE) and edited twice
    (UPDATE, UPDATE): three messages each, in that order."""
    numbers = []
    for n in range(count):
        now = datetime.now(UTC)

        def build(order_no: str, n: int = n, now: datetime = now) -> Any:
            order = new_draft(
                order_no=order_no,
                agent="1001",
                at=now,
                line="12345",
                caller_number=f"1380000{n:04d}",
            )
            events = []
            for action, data in (
                (Action.ACCEPT, _fields(n)),
                (Action.SEND_TO_DISPATCH, None),
                (Action.EDIT, {"content": "补充一"}),
                (Action.EDIT, {"content": "补充二"}),
            ):
                order, sent = apply(order, action, actor="1001", at=now, data=data)
                events += sent
            return order, events

        numbers.append((await store.create(DAY, build)).order_no)
    return numbers


async def deliver_all(
    pool: Any, adapter: Any, workers: int, *, timeout_s: float = 120.0
) -> list[DeliveryWorker]:
    crew = [DeliveryWorker(pool, adapter, name=f"w{n}", settings=FAST) for n in range(workers)]
    tasks = [asyncio.create_task(w.run()) for w in crew]
    try:
        async with asyncio.timeout(timeout_s):
            while (await outbox_stats(pool)).depth:
                await asyncio.sleep(0.2)  # another component's progress: polled
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return crew


def assert_exactly_once_in_order(sim: CitySimulator, numbers: list[str]) -> None:
    assert sim.sequence_violations == []
    for order_no in numbers:
        assert sim.created_count(order_no) == 1, order_no
        kinds = [(r.kind, r.seq) for r in sim.received(order_no)]
        assert [k for k, _ in kinds] == ["CREATE", "UPDATE", "UPDATE"], (order_no, kinds)
        assert [s for _, s in kinds] == sorted(s for _, s in kinds)


@pytest.mark.parametrize("workers", [1, 3])
async def test_a_thousand_orders_through_a_failing_city_arrive_once_and_in_order(
    pool: Any, city: tuple[CitySimulator, str], workers: int
) -> None:
    sim, url = city
    store = OrderStore(pool, prefix="GD")
    numbers = await make_orders(store, 1000)
    assert (await outbox_stats(pool)).depth == 3000
    sim.set_faults(error_rate=0.3, lost_ack_rate=0.05, timeout_rate=0.01)
    async with aiohttp.ClientSession() as session:
        adapter = RestCityAdapter(url, "district", b"district-secret", session, timeout_s=0.5)
        sim.go_down(3.0)  # the city is down for a while at the start
        crew = await deliver_all(pool, adapter, workers)
    assert_exactly_once_in_order(sim, numbers)
    assert sum(w.delivered for w in crew) >= 3000
    assert sum(w.failures for w in crew) > 300  # the faults really happened
    if workers > 1:
        assert all(w.delivered > 0 for w in crew)
    stats = await outbox_stats(pool)
    assert (stats.depth, stats.dead) == (0, [])
    missing = await pool.fetchval("SELECT count(*) FROM work_order WHERE city_order_no IS NULL")
    assert missing == 0
    heads = "SELECT count(*) FROM workorder_outbox_order"
    assert await pool.fetchval(heads + " WHERE pending > 0 OR lease_until IS NOT NULL") == 0
    await purge_delivered(pool, older_than_s=3600)  # the periodic purge
    assert await pool.fetchval(heads) == 0


async def test_a_poison_message_dead_letters_without_blocking_the_others(
    pool: Any, city: tuple[CitySimulator, str]
) -> None:
    sim, url = city
    store = OrderStore(pool, prefix="GD")
    numbers = await make_orders(store, 20)
    poison = numbers[5]
    sim.set_faults(reject_rate=1.0, reject_pattern=f"^{poison}$", reject_status=422)
    dead: list[tuple[str, str]] = []
    async with aiohttp.ClientSession() as session:
        adapter = RestCityAdapter(url, "district", b"district-secret", session, timeout_s=1.0)
        worker = DeliveryWorker(
            pool, adapter, name="w", settings=FAST, on_dead=lambda o, r: dead.append((o, r))
        )
        while await worker.run_once():
            pass
        stats = await outbox_stats(pool)
        assert [(d["order_no"], d["kind"]) for d in stats.dead] == [(poison, "CREATE")]
        assert stats.depth == 2  # the poison order's two UPDATEs wait behind it
        assert [o for o, _ in dead] == [poison] and "422" in dead[0][1]
        assert_exactly_once_in_order(sim, [n for n in numbers if n != poison])
        assert sim.created_count(poison) == 0

        # The cause is fixed; an operator sends it again.
        sim.set_faults(reject_rate=0.0)
        assert await retry_dead(pool, stats.dead[0]["id"])
        while await worker.run_once():
            pass
    assert_exactly_once_in_order(sim, numbers)
    assert (await outbox_stats(pool)).depth == 0


async def test_a_worker_killed_mid_delivery_loses_and_doubles_nothing(
    pool: Any, dsn: str, city: tuple[CitySimulator, str]
) -> None:
    sim, url = city
    numbers = await make_orders(OrderStore(pool, prefix="GD"), 200)
    sim.set_faults(slow_ms=20, lost_ack_rate=0.05)
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "workorder_sync.deliver", stdin=asyncio.subprocess.PIPE
    )
    assert worker.stdin is not None
    worker.stdin.write(
        json.dumps(
            {
                "dsn": dsn,
                "city_url": url,
                "app_key": "district",
                "secret": "district-secret",
                "name": "doomed",
                "lease_s": 2,
                "timeout_s": 1,
            }
        ).encode()
    )
    worker.stdin.close()
    try:
        async with asyncio.timeout(60):  # until it is well into the work: polled
            while (await outbox_stats(pool)).depth > 400:
                await asyncio.sleep(0.02)
            # Every answer now takes 0.6 s (under its 1 s timeout): the worker
            # spends its time inside a request, holding an order's lease.
            sim.set_faults(slow_ms=600)
            while not await pool.fetchval(
                "SELECT count(*) FROM workorder_outbox_order"
                " WHERE worker = 'doomed' AND lease_until > now()"
            ):
                await asyncio.sleep(0.02)
    finally:
        worker.kill()  # SIGKILL, mid-request: its lease is left behind
        await worker.wait()
    left = (await outbox_stats(pool)).depth
    assert 0 < left < 600
    held = await pool.fetchval(
        "SELECT count(*) FROM workorder_outbox_order WHERE worker = 'doomed'"
    )
    assert held == 1  # the order it was delivering, leased to a dead worker
    sim.set_faults(slow_ms=0)
    async with aiohttp.ClientSession() as session:
        adapter = RestCityAdapter(url, "district", b"district-secret", session, timeout_s=1.0)
        await deliver_all(pool, adapter, 1)
    assert_exactly_once_in_order(sim, numbers)
    assert (await outbox_stats(pool)).depth == 0


async def test_a_create_retried_after_the_citys_dedup_window_looks_the_order_up_first(
    pool: Any,
) -> None:
    """The city took the order but its answer was lost; by the time we retry,
    the city has forgotten the idempotency key (24 h): sending CREATE again
    would make a second order. The worker asks first and keeps the one."""
    from datetime import timedelta

    city_now = {"at": datetime.now(UTC)}
    app = build_simulator(SimulatorConfig(auto_progress=False, clock=lambda: city_now["at"]))
    sim = app[SIMULATOR]
    (order_no,) = await make_orders(OrderStore(pool, prefix="GD"), 1)
    async with TestServer(app) as server, aiohttp.ClientSession() as session:
        adapter = RestCityAdapter(
            str(server.make_url("/")), "district", b"district-secret", session, timeout_s=1.0
        )
        worker = DeliveryWorker(pool, adapter, name="w", settings=FAST)
        sim.set_faults(lost_ack_rate=1.0)
        assert await worker.run_once()
        assert sim.created_count(order_no) == 1  # created at the city, answer lost
        assert (
            await pool.fetchval(
                "SELECT city_order_no FROM work_order WHERE order_no = $1", order_no
            )
            is None
        )
        sim.set_faults(lost_ack_rate=0.0)
        # A day and a half later (the city down meanwhile, say): both clocks move.
        city_now["at"] += timedelta(hours=36)
        await pool.execute(
            "UPDATE workorder_outbox SET first_attempt_at = now() - interval '36 hours'"
        )
        await pool.execute("UPDATE workorder_outbox_order SET next_at = now()")
        while await worker.run_once():
            pass
    assert sim.created_count(order_no) == 1
    (city_no,) = [o.city_order_no for o in sim._by_order_no[order_no]]
    assert (
        await pool.fetchval("SELECT city_order_no FROM work_order WHERE order_no = $1", order_no)
        == city_no
    )
    assert [r.kind for r in sim.received(order_no)] == ["CREATE", "UPDATE", "UPDATE"]
    assert (await outbox_stats(pool)).depth == 0


def test_the_outbox_backs_off_exponentially_with_jitter_up_to_its_cap() -> None:
    settings = DeliverySettings()
    ceilings = [settings.backoff.ceiling(n) for n in range(1, 12)]
    assert ceilings[:5] == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert ceilings[-1] == 300.0 and max(ceilings) == 300.0
    for n in range(1, 12):
        delays = {settings.backoff.compute(n, rand=lambda r=r: r) for r in (0.0, 0.5, 0.999)}
        assert all(0.5 * ceilings[n - 1] <= d <= ceilings[n - 1] for d in delays)
        assert len(delays) == 3  # jittered: retries of many orders spread out
