"""The city adapter contract: both adapters (the signed REST + webhook
reference protocol and the polling one) against the city 12345 simulator,
served on port 0 in this process. Then what only one style has: the REST
idempotency window and webhooks, the polling list's paging and cursor."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import BaseTestServer, TestServer

from common.backoff import Backoff
from tests.waiting import eventually
from workorder_sync.city.base import (
    CityAdapter,
    CityEvent,
    CityProtocolError,
    CityRejected,
    CityUnavailable,
    Delivered,
    StatusEvent,
    error_for_status,
)
from workorder_sync.city.polling import PollingCityAdapter, decode_cursor
from workorder_sync.city.rest import (
    MalformedWebhook,
    RestCityAdapter,
    parse_webhook,
    webhook_body,
)
from workorder_sync.city.signing import InMemoryNonceStore, SignatureError, Verifier
from workorder_sync.city.simulator import (
    SIMULATOR,
    CitySimulator,
    SimulatorConfig,
    build_simulator,
)

pytestmark = pytest.mark.integration

APP_KEY = "district"
SECRET = b"district-secret"
TOKEN = "sim-token"
START = datetime(2026, 12, 7, 2, 0, 0, tzinfo=UTC)  # 10:00 in Shanghai
CITY_DAY = date(2026, 12, 7)
CITY_NO = re.compile(r"SZ20261207\d{5}")
PROGRESS = ("DISPATCHED", "SIGNED", "REPLIED", "CLOSED")


class FakeClock:
    """The city's business time, moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class WebhookInbox:
    """The district's side of the webhook, as the feature will have it:
    verify the city's signature, parse, store, answer 204."""

    fail_next: int = 0
    events: list[StatusEvent] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    verifier: Verifier = field(
        default_factory=lambda: Verifier({"city12345": b"city-secret"}, nonces=InMemoryNonceStore())
    )

    async def receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.fail_next:
            self.fail_next -= 1
            return web.json_response({"error": "district busy"}, status=500)
        try:
            await self.verifier.verify(
                request.method, request.raw_path, request.headers, body, now=int(time.time())
            )
            events = parse_webhook(body)
        except (SignatureError, MalformedWebhook) as exc:
            self.refusals.append(str(exc))
            return web.json_response({"error": str(exc)}, status=400)
        self.events.extend(events)
        return web.Response(status=204)


@dataclass
class City:
    """One simulated city with one adapter on it."""

    kind: str
    sim: CitySimulator
    adapter: CityAdapter
    server: BaseTestServer
    session: aiohttp.ClientSession
    clock: FakeClock
    inbox: WebhookInbox

    def make_adapter(self, **options: Any) -> CityAdapter:
        return make_adapter(self.kind, str(self.server.make_url("/")), self.session, **options)

    async def status_events(self, count: int, timeout_s: float = 5.0) -> list[StatusEvent]:
        """The first *count* distinct status events that reached the district:
        by webhook (REST) or by pulling (polling)."""
        if self.kind == "rest":
            await eventually(
                lambda: len({e.event_id for e in self.inbox.events}) >= count, timeout_s
            )
            unique = {e.event_id: e for e in self.inbox.events}
            return list(unique.values())
        found: list[StatusEvent] = []
        cursor = None
        async with asyncio.timeout(timeout_s):
            while len(found) < count:
                events, cursor = await self.adapter.pull(cursor, until=self.clock())
                found.extend(events)
                if len(found) < count:
                    await asyncio.sleep(0.02)  # polling is the protocol
        return found


def make_adapter(
    kind: str,
    base_url: str,
    session: aiohttp.ClientSession,
    *,
    timeout_s: float = 2.0,
    page_size: int = 100,
    secret: bytes = SECRET,
    token: str = TOKEN,
    clock: Callable[[], float] = time.time,
) -> CityAdapter:
    if kind == "rest":
        return RestCityAdapter(
            base_url,
            APP_KEY,
            secret,
            session,
            timeout_s=timeout_s,
            list_page_size=page_size,
            clock=clock,
        )
    return PollingCityAdapter(base_url, token, session, timeout_s=timeout_s, page_size=page_size)


