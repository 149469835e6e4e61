"""Work orders (工单): the model and its state machine (pure).

No I/O, no clock, no asyncio: every change carries its time (``at``) and its
author (``actor``), and returns the new order with the city events it causes
as data (:class:`OutboxEvent`). The service writes both in one transaction.

The machine (DOMAIN.md, the 国办发〔2020〕53号 loop)::

    DRAFT -ACCEPT-> ACCEPTED
      ACCEPTED -DIRECT_ANSWER-> DIRECT_ANSWERED -ARCHIVE-> ARCHIVED
      ACCEPTED -SEND_TO_DISPATCH-> PENDING_DISPATCH -DISPATCH-> DISPATCHED -SIGN-> SIGNED
      DISPATCHED|SIGNED -REQUEST_RETURN-> RETURN_REQUESTED
        -APPROVE_RETURN-> PENDING_DISPATCH | -REJECT_RETURN-> back where it came from
      SIGNED -REQUEST_EXTENSION-> EXTENSION_REQUESTED -APPROVE_/REJECT_EXTENSION-> SIGNED
      SIGNED -REPLY-> REPLIED -SUBMIT_REVIEW-> REVIEW -REVIEW_REJECT-> SIGNED | -CLOSE-> CLOSED
      CLOSED -START_CALLBACK-> CALLBACK_PENDING -EVALUATE-> EVALUATED
      EVALUATED -ARCHIVE-> ARCHIVED | -REOPEN-> REOPENED -SIGN-> SIGNED

plus actions that record something beside the flow without moving it
(the status stays): EDIT (form fields), SUPERVISE (催办/督办) and
CALLBACK_ATTEMPT (a callback call that reached nobody).

**Origin.** The same actions describe the city's status events (dispatched,
signed, returned, extended, replied, closed, callback result, reopened):
:func:`apply` with ``origin=Origin.CITY`` changes the order the same way and
records the origin in the history, but emits no outbound event (the city
already knows). Intake actions (ACCEPT, DIRECT_ANSWER, SEND_TO_DISPATCH) and
ARCHIVE are local only.

**Outbound events** (local origin only), see :data:`OUTBOUND`: the city first
hears of an order when it leaves intake -- SEND_TO_DISPATCH or DIRECT_ANSWER
emits CREATE with the whole order (a direct answer is created already
answered, so every order reaches the city once). ACCEPT emits nothing: the
disposition may still be edited while the order is ACCEPTED, and CREATE then
carries the final form. EDIT emits UPDATE once the city has the order;
ACCEPT, ARCHIVE, SUBMIT_REVIEW, START_CALLBACK and CALLBACK_ATTEMPT are local
bookkeeping and emit nothing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import MISSING, dataclass, fields, replace
from datetime import datetime
from enum import Enum, StrEnum
from types import MappingProxyType
from typing import Any, Final, Literal, NamedTuple, TypeVar

__all__ = [
    "CONTENT_MAX",
    "EDITABLE_FIELDS",
    "LINE_CHANNELS",
    "LOCAL_ONLY_ACTIONS",
    "OUTBOUND",
    "TITLE_MAX",
    "TRANSITIONS",
    "Action",
    "AppealType",
    "Assignment",
    "Callback",
    "CallbackMethod",
    "Channel",
    "Disposition",
    "EventKind",
    "ExtensionRequest",
    "FieldError",
    "HistoryEntry",
    "Origin",
    "OutboxEvent",
    "PreconditionError",
    "Reply",
    "ReturnRequest",
    "Role",
    "Satisfaction",
    "Status",
    "Supervision",
    "SupervisionKind",
    "Target",
    "TimeLimitClass",
    "TransitionError",
    "Urgency",
    "WorkOrder",
    "WorkOrderError",
    "allowed_actions",
    "apply",
    "link_city_order_no",
    "new_draft",
    "order_from_dict",
    "order_to_dict",
    "validate_fields",
]

log = logging.getLogger(__name__)

TITLE_MAX: Final = 100
CONTENT_MAX: Final = 4000
_NAME_MAX = 50
_ADDRESS_MAX = 200
_STREET_MAX = 100
_CATEGORY_CODE_MAX = 32
_PHONE_RE = re.compile(r"\+?\d{5,20}")
# GB/T 2260 county code (6), township (9) or village (12) statistical code.
_DIVISION_RE = re.compile(r"\d{6}|\d{9}|\d{12}")


# -- enums ----------------------------------------------------------------------------


class Status(StrEnum):
    DRAFT = "DRAFT"  # 草稿: the agent's form, saved across page reloads
    ACCEPTED = "ACCEPTED"  # 已受理: fields validated, disposition chosen
    DIRECT_ANSWERED = "DIRECT_ANSWERED"  # 直接答复: answered on the spot
    ARCHIVED = "ARCHIVED"  # 归档: final
    PENDING_DISPATCH = "PENDING_DISPATCH"  # 待派单
    DISPATCHED = "DISPATCHED"  # 已派单: assigned to units, not yet signed for
    SIGNED = "SIGNED"  # 已签收: the main unit works on it
    RETURN_REQUESTED = "RETURN_REQUESTED"  # 退单申请中
    EXTENSION_REQUESTED = "EXTENSION_REQUESTED"  # 延期申请中
    REPLIED = "REPLIED"  # 已答复: the unit's reply (办结反馈) is in
    REVIEW = "REVIEW"  # 审核中
    CLOSED = "CLOSED"  # 已办结
    CALLBACK_PENDING = "CALLBACK_PENDING"  # 待回访
    EVALUATED = "EVALUATED"  # 已评价
    REOPENED = "REOPENED"  # 重办: the citizen was not satisfied


class Channel(StrEnum):
    PHONE_12345 = "PHONE_12345"
    PHONE_96181 = "PHONE_96181"
    WEB = "WEB"
    WECHAT = "WECHAT"
    APP = "APP"
    SMS = "SMS"
    EMAIL = "EMAIL"


class AppealType(StrEnum):
    CONSULT = "CONSULT"  # 咨询
    HELP = "HELP"  # 求助
    COMPLAINT = "COMPLAINT"  # 投诉
    REPORT = "REPORT"  # 举报
    SUGGEST = "SUGGEST"  # 建议
    PRAISE = "PRAISE"  # 表扬


class Urgency(StrEnum):
    NORMAL = "NORMAL"  # 一般
    URGENT = "URGENT"  # 紧急
    CRITICAL = "CRITICAL"  # 特急


class TimeLimitClass(StrEnum):
    LIFE_SAFETY = "LIFE_SAFETY"  # life and property at risk
    UTILITIES = "UTILITIES"  # water, power, gas, heating
    GENERAL = "GENERAL"
    COMPLEX = "COMPLEX"


class Disposition(StrEnum):
    DIRECT_ANSWER = "DIRECT_ANSWER"  # 直接答复
    DISPATCH = "DISPATCH"  # 转办
    ESCALATE = "ESCALATE"  # 呈报
    TRANSFER_EMERGENCY = "TRANSFER_EMERGENCY"  # handed to 110/119/120, recorded as answered


class Role(StrEnum):
    MAIN = "MAIN"  # 主办
    ASSIST = "ASSIST"  # 协办


class SupervisionKind(StrEnum):
    URGE = "URGE"  # 催办
    SUPERVISE = "SUPERVISE"  # 督办


class CallbackMethod(StrEnum):
    PHONE = "PHONE"
    SMS = "SMS"
    WECHAT = "WECHAT"


class Satisfaction(StrEnum):
    SATISFIED = "SATISFIED"  # 满意
    BASICALLY_SATISFIED = "BASICALLY_SATISFIED"  # 基本满意
    DISSATISFIED = "DISSATISFIED"  # 不满意


class Origin(StrEnum):
    LOCAL = "local"  # an agent, a supervisor or a local worker
    CITY = "city"  # a status event received from the city platform


class Action(StrEnum):
    """The events that move (or annotate) an order; see the module docstring."""

    ACCEPT = "ACCEPT"
    DIRECT_ANSWER = "DIRECT_ANSWER"
    ARCHIVE = "ARCHIVE"
    SEND_TO_DISPATCH = "SEND_TO_DISPATCH"
    DISPATCH = "DISPATCH"
    SIGN = "SIGN"
    REQUEST_RETURN = "REQUEST_RETURN"
    APPROVE_RETURN = "APPROVE_RETURN"
    REJECT_RETURN = "REJECT_RETURN"
    REQUEST_EXTENSION = "REQUEST_EXTENSION"
    APPROVE_EXTENSION = "APPROVE_EXTENSION"
    REJECT_EXTENSION = "REJECT_EXTENSION"
    REPLY = "REPLY"
    SUBMIT_REVIEW = "SUBMIT_REVIEW"
    REVIEW_REJECT = "REVIEW_REJECT"
    CLOSE = "CLOSE"
    START_CALLBACK = "START_CALLBACK"
    CALLBACK_ATTEMPT = "CALLBACK_ATTEMPT"
    EVALUATE = "EVALUATE"
    REOPEN = "REOPEN"
    EDIT = "EDIT"
    SUPERVISE = "SUPERVISE"


class EventKind(StrEnum):
    """The sync events sent to the city platform (DOMAIN.md)."""

    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DISPATCH = "DISPATCH"
    SIGN = "SIGN"
    RETURN_APPLY = "RETURN_APPLY"
    RETURN_RESULT = "RETURN_RESULT"
    EXTENSION_APPLY = "EXTENSION_APPLY"
    EXTENSION_RESULT = "EXTENSION_RESULT"
    REPLY = "REPLY"
    SUPERVISE = "SUPERVISE"
    CLOSE = "CLOSE"
    CALLBACK_RESULT = "CALLBACK_RESULT"
    REOPEN = "REOPEN"


class Target(Enum):
    """A transition target read from the order rather than from the table."""

    RETURN_FROM = "RETURN_FROM"
    """Back to the state the pending return request was made from
    (:attr:`ReturnRequest.from_status`: DISPATCHED or SIGNED)."""


# -- the machine as data --------------------------------------------------------------

S = Status
A = Action

_FLOW: dict[tuple[Status, Action], Status | Target] = {
    (S.DRAFT, A.ACCEPT): S.ACCEPTED,
    (S.ACCEPTED, A.DIRECT_ANSWER): S.DIRECT_ANSWERED,
    (S.DIRECT_ANSWERED, A.ARCHIVE): S.ARCHIVED,
    (S.ACCEPTED, A.SEND_TO_DISPATCH): S.PENDING_DISPATCH,
    (S.PENDING_DISPATCH, A.DISPATCH): S.DISPATCHED,
    (S.DISPATCHED, A.SIGN): S.SIGNED,
    (S.DISPATCHED, A.REQUEST_RETURN): S.RETURN_REQUESTED,
    (S.SIGNED, A.REQUEST_RETURN): S.RETURN_REQUESTED,
    (S.RETURN_REQUESTED, A.APPROVE_RETURN): S.PENDING_DISPATCH,
    (S.RETURN_REQUESTED, A.REJECT_RETURN): Target.RETURN_FROM,
    (S.SIGNED, A.REQUEST_EXTENSION): S.EXTENSION_REQUESTED,
    (S.EXTENSION_REQUESTED, A.APPROVE_EXTENSION): S.SIGNED,
    (S.EXTENSION_REQUESTED, A.REJECT_EXTENSION): S.SIGNED,
    (S.SIGNED, A.REPLY): S.REPLIED,
    (S.REPLIED, A.SUBMIT_REVIEW): S.REVIEW,
    (S.REVIEW, A.REVIEW_REJECT): S.SIGNED,
    (S.REVIEW, A.CLOSE): S.CLOSED,
    (S.CLOSED, A.START_CALLBACK): S.CALLBACK_PENDING,
    (S.CALLBACK_PENDING, A.EVALUATE): S.EVALUATED,
    (S.EVALUATED, A.ARCHIVE): S.ARCHIVED,
    (S.EVALUATED, A.REOPEN): S.REOPENED,
    (S.REOPENED, A.SIGN): S.SIGNED,
    (S.CALLBACK_PENDING, A.CALLBACK_ATTEMPT): S.CALLBACK_PENDING,
}
# The form can be edited while the case is open (not once it is answered or closed).
_EDITABLE_IN = (
    S.DRAFT,
    S.ACCEPTED,
    S.PENDING_DISPATCH,
    S.DISPATCHED,
    S.SIGNED,
    S.RETURN_REQUESTED,
    S.EXTENSION_REQUESTED,
    S.REOPENED,
)
# A unit holds the order: urging it makes sense.
_SUPERVISABLE_IN = (S.DISPATCHED, S.SIGNED, S.EXTENSION_REQUESTED, S.REOPENED)
_FLOW.update({(state, A.EDIT): state for state in _EDITABLE_IN})
_FLOW.update({(state, A.SUPERVISE): state for state in _SUPERVISABLE_IN})

TRANSITIONS: Final[Mapping[tuple[Status, Action], Status | Target]] = MappingProxyType(_FLOW)
"""(state, action) -> new state: every legal move; anything else is a TransitionError."""

OUTBOUND: Final[Mapping[Action, EventKind]] = MappingProxyType(
    {
        A.DIRECT_ANSWER: EventKind.CREATE,
        A.SEND_TO_DISPATCH: EventKind.CREATE,
        A.DISPATCH: EventKind.DISPATCH,
        A.SIGN: EventKind.SIGN,
        A.REQUEST_RETURN: EventKind.RETURN_APPLY,
        A.APPROVE_RETURN: EventKind.RETURN_RESULT,
        A.REJECT_RETURN: EventKind.RETURN_RESULT,
        A.REQUEST_EXTENSION: EventKind.EXTENSION_APPLY,
        A.APPROVE_EXTENSION: EventKind.EXTENSION_RESULT,
        A.REJECT_EXTENSION: EventKind.EXTENSION_RESULT,
        A.REPLY: EventKind.REPLY,
        # The unit must answer again: the city sees the order back with it.
        A.REVIEW_REJECT: EventKind.UPDATE,
        A.CLOSE: EventKind.CLOSE,
        A.EVALUATE: EventKind.CALLBACK_RESULT,
        A.REOPEN: EventKind.REOPEN,
        A.SUPERVISE: EventKind.SUPERVISE,
        A.EDIT: EventKind.UPDATE,  # only once the city has the order (_UNKNOWN_TO_CITY)
    }
)
"""The event a local action sends to the city; actions absent here send none."""

_UNKNOWN_TO_CITY = frozenset({S.DRAFT, S.ACCEPTED})

LOCAL_ONLY_ACTIONS: Final = frozenset({A.ACCEPT, A.DIRECT_ANSWER, A.SEND_TO_DISPATCH, A.ARCHIVE})
"""Actions the city never sends: intake and local filing."""

_REASON_REQUIRED = frozenset(
    {
        A.REQUEST_RETURN,
        A.REJECT_RETURN,
        A.REQUEST_EXTENSION,
        A.REJECT_EXTENSION,
        A.REVIEW_REJECT,
        A.REOPEN,
        A.SUPERVISE,
    }
)

del S, A


def allowed_actions(status: Status, origin: Origin = Origin.LOCAL) -> tuple[Action, ...]:
    """The actions legal from ``status`` (for ``origin``), in declaration order."""
    return tuple(
        action
        for action in Action
        if (status, action) in TRANSITIONS
        and not (origin is Origin.CITY and action in LOCAL_ONLY_ACTIONS)
    )


# -- errors ---------------------------------------------------------------------------


class WorkOrderError(ValueError):
    """Base of the work-order domain errors."""


class TransitionError(WorkOrderError):
    """An action that is not legal for the order now; nothing was changed."""

    def __init__(
        self, message: str, *, order_no: str, status: Status, action: Action | str
    ) -> None:
        super().__init__(message)
        self.order_no = order_no
        self.status = status
        self.action = action


class PreconditionError(TransitionError):
    """A legal move whose data is missing or wrong (no units to dispatch to,
    no reply text ...); nothing was changed. ``key`` names the data key at fault."""

    def __init__(
        self, message: str, *, order_no: str, status: Status, action: Action, key: str = ""
    ) -> None:
        super().__init__(message, order_no=order_no, status=status, action=action)
        self.key = key


class FieldError(WorkOrderError):
    """A work-order field with a bad value; ``field`` names it."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


