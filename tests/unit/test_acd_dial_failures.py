"""acd.service with real ACD core, call model and KPI tracker: what a failed
ring costs the agent, and where the caller goes next. Fed the call model's
changes directly; the switch effects are recorded."""

from __future__ import annotations

from dataclasses import dataclass, field

from acd.agents import AgentSpec, AgentState
from acd.core import Acd
from acd.dial_outcomes import SkipPolicy
from acd.log_events import AGENT_NO_ANSWER, LogEvent
from acd.queues import AcdSettings, QueueSpec
from acd.service import SWITCH_DEGRADED, AcdService
from acd.sla import KpiSettings, ServiceLevelTracker
from acd.switch_guard import GuardSettings, SwitchGuard
from cti.calls import (
    AgentLeft,
    AgentNoAnswer,
    AgentRinging,
    CallAnswered,
    CallArrived,
    CallModel,
    CallQueued,
)

A = AgentState
QUEUE = "q"


@dataclass
class RecordedEffects:
    connects: list[tuple[str, str]] = field(default_factory=list)
    fallback: list[tuple[str, bool, bool, str | None]] = field(default_factory=list)

    def connect(self, call_id: str, agent: str) -> None:
        self.connects.append((call_id, agent))

    def offer_callback(self, call_id: str) -> None:
        raise AssertionError("no callback expected")

    def move_queue(self, call_id: str, queue: str) -> None:
        raise AssertionError("no overflow expected")

    def agent_in_fallback_queues(
        self, agent: str, *, member: bool, paused: bool, reason: str | None
    ) -> None:
        self.fallback.append((agent, member, paused, reason))


@dataclass
class Rig:
    service: AcdService
    effects: RecordedEffects
    rows: list[LogEvent]
    registered: set[str]

    @property
    def acd(self) -> Acd:
        return self.service.acd

    def state(self, agent: str) -> tuple[AgentState, str | None]:
        a = self.acd.agents[agent]
        return a.state, a.pause_reason

    def call_arrives(self, call_id: str, at: float) -> None:
        self.service.on_change(CallArrived(call_id, at, "12345", "1380000" + call_id, "", "12345"))
        self.service.on_change(CallQueued(call_id, at, "12345", QUEUE, False))

    def offered_to(self, call_id: str) -> str | None:
        for cid, agent in reversed(self.effects.connects):
            if cid == call_id:
                return agent
        return None

    def ring_fails(
        self, call_id: str, agent: str, at: float, status: str, rang_s: float | None
    ) -> None:
        if rang_s is not None:
            self.service.on_change(AgentRinging(call_id, at - rang_s, agent))
        self.service.on_change(AgentNoAnswer(call_id, at, agent, status, rang_s))
        if rang_s is not None:  # the model puts the caller back (the dialplan did)
            self.service.on_change(CallQueued(call_id, at, "12345", QUEUE, True))


def rig(agents: int = 4, guard: GuardSettings | None = None) -> Rig:
    ids = [str(1001 + n) for n in range(agents)]
    acd = Acd(
        queues=[QueueSpec(QUEUE, "12345")],
        agents=[AgentSpec(a, a, queues=(QUEUE,)) for a in ids],
        settings=AcdSettings(ring_timeout_s=15.0, wrapup_s=0.0),
    )
    effects = RecordedEffects()
    rows: list[LogEvent] = []
    registered = set(ids)
    service = AcdService(
        acd=acd,
        tracker=ServiceLevelTracker(KpiSettings()),
        model=CallModel(lines={"12345": "12345"}),
        effects=effects,
        sink=rows.append,
        registered=registered.__contains__,
        skip_policy=SkipPolicy(busy_skip_s=5.0, unavailable_backoff_s=5.0),
        guard=SwitchGuard(guard or GuardSettings(min_agents=5)),
    )
    # Login order makes the routing order: 1001 is the longest idle.
    for n, agent in enumerate(ids):
        service.login(agent, float(n))
    return Rig(service, effects, rows, registered)


def test_a_busy_phone_is_skipped_not_paused_and_the_caller_goes_to_the_next_agent():
    r = rig()
    r.call_arrives("c1", 100.0)
    assert r.offered_to("c1") == "1001"
    r.ring_fails("c1", "1001", 100.2, "BUSY", 0.1)
    assert r.state("1001") == (A.AVAILABLE, None)
    assert r.acd.agents["1001"].skip_until == 105.2 and not r.acd.agents["1001"].routable
    # At once, not after a timer: the same input offered the call to 1002.
    assert r.effects.connects == [("c1", "1001"), ("c1", "1002")]
    assert r.acd.agents["1002"].state is A.RESERVED
    row = [e for e in r.rows if e.kind == AGENT_NO_ANSWER][-1]
    assert row.agent == "1001"
    assert dict(row.data) == {
        "dial_status": "BUSY",
        "outcome": "busy",
        "rang_s": 0.1,
        "paused": False,
        "skip_s": 5.0,
    }
    r.service.on_change(AgentRinging("c1", 100.3, "1002"))
    r.service.on_change(CallAnswered("c1", 101.0, "1002", 1.0))
    # The back-off ends: 1001 takes the next caller.
    r.service.tick(105.3)
    assert r.acd.agents["1001"].routable
    r.call_arrives("c2", 106.0)
    assert r.offered_to("c2") == "1001"
    assert r.acd.audit() == []


