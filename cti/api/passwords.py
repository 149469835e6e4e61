"""Password hashing: scrypt from the standard library, salted, self-describing.

A stored hash reads ``scrypt$<n>$<r>$<p>$<salt>$<hash>`` (base64 without
padding), so the cost can be raised later without invalidating old hashes.
Hashing costs ~50 ms of CPU on purpose: callers on the event loop run it in an
executor (``asyncio.to_thread``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

__all__ = ["PasswordError", "hash_password", "verify_password"]

_N, _R, _P = 2**14, 8, 1
_SALT_BYTES = 16
_KEY_BYTES = 32
_MIN_LENGTH = 8
_MAX_LENGTH = 256


class PasswordError(ValueError):
    """A password that may not be set (too short, too long)."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024,
        dklen=_KEY_BYTES,
    )  # fmt: skip


def hash_password(password: str) -> str:
    """A new salted hash of ``password`` (at least 8 characters)."""
    if len(password) < _MIN_LENGTH:
        raise PasswordError(f"a password needs at least {_MIN_LENGTH} characters")
    if len(password) > _MAX_LENGTH:
        raise PasswordError(f"a password has at most {_MAX_LENGTH} characters")
    salt = secrets.token_bytes(_SALT_BYTES)
    key = _scrypt(password, salt, _N, _R, _P)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches ``stored``; False for any malformed hash."""
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(key)
        actual = _scrypt(password[:_MAX_LENGTH], _unb64(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)
