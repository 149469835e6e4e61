"""The HTTP shell (aiohttp): sessions, roles, the audit log, the desktops'
WebSocket, the web pages and the OpenAPI document merged from the features'.

The features add their own routes (``Feature.routes``) and use what this
module gives them: :func:`requires` (a live session whose role is allowed),
:func:`read_json`, :func:`json_response`, :func:`error_response`,
:func:`remote_of`, the request key ``SESSION_OF`` and the app keys ``AUDIT``
and ``HUB``. Every route but login and the OpenAPI document needs
``Authorization: Bearer <token>``. Errors are JSON: ``{"error": "...",
"field": "..."}`` (``field`` for a bad payload), with 400 bad payload, 401 no
or expired session, 403 not allowed, 404 unknown, 409 refused.

No call-center logic here.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from aiohttp import web

from cti.feature import Feature
from cti.web.routes import add_web_routes

from .accounts import AccountStore, AuditLog, SessionStore
from .openapi import openapi_document
from .roles import Role
from .schemas import LoginRequest, PayloadError
from .sessions import Session, SessionTable

__all__ = [
    "ALL_ROLES",
    "AUDIT",
    "HUB",
    "SESSION_OF",
    "DesktopHub",
    "build_app",
    "error_response",
    "json_response",
    "read_json",
    "remote_of",
    "requires",
]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SESSION = web.AppKey("session_table", SessionTable)
ACCOUNTS = web.AppKey("accounts", AccountStore)
AUDIT = web.AppKey("audit", AuditLog)
SESSION_STORE = web.AppKey("session_store", SessionStore)
FEATURES = web.AppKey("features", tuple[Feature, ...])
SESSION_OF = web.RequestKey("session", Session)
TOKEN_OF = web.RequestKey("token", str)
_MAX_BODY = 16 * 1024


def error_response(status: int, message: str, *, field: str | None = None) -> web.Response:
    body: dict[str, str] = {"error": message}
    if field is not None:
        body["field"] = field
    return web.json_response(body, status=status, dumps=lambda o: json.dumps(o, ensure_ascii=False))


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, default=str)


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)


async def read_json(request: web.Request) -> Any:
    if request.content_length is not None and request.content_length > _MAX_BODY:
        raise PayloadError("(body)", f"larger than {_MAX_BODY} bytes")
    raw = await request.read()
    if len(raw) > _MAX_BODY:
        raise PayloadError("(body)", f"larger than {_MAX_BODY} bytes")
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError("(body)", f"not valid JSON ({exc})") from None


def remote_of(request: web.Request) -> str:
    return request.remote or ""


def _token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def requires(*roles: Role) -> Callable[[Handler], Handler]:
    """The route needs a live session whose role is one of ``roles``."""

    def wrap(handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            token = _token(request)
            session = await _session_of(request.app, token) if token is not None else None
            if token is None or session is None:
                return error_response(
                    401, "no session or session expired: log in at POST /api/v1/sessions"
                )
            if session.role not in roles:
                return error_response(403, f"role {session.role.value} may not do this")
            request[SESSION_OF] = session
            request[TOKEN_OF] = token
            return await handler(request)

        guarded.__name__ = handler.__name__
        guarded.__doc__ = handler.__doc__
        return guarded

    return wrap


ALL_ROLES = (Role.AGENT, Role.SUPERVISOR, Role.ADMIN)


async def _session_of(app: web.Application, token: str) -> Session | None:
    """The live session of *token*: the engine's table first, then the
    store (a token handed out before a restart, or by the other engine)."""
    session = app[SESSION].get(token)
    store = app.get(SESSION_STORE)
    if session is None and store is not None:
        found = await store.load(token)
        if found is not None:
            session = app[SESSION].adopt(token, found)
    return session


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except PayloadError as exc:
        return error_response(400, exc.problem, field=exc.field)


# -- sessions --------------------------------------------------------------------------


async def open_session(request: web.Request) -> web.StreamResponse:
    """Log in with username and password; returns a bearer token."""
    login = LoginRequest.parse(await read_json(request))
    account = await request.app[ACCOUNTS].authenticate(login.username, login.password)
    audit = request.app[AUDIT]
    if account is None:
        await audit.record("", "login_failed", subject=login.username, remote=remote_of(request))
        # One message for unknown user, wrong password and disabled account.
        return error_response(401, "wrong username or password, or the account is disabled")
    token, session = request.app[SESSION].open(
        account.username, account.role, account.agent, phone=account.phone
    )
    store = request.app.get(SESSION_STORE)
    if store is not None:
        await store.save(token, session)
    await audit.record(account.username, "login", remote=remote_of(request))
    return json_response(
        {
            "token": token,
            "expires_at": session.expires_at,
            "username": account.username,
            "role": account.role.value,
            "agent": account.agent,
            "display_name": account.display_name,
        },
        status=201,
    )


@requires(*ALL_ROLES)
async def close_session(request: web.Request) -> web.StreamResponse:
    """Log out: the token stops working at once."""
    session = request[SESSION_OF]
    request.app[SESSION].close(request[TOKEN_OF])
    store = request.app.get(SESSION_STORE)
    if store is not None:
        await store.revoke(request[TOKEN_OF])
    await request.app[AUDIT].record(session.username, "logout", remote=remote_of(request))
    return web.Response(status=204)


@requires(*ALL_ROLES)
async def me(request: web.Request) -> web.StreamResponse:
    session = request[SESSION_OF]
    return json_response(
        {
            "username": session.username,
            "role": session.role.value,
            "agent": session.agent,
            "expires_at": session.expires_at,
        }
    )


async def openapi(request: web.Request) -> web.StreamResponse:
    features: tuple[Feature, ...] = request.app[FEATURES]
    return json_response(openapi_document(features))


AUTH_TIMEOUT_S = 5.0


class DesktopHub:
    """The open desktop WebSockets, by agent, and what their owners may see.

    Agents see caller numbers masked (DOMAIN.md: confidentiality); supervisors
    and admins will see them unmasked, and every such view is audited.
    """

    def __init__(self) -> None:
        self._by_agent: dict[str, set[web.WebSocketResponse]] = {}
        self._consoles: set[web.WebSocketResponse] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    def add_console(self, socket: web.WebSocketResponse) -> None:
        self._consoles.add(socket)

    def remove_console(self, socket: web.WebSocketResponse) -> None:
        self._consoles.discard(socket)

    def has_consoles(self) -> bool:
        return bool(self._consoles)

    def publish_console(self, snapshot: Mapping[str, Any]) -> None:
        """Push the live snapshot to every open supervisor console (a KPI
        listener: synchronous, so the sending is an owned task)."""
        if not self._consoles:
            return
        frame = {"type": "console", "snapshot": snapshot}
        task = asyncio.get_running_loop().create_task(self._send_consoles(frame))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_consoles(self, frame: Mapping[str, Any]) -> None:
        for socket in list(self._consoles):
            if socket.closed:
                self._consoles.discard(socket)
                continue
            try:
                await socket.send_json(frame, dumps=_dumps)
            except ConnectionError:
                self._consoles.discard(socket)

    def add(self, agent: str, socket: web.WebSocketResponse) -> None:
        self._by_agent.setdefault(agent, set()).add(socket)

    def remove(self, agent: str, socket: web.WebSocketResponse) -> None:
        sockets = self._by_agent.get(agent)
        if sockets is not None:
            sockets.discard(socket)
            if not sockets:
                del self._by_agent[agent]

    def agent_connected(self, agent: str) -> bool:
        return bool(self._by_agent.get(agent))

    def unmasked_for(self, agent: str) -> bool:
        return False  # an agent's desktop never shows a full caller number

    def publish_to_agent(self, agent: str, state: Mapping[str, Any]) -> None:
        """Push the agent's new state to its desktops (an engine listener:
        synchronous, so the sending is an owned task)."""
        if agent not in self._by_agent:
            return
        frame = {"type": "agent_state", "state": state}
        task = asyncio.get_running_loop().create_task(self.send_to_agent(agent, frame))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def send_to_agent(self, agent: str, frame: Mapping[str, Any]) -> int:
        """Send ``frame`` to every desktop of ``agent``; how many got it."""
        sent = 0
        for socket in list(self._by_agent.get(agent, ())):
            if socket.closed:
                continue
            try:
                await socket.send_json(frame, dumps=_dumps)
                sent += 1
            except ConnectionError:
                self.remove(agent, socket)
        return sent

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for sockets in [*self._by_agent.values(), self._consoles]:
            for socket in list(sockets):
                await socket.close()


HUB = web.AppKey("hub", DesktopHub)


async def desktop_socket(request: web.Request) -> web.StreamResponse:
    """The agent desktop's WebSocket. The first frame must be
    ``{"type": "auth", "token": "..."}`` (a browser cannot set headers on a
    WebSocket, and a token in the URL would end up in logs), within 5 s."""
    socket = web.WebSocketResponse(heartbeat=20.0)
    await socket.prepare(request)
    try:
        async with asyncio.timeout(AUTH_TIMEOUT_S):
            first = await socket.receive_json()
    except (TimeoutError, ValueError, TypeError, RuntimeError):
        first = None
    token = first.get("token") if isinstance(first, dict) else None
    session = await _session_of(request.app, token) if isinstance(token, str) else None
    if session is None:
        await socket.send_json(
            {"type": "error", "error": 'send {"type": "auth", "token": ...} first'}
        )
        await socket.close(code=4401, message=b"not authenticated")
        return socket
    hub = request.app[HUB]
    agent = session.agent
    if agent is not None:
        hub.add(agent, socket)
    if session.role.manages_agents:
        hub.add_console(socket)
    try:
        await socket.send_json(
            {"type": "hello", "username": session.username, "role": session.role.value,
             "agent": agent},
            dumps=lambda o: json.dumps(o, ensure_ascii=False),
        )  # fmt: skip
        async for _ in socket:
            pass  # nothing is read from the desktop yet: actions go through HTTP
    finally:
        if agent is not None:
            hub.remove(agent, socket)
        hub.remove_console(socket)
    return socket


def build_app(
    *,
    accounts: AccountStore,
    audit: AuditLog,
    sessions: SessionTable,
    hub: DesktopHub | None = None,
    session_store: SessionStore | None = None,
    features: Iterable[Feature] = (),
) -> web.Application:
    """The shell's routes and each feature's (``Feature.routes``); the
    OpenAPI document merges the shell's part and theirs."""
    app = web.Application(middlewares=[_errors], client_max_size=_MAX_BODY)
    app[ACCOUNTS] = accounts
    app[AUDIT] = audit
    app[SESSION] = sessions
    if session_store is not None:
        app[SESSION_STORE] = session_store
    app[HUB] = hub if hub is not None else DesktopHub()
    app[FEATURES] = tuple(features)
    app.router.add_get("/api/v1/ws", desktop_socket)
    app.router.add_post("/api/v1/sessions", open_session)
    app.router.add_delete("/api/v1/sessions/current", close_session)
    app.router.add_get("/api/v1/me", me)
    app.router.add_get("/api/v1/openapi.json", openapi)
    for feature in app[FEATURES]:
        if feature.routes is not None:
            feature.routes(app)
    add_web_routes(app)
    return app
