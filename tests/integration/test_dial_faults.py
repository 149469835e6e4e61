"""Switch and phone faults on a real Asterisk: phones that answer 486 or 480,
a phone that is not registered, and a switch out of RTP ports under a burst.
None of these is the agent's fault: nobody is paused, every caller is answered
by another agent, and a burst of failures raises SWITCH_DEGRADED."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio

from acd.agents import AgentState
from acd.service import SWITCH_DEGRADED
from cti.calls import AgentNoAnswer, CallAnswered, CallQueued
from cti.config import AcdConfig, AgentSpec, EngineConfig, KpiConfig, LineSpec, RtpConfig
from cti.runtime import build_runtime
from cti.stack.private import PrivateStack, engine_config_for
from softphone_bridge.robot_agent import AgentBehaviour, RobotAgent
from softphone_bridge.sipp_citizen import CitizenCall, CitizenResult, SippCitizens
from softphone_bridge.sipp_phones import SippPhones

from .conftest import ChangeLog, EngineView, cancel_and_wait

pytestmark = pytest.mark.integration

PHONES_HOST = "127.0.0.5"


@dataclass
class Floor:
    engine: EngineView
    changes: ChangeLog
    citizens: SippCitizens
    phones: dict[str, SippPhones]
    robots: dict[str, RobotAgent]
    calls: list[asyncio.Task[CitizenResult]] = field(default_factory=list)

    def place(self, call: CitizenCall) -> asyncio.Task[CitizenResult]:
        """A citizen call running on its own; the fixture ends those still running."""
        task = asyncio.create_task(self.citizens.call(call))
        self.calls.append(task)
        return task

    def paused_rows(self) -> list[object]:
        return [e for e in self.engine.recent_log if e.kind == "AGENT_PAUSED"]

    def answered(self) -> list[CallAnswered]:
        return [c for c in self.changes.changes if isinstance(c, CallAnswered)]


@pytest_asyncio.fixture
async def floor(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Floor]:
    """Agents on sipp phones (by behaviour), pyVoIP robots, or no phone at
    all; the engine on a private stack. ``@pytest.mark.floor(agents={ext:
    "486" | "480" | "answer" | "robot" | "none"}, acd=AcdConfig, rtp_ports=N)``."""
    marker = request.node.get_closest_marker("floor")
    assert marker is not None
    kinds: dict[str, str] = marker.kwargs["agents"]
    async with AsyncExitStack() as stack:
        phones: dict[str, SippPhones] = {}
        for kind in sorted(set(kinds.values()) - {"robot", "none"}):
            refuse = None if kind == "answer" else int(kind)
            phones[kind] = SippPhones(
                PHONES_HOST, tmp_path / f"phones-{kind}", refuse=refuse, talk_ms=2500
            )
            await stack.enter_async_context(phones[kind])
        config = EngineConfig(
            agents=tuple(
                AgentSpec(
                    ext,
                    f"坐席{ext}",
                    contact=phones[kind].contact(ext) if kind in phones else "",
                )
                for ext, kind in kinds.items()
            ),
            ring_timeout_s=6,
            lines=marker.kwargs.get("lines", EngineConfig().lines),
            kpi=marker.kwargs.get("kpi", KpiConfig()),
            acd=marker.kwargs.get("acd", AcdConfig(wrapup_s=0.0)),
            rtp=RtpConfig(private_ports=marker.kwargs.get("rtp_ports", 0)),
        )
        private = PrivateStack(config)
        info = await private.start()
        stack.push_async_callback(private.stop)
        assert info.sip is not None
        citizens = SippCitizens(asterisk_sip=info.sip, work_dir=tmp_path / "citizens")
        stack.push_async_callback(citizens.close)
        runtime = build_runtime(engine_config_for(config, info), serve_http=False)
        engine = EngineView(runtime)
        changes = ChangeLog()
        engine.add_listener(changes)
        await stack.enter_async_context(runtime)
        await engine.wait_resynced()
        robots = {
            seat.extension: RobotAgent(
                extension=seat.extension,
                password=seat.password,
                asterisk_sip=info.sip,
                behaviour=AgentBehaviour(talk_s=2.0),
            )
            for seat in info.agents
            if kinds[seat.extension] == "robot"
        }
        for robot in robots.values():
            await robot.start()
            stack.push_async_callback(robot.stop)
        for ext in kinds:  # in order: the first logged in is the longest idle
            engine.login(ext)
        floor = Floor(engine, changes, citizens, phones, robots)
        try:
            yield floor
        finally:
            await cancel_and_wait(*floor.calls)


def no_answers(floor: Floor) -> dict[str, list[str]]:
    """agent -> outcomes of its failed rings, from the event log rows."""
    out: dict[str, list[str]] = {}
    for row in floor.engine.recent_log:
        if row.kind == "AGENT_NO_ANSWER" and row.agent is not None:
            out.setdefault(row.agent, []).append(f"{row.data['outcome']}/{row.data['paused']}")
    return out


@pytest.mark.floor(
    agents={"1001": "486", "1002": "480", "1003": "none", "1004": "robot", "1005": "answer"}
)
async def test_busy_refusing_and_unregistered_phones_are_never_paused(floor: Floor):
    eng = floor.engine
    offline = eng.acd.agents["1003"]
    assert offline.offline and offline.state is AgentState.AVAILABLE  # presence, not a pause
    tasks: list[asyncio.Task[CitizenResult]] = []
    for n in range(4):
        call = CitizenCall("12345", f"1391000000{n}", f"市民{n}", hold_s=20)
        tasks.append(floor.place(call))
        await floor.changes.wait_for(lambda c: isinstance(c, CallQueued), count=n + 1)
    answered = await floor.changes.wait_for(
        lambda c: isinstance(c, CallAnswered), count=4, timeout_s=60
    )
    assert {a.agent for a in answered} <= {"1004", "1005"}
    assert len({a.call_id for a in answered}) == 4
    # The first caller met the 486 and the 480 phones first: both refused at
    # once, neither paused, and the caller went straight on.
    failed = no_answers(floor)
    assert failed["1001"] and set(failed["1001"]) == {"busy/False"}
    assert failed["1002"] and set(failed["1002"]) == {"refused/False"}
    assert "1003" not in failed  # never dialled: presence took it out
    assert floor.phones["486"].invited() and floor.phones["480"].invited()
    first = answered[0]
    assert first.wait_s is not None and first.wait_s < 5.0  # far below one ring time (6 s)
    # Nobody was paused at any moment, and nobody is now.
    assert floor.paused_rows() == []
    assert eng.acd.agents_by_state()[AgentState.PAUSED] == 0
    await cancel_and_wait(*tasks)


TINY_RTP = AcdConfig(
    wrapup_s=0.0,
    busy_skip_s=1.0,
    unavailable_backoff_s=1.0,
    unavailable_backoff_max_s=4.0,
    switch_guard_window_s=10.0,
    switch_guard_min_agents=3,
    switch_guard_share=0.5,
    switch_guard_clear_answers=3,
)


@pytest.mark.floor(agents={str(1001 + n): "answer" for n in range(6)}, acd=TINY_RTP, rtp_ports=24)
async def test_a_switch_out_of_rtp_ports_raises_the_alarm_and_pauses_nobody(floor: Floor):
    """24 RTP ports carry 12 channels: ten callers waiting at once leave room
    for two agent legs, so the other agents' dials fail at once (Asterisk:
    "Unable to create RTP instance") until calls end."""
    eng = floor.engine
    burst = [
        floor.place(CitizenCall("12345", f"1392000000{n}", f"市民{n}", hold_s=60))
        for n in range(10)
    ]
    answered = await floor.changes.wait_for(
        lambda c: isinstance(c, CallAnswered), count=10, timeout_s=120
    )
    assert len({a.call_id for a in answered}) == 10
    # Asterisk 16 reports these dials as NOANSWER (or CHANUNAVAIL) at once.
    failed_fast = [
        c
        for c in floor.changes.changes
        if isinstance(c, AgentNoAnswer) and (c.rang_s is None or c.rang_s < 3.0)
    ]
    assert len(failed_fast) >= 3, "the tiny RTP range never made agent dials fail"
    outcomes = {o for found in no_answers(floor).values() for o in found}
    assert outcomes and outcomes <= {"refused/False", "unavailable/False", "congestion/False"}
    raised = [a for a in eng.service.alarms if a.kind == SWITCH_DEGRADED and a.state == "RAISED"]
    assert len(raised) == 1
    assert "agents failed within the window" in raised[0].message
    # While it lasted the console showed it with the SLA alarms.
    assert floor.paused_rows() == []
    assert eng.acd.agents_by_state()[AgentState.PAUSED] == 0
    await asyncio.gather(*burst)
    # The burst is over: a few more calls succeed and the alarm clears.
    for n in range(3):
        await floor.citizens.call(CitizenCall("12345", f"1393000000{n}", hold_s=4))
    states = [a.state for a in eng.service.alarms if a.kind == SWITCH_DEGRADED]
    assert states == ["RAISED", "CLEARED"]
    assert not [a for a in eng.snapshot()["kpi"]["alarms"] if a["kind"] == SWITCH_DEGRADED]
    assert floor.paused_rows() == []


APP_QUEUE_LINES = (
    LineSpec("12345", "12345", "12345-general"),
    LineSpec("12399", "12399", "12345-general", route="app_queue"),
)


@pytest.mark.floor(
    agents={"1001": "answer", "1002": "answer"},
    lines=APP_QUEUE_LINES,
    kpi=KpiConfig(count_app_queue=True),
)
async def test_calls_app_queue_routes_cause_no_decision_and_count_where_configured(
    floor: Floor, caplog: pytest.LogCaptureFixture
):
    """A line routed by Asterisk's app_queue over the engine's agents: the
    engine makes no routing decision for its callers and logs nothing at
    WARNING or above, yet counts them in the KPIs (kpi.count_app_queue)."""
    eng = floor.engine
    before = len(eng.recent_log)
    result = await floor.citizens.call(CitizenCall("12399", "13940000000", "市民", hold_s=6))
    assert result.completed
    rows = list(eng.recent_log)[before:]
    kinds = [r.kind for r in rows if r.call_id is not None]
    assert "CALL_OFFERED_TO_AGENT" not in kinds  # app_queue chose the agent
    assert {"CALL_QUEUED", "CALL_ANSWERED", "CALL_ENDED"} <= set(kinds)
    queued = next(c for c in floor.changes.changes if isinstance(c, CallQueued))
    assert queued.app_queue and queued.queue == "12345-general"
    now = eng.clock()
    stats = eng.tracker.window((now - 600.0, now), now=now)
    assert (stats.offered, stats.answered) == (1, 1)
    assert floor.paused_rows() == []
    loud = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and r.name.split(".")[0] in ("acd", "cti")
    ]
    assert loud == []
