"""The city adapter contract: what the district sends to the city 12345
platform, what comes back, and how failures are told apart.

Pure data and one protocol; the adapters (:mod:`.rest`, :mod:`.polling`) do
the I/O. The outbox relies on the error classes to decide what to retry:
:class:`CityUnavailable` may succeed later (back off and retry),
:class:`CityRejected` will not (count it towards dead-lettering).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

__all__ = [
    "OUTBOUND_KINDS",
    "RETRYABLE_4XX",
    "STATUS_KINDS",
    "CityAdapter",
    "CityError",
    "CityEvent",
    "CityProtocolError",
    "CityRejected",
    "CityUnavailable",
    "Delivered",
    "StatusEvent",
    "error_for_status",
    "idempotency_key_for",
    "reason_from_body",
]

OUTBOUND_KINDS = frozenset(
    {
        "CREATE",
        "UPDATE",
        "DISPATCH",
        "SIGN",
        "RETURN_APPLY",
        "RETURN_RESULT",
        "EXTENSION_APPLY",
        "EXTENSION_RESULT",
        "REPLY",
        "SUPERVISE",
        "CLOSE",
        "CALLBACK_RESULT",
        "REOPEN",
    }
)
STATUS_KINDS = frozenset(
    {
        "DISPATCHED",
        "SIGNED",
        "RETURNED",
        "EXTENDED",
        "REPLIED",
        "CLOSED",
        "CALLBACK_RESULT",
        "REOPENED",
    }
)
# Client errors that say "not now" rather than "never": request timeout,
# conflict (the city is still applying the same key), too early, too many.
RETRYABLE_4XX = frozenset({408, 409, 425, 429})


def idempotency_key_for(order_no: str, kind: str, seq: int) -> str:
    """The key of one outbound message: the same for every retry of it."""
    return f"{order_no}:{kind}:{seq}"


@dataclass(frozen=True)
class CityEvent:
    """One outbound message about one of our work orders.

    ``seq`` orders the messages of one order (1, 2, ...); ``city_order_no``
    is known for every kind but ``CREATE`` (the city assigns it then).
    """

    order_no: str
    seq: int
    kind: str
    idempotency_key: str
    payload: Mapping[str, Any]
    city_order_no: str | None
    created_at: datetime

    def __post_init__(self) -> None:
        if self.kind not in OUTBOUND_KINDS:
            raise ValueError(f"unknown city event kind {self.kind!r}")
        if self.seq < 1:
            raise ValueError(f"seq must be >= 1, got {self.seq!r}")
        if self.created_at.tzinfo is None:
            raise ValueError("created_at must be timezone-aware")

    @classmethod
    def new(
        cls,
        order_no: str,
        seq: int,
        kind: str,
        payload: Mapping[str, Any],
        *,
        created_at: datetime,
        city_order_no: str | None = None,
    ) -> CityEvent:
        """An event with its idempotency key derived from order, kind and seq."""
        return cls(
            order_no=order_no,
            seq=seq,
            kind=kind,
            idempotency_key=idempotency_key_for(order_no, kind, seq),
            payload=payload,
            city_order_no=city_order_no,
            created_at=created_at,
        )


@dataclass(frozen=True)
class Delivered:
    """The city took the message. ``duplicate``: it had already seen it (a
    retry whose first answer was lost), and did not apply it twice."""

    city_order_no: str | None
    duplicate: bool


class CityError(Exception):
    """The city did not take a message."""


class CityUnavailable(CityError):
    """Timeout, connection refused or dropped, 5xx, 408/409/425/429: the same
    message may succeed later, retry with backoff. After a timeout the city
    may have applied it: the retry must be idempotent (key or lookup)."""

    def __init__(self, reason: str, *, status: int | None = None) -> None:
        super().__init__(reason if status is None else f"HTTP {status}: {reason}")
        self.reason = reason
        self.status = status


class CityProtocolError(CityUnavailable):
    """The city answered something we cannot read (not JSON, fields missing).
    Retried like an outage -- the city may have applied the message -- and
    worth an alarm if it lasts."""


class CityRejected(CityError):
    """A 4xx other than 408/409/425/429 (or a business error code): the city
    will refuse this message again, do not retry it blindly."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"HTTP {status}: {reason}")
        self.status = status
        self.reason = reason


def error_for_status(status: int, reason: str) -> CityError:
    """The error for a non-2xx HTTP answer."""
    if 400 <= status < 500 and status not in RETRYABLE_4XX:
        return CityRejected(status, reason)
    return CityUnavailable(reason, status=status)


def reason_from_body(body: bytes, *fields: str) -> str:
    """A short human reason out of an error body: the first of *fields* found
    in a JSON object, else the start of the text."""
    try:
        decoded = json.loads(body)
    except ValueError:
        decoded = None
    if isinstance(decoded, dict):
        for name in fields:
            value = decoded.get(name)
            if isinstance(value, str) and value:
                return value
    text = body.decode("utf-8", "replace").strip()
    return text[:200] or "(empty body)"


@dataclass(frozen=True)
class StatusEvent:
    """One status change of an order, told by the city.

    ``city_seq`` increases by one per change of one city order: the district
    applies them in that order, each once (``event_id`` is unique and stable
    across re-sends).
    """

    city_order_no: str
    order_no: str | None
    city_seq: int
    kind: str
    at: datetime
    data: Mapping[str, Any]
    event_id: str


class CityAdapter(Protocol):
    """One city platform's protocol, seen from the district."""

    name: str

    async def deliver(self, event: CityEvent) -> Delivered:
        """Send one message; :class:`Delivered`, or a :class:`CityError`."""
        ...

    async def lookup(self, order_no: str) -> str | None:
        """The city's number for our order, if it has the order. Used before
        re-creating an order once the city's de-duplication window is past."""
        ...

    async def pull(
        self, cursor: str | None, *, until: datetime
    ) -> tuple[list[StatusEvent], str | None]:
        """Status events after *cursor* up to *until*, and the cursor to
        persist. Push adapters return ``([], cursor)``."""
        ...

    async def list_orders(self, day: date) -> list[tuple[str, str | None]]:
        """``(city_order_no, our order_no)`` of the orders the city created on
        *day* (its local day), for the daily reconciliation."""
        ...
