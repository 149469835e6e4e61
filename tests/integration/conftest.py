"""Integration fixtures: a real private Asterisk, PostgreSQL and Redis per test
(about 0.7 s to start), the engine on it, robot agents and sipp citizens.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pytest
import pytest_asyncio

from acd.agents import AgentState
from acd.commands import AgentStateChanged
from cti.calls import CallChange
from cti.config import AcdConfig, AgentSpec, EngineConfig
from cti.runtime import Runtime, build_runtime
from cti.stack.postgres import PrivatePostgres
from cti.stack.private import PrivateStack, StackInfo, engine_config_for
from softphone_bridge.robot_agent import AgentBehaviour, RobotAgent
from softphone_bridge.sipp_citizen import SippCitizens

pytestmark = pytest.mark.integration


def _children(pid: int) -> list[tuple[int, str]]:
    """Live (non-zombie) direct children of *pid*, from /proc."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm_end = stat.rindex(")")
        fields = stat[comm_end + 2 :].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append((int(entry.name), stat[stat.index("(") + 1 : comm_end]))
    return out


@pytest.fixture(autouse=True)
def no_orphans() -> Iterator[None]:
    before = {p for p, _ in _children(os.getpid())}
    yield
    left = [(p, name) for p, name in _children(os.getpid()) if p not in before]
    assert not left, f"child processes left running after the test: {left}"


def stack_config(
    agents: int = 2, mobiles: dict[str, str] | None = None, **changes: object
) -> EngineConfig:
    mobiles = mobiles or {}
    base = EngineConfig(
        agents=tuple(
            AgentSpec(str(1001 + n), f"坐席{n + 1:02d}", mobile=mobiles.get(str(1001 + n), ""))
            for n in range(agents)
        ),
        ring_timeout_s=8,
        acd=AcdConfig(wrapup_s=0.5),
    )
    return replace(base, **changes) if changes else base


@pytest_asyncio.fixture
async def stack(request: pytest.FixtureRequest) -> AsyncIterator[tuple[PrivateStack, StackInfo]]:
    marker = request.node.get_closest_marker("stack")
    config = stack_config(**(marker.kwargs if marker else {}))
    private = PrivateStack(config)
    info = await private.start()
    try:
        yield private, info
    finally:
        await private.stop()


PG = TypeVar("PG", bound=PrivatePostgres)


@contextlib.asynccontextmanager
async def started_postgres(kind: type[PG]) -> AsyncIterator[PG]:
    """A PostgreSQL of *kind* in a run directory of its own, started; stopped
    and removed at the end."""
    run_dir = Path(tempfile.mkdtemp(prefix="hotline-pg-"))
    run_dir.chmod(0o755)  # PostgreSQL runs as its own user when we are root
    server = kind(run_dir / "pg")
    try:
        await server.start()
        yield server
    finally:
        await server.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


@pytest_asyncio.fixture
async def private_postgres() -> AsyncIterator[PrivatePostgres]:
    """A PostgreSQL of the test's own (no Asterisk, no Redis), empty."""
    async with started_postgres(PrivatePostgres) as server:
        yield server