def test_a_caller_keeps_its_place_at_the_head_of_its_band():
    r = rig(agents=1)
    r.call_arrives("c1", 100.0)
    r.call_arrives("c2", 101.0)
    r.ring_fails("c1", "1001", 101.5, "CHANUNAVAIL", 0.01)
    waiting = [c.call_id for c in r.acd.waiting(QUEUE)]
    assert waiting == ["c1", "c2"]
    r.service.tick(106.6)  # 1001's back-off is over: c1, first in, goes first
    assert r.offered_to("c1") == "1001" and r.acd.agents["1001"].call_id == "c1"


def test_refused_at_once_congested_and_unreachable_phones_are_never_paused():
    for status, rang_s in [("NOANSWER", 0.05), ("CONGESTION", 0.1), ("CHANUNAVAIL", None)]:
        r = rig(agents=2)
        r.call_arrives("c1", 100.0)
        r.ring_fails("c1", "1001", 100.5, status, rang_s)
        assert r.state("1001") == (A.AVAILABLE, None), status
        assert r.acd.agents["1001"].skip_until == 105.5, status
        assert r.offered_to("c1") == "1002", status
        assert r.acd.agents_by_state()[A.PAUSED] == 0


def test_a_full_ring_out_is_rona():
    r = rig()
    r.call_arrives("c1", 100.0)
    r.ring_fails("c1", "1001", 115.0, "NOANSWER", 15.0)
    assert r.state("1001") == (A.PAUSED, "no answer")
    assert r.offered_to("c1") == "1002"
    assert ("1001", True, True, "no answer") in r.effects.fallback  # app_queue paused too


def test_an_unregistered_phone_is_taken_out_by_presence_without_a_pause():
    r = rig()
    r.registered.discard("1001")
    r.call_arrives("c1", 100.0)
    r.ring_fails("c1", "1001", 100.01, "CHANUNAVAIL", None)
    agent = r.acd.agents["1001"]
    assert (agent.state, agent.offline, agent.skip_until) == (A.AVAILABLE, True, None)
    assert r.offered_to("c1") == "1002"
    r.service.tick(1000.0)
    assert not agent.routable  # no timer brings it back: registering does
    r.registered.add("1001")
    r.service.presence_changed("1001", True, 1001.0)
    assert agent.routable and agent.state is A.AVAILABLE


def test_the_guard_trips_undoes_the_bursts_pauses_raises_the_alarm_and_clears():
    r = rig(agents=6, guard=GuardSettings(window_s=30.0, min_agents=3, share=0.5, clear_answers=2))
    # A switch fault that looks like ring-outs: the first two are paused (RONA).
    r.call_arrives("c1", 100.0)
    r.ring_fails("c1", "1001", 115.0, "NOANSWER", 15.0)
    assert r.offered_to("c1") == "1002"
    r.ring_fails("c1", "1002", 130.0, "NOANSWER", 15.0)
    assert r.state("1001")[0] is A.PAUSED and r.state("1002")[0] is A.PAUSED
    assert r.offered_to("c1") == "1003"
    # The third failing agent trips the guard: pauses undone, alarm raised.
    r.ring_fails("c1", "1003", 131.0, "CHANUNAVAIL", 0.01)
    assert r.state("1001") == (A.AVAILABLE, None)
    assert r.state("1002") == (A.AVAILABLE, None)
    undone = [
        (e.agent, e.data["old"], e.data["new"])
        for e in r.rows
        if e.kind == "AGENT_STATE" and e.data["event"] == "switch guard"
    ]
    assert undone == [("1001", "PAUSED", "AVAILABLE"), ("1002", "PAUSED", "AVAILABLE")]
    alarms = [a for a in r.service.alarms if a.kind == SWITCH_DEGRADED]
    assert [a.state for a in alarms] == ["RAISED"]
    assert "3 of 3 agents" in alarms[0].message and "2 RONA pauses undone" in alarms[0].message
    assert [a.kind for a in r.service.switch_alarms.active()] == [SWITCH_DEGRADED]
    # While tripped, a ring-out is skipped, not paused; routing goes on.
    agent = r.offered_to("c1")
    assert agent == "1004"
    r.ring_fails("c1", "1004", 146.0, "NOANSWER", 15.0)
    assert r.state("1004") == (A.AVAILABLE, None)
    assert r.offered_to("c1") == "1005"
    # Dials succeed again: two answers and the failures age out -> cleared.
    r.service.on_change(AgentRinging("c1", 146.1, "1005"))
    r.service.on_change(CallAnswered("c1", 147.0, "1005", 47.0))
    r.call_arrives("c2", 170.0)  # 1004's failure (146) is still in the window
    agent = r.offered_to("c2")
    assert agent is not None
    r.service.on_change(AgentRinging("c2", 170.1, agent))
    r.service.on_change(CallAnswered("c2", 171.0, agent, 1.0))
    assert [a.state for a in r.service.alarms if a.kind == SWITCH_DEGRADED] == ["RAISED"]
    r.service.on_change(AgentLeft("c1", 179.0, "1005"))
    r.call_arrives("c4", 180.0)
    agent = r.offered_to("c4")
    assert agent is not None
    r.service.on_change(AgentRinging("c4", 180.1, agent))
    r.service.on_change(CallAnswered("c4", 181.0, agent, 1.0))
    alarms = [a for a in r.service.alarms if a.kind == SWITCH_DEGRADED]
    assert [a.state for a in alarms] == ["RAISED", "CLEARED"]
    assert r.service.switch_alarms.active() == []
    # Pausing applies again.
    r.call_arrives("c3", 190.0)
    agent = r.offered_to("c3")
    assert agent is not None
    r.ring_fails("c3", agent, 205.0, "NOANSWER", 15.0)
    assert r.state(agent) == (A.PAUSED, "no answer")
    assert r.acd.audit() == []


