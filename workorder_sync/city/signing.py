"""Request signing for the reference city protocol: ``appKey`` + HMAC-SHA256.

Pure apart from the nonce store: no clock (``now`` is passed in), no network.

Every request carries four headers:

* ``X-App-Key``: who signs (the district's, or the city's for webhooks);
* ``X-Timestamp``: Unix time in whole seconds, decimal;
* ``X-Nonce``: 16 to 64 characters of ``[A-Za-z0-9_-]``, never reused by a key;
* ``X-Signature``: lowercase hex HMAC-SHA256, keyed by the app key's secret,
  of the canonical string::

      METHOD \\n PATH \\n TIMESTAMP \\n NONCE \\n hex(SHA-256(body))

  ``METHOD`` is upper-cased; ``PATH`` is the request target exactly as it is
  sent on the request line -- the percent-encoded path plus ``?query`` when
  there is one (``URL.raw_path_qs`` on an aiohttp client,
  ``request.raw_path`` on an aiohttp server), so the query is signed too;
  ``TIMESTAMP`` and ``NONCE`` are the header values; the body hash is over
  the exact bytes sent (an empty body hashes ``b""``). Fields are joined by a
  single ``"\\n"``, with no trailing newline.

A receiver accepts a timestamp within ``max_skew_s`` of its own clock and
remembers each nonce until that timestamp leaves the window, so a captured
request can be neither replayed later nor replayed now.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "HEADER_APP_KEY",
    "HEADER_NONCE",
    "HEADER_SIGNATURE",
    "HEADER_TIMESTAMP",
    "Authenticated",
    "InMemoryNonceStore",
    "NonceStore",
    "NonceStoreFull",
    "SignatureError",
    "Verifier",
    "canonical_string",
    "new_nonce",
    "sign",
    "signed_headers",
]

HEADER_APP_KEY = "X-App-Key"
HEADER_TIMESTAMP = "X-Timestamp"
HEADER_NONCE = "X-Nonce"
HEADER_SIGNATURE = "X-Signature"
SIGNED_HEADERS = (HEADER_APP_KEY, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE)

_NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


def canonical_string(method: str, path: str, timestamp: int, nonce: str, body: bytes) -> str:
    """The string that is signed (see the module docstring)."""
    return "\n".join(
        (method.upper(), path, str(timestamp), nonce, hashlib.sha256(body).hexdigest())
    )


def sign(secret: bytes, method: str, path: str, timestamp: int, nonce: str, body: bytes) -> str:
    """Lowercase hex HMAC-SHA256 of the canonical string, keyed by *secret*."""
    message = canonical_string(method, path, timestamp, nonce, body).encode("utf-8")
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def new_nonce() -> str:
    """A fresh random nonce (22 URL-safe characters, 128 bits)."""
    return secrets.token_urlsafe(16)


def signed_headers(
    app_key: str,
    secret: bytes,
    method: str,
    path: str,
    body: bytes,
    *,
    now: int,
    nonce: str,
) -> dict[str, str]:
    """The four signature headers for one request sent at *now* (Unix seconds)."""
    return {
        HEADER_APP_KEY: app_key,
        HEADER_TIMESTAMP: str(now),
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: sign(secret, method, path, now, nonce, body),
    }


class SignatureError(Exception):
    """A request whose signature headers do not authenticate it.

    ``code`` is stable and machine-readable (``missing_header``,
    ``unknown_app_key``, ``malformed_timestamp``, ``stale_timestamp``,
    ``future_timestamp``, ``malformed_nonce``, ``bad_signature``,
    ``reused_nonce``); ``reason`` says what exactly was wrong, for the 401
    answer and the log.
    """

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class NonceStoreFull(Exception):
    """The nonce store cannot remember one more nonce: the request is refused
    (failing open would let a replay through). A capacity problem, not a
    client's fault: answer 503."""


class NonceStore(Protocol):
    """Remembers nonces per app key until they expire."""

    async def seen_before(self, app_key: str, nonce: str, expires_at: int) -> bool:
        """Atomically: ``True`` if *nonce* is already remembered for *app_key*
        (and not expired); otherwise remember it until *expires_at* (Unix
        seconds) and return ``False``."""
        ...


