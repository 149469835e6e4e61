"""workorder_sync.core: every legal transition (state, history, version,
outbound events), every illegal one (an error that changes nothing), the
preconditions, the return and reopen rules, city-origin actions, the form
validation, (de)serialisation; and workorder_sync.numbering."""

from __future__ import annotations

import copy
import itertools
import json
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from workorder_sync.core import (
    LOCAL_ONLY_ACTIONS,
    TRANSITIONS,
    Action,
    AppealType,
    Assignment,
    Channel,
    Disposition,
    EventKind,
    FieldError,
    Origin,
    PreconditionError,
    Role,
    Satisfaction,
    Status,
    Target,
    TransitionError,
    WorkOrder,
    allowed_actions,
    apply,
    link_city_order_no,
    new_draft,
    order_from_dict,
    order_to_dict,
    validate_fields,
)
from workorder_sync.numbering import OrderNo, format_order_no, parse_order_no

A = Action
S = Status
TZ = datetime.fromisoformat("2026-09-30T10:00:00+08:00").tzinfo
T0 = datetime(2026, 9, 30, 10, 0, tzinfo=TZ)

FORM: dict[str, Any] = {
    "appellant_name": "张三",
    "contact_phone": "13800138000",
    "appeal_type": "COMPLAINT",
    "category_code": "0301",
    "category_path": ["城市管理", "噪音"],
    "title": "夜间施工噪音",
    "content": "小区旁工地每晚十一点后仍在施工。",
    "address": "某路 1 号",
    "division_code": "440106",
    "street": "某街道",
}

# What each action needs, for the walks below.
DATA: dict[Action, dict[str, Any]] = {
    A.ACCEPT: {"deadline": T0 + timedelta(days=2)},
    A.DIRECT_ANSWER: {"answer": "已告知办理流程。"},
    A.DISPATCH: {
        "assignments": [
            Assignment("城管局", Role.MAIN, T0 + timedelta(days=2)),
            {"unit": "街道办", "role": "ASSIST"},
        ]
    },
    A.REQUEST_EXTENSION: {"deadline": T0 + timedelta(days=10)},
    A.APPROVE_EXTENSION: {"deadline": T0 + timedelta(days=9)},
    A.REPLY: {"text": "已责令停工整改。"},
    A.EVALUATE: {"resolved": False, "satisfaction": "DISSATISFIED", "rating": 2},
    A.EDIT: {"address": "某路 2 号"},
    A.SUPERVISE: {"kind": "URGE"},
}

# The canonical walk from DRAFT to each state.
_TO_SIGNED = [A.ACCEPT, A.SEND_TO_DISPATCH, A.DISPATCH, A.SIGN]
_TO_CLOSED = [*_TO_SIGNED, A.REPLY, A.SUBMIT_REVIEW, A.CLOSE]
WALK: dict[Status, list[Action]] = {
    S.DRAFT: [],
    S.ACCEPTED: [A.ACCEPT],
    S.DIRECT_ANSWERED: [A.ACCEPT, A.DIRECT_ANSWER],
    S.ARCHIVED: [A.ACCEPT, A.DIRECT_ANSWER, A.ARCHIVE],
    S.PENDING_DISPATCH: [A.ACCEPT, A.SEND_TO_DISPATCH],
    S.DISPATCHED: [A.ACCEPT, A.SEND_TO_DISPATCH, A.DISPATCH],
    S.SIGNED: _TO_SIGNED,
    S.RETURN_REQUESTED: [*_TO_SIGNED, A.REQUEST_RETURN],
    S.EXTENSION_REQUESTED: [*_TO_SIGNED, A.REQUEST_EXTENSION],
    S.REPLIED: [*_TO_SIGNED, A.REPLY],
    S.REVIEW: [*_TO_SIGNED, A.REPLY, A.SUBMIT_REVIEW],
    S.CLOSED: _TO_CLOSED,
    S.CALLBACK_PENDING: [*_TO_CLOSED, A.START_CALLBACK],
    S.EVALUATED: [*_TO_CLOSED, A.START_CALLBACK, A.EVALUATE],
    S.REOPENED: [*_TO_CLOSED, A.START_CALLBACK, A.EVALUATE, A.REOPEN],
}

