"""The work-order form in headless Chromium, from a real call to the city:
a citizen calls, the robot agent answers, the agent opens the form with the
call's id and gets a pre-filled draft, fills it (a field the API refuses is
named next to the field), saves, reloads the page (the draft is still
there), accepts and sends it to dispatch. The outbox delivers it to the city
12345 simulator, whose signed webhook brings it back DISPATCHED on the page."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer

from cti.calls import CallAnswered
from cti.runtime import build_runtime
from cti.stack.private import PrivateStack, StackInfo, engine_config_for
from softphone_bridge.sipp_citizen import CitizenCall
from tests.integration.conftest import ChangeLog, EngineView, cancel_and_wait
from workorder_sync.city.simulator import (
    SIMULATOR,
    CitySimulator,
    SimulatorConfig,
    build_simulator,
)
from workorder_sync.config import WorkOrderConfig

from .cdp import Browser, Page
from .conftest import PASSWORD

pytestmark = [pytest.mark.integration, pytest.mark.stack(agents=2)]

BODY = "document.body.dataset"


@pytest_asyncio.fixture
async def city() -> AsyncIterator[tuple[CitySimulator, str]]:
    """The city 12345 simulator on a free port: it dispatches every new order
    half a second after creating it. Its webhook is set once the engine's
    address is known."""
    app = build_simulator(SimulatorConfig(progress=(("DISPATCHED", 0.5),)))
    async with TestServer(app, host="127.0.0.1") as server:
        yield app[SIMULATOR], str(server.make_url("/"))


@pytest_asyncio.fixture
async def engine(
    stack: tuple[PrivateStack, StackInfo], city: tuple[CitySimulator, str]
) -> AsyncIterator[tuple[EngineView, ChangeLog]]:
    """The integration ``engine`` fixture (which ``api_url`` serves), with
    ``[workorders]`` syncing to the simulator: its URL exists only now."""
    private, info = stack
    _, city_url = city
    config = engine_config_for(private.config, info)
    section = WorkOrderConfig(
        city_url=city_url, secret="district-secret", city_secret="city-secret"
    )
    config = replace(config, sections={**config.sections, "workorders": section})
    runtime = build_runtime(config, serve_http=False)
    eng = EngineView(runtime)
    log = ChangeLog()
    eng.add_listener(log)
    async with runtime:
        await eng.wait_resynced()
        for seat in info.agents:
            eng.login(seat.extension)
        yield eng, log


async def _logged_in(browser: Browser, url: str, username: str) -> Page:
    page = await browser.new_page()
    await page.goto(url)
    await page.type("#username", username)
    await page.type("#password", PASSWORD)
    await page.click("#login button[type=submit]")
    return page


async def test_an_agent_fills_the_form_and_the_order_comes_back_dispatched(
    engine, robots, citizens, city, api_url, browser, screenshots
) -> None:
    eng, changes = engine
    sim, _ = city
    sim.set_webhook(api_url + "/api/v1/city/webhook")
    eng.logout("1002")
    desk = await _logged_in(browser, api_url + "/desk", "a1001")
    await desk.wait_for("document.getElementById('link').dataset.up === '1'")
    call = asyncio.create_task(citizens.call(CitizenCall("12345", "13800138000", "张三", 60.0)))
    try:
        answered = (
            await changes.wait_for(lambda c: isinstance(c, CallAnswered) and c.agent == "1001")
        )[0]
        # The screen-pop links to the form for this call (opened in a new tab).
        link = "document.getElementById('pop-order')"
        href = await desk.wait_for(f"{link}.href.includes('call_id=') && {link}.href")
        assert href == f"{api_url}/workorders/form?call_id={answered.call_id}"
        assert await desk.evaluate(f"{link}.target") == "_blank"

        page = await _logged_in(browser, href, "a1001")
        order_no = await page.wait_for(f"{BODY}.status === 'DRAFT' && {BODY}.orderNo")
        assert f"order_no={order_no}" in await page.evaluate("location.search")
        assert await page.text("#call-id") == answered.call_id
        assert await page.text("#caller-number") == "138****8000"  # masked for an agent
        assert await page.text("#channel") == "12345 热线"

        # Accepting an empty draft: the API names the field, the page shows it there.
        await page.click("#btn-accept")
        await page.wait_for(f"{BODY}.error === 'title'")
        assert "title" in await page.text("[data-error-for=title]")
        assert await page.evaluate(f"{BODY}.status") == "DRAFT"

        await page.type("#f-title", "小区路灯不亮")
        await page.select("#f-appeal", "HELP")
        await page.select("#f-category", "010101")
        await page.type("#f-content", "幸福路 12 号门口的路灯坏了三天，晚上看不见路。")
        await page.type("#f-address", "福田区幸福路 12 号")
        await page.select("#f-division", "440304")
        await page.select("#f-disposition", "DISPATCH")
        await page.click("#btn-save")
        await page.wait_for(f"{BODY}.dirty === '0' && !{BODY}.busy")
        await page.screenshot(screenshots / "1-draft-saved.png")

        # The page reloads: the draft comes back from the engine as typed.
        await page.goto(await page.evaluate("location.href"))
        title = "document.getElementById('f-title').value"
        assert await page.wait_for(f"{BODY}.orderNo === {order_no!r} && {title}") == (
            "小区路灯不亮"
        )
        assert await page.evaluate("document.getElementById('f-category').value") == "010101"
        assert await page.evaluate("document.getElementById('f-division').value") == "440304"
        assert await page.evaluate("document.getElementById('f-disposition').value") == ("DISPATCH")

        await page.click("#btn-accept")
        await page.wait_for(f"{BODY}.status === 'ACCEPTED'")
        assert await page.text("#deadline") != "—"
        await page.click("#btn-dispatch")
        await page.wait_for(f"{BODY}.status === 'DISPATCHED'", timeout_s=30)
        assert sim.created_count(order_no) == 1
        assert await page.text("#city-order-no") == sim.city_order_nos(order_no)[0]
        assert await page.text("#units") == "街道办事处（主办）"
        history = await page.evaluate(
            "[...document.querySelectorAll('#history tr')].map(r => r.dataset.action)"
        )
        assert history[-3:] == ["ACCEPT", "SEND_TO_DISPATCH", "DISPATCH"]
        await page.screenshot(screenshots / "2-dispatched.png")

        # The supervisors' list shows it, with its due state.
        listing = await _logged_in(browser, api_url + "/workorders", "sup")
        row = f"document.querySelector('#orders tr[data-order-no=\"{order_no}\"]')"
        assert await listing.wait_for(f"{row} && {row}.dataset.due") == "ON_TIME"
        cells = await listing.evaluate(f"[...{row}.cells].map(c => c.textContent)")
        assert cells[1:6] == [
            order_no,
            sim.city_order_nos(order_no)[0],
            "求助",
            "小区路灯不亮",
            "已派单",
        ]
        await listing.screenshot(screenshots / "3-supervisors-list.png")
        assert desk.exceptions() == page.exceptions() == listing.exceptions() == []
    finally:
        await cancel_and_wait(call)
