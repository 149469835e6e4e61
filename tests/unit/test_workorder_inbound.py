"""workorder_sync.inbound: each city status event kind from each state it can
follow (status, history, nothing sent back), the states it cannot follow
(refused, nothing changed), the event data, the ordering and de-duplication
of events, and the simulator's own progression."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from workorder_sync.city.base import STATUS_KINDS, StatusEvent
from workorder_sync.city.simulator import CitySimulator, SimulatorConfig
from workorder_sync.core import (
    TRANSITIONS,
    Action,
    Origin,
    Role,
    Satisfaction,
    Status,
    WorkOrder,
    apply,
    link_city_order_no,
    new_draft,
)
from workorder_sync.inbound import (
    DEFAULT_MAIN_UNIT,
    PATHS,
    InboundRefused,
    Verdict,
    actions_for,
    apply_events,
    order_events,
)

A = Action
S = Status
TZ = datetime.fromisoformat("2026-10-12T09:00:00+08:00").tzinfo
T0 = datetime(2026, 10, 12, 9, 0, tzinfo=TZ)
EVENT_AT = T0 + timedelta(hours=1)
RECEIVED = EVENT_AT + timedelta(seconds=30)
ORDER_NO = "GD20261012000007"
CITY_NO = "SZ2026101200007"

FORM: dict[str, Any] = {
    "appeal_type": "COMPLAINT",
    "title": "路灯不亮",
    "content": "某路 3 号门前路灯连续一周不亮。",
    "division_code": "440106",
    "address": "某路 3 号",
}

# What our own (local) actions need on the way to each state.
LOCAL_DATA: dict[Action, dict[str, Any]] = {
    A.DIRECT_ANSWER: {"answer": "已告知报修电话。"},
    A.DISPATCH: {
        "assignments": [{"unit": "城管局", "role": "MAIN"}, {"unit": "街道办", "role": "ASSIST"}]
    },
    A.REQUEST_EXTENSION: {"deadline": T0 + timedelta(days=10)},
    A.APPROVE_EXTENSION: {"deadline": T0 + timedelta(days=10)},
    A.REPLY: {"text": "已更换灯具。"},
    A.EVALUATE: {"resolved": False, "satisfaction": "DISSATISFIED"},
}
_SIGNED = [A.ACCEPT, A.SEND_TO_DISPATCH, A.DISPATCH, A.SIGN]
_CLOSED = [*_SIGNED, A.REPLY, A.SUBMIT_REVIEW, A.CLOSE]
WALK: dict[Status, list[Action]] = {
    S.DRAFT: [],
    S.ACCEPTED: [A.ACCEPT],
    S.DIRECT_ANSWERED: [A.ACCEPT, A.DIRECT_ANSWER],
    S.ARCHIVED: [A.ACCEPT, A.DIRECT_ANSWER, A.ARCHIVE],
    S.PENDING_DISPATCH: [A.ACCEPT, A.SEND_TO_DISPATCH],
    S.DISPATCHED: [A.ACCEPT, A.SEND_TO_DISPATCH, A.DISPATCH],
    S.SIGNED: _SIGNED,
    S.RETURN_REQUESTED: [*_SIGNED, A.REQUEST_RETURN],
    S.EXTENSION_REQUESTED: [*_SIGNED, A.REQUEST_EXTENSION],
    S.REPLIED: [*_SIGNED, A.REPLY],
    S.REVIEW: [*_SIGNED, A.REPLY, A.SUBMIT_REVIEW],
    S.CLOSED: _CLOSED,
    S.CALLBACK_PENDING: [*_CLOSED, A.START_CALLBACK],
    S.EVALUATED: [*_CLOSED, A.START_CALLBACK, A.EVALUATE],
    S.REOPENED: [*_CLOSED, A.START_CALLBACK, A.EVALUATE, A.REOPEN],
}


def order_in(state: Status, city_order_no: str = CITY_NO) -> WorkOrder:
    answered = state in (S.DIRECT_ANSWERED, S.ARCHIVED)
    order = new_draft(order_no=ORDER_NO, agent="1001", at=T0, line="12345")
    for minute, action in enumerate(WALK[state], start=1):
        data = LOCAL_DATA.get(action, {})
        if action is A.ACCEPT:
            disposition = "DIRECT_ANSWER" if answered else "DISPATCH"
            data = {**FORM, "disposition": disposition, "deadline": T0 + timedelta(days=2)}
        order, _ = apply(
            order,
            action,
            actor="1001",
            at=T0 + timedelta(minutes=minute),
            reason="本地处理",
            data=data,
        )
        if action in (A.SEND_TO_DISPATCH, A.DIRECT_ANSWER):
            order = link_city_order_no(order, city_order_no, at=T0 + timedelta(minutes=minute))
    assert order.status is state
    return order


def event(
    kind: str,
    seq: int = 1,
    data: Mapping[str, Any] | None = None,
    *,
    event_id: str | None = None,
    at: datetime = EVENT_AT,
) -> StatusEvent:
    return StatusEvent(
        city_order_no=CITY_NO,
        order_no=ORDER_NO,
        city_seq=seq,
        kind=kind,
        at=at,
        data=dict(EVENT_DATA[kind] if data is None else data),
        event_id=event_id or f"{CITY_NO}-{seq}",
    )


GRANTED = T0 + timedelta(days=20)
# What the city puts in each kind of event (a superset of the simulator's).
EVENT_DATA: dict[str, dict[str, Any]] = {
    "DISPATCHED": {"unit": "街道办事处", "role": "MAIN"},
    "SIGNED": {"unit": "城管局"},
    "RETURNED": {"unit": "城管局", "reason": "非本单位职责"},
    "EXTENDED": {"deadline": GRANTED.isoformat(), "reason": "需协调供电公司"},
    "REPLIED": {"content": "已联系诉求人并办理完毕。"},
    "CLOSED": {"result": "办结"},
    "CALLBACK_RESULT": {"resolved": False, "satisfaction": "不满意", "rating": 2},
    "REOPENED": {"reason": "市民不满意，重办"},
}

# Written out on purpose rather than read from inbound.PATHS.
EXPECTED: dict[tuple[str, Status], tuple[list[Action], Status]] = {
    ("DISPATCHED", S.PENDING_DISPATCH): ([A.DISPATCH], S.DISPATCHED),
    ("DISPATCHED", S.RETURN_REQUESTED): ([A.APPROVE_RETURN, A.DISPATCH], S.DISPATCHED),
    ("SIGNED", S.DISPATCHED): ([A.SIGN], S.SIGNED),
    ("SIGNED", S.REOPENED): ([A.SIGN], S.SIGNED),
    ("RETURNED", S.DISPATCHED): ([A.REQUEST_RETURN, A.APPROVE_RETURN], S.PENDING_DISPATCH),
    ("RETURNED", S.SIGNED): ([A.REQUEST_RETURN, A.APPROVE_RETURN], S.PENDING_DISPATCH),
    ("RETURNED", S.RETURN_REQUESTED): ([A.APPROVE_RETURN], S.PENDING_DISPATCH),
    ("EXTENDED", S.SIGNED): ([A.REQUEST_EXTENSION, A.APPROVE_EXTENSION], S.SIGNED),
    ("EXTENDED", S.EXTENSION_REQUESTED): ([A.APPROVE_EXTENSION], S.SIGNED),
    ("REPLIED", S.SIGNED): ([A.REPLY], S.REPLIED),
    ("REPLIED", S.DISPATCHED): ([A.SIGN, A.REPLY], S.REPLIED),
    ("REPLIED", S.REOPENED): ([A.SIGN, A.REPLY], S.REPLIED),
    ("CLOSED", S.REPLIED): ([A.SUBMIT_REVIEW, A.CLOSE], S.CLOSED),
    ("CLOSED", S.REVIEW): ([A.CLOSE], S.CLOSED),
    ("CALLBACK_RESULT", S.CLOSED): ([A.START_CALLBACK, A.EVALUATE], S.EVALUATED),
    ("CALLBACK_RESULT", S.CALLBACK_PENDING): ([A.EVALUATE], S.EVALUATED),
    ("REOPENED", S.EVALUATED): ([A.REOPEN], S.REOPENED),
}
# The city reports what the order already is here: nothing to do.
ALREADY_THERE: set[tuple[str, Status]] = {
    ("DISPATCHED", S.DISPATCHED),
    ("SIGNED", S.SIGNED),
    ("RETURNED", S.PENDING_DISPATCH),
    ("REPLIED", S.REPLIED),
    ("REPLIED", S.REVIEW),  # SUBMIT_REVIEW is ours alone
    ("CLOSED", S.CLOSED),
    ("CLOSED", S.CALLBACK_PENDING),  # START_CALLBACK is ours alone
    ("CALLBACK_RESULT", S.EVALUATED),
    ("REOPENED", S.REOPENED),
}
KINDS = sorted(STATUS_KINDS)
REFUSED = [
    (kind, state)
    for kind, state in itertools.product(KINDS, Status)
    if (kind, state) not in EXPECTED and (kind, state) not in ALREADY_THERE
]


def test_the_tables_cover_every_kind_and_only_legal_city_moves() -> None:
    assert set(PATHS) == STATUS_KINDS
    assert {(k, s) for k, paths in PATHS.items() for s in paths} == set(EXPECTED)
    for (kind, state), (actions, target) in EXPECTED.items():
        assert list(PATHS[kind][state]) == actions
        status = state
        for action in actions:
            nxt = TRANSITIONS[(status, action)]
            assert isinstance(nxt, Status), (kind, state, action)
            status = nxt
        assert status is target


# -- each kind from each state ----------------------------------------------------------------


@pytest.mark.parametrize(("kind", "state"), sorted(EXPECTED), ids=[f"{k}-{s}" for k, s in EXPECTED])
def test_event_moves_the_order_as_the_city_says(kind: str, state: Status) -> None:
    actions, target = EXPECTED[(kind, state)]
    order = order_in(state)
    incoming = event(kind, seq=4)

    result = apply_events(order, 3, [incoming], at_received=RECEIVED)

    assert result.applied == [incoming]
    assert result.refused == []
    assert result.last_applied_seq == 4
    new = result.order
    assert new.status is target
    added = new.history[len(order.history) :]
    assert [h.action for h in added] == actions
    assert all(h.origin is Origin.CITY for h in added)
    assert all(h.actor == f"city:{CITY_NO}-4" for h in added)
    assert all(h.at == EVENT_AT for h in added)
    assert added[0].from_status is state and added[-1].to_status is target
    assert new.version == order.version + len(actions)


@pytest.mark.parametrize(("kind", "state"), sorted(EXPECTED), ids=[f"{k}-{s}" for k, s in EXPECTED])
def test_city_actions_send_nothing_back(kind: str, state: Status) -> None:
    order = order_in(state)
    for action, data in actions_for(order, event(kind)):
        order, outbound = apply(
            order, action, actor="city:x", at=EVENT_AT, reason="city", data=data, origin="city"
        )
        assert outbound == []


@pytest.mark.parametrize(
    ("kind", "state"), sorted(ALREADY_THERE), ids=[f"{k}-{s}" for k, s in ALREADY_THERE]
)
def test_an_order_already_there_needs_nothing(kind: str, state: Status) -> None:
    order = order_in(state)
    incoming = event(kind, seq=1)
    assert actions_for(order, incoming) == []
    result = apply_events(order, 0, [incoming], at_received=RECEIVED)
    assert result.order is order
    assert result.applied == [incoming]
    assert result.last_applied_seq == 1


@pytest.mark.parametrize(("kind", "state"), REFUSED, ids=[f"{k}-{s}" for k, s in REFUSED])
def test_an_event_with_no_path_is_refused_and_changes_nothing(kind: str, state: Status) -> None:
    order = order_in(state)
    incoming = event(kind, seq=1)
    with pytest.raises(InboundRefused) as refused:
        actions_for(order, incoming)
    message = str(refused.value)
    assert ORDER_NO in message and state.value in message and kind in message
    assert f"event {CITY_NO}-1" in message
    assert refused.value.status is state and refused.value.event is incoming

    result = apply_events(order, 0, [incoming], at_received=RECEIVED)
    assert result.order is order
    assert result.applied == []
    assert result.refused == [(incoming, message)]
    assert result.last_applied_seq == 0


def test_signed_for_a_draft_is_refused_with_a_reason() -> None:
    order = order_in(S.DRAFT)
    result = apply_events(order, 0, [event("SIGNED")], at_received=RECEIVED)
    assert result.order is order
    [(_, reason)] = result.refused
    assert reason == (
        f"order {ORDER_NO} (DRAFT): city SIGNED #1 (event {CITY_NO}-1) refused: "
        "no path from DRAFT to what the city reports (SIGNED follows from: DISPATCHED, REOPENED)"
    )


# -- what the event data does ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"unit": "街道办事处", "role": "MAIN"}, [("街道办事处", Role.MAIN)]),
        ({"unit": "街道办事处"}, [("街道办事处", Role.MAIN)]),
        ({}, [(DEFAULT_MAIN_UNIT, Role.MAIN)]),
        ({"units": []}, [(DEFAULT_MAIN_UNIT, Role.MAIN)]),
        ({"units": ["城管局", "街道办"]}, [("城管局", Role.MAIN), ("街道办", Role.ASSIST)]),
        (
            {"units": [{"unit": "城管局", "role": "协办"}, {"unit": "街道办", "role": "主办"}]},
            [("城管局", Role.ASSIST), ("街道办", Role.MAIN)],
        ),
        (
            {"units": [{"unit": "城管局", "role": "ASSIST"}, {"unit": "街道办"}]},
            [("城管局", Role.MAIN), ("街道办", Role.ASSIST)],
        ),
    ],
)
def test_dispatched_assigns_the_city_units_with_one_main(
    data: dict[str, Any], expected: list[tuple[str, Role]]
) -> None:
    result = apply_events(
        order_in(S.PENDING_DISPATCH), 0, [event("DISPATCHED", data=data)], at_received=RECEIVED
    )
    assert result.refused == []
    assert [(a.unit, a.role) for a in result.order.assignments] == expected


def test_dispatched_keeps_the_unit_deadline() -> None:
    deadline = T0 + timedelta(days=3)
    data = {"unit": "城管局", "role": "主办", "deadline": deadline.isoformat()}
    result = apply_events(
        order_in(S.PENDING_DISPATCH), 0, [event("DISPATCHED", data=data)], at_received=RECEIVED
    )
    [assignment] = result.order.assignments
    assert (assignment.unit, assignment.role, assignment.deadline) == (
        "城管局",
        Role.MAIN,
        deadline,
    )


def test_a_redispatch_settles_our_return_request() -> None:
    order = order_in(S.RETURN_REQUESTED)
    result = apply_events(order, 0, [event("DISPATCHED")], at_received=RECEIVED)
    assert [a.unit for a in result.order.assignments] == ["街道办事处"]
    assert result.order.returns[-1].approved is True


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (
            {"units": [{"unit": "城管局", "role": "MAIN"}, {"unit": "街道办", "role": "MAIN"}]},
            "exactly one MAIN unit, got 2",
        ),
        ({"units": "城管局"}, "at least one assignment unit"),
        ({"units": [{"unit": "城管局", "role": "LEAD"}]}, "'LEAD' is not one of MAIN, ASSIST"),
        ({"units": ["城管局", "城管局"]}, "assigns a unit twice"),
    ],
)
def test_dispatched_with_units_the_core_cannot_take_is_refused(
    data: dict[str, Any], problem: str
) -> None:
    order = order_in(S.PENDING_DISPATCH)
    result = apply_events(order, 0, [event("DISPATCHED", data=data)], at_received=RECEIVED)
    assert result.order is order
    [(_, reason)] = result.refused
    assert "city DISPATCHED #1" in reason and problem in reason


def test_signed_records_the_unit_and_the_city_time() -> None:
    result = apply_events(
        order_in(S.DISPATCHED), 0, [event("SIGNED", data={"unit": "街道办"})], at_received=RECEIVED
    )
    signed = {a.unit: a.signed_at for a in result.order.assignments}
    assert signed == {"城管局": None, "街道办": EVENT_AT}


def test_a_city_clock_ahead_of_ours_is_clamped_to_when_we_received_it() -> None:
    ahead = event("SIGNED", at=RECEIVED + timedelta(minutes=5))
    result = apply_events(order_in(S.DISPATCHED), 0, [ahead], at_received=RECEIVED)
    assert result.order.history[-1].at == RECEIVED
    assert result.order.assignments[0].signed_at == RECEIVED


def test_returned_records_the_unit_and_its_reason() -> None:
    result = apply_events(order_in(S.SIGNED), 0, [event("RETURNED")], at_received=RECEIVED)
    request = result.order.returns[-1]
    assert (request.unit, request.reason, request.from_status) == (
        "城管局",
        "非本单位职责",
        S.SIGNED,
    )
    assert request.approved is True
    assert result.order.assignments == ()
    assert result.order.history[-1].reason == "非本单位职责"


@pytest.mark.parametrize("state", [S.SIGNED, S.EXTENSION_REQUESTED])
def test_extended_moves_the_deadline(state: Status) -> None:
    result = apply_events(order_in(state), 0, [event("EXTENDED")], at_received=RECEIVED)
    assert result.order.deadline == GRANTED
    assert result.order.extensions[-1].granted_deadline == GRANTED
    assert result.order.assignments[0].deadline == GRANTED


def test_extended_to_the_deadline_we_already_granted_needs_nothing() -> None:
    order = order_in(S.EXTENSION_REQUESTED)
    order, _ = apply(
        order, A.APPROVE_EXTENSION, actor="1001", at=T0, data={"deadline": GRANTED.isoformat()}
    )
    assert actions_for(order, event("EXTENDED")) == []


def test_extended_without_a_deadline_is_refused() -> None:
    order = order_in(S.SIGNED)
    result = apply_events(order, 0, [event("EXTENDED", data={})], at_received=RECEIVED)
    assert result.order is order
    assert "REQUEST_EXTENSION needs 'deadline'" in result.refused[0][1]


def test_replied_takes_text_or_content() -> None:
    for data, text in (({"content": "已修复。"}, "已修复。"), ({"text": "已处理。"}, "已处理。")):
        result = apply_events(
            order_in(S.SIGNED), 0, [event("REPLIED", data=data)], at_received=RECEIVED
        )
        assert result.order.reply is not None
        assert (result.order.reply.text, result.order.reply.unit) == (text, "城管局")


def test_replied_without_text_is_refused_even_after_the_implied_sign() -> None:
    order = order_in(S.DISPATCHED)
    result = apply_events(order, 0, [event("REPLIED", data={})], at_received=RECEIVED)
    assert result.order is order
    assert "REPLY needs 'text'" in result.refused[0][1]


def test_callback_result_records_the_evaluation() -> None:
    result = apply_events(order_in(S.CLOSED), 0, [event("CALLBACK_RESULT")], at_received=RECEIVED)
    callback = result.order.callback
    assert callback is not None
    assert (callback.resolved, callback.satisfaction, callback.rating) == (
        False,
        Satisfaction.DISSATISFIED,
        2,
    )


def test_callback_result_unreachable() -> None:
    data = {"unreachable": True, "method": "SMS"}
    result = apply_events(
        order_in(S.CLOSED), 0, [event("CALLBACK_RESULT", data=data)], at_received=RECEIVED
    )
    assert result.order.callback is not None
    assert result.order.callback.unreachable is True
    assert result.order.callback.method.value == "SMS"


def test_a_failed_second_step_changes_nothing() -> None:
    order = order_in(S.CLOSED)
    incoming = event("CALLBACK_RESULT", data={"satisfaction": "满意"})
    result = apply_events(order, 0, [incoming], at_received=RECEIVED)
    assert result.order is order
    assert "EVALUATE needs 'resolved'" in result.refused[0][1]


def test_reopened_after_a_satisfied_evaluation_is_refused() -> None:
    order = order_in(S.CALLBACK_PENDING)
    order, _ = apply(
        order,
        A.EVALUATE,
        actor="1001",
        at=T0,
        data={"resolved": True, "satisfaction": "SATISFIED"},
    )
    result = apply_events(order, 0, [event("REOPENED")], at_received=RECEIVED)
    assert result.order is order
    assert "unresolved or dissatisfied" in result.refused[0][1]


def test_reopened_without_a_reason_gets_one() -> None:
    result = apply_events(
        order_in(S.EVALUATED), 0, [event("REOPENED", data={})], at_received=RECEIVED
    )
    assert result.order.status is S.REOPENED
    assert result.order.history[-1].reason == "city reported REOPENED"


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"order_no": "GD20261012000099"}, "about order GD20261012000099"),
        ({"city_order_no": "SZ2026101299999"}, "about city order SZ2026101299999"),
        ({"kind": "MERGED"}, "unknown status kind 'MERGED'"),
    ],
)
def test_an_event_for_another_order_or_of_an_unknown_kind_is_refused(
    changes: dict[str, Any], problem: str
) -> None:
    base = event("SIGNED")
    incoming = dataclasses.replace(base, **changes)
    order = order_in(S.DISPATCHED)
    result = apply_events(order, 0, [incoming], at_received=RECEIVED)
    assert result.order is order
    assert problem in result.refused[0][1]


# -- ordering and de-duplication ---------------------------------------------------------------


def seqs(events: Sequence[StatusEvent]) -> list[int]:
    return [e.city_seq for e in events]


def test_an_event_already_applied_is_a_duplicate() -> None:
    decision = order_events(3, [], event("SIGNED", seq=3))
    assert decision.verdict is Verdict.DUPLICATE
    assert decision.ready == () and decision.pending == ()
    assert decision.reason == "city_seq 3 <= 3, the last applied"


def test_an_event_already_waiting_is_a_duplicate() -> None:
    waiting = [event("REPLIED", seq=5)]
    again = order_events(3, waiting, event("REPLIED", seq=5))
    assert again.verdict is Verdict.DUPLICATE
    assert seqs(again.pending) == [5]
    assert again.reason == f"event {CITY_NO}-5 is already waiting"

    other_id = order_events(3, waiting, event("REPLIED", seq=5, event_id="other"))
    assert other_id.verdict is Verdict.DUPLICATE
    assert seqs(other_id.pending) == [5] and other_id.pending[0].event_id == f"{CITY_NO}-5"

    moved = order_events(3, waiting, event("REPLIED", seq=6, event_id=f"{CITY_NO}-5"))
    assert moved.verdict is Verdict.DUPLICATE


def test_the_next_event_applies_now_with_the_waiting_ones_it_unblocks() -> None:
    waiting = [event("CLOSED", seq=4), event("SIGNED", seq=2), event("CALLBACK_RESULT", seq=6)]
    decision = order_events(0, waiting, event("DISPATCHED", seq=1))
    assert decision.verdict is Verdict.APPLY_NOW
    assert seqs(decision.ready) == [1, 2]
    assert seqs(decision.pending) == [4, 6]
    assert decision.gap == range(0)


def test_an_event_after_a_gap_waits_and_names_the_gap() -> None:
    decision = order_events(1, [event("CLOSED", seq=5)], event("REPLIED", seq=4))
    assert decision.verdict is Verdict.WAIT
    assert decision.ready == ()
    assert seqs(decision.pending) == [4, 5]
    assert decision.gap == range(2, 4)
    assert decision.reason == "city_seq 4 waits: missing 2..3"


def test_waiting_events_already_applied_are_dropped() -> None:
    decision = order_events(2, [event("SIGNED", seq=2), event("CLOSED", seq=5)], event("SIGNED", 3))
    assert decision.verdict is Verdict.APPLY_NOW
    assert seqs(decision.ready) == [3]
    assert seqs(decision.pending) == [5]


class Service:
    """What the service does with one order's events, in memory."""

    def __init__(self, order: WorkOrder) -> None:
        self.order = order
        self.last_applied_seq = 0
        self.pending: tuple[StatusEvent, ...] = ()
        self.applied: list[StatusEvent] = []
        self.refused: list[tuple[StatusEvent, str]] = []

    def receive(self, incoming: StatusEvent) -> Verdict:
        decision = order_events(self.last_applied_seq, self.pending, incoming)
        self.pending = decision.pending
        if decision.verdict is Verdict.APPLY_NOW:
            result = apply_events(
                self.order, self.last_applied_seq, decision.ready, at_received=RECEIVED
            )
            self.order, self.last_applied_seq = result.order, result.last_applied_seq
            self.applied += result.applied
            self.refused += result.refused
            left = decision.ready[len(result.applied) :]
            self.pending = (*left, *self.pending)
        return decision.verdict


