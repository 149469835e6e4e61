"""One recording's post-processing, synchronous (run in a worker process,
never on the engine's event loop): repair, transcode, check, hash, store,
verify. The raw files are removed by the caller only after the catalog
holds the verified result.
"""

from __future__ import annotations

import contextlib
import errno
import shutil
import tempfile
import time
import wave
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .checks import analyse
from .config import RecordingConfig
from .store import ObjectMissing, Store, StoreError, StoreFull, file_sha256
from .transcode import merge_legs, transcode
from .wav import WavError, repair_wav_header, wav_info

__all__ = [
    "StoreOpener",
    "NotReady",
    "Processed",
    "RawMissing",
    "open_store",
    "process_recording",
    "storage_keys",
]


class NotReady(Exception):
    """The raw file is still being written (its header not yet closed)."""


class RawMissing(Exception):
    """Neither the raw file nor a stored copy exists: the audio is lost."""


@dataclass(frozen=True)
class Processed:
    storage_key: str
    legs_key: str | None
    codec: str
    size_bytes: int
    sha256: str
    legs_sha256: str | None
    duration_s: float
    repaired: bool
    checks: dict[str, Any] | None
    raw_files: tuple[Path, ...]


def open_store(section: RecordingConfig, data_dir: str) -> Store:
    """The configured store (``[recording] store``)."""
    if section.store == "s3":
        from .store_s3 import S3Store

        store = S3Store(
            endpoint_url=section.s3_endpoint,
            bucket=section.s3_bucket,
            access_key=section.s3_access_key,
            secret_key=section.s3_secret_key,
            region=section.s3_region,
        )
        store.ensure_bucket()
        return store
    from .store_local import LocalStore

    if section.store_dir:
        # Not created here: a missing configured root is an unmounted volume,
        # which the store reports instead of filling the disk beneath it.
        root = Path(section.store_dir)
    else:
        root = Path(data_dir) / "recordings"
        root.mkdir(parents=True, exist_ok=True)
    return LocalStore(root, min_free_bytes=section.min_free_mb * 1024 * 1024)


class StoreOpener:
    """The configured store, opened on first use and again after a failed
    opening: a store unreachable when a process starts is an alarm and a
    retry, not a crash."""

    def __init__(self, section: RecordingConfig, data_dir: str) -> None:
        self._section = section
        self._data_dir = data_dir
        self._store: Store | None = None

    def __call__(self) -> Store:
        if self._store is None:
            self._store = open_store(self._section, self._data_dir)
        return self._store


def extension(codec: str) -> str:
    return "opus" if codec == "opus" else "mp3"


def storage_keys(call_id: str, started_at: datetime, codec: str) -> tuple[str, str]:
    ext = extension(codec)
    day = started_at.astimezone(UTC).strftime("%Y/%m/%d")
    safe = call_id.replace("/", "_")
    return f"{day}/{safe}.{ext}", f"{day}/{safe}.legs.{ext}"


def _pcm(path: Path) -> tuple[bytes, int]:
    with wave.open(str(path), "rb") as w:
        return w.readframes(w.getnframes()), w.getframerate()


def _store_verified(
    store: Store, key: str, source: Path, retain_until: datetime, legal_hold: bool
) -> tuple[str, int]:
    """Put *source* under *key* and read it back: (sha256, size)."""
    digest = file_sha256(source)
    try:
        existing = store.stat(key)
    except ObjectMissing:
        existing = None
    if existing is None or existing.sha256 != digest:
        # An earlier attempt may have stored this very file before dying:
        # the same bytes are fine, different ones are refused by the store.
        store.put(key, source, sha256=digest, retain_until=retain_until, legal_hold=legal_hold)
    stored = store.hash(key)
    if stored != digest:
        raise StoreError(f"{key}: stored copy reads back as {stored}, expected {digest}")
    return digest, source.stat().st_size


