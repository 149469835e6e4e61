"""The live ACD snapshot in Redis, and pub/sub fan-out of live events.

Dashboards and standby engines read ``{prefix}:snapshot`` (JSON) and its
time ``{prefix}:snapshot:at`` (epoch seconds), and subscribe to
``{prefix}:events`` for ``{"kind", "at", "payload"}`` messages.

The engine's calls never wait on Redis: ``set_snapshot`` only replaces the
latest snapshot (the newest wins, written at most every ``min_interval_s``)
and ``publish`` only appends to a bounded buffer; one owned background task
does the I/O, through the process's Redis client, and retries with backoff
while Redis is away. Pub/sub is best
effort by nature (a subscriber that is not connected misses messages): when
the buffer is full the oldest message is dropped with a counted warning, and
a batch resent after a connection error may be seen twice. The durable
record is the event log (acd/event_log.py), not this.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from common.backoff import Backoff, retry_forever

log = logging.getLogger(__name__)

__all__ = ["SnapshotStore", "SnapshotStoreStats"]

_PUBLISH_CHUNK = 500


@dataclass(frozen=True)
class SnapshotStoreStats:
    """Counters of one store since it was created."""

    snapshots_written: int
    published: int
    dropped: int
    """Messages dropped because the buffer was full (Redis away for long)."""
    errors: int
    """Failed Redis round trips (each followed by a backoff) and unencodable values."""
    buffered: int
    overflows: int
    """Times the pub/sub buffer filled up and began dropping the oldest."""
    outages: int
    """Times the round trips to Redis started to fail."""
    recoveries: int
    """Outages that ended with a successful round trip."""
    last_error: str | None


class SnapshotStore:
    """Writes the latest snapshot and publishes events to Redis; see the module docstring.

    *client* belongs to the caller, who closes it after ``close``. The store
    retries and logs by itself, and bounds each round trip by *timeout_s*
    whatever the client's own settings; a client without retries of its own
    (``retry=Retry(NoBackoff(), 0)``) and with socket timeouts notices an
    outage, and its end, soonest.
    """

    def __init__(
        self,
        *,
        client: aioredis.Redis,
        prefix: str = "hotline",
        backoff: Backoff | None = None,
        min_interval_s: float = 0.2,
        max_buffered: int = 10_000,
        timeout_s: float = 5.0,
    ) -> None:
        if min_interval_s < 0:
            raise ValueError(f"min_interval_s must be >= 0, got {min_interval_s!r}")
        if max_buffered < 1:
            raise ValueError(f"max_buffered must be >= 1, got {max_buffered!r}")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")
        self._client = client
        self.snapshot_key = f"{prefix}:snapshot"
        self.snapshot_at_key = f"{prefix}:snapshot:at"
        self.channel = f"{prefix}:events"
        self._backoff = backoff or Backoff(base_s=0.2, cap_s=5.0)
        self._min_interval_s = min_interval_s
        self._max_buffered = max_buffered
        self._timeout_s = timeout_s

        self._snapshot: Mapping[str, Any] | None = None
        self._snapshot_version = 0
        self._written_version = 0
        self._last_write = float("-inf")  # loop time of the last snapshot write

        self._outbox: deque[tuple[int, str]] = deque()  # (sequence, JSON message)
        self._next_seq = 1
        self._dropping = False

        self._snapshots_written = 0
        self._published = 0
        self._dropped = 0
        self._dropped_this_episode = 0
        self._overflows = 0
        self._errors = 0
        self._outages = 0
        self._recoveries = 0
        self._last_error: str | None = None
        self._outage_started: float | None = None
        self._outage_logged_error: str | None = None

        self._wakeup = asyncio.Event()
        self._progress = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def stats(self) -> SnapshotStoreStats:
        """A snapshot of the counters."""
        return SnapshotStoreStats(
            snapshots_written=self._snapshots_written,
            published=self._published,
            dropped=self._dropped,
            errors=self._errors,
            buffered=len(self._outbox),
            overflows=self._overflows,
            outages=self._outages,
            recoveries=self._recoveries,
            last_error=self._last_error,
        )

    @property
    def healthy(self) -> bool:
        """False from a failed round trip to Redis until the next successful one."""
        return self._outage_started is None

    @property
    def dropping(self) -> bool:
        """True from the first message dropped from a full buffer until the buffer drains."""
        return self._dropping

    async def start(self) -> None:
        """Start the writer task (it connects lazily and keeps retrying)."""
        if self._task is not None:
            raise RuntimeError("SnapshotStore already started")
        self._task = asyncio.create_task(self._run(), name=f"snapshot-store:{self.channel}")
        self._task.add_done_callback(self._task_done)

    async def close(self, *, flush_timeout_s: float = 2.0) -> None:
        """Send what can be sent in *flush_timeout_s*, stop the task. Idempotent.

        The client is left open: it belongs to the caller.
        """
        if self._closed:
            return
        self._closed = True
        if self._task is not None and not self._task.done():
            try:
                await self.wait_idle(flush_timeout_s)
            except TimeoutError:
                log.warning(
                    "snapshot store: closing with %d pub/sub messages unsent and the "
                    "latest snapshot %s",
                    len(self._outbox),
                    "unwritten" if self._written_version < self._snapshot_version else "written",
                )
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise

    def set_snapshot(self, snapshot: Mapping[str, Any]) -> None:
        """Make *snapshot* the one to write next; never blocks.

        Only the newest snapshot is written (coalesced), as JSON, at most every
        ``min_interval_s``. It is encoded when written: pass a mapping that is
        not mutated afterwards.
        """
        self._snapshot = snapshot
        self._snapshot_version += 1
        self._wakeup.set()

    def publish(self, kind: str, payload: Mapping[str, Any]) -> None:
        """Queue ``{"kind", "at", "payload"}`` for ``PUBLISH`` on the events channel, in order."""
        try:
            message = json.dumps(
                {"kind": kind, "at": time.time(), "payload": payload},
                ensure_ascii=False,
                default=str,
            )
        except (TypeError, ValueError) as exc:
            self._errors += 1
            log.error("snapshot store: %s payload cannot be encoded as JSON: %s", kind, exc)
            return
        if len(self._outbox) >= self._max_buffered:
            self._outbox.popleft()
            self._dropped += 1
            self._dropped_this_episode += 1
            if not self._dropping:
                self._dropping = True
                self._overflows += 1
                log.warning(
                    "snapshot store: pub/sub buffer full (%d messages; Redis slow or "
                    "unreachable): dropping the oldest, counted in stats.dropped (the event "
                    "log keeps the durable record)",
                    self._max_buffered,
                )
        self._outbox.append((self._next_seq, message))
        self._next_seq += 1
        self._wakeup.set()

    async def wait_idle(self, timeout_s: float = 5.0) -> None:
        """Until every message published and the snapshot set before this call are in Redis.

        Messages dropped from a full buffer count as done. ``TimeoutError`` otherwise.
        """
        pub_target = self._next_seq - 1
        snap_target = self._snapshot_version
        async with asyncio.timeout(timeout_s):
            while not (
                (not self._outbox or self._outbox[0][0] > pub_target)
                and self._written_version >= snap_target
            ):
                self._progress.clear()
                await self._progress.wait()

    async def read_snapshot(self) -> dict[str, Any] | None:
        """The stored snapshot, or ``None`` when there is none (raises if Redis is down)."""
        raw = await cast(Awaitable[bytes | None], self._client.get(self.snapshot_key))
        if raw is None:
            return None
        value = json.loads(raw)
        return value if isinstance(value, dict) else {"value": value}

    # --------------------------------------------------------- background

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("snapshot store task died", exc_info=task.exception())

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                await self._wait_for_work()
                await retry_forever(
                    self._flush_once, backoff=self._backoff, on_failure=self._on_failure
                )
            except Exception:
                # Redis faults are retried inside; only a bug lands here.
                failures += 1
                log.exception("snapshot store: unexpected error; resuming")
                await asyncio.sleep(self._backoff.compute(failures))

    def _snapshot_due_in(self) -> float | None:
        """Seconds until the pending snapshot may be written; ``None`` if none pends."""
        if self._snapshot_version <= self._written_version:
            return None
        loop = asyncio.get_running_loop()
        return max(0.0, self._last_write + self._min_interval_s - loop.time())

    async def _wait_for_work(self) -> None:
        while True:
            if self._outbox:
                return
            due_in = self._snapshot_due_in()
            if due_in == 0.0:
                return
            self._wakeup.clear()
            if due_in is None:
                await self._wakeup.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), due_in)

    async def _flush_once(self) -> None:
        client = self._client
        while self._outbox:
            chunk = list(islice(self._outbox, _PUBLISH_CHUNK))
            async with client.pipeline(transaction=False) as pipe:
                for _, message in chunk:
                    pipe.publish(self.channel, message)
                await self._round_trip(pipe)
            # publish() may have dropped the oldest meanwhile: pop by sequence, not count.
            last_seq = chunk[-1][0]
            while self._outbox and self._outbox[0][0] <= last_seq:
                self._outbox.popleft()
            self._published += len(chunk)
            self._progress.set()
        if self._dropping:
            log.warning(
                "snapshot store: pub/sub buffer drained; %d messages were dropped",
                self._dropped_this_episode,
            )
            self._dropping = False
            self._dropped_this_episode = 0
        if self._snapshot_due_in() == 0.0:
            await self._write_snapshot(client)
        self._recovered()

    async def _write_snapshot(self, client: aioredis.Redis) -> None:
        version = self._snapshot_version
        try:
            data = json.dumps(self._snapshot, ensure_ascii=False, default=str)
        except (TypeError, ValueError) as exc:
            self._errors += 1
            log.error("snapshot store: snapshot cannot be encoded as JSON, skipped: %s", exc)
            self._written_version = version
            return
        at = time.time()
        async with client.pipeline(transaction=True) as pipe:
            pipe.set(self.snapshot_key, data)
            pipe.set(self.snapshot_at_key, repr(at))
            await self._round_trip(pipe)
        self._written_version = version
        self._last_write = asyncio.get_running_loop().time()
        self._snapshots_written += 1
        self._progress.set()

    async def _round_trip(self, pipe: Pipeline) -> None:
        # The client's own socket timeouts and retries are its owner's choice;
        # a round trip that hangs must not stall the store whatever they are.
        async with asyncio.timeout(self._timeout_s):
            await pipe.execute()

    def _recovered(self) -> None:
        if self._outage_started is None:
            return
        self._recoveries += 1
        log.warning(
            "snapshot store: Redis at %s reachable again after %.1f s",
            self._where(),
            asyncio.get_running_loop().time() - self._outage_started,
        )
        self._outage_started = None
        self._outage_logged_error = None

    def _on_failure(self, failures: int, exc: BaseException, delay_s: float) -> None:
        self._errors += 1
        error = f"{type(exc).__name__}: {exc}"
        self._last_error = error
        if self._outage_started is None:
            self._outages += 1
            self._outage_started = asyncio.get_running_loop().time()
        if error == self._outage_logged_error:
            log.debug("snapshot store: attempt %d failed (%s)", failures, error)
            return
        self._outage_logged_error = error
        log.error(
            "snapshot store: cannot write to Redis at %s (%s); dashboards and replicas see "
            "a stale snapshot. Routing is unaffected; retrying with backoff (next in %.1f s); "
            "up to %d pub/sub messages are kept. Check that Redis runs and HOTLINE_REDIS_URL.",
            self._where(),
            error,
            delay_s,
            self._max_buffered,
        )

    def _where(self) -> str:
        # host:port/db, or the socket path; never the password
        kwargs = self._client.connection_pool.connection_kwargs
        if "path" in kwargs:
            return f"{kwargs['path']}/{kwargs.get('db', 0)}"
        return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"
