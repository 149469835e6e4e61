"""KPIs recomputed in SQL from a hand-made event log, checked against values
worked out by hand below; window parsing; the ``hotline kpi`` command."""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import AsyncIterator
from datetime import datetime
from zoneinfo import ZoneInfo

import asyncpg
import pytest
import pytest_asyncio

from acd import log_events as ev
from acd.event_log import EventLogWriter
from acd.kpi_sql import KpiRow, parse_window, recompute
from acd.log_events import LogEvent
from common.backoff import Backoff
from common.db import migrate
from cti.kpi_cli import add_kpi_arguments, run_kpi
from cti.stack.ports import free_tcp_port
from cti.stack.postgres import PrivatePostgres

pytestmark = pytest.mark.integration

SHANGHAI = ZoneInfo("Asia/Shanghai")
# 2026-11-21 08:00 in Shanghai; the window under test is 08:00-09:00.
T0 = datetime(2026, 11, 21, 8, 0, tzinfo=SHANGHAI).timestamp()
HOUR = 3600.0


def call_rows() -> list[LogEvent]:
    """The hand-made log. Offsets are seconds after T0; L1/Q1 vs L2/Q2, skills S1/S2."""
    rows: list[LogEvent] = []

    def add(at: float, kind: str, call: str, **fields) -> None:
        rows.append(LogEvent(at=T0 + at, kind=kind, call_id=call, **fields))

    def queued(at: float, call: str, line: str, queue: str, skill: str, seq: int = 0) -> None:
        add(
            at,
            ev.CALL_QUEUED,
            call,
            line=line,
            queue=queue,
            skill=skill,
            seq=seq,
            caller_number=f"138{call}",
        )

    # c1: answered at 14.9 s (within), talk 100 + wrap 20
    queued(10, "c1", "L1", "Q1", "S1")
    add(20, ev.CALL_OFFERED_TO_AGENT, "c1", agent="a1")
    add(20, ev.AGENT_RINGING, "c1", agent="a1")
    add(24.9, ev.CALL_ANSWERED, "c1", agent="a1", wait_s=14.9)
    add(124.9, ev.CALL_ENDED, "c1", agent="a1", talk_s=100)
    add(144.9, ev.WRAPUP_ENDED, "c1", agent="a1", wrap_s=20)
    # c2: answered at exactly 15.0 s (counts as within), talk 200, no wrap-up
    queued(100, "c2", "L1", "Q1", "S1")
    add(115, ev.CALL_ANSWERED, "c2", agent="a2", wait_s=15.0)
    add(315, ev.CALL_ENDED, "c2", agent="a2", talk_s=200)
    # c3: answered at 15.1 s (late), skill S2, talk 300 + wrap 30
    queued(200, "c3", "L1", "Q1", "S2")
    add(215.1, ev.CALL_ANSWERED, "c3", agent="a1", wait_s=15.1)
    add(515.1, ev.CALL_ENDED, "c3", agent="a1", talk_s=300)
    add(545.1, ev.WRAPUP_ENDED, "c3", agent="a1", wrap_s=30)
    # c4: abandoned at 3 s (short); c5: abandoned at 8 s
    queued(300, "c4", "L1", "Q1", "S1")
    add(303, ev.CALL_ABANDONED, "c4", wait_s=3)
    queued(400, "c5", "L1", "Q1", "S1")
    add(408, ev.CALL_ABANDONED, "c5", wait_s=8)
    # c6: answered at 5 s then transferred (one offer, one answer), talk 400,
    # one wrap-up per agent 10 + 20
    queued(500, "c6", "L2", "Q2", "S1")
    add(505, ev.CALL_ANSWERED, "c6", agent="a3", wait_s=5)
    add(600, ev.CALL_TRANSFERRED, "c6", agent="a3", data={"to": "a4"})
    add(600, ev.AGENT_CONNECTED, "c6", agent="a4")
    add(905, ev.CALL_ENDED, "c6", agent="a4", talk_s=400)
    add(915, ev.WRAPUP_ENDED, "c6", agent="a3", wrap_s=10)
    add(925, ev.WRAPUP_ENDED, "c6", agent="a4", wrap_s=20, seq=1)
    # c7: ring-no-answer, requeued, answered at 25 s, talk 50
    queued(600, "c7", "L2", "Q2", "S2")
    add(605, ev.CALL_OFFERED_TO_AGENT, "c7", agent="a1")
    add(613, ev.AGENT_NO_ANSWER, "c7", agent="a1")
    add(613, ev.CALL_REQUEUED, "c7")
    add(614, ev.CALL_OFFERED_TO_AGENT, "c7", agent="a2", seq=1)
    add(625, ev.CALL_ANSWERED, "c7", agent="a2", wait_s=25)
    add(675, ev.CALL_ENDED, "c7", agent="a2", talk_s=50)
    # c8: overflowed to a callback after 60 s
    queued(700, "c8", "L2", "Q2", "S1")
    add(760, ev.CALL_OVERFLOWED, "c8", wait_s=60, data={"to": "callback"})
    # c9: overflowed from Q1 to Q2 (not an outcome), answered there at 40 s:
    # attributed to Q1, its first queue
    queued(800, "c9", "L1", "Q1", "S1")
    add(830, ev.CALL_OVERFLOWED, "c9", data={"to_queue": "Q2"})
    queued(830, "c9", "L1", "Q2", "S1", seq=1)
    add(840, ev.CALL_ANSWERED, "c9", agent="a3", wait_s=40)
    add(940, ev.CALL_ENDED, "c9", agent="a3", talk_s=100)
    # c10: lost (vanished while the engine was disconnected) after 12 s
    queued(900, "c10", "L1", "Q1", "S1")
    add(912, ev.CALL_LOST, "c10", wait_s=12)
    # c11: answered before the window; its end (talk 180) is inside it
    queued(-100, "c11", "L1", "Q1", "S1")
    add(-80, ev.CALL_ANSWERED, "c11", agent="a2", wait_s=20)
    add(100, ev.CALL_ENDED, "c11", agent="a2", talk_s=180)
    # c12: answered after the window
    queued(3590, "c12", "L2", "Q2", "S1")
    add(3610, ev.CALL_ANSWERED, "c12", agent="a4", wait_s=20)
    # c13: still waiting: not offered in any window yet
    queued(3000, "c13", "L1", "Q1", "S1")
    # c14: abandoned at 10 s; a later CALL_LOST does not change the outcome
    queued(1000, "c14", "L1", "Q1", "S1")
    add(1010, ev.CALL_ABANDONED, "c14", wait_s=10)
    add(1100, ev.CALL_LOST, "c14", wait_s=100)
    # agent rows never count as calls
    rows.append(LogEvent(at=T0 + 1, kind=ev.AGENT_LOGIN, agent="a1"))
    return rows  # fmt: skip


