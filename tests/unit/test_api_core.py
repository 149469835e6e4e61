"""The API's pure parts: password hashing, sessions, masking, payloads, and an
OpenAPI document that matches the routes."""

from __future__ import annotations

import pytest

from cti.agents.schemas import PauseRequest
from cti.api.http import build_app
from cti.api.openapi import openapi_document
from cti.api.passwords import PasswordError, hash_password, verify_password
from cti.api.roles import Role, mask_number
from cti.api.schemas import LoginRequest, PayloadError
from cti.api.sessions import SessionTable
from cti.config import EngineConfig
from cti.features import enabled_features


def test_password_hash_is_salted_and_verifies() -> None:
    first, second = hash_password("坐席密码-2026"), hash_password("坐席密码-2026")
    assert first != second and first.startswith("scrypt$16384$8$1$")
    assert "坐席密码" not in first
    assert verify_password("坐席密码-2026", first)
    assert not verify_password("坐席密码-2027", first)


@pytest.mark.parametrize(
    "stored", ["", "plain", "md5$x$y$z$a$b", "scrypt$x$8$1$AA$AA", "scrypt$$$"]
)
def test_malformed_hashes_never_verify(stored: str) -> None:
    assert not verify_password("whatever-password", stored)


def test_password_length_is_checked() -> None:
    with pytest.raises(PasswordError, match="at least 8"):
        hash_password("short")
    with pytest.raises(PasswordError, match="at most 256"):
        hash_password("x" * 257)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_sessions_expire_revoke_and_keep_only_digests() -> None:
    clock = Clock()
    table = SessionTable(ttl_s=60.0, clock=clock)
    token, session = table.open("agent1001", Role.AGENT, "1001")
    assert session.expires_at == 1060.0 and session.agent == "1001"
    assert table.get(token) == session
    assert token not in repr(table._sessions)  # digests only
    clock.now = 1059.9
    assert table.get(token) is not None
    clock.now = 1060.0
    assert table.get(token) is None and len(table) == 0

    token2, _ = table.open("sup", Role.SUPERVISOR, None)
    token3, _ = table.open("sup", Role.SUPERVISOR, None)
    assert table.close(token2) and not table.close(token2)
    assert table.get(token2) is None and table.get(token3) is not None
    assert table.close_user("sup") == 1 and table.get(token3) is None
    assert table.get("forged-token") is None
    with pytest.raises(ValueError):
        SessionTable(ttl_s=0, clock=clock)


@pytest.mark.parametrize(
    ("number", "visible", "shown"),
    [
        ("13800138000", False, "138****8000"),
        ("13800138000", True, "13800138000"),
        ("02588886666", False, "025****6666"),
        ("12345", False, "***45"),
        ("", False, ""),
    ],
)
def test_mask_number(number: str, visible: bool, shown: str) -> None:
    assert mask_number(number, visible=visible) == shown


def test_only_supervisors_and_admins_manage_agents() -> None:
    assert not Role.AGENT.manages_agents
    assert Role.SUPERVISOR.manages_agents and Role.ADMIN.manages_agents


@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        ([], "(body)", "expected a JSON object"),
        ({}, "reason", "missing"),
        ({"reason": 5}, "reason", "expected a string"),
        ({"reason": "  "}, "reason", "must not be empty"),
        ({"reason": "x" * 65}, "reason", "at most 64"),
        ({"reason": "午休", "until": 1}, "until", "unknown field"),
    ],
)
def test_pause_payload_errors_name_the_field(body: object, field: str, problem: str) -> None:
    with pytest.raises(PayloadError) as info:
        PauseRequest.parse(body)
    assert info.value.field == field and problem in info.value.problem


def test_payloads_parse() -> None:
    assert PauseRequest.parse({"reason": " 午休 "}).reason == "午休"
    login = LoginRequest.parse({"username": "a1001", "password": " spaced pw "})
    assert login.password == " spaced pw "  # passwords are never trimmed


def test_openapi_documents_exactly_the_routes() -> None:
    features = enabled_features(EngineConfig())
    app = build_app(
        accounts=None,  # type: ignore[arg-type]  # routes only; nothing is called
        audit=None,  # type: ignore[arg-type]
        sessions=SessionTable(ttl_s=1, clock=Clock()),
        features=features,
    )
    routed = {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
        and route.method != "HEAD"
        and route.resource.canonical.startswith("/api/")
    }
    documented = {
        (method, path)
        for path, operations in openapi_document(features)["paths"].items()
        for method in operations
    }
    assert routed == documented


def test_web_pages_are_routed_with_a_strict_content_security_policy() -> None:
    app = build_app(
        accounts=None,  # type: ignore[arg-type]
        audit=None,  # type: ignore[arg-type]
        sessions=SessionTable(ttl_s=1, clock=Clock()),
        features=enabled_features(EngineConfig()),
    )
    pages = {
        route.resource.canonical
        for route in app.router.routes()
        if route.resource is not None and not route.resource.canonical.startswith("/api/")
    }
    assert {"/", "/desk", "/console", "/static"} <= pages
    from cti.web.routes import _HEADERS, _page

    page = _page("desk.html")
    assert "script-src 'self'" in _HEADERS["Content-Security-Policy"]
    assert page.headers["Content-Security-Policy"] == _HEADERS["Content-Security-Policy"]
    assert "<script>" not in page.text and " style=" not in page.text  # nothing inline
    assert "坐席工作台" in page.text
    assert "班长监控台" in _page("console.html").text
