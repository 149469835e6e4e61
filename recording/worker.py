"""A post-processing worker process: takes recording jobs from PostgreSQL
and runs them (repair, transcode, check, hash, store, verify; transcripts).

Started by the engine (``[recording] workers``) or on any other machine
that sees the raw files and the store: ``hotline recordings worker``. The
engine's event loop never runs this work. Settings come on stdin as JSON
(``{"dsn", "data_dir", "section", "name"}``) so that no secret appears on a
command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import asyncpg

from common.backoff import Backoff

from .catalog import save_transcripts
from .config import RecordingConfig
from .jobs import CHANNEL, Job, JobQueue
from .pipeline import NotReady, RawMissing, StoreOpener, process_recording, remove_raw
from .store import Store, StoreFull, StoreUnavailable

__all__ = ["Worker", "main", "worker_settings"]

log = logging.getLogger(__name__)

IDLE_POLL_S = 1.0
WORKER_NICENESS = 10
RETRY_BACKOFF = Backoff(base_s=2.0, cap_s=300.0)
NOT_READY_DELAY_S = 1.0


def worker_settings(dsn: str, data_dir: str, section: RecordingConfig, name: str) -> bytes:
    return json.dumps(
        {"dsn": dsn, "data_dir": data_dir, "section": asdict(section), "name": name}
    ).encode()


class LeaseLost(Exception):
    """The job's lease ran out and another worker took it: this worker's
    result is dropped (the other one stores the same recording)."""


class Worker:
    def __init__(
        self,
        conn: Any,
        section: RecordingConfig,
        stores: Callable[[], Store],
        *,
        name: str,
        kinds: tuple[str, ...] = ("process", "transcribe"),
    ) -> None:
        self.conn = conn
        self.section = section
        self.stores = stores
        """The store, opened (again) on demand: may raise StoreUnavailable."""
        self.name = name
        self.kinds = kinds
        self.queue = JobQueue(conn, worker=name, lease_s=section.lease_s)
        self._transcriber: Any = None
        self._wake = asyncio.Event()
        self._stopping = False

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        await self.conn.add_listener(CHANNEL, lambda *_: self._wake.set())
        while not self._stopping:
            if not await self.run_once():
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), IDLE_POLL_S)

    async def run_once(self) -> bool:
        """Take and run one job; False when there was none."""
        job = await self.queue.take(self.kinds)
        if job is None:
            return False
        if job.attempts > self.section.max_attempts:
            # Taken again after its lease ran out, more often than failures
            # are allowed: its worker dies on it (memory, a crashing codec).
            await self.queue.fail(
                job, f"taken {job.attempts - 1} times by workers that never finished it"
            )
            return True
        record = await self.conn.fetchrow("SELECT * FROM recording WHERE id = $1", job.recording_id)
        if record is None:
            await self.queue.done(job)
            return True
        record = dict(record)
        try:
            if job.kind == "process":
                await self._process(job, record)
            else:
                await self._transcribe(job, record)
        except NotReady:
            await self.queue.later(job, NOT_READY_DELAY_S, counts=False)
        except LeaseLost:
            log.warning(
                "recording %s: job %d finished by another worker", record["call_id"], job.id
            )
        except (StoreFull, StoreUnavailable) as exc:
            # The raw file stays; retried without end, with an alarm raised
            # by the engine from error_kind.
            kind = "store_full" if isinstance(exc, StoreFull) else "store_unavailable"
            log.warning("recording %s: %s", record["call_id"], exc)
            await self.queue.later(job, self._delay(job), error_kind=kind, error=str(exc))
        except RawMissing as exc:
            await self.queue.fail(job, str(exc))
        except Exception as exc:  # a bad file, ffmpeg, a store refusing
            log.exception("recording %s: %s job failed", record["call_id"], job.kind)
            message = f"{type(exc).__name__}: {exc}"
            if job.attempts >= self.section.max_attempts:
                await self.queue.fail(job, message)
            else:
                await self.queue.later(job, self._delay(job), error_kind="retrying", error=message)
        return True

    async def _leased(self, job: Job, work: Callable[[], Any]) -> Any:
        """Run blocking *work* in a thread while renewing the job's lease
        (every third of it), so a long job is not taken by another worker.
        The renewal shares the worker's connection: it never runs at the same
        time as another query, since the worker waits for *work* meanwhile."""
        finished = asyncio.Event()

        async def renew() -> None:
            while not finished.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(finished.wait(), self.section.lease_s / 3)
                    return
                if not await self.queue.extend(job):
                    log.warning("job %d: lease lost to another worker", job.id)
                    return

        renewing = asyncio.create_task(renew())
        try:
            return await asyncio.to_thread(work)
        finally:
            finished.set()
            await renewing

    def _delay(self, job: Job) -> float:
        return RETRY_BACKOFF.compute(max(job.attempts, 1))

    async def _process(self, job: Job, record: dict[str, Any]) -> None:
        store = await asyncio.to_thread(self.stores)
        result = await self._leased(job, lambda: process_recording(record, self.section, store))
        wants_transcript = self._model_path() is not None
        async with self.conn.transaction():
            if not await self.queue.done(job):
                raise LeaseLost(job.id)
            # A legal hold put on while this job ran reached only the
            # catalog (nothing was stored yet): it goes on the objects now.
            held = await self.conn.fetchval(
                "SELECT legal_hold FROM recording WHERE id = $1 FOR UPDATE", record["id"]
            )
            if held and not record["legal_hold"]:
                keys = [k for k in (result.storage_key, result.legs_key) if k]
                await asyncio.to_thread(lambda: [store.set_legal_hold(k, True) for k in keys])
            await self.conn.execute(
                "UPDATE recording SET state = 'stored', storage_key = $2, legs_key = $3,"
                " codec = $4, size_bytes = $5, sha256 = $6, legs_sha256 = $7, duration_s = $8,"
                " repaired = $9, checks = $10::jsonb, transcript_state = $11, error = NULL,"
                " updated_at = now() WHERE id = $1",
                record["id"],
                result.storage_key,
                result.legs_key,
                result.codec,
                result.size_bytes,
                result.sha256,
                result.legs_sha256,
                result.duration_s,
                result.repaired,
                json.dumps(result.checks) if result.checks is not None else None,
                "pending" if wants_transcript and result.legs_key else "disabled",
            )
            if wants_transcript and result.legs_key:
                await self.conn.execute(
                    "INSERT INTO recording_job (recording_id, kind) VALUES ($1, 'transcribe')"
                    " ON CONFLICT (recording_id, kind) DO NOTHING",
                    record["id"],
                )
                await self.conn.execute(f"NOTIFY {CHANNEL}")
        remove_raw(result.raw_files)
        log.info(
            "recording %s stored as %s (%d bytes, %.1f s%s)",
            record["call_id"],
            result.storage_key,
            result.size_bytes,
            result.duration_s,
            ", header repaired" if result.repaired else "",
        )

    def _model_path(self) -> str | None:
        return self.section.transcript_model or None

    async def _transcribe(self, job: Job, record: dict[str, Any]) -> None:
        from .transcripts import transcribe_legs

        model = self._model_path()
        if model is None or not record["legs_key"]:
            await self.conn.execute(
                "UPDATE recording SET transcript_state = 'disabled' WHERE id = $1", record["id"]
            )
            await self.queue.done(job)
            return
        if self._transcriber is None:
            from .transcribe import Transcriber

            self._transcriber = await asyncio.to_thread(Transcriber, Path(model))
        store = await asyncio.to_thread(self.stores)
        transcriber = self._transcriber
        results = await self._leased(
            job, lambda: transcribe_legs(store, record["legs_key"], transcriber)
        )
        async with self.conn.transaction():
            if not await self.queue.done(job):
                raise LeaseLost(job.id)
            await save_transcripts(
                self.conn, record["id"], results, os.path.basename(model.rstrip("/"))
            )


async def serve(settings: dict[str, Any]) -> None:
    section = RecordingConfig(**settings["section"])
    stores = StoreOpener(section, settings["data_dir"])
    conn = await asyncpg.connect(settings["dsn"])
    worker = Worker(conn, section, stores, name=settings.get("name") or f"worker-{os.getpid()}")
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    try:
        await worker.run()
    finally:
        await conn.close()


def main() -> int:
    logging.basicConfig(
        level=os.environ.get("HOTLINE_LOG_LEVEL", "WARNING").upper(),
        format="%(asctime)s %(levelname)s recording-worker[%(process)d] %(name)s: %(message)s",
        stream=sys.stderr,
    )
    settings = json.loads(sys.stdin.buffer.read() or b"{}")
    if not settings.get("dsn"):
        print("recording worker: no settings on stdin (dsn, data_dir, section)", file=sys.stderr)
        return 2
    # Beside the engine on the same cores, the workers yield: the engine's
    # event loop (routing, the 15 s clock) must not wait for a transcode.
    os.nice(WORKER_NICENESS)
    started = time.monotonic()
    asyncio.run(serve(settings))
    log.info("worker stopped after %.0f s", time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
