"""Request payloads: checked field by field, so a bad request gets a 400 whose
message names the field and says what was wrong."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cti.control.core import Target, TargetKind

__all__ = [
    "CallTargetRequest",
    "LoginRequest",
    "MonitorRequest",
    "PauseRequest",
    "PayloadError",
    "require_object",
]

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


def _text(body: Mapping[str, Any], field: str, *, max_length: int, strip: bool = True) -> str:
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


def _no_extra(body: Mapping[str, Any], allowed: set[str]) -> None:
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
        _no_extra(data, {"username", "password"})
        return cls(
            username=_text(data, "username", max_length=_MAX_USERNAME),
            password=_text(data, "password", max_length=256, strip=False),
        )


@dataclass(frozen=True)
class PauseRequest:
    reason: str

    @classmethod
    def parse(cls, body: Any) -> PauseRequest:
        data = require_object(body)
        _no_extra(data, {"reason"})
        return cls(reason=_text(data, "reason", max_length=_MAX_REASON))


MONITOR_MODES = ("listen", "whisper", "barge")


@dataclass(frozen=True)
class MonitorRequest:
    mode: str

    @classmethod
    def parse(cls, body: Any) -> MonitorRequest:
        data = require_object(body)
        _no_extra(data, {"mode"})
        mode = _text(data, "mode", max_length=16)
        if mode not in MONITOR_MODES:
            raise PayloadError("mode", f"expected one of {list(MONITOR_MODES)}, got {mode!r}")
        return cls(mode=mode)


TARGET_KINDS = tuple(kind.value for kind in TargetKind)
# Kinds whose target needs a value (an extension, a queue, a number).
_VALUE_REQUIRED = frozenset({TargetKind.AGENT, TargetKind.QUEUE, TargetKind.EXTERNAL})


@dataclass(frozen=True)
class CallTargetRequest:
    """``{"target": {"kind": "agent|queue|mobile|city|external", "value": "..."}}``:
    where a transfer, a consultation or a three-way call goes."""

    target: Target

    @classmethod
    def parse(cls, body: Any) -> CallTargetRequest:
        data = require_object(body)
        _no_extra(data, {"target"})
        raw = data.get("target")
        if raw is None:
            raise PayloadError("target", "missing")
        if not isinstance(raw, Mapping):
            raise PayloadError("target", f"expected an object, got {type(raw).__name__}")
        _no_extra(raw, {"kind", "value"})
        kind_name = _text(raw, "kind", max_length=16)
        if kind_name not in TARGET_KINDS:
            raise PayloadError(
                "target.kind", f"expected one of {list(TARGET_KINDS)}, got {kind_name!r}"
            )
        kind = TargetKind(kind_name)
        value = ""
        if kind in _VALUE_REQUIRED or raw.get("value") not in (None, ""):
            try:
                value = _text(raw, "value", max_length=32)
            except PayloadError as exc:
                raise PayloadError("target.value", exc.problem) from None
        return cls(Target(kind, value))
