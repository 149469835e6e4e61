"""The HTTP API against a real PostgreSQL (accounts, audit log) and a real
engine's ACD: sessions, role checks, an agent acting only on itself,
supervisors forcing a pause, payload errors that name the field."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from pathlib import Path

import aiohttp
import asyncpg
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from common.db import migrate
from cti.api.accounts import AccountStore, AuditLog, SessionStore
from cti.api.http import HUB, build_app
from cti.api.roles import Role
from cti.api.sessions import SessionTable
from cti.config import AgentSpec, ApiConfig, EngineConfig
from cti.features import section_of
from cti.runtime import Runtime, build_runtime
from cti.stack.postgres import PrivatePostgres

from .conftest import EngineView

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self) -> None:
        self.now = 1_795_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Api:
    client: TestClient
    pool: asyncpg.Pool
    engine: EngineView
    clock: Clock

    async def login(self, username: str, password: str = "correct horse 1") -> dict[str, str]:
        response = await self.client.post(
            "/api/v1/sessions", json={"username": username, "password": password}
        )
        assert response.status == 201, await response.text()
        return {"Authorization": f"Bearer {(await response.json())['token']}"}


@pytest_asyncio.fixture
async def dsn() -> AsyncIterator[str]:
    """A private PostgreSQL with the engine's migrations applied."""
    run_dir = Path(tempfile.mkdtemp(prefix="hotline-api-"))
    run_dir.chmod(0o755)  # PostgreSQL runs as its own user when we are root
    server = PrivatePostgres(run_dir / "pg")
    await server.start()
    try:
        await migrate(server.dsn)
        yield server.dsn
    finally:
        await server.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


CONFIG = EngineConfig(agents=(AgentSpec("1001", "张三"), AgentSpec("1002", "李四")))


def _runtime(clock: Clock) -> Runtime:
    """A runtime whose link is never started: ACD only."""
    return build_runtime(CONFIG, clock=clock, serve_http=False)


@contextlib.asynccontextmanager
async def _routes(
    runtime: Runtime,
    *,
    accounts: AccountStore,
    audit: AuditLog,
    sessions: SessionTable,
    session_store: SessionStore | None = None,
) -> AsyncIterator[web.Application]:
    """The runtime's HTTP application with its features running, as
    ``Runtime._start`` wires them, but no AMI link, no ACD loops, no site."""
    runtime.app = build_app(
        accounts=accounts,
        audit=audit,
        sessions=sessions,
        hub=runtime.hub,
        session_store=session_store,
        features=runtime.features,
    )
    async with AsyncExitStack() as stack:
        stack.push_async_callback(runtime.hub.close)
        for feature in runtime.features:
            if feature.run is not None:
                await stack.enter_async_context(
                    feature.run(runtime, section_of(runtime.config, feature))
                )
        runtime.bus.start()
        stack.push_async_callback(runtime.bus.close)
        yield runtime.app


@pytest_asyncio.fixture
async def api(dsn: str) -> AsyncIterator[Api]:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    try:
        clock = Clock()
        runtime = _runtime(clock)
        engine = EngineView(runtime)
        accounts = AccountStore(pool)
        await accounts.add("a1001", Role.AGENT, "correct horse 1", agent="1001")
        await accounts.add("a1002", Role.AGENT, "correct horse 1", agent="1002")
        await accounts.add("sup", Role.SUPERVISOR, "correct horse 1", display_name="班长")
        async with (
            _routes(
                runtime,
                accounts=accounts,
                audit=AuditLog(pool),
                sessions=SessionTable(ttl_s=8 * 3600, clock=clock),
            ) as app,
            TestClient(TestServer(app)) as client,
        ):
            yield Api(client, pool, engine, clock)
    finally:
        await pool.close()


async def _audit(api: Api) -> list[tuple[str, str, str, bool | None]]:
    rows = await api.pool.fetch(
        "SELECT username, action, subject, (detail->>'forced')::boolean AS forced"
        " FROM audit_log ORDER BY id"
    )
    return [(r["username"], r["action"], r["subject"], r["forced"]) for r in rows]


