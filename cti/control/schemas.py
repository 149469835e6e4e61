"""Call control's payloads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cti.api.schemas import PayloadError, no_extra, require_object, text_field
from cti.control.core import Target, TargetKind

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
        no_extra(data, {"target"})
        raw = data.get("target")
        if raw is None:
            raise PayloadError("target", "missing")
        if not isinstance(raw, Mapping):
            raise PayloadError("target", f"expected an object, got {type(raw).__name__}")
        no_extra(raw, {"kind", "value"})
        kind_name = text_field(raw, "kind", max_length=16)
        if kind_name not in TARGET_KINDS:
            raise PayloadError(
                "target.kind", f"expected one of {list(TARGET_KINDS)}, got {kind_name!r}"
            )
        kind = TargetKind(kind_name)
        value = ""
        if kind in _VALUE_REQUIRED or raw.get("value") not in (None, ""):
            try:
                value = text_field(raw, "value", max_length=32)
            except PayloadError as exc:
                raise PayloadError("target.value", exc.problem) from None
        return cls(Target(kind, value))
