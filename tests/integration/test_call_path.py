"""A citizen's call through real Asterisk into the engine and to a real agent
softphone, checked against what the SIP peers themselves observed.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from cti.calls import CallAnswered, CallArrived, CallEnded, CallQueued
from softphone_bridge.sipp_citizen import CitizenCall

pytestmark = pytest.mark.integration


async def test_calls_to_both_lines_reach_the_engine_and_an_agent(engine, robots, citizens):
    eng, changes = engine
    hold_s = 6.0
    calls = [
        CitizenCall("12345", "13800138000", "张三丰·市民", hold_s=hold_s),
        CitizenCall("96181", "13900139001", "欧阳娜娜", hold_s=hold_s),
    ]
    placed_at = time.time()
    results = await asyncio.gather(*(citizens.call(c) for c in calls))
    ended_at = time.time()
    assert [r.exit_code for r in results] == [0, 0], [r.log_path for r in results]

    ended = await changes.wait_for(lambda c: isinstance(c, CallEnded), count=2)
    arrived = {c.caller_number: c for c in changes.matching(lambda c: isinstance(c, CallArrived))}
    assert set(arrived) == {"13800138000", "13900139001"}
    assert arrived["13800138000"].line == "12345"
    assert arrived["13800138000"].dialled == "12345"
    assert arrived["13800138000"].caller_name == "张三丰·市民"
    assert arrived["13900139001"].line == "96181"
    assert arrived["13900139001"].caller_name == "欧阳娜娜"

    queued = changes.matching(lambda c: isinstance(c, CallQueued))
    assert {q.call_id: q.line for q in queued} == {a.call_id: a.line for a in arrived.values()}

    answered = {c.call_id: c for c in changes.matching(lambda c: isinstance(c, CallAnswered))}
    assert set(answered) == {a.call_id for a in arrived.values()}
    # Two calls at once, two agents: each went to a different one.
    assert {a.agent for a in answered.values()} == {"1001", "1002"}

    # Durations, against what the softphones saw (independent clocks: +-1 s).
    for end in ended:
        call = next(c for c in eng.model.ended if c.call_id == end.call_id)
        assert end.abandoned is False
        assert call.agent in {"1001", "1002"}
        phone = robots[call.agent]
        answered_phone = (await phone.next_event("answered", timeout_s=5)).at
        ended_phone = (await phone.next_event("ended", timeout_s=5)).at
        assert end.talk_s == pytest.approx(ended_phone - answered_phone, abs=1.0)
        # The citizen stays hold_s after Asterisk answered it (at arrival, no greeting).
        assert call.ended_at - call.arrived_at == pytest.approx(hold_s, abs=1.0)
        assert end.wait_s == pytest.approx(answered_phone - call.queued_at, abs=1.0)
        assert (
            placed_at - 1
            <= call.arrived_at
            <= call.queued_at
            <= call.answered_at
            <= call.ended_at
            <= ended_at + 1
        )
    assert eng.model.calls == {}
    assert not eng.model.agent_busy("1001") and not eng.model.agent_busy("1002")


@pytest.mark.stack(agents=1)
async def test_second_caller_waits_for_the_busy_agent(engine, robots, citizens):
    """One agent, two callers: the second is queued and answered when the agent frees."""
    eng, changes = engine
    first = asyncio.create_task(citizens.call(CitizenCall("12345", "13800000001", "甲", hold_s=5)))
    await changes.wait_for(lambda c: isinstance(c, CallAnswered))
    second = asyncio.create_task(
        citizens.call(CitizenCall("12345", "13800000002", "乙", hold_s=12))
    )
    results = await asyncio.gather(first, second)
    assert [r.exit_code for r in results] == [0, 0]
    answered = changes.matching(lambda c: isinstance(c, CallAnswered))
    assert [a.agent for a in answered] == ["1001", "1001"]
    first_end = next(c for c in changes.changes if isinstance(c, CallEnded))
    # The second caller was answered only after the first call ended, and waited for it.
    assert answered[1].at >= first_end.at
    assert answered[1].wait_s >= 1.0
