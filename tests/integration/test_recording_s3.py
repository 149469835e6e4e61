"""The S3 recording store over HTTP against moto in server mode: Object Lock
bucket, COMPLIANCE retention, deletes the server refuses (before the date, on
legal hold) and deletes that remove every version, ranges, read-back hashes,
and a dead endpoint failing fast.

moto enforces retention and legal hold on version deletes by its own wall
clock, so "after the retention date" is a retention a few seconds ahead,
waited for by asking the server (bounded in time). What moto does not enforce
(checksums, shortening a COMPLIANCE retention, bypass) is not tested here.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from recording.store import (
    ObjectMissing,
    RetentionLocked,
    Store,
    StoreError,
    StoreUnavailable,
)
from recording.store_s3 import S3Store

pytestmark = pytest.mark.integration

ACCESS_KEY = "hotline-test"
SECRET_KEY = "hotline-test-secret"
AUDIO = bytes(range(256)) * 800  # 204 800 bytes
ONE_YEAR = timedelta(days=365)


def poll_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Until *condition()* holds (asked every 50 ms); fail after *timeout_s*."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout_s} s")
        time.sleep(0.05)  # nothing to await: the server is polled


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto S3 server of this module's own, answering HTTP."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    endpoint = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        if server.poll() is not None:
            pytest.fail(
                f"moto_server exited with {server.returncode} (moto[server] is a test "
                f"dependency: pip install 'moto[server]'):\n{log_path.read_text()}"
            )
        try:
            with urllib.request.urlopen(endpoint, timeout=1):
                return True
        except urllib.error.HTTPError:
            return True  # an HTTP answer, whatever its status
        except OSError:
            return False

    try:
        poll_until(answers, timeout_s=30, what=f"moto_server answering on {endpoint}")
        yield endpoint
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def store_at(endpoint: str, bucket: str, **options: Any) -> S3Store:
    return S3Store(
        endpoint_url=endpoint,
        bucket=bucket,
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        **options,
    )


@pytest.fixture
def store(moto_endpoint: str) -> S3Store:
    """A store on a fresh Object Lock bucket."""
    s3store = store_at(moto_endpoint, f"rec-{uuid.uuid4().hex[:12]}")
    s3store.ensure_bucket()
    return s3store


@pytest.fixture
def s3(moto_endpoint: str) -> Any:
    """A plain client: the test's own look at the bucket, past the store."""
    return boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
    )


@pytest.fixture
def upload(tmp_path: Path) -> Callable[..., tuple[Path, str]]:
    """A file with the given bytes to store, and its sha256."""

    def make(data: bytes = AUDIO, name: str = "call.wav") -> tuple[Path, str]:
        path = tmp_path / name
        path.write_bytes(data)
        return path, hashlib.sha256(data).hexdigest()

    return make


def versions_of(s3: Any, bucket: str, key: str) -> tuple[list[str], list[str]]:
    """Version ids of *key*'s objects and delete markers, as the server lists them."""
    listing = s3.list_object_versions(Bucket=bucket, Prefix=key)
    return (
        [v["VersionId"] for v in listing.get("Versions", []) if v["Key"] == key],
        [m["VersionId"] for m in listing.get("DeleteMarkers", []) if m["Key"] == key],
    )


def in_seconds(seconds: int) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=seconds)


def test_an_s3_store_is_a_store(store: S3Store) -> None:
    checked: Store = store
    assert checked.name.startswith(f"s3:{store.bucket}@http://127.0.0.1:")


def test_ensure_bucket_creates_an_object_lock_bucket(store: S3Store, s3: Any) -> None:
    lock = s3.get_object_lock_configuration(Bucket=store.bucket)["ObjectLockConfiguration"]
    assert lock["ObjectLockEnabled"] == "Enabled"
    assert s3.get_bucket_versioning(Bucket=store.bucket)["Status"] == "Enabled"

    store.ensure_bucket()  # again: the bucket is kept as it is
    store.check()


