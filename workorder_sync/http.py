"""The work orders' routes: the agent's form (a draft from a call, saved as
it is typed, accepted, answered or sent to dispatch), the supervisors' list
(overdue first), and the city's webhook (signed; stale, replayed, forged
and malformed requests refused with the reason, changing nothing)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

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
from cti.api.roles import Role, mask_number
from cti.api.schemas import PayloadError, no_extra, require_object
from cti.web.pages import add_feature_pages

from .calendar import due_state
from .city.rest import MalformedWebhook, parse_webhook
from .city.signing import NonceStoreFull, SignatureError, Verifier
from .core import (
    Action,
    FieldError,
    PreconditionError,
    TransitionError,
    WorkOrder,
    WorkOrderError,
    order_to_dict,
)
from .service import WorkOrderService
from .store import ConcurrentChange, OrderMissing

__all__ = ["WORKORDERS", "WebhookGate", "add_routes", "openapi"]

MAX_WEBHOOK_BYTES = 1 << 20
ALL = (Role.AGENT, Role.SUPERVISOR, Role.ADMIN)
SUPERVISORS = (Role.SUPERVISOR, Role.ADMIN)


@dataclass
class WebhookGate:
    """The service and the city's signature check, for the routes."""

    service: WorkOrderService
    verifier: Verifier


WORKORDERS = web.AppKey("workorders", WebhookGate)


def _view(order: WorkOrder, role: Role) -> dict[str, Any]:
    """The order as the role may see it: numbers masked for agents."""
    data = order_to_dict(order)
    visible = role is not Role.AGENT
    for key in ("caller_number", "contact_phone"):
        data[key] = mask_number(data.get(key) or "", visible=visible)
    return data


def _may_touch(session: Any, order: WorkOrder) -> bool:
    return session.role is not Role.AGENT or order.created_by == session.agent


def _failure(exc: Exception) -> web.Response:
    if isinstance(exc, OrderMissing):
        return error_response(404, str(exc))
    if isinstance(exc, PreconditionError):
        return error_response(400, str(exc), field=exc.key or None)
    if isinstance(exc, TransitionError):
        return error_response(409, str(exc))
    if isinstance(exc, FieldError):
        return error_response(400, str(exc), field=exc.field)
    if isinstance(exc, ConcurrentChange):
        return error_response(409, str(exc))
    return error_response(400, str(exc))


@requires(*ALL)
async def create(request: web.Request) -> web.StreamResponse:
    """A draft work order from a call, pre-filled (caller, line, IVR
    choices, recording): during or right after the call."""
    session = request[SESSION_OF]
    try:
        body = require_object(await read_json(request))
        no_extra(body, {"call_id"})
        call_id = body.get("call_id")
        if not isinstance(call_id, str) or not call_id.strip():
            raise PayloadError("call_id", "required: the call the order is about")
    except PayloadError as exc:
        return error_response(400, str(exc), field=exc.field)
    gate = request.app[WORKORDERS]
    actor = session.agent or session.username
    try:
        order = await gate.service.draft_from_call(call_id, actor)
    except LookupError as exc:
        return error_response(404, str(exc))
    return json_response(_view(order, session.role), status=201)


async def _order(request: web.Request) -> tuple[Any, WorkOrder] | web.Response:
    session = request[SESSION_OF]
    try:
        order = await request.app[WORKORDERS].service.store.get(request.match_info["order_no"])
    except OrderMissing as exc:
        return error_response(404, str(exc))
    if not _may_touch(session, order):
        return error_response(403, f"work order {order.order_no} is not yours")
    return session, order


@requires(*ALL)
async def get_order(request: web.Request) -> web.StreamResponse:
    found = await _order(request)
    if isinstance(found, web.Response):
        return found
    session, order = found
    if session.role is not Role.AGENT:
        await request.app[AUDIT].record(
            session.username, "view_work_order", subject=order.order_no, remote=remote_of(request)
        )
    return json_response(_view(order, session.role))


@requires(*ALL)
async def save(request: web.Request) -> web.StreamResponse:
    """Save form fields (a draft survives a page reload: it is stored)."""
    found = await _order(request)
    if isinstance(found, web.Response):
        return found
    session, order = found
    try:
        fields = require_object(await read_json(request))
    except PayloadError as exc:
        return error_response(400, str(exc), field=exc.field)
    return await _act(request, session, order.order_no, Action.EDIT, "", dict(fields))


@requires(*ALL)
async def act(request: web.Request) -> web.StreamResponse:
    """An action on the order (accept, direct answer, send to dispatch...)."""
    found = await _order(request)
    if isinstance(found, web.Response):
        return found
    session, order = found
    try:
        body = require_object(await read_json(request))
        no_extra(body, {"action", "reason", "data"})
        try:
            action = Action(str(body.get("action", "")))
        except ValueError:
            raise PayloadError("action", f"expected one of {[a.value for a in Action]}") from None
        reason = body.get("reason", "")
        data = body.get("data") or {}
        if not isinstance(reason, str) or len(reason) > 500:
            raise PayloadError("reason", "text, at most 500 characters")
        if not isinstance(data, dict):
            raise PayloadError("data", "expected an object")
    except PayloadError as exc:
        return error_response(400, str(exc), field=exc.field)
    return await _act(request, session, order.order_no, action, reason, data)


async def _act(
    request: web.Request,
    session: Any,
    order_no: str,
    action: Action,
    reason: str,
    data: dict[str, Any],
) -> web.StreamResponse:
    service = request.app[WORKORDERS].service
    try:
        order = await service.act(
            order_no, action, actor=session.agent or session.username, reason=reason, data=data
        )
    except (WorkOrderError, OrderMissing, ConcurrentChange) as exc:
        return _failure(exc)
    return json_response(_view(order, session.role))


