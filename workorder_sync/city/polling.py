"""The polling style of city platform, as real per-city integrations have it:
one endpoint per action, a static session token, no idempotency keys, and
status read back by polling a paged list by time range.

The city's protocol, as this adapter speaks it:

* every request carries ``X-Session-Token: <token>``; every answer is
  ``{"code": 0, "msg": str, "data": ...}`` -- a non-zero ``code`` is a
  business error even on HTTP 200;
* ``POST /v2/order/create`` with ``{"localId": order_no, "localSeq": seq,
  "extKey": key, "form": payload}`` -> ``data: {"cityNo": str}``. The city
  creates a new order on every call, so the adapter looks the order up first
  (``lookup``) and creates only if the city does not have it;
* ``POST /v2/order/{cityNo}/{action}`` with the same body, one action per
  kind (:data:`ACTIONS`: ``assign``, ``accept``, ``sendback``, ``extension``,
  ``reply``, ``feedback``, ...). ``extKey`` is stored but not de-duplicated
  by the city: a non-create message whose answer was lost is delivered
  again on retry (at least once, in order);
* ``GET /v2/order/query?localId=X`` and
  ``GET /v2/order/query?createDate=YYYY-MM-DD&page=P&size=N`` ->
  ``data: {"total": int, "records": [{"cityNo", "localId", "createTime"}]}``,
  oldest first;
* ``GET /v2/order/list?start=T&end=T&page=P&size=N`` (times
  ``YYYY-MM-DD HH:MM:SS`` in the city's zone, both ends inclusive, pages
  from 1) -> ``data: {"total": int, "records": [{"eventId", "cityNo",
  "localId", "status", "statusSeq", "updateTime", "detail"}]}``: the status
  changes in that range, oldest first, in the city's vocabulary
  (:data:`STATUSES`).

The pull cursor: timestamps have one-second resolution, so many events share
one. The cursor holds the newest event time seen (the city's clock, never
ours: a city clock behind ours loses nothing) and the ids of the events seen
at or after it minus ``overlap_s``. A pull asks from that time, inclusive,
and drops the ids already seen -- events sharing a second across a page
boundary or across two pulls are returned once, none skipped. ``overlap_s``
also catches events the city writes late with a slightly older time.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from datetime import date, datetime, timedelta, tzinfo
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import aiohttp
from yarl import URL

from .base import (
    CityEvent,
    CityProtocolError,
    CityRejected,
    CityUnavailable,
    Delivered,
    StatusEvent,
    error_for_status,
    reason_from_body,
)

__all__ = [
    "ACTIONS",
    "SESSION_HEADER",
    "STATUSES",
    "TIME_FORMAT",
    "PollingCityAdapter",
    "decode_cursor",
    "encode_cursor",
]

SESSION_HEADER = "X-Session-Token"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
CREATE_PATH = "/v2/order/create"
ACTION_PATH = "/v2/order/{city_no}/{action}"
QUERY_PATH = "/v2/order/query"
LIST_PATH = "/v2/order/list"

# Our outbound kinds -> the city's action endpoints.
ACTIONS: Mapping[str, str] = {
    "UPDATE": "update",
    "DISPATCH": "assign",
    "SIGN": "accept",
    "RETURN_APPLY": "sendback",
    "RETURN_RESULT": "sendback-result",
    "EXTENSION_APPLY": "extension",
    "EXTENSION_RESULT": "extension-result",
    "REPLY": "reply",
    "SUPERVISE": "urge",
    "CLOSE": "finish",
    "CALLBACK_RESULT": "feedback",
    "REOPEN": "reopen",
}
# The city's status words -> our status kinds.
STATUSES: Mapping[str, str] = {
    "ASSIGNED": "DISPATCHED",
    "ACCEPTED": "SIGNED",
    "SENT_BACK": "RETURNED",
    "DELAYED": "EXTENDED",
    "REPLIED": "REPLIED",
    "FINISHED": "CLOSED",
    "VISITED": "CALLBACK_RESULT",
    "REOPENED": "REOPENED",
}
_MAX_PAGES = 10_000
CITY_TZ = ZoneInfo("Asia/Shanghai")


class PollingCityAdapter:
    """:class:`~.base.CityAdapter` for a polling-style city platform.

    ``tz`` is the city's time zone (its list times carry none).
    ``initial_lookback`` is how far back the first pull (no cursor) reads.
    """

    name = "polling"

    def __init__(
        self,
        base_url: str,
        token: str,
        session: aiohttp.ClientSession,
        *,
        timeout_s: float = 10.0,
        page_size: int = 100,
        overlap_s: float = 0.0,
        initial_lookback: timedelta = timedelta(days=1),
        tz: tzinfo = CITY_TZ,
    ) -> None:
        if page_size < 1:
            raise ValueError(f"page_size must be >= 1, got {page_size!r}")
        if overlap_s < 0:
            raise ValueError(f"overlap_s must be >= 0, got {overlap_s!r}")
        self._base = URL(base_url)
        self._token = token
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.timeout_s = timeout_s
        self.page_size = page_size
        self._overlap = timedelta(seconds=overlap_s)
        self._initial_lookback = initial_lookback
        self._tz = tz

    async def deliver(self, event: CityEvent) -> Delivered:
        body = {
            "localId": event.order_no,
            "localSeq": event.seq,
            "extKey": event.idempotency_key,
            "form": dict(event.payload),
        }
        if event.kind == "CREATE":
            # No keys on the city side: a create retried after a lost answer
            # would make a second order. Ask first; the outbox's per-order
            # lease keeps two workers from racing between ask and create.
            existing = await self.lookup(event.order_no)
            if existing is not None:
                return Delivered(existing, duplicate=True)
            data = await self._call("POST", CREATE_PATH, body=body)
            return Delivered(_record_str(data, "cityNo", "create answer"), duplicate=False)
        if event.city_order_no is None:
            raise ValueError(
                f"{event.kind} for {event.order_no} has no city_order_no: deliver its CREATE first"
            )
        path = ACTION_PATH.format(
            city_no=quote(event.city_order_no, safe=""), action=ACTIONS[event.kind]
        )
        await self._call("POST", path, body=body)
        return Delivered(event.city_order_no, duplicate=False)

    async def lookup(self, order_no: str) -> str | None:
        data = await self._call("GET", QUERY_PATH, query={"localId": order_no})
        records = _records(data)
        if not records:
            return None
        return _record_str(records[0], "cityNo", "query record")

    async def list_orders(self, day: date) -> list[tuple[str, str | None]]:
        records = await self._all_pages(QUERY_PATH, {"createDate": day.isoformat()})
        found: list[tuple[str, str | None]] = []
        for record in records:
            local_id = record.get("localId")
            if local_id is not None and not isinstance(local_id, str):
                raise CityProtocolError(f"query record's localId is not a string: {local_id!r}")
            found.append((_record_str(record, "cityNo", "query record"), local_id))
        return found

    async def pull(
        self, cursor: str | None, *, until: datetime
    ) -> tuple[list[StatusEvent], str | None]:
        if until.tzinfo is None:
            raise ValueError("until must be timezone-aware")
        seen: dict[str, datetime]
        if cursor is None:
            high, seen = until - self._initial_lookback, {}
        else:
            high, seen = decode_cursor(cursor)
        start = (high - self._overlap).replace(microsecond=0)  # the city's resolution
        if start > until:
            return [], cursor
        records = await self._all_pages(
            LIST_PATH, {"start": self._city_time(start), "end": self._city_time(until)}
        )
        fresh: dict[str, StatusEvent] = {}
        for record in records:
            event = self._status_event(record)
            if event.at < start:
                continue  # outside what was asked: seen before, or beyond the overlap
            if event.event_id not in seen and event.event_id not in fresh:
                fresh[event.event_id] = event
        events = sorted(fresh.values(), key=lambda e: (e.at, e.city_order_no, e.city_seq))
        if events:
            high = max(high, events[-1].at)
        keep_from = high - self._overlap
        known = {**seen, **{e.event_id: e.at for e in events}}
        return events, encode_cursor(high, {i: at for i, at in known.items() if at >= keep_from})

    async def _all_pages(self, path: str, query: Mapping[str, str]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for page in range(1, _MAX_PAGES + 1):
            data = await self._call(
                "GET", path, query={**query, "page": str(page), "size": str(self.page_size)}
            )
            records = _records(data)
            found.extend(records)
            if len(records) < self.page_size:
                return found
        raise CityProtocolError(f"{path}: more than {_MAX_PAGES} pages")

    def _status_event(self, record: Mapping[str, Any]) -> StatusEvent:
        status = record.get("status")
        kind = STATUSES.get(status) if isinstance(status, str) else None
        if kind is None:
            raise CityProtocolError(f"list record has an unknown status {status!r}")
        seq = record.get("statusSeq")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            raise CityProtocolError(f"list record's statusSeq is not an integer >= 1: {seq!r}")
        update_time = _record_str(record, "updateTime", "list record")
        try:
            at = datetime.strptime(update_time, TIME_FORMAT).replace(tzinfo=self._tz)
        except ValueError as exc:
            raise CityProtocolError(f"list record's updateTime {update_time!r}") from exc
        local_id = record.get("localId")
        detail = record.get("detail") or {}
        if not isinstance(detail, dict):
            raise CityProtocolError(f"list record's detail is not an object: {detail!r}")
        return StatusEvent(
            city_order_no=_record_str(record, "cityNo", "list record"),
            order_no=local_id if isinstance(local_id, str) and local_id else None,
            city_seq=seq,
            kind=kind,
            at=at,
            data=detail,
            event_id=_record_str(record, "eventId", "list record"),
        )

    def _city_time(self, moment: datetime) -> str:
        return moment.astimezone(self._tz).strftime(TIME_FORMAT)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Any:
        """One request to *path* (already percent-encoded); the ``data`` of a
        successful answer."""
        url = self._base.with_path(self._base.raw_path.rstrip("/") + path, encoded=True)
        if query:
            url = url.with_query(query)
        try:
            async with self._session.request(
                method,
                url,
                json=body,
                headers={SESSION_HEADER: self._token},
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
            raise error_for_status(status, reason_from_body(answer, "msg", "error"))
        try:
            envelope = json.loads(answer)
        except ValueError as exc:
            raise CityProtocolError(f"{method} {path}: answer is not JSON") from exc
        if not isinstance(envelope, dict) or not isinstance(envelope.get("code"), int):
            raise CityProtocolError(f"{method} {path}: answer has no integer 'code'")
        if envelope["code"] != 0:
            msg = envelope.get("msg")
            raise CityRejected(status, f"code {envelope['code']}: {msg}")
        return envelope.get("data")


def _records(data: Any) -> list[dict[str, Any]]:
    records = data.get("records") if isinstance(data, dict) else None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise CityProtocolError("answer's data has no 'records' list of objects")
    return records


def _record_str(record: Any, name: str, what: str) -> str:
    value = record.get(name) if isinstance(record, dict) else None
    if not isinstance(value, str) or not value:
        raise CityProtocolError(f"{what} has no {name!r} string: {value!r}")
    return value


def encode_cursor(high: datetime, seen: Mapping[str, datetime]) -> str:
    """The opaque cursor: newest event time seen and the ids seen near it."""
    state = {
        "v": 1,
        "high": high.isoformat(),
        "seen": sorted([event_id, at.isoformat()] for event_id, at in seen.items()),
    }
    raw = json.dumps(state, separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii")


def decode_cursor(cursor: str) -> tuple[datetime, dict[str, datetime]]:
    """``(high, seen)`` out of a cursor made by :func:`encode_cursor`."""
    try:
        state = json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
        if not isinstance(state, dict) or state.get("v") != 1:
            raise ValueError("unknown cursor version")
        high = datetime.fromisoformat(state["high"])
        seen = {str(event_id): datetime.fromisoformat(at) for event_id, at in state["seen"]}
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError(f"malformed polling cursor {cursor[:40]!r}: {exc}") from exc
    if high.tzinfo is None or any(at.tzinfo is None for at in seen.values()):
        raise ValueError(f"malformed polling cursor {cursor[:40]!r}: naive time")
    return high, seen