@contextlib.asynccontextmanager
async def running_city(
    kind: str, *, adapter: dict[str, Any] | None = None, **config: Any
) -> AsyncIterator[City]:
    clock = FakeClock(START)
    inbox = WebhookInbox()
    hooks = web.Application()
    hooks.router.add_post("/hooks/city", inbox.receive)
    async with TestServer(hooks) as hook_server:
        settings: dict[str, Any] = {
            "clock": clock,
            "auto_progress": False,
            "hang_s": 30.0,
            "webhook_url": str(hook_server.make_url("/hooks/city")),
            "webhook_backoff": Backoff(base_s=0.01, cap_s=0.05, jitter=0),
        }
        settings.update(config)
        app = build_simulator(SimulatorConfig(**settings))
        async with TestServer(app) as server, aiohttp.ClientSession() as session:
            yield City(
                kind=kind,
                sim=app[SIMULATOR],
                adapter=make_adapter(kind, str(server.make_url("/")), session, **(adapter or {})),
                server=server,
                session=session,
                clock=clock,
                inbox=inbox,
            )


@pytest.fixture(params=["rest", "polling"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def event(
    order_no: str, seq: int, kind: str, city_order_no: str | None = None, **payload: Any
) -> CityEvent:
    return CityEvent.new(
        order_no,
        seq,
        kind,
        payload or {"title": "小区噪音扰民", "appeal_type": "COMPLAINT"},
        created_at=START,
        city_order_no=city_order_no,
    )


# -- the contract: both adapters -----------------------------------------------


async def test_create_assigns_a_city_number(kind):
    async with running_city(kind) as city:
        delivered = await city.adapter.deliver(event("WO-20261207-0001", 1, "CREATE"))
        assert delivered.duplicate is False
        assert delivered.city_order_no is not None
        assert CITY_NO.fullmatch(delivered.city_order_no)
        assert city.sim.created_count("WO-20261207-0001") == 1
        assert await city.adapter.lookup("WO-20261207-0001") == delivered.city_order_no
        assert await city.adapter.lookup("WO-20261207-9999") is None


async def test_a_repeated_delivery_is_one_order_with_one_number(kind):
    async with running_city(kind) as city:
        create = event("WO-20261207-0001", 1, "CREATE")
        first = await city.adapter.deliver(create)
        again = await city.adapter.deliver(create)
        assert again == Delivered(first.city_order_no, duplicate=True)
        assert city.sim.created_count("WO-20261207-0001") == 1
        assert [r.kind for r in city.sim.received("WO-20261207-0001")] == ["CREATE"]


async def test_the_events_of_an_order_arrive_in_order(kind):
    async with running_city(kind) as city:
        order_no = "WO-20261207-0002"
        city_no = (await city.adapter.deliver(event(order_no, 1, "CREATE"))).city_order_no
        kinds = ["UPDATE", "DISPATCH", "SIGN", "EXTENSION_APPLY", "REPLY", "CLOSE", "REOPEN"]
        for seq, later in enumerate(kinds, start=2):
            delivered = await city.adapter.deliver(event(order_no, seq, later, city_no))
            assert delivered == Delivered(city_no, duplicate=False)
        received = city.sim.received(order_no)
        assert [(r.kind, r.seq) for r in received] == list(
            zip(["CREATE", *kinds], range(1, 9), strict=True)
        )
        assert {r.city_order_no for r in received} == {city_no}
        assert city.sim.sequence_violations == []


async def test_an_event_without_a_city_number_is_refused_before_sending(kind):
    async with running_city(kind) as city:
        with pytest.raises(ValueError, match="deliver its CREATE first"):
            await city.adapter.deliver(event("WO-20261207-0003", 2, "UPDATE"))
        assert city.sim.counters["requests"] == 0


async def test_a_rejected_order_is_city_rejected_and_the_others_go_through(kind):
    async with running_city(kind) as city:
        city.sim.set_faults(reject_rate=1.0, reject_pattern="POISON")
        with pytest.raises(CityRejected) as rejected:
            await city.adapter.deliver(event("WO-POISON-0001", 1, "CREATE"))
        assert rejected.value.status == 400
        assert "WO-POISON-0001" in rejected.value.reason
        assert city.sim.created_count("WO-POISON-0001") == 0
        fine = await city.adapter.deliver(event("WO-20261207-0004", 1, "CREATE"))
        assert fine.duplicate is False


async def test_a_rejected_later_event_is_city_rejected(kind):
    async with running_city(kind) as city:
        city_no = (await city.adapter.deliver(event("WO-POISON-0002", 1, "CREATE"))).city_order_no
        city.sim.set_faults(reject_rate=1.0, reject_pattern="POISON", reject_status=422)
        with pytest.raises(CityRejected) as rejected:
            await city.adapter.deliver(event("WO-POISON-0002", 2, "REPLY", city_no))
        assert rejected.value.status == 422


async def test_a_server_error_is_city_unavailable(kind):
    async with running_city(kind) as city:
        city.sim.set_faults(error_rate=1.0)
        with pytest.raises(CityUnavailable) as unavailable:
            await city.adapter.deliver(event("WO-20261207-0005", 1, "CREATE"))
        assert unavailable.value.status == 500
        assert city.sim.created_count("WO-20261207-0005") == 0


async def test_a_hanging_city_is_unavailable_after_the_timeout(kind):
    async with running_city(kind, adapter={"timeout_s": 0.3}) as city:
        city.sim.set_faults(timeout_rate=1.0)
        started = time.monotonic()
        with pytest.raises(CityUnavailable, match=r"no answer within 0\.3 s"):
            await city.adapter.deliver(event("WO-20261207-0006", 1, "CREATE"))
        assert time.monotonic() - started < 2.0
        assert city.sim.created_count("WO-20261207-0006") == 0


@pytest.mark.parametrize("mode", ["refuse", "503"])
async def test_a_city_down_is_unavailable_then_back(kind, mode):
    async with running_city(kind) as city:
        city.sim.go_down(60, mode=mode)
        with pytest.raises(CityUnavailable) as unavailable:
            await city.adapter.deliver(event("WO-20261207-0007", 1, "CREATE"))
        assert unavailable.value.status == (None if mode == "refuse" else 503)
        city.sim.come_up()
        delivered = await city.adapter.deliver(event("WO-20261207-0007", 1, "CREATE"))
        assert delivered.duplicate is False
        assert city.sim.created_count("WO-20261207-0007") == 1


async def test_a_down_window_ends_by_itself(kind):
    async with running_city(kind) as city:
        city.sim.go_down(0.2, mode="503")
        with pytest.raises(CityUnavailable):
            await city.adapter.deliver(event("WO-20261207-0008", 1, "CREATE"))
        await asyncio.sleep(0.25)
        assert (await city.adapter.deliver(event("WO-20261207-0008", 1, "CREATE"))).city_order_no


@pytest.mark.parametrize("lost_ack_mode", ["502", "timeout"])
async def test_a_lost_answer_then_a_retry_is_still_one_order(kind, lost_ack_mode):
    async with running_city(kind, adapter={"timeout_s": 0.3}) as city:
        create = event("WO-20261207-0009", 1, "CREATE")
        city.sim.set_faults(lost_ack_rate=1.0, lost_ack_mode=lost_ack_mode)
        with pytest.raises(CityUnavailable):
            await city.adapter.deliver(create)
        assert city.sim.created_count("WO-20261207-0009") == 1  # made, answer lost
        city.sim.set_faults(lost_ack_rate=0.0)
        retried = await city.adapter.deliver(create)
        assert retried == Delivered(city.sim.city_order_nos("WO-20261207-0009")[0], True)
        assert city.sim.created_count("WO-20261207-0009") == 1


async def test_a_lost_answer_on_a_later_event_then_a_retry(kind):
    """REST: the key makes the retry a no-op. Polling: the city has no keys,
    so the event is there twice -- at least once, never out of order."""
    async with running_city(kind) as city:
        order_no = "WO-20261207-0010"
        city_no = (await city.adapter.deliver(event(order_no, 1, "CREATE"))).city_order_no
        reply = event(order_no, 2, "REPLY", city_no)
        city.sim.set_faults(lost_ack_rate=1.0)
        with pytest.raises(CityUnavailable):
            await city.adapter.deliver(reply)
        city.sim.set_faults(lost_ack_rate=0.0)
        retried = await city.adapter.deliver(reply)
        kinds = [r.kind for r in city.sim.received(order_no)]
        if kind == "rest":
            assert retried.duplicate is True
            assert kinds == ["CREATE", "REPLY"]
        else:
            assert kinds == ["CREATE", "REPLY", "REPLY"]


async def test_a_slow_city_still_answers(kind):
    async with running_city(kind) as city:
        city.sim.set_faults(slow_ms=50)
        assert (await city.adapter.deliver(event("WO-20261207-0011", 1, "CREATE"))).city_order_no


async def test_status_events_come_back_in_order(kind):
    progress = tuple((status, 0.01) for status in PROGRESS)
    async with running_city(kind, auto_progress=True, progress=progress) as city:
        delivered = await city.adapter.deliver(event("WO-20261207-0012", 1, "CREATE"))
        events = await city.status_events(4)
        assert [(e.kind, e.city_seq) for e in events] == list(
            zip(PROGRESS, range(1, 5), strict=True)
        )
        assert {(e.city_order_no, e.order_no) for e in events} == {
            (delivered.city_order_no, "WO-20261207-0012")
        }
        assert len({e.event_id for e in events}) == 4
        assert events[0].data == {"unit": "街道办事处", "role": "MAIN"}
        assert city.inbox.refusals == []


async def test_list_orders_for_the_daily_reconciliation(kind):
    async with running_city(kind, adapter={"page_size": 2}) as city:
        expected = []
        for n in range(1, 6):
            order_no = f"WO-20261207-01{n:02d}"
            delivered = await city.adapter.deliver(event(order_no, 1, "CREATE"))
            expected.append((delivered.city_order_no, order_no))
        city.clock.advance(days=1)
        await city.adapter.deliver(event("WO-20261208-0001", 1, "CREATE"))
        assert sorted(await city.adapter.list_orders(CITY_DAY)) == sorted(expected)
        tomorrow = await city.adapter.list_orders(CITY_DAY + timedelta(days=1))
        assert [order_no for _, order_no in tomorrow] == ["WO-20261208-0001"]
        assert await city.adapter.list_orders(CITY_DAY - timedelta(days=1)) == []


async def test_faults_are_repeatable_with_the_same_seed(kind):
    async def failures(seed: int) -> list[int]:
        async with running_city(kind, seed=seed) as city:
            city.sim.set_faults(error_rate=0.5)
            failed = []
            for n in range(16):
                try:
                    await city.adapter.deliver(event(f"WO-20261207-02{n:02d}", 1, "CREATE"))
                except CityUnavailable:
                    failed.append(n)
            return failed

    first = await failures(7)
    assert 0 < len(first) < 16
    assert await failures(7) == first


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, CityRejected),
        (401, CityRejected),
        (404, CityRejected),
        (422, CityRejected),
        (408, CityUnavailable),
        (409, CityUnavailable),
        (425, CityUnavailable),
        (429, CityUnavailable),
        (500, CityUnavailable),
        (502, CityUnavailable),
        (503, CityUnavailable),
    ],
)
def test_which_http_answers_are_worth_a_retry(status, error):
    found = error_for_status(status, "because")
    assert type(found) is error
    assert found.status == status


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"<html>gateway</html>", "answer is not JSON"),
        (b"[1, 2]", "not a JSON object|no integer 'code'"),
        (
            b'{"code": 0, "data": {"records": [{"status": "LOST"}]}}',
            "no 'orders' list|no 'cityNo' string",
        ),
    ],
)
async def test_an_unreadable_answer_is_a_protocol_error(kind, answer, message):
    async def garbage(request: web.Request) -> web.Response:
        return web.Response(body=answer, content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", garbage)
    async with TestServer(app) as server, aiohttp.ClientSession() as session:
        adapter = make_adapter(kind, str(server.make_url("/")), session)
        with pytest.raises(CityProtocolError, match=message):
            await adapter.lookup("WO-1")
        assert issubclass(CityProtocolError, CityUnavailable)  # retried like an outage


async def test_polling_an_unknown_status_word_is_a_protocol_error():
    record = {
        "eventId": "e-1",
        "cityNo": "SZ1",
        "localId": "WO-1",
        "status": "TELEPORTED",
        "statusSeq": 1,
        "updateTime": "2026-12-07 10:00:00",
    }

    async def listing(request: web.Request) -> web.Response:
        return web.json_response({"code": 0, "msg": "ok", "data": {"records": [record]}})

    app = web.Application()
    app.router.add_get("/v2/order/list", listing)
    async with TestServer(app) as server, aiohttp.ClientSession() as session:
        adapter = make_adapter("polling", str(server.make_url("/")), session)
        with pytest.raises(CityProtocolError, match="unknown status 'TELEPORTED'"):
            await adapter.pull(None, until=START)


# -- the reference protocol only -----------------------------------------------


async def test_rest_after_the_dedup_window_the_city_creates_again_so_look_up_first():
    async with running_city("rest") as city:
        create = event("WO-20261207-0020", 1, "CREATE")
        first = await city.adapter.deliver(create)
        city.clock.advance(hours=23, minutes=59)
        assert (await city.adapter.deliver(create)).duplicate is True
        city.clock.advance(minutes=2)
        assert await city.adapter.lookup("WO-20261207-0020") == first.city_order_no
        second = await city.adapter.deliver(create)  # what the outbox must not do blindly
        assert second.duplicate is False
        assert second.city_order_no != first.city_order_no
        assert city.sim.created_count("WO-20261207-0020") == 2


async def test_rest_the_same_key_for_another_message_is_rejected():
    async with running_city("rest") as city:
        await city.adapter.deliver(event("WO-20261207-0021", 1, "CREATE"))
        other = CityEvent(
            order_no="WO-20261207-0021",
            seq=1,
            kind="CREATE",
            idempotency_key="WO-20261207-0021:CREATE:1",
            payload={"title": "另一个诉求"},
            city_order_no=None,
            created_at=START,
        )
        with pytest.raises(CityRejected) as rejected:
            await city.adapter.deliver(other)
        assert rejected.value.status == 422
        assert "was used for another message" in rejected.value.reason


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"secret": b"wrong-secret"}, "signature rejected: bad signature"),
        ({"clock": lambda: time.time() - 1000}, "signature rejected: stale timestamp"),
        ({"clock": lambda: time.time() + 1000}, "signature rejected: timestamp"),
    ],
    ids=["bad-secret", "stale", "future"],
)
async def test_rest_a_bad_signature_is_rejected_with_its_reason(options, reason):
    async with running_city("rest") as city:
        adapter = city.make_adapter(**options)
        with pytest.raises(CityRejected) as rejected:
            await adapter.deliver(event("WO-20261207-0022", 1, "CREATE"))
        assert rejected.value.status == 401
        assert rejected.value.reason.startswith(reason)
        assert city.sim.created_count("WO-20261207-0022") == 0