# Written out on purpose rather than read from core.OUTBOUND.
EXPECTED_EVENT: dict[Action, EventKind | None] = {
    A.ACCEPT: None,
    A.DIRECT_ANSWER: EventKind.CREATE,
    A.ARCHIVE: None,
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
    A.SUBMIT_REVIEW: None,
    A.REVIEW_REJECT: EventKind.UPDATE,
    A.CLOSE: EventKind.CLOSE,
    A.START_CALLBACK: None,
    A.CALLBACK_ATTEMPT: None,
    A.EVALUATE: EventKind.CALLBACK_RESULT,
    A.REOPEN: EventKind.REOPEN,
    A.EDIT: EventKind.UPDATE,  # None while DRAFT / ACCEPTED (see expected_event)
    A.SUPERVISE: EventKind.SUPERVISE,
}


def expected_event(state: Status, action: Action) -> EventKind | None:
    if action is A.EDIT and state in (S.DRAFT, S.ACCEPTED):
        return None
    return EXPECTED_EVENT[action]


def draft(disposition: Disposition = Disposition.DISPATCH) -> WorkOrder:
    order = new_draft(
        order_no="GD20260930000001",
        agent="1001",
        at=T0 - timedelta(minutes=5),
        line="12345",
        call_id="call-1",
        caller_number="13800138000",
        recording_id="rec-1",
        ivr_choices=["1", "3"],
    )
    order, _ = apply(
        order,
        A.EDIT,
        actor="1001",
        at=T0 - timedelta(minutes=1),
        data={**FORM, "disposition": disposition.value},
    )
    return order


def step(
    order: WorkOrder, action: Action, *, origin: Origin = Origin.LOCAL, minute: int = 0
) -> tuple[WorkOrder, list[Any]]:
    return apply(
        order,
        action,
        actor="city" if origin is Origin.CITY else "1001",
        at=T0 + timedelta(minutes=minute),
        reason=f"reason for {action.value}",
        data=DATA.get(action),
        origin=origin,
    )


def order_in(state: Status, disposition: Disposition = Disposition.DISPATCH) -> WorkOrder:
    if state in (S.DIRECT_ANSWERED, S.ARCHIVED):
        disposition = Disposition.DIRECT_ANSWER
    order = draft(disposition)
    for minute, action in enumerate(WALK[state], start=1):
        order, _ = step(order, action, minute=minute)
    assert order.status is state
    return order


def order_for(state: Status, action: Action) -> WorkOrder:
    """An order in ``state`` that ``action`` can be applied to if legal."""
    if state is S.ACCEPTED and action is A.DIRECT_ANSWER:
        return order_in(state, Disposition.DIRECT_ANSWER)
    return order_in(state)


# -- the machine ------------------------------------------------------------------------


def test_every_state_is_reachable_and_every_action_is_used() -> None:
    targets = {t for t in TRANSITIONS.values() if isinstance(t, Status)}
    assert targets | {S.DRAFT} == set(Status)
    assert {action for _, action in TRANSITIONS} == set(Action)
    assert set(EXPECTED_EVENT) == set(Action)


LEGAL = sorted(TRANSITIONS, key=lambda k: (list(Status).index(k[0]), list(Action).index(k[1])))