def progression() -> list[StatusEvent]:
    return [event("DISPATCHED", 1), event("SIGNED", 2, {"unit": "街道办事处"}), event("REPLIED", 3)]


def test_out_of_order_events_are_applied_in_city_order() -> None:
    service = Service(order_in(S.PENDING_DISPATCH))
    first, second, third = progression()
    assert service.receive(third) is Verdict.WAIT
    assert service.receive(first) is Verdict.APPLY_NOW
    assert seqs(service.applied) == [1]
    assert service.receive(second) is Verdict.APPLY_NOW

    assert seqs(service.applied) == [1, 2, 3]
    assert service.pending == ()
    assert service.order.status is S.REPLIED
    assert [h.action for h in service.order.history[-3:]] == [A.DISPATCH, A.SIGN, A.REPLY]


def test_re_sent_events_are_applied_once() -> None:
    service = Service(order_in(S.PENDING_DISPATCH))
    first, second, third = progression()
    verdicts = [service.receive(e) for e in (first, first, third, third, second, second, first)]
    assert verdicts == [
        Verdict.APPLY_NOW,
        Verdict.DUPLICATE,
        Verdict.WAIT,
        Verdict.DUPLICATE,
        Verdict.APPLY_NOW,
        Verdict.DUPLICATE,
        Verdict.DUPLICATE,
    ]
    assert seqs(service.applied) == [1, 2, 3]
    city_entries = [h for h in service.order.history if h.origin is Origin.CITY]
    assert [h.actor for h in city_entries] == [f"city:{CITY_NO}-{n}" for n in (1, 2, 3)]


