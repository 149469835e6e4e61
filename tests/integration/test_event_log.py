"""The event log on a real private PostgreSQL: migrations, append-only table,
a writer that never blocks, survives the database going away (in memory and
through the spill file) and writes every row exactly once, in order, through a
shared pool created the way the runtime creates it; loaders and the restore.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from acd import log_events as ev
from acd.event_log import EventLogWriter, load_agent_states, load_repeat_callers
from acd.log_events import LogEvent
from acd.restore import RestoredState, restore_from_log
from common.backoff import Backoff
from common.db import (
    MigrationError,
    apply_migrations,
    default_migrations_dir,
    discover_migrations,
    migrate,
)
from cti.stack.postgres import PostgresNotAvailable, PrivatePostgres
from tests.waiting import eventually

from .conftest import started_postgres

pytestmark = pytest.mark.integration

FAST = Backoff(base_s=0.02, cap_s=0.2, jitter=0.5)
T0 = 1_795_000_000.0  # 2026-11-19, an arbitrary fixed epoch


class RestartablePostgres(PrivatePostgres):
    """``PrivatePostgres`` whose ``start()`` also works again on its stopped data dir.

    The stock ``start()`` re-runs ``createdb``, which fails once the database
    exists; the port is kept, so clients find the server where it was.
    """

    async def _run(self, *argv: str) -> None:
        try:
            await super()._run(*argv)
        except PostgresNotAvailable as exc:
            if Path(argv[0]).name == "createdb" and "already exists" in str(exc):
                return
            raise


@pytest_asyncio.fixture
async def pg() -> AsyncIterator[RestartablePostgres]:
    async with started_postgres(RestartablePostgres) as server:
        yield server


def runtime_pool(dsn: str, *, max_size: int = 2) -> asyncpg.Pool:
    """A pool as the runtime creates it: ``min_size=0`` opens nothing up front,
    so it can be created while PostgreSQL is down."""
    return asyncpg.create_pool(dsn, min_size=0, max_size=max_size)


@pytest_asyncio.fixture
async def pool(pg: RestartablePostgres) -> AsyncIterator[asyncpg.Pool]:
    async with runtime_pool(pg.dsn) as shared:
        yield shared


def arrived(n: int, *, at: float = T0) -> LogEvent:
    return LogEvent(at=at + n * 0.001, kind=ev.CALL_ARRIVED, call_id=f"call-{n:06d}")


async def stored_keys(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return [
            r["dedup_key"] for r in await conn.fetch("SELECT dedup_key FROM acd_event ORDER BY id")
        ]
    finally:
        await conn.close()


# ---------------------------------------------------------------- migrations


async def test_migrations_apply_once_even_when_two_engines_start_together(pg, tmp_path):
    a = await asyncpg.connect(pg.dsn)
    b = await asyncpg.connect(pg.dsn)
    try:
        shipped = [m.version for m in discover_migrations(default_migrations_dir())]
        assert shipped[0] == "001_acd_event_log"
        first, second = await asyncio.gather(apply_migrations(a), apply_migrations(b))
        assert sorted([first, second]) == [[], shipped]
        assert await apply_migrations(a) == []
        rows = await a.fetch(
            "SELECT version, checksum, applied_at FROM schema_migrations ORDER BY version"
        )
        assert [r["version"] for r in rows] == shipped
        assert all(len(r["checksum"]) == 64 for r in rows)

        # A new numbered file is applied; the recorded ones are not re-run.
        copy = tmp_path / "migrations"
        shutil.copytree(default_migrations_dir(), copy)
        (copy / "900_probe.sql").write_text("CREATE TABLE probe (id int);\n")
        assert await apply_migrations(a, directory=copy) == ["900_probe"]
        assert await apply_migrations(a, directory=copy) == []

        # A failing migration leaves nothing behind and names its file.
        (copy / "901_broken.sql").write_text("CREATE TABLE half (id int);\nSELECT nonsense;\n")
        with pytest.raises(MigrationError, match="901_broken.sql"):
            await apply_migrations(a, directory=copy)
        assert await a.fetchval("SELECT to_regclass('half')") is None
        assert await a.fetchval("SELECT count(*) FROM schema_migrations") == len(shipped) + 1
        (copy / "901_broken.sql").unlink()

        # Editing an applied file is refused, naming it.
        edited = copy / "001_acd_event_log.sql"
        edited.write_text(edited.read_text() + "\n-- a harmless-looking edit\n")
        with pytest.raises(MigrationError, match=r"001_acd_event_log\.sql was changed"):
            await apply_migrations(a, directory=copy)
        # The lock was released despite the error: another session can take it.
        assert await b.fetchval("SELECT pg_try_advisory_lock($1)", 0x686F746C696E6501)
    finally:
        await a.close()
        await b.close()


async def test_acd_event_is_append_only_and_knows_every_kind(pg, pool):
    await migrate(pg.dsn)
    writer = EventLogWriter(pool=pool, engine_id="e1", backoff=FAST)
    await writer.start()
    try:
        for n, kind in enumerate(sorted(ev.KINDS)):
            writer.append(LogEvent(at=T0 + n, kind=kind, call_id="c1", agent="1001"))
        await writer.wait_flushed()
    finally:
        await writer.close()
    assert writer.stats.written == len(ev.KINDS) and writer.stats.rejected == 0

    conn = await asyncpg.connect(pg.dsn)
    try:
        assert {r["kind"] for r in await conn.fetch("SELECT kind FROM acd_event")} == ev.KINDS
        for statement in (
            "UPDATE acd_event SET agent = 'x'",
            "DELETE FROM acd_event",
            "TRUNCATE acd_event",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await conn.execute(statement)
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                "INSERT INTO acd_event (at, kind, call_id, dedup_key, engine_id) "
                "VALUES (now(), 'CALL_TELEPORTED', 'c9', 'k', 'e1')"
            )
        assert await conn.fetchval("SELECT count(*) FROM acd_event") == len(ev.KINDS)
        assert (
            await conn.fetchval("SELECT has_table_privilege('public', 'acd_event', 'INSERT')")
            is False
        )
    finally:
        await conn.close()


# -------------------------------------------------------------------- writer


async def test_five_thousand_appends_return_at_once_and_land_in_order_once(pg, pool):
    await migrate(pg.dsn)
    writer = EventLogWriter(pool=pool, engine_id="e1", backoff=FAST)
    await writer.start()
    try:
        events = [arrived(n) for n in range(5000)]
        for event in events:
            writer.append(event)
        # Nothing was awaited: append queued them all without any I/O.
        assert writer.stats.pending == 5000 and writer.stats.written == 0
        await writer.wait_flushed(timeout_s=30)
        assert writer.stats.pending == 0 and writer.stats.written == 5000
    finally:
        await writer.close()
    assert await stored_keys(pg.dsn) == [e.dedup_key for e in events]


async def test_the_same_event_appended_twice_is_stored_once(pg, pool):
    await migrate(pg.dsn)
    writer = EventLogWriter(pool=pool, engine_id="e1", backoff=FAST)
    await writer.start()
    try:
        answered = LogEvent(at=T0, kind=ev.CALL_ANSWERED, call_id="c1", agent="1001", wait_s=4.0)
        writer.append(answered)
        writer.append(arrived(1))
        writer.append(answered)  # e.g. replayed after an AMI resync
        await writer.wait_flushed()
        writer.append(answered)  # and again in a later batch
        await writer.wait_flushed()
    finally:
        await writer.close()
    assert await stored_keys(pg.dsn) == ["c1:CALL_ANSWERED:0", "call-000001:CALL_ARRIVED:0"]
    assert writer.stats.written == 2 and writer.stats.duplicates_ignored == 2


async def test_a_batch_committed_whose_acknowledgement_was_lost_is_not_duplicated(pg):
    await migrate(pg.dsn)
    # One connection in the pool: the retry can only run if the broken one was
    # terminated and handed back, and the pool opened a fresh one.
    pool = await runtime_pool(pg.dsn, max_size=1)
    writer = EventLogWriter(pool=pool, engine_id="e1", backoff=FAST)
    admin = await asyncpg.connect(pg.dsn)
    real_insert = writer._insert_batch
    calls = 0

    async def commit_then_lose_the_link(conn, events):
        # The INSERT commits, then the server kills the session before we see
        # the reply: exactly what a network drop after COMMIT looks like.
        nonlocal calls
        calls += 1
        result = await real_insert(conn, events)
        if calls == 1:
            await admin.execute("SELECT pg_terminate_backend($1)", conn.get_server_pid())
            await conn.execute("SELECT 1")  # raises: the connection is gone
        return result

    writer._insert_batch = commit_then_lose_the_link
    await writer.start()
    try:
        events = [arrived(n) for n in range(300)]
        for event in events:
            writer.append(event)
        await writer.wait_flushed()
        assert calls == 2
        assert writer.stats.retries == 1
        assert writer.healthy and (writer.stats.outages, writer.stats.recoveries) == (1, 1)
        assert (pool.get_size(), pool.get_idle_size()) == (1, 1)
        # The first attempt's rows were committed but never acknowledged, so the
        # writer saw the resend find all 300 already stored.
        assert writer.stats.written == 0 and writer.stats.duplicates_ignored == 300
        assert await stored_keys(pg.dsn) == [e.dedup_key for e in events]

        # The batch insert itself is idempotent when called twice outright.
        again = [arrived(n, at=T0 + 100) for n in range(1000, 1010)]
        conn = await asyncpg.connect(pg.dsn)
        try:
            assert await real_insert(conn, again) == (10, 0)
            assert await real_insert(conn, again) == (0, 0)
        finally:
            await conn.close()
        assert len(await stored_keys(pg.dsn)) == 310
    finally:
        await writer.close()
        await admin.close()
        await pool.close()


async def test_postgres_down_then_back_on_the_same_port_loses_and_duplicates_nothing(
    pg, pool, caplog
):
    await migrate(pg.dsn)
    # max_pending below the outage's volume and no spill file: kept in memory, one alarm.
    writer = EventLogWriter(pool=pool, engine_id="e1", backoff=FAST, max_pending=500)
    await writer.start()
    try:
        before = [arrived(n) for n in range(10)]
        for event in before:
            writer.append(event)
        await writer.wait_flushed()
        assert writer.healthy and not writer.alarm_raised
        port = pg.port

        await pg.stop()
        during = [arrived(n) for n in range(10, 1010)]
        for event in during:
            writer.append(event)  # returns: nothing here waits on the database
        assert writer.stats.pending >= 1000
        await eventually(lambda: writer.stats.retries >= 3)
        assert writer.stats.pending == 1000 and writer.stats.written == 10
        assert not writer.healthy
        assert (writer.stats.outages, writer.stats.recoveries) == (1, 0)
        # The backlog outgrew max_pending with nowhere to spill: alarmed, nothing lost.
        assert writer.alarm_raised and writer.stats.alarms == 1 and writer.stats.lost == 0
        with pytest.raises(TimeoutError, match="not yet committed|not committed"):
            await writer.wait_flushed(timeout_s=0.3)  # a negative check: bounded on purpose

        await pg.start()
        assert pg.port == port
        await writer.wait_flushed(timeout_s=30)
        assert writer.healthy and not writer.alarm_raised
        stats = writer.stats
    finally:
        await writer.close()
    assert await stored_keys(pg.dsn) == [e.dedup_key for e in before + during]
    assert stats.written == 1010 and stats.pending == 0 and stats.duplicates_ignored == 0
    # One outage, one recovery, one alarm, however many retries it took.
    assert (stats.outages, stats.recoveries, stats.alarms, stats.lost) == (1, 1, 1, 0)
    # An error is logged when it changes during the outage, not once per retry.
    errors_logged = [
        r for r in caplog.records if r.name == "acd.event_log" and r.levelno == logging.ERROR
    ]
    assert stats.alarms + 1 <= len(errors_logged) < stats.retries


async def test_overflow_spills_to_disk_and_comes_back_in_order(pg, pool, tmp_path):
    await migrate(pg.dsn)
    spill = tmp_path / "spill" / "acd_event.jsonl"
    writer = EventLogWriter(
        pool=pool, engine_id="e1", backoff=FAST, max_pending=100, spill_path=spill
    )
    await writer.start()
    try:
        first = arrived(0)
        writer.append(first)
        await writer.wait_flushed()

        await pg.stop()
        during = [arrived(n) for n in range(1, 1001)]
        for event in during:
            writer.append(event)
        await eventually(lambda: writer.stats.spilled >= 900)
        assert writer.stats.pending == 1000
        lines = spill.read_text().splitlines()
        assert len(lines) == writer.stats.spilled
        assert '"call_id":"call-000001"' in lines[0]  # the oldest went to disk first

        assert not writer.alarm_raised  # spilling is the plan, not an alarm

        await pg.start()
        await writer.wait_flushed(timeout_s=30)
        assert writer.stats.pending == 0 and writer.stats.written == 1001
        assert not spill.exists()  # consumed and removed
    finally:
        await writer.close()
    assert await stored_keys(pg.dsn) == [e.dedup_key for e in [first, *during]]
    assert (writer.stats.alarms, writer.stats.lost) == (0, 0)


async def test_close_spills_what_is_unwritten_and_the_next_writer_writes_it_first(pg, tmp_path):
    await migrate(pg.dsn)
    spill = tmp_path / "acd_event.jsonl"
    await pg.stop()
    # The runtime creates its pool at start, whether PostgreSQL is up or not.
    pool = await runtime_pool(pg.dsn)
    old = EventLogWriter(pool=pool, engine_id="e1", backoff=FAST, spill_path=spill)
    await old.start()
    earlier = [
        LogEvent(
            at=T0 + n,
            kind=ev.CALL_OVERFLOWED,
            call_id=f"c{n}",
            queue="投诉",
            data={"to": "callback", "note": "市民要求回电"},
        )
        for n in range(300)
    ]
    for event in earlier:
        old.append(event)
    await eventually(lambda: old.stats.retries >= 1)
    await old.close(flush_timeout_s=0.2)
    await old.close()  # idempotent
    assert len(spill.read_text(encoding="utf-8").splitlines()) == 300
    assert old.stats.spilled == 300 and old.stats.lost == 0
    with pytest.raises(RuntimeError, match="closed"):
        old.append(arrived(1))

    # Without a spill file, what cannot be written is reported loudly as lost.
    no_spill = EventLogWriter(pool=pool, engine_id="e1", backoff=FAST)
    await no_spill.start()
    no_spill.append(arrived(7))
    await no_spill.close(flush_timeout_s=0.1)
    assert no_spill.stats.lost == 1

    await pg.start()
    new = EventLogWriter(pool=pool, engine_id="e2", backoff=FAST, spill_path=spill)
    await new.start()
    try:
        assert new.stats.pending == 300
        later = [arrived(n) for n in range(5)]
        for event in later:
            new.append(event)
        await new.wait_flushed(timeout_s=30)
    finally:
        await new.close()
        await pool.close()
    assert new.stats.written == 305 and new.stats.lost == 0
    assert await stored_keys(pg.dsn) == [e.dedup_key for e in earlier + later]
    assert not spill.exists()
    conn = await asyncpg.connect(pg.dsn)
    try:
        row = await conn.fetchrow("SELECT queue, data, engine_id FROM acd_event WHERE call_id='c0'")
    finally:
        await conn.close()
    assert row["queue"] == "投诉" and row["engine_id"] == "e2"
    assert '"note": "市民要求回电"' in row["data"]


async def test_a_row_postgresql_refuses_is_dead_lettered_not_blocking_the_rest(pg, pool, tmp_path):
    await migrate(pg.dsn)
    spill = tmp_path / "acd_event.jsonl"
    writer = EventLogWriter(pool=pool, engine_id="e1", backoff=FAST, spill_path=spill)
    await writer.start()
    try:
        writer.append(arrived(1))
        writer.append(LogEvent(at=float("nan"), kind=ev.CALL_ARRIVED, call_id="bad"))
        writer.append(LogEvent(at=T0, kind=ev.CALL_ARRIVED, call_id="x\x00y"))
        writer.append(arrived(3))
        await writer.wait_flushed()
    finally:
        await writer.close()
    assert await stored_keys(pg.dsn) == [
        "call-000001:CALL_ARRIVED:0",
        "x\ufffdy:CALL_ARRIVED:0",
        "call-000003:CALL_ARRIVED:0",
    ]
    # Refused for its content, not a database outage: no retry, nothing else lost.
    stats = writer.stats
    assert (stats.rejected, stats.written, stats.lost, stats.retries) == (1, 3, 0, 0)
    assert stats.outages == 0 and writer.healthy
    assert '"call_id":"bad"' in (tmp_path / "acd_event.jsonl.rejected").read_text()


async def test_a_writer_started_before_the_schema_exists_migrates_on_connect(pg, pool):
    # An engine that started while PostgreSQL was down could not migrate then;
    # the writer migrates through its first pooled connection.
    writer = EventLogWriter(pool=pool, engine_id="e1", backoff=FAST)
    await writer.start()
    try:
        writer.append(arrived(1))
        await writer.wait_flushed()
    finally:
        await writer.close()
    assert await stored_keys(pg.dsn) == ["call-000001:CALL_ARRIVED:0"]
    assert await migrate(pg.dsn) == []


# ------------------------------------------------------------------- loaders


async def test_agent_states_and_repeat_callers_after_a_restart(pg, pool):
    await migrate(pg.dsn)
    rows = [
        LogEvent(at=T0 + 100, kind=ev.AGENT_LOGIN, agent="a1"),
        LogEvent(at=T0 + 200, kind=ev.AGENT_PAUSED, agent="a1", data={"reason": "lunch"}),
        LogEvent(at=T0 + 100, kind=ev.AGENT_LOGIN, agent="a2"),
        LogEvent(at=T0 + 150, kind=ev.AGENT_PAUSED, agent="a2", data={"reason": "meeting"}),
        LogEvent(at=T0 + 180, kind=ev.AGENT_RESUMED, agent="a2"),
        LogEvent(at=T0 + 100, kind=ev.AGENT_LOGIN, agent="a3"),
        LogEvent(at=T0 + 300, kind=ev.AGENT_LOGOUT, agent="a3"),
        LogEvent(at=T0 + 50, kind=ev.AGENT_LOGIN, agent="a4"),
        # not a login/logout/pause/resume: ignored
        LogEvent(at=T0 + 400, kind=ev.AGENT_STATE, agent="a4", data={"new": "BUSY"}),
        LogEvent(at=T0 + 500, kind=ev.AGENT_LOGIN, agent="a3", seq=1),
        # answers
        LogEvent(at=T0 + 100, kind=ev.CALL_ANSWERED, call_id="c1", agent="a1",
                 caller_number="13800000001", wait_s=3),
        LogEvent(at=T0 + 200, kind=ev.CALL_ANSWERED, call_id="c2", agent="a2",
                 caller_number="13800000001", wait_s=3),
        LogEvent(at=T0 + 50, kind=ev.CALL_ANSWERED, call_id="c3", agent="a3",
                 caller_number="13800000002", wait_s=3),
        LogEvent(at=T0 + 300, kind=ev.CALL_QUEUED, call_id="c4", caller_number="13800000003"),
        LogEvent(at=T0 + 300, kind=ev.CALL_ANSWERED, call_id="c5", agent="a1", wait_s=1),
    ]  # fmt: skip
    writer = EventLogWriter(pool=pool, engine_id="e1", backoff=FAST)
    await writer.start()
    try:
        for row in rows:
            writer.append(row)
        await writer.wait_flushed()
    finally:
        await writer.close()

    conn = await asyncpg.connect(pg.dsn)
    try:
        assert await load_agent_states(pool) == {
            "a1": ("PAUSED", T0 + 200, "lunch"),
            "a2": ("AVAILABLE", T0 + 180, None),
            "a3": ("AVAILABLE", T0 + 500, None),
            "a4": ("AVAILABLE", T0 + 50, None),
        }
        assert await load_agent_states(conn, since=T0 + 120) == {
            "a1": ("PAUSED", T0 + 200, "lunch"),
            "a2": ("AVAILABLE", T0 + 180, None),
            "a3": ("AVAILABLE", T0 + 500, None),
        }
        assert await load_agent_states(conn, since=T0 + 250) == {
            "a3": ("AVAILABLE", T0 + 500, None)
        }
        assert await load_repeat_callers(conn, since=T0) == {
            "13800000001": ("a2", T0 + 200),
            "13800000002": ("a3", T0 + 50),
        }
        assert await load_repeat_callers(pool, since=T0 + 60) == {"13800000001": ("a2", T0 + 200)}
    finally:
        await conn.close()


# ------------------------------------------------------------------- restore


def restore_warnings(caplog: pytest.LogCaptureFixture) -> int:
    return sum(r.name == "acd.restore" and r.levelno == logging.WARNING for r in caplog.records)


async def test_restore_from_log_reads_through_the_pool_and_never_raises(pg, pool, caplog):
    # No table yet: the database refuses the query; None, not an exception.
    assert await restore_from_log(pool, since=T0) is None
    assert restore_warnings(caplog) == 1

    await migrate(pg.dsn)
    writer = EventLogWriter(pool=pool, engine_id="e1", backoff=FAST)
    await writer.start()
    try:
        for row in [
            LogEvent(at=T0 + 100, kind=ev.AGENT_LOGIN, agent="a1"),
            LogEvent(at=T0 + 200, kind=ev.AGENT_PAUSED, agent="a1", data={"reason": "lunch"}),
            LogEvent(at=T0 + 10, kind=ev.AGENT_LOGIN, agent="a2"),
            LogEvent(at=T0 + 50, kind=ev.CALL_ANSWERED, call_id="c1", agent="a2",
                     caller_number="13800000002", wait_s=3),
            LogEvent(at=T0 + 150, kind=ev.CALL_ANSWERED, call_id="c2", agent="a1",
                     caller_number="13800000001", wait_s=3),
        ]:  # fmt: skip
            writer.append(row)
        await writer.wait_flushed()
    finally:
        await writer.close()

    restored = await restore_from_log(pool, since=T0 + 100)
    # Agent states whatever their age; only the callers answered since `since`.
    assert restored == RestoredState(
        agent_states={"a1": ("PAUSED", T0 + 200, "lunch"), "a2": ("AVAILABLE", T0 + 10, None)},
        repeat_callers={"13800000001": ("a1", T0 + 150)},
    )
    states, repeat_callers = restored  # as the runtime unpacks it
    assert states["a1"][0] == "PAUSED" and list(repeat_callers) == ["13800000001"]

    # PostgreSQL down: None and a warning; the same pool serves again once it is back.
    await pg.stop()
    assert await restore_from_log(pool, since=T0 + 100) is None
    assert restore_warnings(caplog) == 2
    await pg.start()
    assert await restore_from_log(pool, since=T0 + 100) == restored
    assert restore_warnings(caplog) == 2


async def test_restore_from_log_gives_up_on_a_silent_database_in_time(caplog):
    # It accepts connections and never answers: only the time bound ends the wait.
    peers: list[asyncio.StreamWriter] = []
    server = await asyncio.start_server(lambda _r, w: peers.append(w), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    try:
        async with runtime_pool(f"postgresql://hotline@127.0.0.1:{port}/hotline") as pool:
            started = loop.time()
            assert await restore_from_log(pool, since=T0, timeout_s=0.5) is None
            elapsed = loop.time() - started
    finally:
        for peer in peers:
            peer.close()
        server.close()
        await server.wait_closed()
    assert 0.4 < elapsed < 2.0
    assert restore_warnings(caplog) == 1