@pytest.mark.parametrize(("state", "action"), LEGAL, ids=[f"{s}-{a}" for s, a in LEGAL])
def test_legal_transition(state: Status, action: Action) -> None:
    order = order_for(state, action)
    target = TRANSITIONS[(state, action)]
    if target is Target.RETURN_FROM:
        target = order.returns[-1].from_status
    at = T0 + timedelta(hours=1)

    new, events = apply(order, action, actor="0042", at=at, reason="why not", data=DATA.get(action))

    assert new.status is target
    assert new.version == order.version + 1
    assert new.updated_at == at
    assert new.history[:-1] == order.history
    entry = new.history[-1]
    assert (entry.at, entry.actor, entry.action) == (at, "0042", action)
    assert (entry.from_status, entry.to_status) == (state, target)
    assert (entry.reason, entry.origin) == ("why not", Origin.LOCAL)
    kind = expected_event(state, action)
    assert [e.kind for e in events] == ([] if kind is None else [kind])
    for event in events:
        assert event.payload["order_no"] == order.order_no
        assert event.payload["sequence"] == new.version
        assert event.payload["status"] == target.value
        assert event.payload["action"] == action.value
        assert event.idempotency_key == f"{order.order_no}:{kind}:{new.version}"
        json.dumps(event.payload)


ILLEGAL = [
    (state, action)
    for state, action in itertools.product(Status, Action)
    if (state, action) not in TRANSITIONS
]


@pytest.mark.parametrize(("state", "action"), ILLEGAL, ids=[f"{s}-{a}" for s, a in ILLEGAL])
def test_illegal_transition_raises_and_changes_nothing(state: Status, action: Action) -> None:
    order = order_in(state)
    before = copy.deepcopy(order)
    with pytest.raises(TransitionError) as caught:
        apply(order, action, actor="1001", at=T0 + timedelta(hours=1), reason="x", data={})
    message = str(caught.value)
    assert order.order_no in message
    assert f"is {state.value}: {action.value} is not allowed" in message
    allowed = allowed_actions(state)
    listed = ", ".join(a.value for a in allowed) if allowed else "none"
    assert message.endswith(f"(allowed from {state.value}: {listed})")
    assert (caught.value.status, caught.value.action) == (state, action)
    assert order == before


def test_illegal_message_reads_well() -> None:
    order = order_in(S.DRAFT)
    with pytest.raises(
        TransitionError,
        match=r"^order GD20260930000001 is DRAFT: SIGN is not allowed "
        r"\(allowed from DRAFT: ACCEPT, EDIT\)$",
    ):
        step(order, A.SIGN)
    with pytest.raises(TransitionError, match=r"allowed from ARCHIVED: none"):
        step(order_in(S.ARCHIVED), A.EDIT)


# -- preconditions -------------------------------------------------------------------------


def test_accept_validates_the_form_first() -> None:
    order = new_draft(order_no="GD20260930000002", agent="1001", at=T0, line="96181")
    with pytest.raises(FieldError, match="^title: required$") as caught:
        step(order, A.ACCEPT)
    assert caught.value.field == "title"
    accepted, events = apply(
        order, A.ACCEPT, actor="1001", at=T0, data={**FORM, "disposition": "DISPATCH"}
    )
    assert accepted.status is S.ACCEPTED and accepted.title == FORM["title"]
    assert accepted.appeal_type is AppealType.COMPLAINT
    assert events == []


@pytest.mark.parametrize(
    ("data", "key", "message"),
    [
        (None, "assignments", "needs at least one assignment unit"),
        ({"assignments": []}, "assignments", "needs at least one assignment unit"),
        ({"assignments": [{"unit": "", "role": "MAIN"}]}, "assignments", "without a unit"),
        (
            {"assignments": [{"unit": "a", "role": "ASSIST"}]},
            "assignments",
            "exactly one MAIN unit, got 0",
        ),
        (
            {"assignments": [{"unit": "a"}, {"unit": "b"}]},
            "assignments",
            "exactly one MAIN unit, got 2",
        ),
        (
            {"assignments": [{"unit": "a"}, {"unit": "a", "role": "ASSIST"}]},
            "assignments",
            "assigns a unit twice",
        ),
        ({"assignments": [{"unit": "a", "role": "BOSS"}]}, "assignments", "'BOSS' is not one"),
    ],
)
def test_dispatch_needs_units(data: dict[str, Any] | None, key: str, message: str) -> None:
    order = order_in(S.PENDING_DISPATCH)
    with pytest.raises(PreconditionError, match=message) as caught:
        apply(order, A.DISPATCH, actor="d1", at=T0, data=data)
    assert caught.value.key == key
    assert "order GD20260930000001 (PENDING_DISPATCH): DISPATCH" in str(caught.value)