def test_a_gap_that_never_fills_keeps_the_later_events_waiting() -> None:
    order = order_in(S.PENDING_DISPATCH)
    service = Service(order)
    _, second, third = progression()
    assert service.receive(third) is Verdict.WAIT
    assert service.receive(second) is Verdict.WAIT
    assert service.order is order
    assert seqs(service.pending) == [2, 3]
    assert order_events(0, service.pending, third).verdict is Verdict.DUPLICATE
    decision = order_events(0, service.pending[1:], second)
    assert decision.gap == range(1, 2)
    assert decision.reason == "city_seq 2 waits: missing 1"


def test_a_refused_event_stops_the_run_and_the_later_ones_wait() -> None:
    order = order_in(S.PENDING_DISPATCH)
    run = [event("DISPATCHED", 1), event("CLOSED", 2), event("SIGNED", 3, {"unit": "街道办事处"})]
    result = apply_events(order, 0, run, at_received=RECEIVED)
    assert result.applied == run[:1]
    assert [e for e, _ in result.refused] == [run[1]]
    assert "(DISPATCHED): city CLOSED #2" in result.refused[0][1]
    assert result.last_applied_seq == 1
    assert result.order.status is S.DISPATCHED

    service = Service(order)
    service.receive(run[2])
    service.receive(run[1])
    service.receive(run[0])
    assert seqs(service.applied) == [1]
    assert seqs(service.pending) == [2, 3]


