"""The retention job and the integrity audit.

Retention deletes only recordings past their ``retain_until`` and not on
legal hold, in batches, each deletion written to the audit log; the store
itself refuses a deletion before the retention date (Object Lock, or the
local store's lock file), so a wrong clock here cannot destroy a recording
early. ``dry_run`` reports what would go.

The integrity audit re-hashes every stored object against the catalog and
lists mismatches, missing objects and orphans (objects the catalog does
not know).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .store import ObjectMissing, RetentionLocked, Store, StoreError

__all__ = ["IntegrityReport", "RetentionReport", "audit_integrity", "run_retention"]


@dataclass
class RetentionReport:
    dry_run: bool
    deleted: list[str] = field(default_factory=list)
    """Call ids deleted (or, in a dry run, that would be)."""
    held: list[str] = field(default_factory=list)
    """Past retain_until but on legal hold: kept."""
    refused: list[tuple[str, str]] = field(default_factory=list)
    """(call id, why): the store refused or failed; kept, tried next run."""

    @property
    def ok(self) -> bool:
        return not self.refused


@dataclass
class IntegrityReport:
    checked: int = 0
    mismatches: list[tuple[str, str, str, str]] = field(default_factory=list)
    """(call id, key, catalogued sha256, actual sha256)."""
    missing: list[tuple[str, str]] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.mismatches or self.missing or self.orphans or self.errors)


async def run_retention(
    pool: Any,
    store: Store,
    *,
    now: datetime,
    operator: str,
    dry_run: bool = False,
    batch: int = 500,
) -> RetentionReport:
    """Delete what is past ``retain_until`` and not on legal hold. For each
    recording: every stored object is checked before any is deleted (never
    half a recording), then the objects go, then the catalog row and its
    audit-log row in one transaction (never a deletion without its audit)."""
    report = RetentionReport(dry_run=dry_run)
    report.held = [
        r["call_id"]
        for r in await pool.fetch(
            "SELECT call_id FROM recording WHERE retain_until < $1 AND legal_hold ORDER BY id", now
        )
    ]
    after = 0
    while rows := await pool.fetch(
        "SELECT id, call_id, storage_key, legs_key, sha256, retain_until FROM recording"
        " WHERE retain_until < $1 AND NOT legal_hold AND state IN ('stored', 'failed')"
        " AND id > $2 ORDER BY id LIMIT $3",
        now,
        after,
        batch,
    ):
        for row in rows:
            after = row["id"]
            if dry_run:
                report.deleted.append(row["call_id"])
                continue
            keys = [k for k in (row["storage_key"], row["legs_key"]) if k]
            try:
                await asyncio.to_thread(_delete_all, store, keys, now)
            except StoreError as exc:
                report.refused.append((row["call_id"], str(exc)))
                continue
            await _forget(pool, row, keys, operator)
            report.deleted.append(row["call_id"])
    return report


def _delete_all(store: Store, keys: list[str], now: datetime) -> None:
    """Delete *keys*, or none of them: each is checked first."""
    present = []
    for key in keys:
        try:
            found = store.stat(key)
        except ObjectMissing:
            continue
        if found.legal_hold or found.retain_until > now:
            raise RetentionLocked(
                f"{key}: the store keeps it until {found.retain_until.isoformat()}"
                f"{' and it is on legal hold' if found.legal_hold else ''}; the catalog says"
                " otherwise: check the store's lock and the catalog (hotline recordings audit)"
            )
        present.append(key)
    for key in present:
        store.delete(key)


async def _forget(pool: Any, row: Any, keys: list[str], operator: str) -> None:
    detail = {
        "keys": keys,
        "sha256": row["sha256"],
        "retain_until": row["retain_until"].isoformat(),
        "reason": "retention",
    }
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("DELETE FROM recording WHERE id = $1", row["id"])
        await conn.execute(
            "INSERT INTO audit_log (username, action, subject, remote, detail)"
            " VALUES ($1, 'recording_deleted', $2, '', $3::jsonb)",
            operator,
            row["call_id"],
            json.dumps(detail),
        )


async def audit_integrity(pool: Any, store: Store) -> IntegrityReport:
    report = IntegrityReport()
    rows = await pool.fetch(
        "SELECT call_id, storage_key, sha256, legs_key, legs_sha256 FROM recording"
        " WHERE state = 'stored' ORDER BY id"
    )
    known: set[str] = set()
    for row in rows:
        for key, expected in (
            (row["storage_key"], row["sha256"]),
            (row["legs_key"], row["legs_sha256"]),
        ):
            if not key:
                continue
            known.add(key)
            report.checked += 1
            try:
                actual = await asyncio.to_thread(store.hash, key)
            except ObjectMissing:
                report.missing.append((row["call_id"], key))
                continue
            except StoreError as exc:
                report.errors.append((row["call_id"], str(exc)))
                continue
            if actual != expected:
                report.mismatches.append((row["call_id"], key, expected, actual))
    stored = await asyncio.to_thread(lambda: list(store.keys()))
    report.orphans = sorted(k for k in stored if k not in known)
    return report