def process_recording(
    record: dict[str, Any], section: RecordingConfig, store: Store, *, now: float | None = None
) -> Processed:
    """Raise NotReady (try again soon), RawMissing (lost), StoreError
    subclasses (retry later, raw kept), WavError or TranscodeError (failed)."""
    now = time.time() if now is None else now
    mix = section.local_path(record["raw_path"])
    legs = [section.local_path(p) for p in record["legs_paths"]]
    key, legs_key = storage_keys(record["call_id"], record["started_at"], section.codec)
    store.check()  # a full or unreachable store: retry later, before any work
    repaired = _ready(mix, legs, key, store, record, section, now)
    info = wav_info(mix)
    cut_s = min(_before_answer_s(record), info.duration_s)
    if info.data_bytes == 0 or cut_s >= info.duration_s:
        raise WavError(f"{mix}: no audio after the answer ({info.duration_s:.1f} s in all)")
    has_legs = len(legs) == 2 and all(p.exists() for p in legs)
    try:
        work = Path(tempfile.mkdtemp(prefix="hotline-recording-"))
    except OSError as exc:
        raise StoreFull(f"no room for the workers' temporary files: {exc}") from exc
    try:
        encoded, legs_file, checks = _encode(mix, legs if has_legs else [], work, cut_s, section)
        retain_until, hold = record["retain_until"], bool(record["legal_hold"])
        digest, size = _store_verified(store, key, encoded, retain_until, hold)
        legs_digest = None
        if legs_file is not None:
            legs_digest, _ = _store_verified(store, legs_key, legs_file, retain_until, hold)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise StoreFull(f"no room for the workers' temporary files: {exc}") from exc
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Processed(
        storage_key=key,
        legs_key=legs_key if legs_file is not None else None,
        codec=section.codec,
        size_bytes=size,
        sha256=digest,
        legs_sha256=legs_digest,
        duration_s=info.duration_s - cut_s,
        repaired=repaired,
        checks=checks,
        # A lone leg (its pair missing) was not stored: it stays on disk.
        raw_files=(mix, *legs) if legs_file is not None else (mix,),
    )


def _before_answer_s(record: dict[str, Any]) -> float:
    """Seconds of the raw file before the first answer (ringing, music)."""
    started, answered = record.get("file_started_at"), record["started_at"]
    if started is None or answered <= started:
        return 0.0
    return float((answered - started).total_seconds())


def _ready(
    mix: Path,
    legs: list[Path],
    key: str,
    store: Store,
    record: dict[str, Any],
    section: RecordingConfig,
    now: float,
) -> bool:
    """The raw files closed, or repaired if Asterisk died writing them
    (True); NotReady while they may still be written."""
    ended = record["ended_at"].timestamp() if record["ended_at"] else now
    settled = now - ended >= section.settle_s
    if not mix.exists():
        with contextlib.suppress(ObjectMissing):
            found = store.stat(key)
            raise RawMissing(
                f"{mix}: raw file gone but {key} is stored ({found.size} bytes): "
                "compare it with the catalog (hotline recordings audit)"
            )
        if not settled:
            raise NotReady(f"{mix} not there yet")
        raise RawMissing(f"{mix}: no raw recording on disk and nothing stored under {key}")
    repaired = False
    for path in [mix, *[p for p in legs if p.exists()]]:
        if not wav_info(path).header_ok:
            if not settled:
                raise NotReady(f"{path}: WAV header not closed yet")
            repaired = repair_wav_header(path).repaired or repaired
    return repaired


def _encode(
    mix: Path, legs: list[Path], work: Path, cut_s: float, section: RecordingConfig
) -> tuple[Path, Path | None, dict[str, Any] | None]:
    """The stored mix, the stored legs and the checks, from the answer on."""
    ext = extension(section.codec)
    kbps = section.mix_bitrate_kbps
    encoded = transcode(
        mix, work / f"mix.{ext}", codec=section.codec, bitrate_kbps=kbps, start_s=cut_s
    )
    if not legs:
        return encoded.path, None, None
    caller_pcm, rate = _pcm(legs[0])
    agents_pcm, _ = _pcm(legs[1])
    skip = int(cut_s * rate) * 2
    checks = analyse(
        caller_pcm[skip:], agents_pcm[skip:], sample_rate=rate, target_s=section.duration_target_s
    ).as_dict()
    merged = merge_legs(
        legs[0],
        legs[1],
        work / f"legs.{ext}",
        codec=section.codec,
        bitrate_kbps=kbps * 2,
        start_s=cut_s,
    )
    return encoded.path, merged.path, checks


def remove_raw(paths: tuple[Path, ...]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
