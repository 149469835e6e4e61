"""The durable ACD event log: a writer that never delays routing, and loaders.

``EventLogWriter.append`` only puts the event on an in-memory queue; one owned
background task writes the queue to PostgreSQL (``acd_event``, migration 001)
in batches, in append order, on a connection borrowed from the process's
``asyncpg.Pool`` for each batch, retrying with backoff until each batch is
committed. Every row carries ``LogEvent.dedup_key`` and is inserted with
``ON CONFLICT (dedup_key) DO NOTHING``, so a batch resent after a lost
acknowledgement (the commit happened, the reply did not arrive) is stored
once: the log is written exactly once without a distributed transaction.

When PostgreSQL stays away long enough for more than ``max_pending`` events
to wait, the oldest are moved to a JSON-lines spill file (by a dedicated I/O
thread, fsync'd per chunk, never on the caller's path) and read back in order
before the newer ones when the database returns. ``close`` leaves whatever it
could not write in that file, and the next writer started on the same path
writes it first.

Order of the not-yet-committed events, oldest first, at any moment:
the in-flight batch, the unread part of the spill file, the memory queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import shutil
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import asyncpg

from acd.log_events import (
    AGENT_LOGIN,
    AGENT_LOGOUT,
    AGENT_PAUSED,
    AGENT_RESUMED,
    CALL_ANSWERED,
    LogEvent,
)
from common.backoff import Backoff, retry_forever
from common.db import MigrationError, apply_migrations

log = logging.getLogger(__name__)

T = TypeVar("T")

__all__ = [
    "EventLogStats",
    "EventLogWriter",
    "SupportsFetch",
    "event_from_json",
    "event_to_json",
    "load_agent_states",
    "load_repeat_callers",
    "pooled_connection",
]

# Rows go in append order: ids are drawn in the ORDER BY of the SELECT.
_INSERT_SQL = """
INSERT INTO acd_event (at, kind, call_id, line, queue, skill, agent, caller_number,
                       wait_s, talk_s, wrap_s, data, seq, dedup_key, engine_id)
SELECT to_timestamp(r.at), r.kind, r.call_id, r.line, r.queue, r.skill, r.agent,
       r.caller_number, r.wait_s, r.talk_s, r.wrap_s, r.data::jsonb, r.seq, r.dedup_key, $15
FROM unnest($1::float8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
            $7::text[], $8::text[], $9::float8[], $10::float8[], $11::float8[], $12::text[],
            $13::int4[], $14::text[]) WITH ORDINALITY
     AS r(at, kind, call_id, line, queue, skill, agent, caller_number, wait_s, talk_s,
          wrap_s, data, seq, dedup_key, ord)