def test_a_bucket_without_object_lock_is_refused(moto_endpoint: str, s3: Any) -> None:
    s3.create_bucket(Bucket="rec-plain-bucket")
    plain = store_at(moto_endpoint, "rec-plain-bucket")

    with pytest.raises(StoreError, match="has no Object Lock"):
        plain.ensure_bucket()
    with pytest.raises(StoreError, match="has no Object Lock"):
        plain.check()


def test_put_stores_in_compliance_mode_with_its_retention(
    store: S3Store, s3: Any, upload: Callable[..., tuple[Path, str]]
) -> None:
    path, digest = upload()
    until = in_seconds(0) + ONE_YEAR

    stored = store.put("2025/03/01/call.wav", path, sha256=digest, retain_until=until)

    assert stored == store.stat("2025/03/01/call.wav")
    assert (stored.key, stored.size, stored.sha256) == ("2025/03/01/call.wav", len(AUDIO), digest)
    assert stored.retain_until == until
    assert stored.retain_until.tzinfo is UTC
    assert not stored.legal_hold
    head = s3.head_object(Bucket=store.bucket, Key="2025/03/01/call.wav", ChecksumMode="ENABLED")
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockLegalHoldStatus"] == "OFF"
    assert head["ChecksumSHA256"] == base64.b64encode(bytes.fromhex(digest)).decode()
    assert store.hash("2025/03/01/call.wav") == digest


def test_delete_before_retain_until_is_refused_and_the_object_stays(
    store: S3Store, s3: Any, upload: Callable[..., tuple[Path, str]]
) -> None:
    path, digest = upload()
    store.put("call.wav", path, sha256=digest, retain_until=in_seconds(0) + ONE_YEAR)

    with pytest.raises(RetentionLocked, match="refused to delete 'call.wav'.*retained until"):
        store.delete("call.wav")

    assert store.read_range("call.wav", 0, None) == AUDIO
    assert store.hash("call.wav") == digest
    objects, markers = versions_of(s3, store.bucket, "call.wav")
    assert len(objects) == 1 and markers == []  # not even hidden behind a delete marker


def test_after_retain_until_delete_removes_every_version_unless_on_hold(
    store: S3Store, s3: Any, upload: Callable[..., tuple[Path, str]]
) -> None:
    until = in_seconds(2)
    free, free_digest = upload(b"free to go", "free.wav")
    held, held_digest = upload(b"evidence", "held.wav")
    store.put("short/free.wav", free, sha256=free_digest, retain_until=until)
    store.put("short/held.wav", held, sha256=held_digest, retain_until=until, legal_hold=True)
    assert store.stat("short/held.wav").legal_hold
    with pytest.raises(RetentionLocked):
        store.delete("short/free.wav")

    def deleted() -> bool:
        try:
            store.delete("short/free.wav")
        except RetentionLocked:
            return False
        return True

    poll_until(deleted, timeout_s=15, what="the server letting go of short/free.wav")
    assert versions_of(s3, store.bucket, "short/free.wav") == ([], [])
    with pytest.raises(ObjectMissing):
        store.stat("short/free.wav")

    with pytest.raises(RetentionLocked, match="legal hold ON"):
        store.delete("short/held.wav")
    assert store.read_range("short/held.wav", 0, None) == b"evidence"
    store.set_legal_hold("short/held.wav", False)
    assert not store.stat("short/held.wav").legal_hold
    store.delete("short/held.wav")
    assert versions_of(s3, store.bucket, "short/held.wav") == ([], [])


def test_legal_hold_set_after_put(
    store: S3Store, s3: Any, upload: Callable[..., tuple[Path, str]]
) -> None:
    path, digest = upload()
    store.put("call.wav", path, sha256=digest, retain_until=in_seconds(0) + ONE_YEAR)

    store.set_legal_hold("call.wav", True)

    assert store.stat("call.wav").legal_hold
    head = s3.head_object(Bucket=store.bucket, Key="call.wav")
    assert head["ObjectLockLegalHoldStatus"] == "ON"


