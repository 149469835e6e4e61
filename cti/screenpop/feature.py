"""Screen-pop on the feature contract."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from common.call_changes import AgentRinging
from cti.bus import Gap
from cti.feature import Feature

from .service import ScreenPopService

if TYPE_CHECKING:
    from cti.runtime import Runtime

__all__ = ["FEATURE", "POP_WORKERS"]

POP_WORKERS = 8
"""Pops in flight at once: each waits up to its history timeout on PostgreSQL."""


@contextlib.asynccontextmanager
async def run(runtime: Runtime, section: Any) -> AsyncIterator[None]:
    service = ScreenPopService(
        calls=runtime.model.calls,
        last_agent_for=runtime.acd.last_agent_for,
        pusher=runtime.hub,
        pool=runtime.pool,
        clock=runtime.clock,
    )
    runtime.services["screenpop"] = service

    async def ringing(change: AgentRinging | Gap) -> None:
        # A gap needs no resync: pops missed in a surge are stale by now.
        if isinstance(change, AgentRinging):
            # From the ring event (Asterisk's time): a pop waiting in the
            # queue counts as late.
            await service.on_ringing(change, seen_at=change.at)

    runtime.bus.subscribe(
        AgentRinging, ringing, name="screen-pop", workers=POP_WORKERS, when=service.wanted
    )
    yield


FEATURE = Feature(
    name="screenpop",
    summary="screen-pop on the agent's desktop as its phone rings",
    run=run,
    requires=("agents",),
)