ORDER BY r.ord
ON CONFLICT (dedup_key) DO NOTHING
"""

# Errors that a given row will raise however often it is retried.
_ROW_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
)


@dataclass(frozen=True)
class EventLogStats:
    """Counters of one writer since it was created."""

    written: int
    """Rows inserted."""
    retries: int
    """Failed write attempts (each followed by a backoff)."""
    pending: int
    """Events appended (or found in the spill file) and not yet committed."""
    spilled: int
    """Events moved to the spill file, in total."""
    duplicates_ignored: int
    """Rows already present (same dedup_key), skipped by ON CONFLICT."""
    rejected: int
    """Rows PostgreSQL refused for their content (logged at ERROR, dead-lettered)."""
    lost: int
    """Events known to be lost: left unwritten at ``close`` with nowhere to spill
    them, or unreadable or missing in the spill file (each logged at ERROR)."""
    outages: int
    """Times writing started to fail after working (or before it ever worked)."""
    recoveries: int
    """Outages that ended with a committed batch."""
    alarms: int
    """Times an ALARM condition began (logged): the backlog outgrew ``max_pending``
    with no spill file, or the spill file could not be written."""
    last_error: str | None


class SupportsFetch(Protocol):
    """An ``asyncpg.Connection`` or ``asyncpg.Pool``."""

    async def fetch(self, query: str, *args: Any, timeout: float | None = None) -> list[Any]: ...


def event_to_json(event: LogEvent) -> str:
    """One spill-file line (without the newline)."""
    return json.dumps(
        {
            "at": event.at,
            "kind": event.kind,
            "call_id": event.call_id,
            "line": event.line,
            "queue": event.queue,
            "skill": event.skill,
            "agent": event.agent,
            "caller_number": event.caller_number,
            "wait_s": event.wait_s,
            "talk_s": event.talk_s,
            "wrap_s": event.wrap_s,
            "data": dict(event.data),
            "seq": event.seq,
        },
        ensure_ascii=False,
        separators=(",", ":"),
        default=str,
    )


def event_from_json(text: str | bytes) -> LogEvent:
    """The event of one spill-file line; ``ValueError`` when it is not one."""
    raw = json.loads(text)
    if not isinstance(raw, dict):
        raise ValueError("not a JSON object")
    try:
        return LogEvent(
            at=float(raw["at"]),
            kind=str(raw["kind"]),
            call_id=raw.get("call_id"),
            line=raw.get("line"),
            queue=raw.get("queue"),
            skill=raw.get("skill"),
            agent=raw.get("agent"),
            caller_number=raw.get("caller_number"),
            wait_s=raw.get("wait_s"),
            talk_s=raw.get("talk_s"),
            wrap_s=raw.get("wrap_s"),
            data=raw.get("data") or {},
            seq=int(raw.get("seq", 0)),
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not a LogEvent: {exc!r}") from exc


def _text(value: str | None) -> str | None:
    # PostgreSQL text cannot hold NUL; SIP garbage in a caller id must not
    # turn a row into one the database refuses.
    if value is not None and "\x00" in value:
        return value.replace("\x00", "\ufffd")
    return value


def _strip_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, Mapping):
        return {_strip_nul(k): _strip_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strip_nul(v) for v in value]
    return value


def _data_json(data: Mapping[str, Any]) -> str:
    if not data:
        return "{}"
    text = json.dumps(dict(data), ensure_ascii=False, default=str)
    if "\\u0000" in text:  # jsonb refuses \u0000 too
        text = json.dumps(_strip_nul(data), ensure_ascii=False, default=str)
    return text


def _columns(events: list[LogEvent]) -> list[list[Any]]:
    """The 14 column arrays of ``_INSERT_SQL`` for *events*."""
    return [
        [e.at for e in events],
        [e.kind for e in events],
        [_text(e.call_id) for e in events],
        [_text(e.line) for e in events],
        [_text(e.queue) for e in events],
        [_text(e.skill) for e in events],
        [_text(e.agent) for e in events],
        [_text(e.caller_number) for e in events],
        [e.wait_s for e in events],
        [e.talk_s for e in events],
        [e.wrap_s for e in events],
        [_data_json(e.data) for e in events],
        [e.seq for e in events],
        [_text(e.dedup_key) for e in events],
    ]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class _SpillRead:
    events: list[LogEvent]
    lines: int
    end_offset: int
    bad: list[tuple[str, str]]


class _SpillFile:
    """The JSON-lines spill file. Every method runs on the writer's I/O thread."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def scan(self) -> tuple[int, bytes]:
        """Lines present at start, and any torn last line (cut off and returned)."""
        try:
            handle = open(self.path, "r+b")
        except FileNotFoundError:
            return 0, b""
        with handle:
            lines = 0
            complete_end = 0
            torn = b""
            for line in handle:
                if line.endswith(b"\n"):
                    lines += 1
                    complete_end += len(line)
                else:
                    torn = line
            if torn:
                # Only a crash mid-write leaves a line without its newline.
                handle.truncate(complete_end)
                handle.flush()
                os.fsync(handle.fileno())
        return lines, torn

    def append(self, events: list[LogEvent]) -> None:
        data = "".join(event_to_json(e) + "\n" for e in events).encode("utf-8")
        created = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as handle:
            start = handle.tell()
            try:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            except OSError:
                # Leave no torn line behind: the caller keeps these events in memory.
                with contextlib.suppress(OSError):
                    handle.truncate(start)
                raise
        if created:
            _fsync_dir(self.path.parent)

    def read(self, offset: int, max_lines: int) -> _SpillRead:
        events: list[LogEvent] = []
        bad: list[tuple[str, str]] = []
        lines = 0
        try:
            handle = open(self.path, "rb")
        except FileNotFoundError:
            return _SpillRead(events, 0, offset, bad)
        with handle:
            handle.seek(offset)
            while lines < max_lines:
                line = handle.readline()
                if not line:
                    break
                lines += 1
                offset += len(line)
                try:
                    events.append(event_from_json(line))
                except ValueError as exc:
                    bad.append((line.decode("utf-8", errors="replace").rstrip("\n"), str(exc)))
        return _SpillRead(events, lines, offset, bad)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

    def rewrite(self, head: list[LogEvent], keep_from: int, tail: list[LogEvent]) -> int:
        """Replace the file by *head*, its bytes from *keep_from*, *tail*; return the size."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as out:
            out.write("".join(event_to_json(e) + "\n" for e in head).encode("utf-8"))
            try:
                with open(self.path, "rb") as old:
                    old.seek(keep_from)
                    shutil.copyfileobj(old, out)
            except FileNotFoundError:
                pass
            out.write("".join(event_to_json(e) + "\n" for e in tail).encode("utf-8"))
            out.flush()
            os.fsync(out.fileno())
            size = out.tell()
        if size == 0:
            tmp.unlink()
            self.path.unlink(missing_ok=True)
        else:
            os.replace(tmp, self.path)
        _fsync_dir(self.path.parent)
        return size

    def dead_letter(self, lines: list[str]) -> None:
        path = self.path.with_name(self.path.name + ".rejected")
        with open(path, "a", encoding="utf-8") as handle:
            handle.write("".join(line + "\n" for line in lines))
            handle.flush()
            os.fsync(handle.fileno())


@dataclass
class _Batch:
    events: list[LogEvent]
    from_spill: bool
    spill_end_offset: int = 0


@contextlib.asynccontextmanager
async def pooled_connection(pool: asyncpg.Pool, *, acquire_timeout_s: float) -> AsyncIterator[Any]:
    """A connection of *pool*, terminated instead of reused when the block fails.

    After a timeout, a cancellation or a broken link the session state is
    unknown, and a reset on release could wait on a dead server: the pool
    opens a fresh connection on the next acquire instead.
    """
    conn = await pool.acquire(timeout=acquire_timeout_s)
    try:
        yield conn
    except BaseException:
        conn.terminate()
        raise
    finally:
        await pool.release(conn)  # at once when terminated


class EventLogWriter:
    """Appends ``LogEvent`` rows to ``acd_event``; see the module docstring.

    ``append`` is synchronous and O(1) and never touches the network or the
    disk. The one background task (``start``) borrows a connection of *pool*
    for each batch of up to ``batch_size`` rows, waits up to
    ``flush_interval_s`` to fill a partial batch (unless someone awaits
    ``wait_flushed``), and retries a failed batch forever with ``backoff``.
    With ``migrate_on_connect`` its first successful connection applies the
    missing migrations (common/db.py), so an engine started while PostgreSQL
    was down still gets its table.

    *pool* belongs to the caller, who closes it after ``close``. It may be
    created while PostgreSQL is down (``min_size=0`` opens nothing up front);
    a connection that failed mid-batch is terminated, so the pool reconnects.
    *where* names the database in log lines (e.g. ``common.db.redact_dsn(dsn)``;
    never a password).
    """

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        engine_id: str,
        backoff: Backoff | None = None,
        batch_size: int = 500,
        flush_interval_s: float = 0.2,
        max_pending: int = 200_000,
        spill_path: Path | None = None,
        connect_timeout_s: float = 5.0,
        statement_timeout_s: float = 15.0,
        migrate_on_connect: bool = True,
        where: str = "the event-log pool's database",
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending!r}")
        if flush_interval_s < 0:
            raise ValueError(f"flush_interval_s must be >= 0, got {flush_interval_s!r}")
        self._pool = pool
        self._where = where
        self._engine_id = engine_id
        self._backoff = backoff or Backoff(base_s=0.2, cap_s=10.0)
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._max_pending = max_pending
        self._connect_timeout_s = connect_timeout_s
        self._statement_timeout_s = statement_timeout_s
        self._spill = _SpillFile(spill_path) if spill_path is not None else None
        # An engine that started while PostgreSQL was down could not migrate then.
        self._schema_pending = migrate_on_connect

        self._queue: deque[LogEvent] = deque()
        self._inflight: _Batch | None = None
        self._spill_unread = 0  # events in the spill file after the read offset
        self._spill_read_offset = 0
        self._spill_committed_offset = 0
        self._spill_job: tuple[asyncio.Future[None], list[LogEvent]] | None = None
        self._spill_failed_at: float | None = None

        # wait_flushed() accounting: events are resolved (inserted, duplicate or
        # rejected) strictly in append order, so one counter says how far we are.
        # It starts below zero by the events a previous run left in the spill file.
        self._appended = 0
        self._resolved = 0
        self._flush_waiters: list[tuple[int, asyncio.Future[None]]] = []

        self._written = 0
        self._retries = 0
        self._spilled = 0
        self._duplicates = 0
        self._rejected = 0
        self._lost = 0
        self._outages = 0
        self._recoveries = 0
        self._alarms = 0
        self._last_error: str | None = None

        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._io_pool: ThreadPoolExecutor | None = None
        self._closed = False
        self._outage_started: float | None = None
        self._outage_logged_error: str | None = None
        self._overflow_alarmed = False

    # ------------------------------------------------------------------ API

    @property
    def stats(self) -> EventLogStats:
        """A snapshot of the counters."""
        return EventLogStats(
            written=self._written,
            retries=self._retries,
            pending=self.pending,
            spilled=self._spilled,
            duplicates_ignored=self._duplicates,
            rejected=self._rejected,
            lost=self._lost,
            outages=self._outages,
            recoveries=self._recoveries,
            alarms=self._alarms,
            last_error=self._last_error,
        )

    @property
    def pending(self) -> int:
        """Events not yet committed (in flight, in the spill file, in memory)."""
        inflight = len(self._inflight.events) if self._inflight is not None else 0
        return inflight + self._spill_unread + len(self._queue)

    @property
    def healthy(self) -> bool:
        """False from a failed write until the next committed batch."""
        return self._outage_started is None

    @property
    def alarm_raised(self) -> bool:
        """True while an ALARM condition lasts: the backlog is over ``max_pending``
        with no spill file, or the spill file cannot be written."""
        return self._overflow_alarmed or self._spill_failed_at is not None

    async def start(self) -> None:
        """Start the writer task; events a previous run spilled are written first."""
        if self._task is not None:
            raise RuntimeError("EventLogWriter already started")
        if self._closed:
            raise RuntimeError("EventLogWriter is closed")
        if self._spill is not None:
            self._io_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="event-log-io")
            lines, torn = await self._io(self._spill.scan)
            if torn:
                self._lost += 1
                log.error(
                    "event log: spill file %s ended with a torn line (a crash mid-write?); "
                    "it was cut off and is lost: %r",
                    self._spill.path,
                    torn[:500],
                )
            if lines:
                log.warning(
                    "event log: %d events left by a previous run in %s are written first",
                    lines,
                    self._spill.path,
                )
            self._spill_unread = lines
            self._resolved = -lines
        self._task = asyncio.create_task(self._run(), name=f"event-log-writer:{self._engine_id}")
        self._task.add_done_callback(self._task_done)

    def append(self, event: LogEvent) -> None:
        """Queue *event* for writing; O(1), never blocks, never raises on DB trouble."""
        if self._closed:
            raise RuntimeError(f"EventLogWriter is closed; {event.kind} {event.dedup_key} refused")
        self._queue.append(event)
        self._appended += 1
        self._wakeup.set()

    async def wait_flushed(self, timeout_s: float = 10.0) -> None:
        """Return once every event appended before this call is committed.

        ``TimeoutError`` (with the pending count and the last error) otherwise.
        """
        target = self._appended
        if self._resolved >= target:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (target, waiter)
        self._flush_waiters.append(entry)
        self._wakeup.set()  # skip the batching delay
        try:
            await asyncio.wait_for(waiter, timeout_s)
        except TimeoutError:
            raise TimeoutError(
                f"event log: {target - self._resolved} events appended before the flush "
                f"request still not committed after {timeout_s:g} s "
                f"(pending {self.pending}, last error: {self._last_error})"
            ) from None
        finally:
            with contextlib.suppress(ValueError):
                self._flush_waiters.remove(entry)

    async def close(self, *, flush_timeout_s: float = 10.0) -> None:
        """Flush what can be flushed in *flush_timeout_s*, spill the rest, stop. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._task is not None and not self._task.done():
            try:
                await self.wait_flushed(flush_timeout_s)
            except TimeoutError as exc:
                log.warning("%s; stopping anyway", exc)
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
        await self._settle_spill_job()
        await self._save_leftovers()
        if self._io_pool is not None:
            self._io_pool.shutdown(wait=False)  # every job was awaited above
        for _, waiter in self._flush_waiters:
            if not waiter.done():
                waiter.set_exception(RuntimeError("EventLogWriter closed"))

    # --------------------------------------------------------- background

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error(
                "event log writer task died; %d events wait in memory until close()",
                self.pending,
                exc_info=exc,
            )

    async def _run(self) -> None:
        # The loop body only raises on a bug (database faults are retried inside);
        # a bug must not stop the log for good, so it is logged and the loop resumes.
        failures = 0
        while True:
            try:
                await self._write_forever()
            except Exception:
                failures += 1
                log.exception("event log writer: unexpected error; resuming")
                await asyncio.sleep(self._backoff.compute(failures))

    async def _write_forever(self) -> None:
        while True:
            if self._inflight is None:
                await self._wait_for_work()
                await self._spill_overflow()
                self._inflight = await self._take_batch()
                if self._inflight is None:
                    continue
            batch = self._inflight
            inserted, rejected = await retry_forever(
                functools.partial(self._attempt, batch),
                backoff=self._backoff,
                on_failure=self._on_failure,
                sleep=self._sleep_spilling,
            )
            self._committed(batch, inserted, rejected)
            if batch.from_spill and self._spill_unread == 0 and self._spill is not None:
                await self._io(self._spill.remove)
                self._spill_read_offset = self._spill_committed_offset = 0

    def _available(self) -> int:
        return self._spill_unread + len(self._queue)

    async def _wait_for_work(self) -> None:
        while self._available() == 0:
            self._wakeup.clear()
            await self._wakeup.wait()
        # Coalesce a partial batch for a moment: one round trip for many rows.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._flush_interval_s
        while not self._flush_waiters and self._available() < self._batch_size:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                return

    async def _take_batch(self) -> _Batch | None:
        if self._spill_unread > 0 and self._spill is not None:
            chunk = await self._io(self._spill.read, self._spill_read_offset, self._batch_size)
            if chunk.lines == 0:
                log.error(
                    "event log: spill file %s holds fewer events than expected; "
                    "%d events are lost (was it changed by hand?)",
                    self._spill.path,
                    self._spill_unread,
                )
                self._lost += self._spill_unread
                self._resolve(self._spill_unread)
                self._spill_unread = 0
                self._spill_read_offset = self._spill_committed_offset = 0
                await self._io(self._spill.remove)
                return None
            self._spill_unread -= chunk.lines
            self._spill_read_offset = chunk.end_offset
            if chunk.bad:
                for line, error in chunk.bad:
                    log.error("event log: unreadable spill line skipped (%s): %s", error, line)
                self._lost += len(chunk.bad)
                self._resolve(len(chunk.bad))
            if not chunk.events:
                self._spill_committed_offset = chunk.end_offset
                return None
            return _Batch(chunk.events, from_spill=True, spill_end_offset=chunk.end_offset)
        if not self._queue:
            return None
        take = min(self._batch_size, len(self._queue))
        return _Batch([self._queue.popleft() for _ in range(take)], from_spill=False)

    async def _attempt(self, batch: _Batch) -> tuple[int, int]:
        async with pooled_connection(self._pool, acquire_timeout_s=self._connect_timeout_s) as conn:
            if self._schema_pending:
                await self._ensure_schema(conn)
            return await self._insert_batch(conn, batch.events)

    async def _ensure_schema(self, conn: Any) -> None:
        """Apply missing migrations once; a fault that needs a human is logged, not retried."""
        try:
            applied = await apply_migrations(conn, lock_timeout_s=self._statement_timeout_s)
        except (MigrationError, asyncpg.InsufficientPrivilegeError) as exc:
            # Inserts may still work (the schema is there, or a DBA migrates):
            # carry on and let them tell.
            log.error("event log: migrations not applied by the writer: %s", exc)
        else:
            if applied:
                log.info("event log: applied migrations %s", ", ".join(applied))
        self._schema_pending = False

    async def _insert_batch(self, conn: Any, events: list[LogEvent]) -> tuple[int, int]:
        """Insert *events* in order, skipping stored ones; ``(inserted, rejected)``.

        Safe to repeat: a second call with the same events inserts nothing.
        """
        try:
            return await self._insert_rows(conn, events), 0
        except _ROW_ERRORS as exc:
            if len(events) == 1:
                await self._reject(events[0], exc)
                return 0, 1
        # One row the database refuses must not block every later row: find it.
        inserted = rejected = 0
        for event in events:
            try:
                inserted += await self._insert_rows(conn, [event])
            except _ROW_ERRORS as exc:
                rejected += 1
                await self._reject(event, exc)
        return inserted, rejected

    async def _insert_rows(self, conn: Any, events: list[LogEvent]) -> int:
        status = await conn.execute(
            _INSERT_SQL, *_columns(events), self._engine_id, timeout=self._statement_timeout_s
        )
        return int(str(status).rsplit(" ", 1)[-1])

    async def _reject(self, event: LogEvent, exc: BaseException) -> None:
        line = event_to_json(event)
        log.error(
            "event log: PostgreSQL refused a row (%s: %s); it is kept in %s and here: %s",
            type(exc).__name__,
            exc,
            f"{self._spill.path}.rejected" if self._spill is not None else "this log only",
            line,
        )
        if self._spill is not None:
            try:
                await self._io(self._spill.dead_letter, [line])
            except OSError as io_exc:
                log.error("event log: cannot write the rejected row to disk: %s", io_exc)

    def _committed(self, batch: _Batch, inserted: int, rejected: int) -> None:
        count = len(batch.events)
        self._written += inserted
        self._rejected += rejected
        self._duplicates += count - inserted - rejected
        self._inflight = None
        if batch.from_spill:
            self._spill_committed_offset = batch.spill_end_offset
        self._resolve(count)
        if self._outage_started is not None:
            self._recoveries += 1
            loop = asyncio.get_running_loop()
            log.warning(
                "event log: PostgreSQL at %s accepts writes again after %.1f s; "
                "%d events still pending",
                self._where,
                loop.time() - self._outage_started,
                self.pending,
            )
            self._outage_started = None
            self._outage_logged_error = None
        if self._overflow_alarmed and len(self._queue) <= self._max_pending:
            self._overflow_alarmed = False

    def _resolve(self, count: int) -> None:
        self._resolved += count
        for target, waiter in self._flush_waiters:
            if target <= self._resolved and not waiter.done():
                waiter.set_result(None)

    def _on_failure(self, failures: int, exc: BaseException, delay_s: float) -> None:
        self._retries += 1
        error = f"{type(exc).__name__}: {exc}"
        self._last_error = error
        if self._outage_started is None:
            self._outages += 1
            self._outage_started = asyncio.get_running_loop().time()
        if error == self._outage_logged_error:
            log.debug("event log: write attempt %d failed (%s)", failures, error)
            return
        self._outage_logged_error = error
        spill = (
            f"beyond {self._max_pending} they go to {self._spill.path}"
            if self._spill is not None
            else f"beyond {self._max_pending} they stay in memory (no spill_path set)"
        )
        log.error(
            "event log: cannot write to PostgreSQL at %s (%s); %d events pending, %s. "
            "Routing is unaffected; retrying with backoff (next in %.1f s). Check that "
            "PostgreSQL runs and is reachable, the DSN (HOTLINE_PG_DSN), and that the "
            "migrations were applied.",
            self._where,
            error,
            self.pending,
            spill,
            delay_s,
        )

    async def _sleep_spilling(self, delay_s: float) -> None:
        """The backoff sleep, spilling overflow as events keep arriving."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + delay_s
        while True:
            self._wakeup.clear()
            await self._spill_overflow()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                return

    async def _spill_overflow(self) -> None:
        if len(self._queue) <= self._max_pending:
            return
        if self._spill is None:
            if not self._overflow_alarmed:
                self._overflow_alarmed = True
                self._alarms += 1
                log.error(
                    "ALARM event log: %d events wait for PostgreSQL at %s, more than "
                    "max_pending=%d, and no spill_path is set: they are kept in memory "
                    "(nothing is dropped) but memory grows until the database returns",
                    len(self._queue),
                    self._where,
                    self._max_pending,
                )
            return
        loop = asyncio.get_running_loop()
        if self._spill_failed_at is not None and loop.time() - self._spill_failed_at < 5.0:
            return
        # Spill down to half the limit so that spills (and their fsyncs) come in chunks.
        count = len(self._queue) - self._max_pending // 2
        events = [self._queue.popleft() for _ in range(count)]
        self._spill_unread += count
        assert self._io_pool is not None
        job = asyncio.wrap_future(self._io_pool.submit(self._spill.append, events))
        self._spill_job = (job, events)
        # shield: a writer cancelled meanwhile still lets the write finish, and
        # close() settles it; a failure is handled by _settle_spill_job.
        with contextlib.suppress(Exception):
            await asyncio.shield(job)
        await self._settle_spill_job()

    async def _settle_spill_job(self) -> None:
        """Account for the last spill write, putting its events back if it failed."""
        if self._spill_job is None:
            return
        job, events = self._spill_job
        self._spill_job = None
        try:
            await job
        except Exception as exc:
            self._spill_unread -= len(events)
            self._queue.extendleft(reversed(events))
            if self._spill_failed_at is None:
                self._alarms += 1
            self._spill_failed_at = asyncio.get_running_loop().time()
            log.error(
                "ALARM event log: cannot spill to %s (%s); %d events stay in memory",
                self._spill.path if self._spill else None,
                exc,
                len(events),
            )
            return
        self._spilled += len(events)
        self._spill_failed_at = None

    async def _save_leftovers(self) -> None:
        head = (
            self._inflight.events
            if self._inflight is not None and not self._inflight.from_spill
            else []
        )
        tail = list(self._queue)
        left = self.pending
        if self._spill is None:
            if left:
                self._lost += left
                log.error(
                    "event log: closing with %d events not written to PostgreSQL at %s and "
                    "no spill_path: they are LOST (first %s, last %s)",
                    left,
                    self._where,
                    (head or tail)[0].dedup_key if (head or tail) else "-",
                    (tail or head)[-1].dedup_key if (head or tail) else "-",
                )
            return
        if not left:
            if self._spill_read_offset or self._spill_committed_offset:
                await self._io(self._spill.remove)
            return
        if self._io_pool is None:
            self._io_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="event-log-io")
        try:
            await self._io(self._spill.rewrite, head, self._spill_committed_offset, tail)
        except OSError as exc:
            self._lost += left
            log.error(
                "event log: closing with %d events unwritten and the spill file %s failed "
                "(%s): they are LOST",
                left,
                self._spill.path,
                exc,
            )
            return
        self._spilled += len(head) + len(tail)
        log.warning(
            "event log: closing with %d events not yet in PostgreSQL; they are in %s and "
            "will be written by the next writer started with that spill_path",
            left,
            self._spill.path,
        )

    async def _io(self, fn: Callable[..., T], *args: Any) -> T:
        """Run *fn* on the writer's single I/O thread (file order = submit order)."""
        assert self._io_pool is not None
        return await asyncio.wrap_future(self._io_pool.submit(fn, *args))


