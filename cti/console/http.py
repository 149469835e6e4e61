"""The supervisor console's routes: the live snapshot, monitoring an
agent's call (listen, whisper, barge) and the unmasked caller of a live
call (audited). The snapshot is also pushed to open consoles (see
:mod:`cti.console.service`)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from acd.agents import AgentState
from cti.api.http import (
    AUDIT,
    SESSION_OF,
    error_response,
    json_response,
    read_json,
    remote_of,
    requires,
)
from cti.api.openapi import error_responses, path_param
from cti.api.roles import Role

from .schemas import MonitorRequest
from .service import ConsoleService

__all__ = ["CONSOLE", "add_routes", "openapi"]

CONSOLE = web.AppKey("console", ConsoleService)


@requires(Role.SUPERVISOR, Role.ADMIN)
async def monitor(request: web.Request) -> web.StreamResponse:
    """Listen to, whisper to or barge into an agent's call from the
    supervisor's own softphone (ChanSpy is originated to it)."""
    session = request[SESSION_OF]
    agent = request.match_info["agent"]
    mode = MonitorRequest.parse(await read_json(request)).mode
    console = request.app[CONSOLE]
    found = console.runtime.acd.acd.agents.get(agent)
    if found is None:
        return error_response(404, f"no agent {agent}")
    if found.state is not AgentState.ON_CALL:
        return error_response(409, f"agent {agent} is not on a call ({found.state.name})")
    if not session.phone:
        return error_response(
            409, f"account {session.username} has no phone to ring for monitoring"
        )
    console.monitor(agent, session.phone, mode)
    await request.app[AUDIT].record(
        session.username,
        f"monitor_{mode}",
        subject=agent,
        remote=remote_of(request),
        detail={"call_id": found.call_id, "phone": session.phone},
    )
    return json_response({"agent": agent, "mode": mode, "phone": session.phone}, status=202)


@requires(Role.SUPERVISOR, Role.ADMIN)
async def caller(request: web.Request) -> web.StreamResponse:
    """The unmasked number and name of a live call's caller: supervisors and
    admins only (agents see them masked), and every view is audited
    (personal data: PIPL art. 51)."""
    session = request[SESSION_OF]
    call_id = request.match_info["call_id"]
    console = request.app[CONSOLE]
    found = console.caller_of(call_id)
    if found is None:
        return error_response(404, f"no live call {call_id}")
    await request.app[AUDIT].record(
        session.username, "view_caller", subject=call_id, remote=remote_of(request)
    )
    return json_response(dict(found, call_id=call_id))


@requires(Role.SUPERVISOR, Role.ADMIN)
async def console(request: web.Request) -> web.StreamResponse:
    """The supervisor console's data: queues and lines (waiting, longest wait),
    agents (state, since, pause reason, call), live KPIs per window with their
    targets and alarms, and the KPI definitions."""
    console = request.app[CONSOLE]
    return json_response(console.snapshot())


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/console", console)
    app.router.add_post("/api/v1/agents/{agent}/monitor", monitor)
    app.router.add_get("/api/v1/calls/{call_id}/caller", caller)


def openapi() -> dict[str, Any]:
    return {
        "paths": {
            "/api/v1/console": {
                "get": {
                    "summary": (
                        "Supervisor console data: queue and line tiles (waiting, longest wait), "
                        "agents (state, since, pause reason, call), live KPIs per window with "
                        "targets and alarms, KPI definitions, rate_chart (the 15 s rate of "
                        "each hour of today). Supervisors and admins only."
                    ),
                    "security": [{"bearer": []}],
                    "responses": {
                        "200": {"description": "the live snapshot"},
                        **error_responses(401, 403),
                    },
                }
            },
            "/api/v1/agents/{agent}/monitor": {
                "post": {
                    "summary": (
                        "Listen, whisper or barge on the agent's call: the supervisor's own "
                        "softphone (account phone) is rung into ChanSpy. Supervisors, admins."
                    ),
                    "security": [{"bearer": []}],
                    "parameters": [path_param("agent")],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["mode"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "mode": {
                                            "type": "string",
                                            "enum": ["listen", "whisper", "barge"],
                                        }
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "202": {"description": "the supervisor's phone is being rung"},
                        **error_responses(400, 401, 403, 404, 409),
                    },
                }
            },
            "/api/v1/calls/{call_id}/caller": {
                "get": {
                    "summary": (
                        "The unmasked number and name of a live call's caller. Supervisors "
                        "and admins only; every view is written to the audit log."
                    ),
                    "security": [{"bearer": []}],
                    "parameters": [path_param("call_id")],
                    "responses": {
                        "200": {"description": "{call_id, caller_number, caller_name}"},
                        **error_responses(401, 403, 404),
                    },
                }
            },
        }
    }
