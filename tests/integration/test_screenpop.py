"""Screen-pop on a real call: sipp citizen -> real Asterisk -> engine -> the
agent's pyVoIP phone rings, and the agent's desktop WebSocket gets the frame,
with the caller's number masked, the line, the wait so far, the caller's
earlier call read from the PostgreSQL event log and the work order made of it."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from common.db import migrate
from cti.api.accounts import AccountStore
from cti.api.roles import Role
from cti.calls import AgentRinging
from softphone_bridge.sipp_citizen import CitizenCall

from .conftest import cancel_and_wait

pytestmark = pytest.mark.integration

CALLER = "13800138000"


async def test_a_ringing_agent_gets_the_screen_pop(engine, robots, citizens, stack) -> None:
    eng, changes = engine
    _, info = stack
    await migrate(info.database_dsn)
    pool = await asyncpg.create_pool(info.database_dsn, min_size=1, max_size=2)
    # The caller rang before: answered by 1002 (rows as the event log writes them).
    await pool.execute(
        "INSERT INTO acd_event"
        " (at, kind, call_id, line, caller_number, agent, dedup_key, engine_id) VALUES"
        " (now() - interval '2 days', 'CALL_ARRIVED', 'old-1', '12345', $1, NULL, 'a', 'e0'),"
        " (now() - interval '2 days', 'CALL_ANSWERED', 'old-1', '12345', $1, '1002', 'b', 'e0')",
        CALLER,
    )
    # ... and a work order was made of that call, now dispatched.
    await pool.execute(
        "INSERT INTO work_order (order_no, city_order_no, call_id, channel, caller_number,"
        " appeal_type, title, status, created_at) VALUES ('WO-20261119-0001', 'SZ-88', 'old-1',"
        " 'PHONE_12345', $1, 'COMPLAINT', '小区噪音扰民', 'DISPATCHED', now() - interval '2 days')",
        CALLER,
    )
    accounts = AccountStore(pool)
    await accounts.add("a1001", Role.AGENT, "correct horse 1", agent="1001")
    # The runtime's screen-pop feature pops on the bus's AgentRinging, through
    # the runtime's hub, to the desktops of the runtime's HTTP application.
    service = eng.runtime.services["screenpop"]
    eng.pause("1002", "test")  # the call must ring 1001
    app = eng.runtime.app
    call = None
    try:
        async with TestClient(TestServer(app)) as client:
            login = await client.post(
                "/api/v1/sessions", json={"username": "a1001", "password": "correct horse 1"}
            )
            token = (await login.json())["token"]

            refused = await client.ws_connect("/api/v1/ws")
            await refused.send_json({"type": "auth", "token": "forged"})
            assert (await refused.receive_json())["type"] == "error"
            await refused.receive()  # the close frame
            assert refused.close_code == 4401

            desktop = await client.ws_connect("/api/v1/ws")
            await desktop.send_json({"type": "auth", "token": token})
            hello = await desktop.receive_json(timeout=5)
            assert hello == {"type": "hello", "username": "a1001", "role": "agent", "agent": "1001"}

            call = asyncio.create_task(
                citizens.call(CitizenCall("12345", CALLER, "张三丰", hold_s=4.0))
            )
            # The agent's own state changes (reserved, ringing) reach the
            # desktop too: the pop is the first screen_pop frame.
            async with asyncio.timeout(30):
                while (pop := await desktop.receive_json())["type"] == "agent_state":
                    assert pop["state"]["agent"] == "1001"
            ringing = await changes.wait_for(lambda c: isinstance(c, AgentRinging))
            assert pop["type"] == "screen_pop"
            assert pop["call_id"] == ringing[0].call_id and pop["agent"] == "1001"
            assert pop["line"] == "12345" and pop["dialled"] == "12345"
            assert pop["caller_number"] == "138****8000" and pop["number_masked"]
            assert pop["caller_name"] == "张**"
            assert 0 <= pop["waited_s"] < 30
            assert pop["repeat_caller"] is True
            assert [(h["call_id"], h["outcome"], h["agent"]) for h in pop["history"]] == [
                ("old-1", "answered", "1002")
            ]
            assert [
                (o["order_no"], o["city_order_no"], o["status"], o["appeal_type"], o["title"])
                for o in pop["work_orders"]
            ] == [("WO-20261119-0001", "SZ-88", "DISPATCHED", "COMPLAINT", "小区噪音扰民")]
            assert CALLER not in str(pop)
            assert [(c, a) for c, a, _ in service.sent] == [(ringing[0].call_id, "1001")]
            await desktop.close()
            result = await call
            assert result.exit_code == 0
    finally:
        if call is not None and not call.done():
            await cancel_and_wait(call)
        await pool.close()
