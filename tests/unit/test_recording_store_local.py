"""The local recording store on a temporary directory: what it keeps, what it
refuses (deletes before the retention date or on hold, overwrites, keys
escaping the root, writes on a full disk), with the store's clock injected."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from recording.store import (
    ObjectMissing,
    RetentionLocked,
    Store,
    StoredObject,
    StoreError,
    StoreFull,
    StoreUnavailable,
)
from recording.store_local import LocalStore

T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
ONE_YEAR = timedelta(days=365)
AUDIO = bytes(range(256)) * 1000  # 256 000 bytes: several stream chunks


class Clock:
    """The store's clock, moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "recordings"
    path.mkdir()
    return path


@pytest.fixture
def store(root: Path, clock: Clock) -> LocalStore:
    return LocalStore(root, clock=clock, min_free_bytes=0)


@pytest.fixture
def source(tmp_path: Path) -> Callable[[bytes], tuple[Path, str]]:
    """A file to store with the given bytes, and its sha256."""
    made = 0

    def make(data: bytes = AUDIO) -> tuple[Path, str]:
        nonlocal made
        made += 1
        path = tmp_path / f"call-{made}.wav"
        path.write_bytes(data)
        return path, hashlib.sha256(data).hexdigest()

    return make


def put(store: LocalStore, key: str, data: bytes, tmp_path: Path, legal_hold: bool = False) -> str:
    """Store *data* under *key*, retained a year from T0; its sha256."""
    path = tmp_path / "upload.wav"
    path.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    store.put(key, path, sha256=digest, retain_until=T0 + ONE_YEAR, legal_hold=legal_hold)
    return digest


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_a_local_store_is_a_store(store: LocalStore) -> None:
    checked: Store = store
    assert checked.name == f"local:{store.root}"


def test_put_then_stat_read_stream_hash(store: LocalStore, source, root: Path) -> None:
    path, digest = source(AUDIO)

    stored = store.put("2025/03/01/call-1.wav", path, sha256=digest, retain_until=T0 + ONE_YEAR)

    expected = StoredObject("2025/03/01/call-1.wav", len(AUDIO), digest, T0 + ONE_YEAR, False)
    assert stored == expected
    assert store.stat("2025/03/01/call-1.wav") == expected
    assert store.hash("2025/03/01/call-1.wav") == digest
    assert store.read_range("2025/03/01/call-1.wav", 0, None) == AUDIO
    assert store.read_range("2025/03/01/call-1.wav", 10, 19) == AUDIO[10:20]
    assert store.read_range("2025/03/01/call-1.wav", 255_990, 10**9) == AUDIO[255_990:]
    chunks = list(store.open_stream("2025/03/01/call-1.wav", 1000, 200_999, chunk=64 * 1024))
    assert [len(c) for c in chunks] == [65536, 65536, 65536, 3392]
    assert b"".join(chunks) == AUDIO[1000:201_000]
    mode = (root / "2025/03/01/call-1.wav").stat().st_mode
    assert stat.S_IMODE(mode) == 0o444


def test_read_past_the_end_is_a_bad_range(store: LocalStore, tmp_path: Path) -> None:
    put(store, "a.wav", b"0123456789", tmp_path)

    with pytest.raises(ValueError, match="past the end"):
        store.read_range("a.wav", 10, None)
    with pytest.raises(ValueError, match="bad byte range"):
        store.open_stream("a.wav", 5, 4)


@pytest.mark.parametrize("key", ["no/such.wav", "2025/03", "2025/03/01/a.wav/b.wav"])
def test_missing_key_raises_object_missing_everywhere(
    store: LocalStore, tmp_path: Path, key: str
) -> None:
    put(store, "2025/03/01/a.wav", AUDIO, tmp_path)
    for attempt in (
        lambda: store.stat(key),
        lambda: store.read_range(key, 0, None),
        lambda: store.open_stream(key),
        lambda: store.hash(key),
        lambda: store.delete(key),
        lambda: store.set_legal_hold(key, True),
    ):
        with pytest.raises(ObjectMissing, match=key):
            attempt()


def test_keys_lists_recordings_only(store: LocalStore, tmp_path: Path, root: Path) -> None:
    for key in ("2025/03/01/b.wav", "2025/03/01/a.wav", "2025/03/02/c.wav", "2026/01/01/d.wav"):
        put(store, key, key.encode(), tmp_path)
    (root / "2025/03/01/.a.wav.x1.tmp").write_bytes(b"left by a crash")

    assert list(store.keys()) == [
        "2025/03/01/a.wav",
        "2025/03/01/b.wav",
        "2025/03/02/c.wav",
        "2026/01/01/d.wav",
    ]
    assert list(store.keys("2025/03/0")) == [
        "2025/03/01/a.wav",
        "2025/03/01/b.wav",
        "2025/03/02/c.wav",
    ]
    assert list(store.keys("2025/03/01/b")) == ["2025/03/01/b.wav"]
    assert list(store.keys("2027/")) == []


def test_delete_refused_until_a_year_has_passed(
    store: LocalStore, clock: Clock, tmp_path: Path
) -> None:
    put(store, "2025/03/01/call.wav", AUDIO, tmp_path)

    clock.now = T0 + timedelta(days=364)
    with pytest.raises(RetentionLocked, match="retained until 2026-03-01"):
        store.delete("2025/03/01/call.wav")
    assert store.read_range("2025/03/01/call.wav", 0, None) == AUDIO

    clock.now = T0 + timedelta(days=366)
    store.delete("2025/03/01/call.wav")
    with pytest.raises(ObjectMissing):
        store.stat("2025/03/01/call.wav")
    assert list(store.keys()) == []
    assert files_under(store.root) == []


