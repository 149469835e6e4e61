"""An outbox delivery worker as a process of its own: ``python -m
workorder_sync.deliver`` (or ``hotline workorders deliver``), on any machine
that reaches PostgreSQL and the city. Settings come on stdin as JSON, so
that no secret appears on a command line::

    {"dsn": ..., "adapter": "rest" | "polling", "city_url": ..., "app_key": ...,
     "secret": ..., "token": ..., "name": ..., "lease_s": 30, "timeout_s": 10}

Any number of these may run beside the engine's own: they share the work
through PostgreSQL (see :mod:`workorder_sync.outbox`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from typing import Any

import aiohttp
import asyncpg

from .city.base import CityAdapter
from .outbox import CHANNEL, DeliverySettings, DeliveryWorker

__all__ = ["adapter_for", "main", "serve"]

log = logging.getLogger(__name__)


def adapter_for(settings: dict[str, Any], session: aiohttp.ClientSession) -> CityAdapter:
    timeout_s = float(settings.get("timeout_s", 10.0))
    if settings.get("adapter", "rest") == "polling":
        from .city.polling import PollingCityAdapter

        return PollingCityAdapter(
            settings["city_url"], settings["token"], session, timeout_s=timeout_s
        )
    from .city.rest import RestCityAdapter

    return RestCityAdapter(
        settings["city_url"],
        settings["app_key"],
        settings["secret"].encode(),
        session,
        timeout_s=timeout_s,
    )


async def serve(settings: dict[str, Any]) -> None:
    pool = await asyncpg.create_pool(settings["dsn"], min_size=1, max_size=4)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with aiohttp.ClientSession() as session:
            worker = DeliveryWorker(
                pool,
                adapter_for(settings, session),
                name=settings.get("name") or f"deliver-{os.getpid()}",
                settings=DeliverySettings(lease_s=float(settings.get("lease_s", 30.0))),
            )
            running = asyncio.create_task(worker.run())

            def wake(*_: Any) -> None:
                worker.wake()

            async with pool.acquire() as listening:
                # Woken by the engine's NOTIFY at once, not at the next poll.
                await listening.add_listener(CHANNEL, wake)
                await stop.wait()
                await listening.remove_listener(CHANNEL, wake)
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
    finally:
        await pool.close()


def main() -> int:
    logging.basicConfig(
        level=os.environ.get("HOTLINE_LOG_LEVEL", "WARNING").upper(),
        format="%(asctime)s %(levelname)s outbox-worker[%(process)d] %(name)s: %(message)s",
        stream=sys.stderr,
    )
    settings = json.loads(sys.stdin.buffer.read() or b"{}")
    if not settings.get("dsn") or not settings.get("city_url"):
        print("outbox worker: settings on stdin need dsn and city_url", file=sys.stderr)
        return 2
    asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