@pytest.mark.parametrize(
    ("state", "action", "data", "reason", "key"),
    [
        (S.SIGNED, A.REPLY, {}, "", "text"),
        (S.SIGNED, A.REPLY, {"text": "   "}, "", "text"),
        (S.SIGNED, A.REPLY, {"text": "ok", "unit": "其他局"}, "", "unit"),
        (S.EXTENSION_REQUESTED, A.APPROVE_EXTENSION, {}, "", "deadline"),
        (S.EXTENSION_REQUESTED, A.APPROVE_EXTENSION, {"deadline": "soon"}, "", "deadline"),
        (
            S.EXTENSION_REQUESTED,
            A.APPROVE_EXTENSION,
            {"deadline": T0.replace(tzinfo=None) + timedelta(days=9)},
            "",
            "deadline",
        ),
        (S.EXTENSION_REQUESTED, A.APPROVE_EXTENSION, {"deadline": T0}, "", "deadline"),
        (S.SIGNED, A.REQUEST_EXTENSION, {"deadline": T0 + timedelta(days=1)}, "late", "deadline"),
        (S.SIGNED, A.REQUEST_EXTENSION, {"deadline": T0 + timedelta(days=9)}, "", "reason"),
        (S.DISPATCHED, A.REQUEST_RETURN, {}, "", "reason"),
        (S.RETURN_REQUESTED, A.REJECT_RETURN, {}, "  ", "reason"),
        (S.REVIEW, A.REVIEW_REJECT, {}, "", "reason"),
        (S.SIGNED, A.SUPERVISE, {}, "", "reason"),
        (S.SIGNED, A.SUPERVISE, {"kind": "SCOLD"}, "hurry", "kind"),
        (S.DISPATCHED, A.SIGN, {"unit": "其他局"}, "", "unit"),
        (S.ACCEPTED, A.DIRECT_ANSWER, {"answer": "x"}, "", "disposition"),
        (S.CALLBACK_PENDING, A.EVALUATE, {}, "", "resolved"),
        (S.CALLBACK_PENDING, A.EVALUATE, {"resolved": True}, "", "satisfaction"),
        (
            S.CALLBACK_PENDING,
            A.EVALUATE,
            {"resolved": True, "satisfaction": "SATISFIED", "rating": 6},
            "",
            "rating",
        ),
        (S.CLOSED, A.START_CALLBACK, {"method": "PIGEON"}, "", "method"),
        (S.DRAFT, A.EDIT, {}, "", ""),
    ],
)
def test_preconditions(
    state: Status, action: Action, data: dict[str, Any], reason: str, key: str
) -> None:
    order = order_in(state)
    before = copy.deepcopy(order)
    with pytest.raises(PreconditionError) as caught:
        apply(order, action, actor="1001", at=T0 + timedelta(hours=1), reason=reason, data=data)
    assert caught.value.key == key
    assert caught.value.action is action
    assert order == before


def test_direct_answer_needs_the_answer_text() -> None:
    order = order_in(S.ACCEPTED, Disposition.DIRECT_ANSWER)
    with pytest.raises(PreconditionError, match="DIRECT_ANSWER needs 'answer'"):
        apply(order, A.DIRECT_ANSWER, actor="1001", at=T0)
    answered, events = step(order, A.DIRECT_ANSWER)
    assert answered.reply is not None and answered.reply.text == "已告知办理流程。"
    (create,) = events
    assert create.payload["order"]["status"] == "DIRECT_ANSWERED"
    assert create.payload["order"]["reply"]["text"] == "已告知办理流程。"


