"""The supervisor console on the feature contract."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from acd.runner import KpiPeriod
from common.call_changes import CallAnswered, CallEnded, CallLost, CallQueued
from cti.feature import Feature

from . import http
from .service import ConsoleService

if TYPE_CHECKING:
    from cti.runtime import Runtime

__all__ = ["FEATURE"]


@contextlib.asynccontextmanager
async def run(runtime: Runtime, section: Any) -> AsyncIterator[None]:
    service = ConsoleService(runtime)
    runtime.app[http.CONSOLE] = service
    runtime.services["console"] = service
    runtime.bus.subscribe(KpiPeriod, service.push, name="console: period")
    runtime.bus.subscribe(
        (CallQueued, CallAnswered, CallEnded, CallLost), service.push_soon, name="console: calls"
    )
    try:
        yield
    finally:
        service.close()


FEATURE = Feature(
    name="console",
    summary="supervisor console: live snapshot pushed, monitoring, unmasked caller (audited)",
    routes=http.add_routes,
    openapi=http.openapi,
    run=run,
    requires=("agents",),
)
