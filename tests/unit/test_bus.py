"""Unit tests for cti.bus: topics, synchronous and asynchronous subscribers,
overflow gaps, the AMI filter union."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from acd.log_events import AGENT_LOGIN, CALL_ANSWERED, CALL_ENDED, LogEvent
from common.call_changes import AgentLeft, CallAnswered, CallChange, CallEnded
from cti.bus import AmiTopic, Bus, Gap, LogTopic, Subscription, ami, log_kind

T0 = 1_700_000_000.0

HANGUP = {"Event": "Hangup", "Uniqueid": "1.1"}
NEWCHANNEL = {"Event": "Newchannel", "Uniqueid": "1.2"}
SURVEY = {"Event": "UserEvent", "UserEvent": "HotlineSurveyResult", "Uniqueid": "1.1", "Score": "5"}
ENQUEUE = {"Event": "UserEvent", "UserEvent": "HotlineEnqueue", "Uniqueid": "1.3"}


def answered(n: int) -> CallAnswered:
    return CallAnswered(call_id=f"{n}.1", at=T0 + n, agent="1001", wait_s=2.0)


def left(n: int) -> AgentLeft:
    return AgentLeft(call_id=f"{n}.1", at=T0 + n, agent="1002")


def ended(n: int) -> CallEnded:
    return CallEnded(
        call_id=f"{n}.1", at=T0 + n, abandoned=False, wait_s=2.0, talk_s=30.0, cause="16"
    )


def row(kind: str, call_id: str | None = "1.1", agent: str | None = None) -> LogEvent:
    return LogEvent(T0, kind, call_id=call_id, agent=agent)


def seen(items: list[Any]) -> list[Any]:
    """Call changes by their number, gaps as they are."""
    return [
        int(item.call_id.split(".")[0]) if isinstance(item, CallChange) else item for item in items
    ]


class Recorder:
    """An asynchronous subscriber (``handle``) that records what it is given
    and, once ``block()`` was called, holds the next item until ``release()``."""

    def __init__(self, *, fail_on: set[int] | None = None) -> None:
        self.items: list[Any] = []
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()
        self.gate.set()
        self.cancelled = False
        self.fail_on = fail_on or set()

    def block(self) -> None:
        self.gate.clear()
        self.entered.clear()

    def release(self) -> None:
        self.gate.set()

    async def handle(self, item: Any) -> None:
        self.items.append(item)
        self.entered.set()
        try:
            await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        if isinstance(item, CallChange) and seen([item])[0] in self.fail_on:
            raise RuntimeError(f"handler failed on {item.call_id}")


@pytest.fixture
async def bus() -> Any:
    the_bus = Bus()
    yield the_bus
    await the_bus.close()


# ------------------------------------------------------------------ type topics


def test_exact_type_gets_that_type_only(bus: Bus) -> None:
    got: list[Any] = []
    bus.subscribe(CallAnswered, got.append, name="answers")
    bus.publish(answered(1))
    bus.publish(left(2))
    bus.publish(CallChange(call_id="3.1", at=T0))
    bus.publish(answered(4))
    assert seen(got) == [1, 4]
    assert all(type(item) is CallAnswered for item in got)


def test_base_class_gets_every_subclass(bus: Bus) -> None:
    got: list[Any] = []
    bus.subscribe(CallChange, got.append, name="all changes")
    bus.publish(answered(1))
    bus.publish(left(2))
    bus.publish(ended(3))
    bus.publish(CallChange(call_id="4.1", at=T0))
    bus.publish({"Event": "Hangup"})  # not a call change
    bus.publish(row(CALL_ANSWERED))  # nor is a log row
    assert seen(got) == [1, 2, 3, 4]
    assert [type(item) for item in got] == [CallAnswered, AgentLeft, CallEnded, CallChange]


def test_object_topic_gets_everything_published(bus: Bus) -> None:
    got: list[Any] = []
    bus.subscribe(object, got.append, name="everything")
    event_row = row(CALL_ENDED)
    bus.publish(answered(1))
    bus.publish(event_row)
    bus.publish(None)
    assert got == [answered(1), event_row, None]


def test_subscriber_on_base_and_subclass_is_called_once_per_item(bus: Bus) -> None:
    got: list[Any] = []
    sub = bus.subscribe([CallChange, CallAnswered, object], got.append, name="both")
    bus.publish(answered(1))
    bus.publish(left(2))
    assert seen(got) == [1, 2]
    assert sub.delivered == 2


def test_a_topic_listed_twice_is_one_topic(bus: Bus) -> None:
    got: list[Any] = []
    sub = bus.subscribe([CallAnswered, CallAnswered], got.append, name="twice")
    bus.publish(answered(1))
    assert seen(got) == [1]
    assert sub.topics == (CallAnswered,)


def test_sync_subscribers_run_in_subscription_order_whatever_topic_matched(bus: Bus) -> None:
    calls: list[tuple[str, int]] = []

    def recorder(name: str) -> Any:
        return lambda item: calls.append((name, seen([item])[0]))

    bus.subscribe(CallAnswered, recorder("a:exact"), name="a")
    bus.subscribe(CallChange, recorder("b:base"), name="b")
    bus.subscribe(object, recorder("c:object"), name="c")
    bus.subscribe(CallAnswered, recorder("d:exact"), name="d")
    bus.subscribe([AgentLeft, CallChange], recorder("e:both"), name="e")
    bus.subscribe(AgentLeft, recorder("f:left"), name="f")

    bus.publish(answered(1))
    bus.publish(left(2))
    assert calls == [
        ("a:exact", 1),
        ("b:base", 1),
        ("c:object", 1),
        ("d:exact", 1),
        ("e:both", 1),
        ("b:base", 2),
        ("c:object", 2),
        ("e:both", 2),
        ("f:left", 2),
    ]


def test_base_subscribed_before_subclass_and_after(bus: Bus) -> None:
    calls: list[str] = []
    bus.subscribe(CallAnswered, lambda _: calls.append("exact-1"), name="exact-1")
    bus.subscribe(CallChange, lambda _: calls.append("base"), name="base")
    bus.subscribe(CallAnswered, lambda _: calls.append("exact-2"), name="exact-2")
    bus.publish(answered(1))
    assert calls == ["exact-1", "base", "exact-2"]


def test_a_subscriber_added_after_publishing_gets_later_items(bus: Bus) -> None:
    first: list[Any] = []
    later: list[Any] = []
    bus.subscribe(CallAnswered, first.append, name="first")
    bus.publish(answered(1))
    bus.subscribe(CallChange, later.append, name="later")
    bus.publish(answered(2))
    bus.publish(left(3))
    assert seen(first) == [1, 2]
    assert seen(later) == [2, 3]


def test_publish_with_no_subscriber_is_a_no_op(bus: Bus) -> None:
    bus.publish(answered(1))
    bus.publish_ami(HANGUP)
    bus.publish_log(row(CALL_ANSWERED))
    assert bus.subscriptions() == []


def test_a_failing_sync_subscriber_does_not_stop_the_others(bus: Bus) -> None:
    calls: list[str] = []

    def failing(item: Any) -> None:
        calls.append("failing")
        raise RuntimeError("boom")

    before = bus.subscribe(CallChange, lambda _: calls.append("before"), name="before")
    bad = bus.subscribe(CallAnswered, failing, name="bad")
    after = bus.subscribe(CallChange, lambda _: calls.append("after"), name="after")

    bus.publish(answered(1))
    bus.publish(left(2))  # "bad" does not see it
    bus.publish(answered(3))
    assert calls == ["before", "failing", "after", "before", "after", "before", "failing", "after"]
    assert (bad.failures, bad.delivered) == (2, 0)
    assert (before.failures, before.delivered) == (0, 3)
    assert (after.failures, after.delivered) == (0, 3)


def test_sync_subscription_stats(bus: Bus) -> None:
    def sometimes(item: Any) -> None:
        if item.call_id == "2.1":
            raise ValueError(item)

    sub = bus.subscribe(CallAnswered, sometimes, name="sometimes", queue_size=1)
    for n in (1, 2, 3):
        bus.publish(answered(n))
    assert not sub.is_async
    assert sub.queue_size is None
    assert sub.stats() == {
        "name": "sometimes",
        "async": False,
        "delivered": 2,
        "dropped": 0,
        "gaps": 0,
        "failures": 1,
        "queued": 0,
    }


def test_subscriptions_lists_them_in_order(bus: Bus) -> None:
    a = bus.subscribe(CallAnswered, lambda _: None, name="a")
    b = bus.subscribe(ami("Hangup"), lambda _: None, name="b")
    c = bus.subscribe(log_kind(CALL_ANSWERED), lambda _: None, name="c")
    listed = bus.subscriptions()
    assert listed == [a, b, c]
    listed.clear()  # a copy
    assert bus.subscriptions() == [a, b, c]
    assert (a.topics, b.topics, c.topics) == (
        (CallAnswered,),
        (AmiTopic("Hangup"),),
        (LogTopic(CALL_ANSWERED),),
    )


# ------------------------------------------------------------------ AMI topics


def test_ami_topic_gets_its_event_only(bus: Bus) -> None:
    got: list[Any] = []
    bus.subscribe(ami("Hangup"), got.append, name="hangups")
    for event in (NEWCHANNEL, HANGUP, SURVEY, {"Event": "Hangup", "Uniqueid": "1.9"}):
        bus.publish_ami(event)
    assert got == [HANGUP, {"Event": "Hangup", "Uniqueid": "1.9"}]


def test_ami_user_event_topic_gets_that_user_event_only(bus: Bus) -> None:
    got: list[Any] = []
    bus.subscribe(ami("UserEvent:HotlineSurveyResult"), got.append, name="survey")
    for event in (HANGUP, ENQUEUE, SURVEY, {"Event": "UserEvent"}, SURVEY):
        bus.publish_ami(event)
    assert got == [SURVEY, SURVEY]


def test_ami_user_event_gets_every_user_event(bus: Bus) -> None:
    got: list[Any] = []
    bus.subscribe(ami("UserEvent"), got.append, name="user events")
    no_name = {"Event": "UserEvent"}
    for event in (HANGUP, ENQUEUE, SURVEY, no_name):
        bus.publish_ami(event)
    assert got == [ENQUEUE, SURVEY, no_name]


def test_ami_events_without_a_name_are_ignored(bus: Bus) -> None:
    got: list[Any] = []
    bus.subscribe([ami("Hangup"), ami("UserEvent")], got.append, name="any")
    bus.publish_ami({})
    bus.publish_ami({"Event": None})
    bus.publish_ami({"Uniqueid": "1.1"})
    assert got == []


def test_ami_subscriber_of_user_event_and_one_user_event_is_called_once(bus: Bus) -> None:
    got: list[Any] = []
    sub = bus.subscribe(
        [ami("UserEvent:HotlineSurveyResult"), ami("UserEvent")], got.append, name="both"
    )
    bus.publish_ami(SURVEY)
    bus.publish_ami(ENQUEUE)
    assert got == [SURVEY, ENQUEUE]
    assert sub.delivered == 2


def test_ami_topic_listed_twice_is_called_once(bus: Bus) -> None:
    got: list[Any] = []
    bus.subscribe([ami("Hangup"), ami("Hangup")], got.append, name="twice")
    bus.publish_ami(HANGUP)
    assert got == [HANGUP]


def test_ami_subscribers_run_in_subscription_order(bus: Bus) -> None:
    calls: list[str] = []
    bus.subscribe(ami("UserEvent:HotlineSurveyResult"), lambda _: calls.append("one"), name="1")
    bus.subscribe(ami("UserEvent"), lambda _: calls.append("all"), name="2")
    bus.subscribe(ami("UserEvent:HotlineSurveyResult"), lambda _: calls.append("one-2"), name="3")
    bus.subscribe(ami("UserEvent:HotlineEnqueue"), lambda _: calls.append("enqueue"), name="4")
    bus.publish_ami(SURVEY)
    assert calls == ["one", "all", "one-2"]
    calls.clear()
    bus.publish_ami(ENQUEUE)
    assert calls == ["all", "enqueue"]
    # A UserEvent subscriber added later still gets the named ones, after the others.
    bus.subscribe(ami("UserEvent"), lambda _: calls.append("all-2"), name="5")
    calls.clear()
    bus.publish_ami(SURVEY)
    assert calls == ["one", "all", "one-2", "all-2"]


def test_ami_names_is_the_union_of_event_names(bus: Bus) -> None:
    assert bus.ami_names() == frozenset()
    bus.subscribe(CallAnswered, lambda _: None, name="typed")
    bus.subscribe(log_kind(CALL_ANSWERED), lambda _: None, name="rows")
    assert bus.ami_names() == frozenset()
    bus.subscribe(ami("Hangup"), lambda _: None, name="hangups")
    bus.subscribe(
        [ami("UserEvent:HotlineSurveyResult"), ami("UserEvent:HotlineEnqueue")],
        lambda _: None,
        name="user events",
    )
    bus.subscribe(ami("Hangup"), lambda _: None, name="hangups again")
    assert bus.ami_names() == frozenset({"Hangup", "UserEvent"})
    assert ami("UserEvent:HotlineSurveyResult").event == "UserEvent"
    assert ami("Hangup").event == "Hangup"


def test_on_ami_names_is_told_when_the_union_grows_only() -> None:
    told: list[frozenset[str]] = []
    bus = Bus(on_ami_names=told.append)
    bus.subscribe(CallAnswered, lambda _: None, name="typed")
    bus.subscribe(log_kind(CALL_ANSWERED), lambda _: None, name="rows")
    assert told == []
    bus.subscribe(ami("Hangup"), lambda _: None, name="hangups")
    assert told == [frozenset({"Hangup"})]
    bus.subscribe(ami("Hangup"), lambda _: None, name="hangups again")
    assert told == [frozenset({"Hangup"})]
    bus.subscribe(ami("UserEvent:HotlineSurveyResult"), lambda _: None, name="survey")
    assert told == [frozenset({"Hangup"}), frozenset({"Hangup", "UserEvent"})]
    bus.subscribe(ami("UserEvent:HotlineEnqueue"), lambda _: None, name="enqueue")
    bus.subscribe(ami("UserEvent"), lambda _: None, name="all user events")
    assert len(told) == 2
    bus.subscribe([ami("Newchannel"), ami("Hangup")], lambda _: None, name="channels")
    assert told[2:] == [frozenset({"Hangup", "UserEvent", "Newchannel"})]
    assert told[-1] == bus.ami_names()


@pytest.mark.parametrize("name", ["", "UserEvent:", ":", ":Hangup", "Hangup:Foo"])
def test_invalid_ami_topics_raise(name: str) -> None:
    with pytest.raises(ValueError):
        ami(name)


def test_valid_ami_topics() -> None:
    assert ami("Hangup") == AmiTopic("Hangup")
    assert ami("UserEvent:HotlineSurveyResult").name == "UserEvent:HotlineSurveyResult"


@pytest.mark.parametrize(
    "topics",
    ["Hangup", 42, [ami("Hangup"), "Hangup"], [CallAnswered, None], {"Event": "Hangup"}],
    ids=["str", "int", "list-with-str", "list-with-none", "dict"],
)
def test_subscribing_to_a_non_topic_raises(topics: Any) -> None:
    told: list[frozenset[str]] = []
    bus = Bus(on_ami_names=told.append)
    with pytest.raises(TypeError):
        bus.subscribe(topics, lambda _: None, name="bad")
    assert bus.subscriptions() == []
    assert bus.ami_names() == frozenset()
    assert told == []


def test_subscribing_to_no_topic_raises(bus: Bus) -> None:
    with pytest.raises(ValueError):
        bus.subscribe([], lambda _: None, name="none")
    assert bus.subscriptions() == []


def test_async_queue_size_below_two_raises(bus: Bus) -> None:
    async def handler(item: Any) -> None:
        pass

    with pytest.raises(ValueError):
        bus.subscribe(CallAnswered, handler, name="tiny", queue_size=1)
    assert bus.subscriptions() == []
    assert bus.subscribe(CallAnswered, handler, name="small", queue_size=2).queue_size == 2


# ------------------------------------------------------------------ event-log rows


def test_log_kind_gets_rows_of_that_kind(bus: Bus) -> None:
    got: list[Any] = []
    bus.subscribe(log_kind(CALL_ANSWERED), got.append, name="answers")
    rows = [
        row(CALL_ANSWERED, "1.1"),
        row(CALL_ENDED, "1.1"),
        row(AGENT_LOGIN, None, agent="1001"),
        row(CALL_ANSWERED, "2.1"),
    ]
    for r in rows:
        bus.publish_log(r)
    assert got == [rows[0], rows[3]]


def test_publish_log_also_reaches_the_log_event_type(bus: Bus) -> None:
    kinds: list[Any] = []
    typed: list[Any] = []
    changes: list[Any] = []
    bus.subscribe(log_kind(CALL_ENDED), kinds.append, name="ended")
    bus.subscribe(LogEvent, typed.append, name="all rows")
    bus.subscribe(CallChange, changes.append, name="changes")
    rows = [row(CALL_ANSWERED), row(CALL_ENDED), row(AGENT_LOGIN, None, agent="1001")]
    for r in rows:
        bus.publish_log(r)
    assert kinds == [rows[1]]
    assert typed == rows
    assert changes == []


def test_log_subscriber_on_kind_and_type_is_called_once_in_order(bus: Bus) -> None:
    calls: list[tuple[str, str]] = []
    bus.subscribe(LogEvent, lambda r: calls.append(("typed", r.kind)), name="typed")
    bus.subscribe(
        [log_kind(CALL_ANSWERED), LogEvent], lambda r: calls.append(("both", r.kind)), name="both"
    )
    bus.subscribe(log_kind(CALL_ANSWERED), lambda r: calls.append(("kind", r.kind)), name="kind")
    bus.publish_log(row(CALL_ANSWERED))
    bus.publish_log(row(CALL_ENDED))
    assert calls == [
        ("typed", CALL_ANSWERED),
        ("both", CALL_ANSWERED),
        ("kind", CALL_ANSWERED),
        ("typed", CALL_ENDED),
        ("both", CALL_ENDED),
    ]
    # A subscriber added later is seen by the next row.
    bus.subscribe(log_kind(CALL_ENDED), lambda r: calls.append(("late", r.kind)), name="late")
    calls.clear()
    bus.publish_log(row(CALL_ENDED))
    assert calls == [("typed", CALL_ENDED), ("both", CALL_ENDED), ("late", CALL_ENDED)]


async def test_async_log_kind_subscriber(bus: Bus) -> None:
    rec = Recorder()
    bus.subscribe(log_kind(CALL_ANSWERED), rec.handle, name="answers")
    bus.start()
    rows = [row(CALL_ANSWERED, "1.1"), row(CALL_ENDED, "1.1"), row(CALL_ANSWERED, "2.1")]
    for r in rows:
        bus.publish_log(r)
    await bus.drain()
    assert rec.items == [rows[0], rows[2]]


# ------------------------------------------------------------------ asynchronous subscribers


async def test_async_subscriber_gets_items_in_order(bus: Bus) -> None:
    rec = Recorder()
    sub = bus.subscribe(CallChange, rec.handle, name="async")
    assert sub.is_async
    bus.start()
    for n in range(5):
        bus.publish(answered(n) if n % 2 else left(n))
    await bus.drain()
    assert seen(rec.items) == [0, 1, 2, 3, 4]
    assert (sub.delivered, sub.failures, sub.stats()["queued"]) == (5, 0, 0)


async def test_async_subscriber_does_not_run_on_the_publish_path(bus: Bus) -> None:
    rec = Recorder()
    bus.subscribe(CallAnswered, rec.handle, name="async")
    bus.start()
    bus.publish(answered(1))
    assert rec.items == []  # queued, handled by the subscriber's task
    await bus.drain()
    assert seen(rec.items) == [1]


async def test_items_published_before_start_are_delivered_after(bus: Bus) -> None:
    rec = Recorder()
    sub = bus.subscribe(CallAnswered, rec.handle, name="early")
    for n in range(3):
        bus.publish(answered(n))
    await bus.drain()  # not started: nothing to wait for
    assert rec.items == []
    assert sub.stats()["queued"] == 3
    bus.start()
    bus.publish(answered(3))
    await bus.drain()
    assert seen(rec.items) == [0, 1, 2, 3]
    assert sub.stats()["queued"] == 0


async def test_subscribing_after_start_starts_the_task(bus: Bus) -> None:
    bus.start()
    rec = Recorder()
    bus.subscribe(CallAnswered, rec.handle, name="late")
    bus.publish(answered(1))
    bus.publish(answered(2))
    await bus.drain()
    assert seen(rec.items) == [1, 2]


async def test_start_twice_runs_one_task_per_subscriber(bus: Bus) -> None:
    rec = Recorder()
    sub = bus.subscribe(CallAnswered, rec.handle, name="once")
    bus.start()
    bus.start()
    for n in range(4):
        bus.publish(answered(n))
    await bus.drain()
    assert seen(rec.items) == [0, 1, 2, 3]
    assert sub.delivered == 4


async def test_sync_and_async_subscribers_together(bus: Bus) -> None:
    rec = Recorder()
    sync_got: list[Any] = []
    bus.subscribe(CallChange, rec.handle, name="async")
    bus.subscribe(CallAnswered, sync_got.append, name="sync")
    bus.start()
    bus.publish(answered(1))
    bus.publish(left(2))
    assert seen(sync_got) == [1]  # at once
    await bus.drain()
    assert seen(rec.items) == [1, 2]


async def test_a_failing_async_handler_keeps_consuming(bus: Bus) -> None:
    rec = Recorder(fail_on={1, 3})
    sub = bus.subscribe(CallAnswered, rec.handle, name="flaky")
    other = Recorder()
    bus.subscribe(CallAnswered, other.handle, name="other")
    bus.start()
    for n in range(5):
        bus.publish(answered(n))
    await bus.drain()
    assert seen(rec.items) == [0, 1, 2, 3, 4]
    assert seen(other.items) == [0, 1, 2, 3, 4]
    assert (sub.failures, sub.delivered) == (2, 3)
    bus.publish(answered(5))
    await bus.drain()
    assert seen(rec.items)[-1] == 5
    assert (sub.failures, sub.delivered) == (2, 4)


async def test_async_subscriber_may_be_given_none(bus: Bus) -> None:
    rec = Recorder()
    sub = bus.subscribe(object, rec.handle, name="anything")
    bus.start()
    bus.publish(None)
    bus.publish(answered(1))
    await bus.drain()
    assert rec.items == [None, answered(1)]
    assert (sub.delivered, sub.failures, sub.gaps) == (2, 0, 0)


async def test_drain_times_out_on_a_blocked_handler(bus: Bus) -> None:
    rec = Recorder()
    bus.subscribe(CallAnswered, rec.handle, name="blocked")
    bus.start()
    rec.block()
    bus.publish(answered(1))
    await rec.entered.wait()
    with pytest.raises(TimeoutError):
        await bus.drain(timeout_s=0.05)
    rec.release()
    await bus.drain()
    assert seen(rec.items) == [1]


async def test_close_cancels_the_tasks() -> None:
    bus = Bus()
    rec = Recorder()
    sub = bus.subscribe(CallAnswered, rec.handle, name="blocked")
    bus.start()
    rec.block()
    bus.publish(answered(1))
    await rec.entered.wait()
    bus.publish(answered(2))
    await bus.close()
    assert rec.cancelled
    assert seen(rec.items) == [1]  # what was still queued is not handled
    assert sub.stats()["queued"] == 1
    # After close, nothing consumes: published items stay queued, drain does not wait.
    rec.release()
    bus.publish(answered(3))
    await bus.drain(timeout_s=1.0)
    assert seen(rec.items) == [1]
    assert sub.stats()["queued"] == 2
    await bus.close()  # closing twice is harmless


async def test_close_with_idle_tasks_and_no_async_subscriber() -> None:
    empty = Bus()
    await empty.close()
    bus = Bus()
    rec = Recorder()
    bus.subscribe(CallAnswered, rec.handle, name="idle")
    bus.start()
    await bus.close()
    assert rec.items == []


# ------------------------------------------------------------------ overflow


async def test_overflow_delivers_one_gap_in_place_of_the_dropped_items(bus: Bus) -> None:
    rec = Recorder()
    sub = bus.subscribe(CallAnswered, rec.handle, name="slow", queue_size=4)
    sync_got: list[Any] = []
    sync_sub = bus.subscribe(CallAnswered, sync_got.append, name="sync")
    bus.start()

    rec.block()
    bus.publish(answered(0))
    await rec.entered.wait()  # the handler holds item 0, its queue is empty
    for n in range(1, 10):
        bus.publish(answered(n))
    # 3 fit (the last slot is the gap's), 6 are dropped.
    assert (sub.dropped, sub.gaps) == (6, 1)
    assert sub.stats()["queued"] == 4

    rec.release()
    await bus.drain()
    assert seen(rec.items) == [0, 1, 2, 3, Gap("slow", missed=6)]

    # Caught up: later items are delivered again.
    bus.publish(answered(10))
    bus.publish(answered(11))
    await bus.drain()
    assert seen(rec.items) == [0, 1, 2, 3, Gap("slow", missed=6), 10, 11]
    assert (sub.dropped, sub.gaps) == (6, 1)

    # A second overflow gives a second gap.
    rec.block()
    bus.publish(answered(12))
    await rec.entered.wait()
    for n in range(13, 21):
        bus.publish(answered(n))
    rec.release()
    await bus.drain()
    bus.publish(answered(21))
    await bus.drain()
    assert seen(rec.items) == [
        *(0, 1, 2, 3, Gap("slow", missed=6), 10, 11),
        *(12, 13, 14, 15, Gap("slow", missed=5), 21),
    ]
    assert (sub.dropped, sub.gaps, sub.failures) == (11, 2, 0)
    assert sub.delivered == len(rec.items)  # the gap markers are handed over too
    assert sub.stats() == {
        "name": "slow",
        "async": True,
        "delivered": 13,
        "dropped": 11,
        "gaps": 2,
        "failures": 0,
        "queued": 0,
    }

    # The synchronous subscriber of the same topic got everything, and no gap.
    assert seen(sync_got) == list(range(22))
    assert (sync_sub.dropped, sync_sub.gaps) == (0, 0)


async def test_overflow_before_start(bus: Bus) -> None:
    rec = Recorder()
    sub = bus.subscribe(CallAnswered, rec.handle, name="early", queue_size=4)
    for n in range(10):
        bus.publish(answered(n))
    assert sub.stats() == {
        "name": "early",
        "async": True,
        "delivered": 0,
        "dropped": 7,
        "gaps": 1,
        "failures": 0,
        "queued": 4,
    }
    bus.start()
    await bus.drain()
    bus.publish(answered(10))
    await bus.drain()
    assert seen(rec.items) == [0, 1, 2, Gap("early", missed=7), 10]


async def test_items_published_while_the_gap_is_handled_are_kept(bus: Bus) -> None:
    """Once the subscriber has taken the gap, the queue accepts items again."""
    gap_taken = asyncio.Event()
    go_on = asyncio.Event()
    got: list[Any] = []

    async def handler(item: Any) -> None:
        got.append(item)
        if isinstance(item, Gap):
            gap_taken.set()
            await go_on.wait()

    sub = bus.subscribe(CallAnswered, handler, name="gappy", queue_size=2)
    for n in range(4):  # before start: 1 fits, 3 dropped
        bus.publish(answered(n))
    bus.start()
    await gap_taken.wait()
    bus.publish(answered(4))
    go_on.set()
    await bus.drain()
    assert seen(got) == [0, Gap("gappy", missed=3), 4]
    assert (sub.dropped, sub.gaps) == (3, 1)


async def test_overflow_of_one_subscriber_does_not_affect_another(bus: Bus) -> None:
    slow = Recorder()
    fast = Recorder()
    slow_sub = bus.subscribe(CallAnswered, slow.handle, name="slow", queue_size=3)
    fast_sub = bus.subscribe(CallAnswered, fast.handle, name="fast", queue_size=100)
    bus.start()
    slow.block()
    bus.publish(answered(0))
    await slow.entered.wait()
    for n in range(1, 6):
        bus.publish(answered(n))
    slow.release()
    await bus.drain()
    assert seen(slow.items) == [0, 1, 2, Gap("slow", missed=3)]
    assert seen(fast.items) == [0, 1, 2, 3, 4, 5]
    assert (slow_sub.dropped, fast_sub.dropped, fast_sub.gaps) == (3, 0, 0)


def test_subscription_is_compared_by_identity() -> None:
    def handler(item: Any) -> None:
        pass

    one = Subscription(name="x", topics=(CallAnswered,), handler=handler)
    two = Subscription(name="x", topics=(CallAnswered,), handler=handler)
    assert one != two
    assert [one, two].index(two) == 1