def test_send_to_dispatch_needs_a_dispatch_disposition() -> None:
    order = order_in(S.ACCEPTED, Disposition.DIRECT_ANSWER)
    with pytest.raises(PreconditionError, match="disposition \\(DIRECT_ANSWER\\); edit it first"):
        step(order, A.SEND_TO_DISPATCH)
    edited, events = apply(order, A.EDIT, actor="1001", at=T0, data={"disposition": "ESCALATE"})
    assert events == []  # the city does not know the order yet
    sent, (create,) = step(edited, A.SEND_TO_DISPATCH)
    assert create.kind is EventKind.CREATE
    assert create.payload["order"] == order_to_dict(sent)


def test_actor_and_an_aware_time_are_required() -> None:
    order = order_in(S.DRAFT)
    with pytest.raises(PreconditionError, match="needs an actor"):
        apply(order, A.EDIT, actor="", at=T0, data={"title": "x"})
    with pytest.raises(PreconditionError, match="has no time zone"):
        apply(order, A.EDIT, actor="1001", at=T0.replace(tzinfo=None), data={"title": "x"})


def test_edit_checks_the_fields() -> None:
    draft_order = order_in(S.DRAFT)
    with pytest.raises(FieldError, match="^status: not a form field"):
        apply(draft_order, A.EDIT, actor="1001", at=T0, data={"status": "CLOSED"})
    with pytest.raises(FieldError, match="^urgency: 'HIGH' is not one of NORMAL"):
        apply(draft_order, A.EDIT, actor="1001", at=T0, data={"urgency": "HIGH"})
    # A draft may be incomplete; an accepted order must stay valid.
    emptied, _ = apply(draft_order, A.EDIT, actor="1001", at=T0, data={"title": ""})
    assert emptied.title == ""
    signed = order_in(S.SIGNED)
    with pytest.raises(FieldError, match="^title: 101 characters, at most 100$"):
        apply(signed, A.EDIT, actor="1001", at=T0, data={"title": "长" * 101})
    with pytest.raises(FieldError, match="^disposition: fixed once the order left intake"):
        apply(signed, A.EDIT, actor="1001", at=T0, data={"disposition": "DIRECT_ANSWER"})
    edited, (update,) = apply(signed, A.EDIT, actor="1001", at=T0, data={"urgency": "URGENT"})
    assert update.kind is EventKind.UPDATE
    assert update.payload["changes"] == {"urgency": "URGENT"}


def test_reopen_needs_an_unhappy_evaluation() -> None:
    order = order_in(S.CALLBACK_PENDING)
    happy, (result,) = apply(
        order,
        A.EVALUATE,
        actor="cb",
        at=T0,
        data={"resolved": True, "satisfaction": Satisfaction.SATISFIED, "rating": 5},
    )
    assert result.payload["callback"]["satisfaction"] == "SATISFIED"
    with pytest.raises(PreconditionError, match="unresolved or dissatisfied"):
        apply(happy, A.REOPEN, actor="qa", at=T0, reason="?")
    unreachable, _ = apply(order, A.EVALUATE, actor="cb", at=T0, data={"unreachable": True})
    assert unreachable.callback is not None and unreachable.callback.unreachable
    with pytest.raises(PreconditionError):
        apply(unreachable, A.REOPEN, actor="qa", at=T0, reason="?")
    archived, events = step(unreachable, A.ARCHIVE)
    assert archived.status is S.ARCHIVED and events == []


# -- the rules of the machine ------------------------------------------------------------------


@pytest.mark.parametrize("from_state", [S.DISPATCHED, S.SIGNED])
def test_a_rejected_return_goes_back_where_it_came_from(from_state: Status) -> None:
    order, (apply_event,) = step(order_in(from_state), A.REQUEST_RETURN)
    assert order.status is S.RETURN_REQUESTED
    assert order.returns[-1].from_status is from_state
    assert apply_event.kind is EventKind.RETURN_APPLY and apply_event.payload["unit"] == "城管局"

    back, (result,) = apply(order, A.REJECT_RETURN, actor="d1", at=T0, reason="属于职责范围")
    assert back.status is from_state
    assert back.assignments == order.assignments
    decided = back.returns[-1]
    assert (decided.approved, decided.decided_by, decided.decision_reason) == (
        False,
        "d1",
        "属于职责范围",
    )
    assert result.kind is EventKind.RETURN_RESULT and result.payload["approved"] is False


