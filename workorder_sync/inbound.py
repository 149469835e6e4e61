"""City status events applied to our work orders, each once and in order (pure).

No I/O, no clock, no asyncio: the service hands in the order, what it has
applied so far and the events it holds, and stores what comes back.

**Keys.** The city numbers the changes of each of its orders: ``city_seq``
(1, 2, ...) is the *ordering* key -- event ``n + 1`` is applied only after
event ``n``. ``event_id`` is the *de-duplication* key: stable across re-sends,
so a re-pushed webhook batch or a repeated list record is recognised while it
still waits; once applied, ``city_seq <= last applied`` recognises it.
:func:`order_events` makes that decision for one new event, :func:`apply_events`
applies a contiguous run.

**Mapping.** A status event says where the order *is* at the city; we bring
ours there with the core's own actions (:data:`PATHS`), applied with
``origin="city"`` (recorded in the history, nothing sent back):

=================  ================================  ===================================
event kind         from our status                   core actions
=================  ================================  ===================================
DISPATCHED         PENDING_DISPATCH                  DISPATCH
                   RETURN_REQUESTED                  APPROVE_RETURN, DISPATCH
SIGNED             DISPATCHED, REOPENED              SIGN
RETURNED           DISPATCHED, SIGNED                REQUEST_RETURN, APPROVE_RETURN
                   RETURN_REQUESTED                  APPROVE_RETURN
EXTENDED           SIGNED                            REQUEST_EXTENSION, APPROVE_EXTENSION
                   EXTENSION_REQUESTED               APPROVE_EXTENSION
REPLIED            SIGNED                            REPLY
                   DISPATCHED, REOPENED              SIGN, REPLY
CLOSED             REPLIED                           SUBMIT_REVIEW, CLOSE
                   REVIEW                            CLOSE
CALLBACK_RESULT    CLOSED                            START_CALLBACK, EVALUATE
                   CALLBACK_PENDING                  EVALUATE
REOPENED           EVALUATED                         REOPEN
=================  ================================  ===================================

An order already where the city says (:data:`ALREADY`) needs nothing: the same
change was made here first. That includes the states only local bookkeeping
leads to, which the city cannot see: REVIEW counts as REPLIED (SUBMIT_REVIEW),
CALLBACK_PENDING as CLOSED (START_CALLBACK); EXTENDED is already applied when
the order is SIGNED with that very deadline. Every other pair is refused
(:class:`InboundRefused`) rather than guessed: a SIGNED while our own return or
extension request waits does not say what became of the request.

**Event data** (all keys optional unless said; values as the core takes them):

* DISPATCHED: ``units``, a list of unit names or ``{"unit", "role",
  "deadline"}`` objects, or one ``unit`` (+ ``role``, ``deadline``) as the
  simulator sends. Roles are MAIN/ASSIST or 主办/协办. Exactly one unit must
  lead: when the city names none as MAIN, the first unit listed is MAIN and the
  others ASSIST; when it names no unit at all, :data:`DEFAULT_MAIN_UNIT` is.
* SIGNED, RETURNED, EXTENDED, REPLIED: ``unit`` (default: our MAIN unit).
* EXTENDED: ``deadline`` (required), the granted deadline.
* REPLIED: ``text`` or ``content`` (the simulator's key), required.
* CALLBACK_RESULT: ``method``; ``resolved`` and ``satisfaction`` (the core's
  values or 满意/基本满意/不满意), ``rating`` -- or ``unreachable: true``.
* every kind: ``reason`` or ``result`` (the simulator's CLOSED key), kept as
  the history's reason; without one the reason is "city reported <KIND>".

Data the core cannot use (no reply text, no deadline, a unit not assigned, a
satisfied evaluation to reopen) refuses the event with the core's own words.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final, NamedTuple

from . import core
from .city.base import STATUS_KINDS, StatusEvent
from .core import Action, Origin, Role, Satisfaction, Status, WorkOrder, WorkOrderError

__all__ = [
    "ALREADY",
    "DEFAULT_MAIN_UNIT",
    "PATHS",
    "Decision",
    "InboundRefused",
    "InboundResult",
    "Verdict",
    "actions_for",
    "apply_events",
    "order_events",
]

DEFAULT_MAIN_UNIT: Final = "市12345平台"
"""The MAIN unit of a DISPATCHED event that names no unit: the city platform
itself holds the order until it says more."""

S = Status
A = Action

PATHS: Final[Mapping[str, Mapping[Status, tuple[Action, ...]]]] = MappingProxyType(
    {
        "DISPATCHED": {
            S.PENDING_DISPATCH: (A.DISPATCH,),
            # A new dispatch settles our return request: the order went back
            # to the dispatcher and out again, to the units the event names.
            S.RETURN_REQUESTED: (A.APPROVE_RETURN, A.DISPATCH),
        },
        "SIGNED": {S.DISPATCHED: (A.SIGN,), S.REOPENED: (A.SIGN,)},
        "RETURNED": {
            S.DISPATCHED: (A.REQUEST_RETURN, A.APPROVE_RETURN),
            S.SIGNED: (A.REQUEST_RETURN, A.APPROVE_RETURN),
            S.RETURN_REQUESTED: (A.APPROVE_RETURN,),
        },
        "EXTENDED": {
            S.SIGNED: (A.REQUEST_EXTENSION, A.APPROVE_EXTENSION),
            S.EXTENSION_REQUESTED: (A.APPROVE_EXTENSION,),
        },
        "REPLIED": {
            S.SIGNED: (A.REPLY,),
            # A unit that replies has taken the order, told or not.
            S.DISPATCHED: (A.SIGN, A.REPLY),
            S.REOPENED: (A.SIGN, A.REPLY),
        },
        "CLOSED": {S.REPLIED: (A.SUBMIT_REVIEW, A.CLOSE), S.REVIEW: (A.CLOSE,)},
        "CALLBACK_RESULT": {
            S.CLOSED: (A.START_CALLBACK, A.EVALUATE),
            S.CALLBACK_PENDING: (A.EVALUATE,),
        },
        "REOPENED": {S.EVALUATED: (A.REOPEN,)},
    }
)
"""event kind -> our status -> the core actions that bring the order where the
city says it is (see the module docstring)."""

ALREADY: Final[Mapping[str, frozenset[Status]]] = MappingProxyType(
    {
        "DISPATCHED": frozenset({S.DISPATCHED}),
        "SIGNED": frozenset({S.SIGNED}),
        "RETURNED": frozenset({S.PENDING_DISPATCH}),
        "EXTENDED": frozenset({S.SIGNED}),  # and the deadline already the granted one
        "REPLIED": frozenset({S.REPLIED, S.REVIEW}),
        "CLOSED": frozenset({S.CLOSED, S.CALLBACK_PENDING}),
        "CALLBACK_RESULT": frozenset({S.EVALUATED}),
        "REOPENED": frozenset({S.REOPENED}),
    }
)
"""event kind -> the statuses in which the city's report already holds."""

