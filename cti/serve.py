"""``hotline serve``: the engine against a configured Asterisk."""

from __future__ import annotations

import asyncio
import logging
import signal

from cti.call_printer import CallPrinter
from cti.config import ConfigError, EngineConfig
from cti.engine import Engine

log = logging.getLogger(__name__)


async def run_serve(config: EngineConfig) -> None:
    if not config.ami.secret:
        raise ConfigError("ami.secret", "missing; set it in the config file or HOTLINE_AMI_SECRET")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    engine = Engine(config)
    printer = CallPrinter()
    engine.add_listener(printer)
    await engine.start()
    try:
        await stop.wait()
    finally:
        await engine.stop()
        log.info(printer.summary())
