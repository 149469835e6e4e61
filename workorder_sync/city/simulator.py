"""A simulator of the city 12345 platform, speaking both city protocols.

* the reference protocol (:mod:`.rest`): signed requests (bad signatures get
  401 with the reason), idempotency keys remembered for ``dedup_window``
  (a repeated key is answered as a duplicate, the same body required),
  status events pushed to ``webhook_url``, signed with the city's key and
  re-sent until the district answers 2xx, in order;
* the polling protocol (:mod:`.polling`): a session token, one endpoint per
  action, no idempotency keys -- a repeated create makes a second order, as
  real platforms do -- and the status changes listed by time range, paged.

Every order the city creates moves DISPATCHED -> SIGNED -> REPLIED -> CLOSED
on a schedule (``progress``), each change with the next per-order
``city_seq``. Everything received is recorded per order for the tests
(:meth:`CitySimulator.received`, :meth:`CitySimulator.created_count`,
``GET /sim/state``), and faults are injected on demand (:class:`Faults`,
``POST /sim/faults``) from a seeded RNG, so a run can be repeated.

Control plane, without authentication (bind the simulator to localhost):
``GET /sim/state``, ``GET|POST /sim/faults``, ``POST /sim/webhook``
(``{"url": ...}``), ``POST /sim/orders/{city_order_no}/status``
(``{"kind": ..., "data": {...}}``: one status change now).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import json
import logging
import random
import re
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web
from yarl import URL

from common.backoff import Backoff, retry_forever

from .base import OUTBOUND_KINDS, STATUS_KINDS, StatusEvent
from .rest import IDEMPOTENCY_KEY, webhook_body
from .signing import (
    InMemoryNonceStore,
    NonceStoreFull,
    SignatureError,
    Verifier,
    new_nonce,
    signed_headers,
)

__all__ = [
    "SIMULATOR",
    "CitySimulator",
    "Faults",
    "Received",
    "SimOrder",
    "SimulatorConfig",
    "build_simulator",
    "run_simulator",
]

log = logging.getLogger(__name__)

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
# The polling city's own words: action endpoints and status names.
POLLING_ACTIONS: Mapping[str, str] = {
    "update": "UPDATE",
    "assign": "DISPATCH",
    "accept": "SIGN",
    "sendback": "RETURN_APPLY",
    "sendback-result": "RETURN_RESULT",
    "extension": "EXTENSION_APPLY",
    "extension-result": "EXTENSION_RESULT",
    "reply": "REPLY",
    "urge": "SUPERVISE",
    "finish": "CLOSE",
    "feedback": "CALLBACK_RESULT",
    "reopen": "REOPEN",
}
POLLING_STATUS_WORDS: Mapping[str, str] = {
    "DISPATCHED": "ASSIGNED",
    "SIGNED": "ACCEPTED",
    "RETURNED": "SENT_BACK",
    "EXTENDED": "DELAYED",
    "REPLIED": "REPLIED",
    "CLOSED": "FINISHED",
    "CALLBACK_RESULT": "VISITED",
    "REOPENED": "REOPENED",
}
_STATUS_DATA: Mapping[str, Mapping[str, Any]] = {
    "DISPATCHED": {"unit": "街道办事处", "role": "MAIN"},
    "SIGNED": {"unit": "街道办事处"},
    "REPLIED": {"content": "已联系诉求人并办理完毕。"},
    "CLOSED": {"result": "办结"},
}
_MAX_PAGE_SIZE = 1000


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Faults:
    """What goes wrong, per request to either protocol (``/sim`` is spared).

    Each rate is a probability in ``[0, 1]``, drawn from the simulator's
    seeded RNG in this order: slow (always ``slow_ms``), timeout (hang until
    the client gives up), error (500); then the request is handled, and a
    POST that succeeded has its answer lost at ``lost_ack_rate`` (the change
    IS made; the client gets a 502, or no answer with ``lost_ack_mode`` =
    ``"timeout"``). ``reject_rate`` applies to the writes about orders whose
    ``order_no`` matches the regex ``reject_pattern`` (``""``: all), answered
    ``reject_status`` -- poison messages. ``duplicate_reply_rate`` sends a
    status event twice (a webhook batch re-pushed, a list record repeated).
    Down windows are set apart (:meth:`CitySimulator.go_down`).
    """

    error_rate: float = 0.0
    timeout_rate: float = 0.0
    slow_ms: int = 0
    lost_ack_rate: float = 0.0
    lost_ack_mode: str = "502"
    duplicate_reply_rate: float = 0.0
    reject_rate: float = 0.0
    reject_pattern: str = ""
    reject_status: int = 400

    def __post_init__(self) -> None:
        for name in (
            "error_rate",
            "timeout_rate",
            "lost_ack_rate",
            "duplicate_reply_rate",
            "reject_rate",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"faults.{name} must be a number, got {value!r}")
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"faults.{name} must be within [0, 1], got {value!r}")
        if isinstance(self.slow_ms, bool) or not isinstance(self.slow_ms, int) or self.slow_ms < 0:
            raise ValueError(f"faults.slow_ms must be an integer >= 0, got {self.slow_ms!r}")
        if self.lost_ack_mode not in ("502", "timeout"):
            raise ValueError(
                f"faults.lost_ack_mode must be '502' or 'timeout', got {self.lost_ack_mode!r}"
            )
        if not isinstance(self.reject_pattern, str):
            raise ValueError(f"faults.reject_pattern must be a string, got {self.reject_pattern!r}")
        try:
            re.compile(self.reject_pattern)
        except re.error as exc:
            raise ValueError(f"faults.reject_pattern is not a regex: {exc}") from exc
        if not isinstance(self.reject_status, int) or not 400 <= self.reject_status <= 499:
            raise ValueError(f"faults.reject_status must be a 4xx, got {self.reject_status!r}")

    def changed(self, changes: Mapping[str, Any]) -> Faults:
        """These faults with *changes* applied; a ``ValueError`` names a bad key."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown fault option {unknown[0]!r}; known: {sorted(known)}")
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class SimulatorConfig:
    """The simulated city. Secrets default to well-known test values.

    ``progress``: the status changes every new order goes through, each as
    ``(kind, seconds after the previous one)``; ``auto_progress=False``
    leaves orders alone (tests then call :meth:`CitySimulator.emit_status`).
    ``clock`` is the city's business time (city numbers, de-duplication
    window, event times); ``wall_clock`` (Unix seconds) checks and makes
    signatures.
    """

    app_keys: Mapping[str, bytes] = field(default_factory=lambda: {"district": b"district-secret"})
    max_skew_s: int = 300
    polling_tokens: frozenset[str] = frozenset({"sim-token"})
    webhook_url: str | None = None
    city_app_key: str = "city12345"
    city_secret: bytes = b"city-secret"
    order_prefix: str = "SZ"
    tz: tzinfo = ZoneInfo("Asia/Shanghai")
    dedup_window: timedelta = timedelta(hours=24)
    progress: tuple[tuple[str, float], ...] = (
        ("DISPATCHED", 2.0),
        ("SIGNED", 5.0),
        ("REPLIED", 30.0),
        ("CLOSED", 10.0),
    )
    auto_progress: bool = True
    faults: Faults = field(default_factory=Faults)
    seed: int = 12345
    hang_s: float = 120.0
    webhook_backoff: Backoff = Backoff(base_s=0.2, cap_s=10.0)
    webhook_timeout_s: float = 5.0
    webhook_batch: int = 100
    clock: Callable[[], datetime] = _utc_now
    wall_clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        for kind, delay_s in self.progress:
            if kind not in STATUS_KINDS:
                raise ValueError(f"progress: unknown status kind {kind!r}")
            if delay_s < 0:
                raise ValueError(f"progress: delay for {kind} must be >= 0, got {delay_s!r}")
        if self.webhook_batch < 1:
            raise ValueError(f"webhook_batch must be >= 1, got {self.webhook_batch!r}")


