"""The console's view of the floor, pure: the live snapshot from the ACD,
the KPI tracker and the call model."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cti.api.roles import mask_number

__all__ = ["SPY_OPTIONS", "live_calls", "snapshot"]

# ChanSpy options per monitoring mode: q no beep or name announcement to the
# spy, E end when the agent's channel hangs up; w whisper to the agent only;
# B barge: talk to both parties.
SPY_OPTIONS = {"listen": "qE", "whisper": "qwE", "barge": "qBE"}


def live_calls(calls: Iterable[Any], now: float) -> list[dict[str, Any]]:
    """The citizens' calls in progress, oldest first, numbers masked (the
    unmasked number is an audited request of its own)."""
    out = []
    for call in sorted(calls, key=lambda c: c.arrived_at):
        start = call.queued_at if call.queued_at is not None else call.arrived_at
        out.append(
            {
                "call_id": call.call_id,
                "line": call.line,
                "queue": call.queue,
                "phase": call.phase.name,
                "caller_number": mask_number(call.caller_number, visible=False),
                "agent": call.agent if call.connected_legs else None,
                "waited_s": (call.answered_at or now) - start,
                "talk_s": now - call.answered_at if call.answered_at is not None else None,
            }
        )
    return out


def snapshot(
    *, acd: Any, tracker: Any, calls: Iterable[Any], extra_alarms: Iterable[Any], now: float
) -> dict[str, Any]:
    """Queues and agents, the KPIs per window with their alarms (and the
    switch guard's), today's hourly rate chart, the live calls."""
    kpi = tracker.snapshot(now=now)
    kpi["alarms"] += [alarm.to_dict() for alarm in extra_alarms]
    return {
        "at": now,
        "acd": acd.snapshot(now),
        "kpi": kpi,
        "rate_chart": tracker.rate_chart(now=now),
        "calls": live_calls(calls, now),
    }