async def test_login_logout_and_bad_credentials(api: Api) -> None:
    wrong = await api.client.post(
        "/api/v1/sessions", json={"username": "a1001", "password": "wrong password"}
    )
    assert wrong.status == 401
    unknown = await api.client.post(
        "/api/v1/sessions", json={"username": "nobody", "password": "wrong password"}
    )
    assert unknown.status == 401
    assert (await wrong.json())["error"] == (await unknown.json())["error"]

    headers = await api.login("a1001")
    me = await api.client.get("/api/v1/me", headers=headers)
    assert me.status == 200
    assert await me.json() == {
        "username": "a1001",
        "role": "agent",
        "agent": "1001",
        "expires_at": api.clock.now + 8 * 3600,
    }
    assert (await api.client.delete("/api/v1/sessions/current", headers=headers)).status == 204
    assert (await api.client.get("/api/v1/me", headers=headers)).status == 401
    assert (await api.client.get("/api/v1/me")).status == 401
    forged = {"Authorization": "Bearer not-a-token"}
    assert (await api.client.get("/api/v1/me", headers=forged)).status == 401
    assert await _audit(api) == [
        ("", "login_failed", "a1001", None),
        ("", "login_failed", "nobody", None),
        ("a1001", "login", "", None),
        ("a1001", "logout", "", None),
    ]


async def test_sessions_expire(api: Api) -> None:
    headers = await api.login("sup")
    api.clock.now += 8 * 3600
    response = await api.client.get("/api/v1/me", headers=headers)
    assert response.status == 401
    assert "log in" in (await response.json())["error"]


async def test_disabled_account_cannot_log_in(api: Api) -> None:
    assert await AccountStore(api.pool).set_disabled("a1002", True)
    response = await api.client.post(
        "/api/v1/sessions", json={"username": "a1002", "password": "correct horse 1"}
    )
    assert response.status == 401


async def test_an_agent_acts_on_itself_only(api: Api) -> None:
    agent = await api.login("a1001")
    login = await api.client.post("/api/v1/agents/1001/login", headers=agent)
    assert login.status == 200 and (await login.json())["state"] == "AVAILABLE"
    pause = await api.client.post(
        "/api/v1/agents/1001/pause", headers=agent, json={"reason": "午休"}
    )
    assert pause.status == 200
    assert (await pause.json())["pause_reason"] == "午休"
    assert api.engine.acd.agents["1001"].state.name == "PAUSED"

    other = await api.client.post(
        "/api/v1/agents/1002/pause", headers=agent, json={"reason": "午休"}
    )
    assert other.status == 403
    assert "only on itself" in (await other.json())["error"]
    assert api.engine.acd.agents["1002"].state.name == "LOGGED_OUT"

    listed = await api.client.get("/api/v1/agents", headers=agent)
    assert [a["agent"] for a in (await listed.json())["agents"]] == ["1001"]

    resume = await api.client.post("/api/v1/agents/1001/resume", headers=agent)
    assert (await resume.json())["state"] == "AVAILABLE"
    again = await api.client.post("/api/v1/agents/1001/resume", headers=agent)
    assert again.status == 409  # not paused: the ACD refuses, the message says why
    assert (await again.json())["error"]


async def test_a_supervisor_forces_pause_and_logout(api: Api) -> None:
    api.engine.login("1002")
    supervisor = await api.login("sup")
    listed = await api.client.get("/api/v1/agents", headers=supervisor)
    assert [a["agent"] for a in (await listed.json())["agents"]] == ["1001", "1002"]
    pause = await api.client.post(
        "/api/v1/agents/1002/pause", headers=supervisor, json={"reason": "班长示忙"}
    )
    assert pause.status == 200
    assert api.engine.acd.agents["1002"].pause_reason == "班长示忙"
    logout = await api.client.post("/api/v1/agents/1002/logout", headers=supervisor)
    assert logout.status == 200 and (await logout.json())["state"] == "LOGGED_OUT"
    missing = await api.client.post("/api/v1/agents/9999/logout", headers=supervisor)
    assert missing.status == 404
    assert ("sup", "agent_pause", "1002", True) in await _audit(api)
    assert ("sup", "agent_logout", "1002", True) in await _audit(api)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "(body)"),
        (b"[1, 2]", "(body)"),
        (b"{}", "reason"),
        (b'{"reason": 42}', "reason"),
        (b'{"reason": "x", "extra": 1}', "extra"),
    ],
)
async def test_bad_payloads_get_400_naming_the_field(api: Api, body: bytes, field: str) -> None:
    supervisor = await api.login("sup")
    api.engine.login("1001")
    response = await api.client.post(
        "/api/v1/agents/1001/pause",
        headers={**supervisor, "Content-Type": "application/json"},
        data=body,
    )
    assert response.status == 400
    error = await response.json()
    assert error["field"] == field and error["error"]
    assert api.engine.acd.agents["1001"].state.name == "AVAILABLE"  # nothing happened


async def test_login_payload_errors(api: Api) -> None:
    response = await api.client.post("/api/v1/sessions", json={"username": "a1001"})
    assert response.status == 400 and (await response.json())["field"] == "password"