# ---------------------------------------------------------------- loaders

_AGENT_STATE_OF_KIND = {
    AGENT_LOGIN: "AVAILABLE",
    AGENT_RESUMED: "AVAILABLE",
    AGENT_PAUSED: "PAUSED",
    AGENT_LOGOUT: "LOGGED_OUT",
}


async def load_agent_states(
    pool_or_conn: SupportsFetch, *, since: float | None = None
) -> dict[str, tuple[str, float, str | None]]:
    """Each agent's last login/logout/pause/resume: ``agent -> (state, at, pause_reason)``.

    ``state`` is ``"AVAILABLE"`` (login or resume), ``"PAUSED"`` or
    ``"LOGGED_OUT"``; ``pause_reason`` is ``data["reason"]`` of a pause, else
    ``None``. Rows before *since* (epoch seconds) are ignored. Used after an
    engine restart, before Asterisk's view is merged in.
    """
    rows = await pool_or_conn.fetch(
        """
        SELECT DISTINCT ON (agent) agent, kind, extract(epoch FROM at)::float8 AS at,
               data->>'reason' AS reason
        FROM acd_event
        WHERE kind = ANY($1::text[]) AND agent IS NOT NULL
          AND ($2::float8 IS NULL OR at >= to_timestamp($2::float8))
        ORDER BY agent, at DESC, id DESC
        """,
        list(_AGENT_STATE_OF_KIND),
        since,
    )
    return {
        row["agent"]: (
            _AGENT_STATE_OF_KIND[row["kind"]],
            float(row["at"]),
            row["reason"] if row["kind"] == AGENT_PAUSED else None,
        )
        for row in rows
    }


async def load_repeat_callers(
    pool_or_conn: SupportsFetch, *, since: float
) -> dict[str, tuple[str, float]]:
    """``caller_number -> (agent, at)`` of the latest answer of that number since *since*.

    Feeds "route a repeat caller to the agent who answered last time" after a restart.
    """
    rows = await pool_or_conn.fetch(
        """
        SELECT DISTINCT ON (caller_number) caller_number, agent,
               extract(epoch FROM at)::float8 AS at
        FROM acd_event
        WHERE kind = $1 AND caller_number IS NOT NULL AND agent IS NOT NULL
          AND at >= to_timestamp($2::float8)
        ORDER BY caller_number, at DESC, id DESC
        """,
        CALL_ANSWERED,
        since,
    )
    return {row["caller_number"]: (row["agent"], float(row["at"])) for row in rows}
