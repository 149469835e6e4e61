"""Recordings in a directory tree on a local (or mounted) disk.

The object of key ``2025/06/01/abc.wav`` is the file of that path under the
root, read-only (0o444), with its retention record beside it in
``abc.wav.lock.json``. Every write goes to a temporary file in the same
directory, is fsynced, renamed into place and the directory fsynced, so a
crash leaves the old state or the new one, never half a file. The retention
record is written before the object appears and removed after it is gone, so
an object is never visible without its retention.

File modes and this code are all that keep an object here: anyone who may
write the directory (root, a careless script) can remove it. Use the S3 store
with Object Lock where the contract needs storage that enforces retention.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

from recording.store import (
    DEFAULT_CHUNK,
    SIDECAR_SUFFIX,
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
    resolve_range,
    retention_refusal,
    utc_now,
    validate_key,
)

DEFAULT_MIN_FREE_BYTES = 1024**3
_READ_ONLY = 0o444
_NOT_A_FILE = (FileNotFoundError, IsADirectoryError, NotADirectoryError)


class LocalStore:
    """A :class:`recording.store.Store` in the directory *root*.

    *root* must exist: if it is a mount point that is not mounted, writing
    into an empty directory of the parent disk would lose recordings, so a
    missing root is StoreUnavailable rather than created. Writes are refused
    (StoreFull) when they would leave less than *min_free_bytes* free: the
    same disk holds the calls being recorded. *clock* decides retention."""

    def __init__(
        self,
        root: Path,
        *,
        clock: Callable[[], datetime] = utc_now,
        min_free_bytes: int = DEFAULT_MIN_FREE_BYTES,
    ) -> None:
        self.root = root
        self.name = f"local:{root}"
        self._clock = clock
        self._min_free_bytes = min_free_bytes

    def put(
        self,
        key: str,
        source: Path,
        *,
        sha256: str,
        retain_until: datetime,
        legal_hold: bool = False,
    ) -> StoredObject:
        path = self._path(key)
        sha256 = checked_sha256(sha256)
        until = checked_retain_until(retain_until, self._clock())
        if path.exists():
            return self._same_or_locked(key, sha256)
        self._require_space(source.stat().st_size)
        with self._space_errors(key):
            self._make_dirs(path.parent)
            temp, size = self._copy_to_temp(key, source, path, sha256)
            try:
                stored = StoredObject(key, size, sha256, until, legal_hold)
                with self._locked_dir(path.parent) as dir_fd:
                    if path.exists():  # another worker stored it since the check above
                        return self._same_or_locked(key, sha256)
                    self._write_sidecar(path, stored)
                    os.rename(temp, path)
                    os.fsync(dir_fd)
                return stored
            finally:
                temp.unlink(missing_ok=True)

    def stat(self, key: str) -> StoredObject:
        path = self._path(key)
        try:
            info = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            info = None
        if info is None or not stat.S_ISREG(info.st_mode):
            raise ObjectMissing(f"{self.name}: no recording {key!r}")
        size = info.st_size
        try:
            record = json.loads(self._sidecar(path).read_text())
            return StoredObject(
                key=key,
                size=size,
                sha256=record["sha256"],
                retain_until=datetime.fromisoformat(record["retain_until"]),
                legal_hold=bool(record["legal_hold"]),
            )
        except FileNotFoundError:
            problem = "is missing"
        except (ValueError, KeyError, TypeError) as e:
            problem = f"is unreadable ({e})"
        raise StoreError(
            f"{self.name}: the retention record of {key!r} ({self._sidecar(path)}) {problem}: "
            "it was removed or edited outside the store; restore it from backup "
            "(the recording is kept: delete refuses it)"
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
        path = self._path(key)
        try:
            f = path.open("rb")
        except _NOT_A_FILE:
            raise ObjectMissing(f"{self.name}: no recording {key!r}") from None
        try:
            offset, length = resolve_range(os.fstat(f.fileno()).st_size, start, end_inclusive, key)
            f.seek(offset)
        except BaseException:
            f.close()
            raise
        return ByteStream(f.read, f.close, length=length, chunk=chunk, what=f"{self.name} {key!r}")

    def hash(self, key: str) -> str:
        try:
            return file_sha256(self._path(key))
        except _NOT_A_FILE:
            raise ObjectMissing(f"{self.name}: no recording {key!r}") from None

    def delete(self, key: str) -> None:
        path = self._path(key)
        with self._locked_dir(path.parent, missing_is=key) as dir_fd:
            refusal = retention_refusal(self.name, self.stat(key), self._clock())
            if refusal:
                raise RetentionLocked(refusal)
            path.unlink()
            self._sidecar(path).unlink()
            os.fsync(dir_fd)

    def set_legal_hold(self, key: str, on: bool) -> None:
        path = self._path(key)
        with self._locked_dir(path.parent, missing_is=key) as dir_fd, self._space_errors(key):
            stored = self.stat(key)
            if stored.legal_hold != on:
                self._write_sidecar(
                    path,
                    StoredObject(key, stored.size, stored.sha256, stored.retain_until, on),
                )
                os.fsync(dir_fd)

    def keys(self, prefix: str = "") -> Iterator[str]:
        if not self.root.is_dir():
            raise StoreUnavailable(
                f"{self.name}: the store directory {self.root} does not exist: "
                "mount its volume or create it"
            )
        prefix_dir = prefix.rpartition("/")[0]
        base = self._path(prefix_dir) if prefix_dir else self.root
        for directory, subdirs, files in os.walk(base):
            subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
            for file_name in sorted(files):
                if file_name.startswith(".") or file_name.endswith(SIDECAR_SUFFIX):
                    continue  # our temporary files and retention records
                key = Path(directory, file_name).relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    yield key

    def check(self) -> None:
        self._require_space(0)
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise StoreUnavailable(
                f"{self.name}: cannot write in {self.root}: give this process write access"
            )

    def _path(self, key: str) -> Path:
        return self.root / validate_key(key)

    @staticmethod
    def _sidecar(path: Path) -> Path:
        return path.with_name(path.name + SIDECAR_SUFFIX)

    def _same_or_locked(self, key: str, sha256: str) -> StoredObject:
        """The stored object if it holds the bytes of *sha256*: a retried put."""
        stored = self.stat(key)
        if stored.sha256 != sha256:
            raise RetentionLocked(
                f"{self.name}: {key!r} already holds other content (sha256 {stored.sha256}, "
                f"not {sha256}): stored recordings are never replaced; store it under a new key"
            )
        return stored

    def _require_space(self, incoming: int) -> None:
        try:
            fs = os.statvfs(self.root)
        except FileNotFoundError:
            raise StoreUnavailable(
                f"{self.name}: the store directory {self.root} does not exist: "
                "mount its volume or create it"
            ) from None
        except OSError as e:
            raise StoreUnavailable(f"{self.name}: cannot reach {self.root}: {e}") from e
        free = fs.f_bavail * fs.f_frsize
        if free - incoming < self._min_free_bytes:
            raise StoreFull(
                f"{self.name}: {free} bytes free, a write of {incoming} would go below the "
                f"minimum of {self._min_free_bytes}: free space or move recordings, then retry"
            )

    def _make_dirs(self, directory: Path) -> None:
        """Create *directory* under the root, each new level fsynced into its
        parent so a crash cannot lose the path to a stored recording."""
        missing = []
        while not directory.exists():
            missing.append(directory)
            directory = directory.parent
        for new in reversed(missing):
            with contextlib.suppress(FileExistsError):  # another worker made it
                new.mkdir()
            _fsync_dir(new.parent)

    def _copy_to_temp(self, key: str, source: Path, path: Path, sha256: str) -> tuple[Path, int]:
        """A read-only, fsynced copy of *source* beside *path* and its size,
        checked against *sha256*; nothing is left behind on failure."""
        fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        temp = Path(temp_name)
        try:
            digest = hashlib.sha256()
            with os.fdopen(fd, "wb") as out, source.open("rb") as src:
                size = 0
                while data := src.read(DEFAULT_CHUNK * 16):
                    out.write(data)
                    digest.update(data)
                    size += len(data)
                out.flush()
                os.fsync(out.fileno())
            copied = digest.hexdigest()
            if copied != sha256:
                raise StoreError(
                    f"{self.name}: {source} (for {key!r}) has sha256 {copied}, not the {sha256} "
                    "given: it changed after it was hashed; hash it again and retry"
                )
            temp.chmod(_READ_ONLY)
            return temp, size
        except BaseException:
            temp.unlink(missing_ok=True)
            raise

    def _write_sidecar(self, path: Path, stored: StoredObject) -> None:
        """Replace the retention record of *path* atomically (the caller
        fsyncs the directory)."""
        record = {
            "key": stored.key,
            "sha256": stored.sha256,
            "retain_until": stored.retain_until.isoformat(),
            "legal_hold": stored.legal_hold,
        }
        sidecar = self._sidecar(path)
        fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{sidecar.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(record, out)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temp_name, _READ_ONLY)
            os.replace(temp_name, sidecar)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise

    @contextlib.contextmanager
    def _space_errors(self, key: str) -> Iterator[None]:
        """A full disk or quota while writing *key* as StoreFull."""
        try:
            yield
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise StoreFull(
                f"{self.name}: no space left writing {key!r}: free space, then retry"
            ) from e

    @contextlib.contextmanager
    def _locked_dir(self, directory: Path, missing_is: str | None = None) -> Iterator[int]:
        """An fd of *directory* holding its exclusive lock: puts, deletes and
        hold changes of the worker processes take turns per directory, so the
        check of an object and the change that follows cannot interleave.
        A missing directory is ObjectMissing for key *missing_is*."""
        try:
            dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        except (FileNotFoundError, NotADirectoryError):
            if missing_is is None:
                raise
            raise ObjectMissing(f"{self.name}: no recording {missing_is!r}") from None
        try:
            fcntl.flock(dir_fd, fcntl.LOCK_EX)
            yield dir_fd
        finally:
            os.close(dir_fd)  # also releases the lock


def _fsync_dir(directory: Path) -> None:
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