@requires(*ALL)
async def list_orders(request: web.Request) -> web.StreamResponse:
    """Agents: their own orders. Supervisors: all, filtered; overdue first."""
    session = request[SESSION_OF]
    service = request.app[WORKORDERS].service
    statuses = [s for s in request.query.get("status", "").split(",") if s]
    agent = session.agent if session.role is Role.AGENT else request.query.get("agent") or None
    limit_text = request.query.get("limit", "100") or "100"
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= 500:
        return error_response(400, "limit: a whole number from 1 to 500", field="limit")
    orders = await service.store.list(
        status=statuses,
        agent=agent,
        caller_number=request.query.get("caller") or None,
        limit=int(limit_text),
    )
    now = service.clock()
    out = []
    for order in orders:
        # A list shows numbers masked to every role; one order opened by a
        # supervisor shows them in full, and that view is audited.
        view = _view(order, Role.AGENT)
        view["due"] = (
            due_state(order.deadline, now, service.near_hours).value if order.deadline else None
        )
        out.append(view)
    return json_response({"orders": out})


@requires(*SUPERVISORS)
async def due_orders(request: web.Request) -> web.StreamResponse:
    """Open orders near (临期) or past (超期) their deadline, overdue first."""
    service = request.app[WORKORDERS].service
    return json_response(
        {
            "orders": [
                dict(_view(order, Role.AGENT), due=state.value)
                for order, state in await service.due()
            ]
        }
    )


async def webhook(request: web.Request) -> web.StreamResponse:
    """The city's status events, pushed. Signed by the city (HMAC-SHA256 over
    method, path, timestamp, nonce and body hash): a missing or bad
    signature, a stale or future timestamp, a reused nonce get 401 with the
    reason; a malformed body 400; nothing is applied for either."""
    gate = request.app[WORKORDERS]
    body = await request.content.read(MAX_WEBHOOK_BYTES + 1)
    if len(body) > MAX_WEBHOOK_BYTES:
        return error_response(413, f"webhook body over {MAX_WEBHOOK_BYTES} bytes")
    try:
        await gate.verifier.verify(
            request.method, request.raw_path, request.headers, body, now=int(time.time())
        )
    except SignatureError as exc:
        return web.json_response(
            {"error": f"signature rejected: {exc.reason}", "code": exc.code}, status=401
        )
    except NonceStoreFull as exc:
        return error_response(503, f"cannot check the nonce now: {exc}")
    try:
        events = parse_webhook(body)
    except MalformedWebhook as exc:
        return error_response(400, f"malformed webhook: {exc}")
    results = await gate.service.receive(events)
    return json_response(
        {
            "results": [
                {"event_id": r.event_id, "result": r.verdict, "reason": r.reason} for r in results
            ]
        }
    )


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/workorders", create)
    app.router.add_get("/api/v1/workorders", list_orders)
    app.router.add_get("/api/v1/workorders/due", due_orders)
    app.router.add_get("/api/v1/workorders/{order_no}", get_order)
    app.router.add_patch("/api/v1/workorders/{order_no}", save)
    app.router.add_post("/api/v1/workorders/{order_no}/actions", act)
    app.router.add_post("/api/v1/city/webhook", webhook)
    add_feature_pages(
        app,
        package="workorder_sync",
        pages={"/workorders": "workorders.html", "/workorders/form": "workorder.html"},
        scripts={f"/workorders/{name}": name for name in ("workorders.js", "workorder.js")},
    )


def _op(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "security": [{"bearer": []}], "responses": responses, **extra}


def openapi() -> dict[str, Any]:
    order = [path_param("order_no")]
    return {
        "paths": {
            "/api/v1/workorders": {
                "post": _op(
                    "A draft work order from a call (body {call_id}), pre-filled.",
                    {"201": {"description": "the draft"}, **error_responses(400, 401, 404)},
                ),
                "get": _op(
                    "Work orders (agents: their own), deadline first; each with its due state.",
                    {"200": {"description": "the orders"}, **error_responses(401)},
                ),
            },
            "/api/v1/workorders/due": {
                "get": _op(
                    "Open orders near (临期) or past (超期) their deadline. Supervisors.",
                    {"200": {"description": "the orders"}, **error_responses(401, 403)},
                )
            },
            "/api/v1/workorders/{order_no}": {
                "get": _op(
                    "One work order.",
                    {"200": {"description": "the order"}, **error_responses(401, 403, 404)},
                    parameters=order,
                ),
                "patch": _op(
                    "Save form fields (a draft is kept across page reloads).",
                    {
                        "200": {"description": "the order"},
                        **error_responses(400, 401, 403, 404, 409),
                    },
                    parameters=order,
                ),
            },
            "/api/v1/workorders/{order_no}/actions": {
                "post": _op(
                    "An action on the order ({action, reason, data}): ACCEPT, DIRECT_ANSWER, "
                    "SEND_TO_DISPATCH, ... An illegal one is 409 and changes nothing.",
                    {
                        "200": {"description": "the order"},
                        **error_responses(400, 401, 403, 404, 409),
                    },
                    parameters=order,
                )
            },
            "/api/v1/city/webhook": {
                "post": {
                    "summary": "The city platform's status events (signed with HMAC-SHA256).",
                    "responses": {
                        "200": {"description": "what became of each event"},
                        **error_responses(400, 401, 503),
                    },
                }
            },
        },
        "schemas": {},
    }
