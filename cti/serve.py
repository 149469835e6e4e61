"""``hotline serve``: the engine against a configured Asterisk, PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from cti.call_printer import CallPrinter
from cti.calls import CallChange
from cti.config import ConfigError, EngineConfig, config_warnings
from cti.runtime import build_runtime, tune_gc

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
    runtime = build_runtime(config, spill_dir=spill_dir)
    printer = CallPrinter()
    runtime.bus.subscribe(CallChange, printer, name="call printer")
    try:
        async with runtime:
            tune_gc()
            if runtime.url is not None:
                print(f"hotline serve: HTTP API on {runtime.url}", flush=True)
            await stop.wait()
    finally:
        log.info(printer.summary())
