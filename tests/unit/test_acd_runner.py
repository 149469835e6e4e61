"""acd.runner: the ACD driven by plain inputs (what the runtime's bus
subscriptions hand it), and what it restores from the event log. A real
ACD, call model and presence; a recording ``send``; no switch."""

from __future__ import annotations

from typing import Any

import pytest

from acd import log_events as E
from acd.agents import AgentState
from acd.commands import AgentStateChanged
from acd.log_events import LogEvent
from acd.presence import Presence
from acd.repeat_callers import RepeatCallers
from acd.runner import AcdRunner
from cti.calls import CallModel
from cti.config import AgentSpec, EngineConfig

NOW = 1_795_000_000.0
DAY = 86_400.0


class Floor:
    def __init__(self) -> None:
        self.now = NOW
        self.sent: list[dict[str, str]] = []
        self.published: list[Any] = []
        self.rows: list[LogEvent] = []
        config = EngineConfig(agents=(AgentSpec("1001", "甲"), AgentSpec("1002", "乙")))
        model = CallModel(lines=config.lines_by_did)
        self.presence = Presence(["1001", "1002"])
        self.runner = AcdRunner(
            config,
            calls=model,
            presence=self.presence,
            send=self.send,
            connected=lambda: True,
            publish=self.published.append,
            log_row=self.rows.append,
            agent_busy=model.agent_busy,
            clock=lambda: self.now,
        )

    def send(self, action: dict[str, str], *, what: str, refusal_ok: bool = False) -> None:
        self.sent.append(action)

    def state(self, agent: str) -> AgentState:
        return self.runner.acd.agents[agent].state


@pytest.fixture
def floor() -> Floor:
    return Floor()


async def test_feature_codes_log_in_pause_resume_and_log_out(floor: Floor) -> None:
    runner = floor.runner
    runner.feature_code("HotlineAgentLogin", "1001", "", NOW)
    assert floor.state("1001") is AgentState.AVAILABLE
    runner.feature_code("HotlineAgentPause", "1001", "午休", NOW + 1)
    agent = runner.acd.agents["1001"]
    assert (agent.state, agent.pause_reason) == (AgentState.PAUSED, "午休")
    runner.feature_code("HotlineAgentResume", "1001", "", NOW + 2)
    runner.feature_code("HotlineAgentLogout", "1001", "", NOW + 3)
    assert floor.state("1001") is AgentState.LOGGED_OUT
    changes = [(c.old, c.new) for c in floor.published if isinstance(c, AgentStateChanged)]
    assert changes == [
        (AgentState.LOGGED_OUT, AgentState.AVAILABLE),
        (AgentState.AVAILABLE, AgentState.PAUSED),
        (AgentState.PAUSED, AgentState.AVAILABLE),
        (AgentState.AVAILABLE, AgentState.LOGGED_OUT),
    ]
    kinds = [row.kind for row in floor.rows if row.agent == "1001"]
    assert kinds[0] == E.AGENT_STATE and E.AGENT_LOGIN in kinds and E.AGENT_LOGOUT in kinds
    assert list(runner.recent_log) == floor.rows  # the recent log keeps what was logged


async def test_a_refused_feature_code_changes_nothing(floor: Floor) -> None:
    floor.runner.feature_code("HotlineAgentResume", "1001", "", NOW)  # logged out: refused
    assert floor.state("1001") is AgentState.LOGGED_OUT
    assert floor.published == [] and floor.rows == []


async def test_presence_takes_an_unregistered_phone_out_and_back(floor: Floor) -> None:
    runner = floor.runner
    runner.login("1001")
    runner.contact_status("1001", "Created", NOW)
    assert not runner.acd.agents["1001"].offline
    runner.contact_status("1001", "Removed", NOW + 1)
    assert runner.acd.agents["1001"].offline
    assert floor.state("1001") is AgentState.AVAILABLE  # not a pause
    runner.contact_status("9999", "Created", NOW + 2)  # not an agent: ignored
    assert floor.presence.registered == set()
    runner.contact_status("1001", "Reachable", NOW + 3)
    assert not runner.acd.agents["1001"].offline


async def test_restore_takes_back_available_and_paused_agents_only(floor: Floor) -> None:
    floor.runner.restore(
        {
            "1001": ("PAUSED", NOW - 60, "培训"),
            "1002": ("ON_CALL", NOW - 30, None),  # a call is adopted from the switch
            "7777": ("AVAILABLE", NOW - 10, None),  # not configured any more
        },
        {"13800138000": ("1002", NOW - DAY)},
    )
    agent = floor.runner.acd.agents["1001"]
    assert (agent.state, agent.pause_reason, agent.state_since) == (
        AgentState.PAUSED,
        "培训",
        NOW - 60,
    )
    assert floor.state("1002") is AgentState.LOGGED_OUT
    assert floor.runner.last_agent_for("13800138000") == "1002"
    assert floor.published == []  # nothing new happened: nothing announced


async def test_restore_ignores_a_state_name_it_does_not_know(floor: Floor) -> None:
    floor.runner.restore({"1001": ("ON_BREAK", NOW - 5, None)}, {})
    assert floor.state("1001") is AgentState.LOGGED_OUT


def test_repeat_callers_remember_the_last_answering_agent_within_the_window() -> None:
    callers = RepeatCallers(window_s=7 * DAY)
    callers.record(LogEvent(NOW, E.CALL_ANSWERED, "c1", agent="1001", caller_number="139"))
    callers.record(LogEvent(NOW + 5, E.CALL_QUEUED, "c2", caller_number="139"))  # not an answer
    callers.record(LogEvent(NOW + 9, E.CALL_ANSWERED, "c3", agent="1002", caller_number="139"))
    callers.record(LogEvent(NOW + 9, E.CALL_ANSWERED, "c4", agent="1002"))  # no number
    assert len(callers) == 1
    assert callers.last_agent_for("139", NOW + 10) == "1002"
    assert callers.last_agent_for("139", NOW + 9 + 7 * DAY) == "1002"
    assert callers.last_agent_for("139", NOW + 9 + 7 * DAY + 1) is None
    assert callers.last_agent_for("137", NOW) is None
