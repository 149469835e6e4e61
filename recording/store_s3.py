"""Recordings in an S3 bucket with Object Lock (AWS S3, MinIO, Ceph RGW).

Every object is written in COMPLIANCE mode with its retain-until date: the
storage itself then refuses to delete or shorten it, whatever the credentials.
An Object Lock bucket is versioned, so a plain DELETE only hides an object
behind a delete marker; :meth:`S3Store.delete` removes its versions one by
one, which the server refuses (AccessDenied) before the date or on hold.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    ResponseStreamingError,
)
from botocore.exceptions import ConnectionError as EndpointUnreachable

from recording.store import (
    DEFAULT_CHUNK,
    ByteStream,
    ObjectMissing,
    RetentionLocked,
    StoredObject,
    StoreError,
    StoreFull,
    StoreUnavailable,
    checked_retain_until,
    checked_sha256,
    file_sha256,
    range_header,
    sha256_of,
    utc_now,
    validate_key,
)

MAX_SINGLE_PUT_BYTES = 5 * 1024**3  # S3's limit for one PUT; recordings are far smaller
_NO_RETENTION = datetime.fromtimestamp(0, UTC)
_UNAVAILABLE_CODES = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout"}
_FULL_CODES = {"XMinioStorageFull", "QuotaExceeded", "XMinioAdminBucketQuotaExceeded"}
_MISSING_CODES = {"404", "NoSuchKey", "NotFound", "NoSuchVersion"}
_EXISTS_CODES = {"PreconditionFailed", "ConditionalRequestConflict"}


class S3Store:
    """A :class:`recording.store.Store` in *bucket* at *endpoint_url*.

    Timeouts are short and retries few (*connect_timeout_s*, *read_timeout_s*,
    *max_attempts*) so that a dead endpoint fails within seconds with
    StoreUnavailable and the worker moves on to its retry schedule instead of
    hanging. *clock* only checks that a retention date is in the future: the
    server's own clock decides when an object may go."""

    def __init__(
        self,
        *,
        endpoint_url: str,
        bucket: str,
        access_key: str,
        secret_key: str,
        region: str = "us-east-1",
        clock: Callable[[], datetime] = utc_now,
        connect_timeout_s: float = 2.0,
        read_timeout_s: float = 10.0,
        max_attempts: int = 2,
    ) -> None:
        self.bucket = bucket
        self.region = region
        self.name = f"s3:{bucket}@{endpoint_url}"
        self._clock = clock
        config = Config(
            connect_timeout=connect_timeout_s,
            read_timeout=read_timeout_s,
            retries={"mode": "standard", "total_max_attempts": max_attempts},
            # MinIO and Ceph serve buckets by path; virtual hosts need DNS set up for them.
            s3={"addressing_style": "path"},
            signature_version="s3v4",
            # put sends its own SHA-256; no CRC trailers that older S3 clones reject.
            request_checksum_calculation="when_required",
        )
        self._s3: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name=region,
            config=config,
        )

    def ensure_bucket(self) -> None:
        """Create the bucket with Object Lock if it does not exist; StoreError
        if it exists without Object Lock (it would not enforce retention)."""
        try:
            self._s3.head_bucket(Bucket=self.bucket)
        except ClientError as e:
            if _code(e) not in ("404", "NoSuchBucket", "NotFound"):
                raise self._error(e, "look up the bucket") from e
            self._create_bucket()
        except BotoCoreError as e:
            raise self._error(e, "look up the bucket") from e
        self.check()

    def put(
        self,
        key: str,
        source: Path,
        *,
        sha256: str,
        retain_until: datetime,
        legal_hold: bool = False,
    ) -> StoredObject:
        validate_key(key)
        sha256 = checked_sha256(sha256)
        until = checked_retain_until(retain_until, self._clock())
        size = source.stat().st_size
        if size > MAX_SINGLE_PUT_BYTES:
            raise StoreError(f"{self.name}: {source} is {size} bytes, more than one PUT takes")
        actual = file_sha256(source)
        if actual != sha256:
            raise StoreError(
                f"{self.name}: {source} (for {key!r}) has sha256 {actual}, not the {sha256} "
                "given: it changed after it was hashed; hash it again and retry"
            )
        try:
            return self._same_or_locked(key, sha256)
        except ObjectMissing:
            pass
        with source.open("rb") as body:
            try:
                self._s3.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=body,
                    ContentLength=size,
                    # The server checks the body against it; Object Lock requires one.
                    ChecksumAlgorithm="SHA256",
                    ChecksumSHA256=base64.b64encode(bytes.fromhex(sha256)).decode(),
                    Metadata={"sha256": sha256},
                    ObjectLockMode="COMPLIANCE",
                    ObjectLockRetainUntilDate=until,
                    ObjectLockLegalHoldStatus="ON" if legal_hold else "OFF",
                    # Refused if the key exists: a versioned bucket would otherwise
                    # take a second version behind the first one's back.
                    IfNoneMatch="*",
                )
            except ClientError as e:
                if _code(e) in _EXISTS_CODES:
                    return self._same_or_locked(key, sha256)
                raise self._error(e, "store", key) from e
            except BotoCoreError as e:
                raise self._error(e, "store", key) from e
        return self.stat(key)

    def stat(self, key: str) -> StoredObject:
        """The current version of *key*. An object without Object Lock
        retention (not written by this store) reports the epoch as its
        retention date, and an empty sha256 if it was stored without one."""
        head = self._head(key)
        sha256 = head.get("Metadata", {}).get("sha256", "")
        checksum = head.get("ChecksumSHA256", "")
        if not sha256 and checksum and "-" not in checksum:  # "-N": per-part, not the whole
            sha256 = base64.b64decode(checksum).hex()
        until = head.get("ObjectLockRetainUntilDate")
        return StoredObject(
            key=key,
            size=head["ContentLength"],
            sha256=sha256,
            retain_until=until.astimezone(UTC) if until else _NO_RETENTION,
            legal_hold=head.get("ObjectLockLegalHoldStatus") == "ON",
        )

    def read_range(self, key: str, start: int, end_inclusive: int | None) -> bytes:
        with self.open_stream(key, start, end_inclusive) as chunks:
            return b"".join(chunks)

    def open_stream(
        self,
        key: str,
        start: int = 0,
        end_inclusive: int | None = None,
        chunk: int = DEFAULT_CHUNK,
    ) -> ByteStream:
        validate_key(key)
        ranged = range_header(start, end_inclusive)
        try:
            response = self._s3.get_object(
                Bucket=self.bucket, Key=key, **({"Range": ranged} if ranged else {})
            )
        except ClientError as e:
            if _code(e) == "InvalidRange":
                raise ValueError(
                    f"byte range {start}-{end_inclusive} is past the end of {key!r}"
                ) from e
            raise self._error(e, "read", key) from e
        except BotoCoreError as e:
            raise self._error(e, "read", key) from e
        body = response["Body"]

        def read(size: int) -> bytes:
            try:
                data: bytes = body.read(size)
            except (BotoCoreError, OSError) as e:
                raise StoreUnavailable(
                    f"{self.name}: reading {key!r} broke off ({e}): retry later"
                ) from e
            return data

        return ByteStream(
            read,
            body.close,
            length=response["ContentLength"],
            chunk=chunk,
            what=f"{self.name} {key!r}",
        )

    def hash(self, key: str) -> str:
        with self.open_stream(key, chunk=1024 * 1024) as chunks:
            return sha256_of(chunks)

    def delete(self, key: str) -> None:
        validate_key(key)
        versions, markers = self._versions(key)
        if not versions:
            raise ObjectMissing(f"{self.name}: no recording {key!r}")
        for version_id in versions:
            try:
                self._s3.delete_object(Bucket=self.bucket, Key=key, VersionId=version_id)
            except ClientError as e:
                if _code(e) == "AccessDenied":
                    raise RetentionLocked(self._refusal(key, version_id)) from e
                raise self._error(e, "delete", key) from e
            except BotoCoreError as e:
                raise self._error(e, "delete", key) from e
        for version_id in markers:
            self._call(
                "remove the delete marker of",
                key,
                self._s3.delete_object,
                Bucket=self.bucket,
                Key=key,
                VersionId=version_id,
            )

    def set_legal_hold(self, key: str, on: bool) -> None:
        version_id = self._head(key)["VersionId"]
        self._call(
            "set the legal hold of",
            key,
            self._s3.put_object_legal_hold,
            Bucket=self.bucket,
            Key=key,
            VersionId=version_id,
            LegalHold={"Status": "ON" if on else "OFF"},
        )

    def keys(self, prefix: str = "") -> Iterator[str]:
        pages = self._s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        try:
            for page in pages:
                for entry in page.get("Contents", []):
                    yield entry["Key"]
        except (ClientError, BotoCoreError) as e:
            raise self._error(e, "list the keys") from e

    def check(self) -> None:
        """Reach the bucket and make sure it has Object Lock (one request)."""
        try:
            config = self._s3.get_object_lock_configuration(Bucket=self.bucket)
        except ClientError as e:
            if _code(e) == "ObjectLockConfigurationNotFoundError":
                raise StoreError(self._no_lock_message()) from e
            raise self._error(e, "check the bucket") from e
        except BotoCoreError as e:
            raise self._error(e, "check the bucket") from e
        if config.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") != "Enabled":
            raise StoreError(self._no_lock_message())

    def _head(self, key: str) -> dict[str, Any]:
        validate_key(key)
        head: dict[str, Any] = self._call(
            "look up",
            key,
            self._s3.head_object,
            Bucket=self.bucket,
            Key=key,
            ChecksumMode="ENABLED",
        )
        return head

    def _same_or_locked(self, key: str, sha256: str) -> StoredObject:
        """The stored object if it holds the bytes of *sha256*: a retried put."""
        stored = self.stat(key)
        if stored.sha256 != sha256:
            raise RetentionLocked(
                f"{self.name}: {key!r} already holds other content (sha256 "
                f"{stored.sha256 or 'unknown'}, not {sha256}): stored recordings are never "
                "replaced; store it under a new key"
            )
        return stored

    def _versions(self, key: str) -> tuple[list[str], list[str]]:
        """Version ids of *key*'s objects and of its delete markers."""
        versions: list[str] = []
        markers: list[str] = []
        pages = self._s3.get_paginator("list_object_versions").paginate(
            Bucket=self.bucket, Prefix=key
        )
        try:
            for page in pages:
                versions += [v["VersionId"] for v in page.get("Versions", []) if v["Key"] == key]
                markers += [
                    m["VersionId"] for m in page.get("DeleteMarkers", []) if m["Key"] == key
                ]
        except (ClientError, BotoCoreError) as e:
            raise self._error(e, "list the versions of", key) from e
        return versions, markers

    def _refusal(self, key: str, version_id: str) -> str:
        """Why the server refused to delete a version, as far as it says."""
        try:
            head = self._s3.head_object(Bucket=self.bucket, Key=key, VersionId=version_id)
        except (ClientError, BotoCoreError):
            head = {}
        until = head.get("ObjectLockRetainUntilDate")
        hold = head.get("ObjectLockLegalHoldStatus", "unknown")
        return (
            f"{self.name}: the server refused to delete {key!r} (version {version_id}): "
            f"retained until {until.astimezone(UTC).isoformat() if until else 'unknown'}, "
            f"legal hold {hold}; wait for that date or release the hold (if neither "
            "applies, the credentials lack s3:DeleteObjectVersion)"
        )

    def _call(self, doing: str, key: str, operation: Callable[..., Any], **params: Any) -> Any:
        try:
            return operation(**params)
        except (ClientError, BotoCoreError) as e:
            raise self._error(e, doing, key) from e

    def _error(self, e: Exception, doing: str, key: str | None = None) -> StoreError:
        """The store error for a failed S3 request."""
        what = f"{self.name}: could not {doing}" + (f" {key!r}" if key else "")
        if isinstance(e, EndpointUnreachable | HTTPClientError | ResponseStreamingError):
            return StoreUnavailable(f"{what}: the endpoint does not answer ({e}); retry later")
        if not isinstance(e, ClientError):
            return StoreError(f"{what}: {e}")
        code = _code(e)
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        message = e.response.get("Error", {}).get("Message", "")
        if code in _FULL_CODES or status == 507:
            return StoreFull(f"{what}: the store is full ({code}: {message}); retry later")
        if code in _UNAVAILABLE_CODES or status >= 500:
            return StoreUnavailable(f"{what}: server error {code} {message}; retry later")
        if code == "NoSuchBucket":
            return StoreError(f"{what}: bucket {self.bucket!r} does not exist; run ensure_bucket()")
        if key and (code in _MISSING_CODES or status == 404):
            return ObjectMissing(f"{self.name}: no recording {key!r}")
        return StoreError(f"{what}: {code} {message}")

    def _create_bucket(self) -> None:
        # us-east-1 is the one region S3 refuses to be told explicitly.
        where = (
            {}
            if self.region == "us-east-1"
            else {"CreateBucketConfiguration": {"LocationConstraint": self.region}}
        )
        try:
            self._s3.create_bucket(Bucket=self.bucket, ObjectLockEnabledForBucket=True, **where)
        except ClientError as e:
            if _code(e) != "BucketAlreadyOwnedByYou":  # another worker created it
                raise self._error(e, "create the bucket") from e
        except BotoCoreError as e:
            raise self._error(e, "create the bucket") from e

    def _no_lock_message(self) -> str:
        return (
            f"{self.name}: bucket {self.bucket!r} has no Object Lock, so it would not enforce "
            "retention: use a bucket created with Object Lock enabled"
        )


def _code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))
