"""The recordings' service in the engine: performs the core's commands on
the catalog (in call order, retried while PostgreSQL is away), keeps the
post-processing workers running, raises the store alarms, and after each
resync adopts the recordings the switch is making, closes rows whose call
is gone and catalogues raw files nobody reported. The heavy work (audio,
hashing, transcripts) is the workers', in their own processes; the
retention loop is the feature's (``recording/feature.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from acd.alarms import CLEARED, RAISED, Alarm
from common.backoff import Backoff
from common.call_changes import CallChange
from common.tasks import start_task

from .catalog import Catalog
from .config import RecordingConfig
from .core import Close, Command, Discard, Open, RecordingCore, RecordingFiles
from .jobs import CHANNEL
from .pipeline import remove_raw
from .worker import worker_settings

__all__ = ["RECORDING_EVENT", "RecordingService", "WorkerPool"]

log = logging.getLogger(__name__)

RECORDING_EVENT = "HotlineRecording"
"""The dialplan's report that MixMonitor started on a caller's channel."""
ALARM_STORE = "RECORDING_STORE"
ALARM_FAILED = "RECORDING_FAILED"
ALARM_POLL_S = 5.0
COMMAND_BACKOFF = Backoff(base_s=0.5, cap_s=10.0)
WAV_HEADER_BYTES = 44
WAV_BYTES_PER_S = 16_000  # MixMonitor's .wav: 8 kHz, 16-bit, mono


class WorkerPool:
    """The worker processes this engine runs (``[recording] workers``),
    started when the first job appears, restarted if one dies."""

    def __init__(self, settings: Callable[[str], bytes], count: int) -> None:
        self._settings = settings
        self._count = count
        self._tasks: list[asyncio.Task[None]] = []
        self._procs: dict[int, asyncio.subprocess.Process] = {}
        self._stopping = False

    @property
    def started(self) -> bool:
        return bool(self._tasks)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs.values() if p.returncode is None]

    def ensure_started(self) -> None:
        if self._tasks or self._stopping or self._count == 0:
            return
        self._tasks = [
            start_task(self._keep(n), name=f"recording worker {n}") for n in range(self._count)
        ]

    async def _keep(self, n: int) -> None:
        failures = 0
        while not self._stopping:
            started = time.monotonic()
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "recording.worker",
                stdin=asyncio.subprocess.PIPE,
            )
            self._procs[n] = proc
            if self._stopping:  # stop() ran while this one was starting
                proc.terminate()
                await proc.wait()
                return
            assert proc.stdin is not None
            proc.stdin.write(self._settings(f"worker-{n}-{proc.pid}"))
            proc.stdin.close()
            code = await proc.wait()
            if self._stopping:
                return
            failures = 0 if time.monotonic() - started > 60 else failures + 1
            delay = COMMAND_BACKOFF.compute(max(failures, 1))
            log.error("recording worker %d exited with %s; restarting in %.1f s", n, code, delay)
            await asyncio.sleep(delay)

    async def stop(self, timeout_s: float = 5.0) -> None:
        self._stopping = True
        for proc in self._procs.values():
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
        for proc in self._procs.values():
            try:
                async with asyncio.timeout(timeout_s):
                    await proc.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class RecordingService:
    def __init__(
        self,
        *,
        section: RecordingConfig,
        catalog: Catalog,
        pool: Any,
        workers: WorkerPool,
        publish: Callable[[Any], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.section = section
        self.catalog = catalog
        self.pool = pool
        self.workers = workers
        self.core = RecordingCore()
        self._publish = publish
        self._clock = clock
        self._commands: asyncio.Queue[Command] = asyncio.Queue()
        self._alarms: dict[str, Alarm] = {}
        self._raw_dirs: set[Path] = set()
        self.performed = 0
        self.command_errors = 0

    # -- ingest path (synchronous, cheap) ---------------------------------
    def on_change(self, change: CallChange) -> None:
        for command in self.core.apply(change):
            self._commands.put_nowait(command)

    def on_recording_event(self, event: Mapping[str, Any]) -> None:
        call_id = str(event.get("CallId") or "")
        mix = str(event.get("File") or "")
        if not call_id or not mix:
            # Only the names: the event's other headers carry the caller's number.
            log.warning("HotlineRecording without CallId or File (call %r)", call_id)
            return
        files = RecordingFiles.beside(mix, epoch_or_none(event.get("StartedAt")))
        self._note_dir(mix)
        for command in self.core.armed(call_id, files):
            self._commands.put_nowait(command)

    def note_raw_dir(self, directory: str) -> None:
        """A directory Asterisk writes raw recordings to (as Asterisk names it)."""
        self._raw_dirs.add(self.section.local_path(directory))

    def _note_dir(self, mix: str) -> None:
        self._raw_dirs.add(self.section.local_path(mix).parent)

    def adopt(self, armed: Mapping[str, RecordingFiles], calls: Mapping[str, Any]) -> int:
        """After a resync: the recordings the switch is making (from its
        channel variables) and, for calls answered while the engine was away,
        their opening. Returns how many recordings were opened."""
        opened = 0
        for call_id, files in armed.items():
            self._note_dir(files.mix)
            self.core.armed(call_id, files)
            call = calls.get(call_id)
            if call is None or call.answered_at is None or self.core.is_open(call_id):
                continue
            for command in self.core.adopt(
                call_id,
                answered_at=call.answered_at,
                agent=call.agent or "",
                line=call.line,
                queue=call.queue,
                caller_number=call.caller_number,
            ):
                self._commands.put_nowait(command)
                opened += 1
        return opened

    async def close_stale(self, live: Collection[str]) -> list[str]:
        """Close the recordings still open in the catalog whose call is gone
        (it ended while the engine was away, or its Close was never written):
        their raw files are then processed like any other."""
        stale = [
            r["call_id"]
            for r in await self.pool.fetch(
                "SELECT call_id FROM recording WHERE state = 'recording'"
            )
            if r["call_id"] not in live and not self.core.is_open(r["call_id"])
        ]
        for call_id in stale:
            self._commands.put_nowait(Close(call_id, self._clock(), ()))
        return stale

    async def sweep(self, raw_dirs: Collection[Path], live: Collection[str]) -> list[str]:
        """Catalog the raw recordings nobody told the engine about (calls
        made entirely while it was away, e.g. on the dialplan's fallback):
        every mix in *raw_dirs* not being written (older than ``settle_s``),
        not live and not catalogued. Returns their call ids."""
        now = time.time()
        found = await asyncio.to_thread(_raw_mixes, raw_dirs, now - max(self.section.settle_s, 60))
        if not found:
            return []
        known = {
            r["call_id"]
            for r in await self.pool.fetch(
                "SELECT call_id FROM recording WHERE call_id = ANY($1)", [f.call_id for f in found]
            )
        }
        recovered = []
        for raw in found:
            if raw.call_id in known or raw.call_id in live or self.core.is_open(raw.call_id):
                continue
            files = RecordingFiles.beside(raw.mix, raw.started_at)
            self._commands.put_nowait(Open(raw.call_id, raw.started_at, None, None, "", "", files))
            self._commands.put_nowait(Close(raw.call_id, raw.ended_at, ()))
            recovered.append(raw.call_id)
        if recovered:
            log.warning(
                "recording: %d raw recording(s) nobody reported, catalogued: %s",
                len(recovered),
                ", ".join(recovered[:10]),
            )
        return recovered

    # -- the command loop ---------------------------------------------------
    @property
    def backlog(self) -> int:
        return self._commands.qsize()

    async def perform_forever(self) -> None:
        """Perform the commands in call order; a database that is away is
        waited for (the command is retried, never dropped)."""
        while True:
            command = await self._commands.get()
            failures = 0
            while True:
                try:
                    await self._perform(command)
                    break
                except _DATABASE_AWAY as exc:
                    failures += 1
                    self.command_errors += 1
                    delay = COMMAND_BACKOFF.compute(failures)
                    log.warning(
                        "recording: %s for call %s not written (%s); retrying in %.1f s",
                        type(command).__name__,
                        command.call_id,
                        exc,
                        delay,
                    )
                    await asyncio.sleep(delay)
                except Exception:
                    self.command_errors += 1
                    log.exception(
                        "recording: %s for call %s failed", type(command).__name__, command.call_id
                    )
                    break
            self.performed += 1
            self._commands.task_done()

    async def idle(self) -> None:
        """Until every command given so far is performed (tests, stop)."""
        await self._commands.join()

    async def _perform(self, command: Command) -> None:
        if isinstance(command, Open):
            await self.catalog.open(command)
            if command.files is None:
                log.error("call %s answered but the switch started no recording", command.call_id)
        elif isinstance(command, Close):
            if await self.catalog.close(command):
                await self.pool.execute(f"NOTIFY {CHANNEL}")
                self.workers.ensure_started()
        elif isinstance(command, Discard):
            paths = tuple(
                self.section.local_path(p)
                for p in (command.files.mix, command.files.caller, command.files.agents)
                if p
            )
            await asyncio.to_thread(remove_raw, paths)

    # -- alarms ---------------------------------------------------------------
    @property
    def raw_dirs(self) -> set[Path]:
        """Where the raw recordings are, as far as this engine knows: the
        configured directory and those of the files reported so far (the
        stack's ``HOTLINE_RECORDING_DIR`` is learnt from the switch at each
        resync, see the feature)."""
        dirs = set(self._raw_dirs)
        if self.section.asterisk_dir:
            dirs.add(self.section.local_path(self.section.asterisk_dir))
        return dirs

    async def watch_forever(self) -> None:
        """Start the workers if jobs are waiting (left by an earlier run),
        then keep the alarms in step with the job table."""
        started = False
        while True:
            try:
                if not started:
                    if await self.pool.fetchval("SELECT count(*) FROM recording_job"):
                        self.workers.ensure_started()
                    started = True
                await self.check_alarms()
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("recording: cannot read the job table (%s); retrying", exc)
            await asyncio.sleep(ALARM_POLL_S)

    async def check_alarms(self) -> list[Alarm]:
        """Raise or clear the store and failure alarms from the job table."""
        problems = await self.catalog.job_problems()
        store = [p for p in problems if p["error_kind"] in ("store_full", "store_unavailable")]
        failed = [p for p in problems if p["state"] == "failed"]
        wanted = {
            ALARM_STORE: (
                f"recordings cannot be stored ({store[0]['error_kind']}: {store[0]['last_error']});"
                f" {len(store)} waiting, raw files kept, retrying"
                if store
                else None
            ),
            ALARM_FAILED: (
                f"{len(failed)} recording job(s) failed, e.g. call {failed[0]['call_id']}:"
                f" {failed[0]['last_error']}; retry with hotline recordings retry"
                if failed
                else None
            ),
        }
        changed = []
        for kind, message in wanted.items():
            active = self._alarms.get(kind)
            if message and active is None:
                alarm = Alarm(kind, RAISED, "all", None, None, 0.0, self._clock(), message)
                self._alarms[kind] = alarm
                changed.append(alarm)
            elif not message and active is not None:
                del self._alarms[kind]
                changed.append(
                    Alarm(kind, CLEARED, "all", None, None, 0.0, self._clock(), "recovered")
                )
        for alarm in changed:
            self._publish(alarm)
        return changed

    @property
    def active_alarms(self) -> list[Alarm]:
        return list(self._alarms.values())


_DATABASE_AWAY = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
)
"""Errors after which the same write can succeed later."""


def epoch_or_none(value: Any) -> float | None:
    try:
        return float(value) if value else None
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class RawMix:
    call_id: str
    mix: str
    started_at: float
    ended_at: float


def _raw_mixes(dirs: Collection[Path], older_than: float) -> list[RawMix]:
    """The mixes (not legs) in *dirs* last written before *older_than*."""
    found = []
    for directory in dirs:
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            name = entry.name
            if not name.endswith(".wav") or name.endswith(("-caller.wav", "-agents.wav")):
                continue
            try:
                info = entry.stat()
            except OSError:
                continue
            if info.st_mtime >= older_than:
                continue
            seconds = max(info.st_size - WAV_HEADER_BYTES, 0) / WAV_BYTES_PER_S
            found.append(
                RawMix(name[: -len(".wav")], entry.path, info.st_mtime - seconds, info.st_mtime)
            )
    return found


def settings_for(dsn: str, data_dir: str, section: RecordingConfig) -> Callable[[str], bytes]:
    return lambda name: worker_settings(dsn, data_dir, section, name)
