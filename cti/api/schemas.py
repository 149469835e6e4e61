"""Request payloads of the shell, and the field checks every feature's
schemas use: checked field by field, so a bad request gets a 400 whose message
names the field and says what was wrong."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["LoginRequest", "PayloadError", "no_extra", "require_object", "text_field"]

_MAX_REASON = 64
_MAX_USERNAME = 64


class PayloadError(ValueError):
    """A request body that cannot be used; ``field`` names the culprit."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def require_object(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise PayloadError("(body)", f"expected a JSON object, got {type(body).__name__}")
    return body


def text_field(body: Mapping[str, Any], field: str, *, max_length: int, strip: bool = True) -> str:
    value = body.get(field)
    if value is None:
        raise PayloadError(field, "missing")
    if not isinstance(value, str):
        raise PayloadError(field, f"expected a string, got {type(value).__name__}")
    if strip:
        value = value.strip()
    if not value:
        raise PayloadError(field, "must not be empty")
    if len(value) > max_length:
        raise PayloadError(field, f"at most {max_length} characters, got {len(value)}")
    return value


def no_extra(body: Mapping[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(body) - allowed)
    if extra:
        raise PayloadError(extra[0], f"unknown field; expected only {sorted(allowed)}")


@dataclass(frozen=True)
class LoginRequest:
    username: str
    password: str

    @classmethod
    def parse(cls, body: Any) -> LoginRequest:
        data = require_object(body)
        no_extra(data, {"username", "password"})
        return cls(
            username=text_field(data, "username", max_length=_MAX_USERNAME),
            password=text_field(data, "password", max_length=256, strip=False),
        )
