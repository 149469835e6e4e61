"""Session tokens: random, expiring, stored only as their SHA-256.

A token is 32 random bytes (URL-safe base64) handed to the client once; the
table keeps its digest, so a memory dump does not yield usable tokens. Tokens
expire ``ttl_s`` after login (a shift) and can be revoked (logout). The table
is the engine's in-memory view; with a :class:`~cti.api.accounts.SessionStore`
the API also keeps sessions in PostgreSQL, so that a restarted engine (or the
standby taking over) honours the tokens already handed out.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from .roles import Role

__all__ = ["Session", "SessionTable", "token_digest"]


@dataclass(frozen=True, slots=True)
class Session:
    username: str
    role: Role
    agent: str | None
    """The agent extension the account works as (agents only)."""
    expires_at: float
    phone: str | None = None
    """The supervisor's softphone endpoint, for monitoring."""


def token_digest(token: str) -> str:
    """What is stored of a token: its SHA-256, hex."""
    return _digest(token)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class SessionTable:
    def __init__(self, *, ttl_s: float, clock: Callable[[], float]) -> None:
        if not ttl_s > 0:
            raise ValueError(f"ttl_s must be > 0, got {ttl_s!r}")
        self.ttl_s = ttl_s
        self._clock = clock
        self._sessions: dict[str, Session] = {}

    def open(
        self, username: str, role: Role, agent: str | None, *, phone: str | None = None
    ) -> tuple[str, Session]:
        """A new token and its session."""
        self._purge()
        token = secrets.token_urlsafe(32)
        session = Session(username, role, agent, self._clock() + self.ttl_s, phone)
        self._sessions[_digest(token)] = session
        return token, session

    def get(self, token: str) -> Session | None:
        """The live session of ``token``; None when unknown, revoked or expired."""
        key = _digest(token)
        session = self._sessions.get(key)
        if session is None:
            return None
        if session.expires_at <= self._clock():
            del self._sessions[key]
            return None
        return session

    def adopt(self, token: str, session: Session) -> Session | None:
        """Take in a session found in the store (another engine, or this one
        before a restart) if it is still live; returns it, or None."""
        if session.expires_at <= self._clock():
            return None
        self._sessions[_digest(token)] = session
        return session

    def close(self, token: str) -> bool:
        """Revoke ``token``; True if it was live."""
        return self._sessions.pop(_digest(token), None) is not None

    def close_user(self, username: str) -> int:
        """Revoke every session of ``username`` (account disabled); how many."""
        keys = [k for k, s in self._sessions.items() if s.username == username]
        for key in keys:
            del self._sessions[key]
        return len(keys)

    def __len__(self) -> int:
        self._purge()
        return len(self._sessions)

    def _purge(self) -> None:
        now = self._clock()
        for key in [k for k, s in self._sessions.items() if s.expires_at <= now]:
            del self._sessions[key]
