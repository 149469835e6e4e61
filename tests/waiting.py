"""The tests' one way to wait for a condition that has no event to await (a
row another process writes, a Redis key, a file): poll it, bounded in time.
Where the code under test raises an event, await the event instead."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

POLL_S = 0.01


async def eventually(
    predicate: Callable[[], bool], timeout_s: float = 10.0, *, poll_s: float = POLL_S
) -> None:
    """Until *predicate()* is true; TimeoutError after *timeout_s*."""
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(poll_s)  # nothing to await: the condition is polled


async def link_state(link: Any, predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Until *predicate()* holds for an AMI link's state (``stats``,
    ``retry_waits``, ``last_connect_error`` ...): re-checked on every change
    the link reports (:meth:`cti.ami.AMILink.add_state_listener`)."""
    changed = asyncio.Event()
    link.add_state_listener(changed.set)
    async with asyncio.timeout(timeout_s):
        while not predicate():
            changed.clear()
            await changed.wait()