def test_an_approved_return_goes_back_to_dispatch_for_new_units() -> None:
    order, _ = step(order_in(S.SIGNED), A.REQUEST_RETURN)
    pending, (result,) = apply(order, A.APPROVE_RETURN, actor="d1", at=T0)
    assert pending.status is S.PENDING_DISPATCH
    assert pending.assignments == ()
    assert pending.returns[-1].approved is True and result.payload["approved"] is True
    redispatched, (dispatch,) = apply(
        pending,
        A.DISPATCH,
        actor="d1",
        at=T0,
        data={"assignments": [{"unit": "住建局", "role": "MAIN"}]},
    )
    assert redispatched.status is S.DISPATCHED and redispatched.main_unit == "住建局"
    assert dispatch.payload["assignments"] == [
        {"unit": "住建局", "role": "MAIN", "deadline": None, "signed_at": None}
    ]


def test_extension_approval_moves_the_deadline() -> None:
    order = order_in(S.EXTENSION_REQUESTED)
    assert order.extensions[-1].requested_deadline == T0 + timedelta(days=10)
    granted = T0 + timedelta(days=9)
    new, (result,) = step(order, A.APPROVE_EXTENSION)
    assert new.status is S.SIGNED and new.deadline == granted
    assert new.assignments[0].deadline == granted  # the main unit asked
    assert new.assignments[1].deadline is None
    assert result.payload["deadline"] == granted.isoformat()
    rejected, (result,) = step(order, A.REJECT_EXTENSION)
    assert rejected.deadline == order.deadline and rejected.extensions[-1].approved is False
    assert result.payload["approved"] is False


def test_reopen_leads_back_to_signed() -> None:
    order = order_in(S.EVALUATED)
    reopened, (event,) = step(order, A.REOPEN)
    assert reopened.status is S.REOPENED and event.kind is EventKind.REOPEN
    signed, (sign,) = step(reopened, A.SIGN)
    assert signed.status is S.SIGNED and sign.payload["unit"] == "城管局"
    assert [h.to_status for h in signed.history[-2:]] == [S.REOPENED, S.SIGNED]


def test_review_reject_sends_the_order_back_to_the_unit() -> None:
    order = order_in(S.REVIEW)
    back, (update,) = apply(order, A.REVIEW_REJECT, actor="qa", at=T0, reason="答复不完整")
    assert back.status is S.SIGNED
    assert update.kind is EventKind.UPDATE and update.payload["reason"] == "答复不完整"


def test_callback_attempts_are_counted_in_place() -> None:
    order = order_in(S.CALLBACK_PENDING)
    for _ in range(2):
        order, events = apply(order, A.CALLBACK_ATTEMPT, actor="cb", at=T0, reason="no answer")
        assert events == []
    assert order.status is S.CALLBACK_PENDING
    assert order.callback is not None and order.callback.attempts == 2


def test_supervision_is_recorded_beside_the_flow() -> None:
    order = order_in(S.SIGNED)
    urged, (event,) = apply(
        order, A.SUPERVISE, actor="boss", at=T0, reason="请尽快处理", data={"kind": "SUPERVISE"}
    )
    assert urged.status is S.SIGNED
    assert urged.supervisions[-1].note == "请尽快处理" and urged.supervisions[-1].unit == "城管局"
    assert event.payload["kind"] == "SUPERVISE"


def test_the_whole_loop_history_and_versions() -> None:
    order = order_in(S.REOPENED)
    assert [h.to_status for h in order.history] == [
        S.DRAFT,  # the form edit in draft()
        S.ACCEPTED,
        S.PENDING_DISPATCH,
        S.DISPATCHED,
        S.SIGNED,
        S.REPLIED,
        S.REVIEW,
        S.CLOSED,
        S.CALLBACK_PENDING,
        S.EVALUATED,
        S.REOPENED,
    ]
    assert order.version == 1 + len(order.history)
    times = [h.at for h in order.history]
    assert times == sorted(times)


