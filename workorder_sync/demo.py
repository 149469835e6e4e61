"""The work orders in ``hotline demo``: the city 12345 simulator on a local
port (its status events sped up), and a robot clerk that, for some of the
answered calls, fills the work-order form through the HTTP API as the
agent who took the call would: a draft from the call, the fields, accept,
then a direct answer or dispatch to the city."""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from dataclasses import replace
from typing import Any, TextIO

import aiohttp
from aiohttp import web

from common.call_changes import CallAnswered

from .city.simulator import SIMULATOR, CitySimulator, SimulatorConfig, build_simulator
from .config import WorkOrderConfig
from .service import WorkOrderChanged

__all__ = ["DemoCity", "RobotClerk"]

log = logging.getLogger(__name__)

DISTRICT_SECRET = "district-secret"
CITY_SECRET = "city-secret"
SPEEDY = (("DISPATCHED", 3.0), ("SIGNED", 4.0), ("REPLIED", 8.0), ("CLOSED", 4.0))
APPEALS = [
    ("小区路灯不亮", "HELP", "0101", "城市管理/市容环境/路灯", "DISPATCH"),
    ("公交线路咨询", "CONSULT", "0201", "交通/公交", "DIRECT_ANSWER"),
    ("噪音扰民投诉", "COMPLAINT", "0301", "环境保护/噪声", "DISPATCH"),
    ("医保报销咨询", "CONSULT", "0401", "社会保障/医保", "DIRECT_ANSWER"),
    ("占道经营举报", "REPORT", "0102", "城市管理/市容环境/占道", "DISPATCH"),
]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class DemoCity:
    """``async with DemoCity() as city``: the simulator, listening."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self._app = build_simulator(SimulatorConfig(progress=SPEEDY))
        self._runner = web.AppRunner(self._app)

    @property
    def simulator(self) -> CitySimulator:
        return self._app[SIMULATOR]

    async def __aenter__(self) -> DemoCity:
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._runner.cleanup()

    def section(self, base: WorkOrderConfig | None = None) -> WorkOrderConfig:
        """The engine's [workorders] pointed at this city."""
        return replace(
            base or WorkOrderConfig(),
            city_url=self.url,
            secret=DISTRICT_SECRET,
            city_secret=CITY_SECRET,
        )

    def push_to(self, engine_url: str) -> None:
        self.simulator.set_webhook(engine_url.rstrip("/") + "/api/v1/city/webhook")


class RobotClerk:
    """Files a work order for every ``every``-th answered call, as its agent."""

    def __init__(
        self,
        runtime: Any,
        password: str,
        out: TextIO,
        *,
        every: int = 2,
        rng: random.Random | None = None,
    ) -> None:
        self._runtime = runtime
        self._password = password
        self._out = out
        self._every = every
        self._rng = rng or random.Random()
        self._answered = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.filed: list[str] = []
        runtime.bus.subscribe(CallAnswered, self._on_answered, name="demo: robot clerk")
        runtime.bus.subscribe(WorkOrderChanged, self._on_changed, name="demo: work orders")

    def _on_answered(self, change: CallAnswered) -> None:
        self._answered += 1
        if self._answered % self._every:
            return
        task = asyncio.create_task(self._file(change.call_id, change.agent))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_changed(self, change: WorkOrderChanged) -> None:
        if change.by == "city":
            city = change.city_order_no
            print(
                f"          工单 {change.order_no} ← 市平台 {city}: {change.status}",
                file=self._out,
                flush=True,
            )

    async def _file(self, call_id: str, agent: str) -> None:
        title, appeal, code, category, disposition = self._rng.choice(APPEALS)
        base = self._runtime.url.rstrip("/")
        try:
            async with aiohttp.ClientSession() as http:
                login = await http.post(
                    f"{base}/api/v1/sessions",
                    json={"username": f"agent{agent}", "password": self._password},
                )
                token = (await login.json())["token"]
                headers = {"Authorization": f"Bearer {token}"}
                made = await http.post(
                    f"{base}/api/v1/workorders", json={"call_id": call_id}, headers=headers
                )
                order_no = (await made.json())["order_no"]
                fields = {
                    "title": title,
                    "appeal_type": appeal,
                    "category_code": code,
                    "category_path": category.split("/"),
                    "content": f"市民来电反映：{title}。",
                    "disposition": disposition,
                    "division_code": "440304",
                    "address": "福田区幸福路 12 号",
                }
                await http.patch(
                    f"{base}/api/v1/workorders/{order_no}", json=fields, headers=headers
                )
                steps: list[dict[str, Any]] = [{"action": "ACCEPT"}]
                if disposition == "DIRECT_ANSWER":
                    steps.append({"action": "DIRECT_ANSWER", "data": {"answer": "已当场答复。"}})
                    steps.append({"action": "ARCHIVE"})
                else:
                    steps.append({"action": "SEND_TO_DISPATCH"})
                for step in steps:
                    done = await http.post(
                        f"{base}/api/v1/workorders/{order_no}/actions", json=step, headers=headers
                    )
                    if done.status != 200:
                        raise RuntimeError(f"{step['action']}: {(await done.json())['error']}")
            self.filed.append(order_no)
            print(
                f"          工单 {order_no} 由坐席 {agent} 受理: {title} → "
                + ("直接答复" if disposition == "DIRECT_ANSWER" else "派往市平台"),
                file=self._out,
                flush=True,
            )
        except Exception as exc:  # the demo goes on without this order
            log.warning("demo: work order for call %s not filed: %s", call_id, exc)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