def test_rings_of_calls_the_engine_does_not_route_change_nothing():
    """app_queue's rings (a line it routes, the dialplan fallback) reach the
    model too: no pause, no back-off, no decision, nothing for the guard."""
    r = rig()
    before = [(a.state, a.skip_until) for a in r.acd.agents.values()]
    r.service.on_change(CallArrived("aq1", 100.0, "12399", "13900000001", "", "12399"))
    r.service.on_change(CallQueued("aq1", 100.0, None, None, False))
    r.service.on_change(AgentRinging("aq1", 100.1, "1001"))
    r.service.on_change(AgentNoAnswer("aq1", 115.1, "1001", "NOANSWER", 15.0))
    r.service.on_change(AgentNoAnswer("aq1", 115.2, "1002", "CHANUNAVAIL", None))
    assert [(a.state, a.skip_until) for a in r.acd.agents.values()] == before
    assert r.effects.connects == [] and r.service.guard.counts(116.0) == (0, 0)
    assert [e for e in r.rows if e.kind == AGENT_NO_ANSWER] == []


def test_recorded_unregistered_and_busy_phones_cost_nobody_a_pause():
    """dial_failures.ami from a real Asterisk through the call model, the
    service and the ACD: the ACD's own choices match the recorded Redirects
    (1003, then 1004, then 1001), so each recorded failure is one it owns."""
    try:
        from .transcripts import load_transcript
    except ImportError:
        from transcripts import load_transcript

    model = CallModel(lines={"12345": "12345", "96181": "96181"})
    acd = Acd(
        queues=[QueueSpec("12345-general", "12345")],
        agents=[AgentSpec(a, a, queues=("12345-general",)) for a in ("1003", "1004", "1001")],
        settings=AcdSettings(ring_timeout_s=4.0, wrapup_s=0.0),
    )
    effects = RecordedEffects()
    rows: list[LogEvent] = []
    service = AcdService(
        acd=acd,
        tracker=ServiceLevelTracker(KpiSettings()),
        model=model,
        effects=effects,
        sink=rows.append,
        registered={"1001", "1004"}.__contains__,
    )
    for n, agent in enumerate(("1003", "1004", "1001")):
        service.login(agent, 1.0 + n)
    for message in load_transcript("dial_failures"):
        for change in model.apply(message):
            service.on_change(change)
    assert [agent for _, agent in effects.connects] == ["1003", "1004", "1001"]
    outcomes = [
        (e.agent, e.data["outcome"], e.data["paused"]) for e in rows if e.kind == AGENT_NO_ANSWER
    ]
    assert outcomes == [("1003", "offline", False), ("1004", "busy", False)]
    assert acd.agents["1003"].offline and acd.agents["1003"].state is A.AVAILABLE
    assert acd.agents["1004"].skip_until is not None
    assert [e for e in rows if e.kind == "AGENT_PAUSED"] == []
    assert acd.audit() == []


def test_app_queue_callers_are_counted_only_where_configured_and_never_routed():
    for count in (False, True):
        r = rig()
        r.service.count_app_queue = count
        r.service.on_change(CallArrived("aq1", 100.0, "12399", "13900000001", "", "12399"))
        r.service.on_change(CallQueued("aq1", 100.0, "12399", QUEUE, False, app_queue=True))
        r.service.on_change(AgentRinging("aq1", 103.0, "1002"))
        r.service.on_change(CallAnswered("aq1", 104.0, "1002", 4.0))
        assert r.effects.connects == [] and r.acd.waiting(QUEUE) == []
        stats = r.service.tracker.window((0.0, 200.0), now=200.0)
        queued = [e for e in r.rows if e.kind == "CALL_QUEUED"]
        if count:
            assert (stats.offered, stats.answered, stats.rate_15s) == (1, 1, 1.0)
            assert [dict(e.data) for e in queued] == [{"routed_by": "app_queue"}]
        else:
            assert (stats.offered, stats.answered) == (0, 0)
            assert queued == []
