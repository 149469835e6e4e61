"""The agent desktop and the supervisor console in headless Chromium, against
the real engine with a real call: the console shows the waiting call, the
agent makes itself available, the phone rings and the screen-pop appears,
the agent clicks transfer and the call reaches the other agent; the
console's 15 s rate updates; the supervisor reveals the waiting caller's
number, which is audited. Screenshots are kept under artifacts/browser/."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from cti.calls import AgentConnected, CallAnswered, CallQueued
from softphone_bridge.sipp_citizen import CitizenCall
from tests.integration.conftest import cancel_and_wait

from .conftest import PASSWORD

pytestmark = [pytest.mark.integration, pytest.mark.stack(agents=2)]


async def _audit_views(stack) -> list[tuple[str, str, str]]:
    _, info = stack
    connection = await asyncpg.connect(info.database_dsn)
    try:
        rows = await connection.fetch(
            "SELECT username, action, subject FROM audit_log WHERE action = 'view_caller'"
        )
    finally:
        await connection.close()
    return [tuple(r) for r in rows]


async def _log_in(page, url: str, path: str, username: str) -> None:
    await page.goto(url + path)
    await page.type("#username", username)
    await page.type("#password", PASSWORD)
    await page.click("#login button[type=submit]")
    await page.wait_for("document.getElementById('link').dataset.up === '1'")


async def test_desktop_and_console_with_a_real_call(
    engine, robots, citizens, stack, api_url, browser, screenshots
) -> None:
    eng, changes = engine
    eng.logout("1002")
    desk = await browser.new_page()
    console = await browser.new_page()
    await _log_in(desk, api_url, "/desk", "a1001")
    await desk.wait_for("document.getElementById('state').dataset.state === 'AVAILABLE'")
    assert "张坐席" in await desk.text("#who")

    # The agent takes a break from the desktop: no one is free.
    await desk.click("#btn-pause")
    await desk.wait_for("document.getElementById('state').dataset.state === 'PAUSED'")
    assert eng.acd.agents["1001"].pause_reason == "小休"

    await _log_in(console, api_url, "/console", "sup")
    tile = "document.querySelector('[data-scope=\"queue:12345-general\"]')"
    await console.wait_for(tile)
    assert await console.evaluate(f"{tile}.querySelector('[data-key=rate15m]').textContent") == "—"

    call = asyncio.create_task(citizens.call(CitizenCall("12345", "13800138000", "张三", 60.0)))
    try:
        await changes.wait_for(lambda c: isinstance(c, CallQueued))
        waiting = await console.wait_for(
            f"{tile}.querySelector('[data-key=waiting]').textContent === '1 个' && "
            f"{tile}.querySelector('[data-key=waiting]').textContent"
        )
        assert waiting == "1 个"
        row = "document.querySelector('#calls tr[data-call]')"
        assert await console.wait_for(f"{row} && {row}.querySelector('.number').textContent") == (
            "138****8000"
        )
        assert await console.evaluate(f"{row}.querySelector('[data-phase]').dataset.phase") == (
            "QUEUED"
        )
        # The wait ticks on the console between pushes.
        wait_cell = f"{row}.querySelector('[data-since]')"
        first = await console.evaluate(f"{wait_cell}.textContent")
        await console.wait_for(f"{wait_cell}.textContent !== {first!r}", timeout_s=5)
        await console.click("#calls tr[data-call] button")  # 查看号码: audited
        shown = await console.wait_for(
            f"{row}.querySelector('.number').textContent.startsWith('13800138000') && "
            f"{row}.querySelector('.number').textContent"
        )
        assert shown == "13800138000 张三"
        await console.screenshot(screenshots / "1-console-waiting-call.png")

        # Available again: the call is routed to 1001, the desktop pops.
        await desk.click("#btn-resume")
        number = await desk.wait_for(
            "document.getElementById('pop-number').textContent.includes('*') && "
            "document.getElementById('pop-number').textContent"
        )
        assert number == "138****8000"  # masked for an agent
        assert await desk.text("#pop-name") == "张*"
        assert await desk.text("#pop-line") == "12345"
        await desk.screenshot(screenshots / "2-desk-screen-pop.png")

        await changes.wait_for(lambda c: isinstance(c, CallAnswered) and c.agent == "1001")
        await desk.wait_for("document.getElementById('state').dataset.state === 'ON_CALL'")
        rate = await console.wait_for(
            f"{tile}.querySelector('[data-key=rate15m]').textContent.endsWith('%') && "
            f"{tile}.querySelector('[data-key=rate15m]').textContent"
        )
        assert rate == "100.0%"  # answered within 15 s: the console updated at the answer
        await console.screenshot(screenshots / "3-console-rate-updated.png")

        # Hold and take back from the desktop: the caller waits in the call's conference.
        await desk.click("#btn-hold")
        await desk.wait_for("document.getElementById('call-state').textContent === '保持中'")
        caller = eng.model.channels[eng.model.calls[eng.acd.agents["1001"].call_id].caller_channel]
        assert caller.bridge_id is not None  # in the conference, with the hold music
        await desk.click("#btn-unhold")
        await desk.wait_for("document.getElementById('call-msg').textContent === '已恢复通话'")
        await desk.wait_for("document.getElementById('call-state').textContent === ''")

        # Transfer to 1002 from the desktop.
        eng.login("1002")
        await desk.select("#target-kind", "agent")
        await desk.type("#target-value", "1002")
        await desk.click("#btn-transfer")
        await desk.wait_for("document.getElementById('call-msg').textContent === '已转接'")
        await changes.wait_for(lambda c: isinstance(c, AgentConnected) and c.agent == "1002")
        assert eng.acd.agents["1002"].state.name == "ON_CALL"
        await desk.wait_for("document.getElementById('state').dataset.state !== 'ON_CALL'")
        await desk.screenshot(screenshots / "4-desk-after-transfer.png")
        await console.wait_for(
            "document.querySelector('tr[data-agent=\"1002\"] [data-state]')"
            ".dataset.state === 'ON_CALL'"
        )
        await console.screenshot(screenshots / "5-console-after-transfer.png")
        assert desk.exceptions() == [] and console.exceptions() == []
        views = await _audit_views(stack)
        assert views == [("sup", "view_caller", eng.acd.agents["1002"].call_id)]
    finally:
        await cancel_and_wait(call)
    shots = sorted(p.name for p in screenshots.glob("*.png"))
    assert len(shots) == 5 and all((screenshots / s).stat().st_size > 10_000 for s in shots)