def test_overwrite_with_other_content_is_refused(
    store: S3Store, s3: Any, upload: Callable[..., tuple[Path, str]]
) -> None:
    path, digest = upload()
    until = in_seconds(0) + ONE_YEAR
    first = store.put("call.wav", path, sha256=digest, retain_until=until)
    other, other_digest = upload(b"other audio", "other.wav")

    assert store.put("call.wav", path, sha256=digest, retain_until=until) == first
    with pytest.raises(RetentionLocked, match="already holds other content"):
        store.put("call.wav", other, sha256=other_digest, retain_until=until)

    assert store.hash("call.wav") == digest
    objects, _ = versions_of(s3, store.bucket, "call.wav")
    assert len(objects) == 1


def test_a_source_not_matching_its_sha256_is_not_stored(
    store: S3Store, upload: Callable[..., tuple[Path, str]]
) -> None:
    path, _ = upload()

    with pytest.raises(StoreError, match="changed after it was hashed"):
        store.put("call.wav", path, sha256="0" * 64, retain_until=in_seconds(0) + ONE_YEAR)

    assert list(store.keys()) == []


def test_a_retention_in_the_past_is_refused_before_sending(
    store: S3Store, upload: Callable[..., tuple[Path, str]]
) -> None:
    path, digest = upload()

    with pytest.raises(ValueError, match="not after now"):
        store.put("call.wav", path, sha256=digest, retain_until=in_seconds(-60))

    assert list(store.keys()) == []


def test_ranges_and_streams_return_the_right_bytes(
    store: S3Store, upload: Callable[..., tuple[Path, str]]
) -> None:
    path, digest = upload()
    store.put("call.wav", path, sha256=digest, retain_until=in_seconds(0) + ONE_YEAR)

    assert store.read_range("call.wav", 100, 199) == AUDIO[100:200]
    assert store.read_range("call.wav", 204_000, None) == AUDIO[204_000:]
    assert store.read_range("call.wav", 204_000, 10**9) == AUDIO[204_000:]
    with store.open_stream("call.wav", 1000, 150_999, chunk=64 * 1024) as chunks:
        parts = list(chunks)
    assert [len(p) for p in parts] == [65536, 65536, 18928]
    assert b"".join(parts) == AUDIO[1000:151_000]
    with pytest.raises(ValueError, match="past the end"):
        store.read_range("call.wav", len(AUDIO), None)


def test_missing_keys(store: S3Store) -> None:
    for attempt in (
        lambda: store.stat("no/such.wav"),
        lambda: store.read_range("no/such.wav", 0, 9),
        lambda: store.open_stream("no/such.wav"),
        lambda: store.hash("no/such.wav"),
        lambda: store.delete("no/such.wav"),
        lambda: store.set_legal_hold("no/such.wav", True),
    ):
        with pytest.raises(ObjectMissing, match="no/such.wav"):
            attempt()


def test_keys_by_prefix(store: S3Store, upload: Callable[..., tuple[Path, str]]) -> None:
    path, digest = upload()
    until = in_seconds(0) + ONE_YEAR
    for key in ("2025/03/02/b.wav", "2025/03/01/a.wav", "2026/01/01/c.wav"):
        store.put(key, path, sha256=digest, retain_until=until)

    assert list(store.keys()) == ["2025/03/01/a.wav", "2025/03/02/b.wav", "2026/01/01/c.wav"]
    assert list(store.keys("2025/")) == ["2025/03/01/a.wav", "2025/03/02/b.wav"]


def test_a_dead_endpoint_is_unavailable_within_seconds(
    upload: Callable[..., tuple[Path, str]],
) -> None:
    dead = store_at(f"http://127.0.0.1:{free_port()}", "rec-nowhere")
    path, digest = upload()

    for attempt in (
        dead.check,
        dead.ensure_bucket,
        lambda: dead.stat("call.wav"),
        lambda: dead.put("call.wav", path, sha256=digest, retain_until=in_seconds(0) + ONE_YEAR),
    ):
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="does not answer"):
            attempt()
        assert time.monotonic() - started < 5
