"""Work orders over HTTP on a real PostgreSQL, with the city simulator as a
real HTTP server on both sides: an agent makes an order from a call (a draft
that survives a reload), accepts it and sends it to dispatch; the outbox
delivers it; the city pushes "dispatched" back through the signed webhook.
Forged, stale, replayed and malformed webhooks are refused with the reason
and change nothing; status events out of order wait for the missing one."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from common.backoff import Backoff
from common.db import migrate_all
from cti.api.accounts import AccountStore, AuditLog
from cti.api.http import build_app
from cti.api.roles import Role
from cti.api.sessions import SessionTable
from cti.stack.postgres import PrivatePostgres
from workorder_sync.city.base import StatusEvent
from workorder_sync.city.rest import RestCityAdapter, webhook_body
from workorder_sync.city.signing import Verifier, new_nonce, signed_headers
from workorder_sync.city.simulator import SIMULATOR, CitySimulator, SimulatorConfig, build_simulator
from workorder_sync.config import WorkOrderConfig
from workorder_sync.feature import FEATURE
from workorder_sync.http import WORKORDERS, WebhookGate
from workorder_sync.nonces import PgNonceStore
from workorder_sync.outbox import DeliverySettings, DeliveryWorker
from workorder_sync.service import CallFacts, WorkOrderService
from workorder_sync.store import OrderStore

pytestmark = pytest.mark.integration

PASSWORD = "correct horse 1"
CITY_KEY, CITY_SECRET = "city12345", b"city-secret"
WEBHOOK = "/api/v1/city/webhook"
FORM = {
    "title": "小区路灯不亮",
    "appeal_type": "HELP",
    "content": "幸福路 12 号门口路灯坏了三天",
    "disposition": "DISPATCH",
    "division_code": "440304",
    "address": "幸福路 12 号",
}


@dataclass
class Desk:
    client: TestClient
    pool: Any
    sim: CitySimulator
    adapter: RestCityAdapter
    dsn: str
    city_url: str

    async def login(self, username: str) -> dict[str, str]:
        response = await self.client.post(
            "/api/v1/sessions", json={"username": username, "password": PASSWORD}
        )
        assert response.status == 201, await response.text()
        return {"Authorization": f"Bearer {(await response.json())['token']}"}

    async def deliver(self) -> None:
        worker = DeliveryWorker(
            self.pool,
            self.adapter,
            name="w",
            settings=DeliverySettings(backoff=Backoff(base_s=0.01, cap_s=0.05)),
        )
        while await worker.run_once():
            pass

    async def order(self, order_no: str) -> dict[str, Any]:
        row = await self.pool.fetchrow(
            "SELECT status, version, city_order_no, city_seq FROM work_order WHERE order_no = $1",
            order_no,
        )
        return dict(row)


@pytest_asyncio.fixture
async def desk() -> AsyncIterator[Desk]:
    run_dir = Path(tempfile.mkdtemp(prefix="hotline-woapi-"))
    run_dir.chmod(0o755)  # PostgreSQL runs as its own user when we are root
    server = PrivatePostgres(run_dir / "pg")
    await server.start()
    pool = await asyncpg.create_pool(server.dsn, min_size=1, max_size=8)
    try:
        await migrate_all(pool, [(FEATURE.name, FEATURE.migrations)])
        accounts = AccountStore(pool)
        await accounts.add("a1001", Role.AGENT, PASSWORD, agent="1001")
        await accounts.add("a1002", Role.AGENT, PASSWORD, agent="1002")
        await accounts.add("sup", Role.SUPERVISOR, PASSWORD)
        section = WorkOrderConfig()
        calls = {"c1": CallFacts("c1", "13800138000", "12345", ("2", "1"), "c1")}
        service = WorkOrderService(
            store=OrderStore(pool, prefix="GD"),
            pool=pool,
            calendar=section.calendar(),
            rules=section.rules(),
            near_hours=24.0,
            call_facts=calls.get,
        )
        app = build_app(
            accounts=accounts,
            audit=AuditLog(pool),
            sessions=SessionTable(ttl_s=3600, clock=time.time),
            features=[FEATURE],
        )
        app[WORKORDERS] = WebhookGate(
            service=service, verifier=Verifier({CITY_KEY: CITY_SECRET}, nonces=PgNonceStore(pool))
        )
        city_app = build_simulator(SimulatorConfig(auto_progress=False))
        async with (
            TestClient(TestServer(app)) as client,
            TestServer(city_app) as city,
            aiohttp.ClientSession() as session,
        ):
            sim = city_app[SIMULATOR]
            sim.set_webhook(str(client.make_url(WEBHOOK)))
            adapter = RestCityAdapter(
                str(city.make_url("/")), "district", b"district-secret", session
            )
            yield Desk(client, pool, sim, adapter, server.dsn, str(city.make_url("/")))
    finally:
        await pool.close()
        await server.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


async def _dispatched_order(desk: Desk) -> tuple[str, str, dict[str, str]]:
    agent = await desk.login("a1001")
    made = await desk.client.post("/api/v1/workorders", json={"call_id": "c1"}, headers=agent)
    assert made.status == 201, await made.text()
    order_no = (await made.json())["order_no"]
    saved = await desk.client.patch(f"/api/v1/workorders/{order_no}", json=FORM, headers=agent)
    assert saved.status == 200, await saved.text()
    for action in ("ACCEPT", "SEND_TO_DISPATCH"):
        done = await desk.client.post(
            f"/api/v1/workorders/{order_no}/actions", json={"action": action}, headers=agent
        )
        assert done.status == 200, await done.text()
    await desk.deliver()
    city_no = (await desk.order(order_no))["city_order_no"]
    assert city_no and desk.sim.created_count(order_no) == 1
    return order_no, city_no, agent


async def test_an_order_from_a_call_goes_to_the_city_and_comes_back_dispatched(
    desk: Desk,
) -> None:
    agent = await desk.login("a1001")
    made = await desk.client.post("/api/v1/workorders", json={"call_id": "c1"}, headers=agent)
    draft = await made.json()
    assert draft["status"] == "DRAFT" and draft["call_id"] == "c1"
    assert draft["channel"] == "PHONE_12345" and draft["ivr_choices"] == ["2", "1"]
    assert draft["caller_number"] == "138****8000"  # masked for the agent
    assert draft["recording_id"] == "c1"
    order_no = draft["order_no"]
    assert order_no.startswith("GD") and len(order_no) == len("GD20261207000001")

    # Typed and saved, then the page reloads: the draft is still there.
    await desk.client.patch(f"/api/v1/workorders/{order_no}", json=FORM, headers=agent)
    again = await (await desk.client.get(f"/api/v1/workorders/{order_no}", headers=agent)).json()
    assert (again["title"], again["status"]) == (FORM["title"], "DRAFT")
    other = await desk.login("a1002")
    assert (await desk.client.get(f"/api/v1/workorders/{order_no}", headers=other)).status == 403

    illegal = await desk.client.post(
        f"/api/v1/workorders/{order_no}/actions", json={"action": "CLOSE"}, headers=agent
    )
    assert illegal.status == 409 and "DRAFT" in (await illegal.json())["error"]
    assert (await desk.order(order_no))["status"] == "DRAFT"

    for action in ("ACCEPT", "SEND_TO_DISPATCH"):
        done = await desk.client.post(
            f"/api/v1/workorders/{order_no}/actions", json={"action": action}, headers=agent
        )
        assert done.status == 200
    accepted = await done.json()
    assert accepted["status"] == "PENDING_DISPATCH" and accepted["deadline"]
    await desk.deliver()
    row = await desk.order(order_no)
    assert row["city_order_no"] and desk.sim.created_count(order_no) == 1

    # The city dispatches: its signed webhook brings the order to DISPATCHED.
    desk.sim.emit_status(row["city_order_no"], "DISPATCHED", {"units": ["福田区城管局"]})
    async with asyncio.timeout(10):  # the city's push, in its own task: polled
        while (await desk.order(order_no))["status"] != "DISPATCHED":
            await asyncio.sleep(0.05)
    order = await (await desk.client.get(f"/api/v1/workorders/{order_no}", headers=agent)).json()
    assert order["status"] == "DISPATCHED"
    assert order["assignments"][0]["unit"] == "福田区城管局"
    assert order["history"][-1]["origin"] == "city"
    assert (await desk.order(order_no))["city_seq"] == 1

    sup = await desk.login("sup")
    listed = await (await desk.client.get("/api/v1/workorders", headers=sup)).json()
    assert [o["order_no"] for o in listed["orders"]] == [order_no]
    assert listed["orders"][0]["caller_number"] == "138****8000"  # lists mask for everyone
    opened = await desk.client.get(f"/api/v1/workorders/{order_no}", headers=sup)
    assert (await opened.json())["caller_number"] == "13800138000"  # one order, audited
    audited = await desk.pool.fetch("SELECT username, action, subject FROM audit_log")
    assert ("sup", "view_work_order", order_no) in [tuple(r) for r in audited]
    bad = await desk.client.get("/api/v1/workorders?limit=abc", headers=sup)
    assert bad.status == 400 and (await bad.json())["field"] == "limit"
    assert listed["orders"][0]["due"] == "ON_TIME"


def _event(city_no: str, order_no: str, seq: int, kind: str, data: dict[str, Any]) -> StatusEvent:
    from datetime import UTC, datetime

    return StatusEvent(
        city_order_no=city_no,
        order_no=order_no,
        city_seq=seq,
        kind=kind,
        at=datetime.now(UTC),
        data=data,
        event_id=f"{city_no}-{seq}",
    )


async def _push(desk: Desk, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    response = await desk.client.post(WEBHOOK, data=body, headers=headers)
    return response.status, await response.json()


def _signed(body: bytes, *, secret: bytes = CITY_SECRET, at: int | None = None) -> dict[str, str]:
    return dict(
        signed_headers(
            CITY_KEY,
            secret,
            "POST",
            WEBHOOK,
            body,
            now=int(time.time()) if at is None else at,
            nonce=new_nonce(),
        ),
        **{"Content-Type": "application/json"},
    )


async def test_forged_stale_replayed_and_malformed_webhooks_change_nothing(desk: Desk) -> None:
    order_no, city_no, _ = await _dispatched_order(desk)
    before = await desk.order(order_no)
    body = webhook_body([_event(city_no, order_no, 1, "DISPATCHED", {"units": ["某局"]})])

    assert (await _push(desk, body, {"Content-Type": "application/json"}))[0] == 401
    status, answer = await _push(desk, body, _signed(body, secret=b"not-the-secret"))
    assert status == 401 and answer["code"] == "bad_signature"
    status, answer = await _push(desk, body, _signed(body, at=int(time.time()) - 3600))
    assert status == 401 and answer["code"] == "stale_timestamp"
    tampered = _signed(body)
    status, answer = await _push(desk, body.replace(b"DISPATCHED", b"SIGNED"), tampered)
    assert status == 401 and answer["code"] == "bad_signature"
    headers = _signed(b"{not json")
    status, answer = await _push(desk, b"{not json", headers)
    assert status == 400 and "malformed" in answer["error"]
    assert await desk.order(order_no) == before
    assert await desk.pool.fetchval("SELECT count(*) FROM workorder_inbound") == 0

    good = _signed(body)
    status, answer = await _push(desk, body, good)
    assert status == 200 and answer["results"][0]["result"] == "applied"
    status, answer = await _push(desk, body, good)  # the same request again: a replay
    assert status == 401 and answer["code"] == "reused_nonce"
    status, answer = await _push(desk, body, _signed(body))  # re-sent, freshly signed
    assert status == 200 and answer["results"][0]["result"] == "duplicate"
    after = await desk.order(order_no)
    assert (after["status"], after["city_seq"]) == ("DISPATCHED", 1)
    assert after["version"] == before["version"] + 1


async def test_status_events_out_of_order_wait_for_the_missing_one(desk: Desk) -> None:
    order_no, city_no, _ = await _dispatched_order(desk)
    signed = _event(city_no, order_no, 2, "SIGNED", {"unit": "某局"})
    dispatched = _event(city_no, order_no, 1, "DISPATCHED", {"units": ["某局"]})
    body = webhook_body([signed])
    status, answer = await _push(desk, body, _signed(body))
    assert status == 200 and answer["results"][0]["result"] == "waiting"
    assert (await desk.order(order_no))["status"] == "PENDING_DISPATCH"
    body = webhook_body([dispatched])
    status, answer = await _push(desk, body, _signed(body))
    assert answer["results"][0]["result"] == "applied"
    row = await desk.order(order_no)
    assert (row["status"], row["city_seq"]) == ("SIGNED", 2)
    states = await desk.pool.fetch(
        "SELECT event_id, state FROM workorder_inbound ORDER BY city_seq"
    )
    assert [tuple(r) for r in states] == [(f"{city_no}-1", "applied"), (f"{city_no}-2", "applied")]

    refused = _event(city_no, order_no, 3, "REOPENED", {})
    body = webhook_body([refused])
    status, answer = await _push(desk, body, _signed(body))
    assert answer["results"][0]["result"] == "refused"
    assert "SIGNED" in answer["results"][0]["reason"]
    assert (await desk.order(order_no))["status"] == "SIGNED"


async def test_reconciliation_repairs_a_lost_number_and_resends_a_lost_order(
    desk: Desk,
) -> None:
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from workorder_sync.reconcile import reconcile_day

    lost_number, _, _ = await _dispatched_order(desk)
    lost_order, _, _ = await _dispatched_order(desk)
    fine, _, _ = await _dispatched_order(desk)
    # Our side lost the city's number for one order (its answer never came).
    await desk.pool.execute(
        "UPDATE work_order SET city_order_no = NULL WHERE order_no = $1", lost_number
    )
    # One order we count as delivered never reached the city: make it so by
    # creating it here only (its CREATE marked delivered, as after a lost ack).
    agent = await desk.login("a1001")
    made = await desk.client.post("/api/v1/workorders", json={"call_id": "c1"}, headers=agent)
    ghost = (await made.json())["order_no"]
    await desk.client.patch(f"/api/v1/workorders/{ghost}", json=FORM, headers=agent)
    for action in ("ACCEPT", "SEND_TO_DISPATCH"):
        await desk.client.post(
            f"/api/v1/workorders/{ghost}/actions", json={"action": action}, headers=agent
        )
    await desk.pool.execute(
        "UPDATE workorder_outbox SET state = 'delivered', delivered_at = now() WHERE order_no = $1",
        ghost,
    )
    await desk.pool.execute("DELETE FROM workorder_outbox_order WHERE order_no = $1", ghost)
    assert desk.sim.created_count(ghost) == 0

    day = datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).date()
    report = await reconcile_day(desk.pool, desk.adapter, day, tz="Asia/Shanghai")
    assert report.ours == 4 and report.theirs == 3 and report.matched == 2
    assert [o for o, _ in report.number_repaired] == [lost_number]
    assert report.resent == [ghost] and not report.ok
    assert (await desk.order(lost_number))["city_order_no"] == report.number_repaired[0][1]
    await desk.deliver()
    assert desk.sim.created_count(ghost) == 1
    again = await reconcile_day(desk.pool, desk.adapter, day, tz="Asia/Shanghai")
    assert (again.matched, again.resent, again.number_repaired) == (4, [], [])
    assert again.ok
    assert desk.sim.created_count(lost_order) == desk.sim.created_count(fine) == 1


async def test_orders_past_or_near_their_deadline_raise_alerts(desk: Desk) -> None:
    from datetime import UTC, datetime, timedelta

    from acd.alarms import CLEARED, RAISED
    from workorder_sync.feature import SyncMonitor

    order_no, _, _ = await _dispatched_order(desk)
    deadline = await desk.client.get(
        f"/api/v1/workorders/{order_no}", headers=await desk.login("sup")
    )
    deadline_at = datetime.fromisoformat((await deadline.json())["deadline"])
    section = WorkOrderConfig()
    clock = {"now": datetime.now(UTC)}
    service = WorkOrderService(
        store=OrderStore(desk.pool, prefix="GD"),
        pool=desk.pool,
        calendar=section.calendar(),
        rules=section.rules(),
        near_hours=24.0,
        call_facts=lambda _: None,
        clock=lambda: clock["now"],
    )
    published: list[Any] = []
    monitor = SyncMonitor(desk.pool, published.append, service)
    assert await monitor.check() == []
    clock["now"] = deadline_at - timedelta(hours=2)
    (near,) = await monitor.check()
    assert (near.kind, near.state) == ("WORKORDER_NEAR_DUE", RAISED) and order_no in near.message
    clock["now"] = deadline_at + timedelta(minutes=1)
    changed = {(a.kind, a.state) for a in await monitor.check()}
    assert changed == {("WORKORDER_OVERDUE", RAISED), ("WORKORDER_NEAR_DUE", CLEARED)}
    due = await service.due()
    assert [(o.order_no, s.value) for o, s in due] == [(order_no, "OVERDUE")]
    assert len(published) == 3


async def _hotline(*argv: str, env: dict[str, str]) -> tuple[int, str]:
    import os
    import sys

    done = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cti.cli", *argv, env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out = (await done.communicate())[0].decode()
    return done.returncode or 0, out


async def test_the_outbox_and_reconcile_commands(desk: Desk) -> None:
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    env = {
        "HOTLINE_PG_DSN": desk.dsn,
        "HOTLINE_CITY_URL": desk.city_url,
        "HOTLINE_CITY_SECRET": "district-secret",
    }
    await _dispatched_order(desk)
    code, out = await _hotline("workorders", "outbox", env=env)
    assert (code, out.splitlines()[0]) == (0, "outbox: 0 message(s) to deliver, oldest -; 0 dead")

    desk.sim.set_faults(reject_rate=1.0, reject_pattern=".*", reject_status=422)
    poisoned, _ = await _accepted_and_sent(desk)
    await desk.deliver()
    code, out = await _hotline("workorders", "outbox", env=env)
    assert code == 1, out
    (dead,) = [line for line in out.splitlines() if line.startswith("DEAD ")]
    assert poisoned in dead and "CREATE" in dead and "422" in dead
    message_id = dead.split()[1]
    desk.sim.set_faults(reject_rate=0.0)
    code, out = await _hotline("workorders", "outbox", "--retry", message_id, env=env)
    assert code == 0 and f"message {message_id} queued again" in out
    code, _ = await _hotline("workorders", "outbox", "--retry", message_id, env=env)
    assert code == 1  # no longer dead
    await desk.deliver()
    assert desk.sim.created_count(poisoned) == 1

    day = datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).date()
    code, out = await _hotline("workorders", "reconcile", "--date", day.isoformat(), env=env)
    assert code == 0, out
    assert out.startswith(f"{day}: ours 2, the city's 2, matched 2")


async def _accepted_and_sent(desk: Desk) -> tuple[str, dict[str, str]]:
    agent = await desk.login("a1001")
    made = await desk.client.post("/api/v1/workorders", json={"call_id": "c1"}, headers=agent)
    order_no = (await made.json())["order_no"]
    await desk.client.patch(f"/api/v1/workorders/{order_no}", json=FORM, headers=agent)
    for action in ("ACCEPT", "SEND_TO_DISPATCH"):
        await desk.client.post(
            f"/api/v1/workorders/{order_no}/actions", json={"action": action}, headers=agent
        )
    return order_no, agent


async def test_the_polling_platform_status_is_pulled_once_and_in_order(desk: Desk) -> None:
    """The second city style: actions one endpoint each, no idempotency keys,
    status pulled by time range from a cursor kept in PostgreSQL."""
    from workorder_sync.city.polling import PollingCityAdapter
    from workorder_sync.feature import poll_once

    section = WorkOrderConfig()
    service = WorkOrderService(
        store=OrderStore(desk.pool, prefix="GD"),
        pool=desk.pool,
        calendar=section.calendar(),
        rules=section.rules(),
        near_hours=24.0,
        call_facts=lambda _: None,
    )
    order_no, _ = await _accepted_and_sent(desk)
    async with aiohttp.ClientSession() as session:
        polling = PollingCityAdapter(desk.city_url, "sim-token", session, page_size=2)
        worker = DeliveryWorker(desk.pool, polling, name="p")
        while await worker.run_once():
            pass
        city_no = (await desk.order(order_no))["city_order_no"]
        assert city_no and desk.sim.created_count(order_no) == 1
        desk.sim.emit_status(city_no, "DISPATCHED", {"units": ["某局"]})
        desk.sim.emit_status(city_no, "SIGNED", {"unit": "某局"})
        assert await poll_once(desk.pool, service, polling) == 2
        row = await desk.order(order_no)
        assert (row["status"], row["city_seq"]) == ("SIGNED", 2)
        assert await poll_once(desk.pool, service, polling) == 0  # nothing new: cursor kept
        desk.sim.emit_status(city_no, "REPLIED", {"text": "已修复"})
        assert await poll_once(desk.pool, service, polling) == 1
    assert (await desk.order(order_no))["status"] == "REPLIED"
    cursor = await desk.pool.fetchval(
        "SELECT cursor FROM workorder_cursor WHERE adapter = 'polling'"
    )
    assert cursor
    assert (
        await desk.pool.fetchval("SELECT count(*) FROM workorder_inbound WHERE state = 'applied'")
        == 3
    )
