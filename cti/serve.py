"""``hotline serve``: the engine against a configured Asterisk, PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import logging
import signal
from contextlib import AsyncExitStack
from pathlib import Path

from cti.api.server import serve_api
from cti.call_printer import CallPrinter
from cti.config import ConfigError, EngineConfig, config_warnings
from cti.engine import Engine
from cti.persistence import persistence
from cti.runtime import tune_gc

log = logging.getLogger(__name__)


async def run_serve(config: EngineConfig, *, spill_dir: Path | None = None) -> None:
    if not config.ami.secret:
        raise ConfigError("ami.secret", "missing; set it in the config file or HOTLINE_AMI_SECRET")
    for warning in config_warnings(config):
        log.warning("%s", warning)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with persistence(config, spill_dir=spill_dir) as stores:
        engine = Engine(config, event_log=stores.event_log, snapshot_store=stores.snapshot_store)
        printer = CallPrinter()
        engine.add_listener(printer)
        await engine.start()
        tune_gc()
        try:
            async with AsyncExitStack() as api:
                if config.api.enabled and not config.database_dsn:
                    log.warning(
                        "HTTP API not started: accounts and the audit log need database_dsn "
                        "(or set api.enabled = false to silence this)"
                    )
                elif config.api.enabled:
                    url = await api.enter_async_context(
                        serve_api(config.api, control=engine, database_dsn=config.database_dsn)
                    )
                    print(f"hotline serve: HTTP API on {url}", flush=True)
                await stop.wait()
        finally:
            await engine.stop()
            log.info(printer.summary())
