"""The console routes' payloads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cti.api.schemas import PayloadError, no_extra, require_object, text_field

MONITOR_MODES = ("listen", "whisper", "barge")


@dataclass(frozen=True)
class MonitorRequest:
    mode: str

    @classmethod
    def parse(cls, body: Any) -> MonitorRequest:
        data = require_object(body)
        no_extra(data, {"mode"})
        mode = text_field(data, "mode", max_length=16)
        if mode not in MONITOR_MODES:
            raise PayloadError("mode", f"expected one of {list(MONITOR_MODES)}, got {mode!r}")
        return cls(mode=mode)
