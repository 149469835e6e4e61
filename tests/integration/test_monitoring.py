"""Listen / whisper / barge on a real call: the supervisor's softphone (here the
robot of seat 1003) is rung into ChanSpy on the agent's channel, with the
options of the mode, and the action is audited."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from common.db import migrate
from cti.api.accounts import AccountStore
from cti.api.roles import Role
from cti.calls import CallAnswered
from softphone_bridge.sipp_citizen import CitizenCall

from .conftest import cancel_and_wait

pytestmark = [pytest.mark.integration, pytest.mark.stack(agents=3)]


async def _spy_channels(engine) -> list[tuple[str, str]]:
    reply = await engine.link.send_action({"Action": "CoreShowChannels"})
    return [
        (item.get("Channel", ""), item.get("ApplicationData", ""))
        for item in reply
        if item.get("Application") == "ChanSpy"
    ]


@pytest.mark.parametrize(
    ("mode", "options"), [("listen", "qE"), ("whisper", "qwE"), ("barge", "qBE")]
)
async def test_monitoring_rings_the_supervisor_into_chanspy(
    engine, robots, citizens, stack, mode: str, options: str
) -> None:
    eng, changes = engine
    _, info = stack
    eng.logout("1002")
    eng.logout("1003")  # seat 1003's phone is the supervisor's
    await migrate(info.database_dsn)
    pool = await asyncpg.create_pool(info.database_dsn, min_size=1, max_size=2)
    accounts = AccountStore(pool)
    await accounts.add("sup", Role.SUPERVISOR, "correct horse 1", phone="1003")
    app = eng.runtime.app  # the runtime's routes, its console service, its audit log
    call = asyncio.create_task(citizens.call(CitizenCall("12345", "13800138000", "张三", 20.0)))
    try:
        async with TestClient(TestServer(app)) as client:
            login = await client.post(
                "/api/v1/sessions", json={"username": "sup", "password": "correct horse 1"}
            )
            headers = {"Authorization": f"Bearer {(await login.json())['token']}"}
            idle = await client.post(
                "/api/v1/agents/1002/monitor", headers=headers, json={"mode": mode}
            )
            assert idle.status == 409  # not on a call
            bad = await client.post(
                "/api/v1/agents/1001/monitor", headers=headers, json={"mode": "record"}
            )
            assert bad.status == 400 and (await bad.json())["field"] == "mode"

            await changes.wait_for(lambda c: isinstance(c, CallAnswered) and c.agent == "1001")
            started = await client.post(
                "/api/v1/agents/1001/monitor", headers=headers, json={"mode": mode}
            )
            assert started.status == 202, await started.text()
            await robots["1003"].next_event("answered", timeout_s=15)
            async with asyncio.timeout(10):
                while not (spies := await _spy_channels(eng)):
                    await asyncio.sleep(0.2)  # polling Asterisk's channel list: no event to await
            assert spies == [(spies[0][0], f"PJSIP/1001-,{options}")]
            assert spies[0][0].startswith("PJSIP/1003-")
            rows = await pool.fetch("SELECT username, action, subject FROM audit_log")
            assert ("sup", f"monitor_{mode}", "1001") in [tuple(r) for r in rows]
    finally:
        await cancel_and_wait(call)
        await pool.close()
