"""The OpenAPI 3.1 document of the HTTP API, served at ``/api/v1/openapi.json``.

The shell's part (sessions, the WebSocket, this document) is written here;
each feature writes its own next to its routes (``Feature.openapi``) and
they are merged. A unit test checks that every route is documented and every
documented path is routed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cti.feature import Feature

__all__ = ["error_responses", "openapi_document", "path_param"]

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "what was wrong and what to do"},
        "field": {"type": "string", "description": "the payload field at fault (400 only)"},
    },
}


def path_param(name: str) -> dict[str, Any]:
    """A required string parameter in the path (``{agent}``, ``{call_id}``)."""
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def error_responses(*codes: int) -> dict[str, Any]:
    text = {
        400: "bad payload; `field` names it",
        401: "no session, or it expired",
        403: "the role may not do this (an agent acts only on itself)",
        404: "no such agent",
        409: "the ACD refused (e.g. resume an agent who is not paused)",
        410: "the resource existed but its data is gone (the message says what to run)",
        503: "a service behind the route (a store, the database) is unavailable: retry later",
    }
    return {
        str(code): {
            "description": text[code],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for code in codes
    }


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
            "schemas": {"Error": _ERROR},
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
                        **error_responses(400),
                        "401": {"description": "wrong username or password, or disabled"},
                    },
                }
            },
            "/api/v1/sessions/current": {
                "delete": {
                    "summary": "Log out (the token stops working)",
                    "security": [{"bearer": []}],
                    "responses": {"204": {"description": "logged out"}, **error_responses(401)},
                }
            },
            "/api/v1/me": {
                "get": {
                    "summary": "The session's account",
                    "security": [{"bearer": []}],
                    "responses": {
                        "200": {"description": "username, role, agent"},
                        **error_responses(401),
                    },
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


def openapi_document(features: Iterable[Feature] = ()) -> dict[str, Any]:
    """The shell's document with each feature's paths and schemas merged in."""
    document = _document()
    for feature in features:
        if feature.openapi is None:
            continue
        part = feature.openapi()
        paths, schemas = document["paths"], document["components"]["schemas"]
        for path, operations in part.get("paths", {}).items():
            merged = paths.setdefault(path, {})
            for method, operation in operations.items():
                if method in merged:
                    raise ValueError(f"feature {feature.name}: {method.upper()} {path} twice")
                merged[method] = operation
        for name, schema in part.get("schemas", {}).items():
            if name in schemas and schemas[name] != schema:
                raise ValueError(f"feature {feature.name}: schema {name} differs from another's")
            schemas[name] = schema
    return document