# -- records beside the flow -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Assignment:
    """A unit the order is dispatched to (承办单位)."""

    unit: str
    role: Role = Role.MAIN
    deadline: datetime | None = None
    signed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ReturnRequest:
    """A unit's request to send the order back (退单) and its decision."""

    unit: str
    reason: str
    requested_by: str
    requested_at: datetime
    from_status: Status  # where a rejected request sends the order back
    approved: bool | None = None
    decided_by: str = ""
    decided_at: datetime | None = None
    decision_reason: str = ""


@dataclass(frozen=True, slots=True)
class ExtensionRequest:
    """A unit's request for more time (延期) and its decision."""

    unit: str
    reason: str
    requested_by: str
    requested_at: datetime
    requested_deadline: datetime
    approved: bool | None = None
    granted_deadline: datetime | None = None
    decided_by: str = ""
    decided_at: datetime | None = None
    decision_reason: str = ""


@dataclass(frozen=True, slots=True)
class Supervision:
    """An urging (催办) or formal supervision (督办) of the unit holding the order."""

    kind: SupervisionKind
    note: str
    by: str
    at: datetime
    unit: str = ""


@dataclass(frozen=True, slots=True)
class Reply:
    """The answer: the unit's reply (办结反馈) or the agent's direct answer."""

    text: str
    by: str
    at: datetime
    unit: str = ""


