"""PostgreSQL schema migrations: plain numbered SQL files applied in order at start.

``config/migrations/NNN_name.sql`` files are applied in number order, each in
its own transaction together with its row in ``schema_migrations``, so a
failed migration leaves nothing half-applied. A session advisory lock
serialises engines that start together against one database. The checksum of
every applied file is kept: editing a file after it was applied is an error
naming the file (write a new numbered migration instead), because the
database would silently differ from what the file says.

Because each file runs inside a transaction, a migration must not contain
its own BEGIN/COMMIT nor statements that refuse a transaction block
(``CREATE INDEX CONCURRENTLY``, ``VACUUM``).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg

log = logging.getLogger(__name__)

__all__ = [
    "MIGRATION_LOCK_KEY",
    "Migration",
    "MigrationError",
    "apply_migrations",
    "default_migrations_dir",
    "discover_migrations",
    "migrate",
    "migrate_all",
    "redact_dsn",
]

# Any constant shared by every engine version works; this one is b"hotline" + 0x01.
MIGRATION_LOCK_KEY = 0x686F746C696E6501

_FILE_NAME = re.compile(r"^(?P<number>\d+)_[A-Za-z0-9_\-]+\.sql$")


class MigrationError(RuntimeError):
    """The migration files or the recorded history are inconsistent."""


@dataclass(frozen=True)
class Migration:
    """One SQL file; ``version`` is its file name without ``.sql``."""

    number: int
    version: str
    path: Path
    sql: str
    checksum: str


def default_migrations_dir() -> Path:
    """``config/migrations`` of the installed ``config`` package."""
    return Path(str(resources.files("config").joinpath("migrations")))


def _checksum(text: str) -> str:
    # Line endings are normalised so that a CRLF checkout is not "a changed file".
    normalised = text.replace("\r\n", "\n").encode("utf-8")
    return hashlib.sha256(normalised).hexdigest()


def discover_migrations(directory: Path) -> list[Migration]:
    """The ``*.sql`` files of *directory* in number order, validated."""
    if not directory.is_dir():
        raise MigrationError(f"migrations directory {directory} does not exist")
    migrations: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(
                f"{path}: migration files must be named NNN_description.sql (e.g. 002_agents.sql)"
            )
        text = path.read_text(encoding="utf-8")
        migrations.append(
            Migration(
                number=int(match["number"]),
                version=path.stem,
                path=path,
                sql=text,
                checksum=_checksum(text),
            )
        )
    migrations.sort(key=lambda m: m.number)
    for earlier, later in zip(migrations, migrations[1:], strict=False):
        if earlier.number == later.number:
            raise MigrationError(
                f"{earlier.path.name} and {later.path.name} have the same number {later.number}"
            )
    return migrations


def _namespace(version: str) -> str:
    return version.partition("/")[0] if "/" in version else ""


async def apply_migrations(
    conn: Any,
    *,
    directory: Path | None = None,
    features: Sequence[tuple[str, Path]] = (),
    lock_timeout_s: float = 60.0,
) -> list[str]:
    """Apply the migrations *conn*'s database lacks; return their versions.

    The core's files first, then each feature's (``features``: (name,
    directory) pairs), recorded as ``<name>/<file>``. *conn* is an
    ``asyncpg.Connection``. Raises ``MigrationError`` when an applied file
    was changed since (naming it), and ``TimeoutError`` when another engine
    holds the migration lock for longer than *lock_timeout_s*.
    """
    migrations = discover_migrations(directory or default_migrations_dir())
    for name, feature_dir in features:
        migrations += [
            replace(m, version=f"{name}/{m.version}") for m in discover_migrations(feature_dir)
        ]
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY, timeout=lock_timeout_s)
    try:
        await conn.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version    text PRIMARY KEY,
                applied_at timestamptz NOT NULL DEFAULT now(),
                checksum   text NOT NULL
            )
            """
        )
        rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
        applied: dict[str, str] = {row["version"]: row["checksum"] for row in rows}
        known = {m.version for m in migrations}
        # Only the sets applied here are judged (a feature not enabled in this
        # engine keeps its rows).
        namespaces = {_namespace(m.version) for m in migrations}
        unknown = sorted(v for v in set(applied) - known if _namespace(v) in namespaces)
        if unknown:
            # A newer engine migrated this database; an older one may still run
            # if the changes were additive, so warn rather than refuse.
            log.warning(
                "database has migrations this engine does not know: %s "
                "(was a newer version started against it?)",
                ", ".join(unknown),
            )
        done: list[str] = []
        for migration in migrations:
            recorded = applied.get(migration.version)
            if recorded is not None:
                if recorded != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.path} was changed after it was applied "
                        f"(checksum {recorded[:12]}... recorded, {migration.checksum[:12]}... "
                        f"now); restore the file and put the change in a new numbered migration"
                    )
                continue
            async with conn.transaction():
                try:
                    await conn.execute(migration.sql)
                except asyncpg.PostgresError as exc:
                    raise MigrationError(f"migration {migration.path} failed: {exc}") from exc
                await conn.execute(
                    "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)",
                    migration.version,
                    migration.checksum,
                )
            log.info("applied migration %s", migration.version)
            done.append(migration.version)
        return done
    finally:
        # A dead connection released the session lock with it.
        if not conn.is_closed():
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)


async def migrate(dsn: str, *, directory: Path | None = None, timeout_s: float = 10.0) -> list[str]:
    """Connect to *dsn*, apply what is missing, disconnect."""
    conn = await asyncpg.connect(dsn, timeout=timeout_s)
    try:
        return await apply_migrations(conn, directory=directory)
    finally:
        await conn.close()


async def migrate_all(
    pool: Any, features: Sequence[tuple[str, Path]] = (), *, timeout_s: float = 10.0
) -> list[str]:
    """Apply the core's and the features' missing migrations through *pool*."""
    async with pool.acquire(timeout=timeout_s) as conn:
        return await apply_migrations(conn, features=features)


def redact_dsn(dsn: str) -> str:
    """``user@host:port/database`` of *dsn*, never its password, for messages."""
    parts = urlsplit(dsn)
    if parts.scheme not in ("postgres", "postgresql"):
        return "<a DSN that is not a postgresql:// URL>"
    try:
        port: int | str = parts.port or 5432
    except ValueError:  # out of range or not a number
        port = "<bad port>"
    user = f"{parts.username}@" if parts.username else ""
    return f"{user}{parts.hostname or 'localhost'}:{port}{parts.path}"
