"""Call control's routes: ``POST /api/v1/calls/{call_id}/{command}`` for hold,
resume, transfer, consult, three-way calls (an agent on its own call;
supervisors and admins on any), every command audited."""

from __future__ import annotations

from typing import Any

from aiohttp import web

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
from cti.control.core import ControlError

from .schemas import CallTargetRequest
from .service import CallControlService

__all__ = ["CALL_COMMANDS", "CONTROL", "add_routes", "openapi"]

CONTROL = web.AppKey("control", CallControlService)


# Call control commands; those marked True take a target.
CALL_COMMANDS = {
    "hold": False,
    "resume": False,
    "transfer": True,
    "consult": True,
    "consult-complete": False,
    "consult-cancel": False,
    "conference": True,
    "leave": False,
}


def _call_command(command: str) -> Handler:
    @requires(*ALL_ROLES)
    async def act(request: web.Request) -> web.StreamResponse:
        session = request[SESSION_OF]
        call_id = request.match_info["call_id"]
        control = request.app[CONTROL]
        body = await read_json(request)
        target = CallTargetRequest.parse(body).target if CALL_COMMANDS[command] else None
        agent = control.agent_on_call(call_id)
        if agent is None:
            return error_response(404, f"no call {call_id} with an agent on it")
        if not session.role.manages_agents and agent != session.agent:
            return error_response(403, f"call {call_id} is not yours ({session.agent})")
        try:
            result = control.command(agent, command, target)
        except ControlError as exc:
            return error_response(exc.status, str(exc), field=exc.field)
        await request.app[AUDIT].record(
            session.username,
            f"call_{command.replace('-', '_')}",
            subject=call_id,
            remote=remote_of(request),
            detail={
                "agent": agent,
                "target": None if target is None else [target.kind.value, target.value],
            },
        )
        return json_response(result)

    act.__name__ = f"call_{command.replace('-', '_')}"
    return act


def add_routes(app: web.Application) -> None:
    for command in CALL_COMMANDS:
        app.router.add_post(f"/api/v1/calls/{{call_id}}/{command}", _call_command(command))


_CALL_COMMANDS = {
    "hold": "Put the caller on hold (music); the agent's leg waits in silence.",
    "resume": "Take the caller off hold.",
    "transfer": (
        "Blind transfer: to an agent (rung through the ACD; unanswered, the call stays "
        "queued), a queue, the agent's mobile or the city 12345 centre or an allowed outside "
        "number (through the trunk; unanswered, the caller returns to the queue)."
    ),
    "consult": (
        "Attended transfer, step 1: the caller waits (music) while the agent's leg calls "
        "the target. Unanswered or hung up, the agent is back with the caller."
    ),
    "consult-complete": "Attended transfer, step 2: the target joins the caller; the agent leaves.",
    "consult-cancel": "Hang up the consulted party; the agent is back with the caller.",
    "conference": (
        "Three-way call: the target is rung into the call's conference with the caller "
        "and the agent."
    ),
    "leave": "The agent drops out of a three-way call; the other two stay connected.",
}
_TARGET = {
    "type": "object",
    "required": ["target"],
    "additionalProperties": False,
    "properties": {
        "target": {
            "type": "object",
            "required": ["kind"],
            "additionalProperties": False,
            "properties": {
                "kind": {
                    "type": "string",
                    "enum": ["agent", "queue", "mobile", "city", "external"],
                },
                "value": {
                    "type": "string",
                    "description": (
                        "extension (agent), queue name (queue), number (external, within "
                        "control.external_number_pattern), another agent's extension "
                        "(mobile; default: one's own)"
                    ),
                },
            },
        }
    },
}
_WITH_TARGET = frozenset({"transfer", "consult", "conference"})


def _call_paths() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for command, summary in _CALL_COMMANDS.items():
        operation: dict[str, Any] = {
            "summary": summary + " An agent may act only on its own call.",
            "security": [{"bearer": []}],
            "parameters": [path_param("call_id")],
            "responses": {
                "200": {"description": "done: {call_id, command, control: the call's state}"},
                **error_responses(400, 401, 403, 404, 409),
            },
        }
        if command in _WITH_TARGET:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _TARGET}},
            }
        paths[f"/api/v1/calls/{{call_id}}/{command}"] = {"post": operation}
    return paths


def openapi() -> dict[str, Any]:
    return {"paths": _call_paths()}