async def test_audit_log_is_append_only(api: Api) -> None:
    await api.login("sup")
    with pytest.raises(asyncpg.PostgresError, match="append-only"):
        await api.pool.execute("UPDATE audit_log SET username = 'x'")
    with pytest.raises(asyncpg.PostgresError, match="append-only"):
        await api.pool.execute("DELETE FROM audit_log")


async def test_openapi_document_is_served(api: Api) -> None:
    response = await api.client.get("/api/v1/openapi.json")
    assert response.status == 200
    document = await response.json()
    assert document["openapi"] == "3.1.0"
    assert "/api/v1/agents/{agent}/pause" in document["paths"]


async def _hotline(*argv: str, env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cti.cli", *argv,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await process.communicate()
    return process.returncode or 0, out.decode()


async def test_account_cli_and_the_served_api(dsn: str) -> None:
    env = {"HOTLINE_ACCOUNT_PASSWORD": "班长的密码-2026", "HOTLINE_PG_DSN": dsn}
    code, out = await _hotline(
        "account", "add", "--username", "duty", "--role", "supervisor", "--name", "值班长", env=env
    )
    assert code == 0, out
    assert "account duty (supervisor) created" in out and "班长的密码" not in out
    code, out = await _hotline(
        "account", "add", "--username", "x", "--role", "agent", env=env
    )  # fmt: skip
    assert code == 2 and "--agent" in out
    code, out = await _hotline(
        "account", "add", "--username", "duty", "--role", "admin", env=env
    )  # fmt: skip
    assert code == 2 and "already has an account" in out

    # The API as ``hotline serve`` serves it: a runtime with ``api`` enabled.
    served = replace(CONFIG, api=ApiConfig(port=0), database_dsn=dsn)
    async with build_runtime(served, clock=Clock()) as runtime:
        url = runtime.url
        assert url is not None
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}/api/v1/openapi.json") as response:
                assert response.status == 200
            login = {"username": "duty", "password": "班长的密码-2026"}
            async with http.post(f"{url}/api/v1/sessions", json=login) as response:
                assert response.status == 201
                assert (await response.json())["role"] == "supervisor"


async def test_the_console_is_for_supervisors_and_pushes_live_snapshots(api: Api) -> None:
    agent = await api.login("a1001")
    assert (await api.client.get("/api/v1/console", headers=agent)).status == 403
    supervisor = await api.login("sup")
    api.engine.login("1001")
    response = await api.client.get("/api/v1/console", headers=supervisor)
    assert response.status == 200
    data = await response.json()
    assert data["acd"]["agents"]["1001"]["state"] == "AVAILABLE"
    assert data["acd"]["queues"]["12345-general"]["waiting"] == 0
    assert data["kpi"]["targets"]["rate_target"] == 0.9

    token = supervisor["Authorization"].split()[1]
    socket = await api.client.ws_connect("/api/v1/ws")
    await socket.send_json({"type": "auth", "token": token})
    assert (await socket.receive_json(timeout=5))["role"] == "supervisor"
    hub = api.client.app[HUB]  # type: ignore[index]
    api.engine.pause("1001", "培训")
    hub.publish_console(api.engine.snapshot())  # what the engine's KPI loop does
    frame = await socket.receive_json(timeout=5)
    assert frame["type"] == "console"
    assert frame["snapshot"]["acd"]["agents"]["1001"]["pause_reason"] == "培训"
    await socket.close()


def _put_on_call(engine: EngineView, agent: str, call_id: str, at: float) -> None:
    """The ACD's side of a call *agent* answered (no switch behind it here)."""
    engine.acd.login(agent, at)
    engine.acd.enqueue(
        call_id,
        queue="12345-general",
        line="12345",
        caller_number="13800138000",
        priority=0,
        at=at,
    )
    engine.acd.ringing(call_id, agent, at)
    engine.acd.answered(call_id, agent, at)