async def test_rest_unsigned_and_replayed_requests_get_401_with_a_reason():
    async with running_city("rest") as city:
        url = city.server.make_url("/api/v1/orders")
        async with city.session.post(url, json={"order_no": "WO-1"}) as response:
            assert response.status == 401
            assert (await response.json())["code"] == "missing_header"
        await city.adapter.deliver(event("WO-20261207-0023", 1, "CREATE"))
        # A client whose requests all carry one nonce: the second is a replay.
        replaying = RestCityAdapter(
            str(city.server.make_url("/")),
            APP_KEY,
            SECRET,
            city.session,
            nonce=lambda: "replayed-nonce-0001",
        )
        assert await replaying.lookup("WO-20261207-0023")
        with pytest.raises(CityRejected) as rejected:
            await replaying.lookup("WO-20261207-0023")
        assert rejected.value.status == 401
        assert "reused nonce" in rejected.value.reason
        assert city.sim.counters["signature_rejected"] == 2


async def test_rest_webhook_pushes_are_signed_and_retried_until_taken():
    progress = tuple((status, 0.0) for status in PROGRESS)
    async with running_city("rest", auto_progress=True, progress=progress) as city:
        city.inbox.fail_next = 3
        await city.adapter.deliver(event("WO-20261207-0024", 1, "CREATE"))
        events = await city.status_events(4)
        assert [e.kind for e in events] == list(PROGRESS)
        assert city.sim.counters["push_failures"] >= 3
        assert city.inbox.refusals == []
        assert city.sim.pending_pushes == 0


