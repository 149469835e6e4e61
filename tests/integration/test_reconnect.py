"""Asterisk dies mid-call: the engine sees the loss, reconnects with backoff when
Asterisk is back, resynchronises, and reports the call that vanished.
"""

from __future__ import annotations

import asyncio

import pytest

from cti.calls import CallAnswered, CallArrived, CallLost, CallQueued
from softphone_bridge.sipp_citizen import CitizenCall
from tests.waiting import link_state

from .conftest import cancel_and_wait

pytestmark = pytest.mark.integration


async def test_asterisk_killed_mid_call_engine_reconnects_and_resyncs(
    stack, engine, robots, citizens
):
    private, _ = stack
    eng, changes = engine
    assert private.asterisk is not None
    first = asyncio.create_task(
        citizens.call(CitizenCall("12345", "13811112222", "测试甲", hold_s=90))
    )
    answered = (await changes.wait_for(lambda c: isinstance(c, CallAnswered)))[0]
    assert eng.model.calls[answered.call_id].agent == answered.agent

    link = eng.link
    stats = link.stats
    lost_link = asyncio.Event()
    link.add_disconnect_handler(lambda exc: lost_link.set())
    failures_before, lost_before = stats.connect_failures, stats.connections_lost
    resyncs_before = len(eng.runtime.engine.resyncs)
    private.asterisk.kill()
    await private.asterisk.process.wait()
    await asyncio.wait_for(lost_link.wait(), 10)
    assert not link.connected
    # Two reconnect attempts fail against the dead port before Asterisk comes back.
    await link_state(link, lambda: stats.connect_failures >= failures_before + 2, 15)
    refused = [wait.cause for wait in link.retry_waits if wait.attempt > 1]
    assert len(refused) >= 2, link.retry_waits
    assert all(isinstance(cause, ConnectionRefusedError) for cause in refused), refused
    await private.asterisk.start()

    report = await eng.wait_resynced(count=2, timeout_s=60)
    assert report.fully_booted is True
    assert report.lost == 1
    lost = await changes.wait_for(lambda c: isinstance(c, CallLost))
    assert lost[0].call_id == answered.call_id
    assert answered.call_id not in eng.model.calls

    assert stats.connections_lost == lost_before + 1
    # The waits of this outage: after the lost session, then after each failure.
    waits = list(link.retry_waits)
    assert [wait.attempt for wait in waits] == list(range(1, len(waits) + 1)), waits
    delays = [wait.delay_s for wait in waits]
    # Exponential with jitter: the third wait's range lies wholly above the first's.
    assert len(delays) >= 3, waits
    assert delays[2] > delays[0], f"backoff did not grow: {delays}"
    # The first resync was done during set-up; the reconnect made the second.
    assert resyncs_before == 1
    assert len(eng.runtime.engine.resyncs) == 2

    # The new link carries calls: a fresh caller is seen arriving and queued.
    await cancel_and_wait(first)
    second = asyncio.create_task(
        citizens.call(CitizenCall("96181", "13833334444", "测试乙", hold_s=4))
    )
    arrived = await changes.wait_for(
        lambda c: isinstance(c, CallArrived) and c.caller_number == "13833334444"
    )
    await changes.wait_for(lambda c: isinstance(c, CallQueued) and c.call_id == arrived[0].call_id)
    assert arrived[0].line == "96181"
    await second
