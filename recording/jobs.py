"""The post-processing job queue in PostgreSQL.

Any number of workers, on any machine, take jobs with ``FOR UPDATE SKIP
LOCKED`` (two workers never take the same job) under a lease: a job whose
worker died (its lease ran out) is taken again. A finished job is deleted,
so the table holds only work still to do and failures to look at.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["CHANNEL", "Job", "JobQueue"]

CHANNEL = "recording_job"
"""NOTIFY channel: a job became due (workers also poll)."""


@dataclass(frozen=True)
class Job:
    id: int
    recording_id: int
    kind: str
    attempts: int


class JobQueue:
    def __init__(self, conn: Any, *, worker: str, lease_s: float) -> None:
        self._conn = conn
        self._worker = worker
        self._lease_s = lease_s

    async def take(self, kinds: tuple[str, ...]) -> Job | None:
        row = await self._conn.fetchrow(
            "UPDATE recording_job j SET state = 'running', attempts = j.attempts + 1,"
            " lease_until = now() + make_interval(secs => $2), worker = $1"
            " WHERE j.id = (SELECT id FROM recording_job"
            "   WHERE kind = ANY($3) AND ((state = 'pending' AND not_before <= now())"
            "     OR (state = 'running' AND lease_until < now()))"
            "   ORDER BY not_before, id LIMIT 1 FOR UPDATE SKIP LOCKED)"
            " RETURNING j.id, j.recording_id, j.kind, j.attempts",
            self._worker,
            self._lease_s,
            list(kinds),
        )
        return Job(**dict(row)) if row else None

    async def later(
        self,
        job: Job,
        delay_s: float,
        *,
        error_kind: str | None = None,
        error: str | None = None,
        counts: bool = True,
    ) -> None:
        """Put *job* back, due in *delay_s*. ``counts=False``: not an attempt
        (the raw file was not ready yet)."""
        await self._conn.execute(
            "UPDATE recording_job SET state = 'pending', lease_until = NULL, worker = NULL,"
            " not_before = now() + make_interval(secs => $2), error_kind = $3, last_error = $4,"
            " attempts = attempts - $5 WHERE id = $1 AND worker = $6",
            job.id,
            delay_s,
            error_kind,
            error,
            0 if counts else 1,
            self._worker,
        )

    async def fail(self, job: Job, error: str) -> None:
        async with self._conn.transaction():
            await self._conn.execute(
                "UPDATE recording_job SET state = 'failed', lease_until = NULL,"
                " error_kind = 'failed', last_error = $2 WHERE id = $1 AND worker = $3",
                job.id,
                error,
                self._worker,
            )
            if job.kind == "transcribe":
                await self._conn.execute(
                    "UPDATE recording SET transcript_state = 'failed', updated_at = now()"
                    " WHERE id = $1",
                    job.recording_id,
                )
            else:
                await self._conn.execute(
                    "UPDATE recording SET error = $2, updated_at = now() WHERE id = $1",
                    job.recording_id,
                    error,
                )

    async def done(self, job: Job) -> bool:
        """Remove the finished job; False if it is no longer this worker's
        (its lease ran out and another worker took it)."""
        gone = await self._conn.execute(
            "DELETE FROM recording_job WHERE id = $1 AND worker = $2", job.id, self._worker
        )
        return gone.endswith(" 1")

    async def extend(self, job: Job) -> bool:
        """Renew the lease of a job still running; False if it was lost."""
        renewed = await self._conn.execute(
            "UPDATE recording_job SET lease_until = now() + make_interval(secs => $3)"
            " WHERE id = $1 AND worker = $2 AND state = 'running'",
            job.id,
            self._worker,
            self._lease_s,
        )
        return renewed.endswith(" 1")


async def retry_failed(conn: Any, call_id: str | None = None) -> int:
    """Operator's retry of failed jobs (all, or one call's)."""
    done = await conn.execute(
        "UPDATE recording_job j SET state = 'pending', attempts = 0, not_before = now(),"
        " error_kind = NULL, last_error = NULL FROM recording r"
        " WHERE r.id = j.recording_id AND j.state = 'failed'"
        " AND ($1::text IS NULL OR r.call_id = $1)",
        call_id,
    )
    await conn.execute(f"NOTIFY {CHANNEL}")
    return int(done.split()[-1])