async def test_rest_webhook_duplicates_are_the_same_events():
    progress = tuple((status, 0.0) for status in PROGRESS)
    async with running_city("rest", auto_progress=True, progress=progress) as city:
        city.sim.set_faults(duplicate_reply_rate=1.0)
        await city.adapter.deliver(event("WO-20261207-0025", 1, "CREATE"))
        await city.status_events(4)
        await eventually(lambda: city.sim.counters["fault_duplicate_push"] >= 1)
        await eventually(lambda: len(city.inbox.events) > 4)
        ids = [e.event_id for e in city.inbox.events]
        assert len(ids) > len(set(ids)) == 4  # the district must de-duplicate by event_id


async def test_rest_pull_returns_nothing_push_does_it():
    async with running_city("rest") as city:
        assert await city.adapter.pull("c", until=START) == ([], "c")
        assert await city.adapter.pull(None, until=START) == ([], None)


def test_webhook_body_round_trips():
    events = [
        StatusEvent("SZ2026120700001", "WO-1", 1, "DISPATCHED", START, {"unit": "街道"}, "e-1"),
        StatusEvent("SZ2026120700001", None, 2, "CLOSED", START, {}, "e-2"),
    ]
    assert parse_webhook(webhook_body(events)) == events


GOOD = {
    "event_id": "e-1",
    "city_order_no": "SZ2026120700001",
    "order_no": "WO-1",
    "city_seq": 1,
    "kind": "DISPATCHED",
    "at": "2026-12-07T10:00:00+08:00",
    "data": {},
}