def test_legal_hold_refuses_delete_until_released(
    store: LocalStore, clock: Clock, tmp_path: Path
) -> None:
    put(store, "held.wav", AUDIO, tmp_path, legal_hold=True)
    assert store.stat("held.wav").legal_hold
    clock.now = T0 + 2 * ONE_YEAR

    with pytest.raises(RetentionLocked, match="legal hold"):
        store.delete("held.wav")
    store.set_legal_hold("held.wav", False)
    assert not store.stat("held.wav").legal_hold

    store.delete("held.wav")
    with pytest.raises(ObjectMissing):
        store.stat("held.wav")


def test_legal_hold_set_after_put_is_kept(store: LocalStore, clock: Clock, tmp_path: Path) -> None:
    put(store, "later-held.wav", AUDIO, tmp_path)
    store.set_legal_hold("later-held.wav", True)
    clock.now = T0 + 2 * ONE_YEAR

    with pytest.raises(RetentionLocked, match="legal hold"):
        store.delete("later-held.wav")
    assert store.stat("later-held.wav").legal_hold


def test_overwrite_with_other_content_is_refused(store: LocalStore, tmp_path: Path) -> None:
    original = put(store, "call.wav", AUDIO, tmp_path)

    with pytest.raises(RetentionLocked, match="already holds other content"):
        put(store, "call.wav", b"something else", tmp_path)

    assert store.hash("call.wav") == original
    assert files_under(store.root) == ["call.wav", "call.wav.lock.json"]


def test_putting_the_same_content_again_is_harmless(store: LocalStore, tmp_path: Path) -> None:
    put(store, "call.wav", AUDIO, tmp_path)
    first = store.stat("call.wav")

    put(store, "call.wav", AUDIO, tmp_path)

    assert store.stat("call.wav") == first


def test_source_not_matching_its_sha256_is_not_stored(store: LocalStore, source) -> None:
    path, _ = source(AUDIO)

    with pytest.raises(StoreError, match="changed after it was hashed"):
        store.put("call.wav", path, sha256="0" * 64, retain_until=T0 + ONE_YEAR)

    assert files_under(store.root) == []


@pytest.mark.parametrize(
    "key", ["../escape.wav", "a/../../escape.wav", "/etc/passwd", "", "a//b.wav", ".hidden.wav"]
)
def test_keys_outside_the_root_are_rejected(store: LocalStore, source, key: str) -> None:
    path, digest = source(AUDIO)

    with pytest.raises(ValueError, match="bad recording key"):
        store.put(key, path, sha256=digest, retain_until=T0 + ONE_YEAR)
    with pytest.raises(ValueError, match="bad recording key"):
        store.stat(key)

    assert files_under(store.root) == []
    assert not (store.root.parent / "escape.wav").exists()


def test_retention_must_be_in_the_future_and_aware(store: LocalStore, source) -> None:
    path, digest = source(AUDIO)

    with pytest.raises(ValueError, match="not after now"):
        store.put("call.wav", path, sha256=digest, retain_until=T0 - timedelta(seconds=1))
    with pytest.raises(ValueError, match="no time zone"):
        store.put("call.wav", path, sha256=digest, retain_until=datetime(2026, 3, 1))


def test_below_the_free_space_minimum_the_store_is_full(root: Path, clock: Clock, source) -> None:
    full = LocalStore(root, clock=clock, min_free_bytes=2**62)
    path, digest = source(AUDIO)

    with pytest.raises(StoreFull, match="minimum"):
        full.check()
    with pytest.raises(StoreFull, match="free space"):
        full.put("2025/03/01/call.wav", path, sha256=digest, retain_until=T0 + ONE_YEAR)

    assert files_under(root) == []


def test_disk_full_while_writing_is_store_full_and_leaves_no_temp_file(
    store: LocalStore, source, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, digest = source(AUDIO)

    real_fsync = os.fsync

    def no_space_for_data(fd: int) -> None:
        if stat.S_ISREG(os.fstat(fd).st_mode):  # delayed allocation reports ENOSPC here
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", no_space_for_data)
    with pytest.raises(StoreFull, match="no space left writing 'd/call.wav'"):
        store.put("d/call.wav", path, sha256=digest, retain_until=T0 + ONE_YEAR)
    monkeypatch.undo()

    assert files_under(store.root) == []
    with pytest.raises(ObjectMissing):
        store.stat("d/call.wav")


def test_a_missing_root_is_unavailable_not_created(tmp_path: Path, clock: Clock, source) -> None:
    unmounted = LocalStore(tmp_path / "not-mounted", clock=clock, min_free_bytes=0)
    path, digest = source(AUDIO)

    with pytest.raises(StoreUnavailable, match="does not exist"):
        unmounted.check()
    with pytest.raises(StoreUnavailable, match="does not exist"):
        unmounted.put("call.wav", path, sha256=digest, retain_until=T0 + ONE_YEAR)
    assert not (tmp_path / "not-mounted").exists()


def test_an_object_whose_retention_record_is_gone_cannot_be_deleted(
    store: LocalStore, clock: Clock, tmp_path: Path, root: Path
) -> None:
    put(store, "call.wav", AUDIO, tmp_path)
    (root / "call.wav.lock.json").unlink()
    clock.now = T0 + 2 * ONE_YEAR

    with pytest.raises(StoreError, match="retention record .* is missing"):
        store.delete("call.wav")
    assert store.hash("call.wav") == hashlib.sha256(AUDIO).hexdigest()
