"""The tests' one way to wait for a condition that has no event to await (a
row another process writes, a Redis key, a file): poll it, bounded in time.
Where the code under test raises an event, await the event instead."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

POLL_S = 0.01


async def eventually(
    predicate: Callable[[], bool], timeout_s: float = 10.0, *, poll_s: float = POLL_S
) -> None:
    """Until *predicate()* is true; TimeoutError after *timeout_s*."""
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(poll_s)  # nothing to await: the condition is polled
