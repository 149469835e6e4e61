"""The recordings' catalog in PostgreSQL: rows written as calls are answered
and end, queried by the routes and the operator commands."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .core import AgentSpan, Close, Open

__all__ = ["Catalog", "SearchFilter", "public_fields", "save_transcripts"]

_COLUMNS = (
    "id, call_id, linkedid, line, queue, caller_number, agents, agent_spans, started_at,"
    " ended_at, file_started_at, duration_s, work_order_ids, state, raw_path, legs_paths,"
    " repaired, storage_key,"
    " legs_key, codec, size_bytes, sha256, legs_sha256, retain_until, legal_hold,"
    " transcript_state, checks, error"
)


def _ts(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


@dataclass(frozen=True)
class SearchFilter:
    """What a search may ask for; every field optional."""

    since: datetime | None = None
    until: datetime | None = None
    caller_number: str | None = None
    agent: str | None = None
    queue: str | None = None
    line: str | None = None
    work_order: str | None = None
    min_duration_s: float | None = None
    max_duration_s: float | None = None
    text: str | None = None
    limit: int = 50
    offset: int = 0

    def reveals_number(self) -> bool:
        return bool(self.caller_number)


class Catalog:
    def __init__(self, pool: Any, *, retention_days: int) -> None:
        self._pool = pool
        self._retention = timedelta(days=retention_days)

    async def open(self, command: Open) -> None:
        files = command.files
        started = _ts(command.at)
        await self._pool.execute(
            "INSERT INTO recording (call_id, linkedid, line, queue, caller_number, agents,"
            " agent_spans, started_at, raw_path, legs_paths, retain_until, state, error,"
            " file_started_at)"
            " VALUES ($1, $1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10, $11, $12, $13)"
            " ON CONFLICT (call_id) DO NOTHING",
            command.call_id,
            command.line,
            command.queue,
            command.caller_number,
            [command.agent] if command.agent else [],
            json.dumps(
                [AgentSpan(command.agent, command.at, None).as_dict()] if command.agent else []
            ),
            started,
            files.mix if files else "",
            [files.caller, files.agents] if files else [],
            started + self._retention,
            "recording" if files else "failed",
            None if files else "the switch reported no recording for this answered call",
            _ts(files.started_at) if files and files.started_at is not None else None,
        )

    async def close(self, command: Close) -> bool:
        """Record the end and who took part; queue the post-processing in the
        same transaction. False: no recording row (never answered, or failed)."""
        agents = sorted({s.agent for s in command.agents})
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "UPDATE recording SET ended_at = $2, agents = $3, agent_spans = $4::jsonb,"
                " state = CASE WHEN state = 'recording' THEN 'closed' ELSE state END,"
                " updated_at = now() WHERE call_id = $1 RETURNING id, state",
                command.call_id,
                _ts(command.at),
                agents,
                json.dumps([s.as_dict() for s in command.agents]),
            )
            if row is None or row["state"] != "closed":
                return False
            await conn.execute(
                "INSERT INTO recording_job (recording_id, kind) VALUES ($1, 'process')"
                " ON CONFLICT (recording_id, kind) DO NOTHING",
                row["id"],
            )
        return True

    async def get(self, recording_id: int) -> dict[str, Any] | None:
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM recording WHERE id = $1", recording_id
        )
        return _record(row) if row else None

    async def by_call(self, call_id: str) -> dict[str, Any] | None:
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM recording WHERE call_id = $1", call_id
        )
        return _record(row) if row else None

    async def transcripts(self, recording_id: int) -> list[dict[str, Any]]:
        rows = await self._pool.fetch(
            "SELECT direction, text, words, model FROM recording_transcript"
            " WHERE recording_id = $1 ORDER BY direction DESC",
            recording_id,
        )
        return [
            {
                "direction": r["direction"],
                "text": r["text"],
                "words": json.loads(r["words"]),
                "model": r["model"],
            }
            for r in rows
        ]

    async def search(self, query: SearchFilter) -> tuple[int, list[dict[str, Any]]]:
        where, args = _where(query)
        total = await self._pool.fetchval(f"SELECT count(*) FROM recording r WHERE {where}", *args)
        rows = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM recording r WHERE {where}"
            f" ORDER BY started_at DESC, id DESC LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}",
            *args,
            query.limit,
            query.offset,
        )
        return int(total), [_record(r) for r in rows]

    async def set_legal_hold(self, recording_id: int, on: bool) -> dict[str, Any] | None:
        row = await self._pool.fetchrow(
            f"UPDATE recording SET legal_hold = $2, updated_at = now() WHERE id = $1"
            f" RETURNING {_COLUMNS}",
            recording_id,
            on,
        )
        return _record(row) if row else None

    async def link_work_order(self, call_id: str, order_no: str) -> bool:
        """A work order made from this call (the work-order feature calls this)."""
        done = await self._pool.execute(
            "UPDATE recording SET work_order_ids = array_append(work_order_ids, $2),"
            " updated_at = now() WHERE call_id = $1 AND NOT ($2 = ANY(work_order_ids))",
            call_id,
            order_no,
        )
        return done.endswith(" 1")

    async def job_problems(self) -> list[dict[str, Any]]:
        """Jobs that are failing now: what the alarms are raised from."""
        rows = await self._pool.fetch(
            "SELECT j.kind, j.state, j.error_kind, j.attempts, j.last_error, r.call_id"
            " FROM recording_job j JOIN recording r ON r.id = j.recording_id"
            " WHERE j.error_kind IS NOT NULL ORDER BY j.id"
        )
        return [dict(r) for r in rows]


async def save_transcripts(conn: Any, recording_id: int, results: Any, model: str) -> None:
    """Store each direction's transcript (replacing an earlier one) and mark
    the recording transcribed, in one transaction."""
    async with conn.transaction():
        for direction, transcript in results.items():
            words = [
                {"w": w.text, "start": w.start_s, "end": w.end_s, "conf": w.confidence}
                for w in transcript.words
            ]
            await conn.execute(
                "INSERT INTO recording_transcript (recording_id, direction, text, words, model)"
                " VALUES ($1, $2, $3, $4::jsonb, $5) ON CONFLICT (recording_id, direction)"
                " DO UPDATE SET text = EXCLUDED.text, words = EXCLUDED.words,"
                " model = EXCLUDED.model, created_at = now()",
                recording_id,
                direction,
                transcript.text,
                json.dumps(words, ensure_ascii=False),
                model,
            )
        await conn.execute(
            "UPDATE recording SET transcript_state = 'done', updated_at = now() WHERE id = $1",
            recording_id,
        )


def _where(query: SearchFilter) -> tuple[str, list[Any]]:
    clauses = ["TRUE"]
    args: list[Any] = []

    def add(sql: str, value: Any) -> None:
        args.append(value)
        clauses.append(sql.replace("?", f"${len(args)}"))

    if query.since is not None:
        add("r.started_at >= ?", query.since)
    if query.until is not None:
        add("r.started_at < ?", query.until)
    if query.caller_number:
        add("r.caller_number = ?", query.caller_number)
    if query.agent:
        add("? = ANY(r.agents)", query.agent)
    if query.queue:
        add("r.queue = ?", query.queue)
    if query.line:
        add("r.line = ?", query.line)
    if query.work_order:
        add("? = ANY(r.work_order_ids)", query.work_order)
    if query.min_duration_s is not None:
        add("r.duration_s >= ?", query.min_duration_s)
    if query.max_duration_s is not None:
        add("r.duration_s <= ?", query.max_duration_s)
    if query.text:
        add(
            "EXISTS (SELECT 1 FROM recording_transcript t WHERE t.recording_id = r.id"
            " AND t.text ILIKE ?)",
            "%" + _like_escape(query.text) + "%",
        )
    return " AND ".join(clauses), args


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _record(row: Any) -> dict[str, Any]:
    out = dict(row)
    for key in ("agent_spans", "checks"):
        if isinstance(out.get(key), str):
            out[key] = json.loads(out[key])
    return out


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def public_fields(record: dict[str, Any], *, number: str) -> dict[str, Any]:
    """A catalog row as the API shows it, with the caller's number as the
    role may see it; raw paths are not shown."""
    spans: Sequence[dict[str, Any]] = record.get("agent_spans") or []
    return {
        "id": record["id"],
        "call_id": record["call_id"],
        "linkedid": record["linkedid"],
        "line": record["line"],
        "queue": record["queue"],
        "caller_number": number,
        "agents": list(record["agents"]),
        "agent_spans": [
            {
                "agent": s["agent"],
                "from": iso(_ts(s["from"])) if s.get("from") is not None else None,
                "to": iso(_ts(s["to"])) if s.get("to") is not None else None,
            }
            for s in spans
        ],
        "started_at": iso(record["started_at"]),
        "ended_at": iso(record["ended_at"]),
        "duration_s": record["duration_s"],
        "work_order_ids": list(record["work_order_ids"]),
        "state": record["state"],
        "repaired": record["repaired"],
        "codec": record["codec"],
        "size_bytes": record["size_bytes"],
        "sha256": record["sha256"],
        "retain_until": iso(record["retain_until"]),
        "legal_hold": record["legal_hold"],
        "transcript_state": record["transcript_state"],
        "checks": record["checks"],
        "error": record["error"],
    }
