"""The live snapshot and pub/sub on a real private Redis, through a shared
client the store does not own: coalesced writes at a bounded rate, ordered
publishing, recovery after Redis restarts, and callers that never wait."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from acd.snapshot_store import SnapshotStore
from common.backoff import Backoff
from cti.stack.redis import PrivateRedis
from tests.waiting import eventually

pytestmark = pytest.mark.integration

FAST = Backoff(base_s=0.02, cap_s=0.2, jitter=0.5)


@pytest_asyncio.fixture
async def redis_server() -> AsyncIterator[PrivateRedis]:
    run_dir = Path(tempfile.mkdtemp(prefix="hotline-snap-"))
    server = PrivateRedis(run_dir)
    try:
        await server.start()
        yield server
    finally:
        await server.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


@pytest_asyncio.fixture
async def client(redis_server: PrivateRedis) -> AsyncIterator[aioredis.Redis]:
    """The process's one client, without retries of its own (the store retries
    and logs, and each failed round trip shows in its stats) and with short
    socket timeouts."""
    shared = aioredis.from_url(
        redis_server.url,
        socket_timeout=2.0,
        socket_connect_timeout=2.0,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        yield shared
    finally:
        await shared.aclose()


class Subscriber:
    """A dashboard: subscribed to the events channel before anything is published."""

    def __init__(self, url: str, channel: str) -> None:
        self.client = aioredis.from_url(url)
        self.pubsub = self.client.pubsub()
        self.channel = channel

    async def __aenter__(self) -> Subscriber:
        await self.pubsub.subscribe(self.channel)
        confirm = await self.pubsub.get_message(timeout=5.0)
        assert confirm is not None and confirm["type"] == "subscribe"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.pubsub.aclose()
        await self.client.aclose()

    async def messages(
        self,
        count: int | None = None,
        *,
        until: Callable[[dict], bool] | None = None,
        timeout_s: float = 10.0,
    ) -> list[dict]:
        """The next *count* messages, or those up to the first matching *until*."""
        got: list[dict] = []
        async with asyncio.timeout(timeout_s):
            while (len(got) < count) if count is not None else not (got and until(got[-1])):
                message = await self.pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=timeout_s
                )
                if message is not None:
                    got.append(json.loads(message["data"]))
        return got


async def test_the_latest_snapshot_wins_and_is_written_at_a_bounded_rate(client):
    store = SnapshotStore(client=client, prefix="t1", backoff=FAST, min_interval_s=0.2)
    await store.start()
    try:
        assert await store.read_snapshot() is None
        for n in range(1000):  # a burst: coalesced, nothing waits
            store.set_snapshot({"n": n, "queues": {"Q1": {"waiting": n % 7}}})
        await store.wait_idle()
        assert await store.read_snapshot() == {"n": 999, "queues": {"Q1": {"waiting": 999 % 7}}}
        assert store.stats.snapshots_written <= 2

        # A steady stream for ~0.6 s: at most one write per 0.2 s (plus the edges).
        before = store.stats.snapshots_written
        started = time.monotonic()
        n = 0
        while time.monotonic() - started < 0.6:
            n += 1
            store.set_snapshot({"n": 1000 + n})
            await asyncio.sleep(0.005)  # pacing the producer, not synchronising
        elapsed = time.monotonic() - started
        await store.wait_idle()
        written = store.stats.snapshots_written - before
        assert n > 50
        assert 2 <= written <= elapsed / 0.2 + 2
        assert await store.read_snapshot() == {"n": 1000 + n}

        at = float(await client.get("t1:snapshot:at"))
        assert abs(time.time() - at) < 5
    finally:
        await store.close()
    # The client belongs to its owner: closing the store leaves it usable.
    assert await client.ping() is True


async def test_published_events_reach_a_subscriber_in_order(redis_server, client):
    store = SnapshotStore(client=client, prefix="t2", backoff=FAST)
    await store.start()
    try:
        async with Subscriber(redis_server.url, "t2:events") as dashboard:
            for n in range(700):  # more than one pipeline chunk
                store.publish("CALL_QUEUED", {"call_id": f"c{n}", "queue": "投诉"})
            got = await dashboard.messages(700)
        # The subscriber can read the last chunk before the store reads Redis's reply.
        await store.wait_idle()
        assert [m["payload"]["call_id"] for m in got] == [f"c{n}" for n in range(700)]
        assert got[0]["kind"] == "CALL_QUEUED" and got[0]["payload"]["queue"] == "投诉"
        assert isinstance(got[0]["at"], float)
        assert store.stats.published == 700 and store.stats.dropped == 0
    finally:
        await store.close()


async def test_a_full_buffer_drops_the_oldest_and_counts_them(redis_server, client):
    store = SnapshotStore(client=client, prefix="t3", backoff=FAST, max_buffered=10)
    await store.start()
    try:
        async with Subscriber(redis_server.url, "t3:events") as dashboard:
            for n in range(25):  # synchronous: the writer cannot run in between
                store.publish("TICK", {"n": n})
            assert store.stats.dropped == 15 and store.stats.buffered == 10
            # One overflow episode, however many messages it dropped.
            assert store.dropping and store.stats.overflows == 1
            got = await dashboard.messages(10)
        assert [m["payload"]["n"] for m in got] == list(range(15, 25))
        await store.wait_idle()
        # Drained: the episode is over; the count stays.
        assert not store.dropping
        assert (store.stats.overflows, store.stats.dropped, store.stats.published) == (1, 15, 10)
    finally:
        await store.close()


async def test_redis_restarted_on_the_same_port_the_store_recovers_by_itself(
    redis_server, client, caplog
):
    store = SnapshotStore(client=client, prefix="t4", backoff=FAST, min_interval_s=0.05)
    await store.start()
    try:
        store.set_snapshot({"version": 1})
        await store.wait_idle()
        assert store.healthy and store.stats.outages == 0
        port = redis_server.port

        await redis_server.stop()
        for n in range(2, 50):
            store.set_snapshot({"version": n})  # returns: callers never wait on Redis
            store.publish("AGENT_STATE", {"n": n})
        assert store.stats.buffered == 48
        await eventually(lambda: store.stats.errors >= 3)
        assert not store.healthy
        assert (store.stats.outages, store.stats.recoveries) == (1, 0)
        with pytest.raises(TimeoutError):
            await store.wait_idle(timeout_s=0.3)  # a negative check: bounded on purpose

        await redis_server.start()  # same port; Redis keeps nothing on disk
        assert redis_server.port == port
        async with Subscriber(redis_server.url, "t4:events") as dashboard:
            store.publish("AGENT_STATE", {"n": 50})
            await store.wait_idle(timeout_s=10)
            assert await store.read_snapshot() == {"version": 49}
            got = await dashboard.messages(until=lambda m: m["payload"]["n"] == 50)
            # It joined after the restart, so it may or may not catch the tail of
            # the backlog, but what it sees is in order and ends with the new one.
            seen = [m["payload"]["n"] for m in got]
            assert seen == sorted(seen) and seen[-1] == 50
        assert store.stats.buffered == 0 and store.stats.published == 49
        # One outage and one recovery, however many failed round trips.
        assert store.healthy
        assert (store.stats.outages, store.stats.recoveries) == (1, 1)
        # An error is logged when it changes during the outage, not once per retry.
        errors_logged = [
            r
            for r in caplog.records
            if r.name == "acd.snapshot_store" and r.levelno == logging.ERROR
        ]
        assert 1 <= len(errors_logged) < store.stats.errors
    finally:
        await store.close()


async def test_with_a_client_left_at_redis_py_defaults_the_store_recovers_too(redis_server):
    # As cti/runtime.py makes it: redis-py retries inside each command first.
    client = aioredis.from_url(redis_server.url)
    store = SnapshotStore(client=client, prefix="t5", backoff=FAST, min_interval_s=0.05)
    await store.start()
    try:
        store.set_snapshot({"version": 1})
        await store.wait_idle()

        await redis_server.stop()
        store.set_snapshot({"version": 2})
        await eventually(lambda: not store.healthy, timeout_s=30)

        await redis_server.start()
        await store.wait_idle(timeout_s=30)
        assert store.healthy and await store.read_snapshot() == {"version": 2}
        assert (store.stats.outages, store.stats.recoveries) == (1, 1)
    finally:
        await store.close()
        await client.aclose()
