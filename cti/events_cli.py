"""``hotline events``: print every AMI event as one JSON object per line.

An operator's debugging tool on the engine's own hardened link: it survives
malformed input the same way and keeps running across reconnects.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Mapping
from typing import Any, TextIO

from cti.ami import AMILink


def event_json(event: Mapping[str, Any]) -> str:
    """All headers as keys, values as decoded text (repeated headers as lists)."""
    data = {k: v for k, v in event.items() if not (k == "content" and not v)}
    return json.dumps(data, ensure_ascii=False)


async def run_events(
    *,
    host: str,
    port: int,
    username: str,
    secret: str,
    out: TextIO = sys.stdout,
    stop: asyncio.Event | None = None,
) -> AMILink:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass

    def emit(event: Mapping[str, Any]) -> None:
        out.write(event_json(event) + "\n")
        out.flush()

    link = AMILink(host=host, port=port, username=username, secret=secret, name="events")
    link.add_event_handler(emit)
    await link.start()
    try:
        await stop.wait()
    finally:
        await link.close()
    return link
