"""KPIs recomputed from the event log alone, in SQL.

An independent second computation of the numbers the live tracker shows: it
reads only ``acd_event`` (acd/log_events.py is the contract) and shares no
code with the live tracker, so the two can check each other.

Definitions (DOMAIN.md, "KPI definitions"):

- A call is *offered* when it has a ``CALL_QUEUED`` row; it is attributed to
  the line/queue/skill of its **first** ``CALL_QUEUED`` (earliest ``at``, then
  lowest id). Rows of calls that never queued are not KPI rows.
- Its *outcome* is the **earliest in time** of its ``CALL_ANSWERED``,
  ``CALL_ABANDONED``, ``CALL_OVERFLOWED`` with ``data->>'to' = 'callback'``
  and ``CALL_LOST`` rows; on equal times answered < abandoned < overflowed <
  lost. So a transfer (``AGENT_CONNECTED``) or a ``CALL_LOST`` after the
  answer changes nothing, and an overflow to another queue is not an outcome.
- A call counts in a window when its outcome time is in ``[start, end]``
  (both ends included); calls still waiting are in no window.
- Within target: answered with ``wait_s <= answer_target_s`` (15.0 counts).
  Short abandon: abandoned with ``wait_s <= short_abandon_s``.
- ``rate_15s = answered_within_target / (offered - short_abandons)``;
  ``rate_15s_of_answered = answered_within_target / answered`` (the
  Asterisk-style variant); ``answer_rate = answered / (offered - short)``;
  ``abandon_rate = (abandoned - short) / (offered - short)``; a rate whose
  denominator is 0 is ``None``. ``asa_s`` = mean ``wait_s`` of the answered.
- ``avg_talk_s``: mean ``talk_s`` of the first ``CALL_ENDED`` of answered,
  offered calls, for calls whose ``CALL_ENDED`` is in the window.
- ``aht_s``: mean of ``talk_s`` + the sum of the call's ``WRAPUP_ENDED.wrap_s``
  (a transferred call may have one wrap-up per agent), for calls whose last
  ``WRAPUP_ENDED`` -- or ``CALL_ENDED`` when there is no wrap-up yet -- is in
  the window. Both are attributed like the call's offer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["BY_CHOICES", "KpiRow", "parse_window", "recompute"]

BY_CHOICES = ("line", "queue", "skill")

# Column of the first CALL_QUEUED row (alias q) that keys a group; fixed SQL,
# never user text.
_KEY_SQL = {
    None: "'all'::text",
    "line": "coalesce(q.line, '(none)')",
    "queue": "coalesce(q.queue, '(none)')",
    "skill": "coalesce(q.skill, '(none)')",
}

_RECOMPUTE_SQL = """
WITH params AS (
    SELECT to_timestamp($1::float8) AS t0, to_timestamp($2::float8) AS t1
),
outcome_calls AS (
    SELECT DISTINCT e.call_id
    FROM acd_event e, params p
    WHERE e.at BETWEEN p.t0 AND p.t1 AND e.call_id IS NOT NULL
      AND e.kind IN ('CALL_ANSWERED', 'CALL_ABANDONED', 'CALL_OVERFLOWED', 'CALL_LOST')
      AND (e.kind <> 'CALL_OVERFLOWED' OR e.data->>'to' = 'callback')
),
first_outcome AS (
    -- the earliest outcome over all the call's rows, not only those in the window:
    -- a call answered before the window and "lost" inside it is not counted.
    SELECT DISTINCT ON (e.call_id) e.call_id, e.kind, e.at, e.wait_s
    FROM acd_event e JOIN outcome_calls USING (call_id)
    WHERE e.kind IN ('CALL_ANSWERED', 'CALL_ABANDONED', 'CALL_OVERFLOWED', 'CALL_LOST')
      AND (e.kind <> 'CALL_OVERFLOWED' OR e.data->>'to' = 'callback')
    ORDER BY e.call_id, e.at,
             CASE e.kind WHEN 'CALL_ANSWERED' THEN 0 WHEN 'CALL_ABANDONED' THEN 1
                         WHEN 'CALL_OVERFLOWED' THEN 2 ELSE 3 END,
             e.id
),
calls AS (
    SELECT o.kind, o.wait_s, k.key
    FROM first_outcome o
    CROSS JOIN params p
    CROSS JOIN LATERAL (
        SELECT {key} AS key FROM acd_event q
        WHERE q.call_id = o.call_id AND q.kind = 'CALL_QUEUED'
        ORDER BY q.at, q.id LIMIT 1
    ) k
    WHERE o.at BETWEEN p.t0 AND p.t1
),
outcome_agg AS (
    SELECT key,
           count(*) AS offered,
           count(*) FILTER (WHERE kind = 'CALL_ANSWERED') AS answered,
           count(*) FILTER (WHERE kind = 'CALL_ANSWERED' AND wait_s <= $3::float8)
               AS answered_within_target,
           count(*) FILTER (WHERE kind = 'CALL_ABANDONED') AS abandoned,
           count(*) FILTER (WHERE kind = 'CALL_ABANDONED' AND wait_s <= $4::float8)
               AS short_abandons,
           count(*) FILTER (WHERE kind = 'CALL_OVERFLOWED') AS overflowed_to_callback,
           count(*) FILTER (WHERE kind = 'CALL_LOST') AS lost,
           avg(wait_s) FILTER (WHERE kind = 'CALL_ANSWERED') AS asa_s
    FROM calls GROUP BY key
),
handled_calls AS (
    SELECT DISTINCT e.call_id
    FROM acd_event e, params p
    WHERE e.kind IN ('CALL_ENDED', 'WRAPUP_ENDED') AND e.call_id IS NOT NULL
      AND e.at BETWEEN p.t0 AND p.t1
),
handled AS (
    SELECT k.key, en.talk_s, en.at AS ended_at,
           coalesce(w.wrap_s, 0) AS wrap_s, coalesce(w.done_at, en.at) AS done_at
    FROM handled_calls h
    CROSS JOIN LATERAL (
        SELECT e.at, e.talk_s FROM acd_event e
        WHERE e.call_id = h.call_id AND e.kind = 'CALL_ENDED' AND e.talk_s IS NOT NULL
        ORDER BY e.at, e.id LIMIT 1
    ) en
    CROSS JOIN LATERAL (
        SELECT {key} AS key FROM acd_event q
        WHERE q.call_id = h.call_id AND q.kind = 'CALL_QUEUED'
        ORDER BY q.at, q.id LIMIT 1
    ) k
    CROSS JOIN LATERAL (
        SELECT sum(e.wrap_s) AS wrap_s, max(e.at) AS done_at FROM acd_event e
        WHERE e.call_id = h.call_id AND e.kind = 'WRAPUP_ENDED' AND e.wrap_s IS NOT NULL
    ) w
    WHERE EXISTS (
        SELECT 1 FROM acd_event a WHERE a.call_id = h.call_id AND a.kind = 'CALL_ANSWERED'
    )
),
handled_agg AS (
    SELECT key,
           avg(talk_s) FILTER (WHERE ended_at BETWEEN p.t0 AND p.t1) AS avg_talk_s,
           avg(talk_s + wrap_s) FILTER (WHERE done_at BETWEEN p.t0 AND p.t1) AS aht_s
    FROM handled CROSS JOIN params p
    WHERE ended_at BETWEEN p.t0 AND p.t1 OR done_at BETWEEN p.t0 AND p.t1
    GROUP BY key
),
keys AS (
    SELECT key FROM outcome_agg UNION SELECT key FROM handled_agg {all_key}
)
SELECT k.key,
       coalesce(o.offered, 0) AS offered,
       coalesce(o.answered, 0) AS answered,
       coalesce(o.answered_within_target, 0) AS answered_within_target,
       coalesce(o.abandoned, 0) AS abandoned,
       coalesce(o.short_abandons, 0) AS short_abandons,
       coalesce(o.overflowed_to_callback, 0) AS overflowed_to_callback,
       coalesce(o.lost, 0) AS lost,
       o.answered_within_target::float8 / NULLIF(o.offered - o.short_abandons, 0) AS rate_15s,
       o.answered_within_target::float8 / NULLIF(o.answered, 0) AS rate_15s_of_answered,
       o.answered::float8 / NULLIF(o.offered - o.short_abandons, 0) AS answer_rate,
       (o.abandoned - o.short_abandons)::float8 / NULLIF(o.offered - o.short_abandons, 0)
           AS abandon_rate,
       o.asa_s,
       h.avg_talk_s,
       h.aht_s