def one(**changes: Any) -> bytes:
    item = {**GOOD, **changes}
    return json.dumps({"events": [{k: v for k, v in item.items() if v is not ...}]}).encode()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "body is not JSON"),
        (b"{not json", "body is not JSON"),
        (b"\xff\xfe", "body is not JSON"),
        (b"[]", "body is not a JSON object"),
        (b"{}", "body has no 'events' list"),
        (b'{"events": {}}', "body has no 'events' list"),
        (b'{"events": [1]}', r"events\[0\] is not an object"),
        (one(event_id=...), r"events\[0\]\.event_id must be a string"),
        (one(event_id=""), r"events\[0\]\.event_id must be a string"),
        (one(city_order_no=7), r"events\[0\]\.city_order_no must be a string"),
        (one(order_no=5), r"events\[0\]\.order_no must be a string"),
        (one(city_seq=0), r"events\[0\]\.city_seq must be an integer >= 1"),
        (one(city_seq="1"), r"events\[0\]\.city_seq must be an integer >= 1"),
        (one(city_seq=True), r"events\[0\]\.city_seq must be an integer >= 1"),
        (one(kind="DISPATCH"), r"events\[0\]\.kind 'DISPATCH' is not one of"),
        (one(at="yesterday"), r"events\[0\]\.at must be an ISO 8601 time"),
        (one(at="2026-12-07T10:00:00"), r"events\[0\]\.at must be an ISO 8601 time"),
        (one(data=[]), r"events\[0\]\.data must be an object"),
    ],
)
def test_malformed_webhook_bodies_name_the_bad_field(body, message):
    with pytest.raises(MalformedWebhook, match=message):
        parse_webhook(body)