async def cancel_and_wait(*tasks: asyncio.Task[object]) -> None:
    """Cancel citizen calls still running and wait until their sipp is stopped."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class EngineView:
    """The tests' handle on a running :class:`cti.runtime.Runtime`: its parts
    under short names (``acd`` is the ACD itself, ``control`` call control's
    service), the agents' actions, and waits on its state."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.config = runtime.config
        self.link = runtime.link
        self.model = runtime.model
        self.clock = runtime.clock
        self.acd = runtime.acd.acd
        self.service = runtime.acd.service
        self.tracker = runtime.acd.tracker
        self.recent_log = runtime.acd.recent_log
        self.login = runtime.acd.login
        self.logout = runtime.acd.logout
        self.pause = runtime.acd.pause
        self.resume = runtime.acd.resume
        self.wait_resynced = runtime.engine.wait_resynced
        self._agents_changed = asyncio.Event()
        runtime.bus.subscribe(
            AgentStateChanged, lambda _: self._agents_changed.set(), name="test: agent states"
        )

    @property
    def control(self) -> Any:
        return self.runtime.services["control"]

    def snapshot(self) -> dict[str, Any]:
        return self.runtime.services["console"].snapshot()

    def rate_chart(self) -> list[dict[str, Any]]:
        return self.tracker.rate_chart(now=self.clock())

    def agent_on_call(self, call_id: str) -> str | None:
        return self.runtime.acd.acd.agent_on_call(call_id)

    def add_listener(self, listener: Callable[[CallChange], None]) -> None:
        self.runtime.bus.subscribe(CallChange, listener, name="test: listener")

    async def wait_agent_state(
        self, agent: str, state: AgentState, timeout_s: float = 10.0
    ) -> None:
        """Until the ACD has *agent* in *state*."""
        async with asyncio.timeout(timeout_s):
            while self.acd.agents[agent].state is not state:
                self._agents_changed.clear()
                await self._agents_changed.wait()


@contextlib.asynccontextmanager
async def running(config: EngineConfig, **options: Any) -> AsyncIterator[EngineView]:
    """A runtime on *config* (see ``build_runtime`` for the options), started,
    resynced once; its view for the test."""
    runtime = build_runtime(config, **options)
    view = EngineView(runtime)
    async with runtime:
        await runtime.engine.wait_resynced()
        yield view


class ChangeLog:
    """Every call change the engine published, awaitable by predicate."""

    def __init__(self) -> None:
        self.changes: list[CallChange] = []
        self._changed = asyncio.Event()

    def __call__(self, change: CallChange) -> None:
        self.changes.append(change)
        self._changed.set()

    async def wait_for(
        self, predicate: Callable[[CallChange], bool], *, count: int = 1, timeout_s: float = 30.0
    ) -> list[CallChange]:
        async with asyncio.timeout(timeout_s):
            while True:
                found = self.matching(predicate)
                if len(found) >= count:
                    return found
                self._changed.clear()
                await self._changed.wait()

    def matching(self, predicate: Callable[[CallChange], bool]) -> list[CallChange]:
        return [c for c in self.changes if predicate(c)]


@pytest_asyncio.fixture
async def engine(
    stack: tuple[PrivateStack, StackInfo],
) -> AsyncIterator[tuple[EngineView, ChangeLog]]:
    private, info = stack
    runtime = build_runtime(engine_config_for(private.config, info), serve_http=False)
    eng = EngineView(runtime)
    log = ChangeLog()
    eng.add_listener(log)
    async with runtime:
        await eng.wait_resynced()
        for seat in info.agents:
            eng.login(seat.extension)
        yield eng, log


@pytest_asyncio.fixture
async def robots(
    stack: tuple[PrivateStack, StackInfo], request: pytest.FixtureRequest
) -> AsyncIterator[dict[str, RobotAgent]]:
    """One registered robot per configured agent; behaviour from @pytest.mark.robots(ext=...)."""
    _, info = stack
    marker = request.node.get_closest_marker("robots")
    behaviours: dict[str, AgentBehaviour] = dict(marker.kwargs) if marker else {}
    assert info.sip is not None
    agents = {
        seat.extension: RobotAgent(
            extension=seat.extension,
            password=seat.password,
            asterisk_sip=info.sip,
            behaviour=behaviours.get(f"a{seat.extension}", AgentBehaviour(talk_s=None)),
        )
        for seat in info.agents
    }
    try:
        await asyncio.gather(*(a.start() for a in agents.values()))
        yield agents
    finally:
        await asyncio.gather(*(a.stop() for a in agents.values()), return_exceptions=True)


@pytest_asyncio.fixture
async def citizens(
    stack: tuple[PrivateStack, StackInfo], tmp_path: Path
) -> AsyncIterator[SippCitizens]:
    _, info = stack
    assert info.sip is not None
    c = SippCitizens(asterisk_sip=info.sip, work_dir=tmp_path / "sipp")
    try:
        yield c
    finally:
        await c.close()