FROM keys k
LEFT JOIN outcome_agg o USING (key)
LEFT JOIN handled_agg h USING (key)
ORDER BY k.key
"""


@dataclass(frozen=True)
class KpiRow:
    """The KPIs of one group (``key``: a line, queue or skill, or ``"all"``) in one window."""

    key: str
    offered: int
    answered: int
    answered_within_target: int
    abandoned: int
    """All abandons, short ones included."""
    short_abandons: int
    overflowed_to_callback: int
    lost: int
    rate_15s: float | None
    """Answered within target / (offered - short abandons): the contract's 15 s rate."""
    rate_15s_of_answered: float | None
    """Answered within target / answered (Asterisk's service level)."""
    answer_rate: float | None
    abandon_rate: float | None
    asa_s: float | None
    avg_talk_s: float | None
    aht_s: float | None


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


async def recompute(
    conn: Any,
    *,
    start: float,
    end: float,
    answer_target_s: float = 15.0,
    short_abandon_s: float = 5.0,
    by: str | None = None,
) -> list[KpiRow]:
    """KPIs of the calls whose outcome is in ``[start, end]`` (epoch seconds).

    *conn* is an ``asyncpg.Connection`` or ``Pool``. *by*: ``None`` for one
    ``"all"`` row (always present, zeros when idle), or ``"line"``,
    ``"queue"``, ``"skill"`` for one row per value (``"(none)"`` when unset),
    sorted by key. See the module docstring for the definitions.
    """
    if by not in _KEY_SQL:
        raise ValueError(f"by must be None or one of {', '.join(BY_CHOICES)}; got {by!r}")
    if end < start:
        raise ValueError(f"window end {end!r} is before its start {start!r}")
    sql = _RECOMPUTE_SQL.format(
        key=_KEY_SQL[by], all_key="UNION SELECT 'all'::text" if by is None else ""
    )
    rows = await conn.fetch(sql, start, end, answer_target_s, short_abandon_s)
    return [
        KpiRow(
            key=str(row["key"]),
            offered=int(row["offered"]),
            answered=int(row["answered"]),
            answered_within_target=int(row["answered_within_target"]),
            abandoned=int(row["abandoned"]),
            short_abandons=int(row["short_abandons"]),
            overflowed_to_callback=int(row["overflowed_to_callback"]),
            lost=int(row["lost"]),
            rate_15s=_optional_float(row["rate_15s"]),
            rate_15s_of_answered=_optional_float(row["rate_15s_of_answered"]),
            answer_rate=_optional_float(row["answer_rate"]),
            abandon_rate=_optional_float(row["abandon_rate"]),
            asa_s=_optional_float(row["asa_s"]),
            avg_talk_s=_optional_float(row["avg_talk_s"]),
            aht_s=_optional_float(row["aht_s"]),
        )
        for row in rows
    ]