def test_a_webhook_may_have_no_order_no():
    (parsed,) = parse_webhook(one(order_no=None))
    assert parsed.order_no is None


# -- the polling protocol only ---------------------------------------------------


async def test_polling_the_city_creates_again_on_a_repeated_create_so_we_look_up_first():
    async with running_city("polling") as city:
        url = city.server.make_url("/v2/order/create")
        numbers = []
        for _ in range(2):
            async with city.session.post(
                url, json={"localId": "WO-20261207-0030"}, headers={"X-Session-Token": TOKEN}
            ) as response:
                numbers.append((await response.json())["data"]["cityNo"])
        assert city.sim.created_count("WO-20261207-0030") == 2
        delivered = await city.adapter.deliver(event("WO-20261207-0030", 1, "CREATE"))
        assert delivered == Delivered(numbers[0], duplicate=True)  # the oldest one
        assert city.sim.created_count("WO-20261207-0030") == 2


async def test_polling_a_bad_token_is_rejected():
    async with running_city("polling") as city:
        adapter = city.make_adapter(token="stolen")
        with pytest.raises(CityRejected) as rejected:
            await adapter.deliver(event("WO-20261207-0031", 1, "CREATE"))
        assert rejected.value.status == 401


async def test_polling_a_business_error_code_on_http_200_is_rejected():
    async def always_code_1(request: web.Request) -> web.Response:
        return web.json_response({"code": 1, "msg": "工单字段不全", "data": None})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", always_code_1)
    async with TestServer(app) as server, aiohttp.ClientSession() as session:
        adapter = make_adapter("polling", str(server.make_url("/")), session)
        with pytest.raises(CityRejected, match="code 1: 工单字段不全"):
            await adapter.lookup("WO-1")


