"""The engine's durable and shared state, started and stopped together:
migrations, the PostgreSQL event log, the Redis snapshot store. Each is
optional (no DSN or URL: not used) and none of them ever blocks routing.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cti.config import EngineConfig

log = logging.getLogger(__name__)


@dataclass
class Persistence:
    event_log: Any = None
    snapshot_store: Any = None


@contextlib.asynccontextmanager
async def persistence(
    config: EngineConfig, *, spill_dir: Path | None = None
) -> AsyncIterator[Persistence]:
    """Migrate, then run the event-log writer and the snapshot store."""
    result = Persistence()
    try:
        if config.database_dsn:
            from acd.event_log import EventLogWriter
            from common.db import migrate

            try:
                applied = await migrate(config.database_dsn)
                if applied:
                    log.info("database migrations applied: %s", ", ".join(applied))
            except Exception as exc:  # the writer retries; routing goes on without the DB
                log.error(
                    "database migrations not applied yet (%s); the event log will retry "
                    "and keep events until the database is reachable",
                    exc,
                )
            result.event_log = EventLogWriter(
                dsn=config.database_dsn,
                engine_id=config.engine_id,
                spill_path=(spill_dir / f"{config.engine_id}-event-log.jsonl")
                if spill_dir
                else None,
            )
            await result.event_log.start()
        else:
            log.warning("no database_dsn: the ACD event log is not kept (KPIs live only)")
        if config.redis_url:
            from acd.snapshot_store import SnapshotStore

            result.snapshot_store = SnapshotStore(url=config.redis_url)
            await result.snapshot_store.start()
        yield result
    finally:
        if result.snapshot_store is not None:
            await result.snapshot_store.close()
        if result.event_log is not None:
            await result.event_log.close()
