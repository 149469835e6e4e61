"""The recordings' routes: search, details (checks, transcripts), playback
and download with range requests, legal hold, and the player page.

Supervisors and admins only (quality inspection); agents get 403. The
caller's number is shown to them unmasked, so every search, playback and
download is written to the audit log (PIPL art. 51), as is every change of
legal hold.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from cti.api.http import (
    AUDIT,
    SESSION_OF,
    error_response,
    json_response,
    read_json,
    remote_of,
    requires,
)
from cti.api.openapi import error_responses, path_param
from cti.api.roles import Role, mask_number
from cti.api.schemas import PayloadError
from cti.web.pages import add_feature_pages

from .catalog import Catalog, public_fields
from .schemas import LegalHoldRequest, RangeError, parse_range, parse_search
from .store import ObjectMissing, Store, StoreError

__all__ = ["RECORDINGS", "RecordingAccess", "add_routes", "openapi"]

INSPECTORS = (Role.SUPERVISOR, Role.ADMIN)
CONTENT_TYPES = {"opus": "audio/ogg", "mp3": "audio/mpeg"}


@dataclass
class RecordingAccess:
    """What the routes need: the catalog and the store (opened on demand:
    a store unreachable at start-up answers 503 until it is back)."""

    catalog: Catalog
    stores: Callable[[], Store]

    async def store(self) -> Store:
        return await asyncio.to_thread(self.stores)


RECORDINGS = web.AppKey("recordings", RecordingAccess)


def _number_for(role: Role, number: str, *, reveal: bool) -> str:
    """Masked, unless a supervisor or admin asked to see it (audited)."""
    return mask_number(number, visible=reveal and role in INSPECTORS)


def _reveal(request: web.Request) -> bool:
    value = request.query.get("reveal", "")
    if value not in ("", "0", "1", "true", "false"):
        raise PayloadError("reveal", "expected 1 or 0")
    return value in ("1", "true")


def _id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdigit() or len(raw) > 18:
        raise web.HTTPNotFound(text=f"no recording {raw}")
    return int(raw)


@requires(*INSPECTORS)
async def search(request: web.Request) -> web.StreamResponse:
    """Search the catalog. Numbers are masked unless ``reveal=1``; a search
    that reveals a number (``reveal=1``, or one by the caller's number) is
    audited."""
    session = request[SESSION_OF]
    try:
        reveal = _reveal(request)
        query = parse_search({k: v for k, v in request.query.items() if k != "reveal"})
    except PayloadError as exc:
        return error_response(400, str(exc), field=exc.field)
    access = request.app[RECORDINGS]
    total, rows = await access.catalog.search(query)
    if reveal or query.reveals_number():
        await request.app[AUDIT].record(
            session.username,
            "recording_search",
            remote=remote_of(request),
            detail={
                "query": dict(request.query),
                "results": len(rows),
                "call_ids": [r["call_id"] for r in rows],
            },
        )
    return json_response(
        {
            "total": total,
            "recordings": [
                public_fields(
                    r, number=_number_for(session.role, r["caller_number"], reveal=reveal)
                )
                for r in rows
            ],
        }
    )


@requires(*INSPECTORS)
async def details(request: web.Request) -> web.StreamResponse:
    session = request[SESSION_OF]
    try:
        reveal = _reveal(request)
    except PayloadError as exc:
        return error_response(400, str(exc), field=exc.field)
    access = request.app[RECORDINGS]
    record = await access.catalog.get(_id(request))
    if record is None:
        return error_response(404, f"no recording {request.match_info['id']}")
    await request.app[AUDIT].record(
        session.username,
        "recording_view",
        subject=record["call_id"],
        remote=remote_of(request),
        detail={"reveal": reveal},
    )
    number = _number_for(session.role, record["caller_number"], reveal=reveal)
    out = public_fields(record, number=number)
    out["transcripts"] = await access.catalog.transcripts(record["id"])
    return json_response(out)


async def _audio(request: web.Request, *, download: bool) -> web.StreamResponse:
    session = request[SESSION_OF]
    access = request.app[RECORDINGS]
    record = await access.catalog.get(_id(request))
    if record is None:
        return error_response(404, f"no recording {request.match_info['id']}")
    if record["state"] != "stored" or not record["storage_key"]:
        return error_response(
            409, f"recording {record['id']} is {record['state']}, not stored yet: try again shortly"
        )
    key = record["storage_key"]
    try:
        store = await access.store()
        stat = await asyncio.to_thread(store.stat, key)
        wanted = parse_range(request.headers.get("Range"), stat.size)
    except ObjectMissing:
        return error_response(
            410, f"the stored file {key} is missing: run hotline recordings audit"
        )
    except RangeError as exc:
        return web.json_response(
            {"error": str(exc)}, status=416, headers={"Content-Range": f"bytes */{stat.size}"}
        )
    except StoreError as exc:
        return error_response(503, f"the recording store is unavailable: {exc}")
    start, end = (wanted.start, wanted.end) if wanted else (0, stat.size - 1)
    await request.app[AUDIT].record(
        session.username,
        "recording_download" if download else "recording_play",
        subject=record["call_id"],
        remote=remote_of(request),
        detail={"key": key, "range": [start, end] if wanted else None},
    )
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Type": CONTENT_TYPES.get(record["codec"] or "", "application/octet-stream"),
        "Content-Length": str(end - start + 1),
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }
    if wanted:
        headers["Content-Range"] = f"bytes {start}-{end}/{stat.size}"
    if download:
        name = Path(key).name
        headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response = web.StreamResponse(status=206 if wanted else 200, headers=headers)
    await response.prepare(request)
    done = object()
    with await asyncio.to_thread(store.open_stream, key, start, end) as chunks:
        while (chunk := await asyncio.to_thread(next, chunks, done)) is not done:
            await response.write(chunk)  # type: ignore[arg-type]
    await response.write_eof()
    return response


@requires(*INSPECTORS)
async def play(request: web.Request) -> web.StreamResponse:
    """The stored audio, inline, with range requests."""
    return await _audio(request, download=False)


@requires(*INSPECTORS)
async def download(request: web.Request) -> web.StreamResponse:
    """The stored audio as a file."""
    return await _audio(request, download=True)


@requires(Role.ADMIN)
async def legal_hold(request: web.Request) -> web.StreamResponse:
    """Put a recording on legal hold (never deleted, even past retention)
    or release it; admins only, with a reason, audited."""
    session = request[SESSION_OF]
    try:
        body = LegalHoldRequest.parse(await read_json(request))
    except PayloadError as exc:
        return error_response(400, str(exc), field=exc.field)
    access = request.app[RECORDINGS]
    # The catalog first: retention honours it at once, and a worker storing
    # this recording right now reads it when it commits (row lock).
    record = await access.catalog.set_legal_hold(_id(request), body.on)
    if record is None:
        return error_response(404, f"no recording {request.match_info['id']}")
    await request.app[AUDIT].record(
        session.username,
        "recording_legal_hold_on" if body.on else "recording_legal_hold_off",
        subject=record["call_id"],
        remote=remote_of(request),
        detail={"reason": body.reason},
    )
    try:
        store = await access.store()
        for key in (record["storage_key"], record["legs_key"]):
            if key:
                await asyncio.to_thread(store.set_legal_hold, key, body.on)
    except StoreError as exc:
        return error_response(
            503,
            f"legal hold recorded in the catalog, but the store did not take it: {exc};"
            " send it again",
        )
    return json_response(
        public_fields(
            record, number=_number_for(session.role, record["caller_number"], reveal=False)
        )
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/recordings", search)
    app.router.add_get("/api/v1/recordings/{id}", details)
    app.router.add_get("/api/v1/recordings/{id}/audio", play)
    app.router.add_get("/api/v1/recordings/{id}/download", download)
    app.router.add_put("/api/v1/recordings/{id}/legal-hold", legal_hold)
    add_feature_pages(
        app,
        package="recording",
        pages={"/recordings": "recordings.html"},
        scripts={"/recordings/recordings.js": "recordings.js"},
        media_blob=True,  # the player plays the audio it fetched with the session's token
    )


def _get(
    summary: str, responses: dict[str, Any], params: list[Any] | None = None
) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "security": [{"bearer": []}],
            "parameters": params or [path_param("id")],
            "responses": responses,
        }
    }


def _query(name: str, description: str, kind: str = "string") -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": kind},
    }


def openapi() -> dict[str, Any]:
    audio = {
        "200": {"description": "the whole stored file (audio/ogg Opus or audio/mpeg)"},
        "206": {"description": "the requested byte range (Content-Range)"},
        "416": {"description": "the range is outside the file"},
        **error_responses(401, 403, 404, 409, 410, 503),
    }
    return {
        "paths": {
            "/api/v1/recordings": _get(
                "Search recordings by time, caller number, agent, queue, line, work order, "
                "duration and transcript text. Supervisors and admins; audited.",
                {
                    "200": {"description": "total and one page of recordings"},
                    **error_responses(400, 401, 403),
                },
                [
                    _query("from", "ISO 8601, inclusive"),
                    _query("to", "ISO 8601, exclusive"),
                    _query("caller", "the caller's number (digits)"),
                    _query("agent", "an agent who took part"),
                    _query("queue", "queue name"),
                    _query("line", "hotline line"),
                    _query("work_order", "a work order made from the call"),
                    _query("min_duration", "seconds", "number"),
                    _query("max_duration", "seconds", "number"),
                    _query("text", "words in either direction's transcript"),
                    _query("reveal", "1: callers' numbers unmasked (audited)"),
                    _query("limit", "1-200 (default 50)", "integer"),
                    _query("offset", "for paging", "integer"),
                ],
            ),
            "/api/v1/recordings/{id}": _get(
                "One recording: catalog, automatic checks, transcripts with word times. Audited.",
                {"200": {"description": "the recording"}, **error_responses(400, 401, 403, 404)},
                [path_param("id"), _query("reveal", "1: the caller's number unmasked")],
            ),
            "/api/v1/recordings/{id}/audio": _get(
                "Play the recording (Range requests supported). Audited.", audio
            ),
            "/api/v1/recordings/{id}/download": _get(
                "Download the recording (attachment; Range supported). Audited.", audio
            ),
            "/api/v1/recordings/{id}/legal-hold": {
                "put": {
                    "summary": "Legal hold on or off (admins; a reason is required; audited).",
                    "security": [{"bearer": []}],
                    "parameters": [path_param("id")],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["on", "reason"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "on": {"type": "boolean"},
                                        "reason": {"type": "string", "maxLength": 200},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": {"description": "the recording"},
                        **error_responses(400, 401, 403, 404, 503),
                    },
                }
            },
        },
        "schemas": {},
    }