async def polling_city_with_orders(city: City, count: int) -> list[str]:
    numbers = []
    for n in range(1, count + 1):
        delivered = await city.adapter.deliver(event(f"WO-20261207-03{n:02d}", 1, "CREATE"))
        assert delivered.city_order_no is not None
        numbers.append(delivered.city_order_no)
    return numbers


async def test_polling_pull_across_pages_with_equal_timestamps():
    async with running_city("polling", adapter={"page_size": 3}) as city:
        adapter = city.adapter
        a, b, c = await polling_city_with_orders(city, 3)
        # Seven changes in one second: they straddle the pages of three.
        for city_no, status in [
            (a, "DISPATCHED"), (b, "DISPATCHED"), (a, "SIGNED"), (c, "DISPATCHED"),
            (b, "SIGNED"), (a, "REPLIED"), (c, "SIGNED"),
        ]:  # fmt: skip
            city.sim.emit_status(city_no, status)
        events, cursor = await adapter.pull(None, until=city.clock())
        assert len(events) == 7
        assert len({e.event_id for e in events}) == 7
        for city_no in (a, b, c):
            seqs = [e.city_seq for e in events if e.city_order_no == city_no]
            assert seqs == list(range(1, len(seqs) + 1))
        assert [e.kind for e in events if e.city_order_no == a] == [
            "DISPATCHED",
            "SIGNED",
            "REPLIED",
        ]
        # Nothing new: nothing returned, however often we ask.
        assert (await adapter.pull(cursor, until=city.clock()))[0] == []
        # Two more in the very same second: exactly those two.
        city.sim.emit_status(b, "REPLIED")
        city.sim.emit_status(c, "REPLIED")
        events, cursor = await adapter.pull(cursor, until=city.clock())
        assert [(e.city_order_no, e.kind) for e in events] == [(b, "REPLIED"), (c, "REPLIED")]
        # The next second, with duplicated list records.
        city.clock.advance(seconds=1)
        city.sim.set_faults(duplicate_reply_rate=1.0)
        city.sim.emit_status(a, "CLOSED")
        events, cursor = await adapter.pull(cursor, until=city.clock())
        assert [(e.city_order_no, e.kind, e.city_seq) for e in events] == [(a, "CLOSED", 4)]
        assert city.sim.counters["fault_duplicate_record"] >= 10
        # A restarted district resumes from the persisted cursor.
        restarted = city.make_adapter(page_size=2)
        assert (await restarted.pull(cursor, until=city.clock()))[0] == []
        city.sim.emit_status(b, "CLOSED")
        events, _ = await restarted.pull(cursor, until=city.clock())
        assert [(e.city_order_no, e.kind) for e in events] == [(b, "CLOSED")]


