"""Where call recordings are kept: the interface every store honours, its
errors, and the rules on keys, hashes, retention dates and byte ranges that
both stores (:mod:`recording.store_local`, :mod:`recording.store_s3`) share.

Every recording must be kept at least a year (contract), unchanged until its
retention date, and longer while under legal hold. A store enforces that
itself: ``put`` never replaces a key's content, ``delete`` refuses before the
retention date or while on hold. Post-processing workers are synchronous
processes and the HTTP playback route calls a store through
``asyncio.to_thread``, so the interface is synchronous.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

DEFAULT_CHUNK = 64 * 1024

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
SIDECAR_SUFFIX = ".lock.json"


class StoreError(Exception):
    """A recording store could not do what was asked; the message names the
    store, the key and what to do."""


class StoreUnavailable(StoreError):
    """The store cannot be reached or answered with a server error: retry later."""


class StoreFull(StoreError):
    """The store has no room for the write: retry later, once space is freed."""


class RetentionLocked(StoreError):
    """Deleting or replacing the object was refused: it is before its
    retention date, on legal hold, or the key already holds other content."""


class ObjectMissing(StoreError):
    """No object under that key."""


@dataclass(frozen=True)
class StoredObject:
    """One stored recording as the store sees it now."""

    key: str
    size: int
    sha256: str  # hex, of the stored bytes as written by ``put``
    retain_until: datetime  # aware, UTC
    legal_hold: bool


class Store(Protocol):
    """A place to keep recordings immutably until their retention date."""

    name: str

    def put(
        self,
        key: str,
        source: Path,
        *,
        sha256: str,
        retain_until: datetime,
        legal_hold: bool = False,
    ) -> StoredObject:
        """Store *source* under *key*, retained until *retain_until*.

        *sha256* is the hex digest the caller computed: a source that does not
        match it is refused (StoreError) before anything is stored. A key that
        already holds the same bytes is left as it is (a retried put is
        harmless); one that holds other bytes raises RetentionLocked."""
        ...

    def stat(self, key: str) -> StoredObject:
        """The object under *key* (ObjectMissing if none)."""
        ...

    def read_range(self, key: str, start: int, end_inclusive: int | None) -> bytes:
        """Bytes *start* .. *end_inclusive* (None: to the end; an end past the
        object is cut to it). ValueError when *start* is past the object."""
        ...

    def open_stream(
        self,
        key: str,
        start: int = 0,
        end_inclusive: int | None = None,
        chunk: int = DEFAULT_CHUNK,
    ) -> Iterator[bytes]:
        """The same bytes as :meth:`read_range` in chunks of at most *chunk*.
        A missing key or a bad range raises here, before the first chunk, so
        the caller can answer 404/416 before sending anything."""
        ...

    def hash(self, key: str) -> str:
        """SHA-256 (hex) of the bytes actually stored, read back in full: the
        check after a put and the integrity audit's."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object for good (RetentionLocked before its retention
        date or while on legal hold; ObjectMissing if there is none)."""
        ...

    def set_legal_hold(self, key: str, on: bool) -> None:
        """Put the object on legal hold or release it."""
        ...

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Every stored key starting with *prefix* (to find orphans)."""
        ...

    def check(self) -> None:
        """Return if the store can take a write now; StoreUnavailable or
        StoreFull otherwise."""
        ...


def utc_now() -> datetime:
    """The default clock of the stores."""
    return datetime.now(UTC)


def validate_key(key: str) -> str:
    """*key* if it is a relative slash-separated path of plain names.

    Keys are the same on every store, so a recording can move between them;
    ``..`` and absolute paths would escape a local store's root, and names
    starting with a dot or ending in the sidecar suffix are the local store's
    own temporary and retention files."""
    parts = key.split("/")
    if (
        not key
        or "\\" in key
        or "\x00" in key
        or any(part in ("", ".", "..") or part.startswith(".") for part in parts)
        or key.endswith(SIDECAR_SUFFIX)
    ):
        raise ValueError(
            f"bad recording key {key!r}: use a relative path of names separated by '/', "
            f"without '..', empty or dot-led names, or the suffix {SIDECAR_SUFFIX!r}"
        )
    return key


