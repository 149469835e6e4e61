"""The reference city protocol: HTTPS + JSON, every request signed, status
pushed back by webhook.

District -> city (every request signed, see :mod:`.signing`):

* ``POST /api/v1/orders`` with ``Idempotency-Key``: create. Body
  ``{"order_no", "seq", "kind": "CREATE", "idempotency_key", "created_at",
  "payload"}``; answer ``{"city_order_no": str, "duplicate": bool}``
  (``duplicate``: the key was seen within the city's de-duplication window,
  nothing was created again). The same key with a different body is a 422.
* ``POST /api/v1/orders/{city_order_no}/events`` with ``Idempotency-Key``:
  every other kind, same body; answer ``{"duplicate": bool}``.
* ``GET /api/v1/orders?order_no=X``: lookup; ``{"orders": [{"city_order_no",
  "order_no", "created_at"}]}`` (empty when the city has no such order).
* ``GET /api/v1/orders?date=YYYY-MM-DD[&after=CITY_NO][&limit=N]``: the
  orders created that (city-local) day, in city-number order, a page at a
  time; ``{"orders": [...], "next": CITY_NO | null}``.
* Errors: a non-2xx status with ``{"error": reason}``.

City -> district: ``POST`` to the district's webhook URL, signed with the
city's app key, body ``{"events": [StatusEvent, ...]}`` (see
:func:`status_event_to_json`). The district verifies it with a
:class:`~.signing.Verifier`, reads it with :func:`parse_webhook`, answers 2xx
once stored; the city re-sends until it gets one, so the district
de-duplicates by ``event_id``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from typing import Any
from urllib.parse import quote

import aiohttp
from yarl import URL

from .base import (
    STATUS_KINDS,
    CityEvent,
    CityProtocolError,
    CityUnavailable,
    Delivered,
    StatusEvent,
    error_for_status,
    reason_from_body,
)
from .signing import new_nonce, signed_headers

__all__ = [
    "EVENTS_PATH",
    "IDEMPOTENCY_KEY",
    "ORDERS_PATH",
    "MalformedWebhook",
    "RestCityAdapter",
    "event_message",
    "parse_webhook",
    "status_event_from_json",
    "status_event_to_json",
    "webhook_body",
]

ORDERS_PATH = "/api/v1/orders"
EVENTS_PATH = "/api/v1/orders/{city_order_no}/events"
IDEMPOTENCY_KEY = "Idempotency-Key"
_MAX_ID_LENGTH = 128


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def event_message(event: CityEvent) -> dict[str, Any]:
    """The JSON body for one outbound event."""
    return {
        "order_no": event.order_no,
        "seq": event.seq,
        "kind": event.kind,
        "idempotency_key": event.idempotency_key,
        "created_at": event.created_at.isoformat(),
        "payload": dict(event.payload),
    }


class RestCityAdapter:
    """:class:`~.base.CityAdapter` for the reference protocol.

    ``session`` is owned by the caller (one per process). ``timeout_s`` bounds
    each request end to end. ``clock`` (Unix seconds) and ``nonce`` make the
    signatures reproducible in tests.
    """

    name = "rest"

    def __init__(
        self,
        base_url: str,
        app_key: str,
        secret: bytes,
        session: aiohttp.ClientSession,
        *,
        timeout_s: float = 10.0,
        clock: Callable[[], float] = time.time,
        nonce: Callable[[], str] = new_nonce,
        list_page_size: int = 500,
    ) -> None:
        self._base = URL(base_url)
        self._app_key = app_key
        self._secret = secret
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.timeout_s = timeout_s
        self._clock = clock
        self._nonce = nonce
        self._list_page_size = list_page_size

    async def deliver(self, event: CityEvent) -> Delivered:
        if event.kind == "CREATE":
            answer = await self._call(
                "POST", ORDERS_PATH, body=event_message(event), key=event.idempotency_key
            )
            return Delivered(
                city_order_no=_answer_str(answer, "city_order_no"),
                duplicate=_answer_bool(answer, "duplicate"),
            )
        if event.city_order_no is None:
            raise ValueError(
                f"{event.kind} for {event.order_no} has no city_order_no: deliver its CREATE first"
            )
        answer = await self._call(
            "POST",
            EVENTS_PATH.format(city_order_no=quote(event.city_order_no, safe="")),
            body=event_message(event),
            key=event.idempotency_key,
        )
        return Delivered(event.city_order_no, duplicate=_answer_bool(answer, "duplicate"))

    async def lookup(self, order_no: str) -> str | None:
        answer = await self._call("GET", ORDERS_PATH, query={"order_no": order_no})
        orders = _answer_orders(answer)
        return orders[0][0] if orders else None

    async def pull(
        self, cursor: str | None, *, until: datetime
    ) -> tuple[list[StatusEvent], str | None]:
        return [], cursor

    async def list_orders(self, day: date) -> list[tuple[str, str | None]]:
        found: list[tuple[str, str | None]] = []
        after: str | None = None
        while True:
            query = {"date": day.isoformat(), "limit": str(self._list_page_size)}
            if after is not None:
                query["after"] = after
            answer = await self._call("GET", ORDERS_PATH, query=query)
            found.extend(_answer_orders(answer))
            following = answer.get("next")
            if following is None:
                return found
            if not isinstance(following, str) or following == after:
                raise CityProtocolError(f"bad 'next' in the order list: {following!r}")
            after = following

    async def _call(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        key: str | None = None,
    ) -> dict[str, Any]:
        """One signed request to *path* (already percent-encoded); the decoded
        JSON object of a 2xx answer."""
        url = self._base.with_path(self._base.raw_path.rstrip("/") + path, encoded=True)
        if query:
            url = url.with_query(query)
        raw_body = b"" if body is None else _dumps(body)
        headers = signed_headers(
            self._app_key,
            self._secret,
            method,
            url.raw_path_qs,
            raw_body,
            now=int(self._clock()),
            nonce=self._nonce(),
        )
        if body is not None:
            headers["Content-Type"] = "application/json"
        if key is not None:
            headers[IDEMPOTENCY_KEY] = key
        try:
            async with self._session.request(
                method,
                url,
                data=raw_body if body is not None else None,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                status = response.status
                answer = await response.read()
        except TimeoutError as exc:
            raise CityUnavailable(f"no answer within {self.timeout_s} s") from exc
        except aiohttp.ClientError as exc:
            raise CityUnavailable(f"{type(exc).__name__}: {exc}") from exc
        if not 200 <= status < 300:
            raise error_for_status(status, reason_from_body(answer, "error", "reason"))
        try:
            decoded = json.loads(answer)
        except ValueError as exc:
            raise CityProtocolError(f"{method} {path}: answer is not JSON") from exc
        if not isinstance(decoded, dict):
            raise CityProtocolError(f"{method} {path}: answer is not a JSON object")
        return decoded


def _answer_str(answer: Mapping[str, Any], name: str) -> str:
    value = answer.get(name)
    if not isinstance(value, str) or not value:
        raise CityProtocolError(f"answer has no {name!r} string: {value!r}")
    return value


def _answer_bool(answer: Mapping[str, Any], name: str) -> bool:
    value = answer.get(name, False)
    if not isinstance(value, bool):
        raise CityProtocolError(f"answer's {name!r} is not a boolean: {value!r}")
    return value


def _answer_orders(answer: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    orders = answer.get("orders")
    if not isinstance(orders, list):
        raise CityProtocolError("answer has no 'orders' list")
    found: list[tuple[str, str | None]] = []
    for entry in orders:
        if not isinstance(entry, dict):
            raise CityProtocolError(f"order entry is not an object: {entry!r}")
        order_no = entry.get("order_no")
        if order_no is not None and not isinstance(order_no, str):
            raise CityProtocolError(f"order entry's 'order_no' is not a string: {order_no!r}")
        found.append((_answer_str(entry, "city_order_no"), order_no))
    return found


# -- webhook: city -> district ------------------------------------------------


class MalformedWebhook(ValueError):
    """A webhook body that is not a list of well-formed status events; the
    message names the first bad field (answer 400 with it)."""


def status_event_to_json(event: StatusEvent) -> dict[str, Any]:
    """One status event as the webhook carries it."""
    return {
        "event_id": event.event_id,
        "city_order_no": event.city_order_no,
        "order_no": event.order_no,
        "city_seq": event.city_seq,
        "kind": event.kind,
        "at": event.at.isoformat(),
        "data": dict(event.data),
    }


def webhook_body(events: Iterable[StatusEvent]) -> bytes:
    """The bytes of one webhook request carrying *events*."""
    return _dumps({"events": [status_event_to_json(e) for e in events]})


def parse_webhook(body: bytes) -> list[StatusEvent]:
    """The status events of one webhook body, or :class:`MalformedWebhook`."""
    try:
        decoded = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedWebhook(f"body is not JSON: {exc}") from exc
    if not isinstance(decoded, dict):
        raise MalformedWebhook("body is not a JSON object")
    events = decoded.get("events")
    if not isinstance(events, list):
        raise MalformedWebhook("body has no 'events' list")
    return [status_event_from_json(item, where=f"events[{n}]") for n, item in enumerate(events)]


def status_event_from_json(item: object, *, where: str = "event") -> StatusEvent:
    """One status event from its JSON form, or :class:`MalformedWebhook`."""
    if not isinstance(item, dict):
        raise MalformedWebhook(f"{where} is not an object")

    def text(name: str, *, optional: bool = False) -> str | None:
        value = item.get(name)
        if value is None and optional:
            return None
        if not isinstance(value, str) or not value or len(value) > _MAX_ID_LENGTH:
            raise MalformedWebhook(
                f"{where}.{name} must be a string of 1-{_MAX_ID_LENGTH} characters"
            )
        return value

    event_id = text("event_id")
    city_order_no = text("city_order_no")
    order_no = text("order_no", optional=True)
    city_seq = item.get("city_seq")
    if not isinstance(city_seq, int) or isinstance(city_seq, bool) or city_seq < 1:
        raise MalformedWebhook(f"{where}.city_seq must be an integer >= 1")
    kind = item.get("kind")
    if kind not in STATUS_KINDS:
        raise MalformedWebhook(f"{where}.kind {kind!r} is not one of {sorted(STATUS_KINDS)}")
    at_text = item.get("at")
    try:
        at = datetime.fromisoformat(at_text) if isinstance(at_text, str) else None
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise MalformedWebhook(f"{where}.at must be an ISO 8601 time with a UTC offset")
    data = item.get("data", {})
    if not isinstance(data, dict):
        raise MalformedWebhook(f"{where}.data must be an object")
    assert event_id is not None and city_order_no is not None
    return StatusEvent(
        city_order_no=city_order_no,
        order_no=order_no,
        city_seq=city_seq,
        kind=kind,
        at=at,
        data=data,
        event_id=event_id,
    )