class InMemoryNonceStore:
    """A bounded, expiring :class:`NonceStore` for one process.

    ``clock`` must tell the same time as the ``now`` given to the verifier
    (both Unix seconds). Expired nonces are dropped as new ones arrive; when
    ``max_entries`` live nonces are held, :class:`NonceStoreFull` is raised
    rather than forgetting one early. The check and the add run without an
    ``await`` in between, so they are atomic on the event loop.
    """

    def __init__(
        self, *, max_entries: int = 100_000, clock: Callable[[], float] = time.time
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries!r}")
        self._max_entries = max_entries
        self._clock = clock
        self._expiry: dict[tuple[str, str], int] = {}
        self._by_expiry: list[tuple[int, tuple[str, str]]] = []

    def __len__(self) -> int:
        return len(self._expiry)

    async def seen_before(self, app_key: str, nonce: str, expires_at: int) -> bool:
        self._drop_expired(self._clock())
        key = (app_key, nonce)
        if key in self._expiry:
            return True
        if len(self._expiry) >= self._max_entries:
            raise NonceStoreFull(f"{len(self._expiry)} live nonces held (max_entries)")
        self._expiry[key] = expires_at
        heapq.heappush(self._by_expiry, (expires_at, key))
        return False

    def _drop_expired(self, now: float) -> None:
        while self._by_expiry and self._by_expiry[0][0] < now:
            expires_at, key = heapq.heappop(self._by_expiry)
            if self._expiry.get(key) == expires_at:
                del self._expiry[key]


@dataclass(frozen=True)
class Authenticated:
    """A request whose signature is valid; its nonce is still to be checked
    against the store (``expires_at``: until when it must be remembered)."""

    app_key: str
    nonce: str
    expires_at: int


class Verifier:
    """Checks the signature headers of requests signed by known app keys.

    Checks run in this order, and the first failure is raised as a
    :class:`SignatureError`: all four headers present; app key known;
    timestamp well formed and within ``max_skew_s`` of ``now`` (either way);
    nonce well formed; signature matches (constant-time compare); nonce not
    seen before. The nonce is remembered only once the signature is valid, so
    forged requests cannot burn a legitimate client's nonces.
    """

    def __init__(
        self,
        secrets: Mapping[str, bytes],
        *,
        max_skew_s: int = 300,
        nonces: NonceStore,
    ) -> None:
        if max_skew_s < 1:
            raise ValueError(f"max_skew_s must be >= 1, got {max_skew_s!r}")
        self._secrets = dict(secrets)
        self.max_skew_s = max_skew_s
        self._nonces = nonces

    def authenticate(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        now: int,
    ) -> Authenticated:
        """Every check but the nonce store's (pure)."""
        values = {name: _header(headers, name) for name in SIGNED_HEADERS}
        missing = [name for name, value in values.items() if not value]
        if missing:
            raise SignatureError("missing_header", f"missing header {', '.join(missing)}")
        app_key = values[HEADER_APP_KEY]
        timestamp_text = values[HEADER_TIMESTAMP]
        nonce = values[HEADER_NONCE]
        signature = values[HEADER_SIGNATURE]
        assert app_key and timestamp_text and nonce and signature  # checked above
        secret = self._secrets.get(app_key)
        if secret is None:
            raise SignatureError("unknown_app_key", f"unknown app key {app_key!r}")
        if not _TIMESTAMP.fullmatch(timestamp_text):
            raise SignatureError(
                "malformed_timestamp",
                f"malformed {HEADER_TIMESTAMP} {timestamp_text[:32]!r}: want Unix seconds",
            )
        timestamp = int(timestamp_text)
        if timestamp < now - self.max_skew_s:
            raise SignatureError(
                "stale_timestamp",
                f"stale timestamp: {now - timestamp} s old, at most {self.max_skew_s} s allowed",
            )
        if timestamp > now + self.max_skew_s:
            raise SignatureError(
                "future_timestamp",
                f"timestamp {timestamp - now} s in the future, at most {self.max_skew_s} s allowed",
            )
        if not _NONCE.fullmatch(nonce):
            raise SignatureError(
                "malformed_nonce", f"malformed {HEADER_NONCE}: want 16-64 of [A-Za-z0-9_-]"
            )
        expected = sign(secret, method, path, timestamp, nonce, body)
        if not hmac.compare_digest(
            expected.encode("ascii"), signature.lower().encode("utf-8", "replace")
        ):
            raise SignatureError(
                "bad_signature", "bad signature: method, path, timestamp, nonce or body differ"
            )
        return Authenticated(app_key, nonce, expires_at=timestamp + self.max_skew_s)

    async def verify(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        now: int,
    ) -> str:
        """The app key that signed this request, or :class:`SignatureError`."""
        request = self.authenticate(method, path, headers, body, now=now)
        if await self._nonces.seen_before(request.app_key, request.nonce, request.expires_at):
            raise SignatureError(
                "reused_nonce", f"reused nonce {request.nonce!r} for app key {request.app_key!r}"
            )
        return request.app_key


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """*name* from *headers*, case-insensitively even for a plain dict."""
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    for key, candidate in headers.items():
        if key.lower() == wanted:
            return candidate
    return None
