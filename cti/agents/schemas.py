"""The agent routes' payloads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cti.api.schemas import no_extra, require_object, text_field

_MAX_REASON = 64


@dataclass(frozen=True)
class PauseRequest:
    reason: str

    @classmethod
    def parse(cls, body: Any) -> PauseRequest:
        data = require_object(body)
        no_extra(data, {"reason"})
        return cls(reason=text_field(data, "reason", max_length=_MAX_REASON))