del S, A

_ROLES: Final[Mapping[str, str]] = MappingProxyType(
    {"主办": Role.MAIN.value, "协办": Role.ASSIST.value}
)
_SATISFACTION: Final[Mapping[str, str]] = MappingProxyType(
    {
        "满意": Satisfaction.SATISFIED.value,
        "基本满意": Satisfaction.BASICALLY_SATISFIED.value,
        "不满意": Satisfaction.DISSATISFIED.value,
    }
)


class InboundRefused(WorkOrderError):
    """A city status event our order cannot follow; nothing was changed.
    ``reason`` says why, the message also names the order, its status and
    the event."""

    def __init__(self, order: WorkOrder, event: StatusEvent, reason: str) -> None:
        super().__init__(
            f"order {order.order_no} ({order.status.value}): city {event.kind} "
            f"#{event.city_seq} (event {event.event_id}) refused: {reason}"
        )
        self.order_no = order.order_no
        self.status = order.status
        self.event = event
        self.reason = reason


# -- one event: which core actions ---------------------------------------------------------


def actions_for(order: WorkOrder, event: StatusEvent) -> list[tuple[Action, dict[str, Any]]]:
    """The core actions, with their data, that bring ``order`` to the state
    ``event`` reports; ``[]`` when it is there already. Raises
    :class:`InboundRefused` for an event about another order, an unknown kind,
    or a status with no path (:data:`PATHS`). The data itself is checked by
    :func:`core.apply` when the actions are applied."""
    if event.order_no is not None and event.order_no != order.order_no:
        raise InboundRefused(order, event, f"the event is about order {event.order_no}")
    if order.city_order_no is not None and event.city_order_no != order.city_order_no:
        raise InboundRefused(
            order,
            event,
            f"the event is about city order {event.city_order_no}, ours is {order.city_order_no}",
        )
    if event.kind not in STATUS_KINDS:
        raise InboundRefused(order, event, f"unknown status kind {event.kind!r}")
    if _already(order, event):
        return []
    path = PATHS[event.kind].get(order.status)
    if path is None:
        reachable = ", ".join(s.value for s in PATHS[event.kind]) or "none"
        raise InboundRefused(
            order,
            event,
            f"no path from {order.status.value} to what the city reports "
            f"({event.kind} follows from: {reachable})",
        )
    return [(action, _data_for(action, event)) for action in path]


