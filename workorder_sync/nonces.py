"""The webhook nonces in PostgreSQL: a replayed request is refused by
every engine (and after a restart), not only by the one that saw it first."""

from __future__ import annotations

from typing import Any

__all__ = ["PgNonceStore"]


class PgNonceStore:
    """:class:`workorder_sync.city.signing.NonceStore` on ``workorder_nonce``."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    async def seen_before(self, app_key: str, nonce: str, expires_at: int) -> bool:
        inserted = await self._pool.fetchval(
            "INSERT INTO workorder_nonce (app_key, nonce, expires_at)"
            " VALUES ($1, $2, to_timestamp($3)) ON CONFLICT DO NOTHING RETURNING 1",
            app_key,
            nonce,
            expires_at,
        )
        return inserted is None

    async def purge(self) -> int:
        """Forget expired nonces (their timestamps are refused as stale anyway)."""
        done = await self._pool.execute("DELETE FROM workorder_nonce WHERE expires_at < now()")
        return int(done.split()[-1])