@dataclass(frozen=True, slots=True)
class Callback:
    """The current callback survey round (回访, 一事一评)."""

    method: CallbackMethod = CallbackMethod.PHONE
    attempts: int = 0
    resolved: bool | None = None
    satisfaction: Satisfaction | None = None
    rating: int | None = None  # 1..5
    unreachable: bool = False


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One applied action: ``from_status -[action]-> to_status``, who, when, why."""

    at: datetime
    actor: str
    action: Action
    from_status: Status
    to_status: Status
    reason: str = ""
    origin: Origin = Origin.LOCAL


@dataclass(frozen=True, kw_only=True)
class WorkOrder:
    """A work order (工单). Immutable: :func:`apply` returns a new one.

    Text fields are "" when unknown; ``version`` counts stored changes (a new
    draft is version 1) and orders the city events of this order.
    """

    order_no: str
    channel: Channel
    created_at: datetime
    updated_at: datetime
    created_by: str = ""
    status: Status = Status.DRAFT
    version: int = 1
    city_order_no: str | None = None
    call_id: str | None = None
    recording_id: str | None = None
    ivr_choices: tuple[str, ...] = ()
    caller_number: str = ""
    appellant_name: str = ""
    contact_phone: str = ""
    anonymous: bool = False
    confidential: bool = False
    appeal_type: AppealType | None = None
    category_code: str = ""
    category_path: tuple[str, ...] = ()
    title: str = ""
    content: str = ""
    occurred_at: datetime | None = None
    address: str = ""
    division_code: str = ""
    street: str = ""
    lng: float | None = None
    lat: float | None = None
    urgency: Urgency = Urgency.NORMAL
    time_limit_class: TimeLimitClass = TimeLimitClass.GENERAL
    disposition: Disposition | None = None
    kb_refs: tuple[str, ...] = ()
    assignments: tuple[Assignment, ...] = ()
    returns: tuple[ReturnRequest, ...] = ()
    extensions: tuple[ExtensionRequest, ...] = ()
    supervisions: tuple[Supervision, ...] = ()
    reply: Reply | None = None
    callback: Callback | None = None
    deadline: datetime | None = None
    history: tuple[HistoryEntry, ...] = ()

    @property
    def main_unit(self) -> str | None:
        return next((a.unit for a in self.assignments if a.role is Role.MAIN), None)


@dataclass(frozen=True)
class OutboxEvent:
    """A message for the city platform. ``payload`` is JSON-ready; it always
    holds ``order_no``, ``city_order_no``, ``sequence`` (the order version that
    produced it), ``action``, ``status``, ``at``, ``actor`` and ``reason``."""

    kind: EventKind
    payload: dict[str, Any]

    @property
    def order_no(self) -> str:
        return str(self.payload["order_no"])

    @property
    def sequence(self) -> int:
        return int(self.payload["sequence"])

    @property
    def idempotency_key(self) -> str:
        """Order id + event type + sequence (DOMAIN.md)."""
        return f"{self.order_no}:{self.kind.value}:{self.sequence}"


# -- building and validating -------------------------------------------------------------

LINE_CHANNELS: Final[Mapping[str, Channel]] = MappingProxyType(
    {"12345": Channel.PHONE_12345, "96181": Channel.PHONE_96181}
)
"""Hotline line name (``[[lines]] line`` in the config) -> channel."""


def new_draft(
    *,
    order_no: str,
    agent: str,
    at: datetime,
    line: str | None = None,
    channel: Channel | None = None,
    call_id: str | None = None,
    caller_number: str = "",
    recording_id: str | None = None,
    ivr_choices: Iterable[str] = (),
    line_channels: Mapping[str, Channel] = LINE_CHANNELS,
) -> WorkOrder:
    """A DRAFT pre-filled from a call: the channel from ``line`` (unless
    ``channel`` is given), the contact phone from the caller's number when it
    is a dialable one. ``order_no`` comes from :mod:`workorder_sync.numbering`."""
    if not order_no:
        raise FieldError("order_no", "required")
    if not agent:
        raise FieldError("created_by", "the agent is required")
    _require_aware("created_at", at)
    if channel is None:
        if line is None or line not in line_channels:
            known = ", ".join(sorted(line_channels)) or "none"
            raise FieldError("channel", f"unknown line {line!r} (known lines: {known})")
        channel = line_channels[line]
    return WorkOrder(
        order_no=order_no,
        channel=channel,
        created_at=at,
        updated_at=at,
        created_by=agent,
        call_id=call_id,
        recording_id=recording_id,
        ivr_choices=tuple(ivr_choices),
        caller_number=caller_number,
        contact_phone=caller_number if _PHONE_RE.fullmatch(caller_number) else "",
    )


def validate_fields(order: WorkOrder) -> None:
    """Raise :class:`FieldError` for the first field an accepted order cannot have."""
    title = order.title.strip()
    if not title:
        raise FieldError("title", "required")
    if len(title) > TITLE_MAX:
        raise FieldError("title", f"{len(title)} characters, at most {TITLE_MAX}")
    if not order.content.strip():
        raise FieldError("content", "required")
    if len(order.content) > CONTENT_MAX:
        raise FieldError("content", f"{len(order.content)} characters, at most {CONTENT_MAX}")
    if order.appeal_type is None:
        raise FieldError("appeal_type", "required")
    if order.disposition is None:
        raise FieldError("disposition", "required")
    if order.contact_phone and not _PHONE_RE.fullmatch(order.contact_phone):
        raise FieldError(
            "contact_phone", f"{order.contact_phone!r} is not 5 to 20 digits (optional +)"
        )
    if order.division_code and not _DIVISION_RE.fullmatch(order.division_code):
        raise FieldError(
            "division_code", f"{order.division_code!r} is not a 6, 9 or 12 digit division code"
        )
    if not order.division_code and order.disposition in (
        Disposition.DISPATCH,
        Disposition.ESCALATE,
    ):
        raise FieldError("division_code", "required to dispatch (the city routes by division)")
    for name, limit in (
        ("appellant_name", _NAME_MAX),
        ("address", _ADDRESS_MAX),
        ("street", _STREET_MAX),
        ("category_code", _CATEGORY_CODE_MAX),
    ):
        value: str = getattr(order, name)
        if len(value) > limit:
            raise FieldError(name, f"{len(value)} characters, at most {limit}")
    if order.category_path and not order.category_code:
        raise FieldError("category_code", "required with a category_path")
    if (order.lng is None) != (order.lat is None):
        raise FieldError("lng" if order.lng is None else "lat", "lng and lat go together")
    if order.lng is not None and not -180.0 <= order.lng <= 180.0:
        raise FieldError("lng", f"{order.lng} is outside -180..180")
    if order.lat is not None and not -90.0 <= order.lat <= 90.0:
        raise FieldError("lat", f"{order.lat} is outside -90..90")
    if order.occurred_at is not None:
        _require_aware("occurred_at", order.occurred_at)
    for ref in order.kb_refs:
        if not ref:
            raise FieldError("kb_refs", "an empty article reference")


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise FieldError(name, f"{value.isoformat()} has no time zone")


# -- applying actions ---------------------------------------------------------------------


class _Step(NamedTuple):
    changes: dict[str, Any]
    detail: dict[str, Any]


@dataclass(frozen=True)
class _Ctx:
    order: WorkOrder
    action: Action
    actor: str
    at: datetime
    reason: str
    data: Mapping[str, Any]

    def fail(self, problem: str, key: str = "") -> PreconditionError:
        return PreconditionError(
            f"order {self.order.order_no} ({self.order.status.value}): "
            f"{self.action.value} {problem}",
            order_no=self.order.order_no,
            status=self.order.status,
            action=self.action,
            key=key,
        )

    def text(self, key: str, *, required: bool = True) -> str:
        value = self.data.get(key, "")
        if not isinstance(value, str):
            raise self.fail(f"needs {key!r} as text, not {type(value).__name__}", key)
        value = value.strip()
        if required and not value:
            raise self.fail(f"needs {key!r} (non-empty text)", key)
        return value

    def when(self, key: str) -> datetime:
        if key not in self.data:
            raise self.fail(f"needs {key!r} (a date and time)", key)
        try:
            return _decode_datetime(key, self.data[key])
        except FieldError as e:
            raise self.fail(f"needs {key!r} as an aware date and time: {e.problem}", key) from e

    def unit(self) -> str:
        """data["unit"] (default: the main unit), which must be assigned."""
        unit = self.text("unit", required=False) or self.order.main_unit or ""
        if self.order.assignments and unit not in {a.unit for a in self.order.assignments}:
            assigned = ", ".join(a.unit for a in self.order.assignments)
            raise self.fail(f"names unit {unit!r}, which is not assigned ({assigned})", "unit")
        return unit


def apply(
    order: WorkOrder,
    action: Action,
    *,
    actor: str,
    at: datetime,
    reason: str = "",
    data: Mapping[str, Any] | None = None,
    origin: Origin | Literal["local", "city"] = Origin.LOCAL,
) -> tuple[WorkOrder, list[OutboxEvent]]:
    """Apply ``action`` to ``order``: the new order (version + 1, one history
    entry with ``actor``, ``at``, ``reason`` and ``origin``) and the events to
    send to the city (none for ``origin="city"``).

    ``data`` holds the action's arguments (see the ``_do_*`` handlers: e.g.
    DISPATCH ``assignments``, REPLY ``text``, APPROVE_EXTENSION ``deadline``;
    EDIT and ACCEPT: form fields by name, in :func:`order_to_dict` form or as
    Python values). Raises :class:`TransitionError` for an illegal move,
    :class:`PreconditionError` for missing or bad data, :class:`FieldError` for
    a bad form field; ``order`` itself is never changed.
    """
    action = Action(action)
    origin = Origin(origin)
    target = TRANSITIONS.get((order.status, action))
    if target is None or (origin is Origin.CITY and action in LOCAL_ONLY_ACTIONS):
        raise _illegal(order, action, origin)
    ctx = _Ctx(order, action, actor, at, reason.strip(), data or {})
    if not actor:
        raise ctx.fail("needs an actor (who does it)", "actor")
    try:
        _require_aware("at", at)
    except FieldError as e:
        raise ctx.fail(f"needs an aware time: {e.problem}", "at") from e
    if action in _REASON_REQUIRED and not ctx.reason:
        raise ctx.fail("needs a reason", "reason")

    step = _HANDLERS[action](ctx)
    to_status = order.returns[-1].from_status if target is Target.RETURN_FROM else target
    assert isinstance(to_status, Status)
    entry = HistoryEntry(at, actor, action, order.status, to_status, ctx.reason, origin)
    new = replace(
        order,
        **step.changes,
        status=to_status,
        version=order.version + 1,
        updated_at=at,
        history=(*order.history, entry),
    )
    log.debug(
        "order %s: %s -[%s]-> %s (%s, %s)",
        order.order_no,
        order.status.value,
        action.value,
        to_status.value,
        origin.value,
        actor,
    )
    kind = OUTBOUND.get(action)
    if (
        origin is Origin.CITY
        or kind is None
        or (action is Action.EDIT and order.status in _UNKNOWN_TO_CITY)
    ):
        return new, []
    payload: dict[str, Any] = {
        "order_no": new.order_no,
        "city_order_no": new.city_order_no,
        "sequence": new.version,
        "action": action.value,
        "status": new.status.value,
        "at": at.isoformat(),
        "actor": actor,
        "reason": ctx.reason,
        **step.detail,
    }
    if kind is EventKind.CREATE:
        payload["order"] = order_to_dict(new)
    return new, [OutboxEvent(kind, payload)]


def link_city_order_no(order: WorkOrder, city_order_no: str, *, at: datetime) -> WorkOrder:
    """Record the number the city assigned (answer to CREATE): version + 1.
    The same number again returns ``order`` unchanged; a different one raises
    :class:`FieldError` (the mapping local <-> city id is never rewritten)."""
    if not city_order_no:
        raise FieldError("city_order_no", "empty")
    if order.city_order_no == city_order_no:
        return order
    if order.city_order_no is not None:
        raise FieldError(
            "city_order_no",
            f"order {order.order_no} is already {order.city_order_no!r}, not {city_order_no!r}",
        )
    _require_aware("at", at)
    return replace(order, city_order_no=city_order_no, version=order.version + 1, updated_at=at)


def _illegal(order: WorkOrder, action: Action, origin: Origin) -> TransitionError:
    allowed = allowed_actions(order.status, origin)
    listed = ", ".join(a.value for a in allowed) if allowed else "none"
    why = (
        f"{action.value} is a local action, the city cannot send it"
        if origin is Origin.CITY and action in LOCAL_ONLY_ACTIONS
        else f"{action.value} is not allowed"
    )
    return TransitionError(
        f"order {order.order_no} is {order.status.value}: {why} "
        f"(allowed from {order.status.value}: {listed})",
        order_no=order.order_no,
        status=order.status,
        action=action,
    )


# Handlers: check the data, then say what changes. They never see a state the
# table does not allow for their action.


def _do_accept(ctx: _Ctx) -> _Step:
    """data: form fields (optional, as for EDIT); ``deadline`` (optional, from
    :func:`workorder_sync.calendar.deadline_for`). The form must validate."""
    data = dict(ctx.data)
    changes: dict[str, Any] = {}
    if "deadline" in data:
        changes["deadline"] = ctx.when("deadline")
        del data["deadline"]
    changes.update(_field_changes(ctx.order, data))
    validate_fields(replace(ctx.order, **changes))
    return _Step(changes, {})


def _do_edit(ctx: _Ctx) -> _Step:
    """data: the changed form fields (:data:`EDITABLE_FIELDS`)."""
    if not ctx.data:
        raise ctx.fail("needs at least one field to change")
    changes = _field_changes(ctx.order, ctx.data)
    if ctx.order.status is not Status.DRAFT:
        validate_fields(replace(ctx.order, **changes))
    return _Step(changes, {"changes": {k: _CODECS[k].encode(v) for k, v in changes.items()}})


def _do_direct_answer(ctx: _Ctx) -> _Step:
    """data: ``answer`` (text)."""
    if ctx.order.disposition not in (Disposition.DIRECT_ANSWER, Disposition.TRANSFER_EMERGENCY):
        raise ctx.fail(_disposition_problem(ctx.order), "disposition")
    reply = Reply(text=ctx.text("answer"), by=ctx.actor, at=ctx.at)
    return _Step({"reply": reply}, {})


def _do_send_to_dispatch(ctx: _Ctx) -> _Step:
    if ctx.order.disposition not in (Disposition.DISPATCH, Disposition.ESCALATE):
        raise ctx.fail(_disposition_problem(ctx.order), "disposition")
    return _Step({}, {})


def _disposition_problem(order: WorkOrder) -> str:
    disposition = order.disposition.value if order.disposition else "none"
    return f"does not match the order's disposition ({disposition}); edit it first"


def _do_dispatch(ctx: _Ctx) -> _Step:
    """data: ``assignments``: at least one unit, exactly one MAIN; each an
    :class:`Assignment` or its dict form (``unit``, ``role``, ``deadline``).
    Replaces earlier assignments (a re-dispatch after a return)."""
    raw = ctx.data.get("assignments")
    if not isinstance(raw, Sequence) or isinstance(raw, str) or not raw:
        raise ctx.fail("needs at least one assignment unit", "assignments")
    try:
        assignments = tuple(
            item
            if isinstance(item, Assignment)
            else _ASSIGNMENT_CODEC.decode(f"assignments[{i}]", item)
            for i, item in enumerate(raw)
        )
    except FieldError as e:
        raise ctx.fail(f"has a bad assignment: {e}", "assignments") from e
    units = [a.unit for a in assignments]
    if any(not unit for unit in units):
        raise ctx.fail("has an assignment without a unit", "assignments")
    if len(set(units)) != len(units):
        raise ctx.fail(f"assigns a unit twice ({', '.join(units)})", "assignments")
    mains = [a.unit for a in assignments if a.role is Role.MAIN]
    if len(mains) != 1:
        raise ctx.fail(f"needs exactly one MAIN unit, got {len(mains)}", "assignments")
    return _Step(
        {"assignments": assignments},
        {"assignments": [_ASSIGNMENT_CODEC.encode(a) for a in assignments]},
    )


def _do_sign(ctx: _Ctx) -> _Step:
    """data: ``unit`` (optional, default the MAIN unit)."""
    unit = ctx.unit()
    if not unit:
        raise ctx.fail("needs an assigned unit to sign for it", "unit")
    assignments = tuple(
        replace(a, signed_at=ctx.at) if a.unit == unit else a for a in ctx.order.assignments
    )
    return _Step({"assignments": assignments}, {"unit": unit})


def _do_request_return(ctx: _Ctx) -> _Step:
    """data: ``unit`` (optional, default the MAIN unit)."""
    unit = ctx.unit()
    request = ReturnRequest(
        unit=unit,
        reason=ctx.reason,
        requested_by=ctx.actor,
        requested_at=ctx.at,
        from_status=ctx.order.status,
    )
    return _Step({"returns": (*ctx.order.returns, request)}, {"unit": unit})


def _decide_return(ctx: _Ctx, approved: bool) -> _Step:
    pending = replace(
        ctx.order.returns[-1],
        approved=approved,
        decided_by=ctx.actor,
        decided_at=ctx.at,
        decision_reason=ctx.reason,
    )
    changes: dict[str, Any] = {"returns": (*ctx.order.returns[:-1], pending)}
    if approved:
        changes["assignments"] = ()  # back to the dispatcher, who picks units anew
    return _Step(changes, {"approved": approved, "unit": pending.unit})


def _do_request_extension(ctx: _Ctx) -> _Step:
    """data: ``deadline`` (the requested one, later than the current), ``unit``."""
    wanted = ctx.when("deadline")
    if ctx.order.deadline is not None and wanted <= ctx.order.deadline:
        raise ctx.fail(
            f"asks for {wanted.isoformat()}, not later than the deadline "
            f"{ctx.order.deadline.isoformat()}",
            "deadline",
        )
    unit = ctx.unit()
    request = ExtensionRequest(
        unit=unit,
        reason=ctx.reason,
        requested_by=ctx.actor,
        requested_at=ctx.at,
        requested_deadline=wanted,
    )
    return _Step(
        {"extensions": (*ctx.order.extensions, request)},
        {"unit": unit, "requested_deadline": wanted.isoformat()},
    )


def _do_approve_extension(ctx: _Ctx) -> _Step:
    """data: ``deadline``: the granted deadline (may differ from the one asked)."""
    granted = ctx.when("deadline")
    if ctx.order.deadline is not None and granted <= ctx.order.deadline:
        raise ctx.fail(
            f"grants {granted.isoformat()}, not later than the deadline "
            f"{ctx.order.deadline.isoformat()}",
            "deadline",
        )
    pending = ctx.order.extensions[-1]
    decided = replace(
        pending,
        approved=True,
        granted_deadline=granted,
        decided_by=ctx.actor,
        decided_at=ctx.at,
        decision_reason=ctx.reason,
    )
    assignments = tuple(
        replace(a, deadline=granted) if a.unit == pending.unit else a for a in ctx.order.assignments
    )
    return _Step(
        {
            "extensions": (*ctx.order.extensions[:-1], decided),
            "deadline": granted,
            "assignments": assignments,
        },
        {"approved": True, "unit": pending.unit, "deadline": granted.isoformat()},
    )


def _do_reject_extension(ctx: _Ctx) -> _Step:
    pending = ctx.order.extensions[-1]
    decided = replace(
        pending,
        approved=False,
        decided_by=ctx.actor,
        decided_at=ctx.at,
        decision_reason=ctx.reason,
    )
    deadline = ctx.order.deadline.isoformat() if ctx.order.deadline else None
    return _Step(
        {"extensions": (*ctx.order.extensions[:-1], decided)},
        {"approved": False, "unit": pending.unit, "deadline": deadline},
    )


def _do_reply(ctx: _Ctx) -> _Step:
    """data: ``text``; ``unit`` (optional, default the MAIN unit)."""
    reply = Reply(text=ctx.text("text"), by=ctx.actor, at=ctx.at, unit=ctx.unit())
    return _Step({"reply": reply}, {"text": reply.text, "unit": reply.unit})


def _do_nothing(ctx: _Ctx) -> _Step:
    return _Step({}, {})


def _do_start_callback(ctx: _Ctx) -> _Step:
    """data: ``method`` (optional, default PHONE). Starts a new round."""
    try:
        method = _decode_enum(CallbackMethod)(
            "method", ctx.data.get("method", CallbackMethod.PHONE)
        )
    except FieldError as e:
        raise ctx.fail(f"has a bad callback method: {e.problem}", "method") from e
    return _Step({"callback": Callback(method=method)}, {})


def _current_callback(ctx: _Ctx) -> Callback:
    return ctx.order.callback if ctx.order.callback is not None else Callback()


def _do_callback_attempt(ctx: _Ctx) -> _Step:
    callback = _current_callback(ctx)
    return _Step({"callback": replace(callback, attempts=callback.attempts + 1)}, {})


def _do_evaluate(ctx: _Ctx) -> _Step:
    """data: ``resolved`` (bool) and ``satisfaction`` (3 levels), ``rating``
    (1..5, optional) -- or ``unreachable: True`` alone (no one answered)."""
    callback = _current_callback(ctx)
    if ctx.data.get("unreachable") is True:
        result = replace(callback, unreachable=True, resolved=None, satisfaction=None)
    else:
        resolved = ctx.data.get("resolved")
        if not isinstance(resolved, bool):
            raise ctx.fail("needs 'resolved' (true or false) or 'unreachable': true", "resolved")
        if "satisfaction" not in ctx.data:
            raise ctx.fail("needs 'satisfaction'", "satisfaction")
        rating = ctx.data.get("rating")
        try:
            satisfaction = _decode_enum(Satisfaction)("satisfaction", ctx.data["satisfaction"])
        except FieldError as e:
            raise ctx.fail(f"has a bad satisfaction: {e.problem}", "satisfaction") from e
        if rating is not None and (
            isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5
        ):
            raise ctx.fail(f"has rating {rating!r}, not 1..5", "rating")
        result = replace(
            callback,
            resolved=resolved,
            satisfaction=satisfaction,
            rating=rating,
            unreachable=False,
        )
    return _Step({"callback": result}, {"callback": _CALLBACK_CODEC.encode(result)})


def _do_reopen(ctx: _Ctx) -> _Step:
    """Only an unresolved or dissatisfied evaluation reopens the order."""
    callback = ctx.order.callback
    if callback is None or not (
        callback.resolved is False or callback.satisfaction is Satisfaction.DISSATISFIED
    ):
        raise ctx.fail("needs an evaluation that is unresolved or dissatisfied", "callback")
    return _Step({}, {})


def _do_supervise(ctx: _Ctx) -> _Step:
    """data: ``kind`` (URGE, default, or SUPERVISE), ``unit`` (default MAIN);
    the reason is the note sent to the unit."""
    try:
        kind = _decode_enum(SupervisionKind)("kind", ctx.data.get("kind", SupervisionKind.URGE))
    except FieldError as e:
        raise ctx.fail(f"has a bad kind: {e.problem}", "kind") from e
    record = Supervision(kind=kind, note=ctx.reason, by=ctx.actor, at=ctx.at, unit=ctx.unit())
    return _Step(
        {"supervisions": (*ctx.order.supervisions, record)},
        {"kind": kind.value, "unit": record.unit, "note": record.note},
    )


_HANDLERS: Final[Mapping[Action, Callable[[_Ctx], _Step]]] = MappingProxyType(
    {
        Action.ACCEPT: _do_accept,
        Action.DIRECT_ANSWER: _do_direct_answer,
        Action.ARCHIVE: _do_nothing,
        Action.SEND_TO_DISPATCH: _do_send_to_dispatch,
        Action.DISPATCH: _do_dispatch,
        Action.SIGN: _do_sign,
        Action.REQUEST_RETURN: _do_request_return,
        Action.APPROVE_RETURN: lambda ctx: _decide_return(ctx, True),
        Action.REJECT_RETURN: lambda ctx: _decide_return(ctx, False),
        Action.REQUEST_EXTENSION: _do_request_extension,
        Action.APPROVE_EXTENSION: _do_approve_extension,
        Action.REJECT_EXTENSION: _do_reject_extension,
        Action.REPLY: _do_reply,
        Action.SUBMIT_REVIEW: _do_nothing,
        Action.REVIEW_REJECT: _do_nothing,
        Action.CLOSE: _do_nothing,
        Action.START_CALLBACK: _do_start_callback,
        Action.CALLBACK_ATTEMPT: _do_callback_attempt,
        Action.EVALUATE: _do_evaluate,
        Action.REOPEN: _do_reopen,
        Action.EDIT: _do_edit,
        Action.SUPERVISE: _do_supervise,
    }
)


# -- (de)serialisation ------------------------------------------------------------------

_E = TypeVar("_E", bound=Enum)
_R = TypeVar("_R")


class _Codec(NamedTuple):
    encode: Callable[[Any], Any]
    decode: Callable[[str, Any], Any]


def _same(value: Any) -> Any:
    return value


def _decode_text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise FieldError(name, f"expected text, got {type(value).__name__}")
    return value


def _decode_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise FieldError(name, f"expected true or false, got {value!r}")
    return value


def _decode_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldError(name, f"expected an integer, got {value!r}")
    return value


def _decode_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FieldError(name, f"expected a number, got {value!r}")
    return float(value)


def _decode_datetime(name: str, value: Any) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as e:
            raise FieldError(name, f"{value!r} is not an ISO 8601 date and time") from e
    if not isinstance(value, datetime):
        raise FieldError(name, f"expected a date and time, got {type(value).__name__}")
    _require_aware(name, value)
    return value


def _encode_datetime(value: datetime) -> str:
    return value.isoformat()


def _decode_enum(enum: type[_E]) -> Callable[[str, Any], _E]:
    def decode(name: str, value: Any) -> _E:
        if isinstance(value, enum):
            return value
        try:
            return enum(value)
        except ValueError:
            choices = ", ".join(str(m.value) for m in enum)
            raise FieldError(name, f"{value!r} is not one of {choices}") from None

    return decode


def _decode_texts(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise FieldError(name, f"expected a list of text, got {type(value).__name__}")
    return tuple(_decode_text(f"{name}[{i}]", item) for i, item in enumerate(value))


def _optional(codec: _Codec) -> _Codec:
    return _Codec(
        lambda v: None if v is None else codec.encode(v),
        lambda name, v: None if v is None else codec.decode(name, v),
    )


_TEXT = _Codec(_same, _decode_text)
_BOOL = _Codec(_same, _decode_bool)
_INT = _Codec(_same, _decode_int)
_DATETIME = _Codec(_encode_datetime, _decode_datetime)
_TEXTS = _Codec(list, _decode_texts)


def _enum_codec(enum: type[Enum]) -> _Codec:
    return _Codec(lambda v: v.value, _decode_enum(enum))


def _record_codec(cls: type[_R], codecs: Mapping[str, _Codec]) -> _Codec:
    def encode(record: Any) -> dict[str, Any]:
        return {name: codec.encode(getattr(record, name)) for name, codec in codecs.items()}

    def decode(name: str, value: Any) -> _R:
        return _decode_record(cls, name, value, codecs)

    return _Codec(encode, decode)


def _decode_record(cls: type[_R], name: str, value: Any, codecs: Mapping[str, _Codec]) -> _R:
    """``name`` prefixes the field names in errors ("" for the order itself)."""
    if not isinstance(value, Mapping):
        raise FieldError(name, f"expected an object, got {type(value).__name__}")
    prefix = f"{name}." if name else ""
    unknown = sorted(set(value) - set(codecs))
    if unknown:
        raise FieldError(prefix + unknown[0], "unknown field")
    required = {
        f.name
        for f in fields(cls)  # type: ignore[arg-type]
        if f.default is MISSING and f.default_factory is MISSING
    }
    missing = sorted(required - set(value))
    if missing:
        raise FieldError(prefix + missing[0], "required")
    return cls(**{k: codecs[k].decode(prefix + k, v) for k, v in value.items()})


def _tuple_of(codec: _Codec) -> _Codec:
    def decode(name: str, value: Any) -> tuple[Any, ...]:
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise FieldError(name, f"expected a list, got {type(value).__name__}")
        return tuple(codec.decode(f"{name}[{i}]", item) for i, item in enumerate(value))

    return _Codec(lambda values: [codec.encode(v) for v in values], decode)


_OPT_DATETIME = _optional(_DATETIME)
_ASSIGNMENT_CODEC = _record_codec(
    Assignment,
    {
        "unit": _TEXT,
        "role": _enum_codec(Role),
        "deadline": _OPT_DATETIME,
        "signed_at": _OPT_DATETIME,
    },
)
_DECISION = {
    "approved": _optional(_BOOL),
    "decided_by": _TEXT,
    "decided_at": _OPT_DATETIME,
    "decision_reason": _TEXT,
}
_RETURN_CODEC = _record_codec(
    ReturnRequest,
    {
        "unit": _TEXT,
        "reason": _TEXT,
        "requested_by": _TEXT,
        "requested_at": _DATETIME,
        "from_status": _enum_codec(Status),
        **_DECISION,
    },
)
_EXTENSION_CODEC = _record_codec(
    ExtensionRequest,
    {
        "unit": _TEXT,
        "reason": _TEXT,
        "requested_by": _TEXT,
        "requested_at": _DATETIME,
        "requested_deadline": _DATETIME,
        "granted_deadline": _OPT_DATETIME,
        **_DECISION,
    },
)
_SUPERVISION_CODEC = _record_codec(
    Supervision,
    {
        "kind": _enum_codec(SupervisionKind),
        "note": _TEXT,
        "by": _TEXT,
        "at": _DATETIME,
        "unit": _TEXT,
    },
)
_REPLY_CODEC = _record_codec(Reply, {"text": _TEXT, "by": _TEXT, "at": _DATETIME, "unit": _TEXT})
_CALLBACK_CODEC = _record_codec(
    Callback,
    {
        "method": _enum_codec(CallbackMethod),
        "attempts": _INT,
        "resolved": _optional(_BOOL),
        "satisfaction": _optional(_enum_codec(Satisfaction)),
        "rating": _optional(_INT),
        "unreachable": _BOOL,
    },
)
_HISTORY_CODEC = _record_codec(
    HistoryEntry,
    {
        "at": _DATETIME,
        "actor": _TEXT,
        "action": _enum_codec(Action),
        "from_status": _enum_codec(Status),
        "to_status": _enum_codec(Status),
        "reason": _TEXT,
        "origin": _enum_codec(Origin),
    },
)

_FORM_CODECS: Final[Mapping[str, _Codec]] = MappingProxyType(
    {
        "appellant_name": _TEXT,
        "contact_phone": _TEXT,
        "anonymous": _BOOL,
        "confidential": _BOOL,
        "appeal_type": _optional(_enum_codec(AppealType)),
        "category_code": _TEXT,
        "category_path": _TEXTS,
        "title": _TEXT,
        "content": _TEXT,
        "occurred_at": _OPT_DATETIME,
        "address": _TEXT,
        "division_code": _TEXT,
        "street": _TEXT,
        "lng": _optional(_Codec(_same, _decode_float)),
        "lat": _optional(_Codec(_same, _decode_float)),
        "urgency": _enum_codec(Urgency),
        "time_limit_class": _enum_codec(TimeLimitClass),
        "disposition": _optional(_enum_codec(Disposition)),
        "kb_refs": _TEXTS,
    }
)

EDITABLE_FIELDS: Final = frozenset(_FORM_CODECS)
"""The form fields EDIT (and ACCEPT) may change."""

_CODECS: Final[Mapping[str, _Codec]] = MappingProxyType(
    {
        "order_no": _TEXT,
        "channel": _enum_codec(Channel),
        "created_at": _DATETIME,
        "updated_at": _DATETIME,
        "created_by": _TEXT,
        "status": _enum_codec(Status),
        "version": _INT,
        "city_order_no": _optional(_TEXT),
        "call_id": _optional(_TEXT),
        "recording_id": _optional(_TEXT),
        "ivr_choices": _TEXTS,
        "caller_number": _TEXT,
        **_FORM_CODECS,
        "assignments": _tuple_of(_ASSIGNMENT_CODEC),
        "returns": _tuple_of(_RETURN_CODEC),
        "extensions": _tuple_of(_EXTENSION_CODEC),
        "supervisions": _tuple_of(_SUPERVISION_CODEC),
        "reply": _optional(_REPLY_CODEC),
        "callback": _optional(_CALLBACK_CODEC),
        "deadline": _OPT_DATETIME,
        "history": _tuple_of(_HISTORY_CODEC),
    }
)


def _field_changes(order: WorkOrder, data: Mapping[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for name, value in data.items():
        if name not in _FORM_CODECS:
            raise FieldError(name, "not a form field (read-only or unknown)")
        changes[name] = _FORM_CODECS[name].decode(name, value)
    if "disposition" in changes and order.status not in _UNKNOWN_TO_CITY:
        if changes["disposition"] != order.disposition:
            raise FieldError(
                "disposition", f"fixed once the order left intake (it is {order.status.value})"
            )
    return changes


def order_to_dict(order: WorkOrder) -> dict[str, Any]:
    """The order as JSON-ready data (enums by value, times in ISO 8601)."""
    return {name: codec.encode(getattr(order, name)) for name, codec in _CODECS.items()}


def order_from_dict(data: Mapping[str, Any]) -> WorkOrder:
    """The inverse of :func:`order_to_dict`; :class:`FieldError` names a bad field."""
    return _decode_record(WorkOrder, "", data, _CODECS)
