"""acd.core agent life cycle: service-API preconditions, the call's way
through an agent (reservation, ring, answer, wrap-up), RONA, timers, engine
restart, and "never two calls at once" under adversarial event sequences."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterable, Sequence

import pytest

from acd.agents import AgentSpec, AgentState
from acd.commands import AgentStateChanged, Command, ConnectCall, ReservationExpired
from acd.core import Acd
from acd.errors import AcdError, InvalidAgentAction, UnknownAgent, UnknownQueue
from acd.queues import AcdSettings, QueueSpec

A = AgentState


def connects(commands: Iterable[Command]) -> list[tuple[str, str]]:
    return [(c.call_id, c.agent) for c in commands if isinstance(c, ConnectCall)]


def changes(commands: Iterable[Command]) -> list[tuple[str, AgentState, AgentState, str | None]]:
    return [(c.agent, c.old, c.new, c.reason) for c in commands if isinstance(c, AgentStateChanged)]


def make(agent_ids: Sequence[str] = ("1001", "1002"), **settings: object) -> Acd:
    return Acd(
        queues=[QueueSpec("q", "12345"), QueueSpec("other", "96181")],
        agents=[AgentSpec(a, f"agent {a}", queues=("q",)) for a in agent_ids],
        settings=AcdSettings(**settings),  # type: ignore[arg-type]
    )


def enqueue(
    acd: Acd, call_id: str, at: float, *, number: str = "", queue: str = "q"
) -> list[Command]:
    return acd.enqueue(call_id, queue=queue, line="12345", caller_number=number, priority=0, at=at)


# -- service API preconditions ---------------------------------------------------------


def test_agent_actions_check_preconditions_before_changing_anything():
    acd = make()
    with pytest.raises(UnknownAgent, match="'9999'"):
        acd.login("9999", 0.0)
    with pytest.raises(InvalidAgentAction, match="1001 is LOGGED_OUT: log in before pausing"):
        acd.pause("1001", "lunch", 0.0)
    with pytest.raises(InvalidAgentAction, match="already logged out"):
        acd.logout("1001", 0.0)
    with pytest.raises(InvalidAgentAction, match="not PAUSED: nothing to resume"):
        acd.resume("1001", 0.0)
    with pytest.raises(InvalidAgentAction, match="not in WRAP_UP"):
        acd.wrapup_done("1001", 0.0)
    acd.login("1001", 1.0)
    with pytest.raises(InvalidAgentAction, match=r"already logged in \(AVAILABLE\)"):
        acd.login("1001", 2.0)
    with pytest.raises(InvalidAgentAction, match="needs a reason"):
        acd.pause("1001", "", 2.0)
    enqueue(acd, "c", 3.0)
    acd.ringing("c", "1001", 3.5)
    with pytest.raises(InvalidAgentAction, match="1001 is RINGING with call c: finish the call"):
        acd.logout("1001", 4.0)
    acd.answered("c", "1001", 5.0)
    with pytest.raises(InvalidAgentAction, match="ON_CALL"):
        acd.logout("1001", 6.0)
    agent = acd.agents["1001"]
    assert (agent.state, agent.state_since, agent.call_id) == (A.ON_CALL, 5.0, "c")
    assert issubclass(UnknownAgent, AcdError) and issubclass(InvalidAgentAction, AcdError)
    with pytest.raises(UnknownQueue):
        enqueue(acd, "x", 7.0, queue="nope")
    assert acd.audit() == []


def test_configuration_errors_name_the_bad_key():
    with pytest.raises(UnknownQueue, match="'gone' \\(overflow_queue of queue q\\)"):
        Acd(queues=[QueueSpec("q", "l", overflow_queue="gone", overflow_wait_s=1)], agents=[])
    with pytest.raises(UnknownQueue, match="home queue of agent 1001"):
        Acd(queues=[QueueSpec("q", "l")], agents=[AgentSpec("1001", "a", queues=("x",))])
    with pytest.raises(ValueError, match="configured twice"):
        Acd(queues=[QueueSpec("q", "l")], agents=[AgentSpec("1", "a"), AgentSpec("1", "b")])
    with pytest.raises(ValueError, match="level 11 is outside 1..10"):
        AgentSpec("1001", "a", skills={"tax": 11})
    with pytest.raises(ValueError, match="min_level 0"):
        QueueSpec("q", "l", skill="tax", min_level=0)
    with pytest.raises(ValueError, match="wrapup_s"):
        AcdSettings(wrapup_s=-1)


# -- a call's way through an agent ---------------------------------------------------------


def test_call_life_cycle_commands_and_states():
    acd = make(wrapup_s=10.0)
    acd.login("1001", 0.0)
    out = enqueue(acd, "c", 1.0, number="13800000001")
    assert out == [
        AgentStateChanged("1001", A.AVAILABLE, A.RESERVED, 1.0, None, "routed"),
        ConnectCall("c", "1001", "q", 1.0),
    ]
    assert acd.next_deadline() == 6.0  # the reservation
    assert changes(acd.ringing("c", "1001", 1.2)) == [("1001", A.RESERVED, A.RINGING, None)]
    assert acd.next_deadline() is None  # the dialplan's Dial times the ring out
    assert changes(acd.answered("c", "1001", 4.0)) == [("1001", A.RINGING, A.ON_CALL, None)]
    assert acd.waiting() == [] and acd.agents["1001"].calls_handled == 1
    assert changes(acd.agent_released("1001", 100.0)) == [("1001", A.ON_CALL, A.WRAP_UP, None)]
    assert acd.agents["1001"].call_id == "c"  # wrap-up belongs to the call
    assert acd.next_deadline() == 110.0
    assert acd.tick(109.9) == []
    assert acd.tick(115.0) == [
        AgentStateChanged("1001", A.WRAP_UP, A.AVAILABLE, 110.0, None, "wrap-up timeout")
    ]
    agent = acd.agents["1001"]
    assert (agent.call_id, agent.idle_since, agent.state_since) == (None, 110.0, 110.0)
    assert acd.next_deadline() is None
    assert acd.audit() == []


def test_wrapup_done_ends_wrap_up_early_and_zero_wrap_up_skips_it():
    acd = make(wrapup_s=30.0)
    acd.login("1001", 0.0)
    enqueue(acd, "a", 1.0)
    acd.answered("a", "1001", 2.0)
    acd.agent_released("1001", 50.0)
    enqueue(acd, "b", 51.0)  # waits: 1001 is wrapping up
    out = acd.wrapup_done("1001", 55.0)
    assert changes(out) == [
        ("1001", A.WRAP_UP, A.AVAILABLE, None),
        ("1001", A.AVAILABLE, A.RESERVED, None),
    ]
    assert connects(out) == [("b", "1001")]
    assert acd.tick(80.0) == [  # the old wrap-up timer is void; the reservation is not
        ReservationExpired("b", "1001", 60.0),
        AgentStateChanged("1001", A.RESERVED, A.AVAILABLE, 60.0, None, "reservation expired"),
        AgentStateChanged("1001", A.AVAILABLE, A.RESERVED, 80.0, None, "routed"),
        ConnectCall("b", "1001", "q", 80.0),
    ]

    quick = make(wrapup_s=0.0)
    quick.login("1001", 0.0)
    enqueue(quick, "a", 1.0)
    quick.answered("a", "1001", 2.0)
    assert changes(quick.agent_released("1001", 9.0)) == [("1001", A.ON_CALL, A.AVAILABLE, None)]


def test_rona_pauses_the_agent_with_the_reason_and_never_offers_it_that_call_again():
    acd = make(rona_pause_reason="no answer")
    acd.login("1001", 0.0)
    acd.login("1002", 5.0)
    enqueue(acd, "c", 10.0)
    acd.ringing("c", "1001", 10.1)
    acd.set_busy_external("1002", True, 10.2)
    out = acd.no_answer("c", "1001", 25.1)
    assert out == [
        AgentStateChanged("1001", A.RINGING, A.PAUSED, 25.1, "no answer", "no_answer"),
    ]
    agent = acd.agents["1001"]
    assert (agent.pause_reason, agent.call_id) == ("no answer", None)
    assert acd.waiting()[0].skip_agents == {"1001"}
    # Back from the pause, 1001 is the only free agent but is skipped for "c".
    assert acd.resume("1001", 30.0)[1:] == []
    assert connects(acd.set_busy_external("1002", False, 31.0)) == [("c", "1002")]
    # A second no_answer for the same ring is stale: ignored.
    assert acd.no_answer("c", "1001", 31.5) == []


def test_reservation_timeout_releases_both_and_restarts_the_agents_idle_time():
    acd = make(reservation_timeout_s=5.0)
    acd.login("1001", 0.0)
    acd.login("1002", 3.0)
    enqueue(acd, "c", 10.0)  # -> 1001
    assert acd.next_deadline() == 15.0
    out = acd.tick(15.0)
    assert out == [
        ReservationExpired("c", "1001", 15.0),
        AgentStateChanged("1001", A.RESERVED, A.AVAILABLE, 15.0, None, "reservation expired"),
        AgentStateChanged("1002", A.AVAILABLE, A.RESERVED, 15.0, None, "routed"),
        ConnectCall("c", "1002", "q", 15.0),
    ]
    assert acd.agents["1001"].idle_since == 15.0
    assert acd.waiting() == []  # queued_at kept for the KPIs:
    assert acd.agents["1002"].call_id == "c"
    # A late ringing from the first attempt changes nothing.
    assert acd.ringing("c", "1001", 15.5) == []


def test_caller_leaving_releases_the_reserved_agent_keeping_its_idle_time():
    acd = make()
    acd.login("1001", 0.0)
    acd.login("1002", 1.0)
    enqueue(acd, "waiting", 2.0)  # -> 1001
    acd.ringing("waiting", "1001", 2.1)
    assert changes(acd.caller_left("waiting", 5.0)) == [("1001", A.RINGING, A.AVAILABLE, None)]
    assert acd.agents["1001"].idle_since == 0.0  # still first in line
    assert connects(enqueue(acd, "next", 6.0)) == [("next", "1001")]
    acd.answered("next", "1001", 7.0)
    # The caller hangs up while talking: the agent goes to wrap-up.
    assert changes(acd.caller_left("next", 60.0)) == [("1001", A.ON_CALL, A.WRAP_UP, None)]
    enqueue(acd, "abandons", 61.0)  # -> 1002
    acd.logout("1002", 61.5)  # back to the queue; nobody free
    assert [c.call_id for c in acd.waiting()] == ["abandons"]
    assert acd.caller_left("abandons", 62.0) == []
    assert acd.waiting() == [] and acd.audit() == []


def test_logout_while_reserved_puts_the_call_back_at_the_head_and_routes_it():
    acd = make(["1001", "1002", "1003"])
    acd.login("1001", 0.0)
    enqueue(acd, "first", 1.0)
    enqueue(acd, "second", 2.0)
    acd.login("1002", 3.0)  # takes "second"
    out = acd.logout("1001", 4.0)
    assert changes(out) == [("1001", A.RESERVED, A.LOGGED_OUT, None)]
    assert [c.call_id for c in acd.waiting()] == ["first"]
    assert connects(acd.login("1003", 5.0)) == [("first", "1003")]
    # A late answer from the logged-out 1001 takes "first" out of the queue;
    # 1003, reserved for it, is free again.
    assert changes(acd.answered("first", "1001", 6.0)) == [("1003", A.RESERVED, A.AVAILABLE, None)]
    assert acd.agents["1001"].state is A.LOGGED_OUT


def test_a_busy_phone_is_never_offered_a_call():
    acd = make(["1001"])
    acd.login("1001", 0.0)
    acd.set_busy_external("1001", True, 1.0)  # e.g. app_queue fallback rang it
    assert enqueue(acd, "c", 2.0) == []
    assert acd.agents["1001"].state is A.AVAILABLE
    assert acd.set_busy_external("1001", True, 3.0) == []
    out = acd.set_busy_external("1001", False, 30.0)
    assert connects(out) == [("c", "1001")]
    assert acd.agents["1001"].idle_since == 30.0


def test_pause_asked_during_a_call_applies_after_wrap_up_and_resume_cancels_it():
    acd = make(wrapup_s=10.0)
    acd.login("1001", 0.0)
    enqueue(acd, "a", 1.0)
    assert acd.pause("1001", "break", 1.5) == []  # RESERVED: remembered
    acd.answered("a", "1001", 2.0)
    assert acd.agents["1001"].pending_pause == "break"
    acd.agent_released("1001", 50.0)
    assert changes(acd.tick(60.0)) == [("1001", A.WRAP_UP, A.PAUSED, "break")]
    acd.resume("1001", 70.0)
    enqueue(acd, "b", 71.0)
    acd.answered("b", "1001", 72.0)
    acd.pause("1001", "toilet", 73.0)
    assert acd.resume("1001", 74.0) == []  # cancels the pending pause
    acd.agent_released("1001", 80.0)
    assert changes(acd.wrapup_done("1001", 81.0)) == [("1001", A.WRAP_UP, A.AVAILABLE, None)]
    # Pausing in wrap-up ends it at once; a new reason replaces the old one.
    enqueue(acd, "c", 82.0)
    acd.answered("c", "1001", 83.0)
    acd.agent_released("1001", 90.0)
    assert changes(acd.pause("1001", "lunch", 91.0)) == [("1001", A.WRAP_UP, A.PAUSED, "lunch")]
    assert changes(acd.pause("1001", "meeting", 92.0)) == [("1001", A.PAUSED, A.PAUSED, "meeting")]


def test_a_pause_asked_while_reserved_applies_when_the_reservation_ends_but_rona_wins():
    acd = make(["1001"], reservation_timeout_s=5.0)
    acd.login("1001", 0.0)
    enqueue(acd, "c", 1.0)
    assert acd.pause("1001", "break", 2.0) == []
    assert acd.tick(6.0) == [
        ReservationExpired("c", "1001", 6.0),
        AgentStateChanged("1001", A.RESERVED, A.PAUSED, 6.0, "break", "reservation expired"),
    ]
    assert [c.call_id for c in acd.waiting()] == ["c"]
    assert connects(acd.resume("1001", 7.0)) == [("c", "1001")]
    acd.pause("1001", "break", 8.0)
    # A RONA is reported as such (KPIs count RONA pauses), not as the asked pause.
    assert changes(acd.no_answer("c", "1001", 9.0)) == [("1001", A.RESERVED, A.PAUSED, "no answer")]
    assert acd.agents["1001"].pending_pause is None


def test_answer_by_another_agent_than_the_one_reserved_follows_the_switch():
    acd = make(["1001", "1002", "1003"])
    for agent_id, at in (("1001", 0.0), ("1002", 1.0), ("1003", 2.0)):
        acd.login(agent_id, at)
    enqueue(acd, "x", 10.0)  # -> 1001
    enqueue(acd, "y", 11.0)  # -> 1002
    acd.ringing("x", "1001", 10.5)
    # 1002 (reserved for "y") answers "x": 1002 talks on "x", 1001 is released
    # (keeping its idle time: still first in line) and "y" goes back to the
    # queue and on to it.
    out = acd.answered("x", "1002", 12.0)
    assert changes(out) == [
        ("1001", A.RINGING, A.AVAILABLE, None),
        ("1002", A.RESERVED, A.ON_CALL, None),
        ("1001", A.AVAILABLE, A.RESERVED, None),
    ]
    assert connects(out) == [("y", "1001")]
    assert [(a.agent_id, a.call_id) for a in acd.agents.values()] == [
        ("1001", "y"),
        ("1002", "x"),
        ("1003", None),
    ]
    # Answers by an agent already on another call, or by a stranger, only
    # take the call out of the queue.
    enqueue(acd, "z", 13.0)  # -> 1003
    assert changes(acd.answered("z", "1002", 14.0)) == [("1003", A.RESERVED, A.AVAILABLE, None)]
    assert acd.agents["1002"].call_id == "x"
    enqueue(acd, "w", 15.0)  # -> 1003
    assert changes(acd.answered("w", "5555", 16.0)) == [("1003", A.RESERVED, A.AVAILABLE, None)]
    assert acd.waiting() == [] and acd.audit() == []


def test_transfer_back_to_a_queue_requeues_the_answered_call_with_its_first_entry():
    acd = make(["1001", "1002"])
    acd.login("1001", 0.0)
    enqueue(acd, "c", 5.0)
    acd.answered("c", "1001", 6.0)
    enqueue(acd, "later", 7.0)
    acd.agent_released("1001", 60.0)  # blind transfer: the agent leg leaves
    out = acd.requeue("c", 60.1, queue="other")
    assert out == []
    assert [(c.call_id, c.queue, c.queued_at) for c in acd.waiting()] == [
        ("c", "other", 5.0),
        ("later", "q", 7.0),
    ]
    assert acd.position("c") == 1
    assert acd.requeue("never-seen", 61.0) == []


def test_engine_events_for_unknown_ids_do_nothing():
    acd = make()
    acd.login("1001", 0.0)
    assert acd.ringing("nope", "1001", 1.0) == []
    assert acd.ringing("nope", "9999", 1.0) == []
    assert acd.answered("nope", "9999", 1.0) == []
    assert acd.no_answer("nope", "1001", 1.0) == []
    assert acd.agent_released("9999", 1.0) == []
    assert acd.agent_released("1001", 1.0) == []  # not on a call
    assert acd.caller_left("nope", 1.0) == []
    assert acd.set_busy_external("9999", True, 1.0) == []
    assert acd.agents["1001"].state is A.AVAILABLE
    assert acd.audit() == []


# -- restart ------------------------------------------------------------------------------


def test_restore_and_adopt_rebuild_agents_and_calls_after_a_restart():
    acd = make(["1001", "1002", "1003"])
    assert acd.restore_agent("1001", A.AVAILABLE, at=100.0) == []
    acd.restore_agent("1002", A.PAUSED, at=90.0, pause_reason="lunch")
    acd.restore_agent("1003", A.PAUSED, at=95.0, pause_reason="training")
    with pytest.raises(InvalidAgentAction, match="only LOGGED_OUT, AVAILABLE or PAUSED"):
        acd.restore_agent("1001", A.ON_CALL, at=100.0)
    assert acd.agents["1002"].pause_reason == "lunch"
    # 1001 talks since before the restart; 1003 (paused) is ringing; one caller waits.
    out = acd.adopt_call(
        "talking",
        queue="q",
        line="12345",
        caller_number="1",
        priority=0,
        queued_at=50.0,
        at=101.0,
        agent="1001",
        answered_at=60.0,
    )
    assert changes(out) == [("1001", A.AVAILABLE, A.ON_CALL, None)]
    acd.adopt_call(
        "ringing",
        queue="q",
        line="12345",
        caller_number="2",
        priority=0,
        queued_at=70.0,
        at=101.0,
        agent="1003",
        agent_state=A.RINGING,
    )
    out = acd.adopt_call(
        "waiting",
        queue="q",
        line="12345",
        caller_number="3",
        priority=0,
        queued_at=80.0,
        at=101.0,
    )
    assert out == [] and acd.position("waiting") == 1
    assert acd.waiting()[0].queued_at == 80.0
    with pytest.raises(InvalidAgentAction, match="restore agents before adopting calls"):
        acd.restore_agent("1001", A.AVAILABLE, at=102.0)
    # The adopted ring ends unanswered: RONA as usual, and the pause is RONA's.
    assert changes(acd.no_answer("ringing", "1003", 110.0)) == [
        ("1003", A.RINGING, A.PAUSED, "no answer")
    ]
    acd.agent_released("1001", 200.0)
    # The requeued call entered the queue first (70 < 80): it is served first.
    assert acd.tick(210.0)[-1] == ConnectCall("ringing", "1001", "q", 210.0)
    assert acd.average_handle_time_s("q") == 150.0  # answered 60 -> wrap-up end 210
    assert acd.audit() == []


# -- queries ------------------------------------------------------------------------------


def test_agents_by_state_and_a_json_snapshot():
    acd = Acd(
        queues=[QueueSpec("q", "12345"), QueueSpec("tax", "12345", skill="tax")],
        agents=[
            AgentSpec("1001", "Li", queues=("q",)),
            AgentSpec("1002", "Wang", skills={"tax": 5}),
            AgentSpec("1003", "Zhang", skills={"tax": 5}, queues=("q",)),
        ],
    )
    acd.login("1001", 0.0)
    acd.login("1003", 0.0)
    acd.pause("1003", "lunch", 1.0)
    enqueue(acd, "a", 2.0)  # -> 1001
    enqueue(acd, "b", 3.0, queue="tax")
    assert acd.agents_by_state("tax")[A.PAUSED] == 1
    assert acd.agents_by_state("tax")[A.LOGGED_OUT] == 1
    counts = acd.agents_by_state()
    assert {s: n for s, n in counts.items() if n} == {A.RESERVED: 1, A.PAUSED: 1, A.LOGGED_OUT: 1}
    snap = json.loads(json.dumps(acd.snapshot(10.0)))
    assert snap["queues"]["tax"]["waiting"] == 1
    assert snap["queues"]["tax"]["longest_wait_s"] == 7.0
    assert snap["queues"]["tax"]["estimated_wait_s"] is None  # nobody serving: unknown
    assert snap["queues"]["q"]["offered"] == 1
    assert snap["queues"]["q"]["longest_wait_s"] == 8.0
    assert snap["agents"]["1003"]["state"] == "PAUSED"
    assert snap["agents"]["1003"]["pause_reason"] == "lunch"
    assert snap["agents"]["1001"]["call_id"] == "a"
    assert snap["agents"]["1001"]["deadline"] == 7.0


# -- never two calls at once -----------------------------------------------------------------


def test_adversarial_sequence_never_gives_an_agent_two_calls():
    """Bursts, duplicates, answers by the wrong agent and events after logout."""
    acd = make(["1001", "1002"])
    acd.login("1001", 0.0)
    out: list[Command] = []
    for i in range(20):
        out += enqueue(acd, f"c{i}", 1.0 + i / 100)
        out += enqueue(acd, f"c{i}", 1.0 + i / 100)  # duplicate
    assert connects(out) == [("c0", "1001")]
    assert acd.ringing("c0", "1001", 2.0) and acd.ringing("c0", "1001", 2.0) == []
    assert acd.answered("c5", "1001", 3.0)  # 1001 picks up c5 instead (switch truth)
    assert acd.answered("c5", "1001", 3.0) == []  # duplicate
    assert [c.call_id for c in acd.waiting()][:2] == ["c0", "c1"]
    out = acd.login("1002", 4.0)
    assert connects(out) == [("c0", "1002")]
    acd.logout("1002", 5.0)  # while reserved
    assert acd.ringing("c0", "1002", 5.1) == []  # after logout: ignored
    assert acd.no_answer("c0", "1002", 5.2) == []
    assert acd.answered("c1", "1002", 5.3) == []  # logged out: not tracked, c1 leaves
    assert acd.agents["1002"].state is A.LOGGED_OUT
    assert "c1" not in [c.call_id for c in acd.waiting()]
    assert acd.agent_released("1002", 5.4) == []
    assert acd.agents["1001"].call_id == "c5"
    assert acd.audit() == []


def test_random_event_storm_keeps_every_invariant():
    """Thousands of plausible and implausible events; after each one the
    indexes agree with the agents and calls, every ConnectCall goes to an
    agent that was AVAILABLE with a free phone, an agent gets at most one
    ConnectCall until it is available again, a call is offered to one agent
    at a time and never to an agent that let it ring out."""
    rng = random.Random(12345)
    agent_ids = [str(1001 + i) for i in range(12)]
    queues = [
        QueueSpec("q", "12345", callback_wait_s=1200.0),
        QueueSpec("tax", "12345", skill="tax", min_level=3),
        QueueSpec(
            "other", "96181", overflow_queue="q", overflow_wait_s=900.0, callback_wait_s=1500.0
        ),
    ]
    specs = [
        AgentSpec(
            a, a, skills={"tax": rng.randint(1, 10)}, queues=("q",) if i % 3 else ("q", "other")
        )
        for i, a in enumerate(agent_ids)
    ]
    acd = Acd(
        queues=queues,
        agents=specs,
        settings=AcdSettings(
            wrapup_s=3.0, reservation_timeout_s=2.0, repeat_caller_wait_s=4.0, default_aht_s=300.0
        ),
    )
    shadow = dict.fromkeys(agent_ids, A.LOGGED_OUT)
    busy = dict.fromkeys(agent_ids, False)
    holding: dict[str, str] = {}  # agent -> call it was sent (ConnectCall) and still holds
    offered_to: dict[str, str] = {}  # call -> agent
    rona: set[tuple[str, str]] = set()
    calls: list[str] = []
    numbers = [f"1380000{n:04d}" for n in range(15)] + ["anonymous"]
    now = 0.0
    seen: Counter[str] = Counter()

    def apply(commands: list[Command], action: str) -> None:
        for c in commands:
            seen[c.event if isinstance(c, AgentStateChanged) else type(c).__name__] += 1
            if isinstance(c, AgentStateChanged):
                assert c.old is shadow[c.agent], (action, c)
                shadow[c.agent] = c.new
                if c.old in (A.RESERVED, A.RINGING) and c.agent in holding:
                    offered_to.pop(holding.pop(c.agent), None)
                if c.new is A.PAUSED and c.event == "no_answer":
                    rona.add((action.split()[1], c.agent))
            elif isinstance(c, ConnectCall):
                assert shadow[c.agent] is A.RESERVED, (action, c)
                assert not busy[c.agent], (action, c)
                assert c.agent not in holding, (action, c, holding)
                assert c.call_id not in offered_to, (action, c, offered_to)
                assert (c.call_id, c.agent) not in rona, (action, c)
                holding[c.agent] = c.call_id
                offered_to[c.call_id] = c.agent

    for step in range(3000):
        now += rng.choice((0.0, 0.1, 0.5, 1.0, 3.0))
        roll = rng.random()
        agent = rng.choice(agent_ids)
        call = rng.choice(calls) if calls and rng.random() < 0.9 else f"ghost{step}"
        if offered_to and rng.random() < 0.5:
            call = rng.choice(list(offered_to))
        if call in offered_to and rng.random() < 0.7:
            agent = offered_to[call]  # mostly, events name the right agent
        if roll < 0.16:
            call = f"call{step}"
            calls.append(call)
            action = f"enqueue {call}"
            queue = rng.choice(("q", "q", "tax", "other"))
            out = acd.enqueue(
                call,
                queue=queue,
                line="l",
                caller_number=rng.choice(numbers),
                priority=rng.choice((0, 0, 0, 5)),
                at=now,
            )
        elif roll < 0.28:
            action, out = f"ringing {call}", acd.ringing(call, agent, now)
        elif roll < 0.40:
            action, out = f"answered {call}", acd.answered(call, agent, now)
        elif roll < 0.47:
            action, out = f"no_answer {call}", acd.no_answer(call, agent, now)
        elif roll < 0.55:
            action, out = f"released {agent}", acd.agent_released(agent, now)
        elif roll < 0.62:
            action, out = f"left {call}", acd.caller_left(call, now)
        elif roll < 0.65:
            action, out = f"requeue {call}", acd.requeue(call, now)
        elif roll < 0.70:
            flag = rng.random() < 0.5
            action, out = f"busy {agent}", acd.set_busy_external(agent, flag, now)
            busy[agent] = flag
        elif roll < 0.90:
            name = rng.choice(("login", "login", "logout", "pause", "resume", "wrapup_done"))
            action = f"{name} {agent}"
            try:
                if name == "pause":
                    out = acd.pause(agent, rng.choice(("lunch", "toilet")), now)
                else:
                    out = getattr(acd, name)(agent, now)
            except InvalidAgentAction:
                out = []
        else:
            action, out = "tick -", acd.tick(now)
        apply(out, action)
        assert acd.audit() == [], (step, action)
        for agent_id, state in shadow.items():
            assert acd.agents[agent_id].state is state
    # The storm did reach every rule.
    kinds = (
        "no_answer",
        "ReservationExpired",
        "CallOverflowed",
        "OfferCallback",
        "answered elsewhere",
        "ring ended",
        "wrap-up timeout",
        "caller left",
    )
    assert seen["ConnectCall"] > 50 and all(seen[kind] > 0 for kind in kinds), seen


def test_a_late_requeue_from_an_earlier_ring_does_not_release_the_new_reservation():
    """Engine side: the ring on 1001 ended and the call was offered to 1002;
    a second "back in queue" report of that old ring arrives while 1002 is
    only RESERVED (the Redirect is on its way). It must not release 1002 and
    offer the call again: each offer interrupts the ring before it."""
    acd = make(("1001", "1002"))
    acd.login("1001", 0.0)
    acd.login("1002", 1.0)
    assert connects(enqueue(acd, "c", 2.0)) == [("c", "1001")]
    acd.ringing("c", "1001", 2.1)
    assert connects(acd.requeue("c", 3.0)) == [("c", "1002")]  # ring ended: next agent
    assert acd.agents["1001"].state is AgentState.AVAILABLE

    assert connects(acd.requeue("c", 3.1)) == []  # the stale report
    assert acd.agents["1002"].state is AgentState.RESERVED
    assert acd.agents["1002"].call_id == "c"
    assert acd.audit() == []

    acd.ringing("c", "1002", 3.2)
    assert connects(acd.requeue("c", 4.0)) == [("c", "1001")]  # a real ring ended
    assert acd.agents["1002"].state is AgentState.AVAILABLE