@pytest_asyncio.fixture
async def pg(private_postgres: PrivatePostgres) -> AsyncIterator[PrivatePostgres]:
    """The private PostgreSQL, migrated and holding :func:`call_rows`."""
    server = private_postgres
    await migrate(server.dsn)
    async with asyncpg.create_pool(server.dsn, min_size=0, max_size=1) as pool:
        writer = EventLogWriter(pool=pool, engine_id="test", backoff=Backoff(base_s=0.05))
        await writer.start()
        try:
            for row in call_rows():
                writer.append(row)
            await writer.wait_flushed()
        finally:
            await writer.close()
    yield server


def approx_row(**expected: object) -> dict[str, object]:
    return {k: pytest.approx(v) if isinstance(v, float) else v for k, v in expected.items()}


def as_dict(row: KpiRow) -> dict[str, object]:
    return row.__dict__.copy()


# Worked out by hand from call_rows(), window [08:00, 09:00]:
# outcomes in the window: c1 c2 c3 c6 c7 c9 answered (waits 14.9 15.0 15.1 5 25 40),
# c4 (3 s, short) c5 (8 s) c14 (10 s) abandoned, c8 callback, c10 lost -> 11 offered.
# Talk (CALL_ENDED in the window, answered calls): c1 100, c2 200, c3 300, c6 400,
# c7 50, c9 100, c11 180 -> 1330 / 7 = 190.
# AHT: c1 120, c2 200, c3 330, c6 430, c7 50, c9 100, c11 180 -> 1410 / 7.
ALL = approx_row(
    key="all", offered=11, answered=6, answered_within_target=3, abandoned=3,
    short_abandons=1, overflowed_to_callback=1, lost=1,
    rate_15s=3 / 10, rate_15s_of_answered=3 / 6, answer_rate=6 / 10, abandon_rate=2 / 10,
    asa_s=115 / 6, avg_talk_s=190.0, aht_s=1410 / 7,
)  # fmt: skip
# L1/Q1: c1 c2 c3 c9 answered (2 within), c4 c5 c14 abandoned (1 short), c10 lost;
# talk c1 c2 c3 c9 c11 = 880 / 5; AHT 120 + 200 + 330 + 100 + 180 = 930 / 5.
FIRST = dict(
    offered=8, answered=4, answered_within_target=2, abandoned=3, short_abandons=1,
    overflowed_to_callback=0, lost=1, rate_15s=2 / 7, rate_15s_of_answered=2 / 4,
    answer_rate=4 / 7, abandon_rate=2 / 7, asa_s=85 / 4, avg_talk_s=176.0, aht_s=186.0,
)  # fmt: skip
# L2/Q2: c6 c7 answered (1 within), c8 callback; talk 400 + 50; AHT 430 + 50.
SECOND = dict(
    offered=3, answered=2, answered_within_target=1, abandoned=0, short_abandons=0,
    overflowed_to_callback=1, lost=0, rate_15s=1 / 3, rate_15s_of_answered=1 / 2,
    answer_rate=2 / 3, abandon_rate=0.0, asa_s=15.0, avg_talk_s=225.0, aht_s=240.0,
)  # fmt: skip