def checked_sha256(sha256: str) -> str:
    """*sha256* as 64 lowercase hex digits, or ValueError."""
    digest = sha256.lower()
    if not _SHA256_HEX.fullmatch(digest):
        raise ValueError(f"sha256 {sha256!r} is not 64 hex digits")
    return digest


def checked_retain_until(retain_until: datetime, now: datetime) -> datetime:
    """*retain_until* in UTC, rounded up to the whole second (S3 keeps whole
    seconds; rounding up never shortens a retention), or ValueError if it is
    naive or not after *now* (S3 refuses a past date, so both stores do)."""
    if retain_until.tzinfo is None or retain_until.utcoffset() is None:
        raise ValueError(f"retain_until {retain_until!r} has no time zone: pass an aware datetime")
    utc = retain_until.astimezone(UTC)
    if utc.microsecond:
        utc = utc.replace(microsecond=0) + timedelta(seconds=1)
    if utc <= now:
        raise ValueError(
            f"retain_until {utc.isoformat()} is not after now ({now.isoformat()}): "
            "a recording must be retained into the future"
        )
    return utc


def file_sha256(source: Path) -> str:
    """SHA-256 (hex) of the file at *source*."""
    with source.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def resolve_range(size: int, start: int, end_inclusive: int | None, key: str) -> tuple[int, int]:
    """``(start, length)`` of a byte range of an object of *size* bytes, with
    HTTP's rules: an end past the object is cut to it, a start past it is
    unsatisfiable (ValueError) except the whole of an empty object."""
    if start < 0 or (end_inclusive is not None and end_inclusive < start):
        raise ValueError(f"bad byte range {start}-{end_inclusive} for {key!r}")
    if start == 0 and end_inclusive is None:
        return 0, size
    if start >= size:
        raise ValueError(f"byte range {start}-{end_inclusive} is past the end of {key!r} ({size})")
    end = size - 1 if end_inclusive is None else min(end_inclusive, size - 1)
    return start, end - start + 1


def range_header(start: int, end_inclusive: int | None) -> str | None:
    """The HTTP ``Range`` value for a range, None for the whole object."""
    if start < 0 or (end_inclusive is not None and end_inclusive < start):
        raise ValueError(f"bad byte range {start}-{end_inclusive}")
    if start == 0 and end_inclusive is None:
        return None
    return f"bytes={start}-" if end_inclusive is None else f"bytes={start}-{end_inclusive}"


class ByteStream:
    """*length* bytes read on demand in chunks, from a file or an HTTP body.

    It holds the file or connection until exhausted or closed: the playback
    route closes it when the listener hangs up (``close()`` or ``with``)."""

    def __init__(
        self,
        read: Callable[[int], bytes],
        close: Callable[[], None],
        *,
        length: int,
        chunk: int,
        what: str,
    ) -> None:
        if chunk <= 0:
            raise ValueError(f"chunk must be positive, not {chunk}")
        self._read = read
        self._close = close
        self._left = length
        self._chunk = chunk
        self._what = what
        self._closed = False

    def __iter__(self) -> ByteStream:
        return self

    def __next__(self) -> bytes:
        if self._left <= 0:
            self.close()
            raise StopIteration
        data = self._read(min(self._chunk, self._left))
        if not data:
            self.close()
            raise StoreError(
                f"{self._what} ended {self._left} bytes early: the stored object "
                "is shorter than announced; run the integrity audit on it"
            )
        self._left -= len(data)
        return data

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close()

    def __enter__(self) -> ByteStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sha256_of(chunks: Iterator[bytes]) -> str:
    """SHA-256 (hex) of a stream of chunks."""
    digest = hashlib.sha256()
    for data in chunks:
        digest.update(data)
    return digest.hexdigest()


def retention_refusal(store: str, obj: StoredObject, now: datetime) -> str | None:
    """Why *obj* may not be deleted at *now*, or None if it may."""
    if obj.legal_hold:
        return (
            f"{store}: {obj.key!r} is on legal hold: release the hold "
            "(set_legal_hold(key, False)) before deleting it"
        )
    if now < obj.retain_until:
        days = math.ceil((obj.retain_until - now) / timedelta(days=1))
        return (
            f"{store}: {obj.key!r} is retained until {obj.retain_until.isoformat()} "
            f"(about {days} more days): it cannot be deleted before then"
        )
    return None
