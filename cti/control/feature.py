"""Call control on the feature contract: hold, transfers (blind, attended, to
a mobile, to the city 12345 centre), three-way calls, from the desktop."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.call_changes import CallChange
from cti.bus import ami
from cti.engine import Resynced
from cti.feature import AgentDetailsChanged, ConfigSection, Feature
from cti.stack.render import render

from . import http
from .config import ControlConfig, validate_control
from .core import CallControl
from .service import CONSULT_RESULT, CallControlService

if TYPE_CHECKING:
    from cti.config import EngineConfig
    from cti.runtime import Runtime

__all__ = ["FEATURE"]

# The events that can end a control step (see cti.control.service).
CONTROL_EVENTS = (
    f"UserEvent:{CONSULT_RESULT}",
    "BridgeEnter",
    "BridgeLeave",
    "Hangup",
    "OriginateResponse",
)


@contextlib.asynccontextmanager
async def run(runtime: Runtime, section: ControlConfig) -> AsyncIterator[None]:
    config = runtime.config

    def changed(call_id: str) -> None:
        agent = service.agent_on_call(call_id)
        if agent is not None:
            runtime.bus.publish(AgentDetailsChanged(agent))

    service = CallControlService(
        core=CallControl(
            agents=frozenset(a.extension for a in config.agents),
            queues=frozenset(q.name for q in config.effective_queues),
            agent_mobiles={a.extension: a.mobile for a in config.agents if a.mobile},
            city_center_number=section.city_center_number,
            external_number_pattern=section.external_number_pattern,
            transfer_ring_s=section.transfer_ring_s,
        ),
        model=runtime.model,
        acd=runtime.acd.acd,
        service=runtime.acd.service,
        send=runtime.send,
        report=runtime.report_changes,
        clock=runtime.clock,
        changed=changed,
    )
    runtime.acd.service.transfer_prefer_s = section.transfer_prefer_s
    runtime.app[http.CONTROL] = service
    runtime.services["control"] = service
    runtime.agent_details.append(service.agent_detail)

    def on_event(event: Mapping[str, Any]) -> None:
        if service.core.calls:
            service.on_event(event)

    runtime.bus.subscribe(CallChange, service.on_change, name="control")
    runtime.bus.subscribe([ami(name) for name in CONTROL_EVENTS], on_event, name="control: steps")

    def resynced(_: Resynced) -> None:
        service.adopt_calls()

    runtime.bus.subscribe(Resynced, resynced, name="control: resync")
    yield


def dialplan(section: ControlConfig, config: EngineConfig) -> str:
    """The contexts call control moves channels to, with [control]'s deadlines."""
    template = (Path(__file__).parent / "dialplan.conf.tmpl").read_text(encoding="utf-8")
    return render(
        template,
        {
            "transfer_ring_s": section.transfer_ring_s,
            "agent_hold_max_s": section.agent_hold_max_s,
            "conference_max_s": section.conference_max_s,
        },
        name="cti/control/dialplan.conf.tmpl",
    )


FEATURE = Feature(
    name="control",
    summary="call control from the desktop: hold, transfers, consultation, three-way calls",
    config=ConfigSection("control", ControlConfig, validate_control),
    dialplan=dialplan,
    routes=http.add_routes,
    openapi=http.openapi,
    run=run,
    requires=("agents",),
)
