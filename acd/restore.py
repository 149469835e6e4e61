"""What an engine takes back from the event log when it starts: each agent's
last login/logout/pause/resume and the repeat callers' last agents, read
through the process's pool, bounded in time, never raising."""

from __future__ import annotations

import asyncio
import logging
from typing import NamedTuple

import asyncpg

from acd.event_log import load_agent_states, load_repeat_callers, pooled_connection

log = logging.getLogger(__name__)

__all__ = ["RestoredState", "restore_from_log"]


class RestoredState(NamedTuple):
    """Unpacks as ``states, repeat_callers = restored``."""

    agent_states: dict[str, tuple[str, float, str | None]]
    """``agent -> (state, at, pause_reason)``, as ``load_agent_states``."""
    repeat_callers: dict[str, tuple[str, float]]
    """``caller_number -> (agent, at)``, as ``load_repeat_callers``."""


async def restore_from_log(
    pool: asyncpg.Pool, *, since: float, timeout_s: float = 5.0
) -> RestoredState | None:
    """Every agent's last state, and the callers answered since *since* (epoch seconds).

    Bounded by *timeout_s*: routing must not wait on the database. When it is
    unreachable, too slow or refuses the queries (no table yet), a WARNING is
    logged and ``None`` returned (agents then start logged out); nothing is
    raised.
    """
    try:
        async with asyncio.timeout(timeout_s):
            async with pooled_connection(pool, acquire_timeout_s=timeout_s) as conn:
                agent_states = await load_agent_states(conn)
                repeat_callers = await load_repeat_callers(conn, since=since)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        log.warning(
            "could not restore agent states from the event log (%s: %s); agents start logged out",
            type(exc).__name__,
            exc,
        )
        return None
    return RestoredState(agent_states=agent_states, repeat_callers=repeat_callers)
