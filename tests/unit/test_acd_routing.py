"""acd.core routing rules: service order, policies, repeat callers (首接负责),
overflow / callback and the estimated wait. Time is passed in; nothing sleeps."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from acd.agents import Agent, AgentSpec, AgentState
from acd.commands import CallOverflowed, Command, ConnectCall, OfferCallback
from acd.core import Acd
from acd.queues import AcdSettings, QueueSpec
from acd.routing import LongestIdle, RoutingPolicy, SkillsLevel

DAY = 86400.0


def connects(commands: Iterable[Command]) -> list[tuple[str, str]]:
    """(call, agent) of every ConnectCall, in order."""
    return [(c.call_id, c.agent) for c in commands if isinstance(c, ConnectCall)]


def make(
    agents: Sequence[AgentSpec] = (),
    queues: Sequence[QueueSpec] = (QueueSpec("q", "12345"),),
    **settings: object,
) -> Acd:
    return Acd(queues=queues, agents=agents, settings=AcdSettings(**settings))  # type: ignore[arg-type]


def home(agent_id: str, *queues: str, skills: dict[str, int] | None = None) -> AgentSpec:
    return AgentSpec(agent_id, f"agent {agent_id}", skills=skills or {}, queues=queues or ("q",))


def enqueue(
    acd: Acd,
    call_id: str,
    at: float,
    *,
    queue: str = "q",
    priority: int = 0,
    number: str = "",
) -> list[Command]:
    return acd.enqueue(
        call_id, queue=queue, line="12345", caller_number=number, priority=priority, at=at
    )


def talk(acd: Acd, call_id: str, agent_id: str, at: float) -> None:
    """Ring, answer and hang up: the agent ends in WRAP_UP at ``at + 2``."""
    acd.ringing(call_id, agent_id, at)
    acd.answered(call_id, agent_id, at + 1)
    acd.agent_released(agent_id, at + 2)


# -- order of waiting calls ----------------------------------------------------------


def test_higher_priority_first_then_first_entry():
    acd = make([home("1001")])
    enqueue(acd, "old-normal", 1.0)
    enqueue(acd, "urgent", 2.0, priority=5)
    enqueue(acd, "new-normal", 3.0)
    assert [c.call_id for c in acd.waiting("q")] == ["urgent", "old-normal", "new-normal"]
    assert [acd.position(c) for c in ("urgent", "old-normal", "new-normal")] == [1, 2, 3]
    assert connects(acd.login("1001", 4.0)) == [("urgent", "1001")]
    assert acd.position("urgent") is None  # offered: no longer waiting
    assert acd.position("old-normal") == 1


def test_same_entry_time_is_served_in_arrival_order():
    acd = make([home("1001")])
    for call_id in ("b", "a", "c"):
        enqueue(acd, call_id, 10.0)
    assert [c.call_id for c in acd.waiting()] == ["b", "a", "c"]
    assert [c.enqueued_seq for c in acd.waiting()] == [1, 2, 3]


def test_rona_call_goes_back_to_the_head_of_its_priority_band():
    acd = make([home("1001"), home("1002")])
    acd.login("1001", 0.0)
    assert connects(enqueue(acd, "first", 1.0)) == [("first", "1001")]
    enqueue(acd, "second", 2.0)
    enqueue(acd, "vip", 3.0, priority=9)
    acd.ringing("first", "1001", 1.5)
    acd.no_answer("first", "1001", 16.5)
    # Back in front of "second" (earlier queued_at), still behind the priority caller.
    assert [c.call_id for c in acd.waiting()] == ["vip", "first", "second"]
    assert acd.waiting()[1].queued_at == 1.0
    assert connects(acd.login("1002", 20.0)) == [("vip", "1002")]


def test_requeue_after_a_cancelled_ring_keeps_the_first_entry_and_releases_the_agent():
    acd = make([home("1001"), home("1002")])
    acd.login("1001", 0.0)
    acd.login("1002", 5.0)
    enqueue(acd, "a", 10.0)  # -> 1001 (idle longest)
    enqueue(acd, "b", 11.0)  # -> 1002
    acd.ringing("a", "1001", 10.5)
    out = acd.requeue("a", 12.0)
    # 1001 is free again with its idle time restarted, and takes "a" back: the
    # only free agent (1002 is busy with "b").
    assert connects(out) == [("a", "1001")]
    assert acd.agents["1001"].idle_since == 12.0
    assert acd.agents["1001"].state is AgentState.RESERVED


# -- policies ----------------------------------------------------------------------------


def test_longest_idle_agent_gets_the_call():
    acd = make([home("1001"), home("1002"), home("1003")])
    acd.login("1002", 5.0)
    acd.login("1001", 20.0)
    acd.login("1003", 10.0)
    assert connects(enqueue(acd, "a", 30.0)) == [("a", "1002")]
    assert connects(enqueue(acd, "b", 31.0)) == [("b", "1003")]
    # 1002 ends its call after 1001 and 1003: it goes to the back of the line.
    talk(acd, "a", "1002", 32.0)
    acd.wrapup_done("1002", 40.0)
    assert acd.agents["1002"].idle_since == 40.0
    assert connects(enqueue(acd, "c", 41.0)) == [("c", "1001")]


def _skills_acd(level_first: bool) -> Acd:
    queue = QueueSpec("tax", "12345", skill="tax", min_level=3)
    agents = [
        AgentSpec("1001", "junior", skills={"tax": 3}),
        AgentSpec("1002", "expert, idle shorter", skills={"tax": 9}),
        AgentSpec("1003", "expert, idle longer", skills={"tax": 9}),
        AgentSpec("1004", "below min_level", skills={"tax": 2}),
        AgentSpec("1005", "home queue, no skill", queues=("tax",)),
    ]
    acd = make(agents, queues=[queue], level_first=level_first)
    for agent_id, at in (("1001", 1.0), ("1004", 0.0), ("1005", 0.5), ("1003", 2.0), ("1002", 3.0)):
        acd.login(agent_id, at)
    return acd


def test_skills_policy_highest_level_first_then_longest_idle():
    acd = _skills_acd(level_first=True)
    assert isinstance(acd.policy, SkillsLevel)
    out = [connects(enqueue(acd, f"c{i}", 10.0 + i, queue="tax")) for i in range(5)]
    # Level 9 (longest idle first), then level 3, then the home-queue agent
    # without the skill (level 0); 1004 (level 2 < min_level 3) never serves.
    assert out == [
        [("c0", "1003")],
        [("c1", "1002")],
        [("c2", "1001")],
        [("c3", "1005")],
        [],
    ]
    assert acd.agents["1004"].state is AgentState.AVAILABLE


def test_level_first_off_is_longest_idle_among_the_qualified():
    acd = _skills_acd(level_first=False)
    out = [connects(enqueue(acd, f"c{i}", 10.0 + i, queue="tax")) for i in range(4)]
    assert out == [[("c0", "1005")], [("c1", "1001")], [("c2", "1003")], [("c3", "1002")]]


def test_policy_is_pluggable_and_keys_are_not_recomputed_per_decision():
    class FewestCalls:
        def __init__(self) -> None:
            self.keys_computed = 0

        def agent_key(self, agent: Agent, queue: QueueSpec) -> tuple[float, ...]:
            self.keys_computed += 1
            return (agent.calls_handled, agent.idle_since)

    policy = FewestCalls()
    checked: RoutingPolicy = policy  # satisfies the Protocol
    assert checked is policy
    agents = [home(str(1000 + i)) for i in range(1, 201)]
    acd = Acd(queues=[QueueSpec("q", "12345")], agents=agents, policy=policy)
    for i, spec in enumerate(agents):
        acd.login(spec.agent_id, float(i))
    assert policy.keys_computed == 200  # once per agent becoming available
    out = enqueue(acd, "a", 500.0)
    # The decision reads a heap: no key computed, no scan of the 200 agents.
    assert policy.keys_computed == 200
    assert connects(out) == [("a", "1001")]


def test_longest_idle_and_skills_level_keys():
    agent = Agent(AgentSpec("1001", "x", skills={"s": 7}), idle_since=42.0)
    skilled = QueueSpec("q", "l", skill="s")
    assert LongestIdle().agent_key(agent, skilled) == (42.0,)
    assert SkillsLevel().agent_key(agent, skilled) == (-7, 42.0)
    assert SkillsLevel(level_first=False).agent_key(agent, skilled) == (42.0,)
    assert SkillsLevel().agent_key(agent, QueueSpec("p", "l")) == (0, 42.0)


def test_agent_serving_two_queues_takes_the_oldest_call_across_them():
    queues = [QueueSpec("a", "l"), QueueSpec("b", "l"), QueueSpec("c", "l")]
    acd = make([home("1001", "a", "b")], queues=queues)
    enqueue(acd, "b-old", 1.0, queue="b")
    enqueue(acd, "a-new", 2.0, queue="a")
    enqueue(acd, "c-oldest", 0.5, queue="c")  # not served by 1001
    assert connects(acd.login("1001", 3.0)) == [("b-old", "1001")]
    talk(acd, "b-old", "1001", 4.0)
    enqueue(acd, "b-urgent", 7.0, queue="b", priority=3)
    assert connects(acd.wrapup_done("1001", 8.0)) == [("b-urgent", "1001")]


def test_a_call_every_free_agent_let_ring_out_does_not_block_the_calls_behind_it():
    acd = make([home("1001"), home("1002")])
    acd.login("1001", 0.0)
    enqueue(acd, "head", 1.0)
    enqueue(acd, "behind", 2.0)
    acd.no_answer("head", "1001", 16.0)
    out = acd.resume("1001", 20.0)
    assert connects(out) == [("behind", "1001")]
    assert [c.call_id for c in acd.waiting()] == ["head"]
    assert connects(acd.login("1002", 21.0)) == [("head", "1002")]


def test_many_free_agents_and_a_burst_of_calls_are_paired_in_order():
    acd = make([home(str(1000 + i)) for i in range(1, 6)])
    for i in range(1, 6):
        acd.login(str(1000 + i), float(i))
    out: list[tuple[str, str]] = []
    for i in range(7):
        out += connects(enqueue(acd, f"c{i}", 10.0 + i))
    assert out == [(f"c{i}", str(1001 + i)) for i in range(5)]
    assert [c.call_id for c in acd.waiting()] == ["c5", "c6"]


# -- repeat caller (首接负责) -------------------------------------------------------------


def _repeat_acd(**settings: object) -> Acd:
    acd = make([home("1001"), home("1002"), home("1003")], **settings)
    acd.login("1001", 0.0)
    enqueue(acd, "first", 10.0, number="13800000001")
    talk(acd, "first", "1001", 10.0)  # 1001 answered the number at 11.0
    acd.wrapup_done("1001", 20.0)
    acd.login("1002", 1.0)  # idle longer than 1001 from now on
    return acd


def test_repeat_caller_goes_to_the_agent_who_handled_the_number_when_free():
    acd = _repeat_acd()
    assert acd.agents["1002"].idle_since < acd.agents["1001"].idle_since
    out = enqueue(acd, "again", 100.0, number="13800000001")
    assert connects(out) == [("again", "1001")]


def test_repeat_caller_waits_for_its_agent_without_blocking_others():
    acd = _repeat_acd()
    enqueue(acd, "keeps-1002", 30.0)
    acd.login("1003", 31.0)
    enqueue(acd, "keeps-1001", 32.0)
    assert (acd.agents["1002"].call_id, acd.agents["1001"].call_id) == ("keeps-1002", "keeps-1001")
    out = enqueue(acd, "again", 40.0, number="13800000001")
    assert connects(out) == []  # 1003 is free but the caller is kept for 1001
    assert [(c.call_id, c.preferred_agent, c.preferred_until) for c in acd.waiting()] == [
        ("again", "1001", 60.0)
    ]
    # A caller behind it is served by the free agent: no head-of-line blocking.
    assert connects(enqueue(acd, "behind", 41.0)) == [("behind", "1003")]
    assert acd.position("again") == 1
    # 1001 becomes free within the window: it gets its caller.
    talk(acd, "keeps-1001", "1001", 42.0)
    assert connects(acd.wrapup_done("1001", 50.0)) == [("again", "1001")]


def test_repeat_caller_window_expiry_falls_back_to_normal_routing():
    acd = _repeat_acd()
    acd.pause("1001", "lunch", 25.0)
    acd.pause("1002", "meeting", 25.0)
    out = enqueue(acd, "again", 40.0, number="13800000001")
    assert connects(out) == []
    assert acd.next_deadline() == 60.0
    acd.resume("1002", 50.0)  # kept for 1001: 1002 does not take it
    assert acd.agents["1002"].state is AgentState.AVAILABLE
    assert acd.tick(59.9) == []
    assert connects(acd.tick(60.0)) == [("again", "1002")]


def test_repeat_caller_whose_agent_logs_out_is_routed_at_once():
    acd = _repeat_acd()
    acd.pause("1001", "lunch", 25.0)
    acd.pause("1002", "meeting", 25.0)
    acd.login("1003", 26.0)
    acd.pause("1003", "meeting", 26.0)
    enqueue(acd, "again", 40.0, number="13800000001")
    acd.resume("1003", 41.0)
    assert acd.agents["1003"].state is AgentState.AVAILABLE
    assert connects(acd.logout("1001", 42.0)) == [("again", "1003")]


def test_repeat_caller_ignored_when_the_agent_is_logged_out_or_does_not_serve_the_queue():
    queues = [QueueSpec("q", "12345"), QueueSpec("other", "12345")]
    acd = make([home("1001"), home("1002", "q", "other")], queues=queues)
    acd.login("1001", 0.0)
    enqueue(acd, "first", 10.0, number="13800000001")
    talk(acd, "first", "1001", 10.0)
    acd.wrapup_done("1001", 20.0)
    acd.login("1002", 21.0)
    # "other" is not served by 1001: normal routing at once.
    assert connects(enqueue(acd, "elsewhere", 30.0, queue="other", number="13800000001")) == [
        ("elsewhere", "1002")
    ]
    acd.logout("1001", 31.0)
    enqueue(acd, "again", 40.0, number="13800000001")
    assert acd.waiting()[0].preferred_agent is None


def test_repeat_caller_memory_expires_after_repeat_caller_days():
    acd = _repeat_acd(repeat_caller_days=7.0)
    acd.pause("1001", "off", 30.0)
    answered_at = 11.0
    within = answered_at + 7 * DAY
    enqueue(acd, "within", within, number="13800000001")
    assert acd.waiting()[0].preferred_agent == "1001"
    acd.caller_left("within", within + 1)
    out = enqueue(acd, "too-late", within + 2, number="13800000001")
    assert connects(out) == [("too-late", "1002")]


def test_own_memory_is_preferred_to_the_database_history_which_fills_the_gaps():
    asked: list[tuple[str, float]] = []

    def history(number: str, now: float) -> str | None:
        asked.append((number, now))
        return {"13900000009": "1003", "13800000001": "1002"}.get(number)

    acd = Acd(
        queues=[QueueSpec("q", "12345")],
        agents=[home("1001"), home("1002"), home("1003")],
        last_agent_for=history,
    )
    acd.login("1001", 0.0)
    enqueue(acd, "first", 10.0, number="13800000001")
    talk(acd, "first", "1001", 10.0)
    acd.wrapup_done("1001", 20.0)
    for agent_id in ("1002", "1003"):
        acd.login(agent_id, 21.0)
        acd.pause(agent_id, "busy", 21.0)
    acd.pause("1001", "busy", 21.0)
    enqueue(acd, "seen-here", 30.0, number="13800000001")
    enqueue(acd, "seen-in-db", 31.0, number="13900000009")
    enqueue(acd, "anonymous", 32.0, number="anonymous")
    assert [(c.call_id, c.preferred_agent) for c in acd.waiting()] == [
        ("seen-here", "1001"),
        ("seen-in-db", "1003"),
        ("anonymous", None),
    ]
    # History is asked only when the core has no recent answer of its own (the
    # first call: its answer there, 1002, was logged out and so ignored).
    assert asked == [("13800000001", 10.0), ("13900000009", 31.0)]


# -- estimated wait, overflow, callback -------------------------------------------------


def test_estimated_wait_formula_uses_serving_agents_and_recent_handle_times():
    acd = make([home("1001"), home("1002"), home("1003")], default_aht_s=400.0, wrapup_s=10.0)
    assert acd.estimated_wait_s("q") == math.inf  # nobody logged in
    for agent_id in ("1001", "1002", "1003"):
        acd.login(agent_id, 0.0)
    acd.pause("1003", "training", 0.0)  # paused agents do not count
    # position * AHT / serving agents (2: the paused one does not serve)
    assert acd.estimated_wait_s("q", 1) == 200.0
    assert acd.estimated_wait_s("q", 2) == 400.0
    assert acd.estimated_wait_s("q", 3) == 600.0
    # Handle time = answer -> end of wrap-up: 100 s talk + 10 s wrap-up.
    enqueue(acd, "a", 1.0)
    acd.ringing("a", "1001", 1.0)
    acd.answered("a", "1001", 2.0)
    acd.agent_released("1001", 102.0)
    acd.tick(112.0)
    assert acd.average_handle_time_s("q") == 110.0
    # An early wrapup_done counts up to that moment: (110 + 30) / 2.
    enqueue(acd, "b", 120.0)
    acd.answered("b", "1002", 120.0)
    acd.agent_released("1002", 145.0)
    acd.wrapup_done("1002", 150.0)
    assert acd.average_handle_time_s("q") == 70.0
    assert acd.estimated_wait_s("q", 5) == 175.0  # 5 * 70 / 2
    assert acd.estimated_wait_s("q") == 35.0  # next caller: position 1


def test_average_handle_time_keeps_the_last_samples_only():
    acd = make([home("1001")], aht_samples=2, wrapup_s=0.0)
    acd.login("1001", 0.0)
    for i, talk_s in enumerate((300.0, 100.0, 50.0)):
        start = 1000.0 * (i + 1)
        enqueue(acd, f"c{i}", start)
        acd.answered(f"c{i}", "1001", start)
        acd.agent_released("1001", start + talk_s)
    assert acd.average_handle_time_s("q") == 75.0


def _overflow_acd(**queue_kw: object) -> Acd:
    queues = [
        QueueSpec("main", "12345", **queue_kw),  # type: ignore[arg-type]
        QueueSpec("backup", "12345", overflow_queue="main", overflow_wait_s=1.0),
    ]
    acd = make([home("1001", "main"), home("2001", "backup")], queues=queues, default_aht_s=400.0)
    acd.login("1001", 0.0)
    acd.login("2001", 0.0)
    acd.pause("2001", "meeting", 0.0)
    enqueue(acd, "talking", 1.0, queue="main")  # 1001 busy from now on
    acd.answered("talking", "1001", 2.0)
    return acd


def test_overflow_moves_a_caller_once_keeping_its_entry_time_and_priority():
    acd = _overflow_acd(overflow_queue="backup", overflow_wait_s=300.0)
    out = enqueue(acd, "x", 10.0, queue="main", priority=2)
    # EWT = ceil(1 / 1) * 400 = 400 > 300: to "backup", where nobody serves
    # (EWT inf > its own 1 s limit) but a call moves only once.
    assert out == [CallOverflowed("x", "main", "backup", 10.0, 400.0)]
    (call,) = acd.waiting("backup")
    assert (call.queue, call.queued_at, call.priority, call.overflowed) == ("backup", 10.0, 2, True)
    assert acd.tick(20.0) == []
    assert [c.queue for c in acd.waiting()] == ["backup"]
    assert connects(acd.resume("2001", 30.0)) == [("x", "2001")]


def test_callback_offered_when_the_estimated_wait_is_too_long():
    acd = _overflow_acd(callback_wait_s=600.0)
    assert enqueue(acd, "first", 10.0, queue="main") == []  # EWT 400 <= 600
    out = enqueue(acd, "second", 11.0, queue="main")  # EWT ceil(2 / 1) * 400 = 800
    assert out == [OfferCallback("second", "main", 11.0, 800.0)]
    assert [c.call_id for c in acd.waiting()] == ["first"]
    assert acd.position("second") is None
    assert acd.caller_left("second", 12.0) == []  # already gone from the ACD


def test_overflow_before_callback_and_callback_after_the_move():
    acd = _overflow_acd(overflow_queue="backup", overflow_wait_s=300.0, callback_wait_s=350.0)
    out = enqueue(acd, "x", 10.0, queue="main")
    # Above both limits: it moves (overflow has precedence); in "backup" it
    # cannot move again and "backup" has no callback limit, so it waits there.
    assert out == [CallOverflowed("x", "main", "backup", 10.0, 400.0)]


def test_a_caller_an_agent_can_take_now_is_never_sent_away():
    acd = _overflow_acd(overflow_queue="backup", overflow_wait_s=0.0)
    acd.agent_released("1001", 5.0)  # wrap-up: nobody free in "main"
    assert enqueue(acd, "x", 6.0, queue="main") == [
        CallOverflowed("x", "main", "backup", 6.0, 400.0)
    ]
    acd.wrapup_done("1001", 7.0)
    # EWT is still 400 s > 0 s, but 1001 is free: routed, not moved.
    assert connects(enqueue(acd, "y", 8.0, queue="main")) == [("y", "1001")]


def test_waits_are_checked_again_when_staffing_drops():
    queues = [
        QueueSpec("main", "12345", overflow_queue="backup", overflow_wait_s=500.0),
        QueueSpec("backup", "12345"),
    ]
    acd = make([home("1001", "main"), home("1002", "main")], queues=queues, default_aht_s=300.0)
    acd.login("1001", 0.0)
    acd.login("1002", 0.0)
    acd.set_busy_external("1002", True, 0.5)  # serving, but its phone is in use
    enqueue(acd, "a", 1.0, queue="main")
    acd.answered("a", "1001", 2.0)
    assert enqueue(acd, "c", 3.0, queue="main") == []  # ceil(1 / 2) * 300 = 300 s
    assert enqueue(acd, "d", 3.5, queue="main") == []  # ceil(2 / 2) * 300 = 300 s
    out = acd.logout("1002", 5.0)
    # One agent left: "d" at position 2 now expects ceil(2 / 1) * 300 = 600 s > 500 s;
    # "c" (300 s) stays.
    assert out[1:] == [CallOverflowed("d", "main", "backup", 5.0, 600.0)]
    assert [(c.call_id, c.queue) for c in acd.waiting()] == [("c", "main"), ("d", "backup")]
    assert acd.tick(6.0) == []


def test_nobody_serving_means_an_unbounded_wait_reported_as_none():
    queues = [
        QueueSpec("night", "12345", overflow_queue="city", overflow_wait_s=60.0),
        QueueSpec("city", "12345", callback_wait_s=60.0),
    ]
    acd = make([home("1001", "night")], queues=queues)
    assert acd.estimated_wait_s("night") == math.inf
    out = enqueue(acd, "x", 1.0, queue="night")
    # inf is not JSON (nor jsonb): the commands say None.
    assert out == [
        CallOverflowed("x", "night", "city", 1.0, None),
        OfferCallback("x", "city", 1.0, None),
    ]
    assert acd.waiting() == []


def test_stale_entries_of_the_availability_heaps_stay_bounded():
    # An agent leaving AVAILABLE leaves its heap entries behind (lazy
    # deletion); with no calls to pop them, the heaps are compacted instead.
    acd = make(
        [home("1001", "q", "other"), home("1002", "q")],
        queues=[QueueSpec("q", "12345"), QueueSpec("other", "12345")],
    )
    acd.login("1001", 0.0)
    acd.login("1002", 0.0)
    for i in range(1000):
        acd.set_busy_external("1001", i % 2 == 0, float(i))
    heaps = acd._available  # white-box: the structure this test is about
    assert len(heaps["q"]) <= 2 * 2 + 64 and len(heaps["other"]) <= 2 * 1 + 64
    assert acd.audit() == []
    # The last toggle (i = 999) freed 1001: it is still found through the heaps.
    assert connects(enqueue(acd, "a", 2000.0, queue="other")) == [("a", "1001")]
    assert connects(enqueue(acd, "b", 2001.0)) == [("b", "1002")]