# -- city origin ---------------------------------------------------------------------------------


def test_city_status_events_change_the_order_but_send_nothing() -> None:
    order = order_in(S.PENDING_DISPATCH)
    inbound = [
        A.DISPATCH,
        A.REQUEST_RETURN,
        A.REJECT_RETURN,
        A.SIGN,
        A.REQUEST_EXTENSION,
        A.APPROVE_EXTENSION,
        A.SUPERVISE,
        A.EDIT,
        A.REPLY,
        A.SUBMIT_REVIEW,
        A.CLOSE,
        A.START_CALLBACK,
        A.EVALUATE,
        A.REOPEN,
        A.SIGN,
    ]
    for minute, action in enumerate(inbound):
        before = order
        order, events = step(order, action, origin=Origin.CITY, minute=minute)
        assert events == [], action
        assert order.version == before.version + 1
        assert order.history[-1].origin is Origin.CITY
        assert order.history[-1].actor == "city"
    assert order.status is S.SIGNED


@pytest.mark.parametrize("action", sorted(LOCAL_ONLY_ACTIONS))
def test_the_city_cannot_send_local_actions(action: Action) -> None:
    state = {A.ACCEPT: S.DRAFT, A.ARCHIVE: S.DIRECT_ANSWERED}.get(action, S.ACCEPTED)
    order = order_for(state, action)
    with pytest.raises(TransitionError, match=f"{action.value} is a local action"):
        apply(order, action, actor="city", at=T0, data=DATA.get(action), origin="city")
    assert action not in allowed_actions(state, Origin.CITY)


# -- building, validating, serialising -------------------------------------------------------


def test_new_draft_from_a_call() -> None:
    order = new_draft(
        order_no="GD20260930000003",
        agent="1002",
        at=T0,
        line="96181",
        call_id="c9",
        caller_number="02088886666",
        recording_id="r9",
        ivr_choices=("2",),
    )
    assert order.status is S.DRAFT and order.version == 1 and order.history == ()
    assert order.channel is Channel.PHONE_96181
    assert (order.call_id, order.recording_id, order.ivr_choices) == ("c9", "r9", ("2",))
    assert order.contact_phone == "02088886666" and order.created_by == "1002"
    hidden = new_draft(order_no="X", agent="1", at=T0, line="12345", caller_number="anonymous")
    assert hidden.channel is Channel.PHONE_12345 and hidden.contact_phone == ""
    web = new_draft(order_no="X", agent="1", at=T0, channel=Channel.WEB)
    assert web.channel is Channel.WEB
    with pytest.raises(FieldError, match=r"^channel: unknown line '110' \(known lines: 12345"):
        new_draft(order_no="X", agent="1", at=T0, line="110")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"title": "  "}, "title"),
        ({"title": "x" * 101}, "title"),
        ({"content": ""}, "content"),
        ({"content": "x" * 4001}, "content"),
        ({"appeal_type": None}, "appeal_type"),
        ({"disposition": None}, "disposition"),
        ({"contact_phone": "138-0013-8000"}, "contact_phone"),
        ({"division_code": "44010"}, "division_code"),
        ({"division_code": "4401060011"}, "division_code"),
        ({"division_code": ""}, "division_code"),
        ({"appellant_name": "x" * 51}, "appellant_name"),
        ({"category_code": ""}, "category_code"),
        ({"lng": 113.3}, "lat"),
        ({"lng": 200.0, "lat": 23.1}, "lng"),
        ({"lng": 113.3, "lat": -91.0}, "lat"),
        ({"kb_refs": ("",)}, "kb_refs"),
        ({"occurred_at": datetime(2026, 9, 29, 22, 0)}, "occurred_at"),
    ],
)
def test_validate_fields_names_the_field(changes: dict[str, Any], field: str) -> None:
    order = order_in(S.ACCEPTED)
    validate_fields(order)
    with pytest.raises(FieldError) as caught:
        validate_fields(replace(order, **changes))
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


