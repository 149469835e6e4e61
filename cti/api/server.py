"""Start the HTTP API next to the engine (``hotline serve``, ``hotline demo``)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from aiohttp import web

from cti.config import ApiConfig
from cti.engine import Engine

from .accounts import AccountStore, AuditLog, SessionStore
from .http import DesktopHub, build_app
from .screenpop import ScreenPopService
from .sessions import SessionTable

__all__ = ["serve_api"]

log = logging.getLogger(__name__)


@asynccontextmanager
async def serve_api(config: ApiConfig, *, control: Engine, database_dsn: str) -> AsyncIterator[str]:
    """Run the API until the block ends; yields its base URL. Accounts, the
    audit log and the callers' history live in PostgreSQL, so a database is
    required. Screen-pops go to agents' desktops as their phones ring."""
    if not database_dsn:
        raise ValueError("the HTTP API needs database_dsn (accounts and audit log)")
    pool = await asyncpg.create_pool(database_dsn, min_size=1, max_size=4)
    runner: web.AppRunner | None = None
    hub = DesktopHub()
    screen_pops = ScreenPopService(engine=control, pusher=hub, pool=pool)
    control.add_listener(screen_pops.on_change)
    control.add_kpi_listener(hub.publish_console)
    control.add_agent_state_listener(
        lambda agent: hub.publish_to_agent(agent, dict(control.agent_state(agent), agent=agent))
    )
    try:
        app = build_app(
            control=control,
            accounts=AccountStore(pool),
            audit=AuditLog(pool),
            sessions=SessionTable(ttl_s=config.session_ttl_s, clock=time.time),
            hub=hub,
            session_store=SessionStore(pool),
        )
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, config.host, config.port)
        await site.start()
        port = runner.addresses[0][1] if runner.addresses else config.port
        url = f"http://{config.host}:{port}"
        log.info("HTTP API on %s (OpenAPI at %s/api/v1/openapi.json)", url, url)
        yield url
    finally:
        await screen_pops.close()
        await hub.close()
        if runner is not None:
            await runner.cleanup()
        await pool.close()
