"""Accounts (PostgreSQL ``account``) and the audit log (``audit_log``).

Both are small I/O services over an asyncpg pool; the password hashing they
rely on runs in a thread so that the event loop stays free.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .passwords import hash_password, verify_password
from .roles import Role
from .sessions import Session, token_digest

__all__ = ["Account", "AccountStore", "AuditLog", "SessionStore"]

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


class SessionStore:
    """Sessions in PostgreSQL (``api_session``), by token digest. Expiry is
    judged by the engine's clock, like the in-memory table's."""

    def __init__(self, pool: Any, *, clock: Callable[[], float] = time.time) -> None:
        self._pool = pool
        self._clock = clock

    async def save(self, token: str, session: Session) -> None:
        await self._pool.execute(
            "INSERT INTO api_session (token_digest, username, role, agent, phone, expires_at)"
            " VALUES ($1, $2, $3, $4, $5, to_timestamp($6))",
            token_digest(token),
            session.username,
            session.role.value,
            session.agent,
            session.phone,
            session.expires_at,
        )
        # Rows go a day after they expired (indexed, and a login is rare).
        await self._pool.execute(
            "DELETE FROM api_session WHERE expires_at < to_timestamp($1)",
            self._clock() - 86400.0,
        )

    async def load(self, token: str) -> Session | None:
        """The stored session of *token*, if neither revoked nor expired and
        its account is not disabled."""
        row = await self._pool.fetchrow(
            "SELECT s.username, s.role, s.agent, s.phone,"
            " extract(epoch FROM s.expires_at) AS expires_at"
            " FROM api_session s JOIN account a USING (username)"
            " WHERE s.token_digest = $1 AND s.revoked_at IS NULL"
            " AND s.expires_at > to_timestamp($2) AND NOT a.disabled",
            token_digest(token),
            self._clock(),
        )
        if row is None:
            return None
        return Session(
            row["username"], Role(row["role"]), row["agent"], float(row["expires_at"]), row["phone"]
        )

    async def revoke(self, token: str) -> None:
        await self._pool.execute(
            "UPDATE api_session SET revoked_at = now()"
            " WHERE token_digest = $1 AND revoked_at IS NULL",
            token_digest(token),
        )