def _already(order: WorkOrder, event: StatusEvent) -> bool:
    if order.status not in ALREADY[event.kind]:
        return False
    if event.kind == "EXTENDED":
        return order.deadline is not None and order.deadline == _when(event.data.get("deadline"))
    return True


def _when(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def _data_for(action: Action, event: StatusEvent) -> dict[str, Any]:
    data = event.data
    if action is Action.DISPATCH:
        return {"assignments": _assignments(data)}
    if action in (Action.SIGN, Action.REQUEST_RETURN):
        return _pick(data, "unit")
    if action is Action.REQUEST_EXTENSION:
        return _pick(data, "unit", "deadline")
    if action is Action.APPROVE_EXTENSION:
        return _pick(data, "deadline")
    if action is Action.REPLY:
        text = data.get("text", data.get("content"))
        return {**_pick(data, "unit"), **({} if text is None else {"text": text})}
    if action is Action.START_CALLBACK:
        return _pick(data, "method")
    if action is Action.EVALUATE:
        result = _pick(data, "resolved", "satisfaction", "rating", "unreachable")
        satisfaction = result.get("satisfaction")
        if isinstance(satisfaction, str) and satisfaction in _SATISFACTION:
            result["satisfaction"] = _SATISFACTION[satisfaction]
        return result
    return {}


def _pick(data: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {key: data[key] for key in keys if key in data}


def _assignments(data: Mapping[str, Any]) -> Any:
    """DISPATCH's ``assignments`` from the event (module docstring: DISPATCHED).
    Items the core cannot read are passed on for it to name the fault."""
    raw = data.get("units")
    if raw is None:
        raw = [_pick(data, "unit", "role", "deadline")] if "unit" in data else []
    if isinstance(raw, str) or not isinstance(raw, Sequence):
        return raw  # not a list: the core says so
    items: list[Any] = []
    for item in raw:
        if isinstance(item, str):
            item = {"unit": item}
        elif isinstance(item, Mapping):
            item = dict(item)
            role = item.get("role")
            if isinstance(role, str) and role in _ROLES:
                item["role"] = _ROLES[role]
        items.append(item)
    if not items:
        return [{"unit": DEFAULT_MAIN_UNIT, "role": Role.MAIN.value}]
    named_main = any(
        isinstance(item, dict) and item.get("role") == Role.MAIN.value for item in items
    )
    first = items[0]
    if (
        not named_main
        and isinstance(first, dict)
        and first.get("role") in (None, Role.ASSIST.value)
    ):
        first["role"] = Role.MAIN.value
    for item in items:
        if isinstance(item, dict) and item.get("role") is None:
            item["role"] = Role.ASSIST.value
    return items


# -- ordering: exactly once, in city_seq order ------------------------------------------------


class Verdict(StrEnum):
    DUPLICATE = "DUPLICATE"  # seen already: drop it
    APPLY_NOW = "APPLY_NOW"  # the next one: apply it, then the waiting ones it unblocks
    WAIT = "WAIT"  # an earlier one is missing: keep it


@dataclass(frozen=True)
class Decision:
    """What to do with a new event of one order.

    ``ready``: the run to apply now, in ``city_seq`` order (APPLY_NOW only:
    the new event, then the waiting ones that follow it without a gap).
    ``pending``: the events to keep waiting afterwards, in ``city_seq`` order.
    ``gap``: the ``city_seq`` numbers that must arrive before anything waiting
    can be applied (WAIT only). ``reason``: a sentence for the log.
    """

    verdict: Verdict
    ready: tuple[StatusEvent, ...]
    pending: tuple[StatusEvent, ...]
    gap: range
    reason: str


def order_events(
    last_applied_seq: int, pending: Sequence[StatusEvent], new: StatusEvent
) -> Decision:
    """Decide for ``new``, an event of the order whose events up to
    ``last_applied_seq`` are applied (0: none yet) and whose later ones
    ``pending`` wait (as kept by earlier decisions, in any order; any at or
    below ``last_applied_seq`` are dropped).

    DUPLICATE: ``city_seq`` already applied, or ``event_id`` or ``city_seq``
    already waiting (the first one kept). APPLY_NOW: ``city_seq`` is the next
    one. WAIT: a gap before it.
    """
    waiting = sorted(
        (e for e in pending if e.city_seq > last_applied_seq), key=lambda e: e.city_seq
    )
    kept = tuple(waiting)
    empty = range(0)
    if new.city_seq <= last_applied_seq:
        return Decision(
            Verdict.DUPLICATE,
            (),
            kept,
            empty,
            f"city_seq {new.city_seq} <= {last_applied_seq}, the last applied",
        )
    for event in waiting:
        if event.event_id == new.event_id:
            return Decision(
                Verdict.DUPLICATE, (), kept, empty, f"event {new.event_id} is already waiting"
            )
        if event.city_seq == new.city_seq:
            return Decision(
                Verdict.DUPLICATE,
                (),
                kept,
                empty,
                f"city_seq {new.city_seq} is already waiting as event {event.event_id} "
                f"(this one is {new.event_id})",
            )
    if new.city_seq > last_applied_seq + 1:
        waiting = sorted((*waiting, new), key=lambda e: e.city_seq)
        gap = range(last_applied_seq + 1, waiting[0].city_seq)
        return Decision(
            Verdict.WAIT,
            (),
            tuple(waiting),
            gap,
            f"city_seq {new.city_seq} waits: missing {_span(gap)}",
        )
    ready = [new]
    rest: list[StatusEvent] = []
    for event in waiting:
        if not rest and event.city_seq == ready[-1].city_seq + 1:
            ready.append(event)
        else:
            rest.append(event)
    return Decision(
        Verdict.APPLY_NOW,
        tuple(ready),
        tuple(rest),
        empty,
        f"city_seq {new.city_seq} is next"
        + (f", then {len(ready) - 1} waiting" if len(ready) > 1 else ""),
    )


def _span(seqs: range) -> str:
    return str(seqs.start) if len(seqs) == 1 else f"{seqs.start}..{seqs[-1]}"


# -- applying a run -------------------------------------------------------------------------


class InboundResult(NamedTuple):
    """What :func:`apply_events` did: the order after it, the events applied
    (in order), the one refused with its reason (at most one: the run stops
    there), and the ``city_seq`` now applied up to."""

    order: WorkOrder
    applied: list[StatusEvent]
    refused: list[tuple[StatusEvent, str]]
    last_applied_seq: int


def apply_events(
    order: WorkOrder,
    last_applied_seq: int,
    events: Sequence[StatusEvent],
    *,
    at_received: datetime,
) -> InboundResult:
    """Apply ``events``, a contiguous run ``last_applied_seq + 1, + 2, ...``
    (a :attr:`Decision.ready`), to ``order`` with ``origin="city"`` and actor
    ``city:<event_id>``, so the history says which event made each change.

    Each change is dated when it happened at the city (``event.at``: signing
    and reply times are the city's facts), but never later than
    ``at_received``, our clock, since the city's may run ahead.

    An event is applied whole or not at all. The first one refused stops the
    run: it is reported with its reason, ``last_applied_seq`` stays before it,
    and it and the ones after it are still the service's to keep (for a
    retry, or a repair by hand or by reconciliation). Raises
    :class:`ValueError` for a run that is not contiguous or a naive
    ``at_received``, before any change.
    """
    if at_received.tzinfo is None or at_received.utcoffset() is None:
        raise ValueError(f"at_received {at_received.isoformat()} has no time zone")
    expected = range(last_applied_seq + 1, last_applied_seq + 1 + len(events))
    got = [event.city_seq for event in events]
    if got != list(expected):
        raise ValueError(f"not a contiguous run after city_seq {last_applied_seq}: {got}")
    applied: list[StatusEvent] = []
    for event in events:
        try:
            order = _apply_one(order, event, at_received=at_received)
        except InboundRefused as refusal:
            return InboundResult(order, applied, [(event, str(refusal))], last_applied_seq)
        applied.append(event)
        last_applied_seq = event.city_seq
    return InboundResult(order, applied, [], last_applied_seq)


def _apply_one(order: WorkOrder, event: StatusEvent, *, at_received: datetime) -> WorkOrder:
    steps = actions_for(order, event)
    at = min(event.at, at_received)
    reason = _reason(event)
    new = order
    for action, data in steps:
        try:
            new, outbound = core.apply(
                new,
                action,
                actor=f"city:{event.event_id}",
                at=at,
                reason=reason,
                data=data,
                origin=Origin.CITY,
            )
        except WorkOrderError as e:
            raise InboundRefused(order, event, str(e)) from e
        assert not outbound, "the core sends nothing back for the city's own changes"
    return new


def _reason(event: StatusEvent) -> str:
    for key in ("reason", "result"):
        value = event.data.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return f"city reported {event.kind}"
