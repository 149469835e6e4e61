"""``hotline city-sim`` and ``hotline workorders ...``: the operators'
commands. Each prints what it did and exits non-zero when something is
wrong (dead letters, reconciliation gaps, a message that cannot be retried).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import date
from pathlib import Path
from typing import Any

__all__ = ["add_commands"]


def add_commands(sub: Any) -> None:
    sim = sub.add_parser("city-sim", help="run the city 12345 platform simulator on its own")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=8090)
    sim.add_argument("--webhook-url", default=None, help="where to push status events (rest)")
    sim.add_argument("--error-rate", type=float, default=0.0, help="share of requests answered 500")
    sim.add_argument("--timeout-rate", type=float, default=0.0, help="share left hanging")
    sim.add_argument("--slow-ms", type=int, default=0, help="delay every answer")
    sim.add_argument("--lost-ack-rate", type=float, default=0.0, help="share done but answered 502")
    sim.add_argument(
        "--duplicate-reply-rate", type=float, default=0.0, help="status events sent twice"
    )
    sim.add_argument("--reject-pattern", default="", help="refuse (400) orders matching this regex")
    sim.add_argument("--down-for", type=float, default=0.0, help="start down for S seconds")
    sim.add_argument("--seed", type=int, default=12345)
    sim.set_defaults(func=_city_sim)

    top = sub.add_parser("workorders", help="the work-order outbox to the city and reconciliation")
    top.add_argument("--config", type=Path, default=None, help="TOML config file (as for serve)")
    actions = top.add_subparsers(dest="workorders_command", required=True)
    outbox = actions.add_parser("outbox", help="depth, oldest message, dead letters")
    outbox.add_argument("--retry", type=int, default=None, metavar="ID", help="retry a dead letter")
    reconcile = actions.add_parser("reconcile", help="compare a day's orders with the city's")
    reconcile.add_argument("--date", type=date.fromisoformat, required=True, metavar="YYYY-MM-DD")
    actions.add_parser("deliver", help="run an outbox delivery worker in the foreground")
    top.set_defaults(func=_workorders)


def _city_sim(args: argparse.Namespace) -> int:
    from .city.simulator import Faults, SimulatorConfig, run_simulator

    faults = Faults(
        error_rate=args.error_rate,
        timeout_rate=args.timeout_rate,
        slow_ms=args.slow_ms,
        lost_ack_rate=args.lost_ack_rate,
        duplicate_reply_rate=args.duplicate_reply_rate,
        reject_rate=1.0 if args.reject_pattern else 0.0,
        reject_pattern=args.reject_pattern,
    )
    config = SimulatorConfig(webhook_url=args.webhook_url, faults=faults, seed=args.seed)
    print(f"city-sim: listening on http://{args.host}:{args.port} (faults: {faults})", flush=True)

    async def serve() -> None:
        await run_simulator(args.host, args.port, config)

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    return 0


def _workorders(args: argparse.Namespace) -> int:
    from cti.config import ConfigError, load_config

    from .config import WorkOrderConfig

    config = load_config(args.config, env=os.environ)
    section = config.section("workorders", WorkOrderConfig)
    if not config.database_dsn:
        raise ConfigError("database_dsn", "missing: set it in the file or HOTLINE_PG_DSN")
    if args.workorders_command == "deliver":
        from .deliver import serve

        if not section.city_url:
            raise ConfigError("workorders.city_url", "missing: where is the city platform?")
        asyncio.run(
            serve(
                {
                    "dsn": config.database_dsn,
                    "adapter": section.city_adapter,
                    "city_url": section.city_url,
                    "app_key": section.app_key,
                    "secret": section.secret,
                    "token": section.token,
                    "lease_s": section.lease_s,
                    "timeout_s": section.timeout_s,
                }
            )
        )
        return 0
    return asyncio.run(_run(args, config, section))


async def _run(args: argparse.Namespace, config: Any, section: Any) -> int:
    import asyncpg

    from common.db import migrate_all

    from .feature import FEATURE

    pool = await asyncpg.create_pool(config.database_dsn, min_size=1, max_size=2)
    try:
        await migrate_all(pool, [(FEATURE.name, FEATURE.migrations)])
        if args.workorders_command == "outbox":
            return await _outbox(args, pool)
        return await _reconcile(args, pool, section)
    finally:
        await pool.close()


async def _outbox(args: argparse.Namespace, pool: Any) -> int:
    from .outbox import outbox_stats, retry_dead

    if args.retry is not None:
        if await retry_dead(pool, args.retry):
            print(f"message {args.retry} queued again")
            return 0
        print(f"no dead letter {args.retry}", file=sys.stderr)
        return 1
    stats = await outbox_stats(pool)
    oldest = f"{stats.oldest_age_s:.0f} s" if stats.oldest_age_s is not None else "-"
    print(f"outbox: {stats.depth} message(s) to deliver, oldest {oldest}; {len(stats.dead)} dead")
    for dead in stats.dead:
        print(
            f"DEAD {dead['id']} {dead['order_no']} {dead['kind']} seq {dead['seq']}"
            f" after {dead['attempts']} attempt(s): {dead['last_error']}"
        )
    return 1 if stats.dead else 0


async def _reconcile(args: argparse.Namespace, pool: Any, section: Any) -> int:
    import aiohttp

    from cti.config import ConfigError

    from .deliver import adapter_for
    from .reconcile import reconcile_day

    if not section.city_url:
        raise ConfigError("workorders.city_url", "missing: where is the city platform?")
    async with aiohttp.ClientSession() as session:
        adapter = adapter_for(
            {
                "adapter": section.city_adapter,
                "city_url": section.city_url,
                "app_key": section.app_key,
                "secret": section.secret,
                "token": section.token,
                "timeout_s": section.timeout_s,
            },
            session,
        )
        report = await reconcile_day(pool, adapter, args.date, tz="Asia/Shanghai")
    print(
        f"{report.day}: ours {report.ours}, the city's {report.theirs}, matched {report.matched};"
        f" numbers repaired {len(report.number_repaired)}, resent {len(report.resent)},"
        f" in flight {len(report.not_yet_sent)}, unknown here {len(report.unknown_at_ours)}"
    )
    for order_no, city_no in report.number_repaired:
        print(f"REPAIRED {order_no} -> {city_no}")
    for order_no in report.resent:
        print(f"RESENT   {order_no} (delivered here, missing at the city)")
    for order_no in report.unknown_at_ours:
        print(f"UNKNOWN  {order_no} (at the city, not here)")
    return 0 if report.ok else 1
