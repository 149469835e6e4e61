"""Accounts (PostgreSQL ``account``) and the audit log (``audit_log``).

Both are small I/O services over an asyncpg pool; the password hashing they
rely on runs in a thread so that the event loop stays free.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

from .passwords import hash_password, verify_password
from .roles import Role

__all__ = ["Account", "AccountStore", "AuditLog"]

log = logging.getLogger(__name__)

# Verified against when the username is unknown, so that a failed login costs
# the same time whether or not the account exists.
_DUMMY_HASH = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"


@dataclass(frozen=True)
class Account:
    username: str
    role: Role
    agent: str | None
    display_name: str
    disabled: bool
    phone: str | None = None
    """The SIP endpoint a supervisor listens on (ChanSpy is originated to it)."""


def _account(row: Any) -> Account:
    return Account(
        username=row["username"],
        role=Role(row["role"]),
        agent=row["agent"],
        display_name=row["display_name"],
        disabled=row["disabled"],
        phone=row["phone"],
    )


class AccountStore:
    def __init__(self, pool: Any) -> None:
        self._pool = pool

    async def add(
        self,
        username: str,
        role: Role,
        password: str,
        *,
        agent: str | None = None,
        display_name: str = "",
        phone: str | None = None,
    ) -> Account:
        """Create an account; the password is hashed (off the event loop)."""
        password_hash = await asyncio.to_thread(hash_password, password)
        row = await self._pool.fetchrow(
            "INSERT INTO account (username, role, password_hash, agent, display_name, phone)"
            " VALUES ($1, $2, $3, $4, $5, $6) RETURNING *",
            username,
            role.value,
            password_hash,
            agent,
            display_name,
            phone,
        )
        return _account(row)

    async def get(self, username: str) -> Account | None:
        row = await self._pool.fetchrow("SELECT * FROM account WHERE username = $1", username)
        return None if row is None else _account(row)

    async def authenticate(self, username: str, password: str) -> Account | None:
        """The enabled account ``username`` if ``password`` is its password."""
        row = await self._pool.fetchrow(
            "SELECT * FROM account WHERE username = $1", username
        )  # fmt: skip
        stored = row["password_hash"] if row is not None else _DUMMY_HASH
        matches = await asyncio.to_thread(verify_password, password, stored)
        if row is None or not matches or row["disabled"]:
            return None
        return _account(row)

    async def set_disabled(self, username: str, disabled: bool) -> bool:
        status = await self._pool.execute(
            "UPDATE account SET disabled = $2 WHERE username = $1", username, disabled
        )
        return bool(status.endswith(" 1"))


class AuditLog:
    """Append-only record of who did what to whom (logins, agent actions,
    every view of unmasked personal data)."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    async def record(
        self,
        username: str,
        action: str,
        *,
        subject: str = "",
        remote: str = "",
        detail: dict[str, Any] | None = None,
    ) -> None:
        await self._pool.execute(
            "INSERT INTO audit_log (username, action, subject, remote, detail)"
            " VALUES ($1, $2, $3, $4, $5::jsonb)",
            username,
            action,
            subject,
            remote,
            json.dumps(detail or {}, ensure_ascii=False),
        )
