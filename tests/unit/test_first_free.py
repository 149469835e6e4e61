from __future__ import annotations

from acd.first_free import Assignment, FirstFreeRouter, WaitingCaller
from acd.presence import Presence
from cti.call_printer import mask_number


def test_oldest_caller_gets_longest_idle_registered_free_agent():
    router = FirstFreeRouter(
        agents=["1001", "1002", "1003"], idle_since={"1001": 50.0, "1002": 10.0}
    )
    busy = {"1003"}
    out = router.assign(
        [WaitingCaller("b", 20.0), WaitingCaller("a", 10.0)],
        registered={"1001", "1002", "1003"},
        busy=busy.__contains__,
    )
    assert out == [Assignment("a", "1002"), Assignment("b", "1001")]
    assert router.reserved == {"1002": "a", "1001": "b"}


def test_reserved_agents_and_pending_calls_are_not_assigned_twice():
    router = FirstFreeRouter(agents=["1001", "1002"])
    first = router.assign(
        [WaitingCaller("a", 1.0)], registered={"1001", "1002"}, busy=lambda a: False
    )
    again = router.assign(
        [WaitingCaller("a", 1.0), WaitingCaller("b", 2.0)],
        registered={"1001", "1002"},
        busy=lambda a: False,
    )
    assert first == [Assignment("a", "1001")]
    assert again == [Assignment("b", "1002")]
    router.release("1001")
    assert router.reserved == {"1002": "b"}


def test_unregistered_and_no_answer_agents_are_skipped():
    router = FirstFreeRouter(agents=["1001", "1002"])
    out = router.assign(
        [WaitingCaller("a", 1.0, frozenset({"1001"}))], registered={"1001"}, busy=lambda a: False
    )
    assert out == []


def test_presence_from_contact_status_and_device_state_list():
    presence = Presence(["1001", "1002"])
    assert (
        presence.apply({"Event": "ContactStatus", "AOR": "1001", "ContactStatus": "Created"})
        is True
    )
    assert (
        presence.apply({"Event": "ContactStatus", "AOR": "9999", "ContactStatus": "Created"})
        is False
    )
    assert presence.registered == {"1001"}
    assert (
        presence.apply({"Event": "ContactStatus", "AOR": "1001", "ContactStatus": "Removed"})
        is True
    )
    presence.resync(
        [
            {"Device": "PJSIP/1001", "State": "NOT_INUSE"},
            {"Device": "PJSIP/1002", "State": "UNAVAILABLE"},
            {"Device": "Queue:x", "State": "NOT_INUSE"},
        ]
    )
    assert presence.registered == {"1001"}


def test_mask_number_keeps_prefix_and_last_four():
    assert mask_number("13800138000") == "138****8000"
    assert mask_number("057112345678") == "057*****5678"
    assert mask_number("12345") == "*****"
