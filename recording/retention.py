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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .store import ObjectMissing, RetentionLocked, Store, StoreError

__all__ = ["IntegrityReport", "RetentionReport", "audit_integrity", "run_retention"]

Audit = Callable[[str, str, dict[str, Any]], Awaitable[None]]
"""(action, subject, detail) -> written to the audit log."""


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
    audit: Audit,
    dry_run: bool = False,
    batch: int = 500,
) -> RetentionReport:
    report = RetentionReport(dry_run=dry_run)
    report.held = [
        r["call_id"]
        for r in await pool.fetch(
            "SELECT call_id FROM recording WHERE retain_until < $1 AND legal_hold ORDER BY id", now
        )
    ]
    after = 0
    while True:
        rows = await pool.fetch(
            "SELECT id, call_id, storage_key, legs_key, sha256, retain_until FROM recording"
            " WHERE retain_until < $1 AND NOT legal_hold AND state IN ('stored', 'failed')"
            " AND id > $2 ORDER BY id LIMIT $3",
            now,
            after,
            batch,
        )
        if not rows:
            return report
        for row in rows:
            after = row["id"]
            keys = [k for k in (row["storage_key"], row["legs_key"]) if k]
            if dry_run:
                report.deleted.append(row["call_id"])
                continue
            try:
                for key in keys:
                    try:
                        await asyncio.to_thread(store.delete, key)
                    except ObjectMissing:
                        pass
            except (RetentionLocked, StoreError) as exc:
                report.refused.append((row["call_id"], str(exc)))
                continue
            await pool.execute("DELETE FROM recording WHERE id = $1", row["id"])
            await audit(
                "recording_deleted",
                row["call_id"],
                {
                    "keys": keys,
                    "sha256": row["sha256"],
                    "retain_until": row["retain_until"].isoformat(),
                    "reason": "retention",
                },
            )
            report.deleted.append(row["call_id"])


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
