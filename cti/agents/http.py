"""The agent routes: list agents with their state, and log in, log out,
pause, resume and end after-call work (an agent acts on itself; supervisors
and admins on anyone, audited as forced)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from acd.errors import AcdError, UnknownAgent
from cti.api.http import (
    ALL_ROLES,
    AUDIT,
    SESSION_OF,
    Handler,
    error_response,
    json_response,
    read_json,
    remote_of,
    requires,
)
from cti.api.openapi import error_responses, path_param
from cti.runtime import Runtime

from .schemas import PauseRequest

__all__ = ["AGENTS", "add_routes", "openapi"]

AGENTS = web.AppKey("agents", Runtime)
AGENT_ACTIONS = ("login", "logout", "pause", "resume", "wrapup-done")


@requires(*ALL_ROLES)
async def list_agents(request: web.Request) -> web.StreamResponse:
    """Agents with their state; an agent sees only itself."""
    session = request[SESSION_OF]
    states = request.app[AGENTS].agent_states()
    if not session.role.manages_agents:
        states = {k: v for k, v in states.items() if k == session.agent}
    return json_response({"agents": [dict(v, agent=k) for k, v in sorted(states.items())]})


def _agent_action(action: str) -> Handler:
    @requires(*ALL_ROLES)
    async def act(request: web.Request) -> web.StreamResponse:
        session = request[SESSION_OF]
        agent = request.match_info["agent"]
        if not session.role.manages_agents and agent != session.agent:
            return error_response(
                403, f"an agent may act only on itself ({session.agent}), not {agent}"
            )
        desk = request.app[AGENTS]
        body = await read_json(request)
        try:
            if action == "pause":
                desk.acd.pause(agent, PauseRequest.parse(body).reason)
            else:
                getattr(desk.acd, action.replace("-", "_"))(agent)
        except UnknownAgent:
            return error_response(404, f"no agent {agent}")
        except AcdError as exc:
            return error_response(409, str(exc))
        forced = session.role.manages_agents and agent != session.agent
        await request.app[AUDIT].record(
            session.username,
            f"agent_{action.replace('-', '_')}",
            subject=agent,
            remote=remote_of(request),
            detail={"forced": forced},
        )
        state = desk.agent_states().get(agent, {})
        return json_response(dict(state, agent=agent))

    act.__name__ = f"agent_{action.replace('-', '_')}"
    return act


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/agents", list_agents)
    for action in AGENT_ACTIONS:
        app.router.add_post(f"/api/v1/agents/{{agent}}/{action}", _agent_action(action))


_AGENT = {
    "type": "object",
    "required": ["agent", "state"],
    "properties": {
        "agent": {"type": "string", "example": "1001"},
        "state": {
            "type": "string",
            "enum": [
                "LOGGED_OUT",
                "AVAILABLE",
                "RESERVED",
                "RINGING",
                "ON_CALL",
                "WRAP_UP",
                "PAUSED",
            ],
        },
        "since": {"type": "number", "description": "epoch seconds"},
        "pause_reason": {"type": ["string", "null"]},
        "call_id": {"type": ["string", "null"]},
    },
}


def _action_doc(summary: str, *, body: dict[str, Any] | None = None) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "security": [{"bearer": []}],
        "parameters": [path_param("agent")],
        "responses": {
            "200": {
                "description": "the agent's state afterwards",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Agent"}}},
            },
            **error_responses(400, 401, 403, 404, 409),
        },
    }
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body}},
        }
    return {"post": operation}


def openapi() -> dict[str, Any]:
    return {
        "schemas": {"Agent": _AGENT},
        "paths": {
            "/api/v1/agents": {
                "get": {
                    "summary": "Agents and their states (an agent sees only itself)",
                    "security": [{"bearer": []}],
                    "responses": {
                        "200": {"description": "{agents: [Agent]}"},
                        **error_responses(401),
                    },
                }
            },
            "/api/v1/agents/{agent}/login": _action_doc("Log the agent in"),
            "/api/v1/agents/{agent}/logout": _action_doc("Log the agent out (forced if not self)"),
            "/api/v1/agents/{agent}/pause": _action_doc(
                "Pause the agent (示忙) with a reason (forced if not self)",
                body={
                    "type": "object",
                    "required": ["reason"],
                    "additionalProperties": False,
                    "properties": {"reason": {"type": "string", "maxLength": 64}},
                },
            ),
            "/api/v1/agents/{agent}/resume": _action_doc("Resume a paused agent"),
            "/api/v1/agents/{agent}/wrapup-done": _action_doc("End after-call work now"),
        },
    }
