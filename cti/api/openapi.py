"""The OpenAPI 3.1 document of the HTTP API, served at ``/api/v1/openapi.json``.

Written by hand next to the routes (``http.py``); a unit test checks that
every route is documented and every documented path is routed.
"""

from __future__ import annotations

from typing import Any

__all__ = ["openapi_document"]

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "what was wrong and what to do"},
        "field": {"type": "string", "description": "the payload field at fault (400 only)"},
    },
}
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


def _path_param(name: str) -> dict[str, Any]:
    """A required string parameter in the path (``{agent}``, ``{call_id}``)."""
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "bad payload; `field` names it",
        401: "no session, or it expired",
        403: "the role may not do this (an agent acts only on itself)",
        404: "no such agent",
        409: "the ACD refused (e.g. resume an agent who is not paused)",
    }
    return {
        str(code): {
            "description": text[code],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for code in codes
    }


def _agent_action(summary: str, *, body: dict[str, Any] | None = None) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "security": [{"bearer": []}],
        "parameters": [_path_param("agent")],
        "responses": {
            "200": {
                "description": "the agent's state afterwards",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Agent"}}},
            },
            **_errors(400, 401, 403, 404, 409),
        },
    }
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body}},
        }
    return {"post": operation}


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
            "parameters": [_path_param("call_id")],
            "responses": {
                "200": {"description": "done: {call_id, command, control: the call's state}"},
                **_errors(400, 401, 403, 404, 409),
            },
        }
        if command in _WITH_TARGET:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _TARGET}},
            }
        paths[f"/api/v1/calls/{{call_id}}/{command}"] = {"post": operation}
    return paths


def openapi_document() -> dict[str, Any]:
    document = _document()
    document["paths"].update(_call_paths())
    document["paths"]["/api/v1/calls/{call_id}/caller"] = {
        "get": {
            "summary": (
                "The unmasked number and name of a live call's caller. Supervisors and admins "
                "only; every view is written to the audit log."
            ),
            "security": [{"bearer": []}],
            "parameters": [_path_param("call_id")],
            "responses": {
                "200": {"description": "{call_id, caller_number, caller_name}"},
                **_errors(401, 403, 404),
            },
        }
    }
    return document


def _document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "hotline engine API",
            "version": "1",
            "description": (
                "Agent desktop and supervisor console API of the hotline CTI engine. "
                "Roles: agent (acts on itself only), supervisor and admin (act on any agent)."
            ),
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": _ERROR, "Agent": _AGENT},
        },
        "paths": {
            "/api/v1/sessions": {
                "post": {
                    "summary": "Log in; returns a bearer token that expires",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["username", "password"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "username": {"type": "string", "maxLength": 64},
                                        "password": {"type": "string", "maxLength": 256},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "201": {"description": "token, expires_at, username, role, agent"},
                        **_errors(400),
                        "401": {"description": "wrong username or password, or disabled"},
                    },
                }
            },
            "/api/v1/sessions/current": {
                "delete": {
                    "summary": "Log out (the token stops working)",
                    "security": [{"bearer": []}],
                    "responses": {"204": {"description": "logged out"}, **_errors(401)},
                }
            },
            "/api/v1/me": {
                "get": {
                    "summary": "The session's account",
                    "security": [{"bearer": []}],
                    "responses": {"200": {"description": "username, role, agent"}, **_errors(401)},
                }
            },
            "/api/v1/agents": {
                "get": {
                    "summary": "Agents and their states (an agent sees only itself)",
                    "security": [{"bearer": []}],
                    "responses": {"200": {"description": "{agents: [Agent]}"}, **_errors(401)},
                }
            },
            "/api/v1/agents/{agent}/login": _agent_action("Log the agent in"),
            "/api/v1/agents/{agent}/logout": _agent_action(
                "Log the agent out (forced if not self)"
            ),
            "/api/v1/agents/{agent}/pause": _agent_action(
                "Pause the agent (示忙) with a reason (forced if not self)",
                body={
                    "type": "object",
                    "required": ["reason"],
                    "additionalProperties": False,
                    "properties": {"reason": {"type": "string", "maxLength": 64}},
                },
            ),
            "/api/v1/agents/{agent}/resume": _agent_action("Resume a paused agent"),
            "/api/v1/agents/{agent}/wrapup-done": _agent_action("End after-call work now"),
            "/api/v1/agents/{agent}/monitor": {
                "post": {
                    "summary": (
                        "Listen, whisper or barge on the agent's call: the supervisor's own "
                        "softphone (account phone) is rung into ChanSpy. Supervisors, admins."
                    ),
                    "security": [{"bearer": []}],
                    "parameters": [_path_param("agent")],
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
                        **_errors(400, 401, 403, 404, 409),
                    },
                }
            },
            "/api/v1/console": {
                "get": {
                    "summary": (
                        "Supervisor console data: queue and line tiles (waiting, longest wait), "
                        "agents (state, since, pause reason, call), live KPIs per window with "
                        "targets and alarms, KPI definitions, rate_chart (the 15 s rate of "
                        "each hour of today). Supervisors and admins only."
                    ),
                    "security": [{"bearer": []}],
                    "responses": {"200": {"description": "the live snapshot"}, **_errors(401, 403)},
                }
            },
            "/api/v1/ws": {
                "get": {
                    "summary": (
                        "Desktop and console WebSocket. Send {type: auth, token} first (within "
                        "5 s); then frames arrive: hello; screen_pop for an agent (caller number "
                        "masked, line, IVR choices, wait so far, earlier calls, repeat caller); "
                        "console for supervisors and admins (the live snapshot, every few s)"
                    ),
                    "responses": {"101": {"description": "switching to WebSocket"}},
                }
            },
            "/api/v1/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": {"description": "OpenAPI"}},
                }
            },
        },
    }