def test_validate_fields_accepts_the_good_shapes() -> None:
    order = order_in(S.ACCEPTED)
    for code in ("440106", "440106001", "440106001001"):
        validate_fields(replace(order, division_code=code))
    validate_fields(replace(order, contact_phone="+8613800138000", lng=113.3, lat=23.1))
    validate_fields(replace(order, disposition=Disposition.DIRECT_ANSWER, division_code=""))
    validate_fields(replace(order, title="长" * 100, content="x" * 4000))


@pytest.mark.parametrize("state", list(Status))
def test_an_order_survives_a_round_trip_through_json(state: Status) -> None:
    order = order_in(state)
    if state is S.REOPENED:
        order = link_city_order_no(order, "C-1", at=T0)
    as_json = json.dumps(order_to_dict(order), ensure_ascii=False)
    assert order_from_dict(json.loads(as_json)) == order


def test_order_from_dict_names_the_bad_field() -> None:
    data = order_to_dict(order_in(S.SIGNED))
    with pytest.raises(FieldError, match=r"^assignments\[0\]\.role: 'BOSS' is not one of"):
        order_from_dict({**data, "assignments": [{"unit": "a", "role": "BOSS"}]})
    with pytest.raises(FieldError, match="^order_no: required$"):
        order_from_dict({k: v for k, v in data.items() if k != "order_no"})
    with pytest.raises(FieldError, match="^colour: unknown field$"):
        order_from_dict({**data, "colour": "red"})
    with pytest.raises(FieldError, match="^created_at: 'yesterday' is not an ISO 8601"):
        order_from_dict({**data, "created_at": "yesterday"})


def test_link_city_order_no_once() -> None:
    order = order_in(S.PENDING_DISPATCH)
    linked = link_city_order_no(order, "GZ-2026-77", at=T0)
    assert linked.city_order_no == "GZ-2026-77" and linked.version == order.version + 1
    assert link_city_order_no(linked, "GZ-2026-77", at=T0) is linked
    with pytest.raises(FieldError, match="already 'GZ-2026-77', not 'GZ-2026-78'"):
        link_city_order_no(linked, "GZ-2026-78", at=T0)
    _, (dispatch,) = step(linked, A.DISPATCH)
    assert dispatch.payload["city_order_no"] == "GZ-2026-77"


# -- numbering ---------------------------------------------------------------------------


def test_order_number_round_trip() -> None:
    text = format_order_no("GD", date(2026, 12, 7), 42)
    assert text == "GD20261207000042"
    assert parse_order_no(text) == OrderNo("GD", date(2026, 12, 7), 42)
    for prefix, day, seq in [("A", date(2026, 1, 1), 1), ("TJHP", date(2028, 2, 29), 999_999)]:
        assert parse_order_no(format_order_no(prefix, day, seq)) == (prefix, day, seq)


def test_order_numbers_sort_in_creation_order() -> None:
    keys = [(date(2026, 12, d), s) for d in (6, 7, 10) for s in (1, 2, 9, 10, 99, 100, 123_456)]
    numbers = [format_order_no("GD", day, seq) for day, seq in keys]
    assert sorted(numbers) == numbers
    assert len(set(numbers)) == len(numbers)


@pytest.mark.parametrize(
    ("prefix", "seq", "message"),
    [
        ("gd", 1, "prefix 'gd' is not 1 to 8 capital letters"),
        ("", 1, "prefix '' is not"),
        ("GD1", 1, "prefix 'GD1' is not"),
        ("GD", 0, "sequence 0 is not 1..999999"),
        ("GD", 1_000_000, "sequence 1000000 is not"),
    ],
)
def test_format_order_no_rejects(prefix: str, seq: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        format_order_no(prefix, date(2026, 12, 7), seq)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("GD2026120700042", "is not an order number"),
        ("GD20261207000042X", "is not an order number"),
        ("20261207000042", "is not an order number"),
        ("GD20261307000042", "20261307 is not a date"),
        ("GD20261207000000", "sequence 0 is never issued"),
    ],
)
def test_parse_order_no_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_order_no(text)
