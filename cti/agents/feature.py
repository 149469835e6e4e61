"""The agent routes and the agent-state push on the feature contract."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from acd.commands import AgentStateChanged
from cti.feature import AgentDetailsChanged, Feature

from . import http

if TYPE_CHECKING:
    from cti.runtime import Runtime

__all__ = ["FEATURE"]


@contextlib.asynccontextmanager
async def run(runtime: Runtime, section: Any) -> AsyncIterator[None]:
    runtime.app[http.AGENTS] = runtime

    def tell_desktops(item: AgentStateChanged | AgentDetailsChanged) -> None:
        if item.agent in runtime.acd.acd.agents:
            state = runtime.agent_state(item.agent)
            runtime.hub.publish_to_agent(item.agent, dict(state, agent=item.agent))

    runtime.bus.subscribe(
        (AgentStateChanged, AgentDetailsChanged), tell_desktops, name="agents: desktops"
    )
    yield


FEATURE = Feature(
    name="agents",
    summary="agents' state and actions over HTTP, pushed to their desktops",
    routes=http.add_routes,
    openapi=http.openapi,
    run=run,
)
