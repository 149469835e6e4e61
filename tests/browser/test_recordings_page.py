"""The recordings page in headless Chromium: after a real call, a supervisor
finds its recording (the caller's number masked), plays it in the page's
plain <audio> player, and sees the automatic checks; the playback is in the
audit log."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from cti.calls import CallAnswered, CallEnded
from softphone_bridge.sipp_citizen import CitizenCall

from .conftest import PASSWORD

pytestmark = [pytest.mark.integration, pytest.mark.stack(agents=2)]


async def test_a_supervisor_finds_and_plays_a_calls_recording(
    engine, robots, citizens, stack, api_url, browser, screenshots
) -> None:
    eng, changes = engine
    _, info = stack
    eng.logout("1002")
    await citizens.call(CitizenCall("12345", "13800138000", "张三", 5.0))
    answered = (await changes.wait_for(lambda c: isinstance(c, CallAnswered)))[0]
    await changes.wait_for(lambda c: isinstance(c, CallEnded))
    db = await asyncpg.connect(info.database_dsn)
    try:
        async with asyncio.timeout(40):  # a worker process writes the row: polled
            while (
                await db.fetchval(
                    "SELECT state FROM recording WHERE call_id = $1", answered.call_id
                )
                != "stored"
            ):
                await asyncio.sleep(0.1)
        duration = await db.fetchval(
            "SELECT duration_s FROM recording WHERE call_id = $1", answered.call_id
        )

        page = await browser.new_page()
        await page.goto(api_url + "/recordings")
        await page.type("#username", "sup")
        await page.type("#password", PASSWORD)
        await page.click("#login button[type=submit]")
        row = "document.querySelector('#recordings tbody tr')"
        await page.wait_for(row)
        cells = await page.evaluate(f"[...{row}.cells].map(c => c.textContent)")
        assert cells[1] == "138****8000"
        assert cells[2] == "1001"
        assert cells[5] == "stored"
        await page.click("#recordings tbody tr button")
        audio = "document.getElementById('audio')"
        loaded = await page.wait_for(f"{audio}.src.startsWith('blob:') && {audio}.dataset.duration")
        assert float(loaded) == pytest.approx(duration, abs=0.5)
        assert (await page.text("#playing")).startswith("138****8000 · ")
        assert "最长静音" in await page.text("#checks")
        await page.screenshot(screenshots / "recordings.png")
        assert page.exceptions() == []
        plays = await db.fetch(
            "SELECT username, subject FROM audit_log WHERE action = 'recording_play'"
        )
        assert [tuple(r) for r in plays] == [("sup", answered.call_id)]
    finally:
        await db.close()