@pytest.mark.parametrize("run", [[2], [1, 3], [2, 1]])
def test_apply_events_takes_only_a_contiguous_run(run: list[int]) -> None:
    with pytest.raises(ValueError, match="not a contiguous run after city_seq 0"):
        apply_events(
            order_in(S.PENDING_DISPATCH),
            0,
            [event("DISPATCHED", seq) for seq in run],
            at_received=RECEIVED,
        )


def test_apply_events_needs_an_aware_reception_time() -> None:
    with pytest.raises(ValueError, match="has no time zone"):
        apply_events(
            order_in(S.PENDING_DISPATCH),
            0,
            [event("DISPATCHED")],
            at_received=RECEIVED.replace(tzinfo=None),
        )


# -- the simulator's own events ----------------------------------------------------------------


def test_the_simulator_progression_closes_the_order() -> None:
    city_clock = iter(EVENT_AT + timedelta(minutes=n) for n in itertools.count())
    sim = CitySimulator(SimulatorConfig(auto_progress=False, clock=lambda: next(city_clock)))
    # The order as the simulator creates it on a CREATE (no HTTP in a unit test).
    city_order = sim._create(ORDER_NO, "polling", {})
    order = order_in(S.PENDING_DISPATCH, city_order.city_order_no)
    events = [sim.emit_status(city_order.city_order_no, kind) for kind, _ in sim.config.progress]
    assert [e.kind for e in events] == ["DISPATCHED", "SIGNED", "REPLIED", "CLOSED"]

    received = datetime(2026, 10, 12, 5, 0, tzinfo=UTC)
    result = apply_events(order, 0, events, at_received=received)

    assert result.refused == []
    assert result.last_applied_seq == 4
    final = result.order
    assert final.status is S.CLOSED
    assert final.main_unit == "街道办事处"
    assert final.reply is not None and final.reply.text == "已联系诉求人并办理完毕。"
    added = final.history[len(order.history) :]
    assert [(h.action, h.to_status) for h in added] == [
        (A.DISPATCH, S.DISPATCHED),
        (A.SIGN, S.SIGNED),
        (A.REPLY, S.REPLIED),
        (A.SUBMIT_REVIEW, S.REVIEW),
        (A.CLOSE, S.CLOSED),
    ]
    assert all(h.origin is Origin.CITY for h in added)
    assert added[-1].reason == "办结"