async def test_recompute_matches_the_hand_computed_kpis(pg):
    conn = await asyncpg.connect(pg.dsn)
    try:
        hour = {"start": T0, "end": T0 + HOUR}
        assert [as_dict(r) for r in await recompute(conn, **hour)] == [ALL]
        assert [as_dict(r) for r in await recompute(conn, **hour, by="line")] == [
            approx_row(key="L1", **FIRST),
            approx_row(key="L2", **SECOND),
        ]
        # c9 moved from Q1 to Q2 but belongs to Q1, the queue it first entered.
        assert [as_dict(r) for r in await recompute(conn, **hour, by="queue")] == [
            approx_row(key="Q1", **FIRST),
            approx_row(key="Q2", **SECOND),
        ]
        by_skill = {r.key: r for r in await recompute(conn, **hour, by="skill")}
        assert set(by_skill) == {"S1", "S2"}
        # S2: c3 (15.1 s) and c7 (25 s): both answered late.
        assert as_dict(by_skill["S2"]) == approx_row(
            key="S2", offered=2, answered=2, answered_within_target=0, abandoned=0,
            short_abandons=0, overflowed_to_callback=0, lost=0, rate_15s=0.0,
            rate_15s_of_answered=0.0, answer_rate=1.0, abandon_rate=0.0,
            asa_s=20.05, avg_talk_s=175.0, aht_s=190.0,
        )  # fmt: skip
        assert by_skill["S1"].offered == 9

        # Thresholds are parameters: at 20 s c3 is within too; at 8 s c5 is short.
        wider = (await recompute(conn, **hour, answer_target_s=20, short_abandon_s=8))[0]
        assert (wider.answered_within_target, wider.short_abandons) == (4, 2)
        assert wider.rate_15s == pytest.approx(4 / 9)
        assert wider.abandon_rate == pytest.approx(1 / 9)
    finally:
        await conn.close()


async def test_windows_count_calls_by_outcome_time_with_both_ends_included(pg):
    conn = await asyncpg.connect(pg.dsn)
    try:
        # [08:00, 08:05]: c1 c2 c3 answered; c4's abandon at 303 s is outside.
        # Talk: c1 (ended 124.9) and c11 (ended 100); AHT: c1 done 144.9, c11 done 100.
        (first5,) = await recompute(conn, start=T0, end=T0 + 300)
        assert (first5.offered, first5.answered, first5.answered_within_target) == (3, 3, 2)
        assert (first5.avg_talk_s, first5.aht_s) == (pytest.approx(140.0), pytest.approx(150.0))

        # Both ends are included: outcomes exactly at 115 s (c2) and 215.1 s (c3).
        (edges,) = await recompute(conn, start=T0 + 115, end=T0 + 215.1)
        assert (edges.offered, edges.answered_within_target) == (2, 1)

        # c6 queued before this window and answered on its first instant: counted.
        (later,) = await recompute(conn, start=T0 + 505, end=T0 + 1100)
        assert (later.offered, later.answered, later.abandoned) == (6, 3, 1)
        assert (later.overflowed_to_callback, later.lost) == (1, 1)

        # Idle window: one "all" row of zeros, rates undefined; per line: no rows.
        (idle,) = await recompute(conn, start=T0 + 2 * HOUR, end=T0 + 3 * HOUR)
        assert (idle.offered, idle.rate_15s, idle.asa_s, idle.aht_s) == (0, None, None, None)
        assert await recompute(conn, start=T0 + 2 * HOUR, end=T0 + 3 * HOUR, by="line") == []

        with pytest.raises(ValueError, match="by must be"):
            await recompute(conn, start=T0, end=T0 + HOUR, by="agent")
    finally:
        await conn.close()


