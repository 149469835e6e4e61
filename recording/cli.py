"""``hotline recordings ...``: the operators' commands.

Each prints what it did and exits non-zero when something is wrong (a
mismatch, a missing file, a refused deletion, nothing found to act on).
They read the same configuration file as ``hotline serve`` (``--config``,
plus the environment: ``HOTLINE_PG_DSN``, ``HOTLINE_DATA_DIR``, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["add_commands"]


def add_commands(sub: Any) -> None:
    top = sub.add_parser("recordings", help="search, audit, retain and transcribe call recordings")
    top.add_argument("--config", type=Path, default=None, help="TOML config file (as for serve)")
    actions = top.add_subparsers(dest="recordings_command", required=True)

    search = actions.add_parser("search", help="find recordings")
    search.add_argument("--from", dest="since", help="ISO 8601 time, inclusive")
    search.add_argument("--to", dest="until", help="ISO 8601 time, exclusive")
    search.add_argument("--caller", help="caller number")
    search.add_argument("--agent")
    search.add_argument("--queue")
    search.add_argument("--line")
    search.add_argument("--work-order")
    search.add_argument("--min-duration", type=float)
    search.add_argument("--max-duration", type=float)
    search.add_argument("--text", help="words in a transcript")
    search.add_argument("--limit", type=int, default=50)
    search.add_argument(
        "--unmasked", action="store_true", help="show callers' numbers in full (audited)"
    )

    actions.add_parser(
        "audit", help="re-hash every stored recording; list mismatches, missing and orphan files"
    )

    retention = actions.add_parser(
        "retention", help="delete recordings past retain_until (not on legal hold)"
    )
    retention.add_argument("--dry-run", action="store_true", help="only list what would go")

    transcribe = actions.add_parser("transcribe", help="transcribe one recording now")
    transcribe.add_argument("call_id")

    retry = actions.add_parser("retry", help="retry failed post-processing jobs")
    retry.add_argument("call_id", nargs="?", default=None)

    actions.add_parser("worker", help="run a post-processing worker in the foreground")
    top.set_defaults(func=main)


def _operator() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return "cli"


def main(args: argparse.Namespace) -> int:
    from cti.config import ConfigError, load_config

    from .config import RecordingConfig

    config = load_config(args.config, env=os.environ)
    section = config.section("recording", RecordingConfig)
    if not config.database_dsn:
        raise ConfigError("database_dsn", "missing: set it in the file or HOTLINE_PG_DSN")
    if args.recordings_command == "worker":
        from .worker import serve

        asyncio.run(
            serve(
                {
                    "dsn": config.database_dsn,
                    "data_dir": config.data_dir,
                    "section": section.__dict__,
                    "name": f"cli-{os.getpid()}",
                }
            )
        )
        return 0
    return asyncio.run(_run(args, config, section))


async def _run(args: argparse.Namespace, config: Any, section: Any) -> int:
    import asyncpg

    from common.db import migrate_all
    from cti.api.accounts import AuditLog

    from .feature import FEATURE
    from .pipeline import open_store

    pool = await asyncpg.create_pool(config.database_dsn, min_size=1, max_size=2)
    try:
        await migrate_all(pool, [(FEATURE.name, FEATURE.migrations)])
        audit = AuditLog(pool)
        operator = _operator()
        command = args.recordings_command
        if command == "search":
            return await _search(args, pool, audit, operator, section)
        if command == "retry":
            from .jobs import retry_failed

            count = await retry_failed(pool, args.call_id)
            print(f"{count} failed job(s) queued again")
            return 0 if count else 1
        store = await asyncio.to_thread(open_store, section, config.data_dir)
        if command == "audit":
            return await _audit(pool, store)
        if command == "retention":
            return await _retention(args, pool, store, audit, operator, section)
        if command == "transcribe":
            return await _transcribe(args, pool, store, section)
    finally:
        await pool.close()
    return 2


async def _search(args: Any, pool: Any, audit: Any, operator: str, section: Any) -> int:
    from cti.api.roles import mask_number

    from .catalog import Catalog, SearchFilter

    def when(value: str | None) -> datetime | None:
        if not value:
            return None
        parsed = datetime.fromisoformat(value)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

    query = SearchFilter(
        since=when(args.since),
        until=when(args.until),
        caller_number=args.caller,
        agent=args.agent,
        queue=args.queue,
        line=args.line,
        work_order=args.work_order,
        min_duration_s=args.min_duration,
        max_duration_s=args.max_duration,
        text=args.text,
        limit=args.limit,
    )
    total, rows = await Catalog(pool, retention_days=section.retention_days).search(query)
    if args.unmasked or query.reveals_number():
        await audit.record(
            operator,
            "recording_search",
            detail={
                "query": {k: v for k, v in vars(args).items() if k != "func"},
                "call_ids": [r["call_id"] for r in rows],
            },
        )
    print(f"{total} recording(s), showing {len(rows)}")
    for r in rows:
        number = mask_number(r["caller_number"], visible=args.unmasked)
        duration = f"{r['duration_s']:.1f}s" if r["duration_s"] is not None else "-"
        print(
            f"{r['id']:>6} {r['call_id']:<24} {r['started_at']:%Y-%m-%d %H:%M:%S} "
            f"{duration:>8} {number:<14} {','.join(r['agents']):<12} {r['state']:<8} "
            f"{r['storage_key'] or ''}"
        )
    return 0 if rows else 1


async def _audit(pool: Any, store: Any) -> int:
    from .retention import audit_integrity

    report = await audit_integrity(pool, store)
    print(
        f"checked {report.checked} stored file(s): {len(report.mismatches)} mismatch(es), "
        f"{len(report.missing)} missing, {len(report.orphans)} orphan(s), "
        f"{len(report.errors)} error(s)"
    )
    for call_id, key, expected, actual in report.mismatches:
        print(f"MISMATCH {call_id} {key}: catalog {expected}, file {actual}")
    for call_id, key in report.missing:
        print(f"MISSING  {call_id} {key}")
    for key in report.orphans:
        print(f"ORPHAN   {key} (in the store, not in the catalog)")
    for call_id, error in report.errors:
        print(f"ERROR    {call_id}: {error}")
    return 0 if report.ok else 1


async def _retention(
    args: Any, pool: Any, store: Any, audit: Any, operator: str, section: Any
) -> int:
    from .retention import run_retention

    report = await run_retention(
        pool,
        store,
        now=datetime.now(UTC),
        operator=operator,
        dry_run=args.dry_run,
        batch=section.retention_batch,
    )
    verb = "would delete" if args.dry_run else "deleted"
    print(
        f"{verb} {len(report.deleted)} recording(s); {len(report.held)} past retention "
        f"kept on legal hold; {len(report.refused)} refused"
    )
    for call_id in report.deleted:
        print(f"{'WOULD DELETE' if args.dry_run else 'DELETED'} {call_id}")
    for call_id, why in report.refused:
        print(f"REFUSED {call_id}: {why}")
    return 0 if report.ok else 1


async def _transcribe(args: Any, pool: Any, store: Any, section: Any) -> int:
    from .catalog import save_transcripts
    from .transcribe import Transcriber
    from .transcripts import transcribe_legs

    row = await pool.fetchrow(
        "SELECT id, legs_key, state FROM recording WHERE call_id = $1", args.call_id
    )
    if row is None:
        print(f"no recording for call {args.call_id}", file=sys.stderr)
        return 1
    if row["state"] != "stored" or not row["legs_key"]:
        print(
            f"call {args.call_id}: recording is {row['state']}, no legs stored yet", file=sys.stderr
        )
        return 1
    model = section.transcript_model
    if not model:
        print(
            "no vosk model: set recording.transcript_model to a model directory (see README)",
            file=sys.stderr,
        )
        return 1
    transcriber = await asyncio.to_thread(Transcriber, Path(model))
    results = await asyncio.to_thread(transcribe_legs, store, row["legs_key"], transcriber)
    async with pool.acquire() as conn:
        await save_transcripts(conn, row["id"], results, Path(model).name)
    for direction, transcript in results.items():
        print(f"{direction}: {transcript.text or '(nothing said)'} ({len(transcript.words)} words)")
    return 0