@dataclass
class SimOrder:
    """One order at the city."""

    city_order_no: str
    order_no: str
    protocol: str
    created_at: datetime
    payload: Mapping[str, Any]
    status: str | None = None
    status_seq: int = 0


@dataclass(frozen=True)
class Received:
    """One message the city applied (duplicates answered from the key store
    are not applied, so not here)."""

    order_no: str
    city_order_no: str
    kind: str
    seq: int | None
    idempotency_key: str | None
    protocol: str
    at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "city_order_no": self.city_order_no,
            "kind": self.kind,
            "seq": self.seq,
            "idempotency_key": self.idempotency_key,
            "protocol": self.protocol,
            "at": self.at.isoformat(),
        }


@dataclass(frozen=True)
class _Remembered:
    answer: Mapping[str, Any]
    message_hash: str
    at: datetime


class _PushFailed(Exception):
    pass


class CitySimulator:
    """The city's state and behaviour; ``build_simulator`` serves it."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.faults = config.faults
        self.webhook_url = config.webhook_url
        self.counters: Counter[str] = Counter()
        self.sequence_violations: list[str] = []
        self.pushes: list[dict[str, Any]] = []
        self._clock = config.clock
        self._rng = random.Random(config.seed)
        self._down_until = 0.0
        self._down_mode = "refuse"
        self._orders: dict[str, SimOrder] = {}
        self._by_order_no: dict[str, list[SimOrder]] = {}
        self._received: dict[str, list[Received]] = {}
        self._last_seq: dict[str, int] = {}
        self._day_counters: Counter[str] = Counter()
        self._keys: dict[tuple[str, str], _Remembered] = {}
        self._status_log: list[StatusEvent] = []
        self._push_queue: deque[StatusEvent] = deque()
        self._push_wakeup = asyncio.Event()
        self._closing = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._verifier = Verifier(
            config.app_keys,
            max_skew_s=config.max_skew_s,
            nonces=InMemoryNonceStore(clock=config.wall_clock),
        )

    # -- what the tests read ---------------------------------------------------

    def received(self, order_no: str) -> list[Received]:
        """Every message applied for *order_no*, in arrival order."""
        return list(self._received.get(order_no, ()))

    def created_count(self, order_no: str) -> int:
        """How many city orders were created for our *order_no* (1 is right)."""
        return len(self._by_order_no.get(order_no, ()))

    def city_order_nos(self, order_no: str) -> list[str]:
        return [o.city_order_no for o in self._by_order_no.get(order_no, ())]

    def order(self, city_order_no: str) -> SimOrder:
        return self._orders[city_order_no]

    def status_events(self, city_order_no: str | None = None) -> list[StatusEvent]:
        """Status changes made so far (of one order, or all), oldest first."""
        return [
            e for e in self._status_log if city_order_no is None or e.city_order_no == city_order_no
        ]

    @property
    def pending_pushes(self) -> int:
        return len(self._push_queue)

    def state(self) -> dict[str, Any]:
        """Everything, JSON-ready (``GET /sim/state``)."""
        now = asyncio.get_running_loop().time()
        return {
            "orders": [
                {
                    "city_order_no": o.city_order_no,
                    "order_no": o.order_no,
                    "protocol": o.protocol,
                    "created_at": o.created_at.isoformat(),
                    "status": o.status,
                    "status_seq": o.status_seq,
                }
                for o in self._orders.values()
            ],
            "created_count": {no: len(orders) for no, orders in self._by_order_no.items()},
            "received": {no: [r.to_json() for r in items] for no, items in self._received.items()},
            "sequence_violations": list(self.sequence_violations),
            "counters": dict(self.counters),
            "faults": self.faults.to_json(),
            "down": {"mode": self._down_mode, "remaining_s": max(0.0, self._down_until - now)},
            "webhook_url": self.webhook_url,
            "pending_pushes": len(self._push_queue),
            "pushes": len(self.pushes),
        }

    # -- what the tests change -------------------------------------------------

    def set_faults(self, **changes: Any) -> Faults:
        """Change some fault options (see :class:`Faults`)."""
        self.faults = self.faults.changed(changes)
        return self.faults

    def apply_fault_request(self, body: Mapping[str, Any]) -> None:
        """``POST /sim/faults``: :class:`Faults` fields, plus ``reset`` (back to
        no faults first), ``seed`` (re-seed the RNG), ``down_for_s`` and
        ``down_mode`` (a down window from now; 0 ends it). Validated whole
        before anything changes."""
        changes = dict(body)
        reset = changes.pop("reset", False)
        seed = changes.pop("seed", None)
        down_for_s = changes.pop("down_for_s", None)
        down_mode = changes.pop("down_mode", "refuse")
        if not isinstance(reset, bool):
            raise ValueError(f"reset must be a boolean, got {reset!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        if down_for_s is not None and (
            isinstance(down_for_s, bool) or not isinstance(down_for_s, int | float)
        ):
            raise ValueError(f"down_for_s must be a number of seconds, got {down_for_s!r}")
        if down_mode not in ("refuse", "503"):
            raise ValueError(f"down_mode must be 'refuse' or '503', got {down_mode!r}")
        faults = (Faults() if reset else self.faults).changed(changes)
        self.faults = faults
        if seed is not None:
            self.reseed(seed)
        if down_for_s is not None:
            self.go_down(float(down_for_s), mode=down_mode)

    def reseed(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def go_down(self, seconds: float, *, mode: str = "refuse") -> None:
        """For *seconds* from now, every protocol request is refused: the
        connection is dropped with no answer (``"refuse"``: the client sees a
        connection error, as when the gateway is gone) or answered 503."""
        if mode not in ("refuse", "503"):
            raise ValueError(f"down mode must be 'refuse' or '503', got {mode!r}")
        self._down_mode = mode
        self._down_until = asyncio.get_running_loop().time() + max(0.0, seconds)

    def come_up(self) -> None:
        self._down_until = 0.0

    def set_webhook(self, url: str | None) -> None:
        self.webhook_url = url
        self._push_wakeup.set()

    def emit_status(
        self,
        city_order_no: str,
        kind: str,
        data: Mapping[str, Any] | None = None,
    ) -> StatusEvent:
        """One status change of an order, now: logged for the polling list,
        queued for the webhook if the order came by the reference protocol."""
        if kind not in STATUS_KINDS:
            raise ValueError(f"unknown status kind {kind!r}")
        order = self._orders[city_order_no]
        order.status_seq += 1
        order.status = kind
        event = StatusEvent(
            city_order_no=city_order_no,
            order_no=order.order_no,
            city_seq=order.status_seq,
            kind=kind,
            at=self._clock(),
            data=dict(data if data is not None else _STATUS_DATA.get(kind, {})),
            event_id=f"{city_order_no}-{order.status_seq}",
        )
        self._status_log.append(event)
        if order.protocol == "rest":
            self._push_queue.append(event)
            self._push_wakeup.set()
        return event

    # -- life cycle ------------------------------------------------------------

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()
        self._spawn(self._push_forever(), name="city-sim: webhook pusher")

    def release_hangs(self) -> None:
        """End every hanging answer (before the server waits for handlers)."""
        self._closing.set()

    async def close(self) -> None:
        self.release_hangs()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _spawn(self, coro: Coroutine[Any, Any, None], *, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed", task.get_name(), exc_info=task.exception())

    # -- orders ----------------------------------------------------------------

    def _create(self, order_no: str, protocol: str, payload: Mapping[str, Any]) -> SimOrder:
        now = self._clock()
        day = now.astimezone(self.config.tz).strftime("%Y%m%d")
        self._day_counters[day] += 1
        order = SimOrder(
            city_order_no=f"{self.config.order_prefix}{day}{self._day_counters[day]:05d}",
            order_no=order_no,
            protocol=protocol,
            created_at=now,
            payload=dict(payload),
        )
        self._orders[order.city_order_no] = order
        self._by_order_no.setdefault(order_no, []).append(order)
        self.counters["orders_created"] += 1
        # An order answered on the spot is only filed at the city: nothing to dispatch.
        answered = payload.get("status") in ("DIRECT_ANSWERED", "ARCHIVED")
        if self.config.auto_progress and self.config.progress and not answered:
            self._spawn(self._progress(order), name=f"city-sim: progress {order.city_order_no}")
        return order

    def _record(self, order: SimOrder, kind: str, seq: int | None, key: str | None) -> None:
        if seq is not None:
            last = self._last_seq.get(order.order_no)
            if last is not None and seq <= last:
                self.sequence_violations.append(
                    f"{order.order_no}: {kind} seq {seq} arrived after seq {last}"
                )
            self._last_seq[order.order_no] = max(seq, last or 0)
        self._received.setdefault(order.order_no, []).append(
            Received(
                order_no=order.order_no,
                city_order_no=order.city_order_no,
                kind=kind,
                seq=seq,
                idempotency_key=key,
                protocol=order.protocol,
                at=self._clock(),
            )
        )
        self.counters["messages_applied"] += 1

    async def _progress(self, order: SimOrder) -> None:
        for kind, delay_s in self.config.progress:
            await asyncio.sleep(delay_s)
            self.emit_status(order.city_order_no, kind)

    def _orders_of_day(self, day: date) -> list[SimOrder]:
        return [
            o
            for o in self._orders.values()
            if o.created_at.astimezone(self.config.tz).date() == day
        ]

    # -- idempotency keys (reference protocol) ---------------------------------

    def _remembered(self, app_key: str, key: str) -> _Remembered | None:
        now = self._clock()
        window = self.config.dedup_window
        while self._keys:
            oldest_key, oldest = next(iter(self._keys.items()))
            if now - oldest.at < window:
                break
            del self._keys[oldest_key]
        found = self._keys.get((app_key, key))
        if found is None or now - found.at >= window:
            return None
        return found

    def _remember(
        self, app_key: str, key: str, message_hash: str, answer: Mapping[str, Any]
    ) -> None:
        self._keys[(app_key, key)] = _Remembered(answer, message_hash, self._clock())

    # -- faults ----------------------------------------------------------------

    def _chance(self, rate: float) -> bool:
        return rate > 0 and self._rng.random() < rate

    def _is_down(self) -> bool:
        return asyncio.get_running_loop().time() < self._down_until

    async def _hang(self) -> None:
        try:
            await asyncio.wait_for(self._closing.wait(), self.config.hang_s)
        except TimeoutError:
            pass

    def _rejects(self, order_no: str) -> bool:
        faults = self.faults
        if faults.reject_rate <= 0:
            return False
        if faults.reject_pattern and not re.search(faults.reject_pattern, order_no):
            return False
        return self._chance(faults.reject_rate)

    @web.middleware
    async def faults_middleware(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        """Faults for the protocol routes; ``/sim`` is never faulted."""
        if not request.path.startswith(("/api/", "/v2/")):
            return await handler(request)
        self.counters["requests"] += 1
        faults = self.faults
        if self._is_down():
            self.counters["fault_down"] += 1
            if self._down_mode == "refuse" and request.transport is not None:
                request.transport.abort()
            return _error(request, 503, "city platform down (fault injection)")
        if faults.slow_ms:
            await asyncio.sleep(faults.slow_ms / 1000)
        if self._chance(faults.timeout_rate):
            self.counters["fault_timeout"] += 1
            await self._hang()
            return _error(request, 504, "hung (fault injection)")
        if self._chance(faults.error_rate):
            self.counters["fault_error"] += 1
            return _error(request, 500, "internal error (fault injection)")
        response = await handler(request)
        if (
            request.method == "POST"
            and 200 <= response.status < 300
            and self._chance(faults.lost_ack_rate)
        ):
            self.counters["fault_lost_ack"] += 1
            if faults.lost_ack_mode == "timeout":
                await self._hang()
                return _error(request, 504, "answer lost (fault injection)")
            return _error(request, 502, "bad gateway: answer lost (fault injection)")
        return response

    # -- reference protocol ----------------------------------------------------

    async def _authenticate(self, request: web.Request, body: bytes) -> str | web.Response:
        try:
            return await self._verifier.verify(
                request.method,
                request.raw_path,
                request.headers,
                body,
                now=int(self.config.wall_clock()),
            )
        except SignatureError as exc:
            self.counters["signature_rejected"] += 1
            return web.json_response(
                {"error": f"signature rejected: {exc.reason}", "code": exc.code}, status=401
            )
        except NonceStoreFull as exc:
            return web.json_response({"error": str(exc)}, status=503)

    async def rest_create(self, request: web.Request) -> web.Response:
        body = await request.read()
        app_key = await self._authenticate(request, body)
        if isinstance(app_key, web.Response):
            return app_key
        key = request.headers.get(IDEMPOTENCY_KEY)
        if not key:
            return _rest_error(400, f"missing {IDEMPOTENCY_KEY} header")
        message = _rest_message(body)
        if isinstance(message, web.Response):
            return message
        if message["kind"] != "CREATE":
            return _rest_error(422, f"kind {message['kind']} is not CREATE: post it as an event")
        if self._rejects(message["order_no"]):
            self.counters["fault_reject"] += 1
            return _rest_error(
                self.faults.reject_status,
                f"order {message['order_no']} rejected (fault injection)",
            )
        duplicate = self._duplicate_answer(app_key, key, message)
        if duplicate is not None:
            return duplicate
        order = self._create(message["order_no"], "rest", message["payload"])
        self._record(order, "CREATE", message["seq"], key)
        answer = {"city_order_no": order.city_order_no, "duplicate": False}
        self._remember(app_key, key, _message_hash(message), answer)
        return web.json_response(answer, status=201)

    async def rest_event(self, request: web.Request) -> web.Response:
        body = await request.read()
        app_key = await self._authenticate(request, body)
        if isinstance(app_key, web.Response):
            return app_key
        key = request.headers.get(IDEMPOTENCY_KEY)
        if not key:
            return _rest_error(400, f"missing {IDEMPOTENCY_KEY} header")
        order = self._orders.get(request.match_info["city_order_no"])
        if order is None:
            return _rest_error(404, f"no order {request.match_info['city_order_no']}")
        message = _rest_message(body)
        if isinstance(message, web.Response):
            return message
        if message["kind"] == "CREATE":
            return _rest_error(422, "post CREATE to /api/v1/orders")
        if message["order_no"] != order.order_no:
            return _rest_error(
                422, f"{order.city_order_no} is order {order.order_no}, not {message['order_no']}"
            )
        if self._rejects(order.order_no):
            self.counters["fault_reject"] += 1
            return _rest_error(
                self.faults.reject_status, f"order {order.order_no} rejected (fault injection)"
            )
        duplicate = self._duplicate_answer(app_key, key, message)
        if duplicate is not None:
            return duplicate
        self._record(order, message["kind"], message["seq"], key)
        self._remember(app_key, key, _message_hash(message), {"duplicate": False})
        return web.json_response({"duplicate": False})

    def _duplicate_answer(
        self, app_key: str, key: str, message: Mapping[str, Any]
    ) -> web.Response | None:
        remembered = self._remembered(app_key, key)
        if remembered is None:
            return None
        if remembered.message_hash != _message_hash(message):
            return _rest_error(422, f"{IDEMPOTENCY_KEY} {key!r} was used for another message")
        self.counters["duplicates_answered"] += 1
        return web.json_response(dict(remembered.answer, duplicate=True))

    async def rest_orders(self, request: web.Request) -> web.Response:
        app_key = await self._authenticate(request, await request.read())
        if isinstance(app_key, web.Response):
            return app_key
        query = request.query
        if "order_no" in query:
            orders = self._by_order_no.get(query["order_no"], [])
            return web.json_response({"orders": [_rest_order(o) for o in orders], "next": None})
        if "date" not in query:
            return _rest_error(400, "give order_no or date")
        try:
            day = date.fromisoformat(query["date"])
            limit = int(query.get("limit", "500"))
        except ValueError:
            return _rest_error(400, "date must be YYYY-MM-DD and limit an integer")
        if not 1 <= limit <= _MAX_PAGE_SIZE:
            return _rest_error(400, f"limit must be within 1..{_MAX_PAGE_SIZE}")
        after = query.get("after", "")
        listed = sorted(
            (o for o in self._orders_of_day(day) if o.city_order_no > after),
            key=lambda o: o.city_order_no,
        )
        page = listed[:limit]
        following = page[-1].city_order_no if len(listed) > limit else None
        return web.json_response({"orders": [_rest_order(o) for o in page], "next": following})

    # -- webhook pushes (reference protocol) -----------------------------------

    async def _push_forever(self) -> None:
        while True:
            while not self._push_queue or self.webhook_url is None:
                self._push_wakeup.clear()
                await self._push_wakeup.wait()
            batch = list(self._push_queue)[: self.config.webhook_batch]
            await retry_forever(
                functools.partial(self._push, batch),
                backoff=self.config.webhook_backoff,
                on_failure=self._push_failed,
            )
            for _ in batch:
                self._push_queue.popleft()
            if self._chance(self.faults.duplicate_reply_rate):
                self.counters["fault_duplicate_push"] += 1
                try:
                    await self._push(batch)
                except Exception as exc:  # the original went through: a lost copy is fine
                    log.info("city-sim: duplicate push failed: %s", exc)

    def _push_failed(self, failures: int, exc: BaseException, delay_s: float) -> None:
        self.counters["push_failures"] += 1
        log.warning(
            "city-sim: webhook push failed (%d in a row), again in %.2f s: %s",
            failures,
            delay_s,
            exc,
        )

    async def _push(self, batch: list[StatusEvent]) -> None:
        url = self.webhook_url
        if url is None or self._session is None:
            raise _PushFailed("no webhook URL")
        target = URL(url)
        body = webhook_body(batch)
        headers = signed_headers(
            self.config.city_app_key,
            self.config.city_secret,
            "POST",
            target.raw_path_qs,
            body,
            now=int(self.config.wall_clock()),
            nonce=new_nonce(),
        )
        headers["Content-Type"] = "application/json"
        ids = [e.event_id for e in batch]
        try:
            async with self._session.post(
                target,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.config.webhook_timeout_s),
            ) as response:
                status = response.status
                text = await response.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.pushes.append({"event_ids": ids, "error": f"{type(exc).__name__}: {exc}"})
            raise _PushFailed(f"{type(exc).__name__}: {exc}") from exc
        self.pushes.append({"event_ids": ids, "status": status})
        if not 200 <= status < 300:
            raise _PushFailed(f"HTTP {status}: {text[:200]}")
        self.counters["events_pushed"] += len(batch)

    # -- polling protocol ------------------------------------------------------

    def _token_refused(self, request: web.Request) -> web.Response | None:
        if request.headers.get("X-Session-Token") in self.config.polling_tokens:
            return None
        return _polling_error(401, 401, "invalid session token")

    async def polling_create(self, request: web.Request) -> web.Response:
        refused = self._token_refused(request)
        if refused is not None:
            return refused
        body = await _polling_body(request)
        if isinstance(body, web.Response):
            return body
        local_id = body["localId"]
        if self._rejects(local_id):
            self.counters["fault_reject"] += 1
            return _polling_error(
                self.faults.reject_status, 40001, f"工单 {local_id} 被拒绝 (fault injection)"
            )
        order = self._create(local_id, "polling", body.get("form") or {})
        self._record(order, "CREATE", body.get("localSeq"), body.get("extKey"))
        return _polling_ok({"cityNo": order.city_order_no})

    async def polling_action(self, request: web.Request) -> web.Response:
        refused = self._token_refused(request)
        if refused is not None:
            return refused
        kind = POLLING_ACTIONS.get(request.match_info["action"])
        if kind is None:
            return _polling_error(404, 404, f"no action {request.match_info['action']!r}")
        order = self._orders.get(request.match_info["city_no"])
        if order is None:
            return _polling_error(404, 40004, f"no order {request.match_info['city_no']}")
        body = await _polling_body(request)
        if isinstance(body, web.Response):
            return body
        if self._rejects(order.order_no):
            self.counters["fault_reject"] += 1
            return _polling_error(
                self.faults.reject_status, 40001, f"工单 {order.order_no} 被拒绝 (fault injection)"
            )
        self._record(order, kind, body.get("localSeq"), body.get("extKey"))
        return _polling_ok({})

    async def polling_query(self, request: web.Request) -> web.Response:
        refused = self._token_refused(request)
        if refused is not None:
            return refused
        query = request.query
        if "localId" in query:
            orders = self._by_order_no.get(query["localId"], [])
        elif "createDate" in query:
            try:
                orders = self._orders_of_day(date.fromisoformat(query["createDate"]))
            except ValueError:
                return _polling_error(400, 40000, "createDate must be YYYY-MM-DD")
        else:
            return _polling_error(400, 40000, "give localId or createDate")
        paged = _page(request, orders)
        if isinstance(paged, web.Response):
            return paged
        page, total = paged
        tz = self.config.tz
        records = [
            {
                "cityNo": o.city_order_no,
                "localId": o.order_no,
                "createTime": o.created_at.astimezone(tz).strftime(TIME_FORMAT),
            }
            for o in page
        ]
        return _polling_ok({"total": total, "records": records})

    async def polling_list(self, request: web.Request) -> web.Response:
        refused = self._token_refused(request)
        if refused is not None:
            return refused
        tz = self.config.tz
        try:
            start = datetime.strptime(request.query["start"], TIME_FORMAT).replace(tzinfo=tz)
            end = datetime.strptime(request.query["end"], TIME_FORMAT).replace(tzinfo=tz)
        except (KeyError, ValueError):
            return _polling_error(400, 40000, f"start and end must be {TIME_FORMAT}")
        listed = sorted(
            (
                (event.at.astimezone(tz).replace(microsecond=0), index, event)
                for index, event in enumerate(self._status_log)
                if self._orders[event.city_order_no].protocol == "polling"
            ),
            key=lambda item: (item[0], item[1]),
        )
        in_range = [(at, event) for at, _, event in listed if start <= at <= end]
        paged = _page(request, in_range)
        if isinstance(paged, web.Response):
            return paged
        page, total = paged
        records: list[dict[str, Any]] = []
        for at, event in page:
            record = {
                "eventId": event.event_id,
                "cityNo": event.city_order_no,
                "localId": event.order_no,
                "status": POLLING_STATUS_WORDS[event.kind],
                "statusSeq": event.city_seq,
                "updateTime": at.strftime(TIME_FORMAT),
                "detail": dict(event.data),
            }
            records.append(record)
            if self._chance(self.faults.duplicate_reply_rate):
                self.counters["fault_duplicate_record"] += 1
                records.append(dict(record))
        return _polling_ok({"total": total, "records": records})

    # -- control plane ---------------------------------------------------------

    async def sim_state(self, request: web.Request) -> web.Response:
        return web.json_response(self.state(), dumps=_json_dumps)

    async def sim_get_faults(self, request: web.Request) -> web.Response:
        return web.json_response(self.faults.to_json())

    async def sim_set_faults(self, request: web.Request) -> web.Response:
        body = await _json_object(request)
        if isinstance(body, web.Response):
            return body
        try:
            self.apply_fault_request(body)
        except (ValueError, TypeError) as exc:
            return _rest_error(400, str(exc))
        return web.json_response(self.faults.to_json())

    async def sim_set_webhook(self, request: web.Request) -> web.Response:
        body = await _json_object(request)
        if isinstance(body, web.Response):
            return body
        url = body.get("url")
        if url is not None and not isinstance(url, str):
            return _rest_error(400, "url must be a string or null")
        self.set_webhook(url)
        return web.json_response({"webhook_url": url})

    async def sim_emit_status(self, request: web.Request) -> web.Response:
        body = await _json_object(request)
        if isinstance(body, web.Response):
            return body
        city_order_no = request.match_info["city_order_no"]
        if city_order_no not in self._orders:
            return _rest_error(404, f"no order {city_order_no}")
        kind, data = body.get("kind"), body.get("data")
        if kind not in STATUS_KINDS or (data is not None and not isinstance(data, dict)):
            return _rest_error(400, f"kind must be one of {sorted(STATUS_KINDS)}, data an object")
        event = self.emit_status(city_order_no, kind, data)
        return web.json_response({"event_id": event.event_id, "city_seq": event.city_seq})


SIMULATOR = web.AppKey("city_simulator", CitySimulator)


def build_simulator(config: SimulatorConfig) -> web.Application:
    """The simulator as an aiohttp application; its state is ``app[SIMULATOR]``."""
    simulator = CitySimulator(config)
    app = web.Application(middlewares=[simulator.faults_middleware])
    app[SIMULATOR] = simulator

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await simulator.start()
        yield
        await simulator.close()

    async def release_hangs(app: web.Application) -> None:
        simulator.release_hangs()

    app.cleanup_ctx.append(lifecycle)
    app.on_shutdown.append(release_hangs)
    router = app.router
    router.add_post("/api/v1/orders", simulator.rest_create)
    router.add_get("/api/v1/orders", simulator.rest_orders)
    router.add_post("/api/v1/orders/{city_order_no}/events", simulator.rest_event)
    router.add_post("/v2/order/create", simulator.polling_create)
    router.add_get("/v2/order/query", simulator.polling_query)
    router.add_get("/v2/order/list", simulator.polling_list)
    router.add_post("/v2/order/{city_no}/{action}", simulator.polling_action)
    router.add_get("/sim/state", simulator.sim_state)
    router.add_get("/sim/faults", simulator.sim_get_faults)
    router.add_post("/sim/faults", simulator.sim_set_faults)
    router.add_post("/sim/webhook", simulator.sim_set_webhook)
    router.add_post("/sim/orders/{city_order_no}/status", simulator.sim_emit_status)
    return app


async def run_simulator(
    host: str, port: int, config: SimulatorConfig, *, stop: asyncio.Event | None = None
) -> None:
    """Serve the simulator on *host*:*port* until *stop* is set or the task is
    cancelled (what ``hotline city-sim`` runs)."""
    app = build_simulator(config)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        log.info(
            "city 12345 simulator on http://%s:%d (reference protocol /api/v1, polling /v2)",
            host,
            port,
        )
        await (stop or asyncio.Event()).wait()
    finally:
        await runner.cleanup()


# -- wire helpers ------------------------------------------------------------


def _json_dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _error(request: web.Request, status: int, reason: str) -> web.Response:
    if request.path.startswith("/v2/"):
        return _polling_error(status, status, reason)
    return _rest_error(status, reason)


def _rest_error(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status, dumps=_json_dumps)


def _rest_order(order: SimOrder) -> dict[str, Any]:
    return {
        "city_order_no": order.city_order_no,
        "order_no": order.order_no,
        "created_at": order.created_at.isoformat(),
    }


def _rest_message(body: bytes) -> dict[str, Any] | web.Response:
    """The outbound message of the reference protocol, or a 400."""
    try:
        message = json.loads(body)
    except ValueError:
        return _rest_error(400, "body is not JSON")
    if not isinstance(message, dict):
        return _rest_error(400, "body is not a JSON object")
    order_no, seq, kind = message.get("order_no"), message.get("seq"), message.get("kind")
    if not isinstance(order_no, str) or not order_no:
        return _rest_error(400, "order_no must be a non-empty string")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        return _rest_error(400, "seq must be an integer >= 1")
    if kind not in OUTBOUND_KINDS:
        return _rest_error(400, f"kind must be one of {sorted(OUTBOUND_KINDS)}")
    if not isinstance(message.get("payload", {}), dict):
        return _rest_error(400, "payload must be an object")
    message.setdefault("payload", {})
    return message


def _message_hash(message: Mapping[str, Any]) -> str:
    """What must be equal for a repeated key to be the same message: order,
    kind, seq and payload, whatever the key order of the JSON."""
    canonical = json.dumps(
        {k: message.get(k) for k in ("order_no", "kind", "seq", "payload")},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _polling_ok(data: Any) -> web.Response:
    return web.json_response({"code": 0, "msg": "成功", "data": data}, dumps=_json_dumps)


def _polling_error(status: int, code: int, msg: str) -> web.Response:
    return web.json_response(
        {"code": code, "msg": msg, "data": None}, status=status, dumps=_json_dumps
    )


async def _polling_body(request: web.Request) -> dict[str, Any] | web.Response:
    body = await _json_object(request, error=lambda r: _polling_error(400, 40000, r))
    if isinstance(body, web.Response):
        return body
    local_id, seq = body.get("localId"), body.get("localSeq")
    if not isinstance(local_id, str) or not local_id:
        return _polling_error(400, 40000, "localId must be a non-empty string")
    if seq is not None and (not isinstance(seq, int) or isinstance(seq, bool)):
        return _polling_error(400, 40000, "localSeq must be an integer")
    if not isinstance(body.get("form", {}), dict):
        return _polling_error(400, 40000, "form must be an object")
    return body


async def _json_object(
    request: web.Request, *, error: Callable[[str], web.Response] | None = None
) -> dict[str, Any] | web.Response:
    fail = error or (lambda reason: _rest_error(400, reason))
    try:
        body = json.loads(await request.read() or b"{}")
    except ValueError:
        return fail("body is not JSON")
    if not isinstance(body, dict):
        return fail("body is not a JSON object")
    return body


def _page(request: web.Request, items: list[Any]) -> tuple[list[Any], int] | web.Response:
    try:
        page = int(request.query.get("page", "1"))
        size = int(request.query.get("size", "20"))
    except ValueError:
        return _polling_error(400, 40000, "page and size must be integers")
    if page < 1 or not 1 <= size <= _MAX_PAGE_SIZE:
        return _polling_error(400, 40000, f"page >= 1 and size within 1..{_MAX_PAGE_SIZE}")
    return items[(page - 1) * size : page * size], len(items)