def test_parse_window_forms():
    now = datetime(2026, 11, 21, 10, 30, tzinfo=SHANGHAI).timestamp()
    assert parse_window("15m", now=now) == (now - 900, now)
    assert parse_window("30m", now=now) == (now - 1800, now)
    assert parse_window("60m", now=now) == (now - 3600, now)
    assert parse_window("24h", now=now) == (now - 86400, now)
    # 'today' starts at Shanghai midnight, which is 16:00 UTC the day before.
    start, end = parse_window("today", now=now)
    assert datetime.fromtimestamp(start, ZoneInfo("UTC")).isoformat() == (
        "2026-11-20T16:00:00+00:00"
    )
    assert end == now
    # At 00:30 Shanghai (16:30 UTC) 'today' is only half an hour old.
    just_after = datetime(2026, 11, 21, 0, 30, tzinfo=SHANGHAI).timestamp()
    assert parse_window("today", now=just_after) == (just_after - 1800, just_after)
    assert parse_window("2026-11-21T08:00/2026-11-21T09:00", now=now) == (T0, T0 + HOUR)
    # An explicit offset is honoured; another zone can be asked for.
    assert parse_window("2026-11-21T00:00+00:00/2026-11-21T01:00+00:00", now=now) == (
        T0,
        T0 + HOUR,
    )
    assert (
        parse_window("today", now=now, tz="UTC")[0]
        == datetime(2026, 11, 21, tzinfo=ZoneInfo("UTC")).timestamp()
    )
    for bad in ("15", "0m", "yesterday", "15s", "2026-11-21T09:00/2026-11-21T08:00", "a/b"):
        with pytest.raises(ValueError, match=r"use 15m, 30m, 60m or 24h.*today.*START/END"):
            parse_window(bad, now=now)


def _kpi_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="hotline")
    add_kpi_arguments(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["kpi", *argv])


async def test_hotline_kpi_prints_a_table_and_json(pg, monkeypatch):
    monkeypatch.setenv("HOTLINE_PG_DSN", pg.dsn)
    out, err = io.StringIO(), io.StringIO()
    args = _kpi_args("--window", "2026-11-21T08:00/2026-11-21T09:00", "--window", "15m")
    assert args.dsn == pg.dsn and args.by is None
    assert await run_kpi(args, out=out, err=err) == 0, err.getvalue()
    table = out.getvalue()
    lines = table.splitlines()
    assert lines[0].split()[:6] == ["window", "key", "offered", "answered", "≤15s", "short"]
    assert "15s rate (÷offered-short)" in lines[0] and "15s rate (÷answered)" in lines[0]
    hour = next(line for line in lines if line.startswith("2026-11-21T08:00/"))
    assert hour.split()[1:] == [
        "all", "11", "6", "3", "1", "3", "30.0%", "50.0%", "60.0%", "20.0%",
        "19.2", "201.4", "190.0",
    ]  # fmt: skip
    recent = next(line for line in lines if line.startswith("15m "))
    assert recent.split()[1] == "all"  # its numbers depend on the wall clock
    assert "2026-11-21 08:00:00 .. 2026-11-21 09:00:00 (Asia/Shanghai)" in table

    out = io.StringIO()
    args = _kpi_args("--dsn", pg.dsn, "--window", "2026-11-21T08:00/2026-11-21T09:00",
                     "--by", "line", "--json")  # fmt: skip
    assert await run_kpi(args, out=out, err=err) == 0
    rows = json.loads(out.getvalue())
    assert [(r["key"], r["offered"], r["answered"]) for r in rows] == [("L1", 8, 4), ("L2", 3, 2)]
    assert rows[0]["start"] == T0 and rows[0]["rate_15s"] == pytest.approx(2 / 7)


async def test_hotline_kpi_without_a_reachable_database_exits_2(monkeypatch):
    port = free_tcp_port()  # nothing listens there
    err = io.StringIO()
    args = _kpi_args("--dsn", f"postgresql://hotline:s3cret@127.0.0.1:{port}/hotline")
    assert await run_kpi(args, out=io.StringIO(), err=err) == 2
    message = err.getvalue()
    assert f"cannot reach PostgreSQL at hotline@127.0.0.1:{port}/hotline" in message
    assert "set HOTLINE_PG_DSN" in message and "s3cret" not in message

    monkeypatch.delenv("HOTLINE_PG_DSN", raising=False)
    err = io.StringIO()
    assert await run_kpi(_kpi_args(), out=io.StringIO(), err=err) == 2
    assert "set HOTLINE_PG_DSN" in err.getvalue()

    err = io.StringIO()
    args = _kpi_args("--dsn", f"postgresql://127.0.0.1:{port}/x", "--window", "yesterday")
    assert await run_kpi(args, out=io.StringIO(), err=err) == 2
    assert "bad KPI window 'yesterday'" in err.getvalue()