_DURATION = re.compile(r"^(?P<count>\d+)(?P<unit>[mh])$")
_UNIT_S = {"m": 60, "h": 3600}


def _window_error(text: str, tz: str, why: str = "") -> ValueError:
    return ValueError(
        f"bad KPI window {text!r}{': ' + why if why else ''}; use 15m, 30m, 60m or 24h "
        f"(any Nm or Nh: the last N minutes/hours), 'today' (since midnight in {tz}), "
        f"or START/END in {tz} local time such as 2026-11-21T08:00/2026-11-21T09:00"
    )


def parse_window(text: str, *, now: float, tz: str = "Asia/Shanghai") -> tuple[float, float]:
    """``(start, end)`` epoch seconds of a window spec, relative to *now*.

    ``"15m"``/``"30m"``/``"60m"``/``"24h"`` (any positive ``Nm``/``Nh``) end at
    *now*; ``"today"`` runs from local midnight in *tz*; ``"A/B"`` are ISO
    local times in *tz* (an explicit UTC offset is honoured).
    """
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {tz!r}") from exc
    spec = text.strip()
    duration = _DURATION.match(spec.lower())
    if duration is not None:
        count = int(duration["count"])
        if count <= 0:
            raise _window_error(text, tz, "the length must be positive")
        return now - count * _UNIT_S[duration["unit"]], now
    if spec.lower() == "today":
        midnight = datetime.fromtimestamp(now, zone).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        return midnight.timestamp(), now
    if "/" in spec:
        first, _, second = spec.partition("/")
        try:
            start_at, end_at = (datetime.fromisoformat(p.strip()) for p in (first, second))
        except ValueError as exc:
            raise _window_error(text, tz, str(exc)) from None
        start_at = start_at if start_at.tzinfo else start_at.replace(tzinfo=zone)
        end_at = end_at if end_at.tzinfo else end_at.replace(tzinfo=zone)
        if end_at <= start_at:
            raise _window_error(text, tz, "the end must be after the start")
        return start_at.timestamp(), end_at.timestamp()
    raise _window_error(text, tz)