async def test_polling_pull_stops_at_until_and_picks_up_later():
    async with running_city("polling") as city:
        (a,) = await polling_city_with_orders(city, 1)
        before = city.clock()
        city.sim.emit_status(a, "DISPATCHED")
        city.clock.advance(seconds=5)
        city.sim.emit_status(a, "SIGNED")
        events, cursor = await city.adapter.pull(None, until=before)
        assert [e.kind for e in events] == ["DISPATCHED"]
        events, cursor = await city.adapter.pull(cursor, until=city.clock())
        assert [e.kind for e in events] == ["SIGNED"]
        high, seen = decode_cursor(cursor or "")
        assert high == city.clock().replace(microsecond=0)
        assert set(seen) == {events[0].event_id}


async def test_polling_the_cursor_keeps_only_what_it_needs():
    async with running_city("polling", adapter={"page_size": 50}) as city:
        numbers = await polling_city_with_orders(city, 3)
        cursor = None
        for second in range(20):
            for city_no in numbers:
                if second < 3:
                    city.sim.emit_status(city_no, PROGRESS[second])
            city.clock.advance(seconds=1)
            _, cursor = await city.adapter.pull(cursor, until=city.clock())
        _, seen = decode_cursor(cursor or "")
        assert len(seen) == 3  # the ids of the newest second only


async def test_polling_a_malformed_cursor_is_refused():
    async with running_city("polling") as city:
        with pytest.raises(ValueError, match="malformed polling cursor"):
            await city.adapter.pull("not-a-cursor", until=START)


async def test_polling_pull_after_a_quiet_day_returns_nothing():
    async with running_city("polling") as city:
        events, cursor = await city.adapter.pull(None, until=START)
        assert events == []
        assert cursor is not None
        city.clock.advance(days=1)
        assert (await city.adapter.pull(cursor, until=city.clock()))[0] == []


# -- the simulator's control plane -----------------------------------------------


async def test_sim_faults_and_state_over_http():
    async with running_city("rest") as city:
        base = city.server.make_url
        async with city.session.post(
            base("/sim/faults"), json={"error_rate": 1.0, "slow_ms": 5}
        ) as response:
            assert response.status == 200
            assert (await response.json())["error_rate"] == 1.0
        with pytest.raises(CityUnavailable):
            await city.adapter.deliver(event("WO-20261207-0040", 1, "CREATE"))
        async with city.session.post(base("/sim/faults"), json={"error_rate": 2}) as response:
            assert response.status == 400
            assert "error_rate must be within [0, 1]" in (await response.json())["error"]
        async with city.session.post(base("/sim/faults"), json={"eror_rate": 0}) as response:
            assert response.status == 400
            assert "unknown fault option 'eror_rate'" in (await response.json())["error"]
        async with city.session.post(
            base("/sim/faults"), json={"reset": True, "down_for_s": 30, "down_mode": "503"}
        ) as response:
            assert (await response.json())["error_rate"] == 0.0
        with pytest.raises(CityUnavailable) as unavailable:
            await city.adapter.deliver(event("WO-20261207-0040", 1, "CREATE"))
        assert unavailable.value.status == 503
        async with city.session.post(base("/sim/faults"), json={"down_for_s": 0}):
            pass
        delivered = await city.adapter.deliver(event("WO-20261207-0040", 1, "CREATE"))
        async with city.session.post(
            base(f"/sim/orders/{delivered.city_order_no}/status"), json={"kind": "DISPATCHED"}
        ) as response:
            assert (await response.json())["city_seq"] == 1
        async with city.session.get(base("/sim/state")) as response:
            state = await response.json()
        assert state["created_count"] == {"WO-20261207-0040": 1}
        assert [r["kind"] for r in state["received"]["WO-20261207-0040"]] == ["CREATE"]
        assert state["orders"][0]["status"] == "DISPATCHED"
        assert state["counters"]["fault_error"] == 1
        assert state["counters"]["fault_down"] == 1
        assert state["sequence_violations"] == []