async def test_call_control_is_for_the_calls_own_agent(api: Api) -> None:
    _put_on_call(api.engine, "1002", "call-9", api.clock())
    assert api.engine.agent_on_call("call-9") == "1002"
    intruder = await api.login("a1001")
    hold = await api.client.post("/api/v1/calls/call-9/hold", headers=intruder)
    assert hold.status == 403
    assert "not yours" in (await hold.json())["error"]
    transfer = await api.client.post(
        "/api/v1/calls/call-9/transfer",
        headers=intruder,
        json={"target": {"kind": "mobile"}},
    )
    assert transfer.status == 403
    missing = await api.client.post("/api/v1/calls/no-such-call/hold", headers=intruder)
    assert missing.status == 404

    owner = await api.login("a1002")
    # The ACD says 1002 is on call-9, but no switch carries it: refused, with the reason.
    hold = await api.client.post("/api/v1/calls/call-9/hold", headers=owner)
    assert hold.status == 409 and "no live caller" in (await hold.json())["error"]
    rows = await api.pool.fetch("SELECT action FROM audit_log WHERE subject = 'call-9'")
    assert rows == []  # nothing done, nothing audited as done


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{}", "target"),
        (b'{"target": "1002"}', "target"),
        (b'{"target": {"kind": "fax"}}', "target.kind"),
        (b'{"target": {"kind": "agent"}}', "target.value"),
        (b'{"target": {"kind": "agent", "value": 1002}}', "target.value"),
        (b'{"target": {"kind": "agent", "value": "1002", "x": 1}}', "x"),
        (b'{"target": {"kind": "external", "value": "00882123456"}}', "target.value"),
        (b'{"target": {"kind": "queue", "value": "nope"}}', "target.value"),
    ],
)
async def test_call_control_payload_errors_name_the_field(
    api: Api, body: bytes, field: str
) -> None:
    _put_on_call(api.engine, "1001", "call-7", api.clock())
    agent = await api.login("a1001")
    response = await api.client.post(
        "/api/v1/calls/call-7/transfer",
        headers={**agent, "Content-Type": "application/json"},
        data=body,
    )
    assert response.status == 400, await response.text()
    error = await response.json()
    assert error["field"] == field and error["error"]


async def test_only_supervisors_read_unmasked_numbers_and_each_view_is_audited(api: Api) -> None:
    from cti.calls.model import Call

    api.engine.model.calls["call-5"] = Call(
        call_id="call-5",
        caller_channel="x",
        caller_number="13800138000",
        caller_name="张三",
        dialled="12345",
        line="12345",
        arrived_at=api.clock(),
    )
    agent = await api.login("a1001")
    refused = await api.client.get("/api/v1/calls/call-5/caller", headers=agent)
    assert refused.status == 403
    supervisor = await api.login("sup")
    seen = await api.client.get("/api/v1/calls/call-5/caller", headers=supervisor)
    assert seen.status == 200
    assert await seen.json() == {
        "call_id": "call-5",
        "caller_number": "13800138000",
        "caller_name": "张三",
    }
    missing = await api.client.get("/api/v1/calls/gone/caller", headers=supervisor)
    assert missing.status == 404
    rows = await api.pool.fetch("SELECT username, action, subject FROM audit_log")
    assert [tuple(r) for r in rows if r["action"] == "view_caller"] == [
        ("sup", "view_caller", "call-5")
    ]


async def test_sessions_survive_an_engine_restart_through_postgresql(dsn: str) -> None:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        accounts = AccountStore(pool)
        await accounts.add("a1001", Role.AGENT, "correct horse 1", agent="1001")
        clock = Clock()

        @contextlib.asynccontextmanager
        async def engine_process() -> AsyncIterator[TestClient]:
            """A fresh engine: an empty session table, the same database."""
            async with (
                _routes(
                    _runtime(clock),
                    accounts=accounts,
                    audit=AuditLog(pool),
                    sessions=SessionTable(ttl_s=3600, clock=clock),
                    session_store=SessionStore(pool, clock=clock),
                ) as app,
                TestClient(TestServer(app)) as client,
            ):
                yield client

        async with engine_process() as first:
            login = await first.post(
                "/api/v1/sessions", json={"username": "a1001", "password": "correct horse 1"}
            )
            token = (await login.json())["token"]
        stored = await pool.fetchval("SELECT token_digest FROM api_session")
        assert stored != token and len(stored) == 64  # only the digest is kept
        headers = {"Authorization": f"Bearer {token}"}
        async with engine_process() as restarted:
            me = await restarted.get("/api/v1/me", headers=headers)
            assert me.status == 200 and (await me.json())["agent"] == "1001"
            assert (
                await restarted.delete("/api/v1/sessions/current", headers=headers)
            ).status == 204
        async with engine_process() as again:
            assert (await again.get("/api/v1/me", headers=headers)).status == 401  # revoked
            login = await again.post(
                "/api/v1/sessions", json={"username": "a1001", "password": "correct horse 1"}
            )
            second = {"Authorization": f"Bearer {(await login.json())['token']}"}
        await pool.execute("UPDATE account SET disabled = true WHERE username = 'a1001'")
        async with engine_process() as after_disable:
            assert (await after_disable.get("/api/v1/me", headers=second)).status == 401
    finally:
        await pool.close()
