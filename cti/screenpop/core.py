"""Screen-pop, pure: what an agent's desktop shows the moment its phone
rings. The ringing call as the call model sees it, the caller's earlier calls
from the event log and work orders, whether the caller is a repeat caller
(首接负责), and whether the agent's role may see the number unmasked."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cti.api.roles import mask_number

__all__ = ["PastCall", "PastOrder", "mask_name", "screen_pop"]


@dataclass(frozen=True)
class PastOrder:
    """One of the caller's work orders, newest first."""

    order_no: str
    city_order_no: str | None
    status: str
    appeal_type: str
    title: str
    created_at: float


@dataclass(frozen=True)
class PastCall:
    """One of the caller's earlier calls, from the event log."""

    call_id: str
    at: float
    line: str | None
    agent: str | None
    outcome: str  # "answered", "abandoned", "lost", "overflowed", "fallback" or "unknown"


def mask_name(name: str, *, visible: bool) -> str:
    """``张三丰`` -> ``张**``: the family name (first character) only."""
    if visible or len(name) <= 1:
        return name
    return name[0] + "*" * (len(name) - 1)


def screen_pop(
    *,
    call: Any,
    agent: str,
    rung_at: float,
    history: Sequence[PastCall],
    repeat_agent: str | None,
    unmasked: bool,
    orders: Sequence[PastOrder] = (),
) -> dict[str, Any]:
    """The screen-pop frame for ``agent`` ringing for ``call`` (a call-model ``Call``)."""
    queued_at = call.queued_at if call.queued_at is not None else call.arrived_at
    return {
        "type": "screen_pop",
        "call_id": call.call_id,
        "agent": agent,
        "line": call.line,
        "dialled": call.dialled,
        "caller_number": mask_number(call.caller_number, visible=unmasked),
        "caller_name": mask_name(call.caller_name, visible=unmasked),
        "number_masked": not unmasked,
        "ivr": list(getattr(call, "ivr_choices", ()) or ()),
        "waited_s": round(max(0.0, rung_at - queued_at), 1),
        "rung_at": rung_at,
        "repeat_caller": bool(history) or bool(orders),
        "last_agent": repeat_agent,
        # A transferred call: who passed it on (an agent, or None for a queue move).
        "transferred_from": call.transfers[-1][0] if getattr(call, "transfers", None) else None,
        "history": [
            {
                "call_id": past.call_id,
                "at": past.at,
                "line": past.line,
                "agent": past.agent,
                "outcome": past.outcome,
            }
            for past in history
        ],
        "work_orders": [
            {
                "order_no": order.order_no,
                "city_order_no": order.city_order_no,
                "status": order.status,
                "appeal_type": order.appeal_type,
                "title": order.title,
                "created_at": order.created_at,
            }
            for order in orders
        ],
    }
