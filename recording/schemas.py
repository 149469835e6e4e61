"""The recording routes' inputs: the search query and the legal-hold body,
and the HTTP Range header."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cti.api.schemas import PayloadError, no_extra, require_object

from .catalog import SearchFilter

__all__ = ["ByteRange", "LegalHoldRequest", "RangeError", "parse_range", "parse_search"]

SEARCH_KEYS = {
    "from",
    "to",
    "caller",
    "agent",
    "queue",
    "line",
    "work_order",
    "min_duration",
    "max_duration",
    "text",
    "limit",
    "offset",
}
MAX_LIMIT = 200


def _time(key: str, value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise PayloadError(key, f"expected an ISO 8601 time, got {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _number(key: str, value: str, *, whole: bool = False) -> float:
    try:
        number = int(value) if whole else float(value)
    except ValueError:
        raise PayloadError(
            key, f"expected a {'whole ' if whole else ''}number, got {value!r}"
        ) from None
    if number < 0:
        raise PayloadError(key, f"must not be negative, got {value!r}")
    return number


def _short(key: str, value: str, limit: int = 64) -> str:
    if len(value) > limit:
        raise PayloadError(key, f"at most {limit} characters")
    return value.strip()


def parse_search(query: Mapping[str, str]) -> SearchFilter:
    unknown = sorted(set(query) - SEARCH_KEYS)
    if unknown:
        raise PayloadError(
            unknown[0], f"unknown parameter; known: {', '.join(sorted(SEARCH_KEYS))}"
        )
    limit = int(_number("limit", query["limit"], whole=True)) if "limit" in query else 50
    if not 1 <= limit <= MAX_LIMIT:
        raise PayloadError("limit", f"must be between 1 and {MAX_LIMIT}")
    caller = _short("caller", query.get("caller", ""), 32)
    if caller and not caller.lstrip("+").isdigit():
        raise PayloadError("caller", "expected digits")
    text = _short("text", query.get("text", ""), 100)
    if text and len(text) < 2:
        raise PayloadError("text", "at least 2 characters")
    return SearchFilter(
        since=_time("from", query["from"]) if "from" in query else None,
        until=_time("to", query["to"]) if "to" in query else None,
        caller_number=caller or None,
        agent=_short("agent", query.get("agent", "")) or None,
        queue=_short("queue", query.get("queue", "")) or None,
        line=_short("line", query.get("line", "")) or None,
        work_order=_short("work_order", query.get("work_order", "")) or None,
        min_duration_s=_number("min_duration", query["min_duration"])
        if "min_duration" in query
        else None,
        max_duration_s=_number("max_duration", query["max_duration"])
        if "max_duration" in query
        else None,
        text=text or None,
        limit=limit,
        offset=int(_number("offset", query["offset"], whole=True)) if "offset" in query else 0,
    )


@dataclass(frozen=True)
class LegalHoldRequest:
    on: bool
    reason: str

    @classmethod
    def parse(cls, body: Any) -> LegalHoldRequest:
        data = require_object(body)
        no_extra(data, {"on", "reason"})
        on = data.get("on")
        if not isinstance(on, bool):
            raise PayloadError("on", "expected true or false")
        reason = data.get("reason", "")
        if not isinstance(reason, str) or not reason.strip() or len(reason) > 200:
            raise PayloadError("reason", "required: why (a case, a complaint number), at most 200")
        return cls(on=on, reason=reason.strip())


class RangeError(ValueError):
    """A Range header this resource cannot satisfy (416)."""


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The byte range a ``Range`` header asks for (RFC 9110 section 14), or
    None for the whole object: no header, a unit other than bytes, a
    malformed or reversed range, or several ranges (all allowed to be
    ignored, and answered 200). RangeError only for a well-formed range
    that lies outside the object (416)."""
    if not header:
        return None
    unit, _, spec = header.partition("=")
    parts = spec.split(",")
    if unit.strip().lower() != "bytes" or len(parts) != 1:
        return None
    first, dash, last = parts[0].strip().partition("-")
    if not dash or not (first.isdigit() or last.isdigit()):
        return None
    if (first and not first.isdigit()) or (last and not last.isdigit()):
        return None
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeError(f"empty suffix range in {header!r}")
        return ByteRange(max(size - suffix, 0), size - 1)
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        raise RangeError(f"range {parts[0].strip()} starts after the last byte ({size - 1})")
    end = int(last) if last else size - 1
    return ByteRange(start, min(end, size - 1))
