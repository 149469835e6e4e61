"""Browser tests: the integration fixtures (private stack, engine, robots,
sipp citizens), the engine's HTTP API on a free port, and headless Chromium."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from aiohttp import web

from common.db import migrate
from cti.api.accounts import AccountStore
from cti.api.roles import Role
from tests.integration.conftest import (  # noqa: F401  (fixtures)
    citizens,
    engine,
    no_orphans,
    robots,
    stack,
)

from .cdp import Browser

ARTIFACTS = Path(os.environ.get("HOTLINE_ARTIFACTS", Path(__file__).parents[2] / "artifacts"))
PASSWORD = "correct horse 1"


@pytest.fixture
def screenshots(request: pytest.FixtureRequest) -> Path:
    """Where this test keeps its screenshots (artifacts/browser/<test>/)."""
    path = ARTIFACTS / "browser" / request.node.name
    path.mkdir(parents=True, exist_ok=True)
    for old in path.glob("*.png"):
        old.unlink()
    return path


@pytest_asyncio.fixture
async def api_url(stack, engine) -> AsyncIterator[str]:  # noqa: F811
    """The engine's API and pages, with an agent (a1001) and a supervisor (sup):
    the engine runtime's HTTP application served on a free port, as
    ``Runtime`` serves it when ``api`` is enabled."""
    _, info = stack
    eng, _ = engine
    await migrate(info.database_dsn)
    pool = await asyncpg.create_pool(info.database_dsn, min_size=1, max_size=2)
    try:
        accounts = AccountStore(pool)
        await accounts.add("a1001", Role.AGENT, PASSWORD, agent="1001", display_name="张坐席")
        await accounts.add("sup", Role.SUPERVISOR, PASSWORD, display_name="李班长")
    finally:
        await pool.close()
    runner = web.AppRunner(eng.runtime.app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture
async def browser() -> AsyncIterator[Browser]:
    async with Browser() as b:
        yield b
