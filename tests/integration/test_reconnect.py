"""Asterisk dies mid-call: the engine logs the loss, reconnects with backoff when
Asterisk is back, resynchronises, and reports the call that vanished.
"""

from __future__ import annotations

import asyncio
import logging
import re

import pytest

from cti.calls import CallAnswered, CallArrived, CallLost, CallQueued
from softphone_bridge.sipp_citizen import CitizenCall

from .conftest import cancel_and_wait

pytestmark = pytest.mark.integration


class LogCounter(logging.Handler):
    """Counts log records containing a phrase; awaitable."""

    def __init__(self, phrase: str) -> None:
        super().__init__(logging.DEBUG)
        self.phrase = phrase
        self.count = 0
        self._changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.phrase in record.getMessage():
            self.count += 1
            self._changed.set()

    async def wait(self, count: int, timeout_s: float) -> None:
        async with asyncio.timeout(timeout_s):
            while self.count < count:
                self._changed.clear()
                await self._changed.wait()


async def test_asterisk_killed_mid_call_engine_reconnects_and_resyncs(
    stack, engine, robots, citizens, caplog
):
    caplog.set_level(logging.INFO)
    private, _ = stack
    eng, changes = engine
    assert private.asterisk is not None
    first = asyncio.create_task(
        citizens.call(CitizenCall("12345", "13811112222", "测试甲", hold_s=90))
    )
    answered = (await changes.wait_for(lambda c: isinstance(c, CallAnswered)))[0]
    assert eng.model.calls[answered.call_id].agent == answered.agent

    lost_link = asyncio.Event()
    eng.link.add_disconnect_handler(lambda exc: lost_link.set())
    failed_attempts = LogCounter("cannot connect to")
    logging.getLogger("cti.ami").addHandler(failed_attempts)
    try:
        private.asterisk.kill()
        await private.asterisk.process.wait()
        await asyncio.wait_for(lost_link.wait(), 10)
        assert not eng.link.connected
        # Two reconnect attempts fail against the dead port before Asterisk comes back.
        await failed_attempts.wait(2, timeout_s=15)
    finally:
        logging.getLogger("cti.ami").removeHandler(failed_attempts)
    await private.asterisk.start()

    report = await eng.wait_resynced(count=2, timeout_s=60)
    assert report.fully_booted is True
    assert report.lost == 1
    lost = await changes.wait_for(lambda c: isinstance(c, CallLost))
    assert lost[0].call_id == answered.call_id
    assert answered.call_id not in eng.model.calls

    text = caplog.text
    assert re.search(r"AMI asterisk connection lost", text), text[-3000:]
    delays = [float(d) for d in re.findall(r"AMI asterisk reconnecting in ([0-9.]+) s", text)]
    # Exponential with jitter: the third wait's range lies wholly above the first's.
    assert len(delays) >= 3, text[-3000:]
    assert delays[2] > delays[0], f"backoff did not grow: {delays}"
    # The first resync was logged during set-up; the reconnect made the second.
    assert text.count("AMI resync done") == 1
    assert len(eng.resyncs) == 2

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
