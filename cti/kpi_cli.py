"""``hotline kpi``: recompute the KPIs from the event log in PostgreSQL.

Independent of a running engine: it reads ``acd_event`` only (acd/kpi_sql.py),
so it answers "what were the numbers" after the fact and cross-checks the
live dashboard. The ``hotline`` command wires it as::

    add_kpi_arguments(subparsers)
    ...
    elif args.command == "kpi":
        return asyncio.run(run_kpi(args))
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TextIO
from zoneinfo import ZoneInfo

import asyncpg

from acd.kpi_sql import BY_CHOICES, KpiRow, parse_window, recompute
from common.db import redact_dsn

__all__ = ["DEFAULT_WINDOWS", "add_kpi_arguments", "format_table", "run_kpi"]

DEFAULT_WINDOWS = ("15m", "30m", "60m", "today", "24h")


def add_kpi_arguments(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``kpi`` subcommand to *subparsers* (from ``add_subparsers``)."""
    kpi: argparse.ArgumentParser = subparsers.add_parser(
        "kpi",
        help="recompute the KPIs (15 s answer rate, abandons, ASA, AHT) from the event log",
        description="Recompute the KPIs from the PostgreSQL event log (acd_event). "
        "15s rate (÷offered-short) = answered within target / (offered - short abandons), "
        "the contract's 15秒接通率; 15s rate (÷answered) is Asterisk's service level.",
    )
    kpi.add_argument(
        "--dsn",
        default=os.environ.get("HOTLINE_PG_DSN"),
        help="PostgreSQL DSN (default: HOTLINE_PG_DSN)",
    )
    kpi.add_argument(
        "--window",
        action="append",
        metavar="WINDOW",
        help="15m, 30m, 60m, 24h (any Nm/Nh), today, or START/END local times such as "
        "2026-11-21T08:00/2026-11-21T09:00; repeatable "
        f"(default: {' '.join(DEFAULT_WINDOWS)})",
    )
    kpi.add_argument("--by", choices=BY_CHOICES, default=None, help="one row per line/queue/skill")
    kpi.add_argument("--json", action="store_true", help="print JSON instead of a table")
    kpi.add_argument("--tz", default="Asia/Shanghai", help="time zone of 'today' and local times")
    kpi.add_argument(
        "--answer-target-s", type=float, default=15.0, help="answer target in s (default 15)"
    )
    kpi.add_argument(
        "--short-abandon-s",
        type=float,
        default=5.0,
        help="abandons within this many s are short (default 5)",
    )
    return kpi


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def format_table(
    results: Sequence[tuple[str, float, float, KpiRow]], *, tz: str, answer_target_s: float
) -> str:
    """A fixed-width table of ``(window, start, end, row)`` results."""
    zone = ZoneInfo(tz)
    target = f"{answer_target_s:g}s"
    headers = [
        "window",
        "key",
        "offered",
        "answered",
        f"≤{target}",
        "short abandons",
        "abandoned",
        f"{target} rate (÷offered-short)",
        f"{target} rate (÷answered)",
        "answer rate",
        "abandon rate",
        "ASA s",
        "AHT s",
        "avg talk s",
    ]
    lines: list[list[str]] = []
    for window, _, _, row in results:
        lines.append(
            [
                window,
                row.key,
                str(row.offered),
                str(row.answered),
                str(row.answered_within_target),
                str(row.short_abandons),
                str(row.abandoned),
                _pct(row.rate_15s),
                _pct(row.rate_15s_of_answered),
                _pct(row.answer_rate),
                _pct(row.abandon_rate),
                _secs(row.asa_s),
                _secs(row.aht_s),
                _secs(row.avg_talk_s),
            ]
        )
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(headers)]

    def render(cells: list[str]) -> str:
        # text columns left, numbers right
        return "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    out = [render(headers), render(["-" * w for w in widths])]
    out.extend(render(line) for line in lines)
    spans = []
    seen: set[str] = set()
    for window, start, end, _ in results:
        if window in seen:
            continue
        seen.add(window)
        first = datetime.fromtimestamp(start, zone).strftime("%Y-%m-%d %H:%M:%S")
        last = datetime.fromtimestamp(end, zone).strftime("%Y-%m-%d %H:%M:%S")
        spans.append(f"  {window}: {first} .. {last} ({tz})")
    out.append("")
    out.append("windows (calls counted by the time of their queue outcome):")
    out.extend(spans)
    return "\n".join(out)


async def run_kpi(
    args: argparse.Namespace, *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Run ``hotline kpi``; returns the exit status (2 on a bad window or DSN)."""
    out = out or sys.stdout
    err = err or sys.stderr
    dsn = getattr(args, "dsn", None) or os.environ.get("HOTLINE_PG_DSN")
    tz = getattr(args, "tz", None) or "Asia/Shanghai"
    answer_target_s = float(getattr(args, "answer_target_s", 15.0))
    short_abandon_s = float(getattr(args, "short_abandon_s", 5.0))
    by = getattr(args, "by", None)
    windows = list(getattr(args, "window", None) or DEFAULT_WINDOWS)
    if not dsn:
        print(
            "hotline kpi: no PostgreSQL DSN; pass --dsn or set HOTLINE_PG_DSN",
            file=err,
        )
        return 2
    now = time.time()
    try:
        spans = [(w, *parse_window(w, now=now, tz=tz)) for w in windows]
    except ValueError as exc:
        print(f"hotline kpi: {exc}", file=err)
        return 2
    try:
        conn = await asyncpg.connect(dsn, timeout=10.0)
    except Exception as exc:  # any reason, same advice: this is the command's boundary
        print(
            f"hotline kpi: cannot reach PostgreSQL at {redact_dsn(dsn)}: {exc}; "
            f"set HOTLINE_PG_DSN (or --dsn) to the engine's database",
            file=err,
        )
        return 2
    try:
        results: list[tuple[str, float, float, KpiRow]] = []
        for window, start, end in spans:
            rows = await recompute(
                conn,
                start=start,
                end=end,
                answer_target_s=answer_target_s,
                short_abandon_s=short_abandon_s,
                by=by,
            )
            results.extend((window, start, end, row) for row in rows)
    except asyncpg.UndefinedTableError:
        print(
            f"hotline kpi: PostgreSQL at {redact_dsn(dsn)} has no acd_event table; "
            f"start the engine once (it applies config/migrations) or point --dsn at its database",
            file=err,
        )
        return 2
    finally:
        await conn.close()
    if getattr(args, "json", False):
        payload = [
            {"window": window, "start": start, "end": end, **dataclasses.asdict(row)}
            for window, start, end, row in results
        ]
        print(json.dumps(payload, ensure_ascii=False, indent=2), file=out)
    else:
        print(format_table(results, tz=tz, answer_target_s=answer_target_s), file=out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry (``python -m cti.kpi_cli``) until ``hotline kpi`` is wired."""
    parser = argparse.ArgumentParser(prog="hotline")
    add_kpi_arguments(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["kpi", *(sys.argv[1:] if argv is None else argv)])
    return asyncio.run(run_kpi(args))


if __name__ == "__main__":
    sys.exit(main())
