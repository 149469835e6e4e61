"""Recording on the feature contract: every answered call recorded,
catalogued, post-processed off the event loop, stored, kept, checked,
searched and played."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from common import ami_actions
from common import channel_vars as var
from common.call_changes import CallChange
from common.tasks import start_task
from cti import events
from cti.bus import ami
from cti.engine import Resynced
from cti.feature import ConfigSection, Feature
from cti.stack.render import render

from . import http
from .catalog import Catalog
from .cli import add_commands
from .config import RecordingConfig, validate_recording
from .core import RecordingFiles
from .pipeline import StoreOpener
from .retention import run_retention
from .service import RECORDING_EVENT, RecordingService, WorkerPool, epoch_or_none, settings_for

if TYPE_CHECKING:
    from cti.config import EngineConfig
    from cti.runtime import Runtime

__all__ = ["FEATURE"]

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def run(runtime: Runtime, section: RecordingConfig) -> AsyncIterator[None]:
    config = runtime.config
    catalog = Catalog(runtime.pool, retention_days=section.retention_days)
    stores = StoreOpener(section, config.data_dir)
    workers = WorkerPool(
        settings_for(config.database_dsn, config.data_dir, section), section.workers
    )
    service = RecordingService(
        section=section,
        catalog=catalog,
        pool=runtime.pool,
        workers=workers,
        publish=runtime.bus.publish,
        clock=runtime.clock,
    )
    runtime.app[http.RECORDINGS] = http.RecordingAccess(catalog=catalog, stores=stores)
    runtime.services["recording"] = service
    runtime.bus.subscribe(CallChange, service.on_change, name="recording")
    runtime.bus.subscribe(
        ami(f"UserEvent:{RECORDING_EVENT}"), service.on_recording_event, name="recording: armed"
    )

    async def retention_forever() -> None:
        while True:
            await asyncio.sleep(section.retention_every_s)
            try:
                report = await run_retention(
                    runtime.pool,
                    await asyncio.to_thread(stores),
                    now=datetime.fromtimestamp(runtime.clock(), UTC),
                    operator="system",
                    batch=section.retention_batch,
                )
            except Exception:  # the store or the database away: next period
                log.exception(
                    "recording retention did not run; next try in %.0f s", section.retention_every_s
                )
                continue
            if report.deleted or report.refused:
                log.info(
                    "recording retention: %d deleted, %d refused, %d kept on legal hold",
                    len(report.deleted),
                    len(report.refused),
                    len(report.held),
                )

    async def reconcile() -> None:
        """After each (re)connect: the recordings the switch is making, calls
        answered while the engine was away, rows whose call is gone, and raw
        files nobody reported (see RecordingService)."""
        try:
            reply = await runtime.link.send_action(
                ami_actions.status([var.CALL_ID, var.RECORDING, var.RECORDING_AT])
            )
            armed = {}
            for row in reply if isinstance(reply, list) else [reply]:
                values = events.status_variables(row) if events.event_name(row) == "Status" else {}
                if values.get(var.RECORDING) and values.get(var.CALL_ID):
                    armed[values[var.CALL_ID]] = RecordingFiles.beside(
                        values[var.RECORDING], epoch_or_none(values.get(var.RECORDING_AT))
                    )
            service.adopt(armed, runtime.model.calls)
            if not section.asterisk_dir:
                found = await runtime.link.send_action(ami_actions.getvar(var.RECORDING_DIR))
                directory = events.header(found, "Value") if isinstance(found, dict) else ""
                if directory:
                    service.note_raw_dir(directory)
            live = set(runtime.model.calls)
            await service.close_stale(live)
            await service.sweep(service.raw_dirs, live)
        except Exception:  # the link dropped again, or the database is away
            log.exception("recording: reconcile after the resync did not finish")

    reconciling: set[asyncio.Task[None]] = set()

    def resynced(_: Resynced) -> None:
        task = asyncio.create_task(reconcile(), name="recording: reconcile")
        reconciling.add(task)
        task.add_done_callback(reconciling.discard)

    runtime.bus.subscribe(Resynced, resynced, name="recording: resync")

    tasks = [
        start_task(service.perform_forever(), name="recording: catalog"),
        start_task(service.watch_forever(), name="recording: alarms"),
    ]
    if section.retention_every_s:
        tasks.append(start_task(retention_forever(), name="recording: retention"))
    try:
        yield
    finally:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5.0):
                await service.idle()
        for task in [*tasks, *reconciling]:
            task.cancel()
        await asyncio.gather(*tasks, *reconciling, return_exceptions=True)
        await workers.stop()


def dialplan(section: RecordingConfig, config: EngineConfig) -> str:
    template = (Path(__file__).parent / "dialplan.conf.tmpl").read_text(encoding="utf-8")
    return render(
        template,
        {"recording_dir": section.asterisk_dir or "${HOTLINE_RECORDING_DIR}"},
        name="recording/dialplan.conf.tmpl",
    )


FEATURE = Feature(
    name="recording",
    summary="every answered call recorded, catalogued, stored for at least a year, checked, "
    "searchable and played back",
    config=ConfigSection(
        "recording",
        RecordingConfig,
        validate_recording,
        env={
            "HOTLINE_S3_ACCESS_KEY": "s3_access_key",
            "HOTLINE_S3_SECRET_KEY": "s3_secret_key",
        },
    ),
    migrations=Path(__file__).parent / "migrations",
    dialplan=dialplan,
    routes=http.add_routes,
    openapi=http.openapi,
    run=run,
    commands=add_commands,
)
