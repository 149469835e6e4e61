"""The engine process is killed (SIGKILL) while callers wait: the dialplan's
safety net serves them through app_queue, the restarted engine restores its
agents from the event log and adopts the callers it finds. Nobody is dropped.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from acd import log_events as E
from acd.event_log import EventLogWriter
from common.db import migrate
from cti.config import AcdConfig, AgentSpec, EngineConfig, KpiConfig
from cti.stack.private import PrivateStack, StackInfo
from softphone_bridge.robot_agent import AgentBehaviour, RobotAgent
from softphone_bridge.sipp_citizen import CitizenCall, SippCitizens
from tests.waiting import eventually

from .ami_watch import AmiWatch

pytestmark = pytest.mark.integration

AGENTS = ("1001", "1002", "1003")


def _toml(info: StackInfo, config: EngineConfig) -> str:
    agents = "".join(f'[[agents]]\nextension = "{a}"\nname = "坐席{a}"\n\n' for a in AGENTS)
    acd = config.acd
    return f"""
engine_id = "restart-test"
database_dsn = "{info.database_dsn}"
redis_url = "{info.redis_url}"
data_dir = "{info.data_dir}"
ring_timeout_s = {config.ring_timeout_s}

[ami]
host = "127.0.0.1"
port = {info.ami.port}
username = "{info.ami.username}"
ping_interval_s = 1

[api]
port = 0

[acd]
wrapup_s = {acd.wrapup_s}
engine_grace_s = {acd.engine_grace_s}
heartbeat_s = {acd.heartbeat_s}
announce_every_s = {acd.announce_every_s}

{agents}"""


def user_event(name: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e.get("Event") == "UserEvent" and e.get("UserEvent") == name


async def _start_engine(
    config_path: Path, secret: str, log_path: Path
) -> asyncio.subprocess.Process:
    env = {**os.environ, "HOTLINE_AMI_SECRET": secret}
    log_file = open(log_path, "ab")  # noqa: SIM115 - handed to the child process
    try:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cti.cli",
            "--log-level",
            "INFO",
            "serve",
            "--config",
            str(config_path),
            env=env,
            stdout=log_file,
            stderr=log_file,
        )
    finally:
        log_file.close()


async def _wait_log(path: Path, text: str, count: int, timeout_s: float) -> None:
    """Until *text* occurs *count* times in the engine process's log file (a
    file another process writes: nothing to await, so it is polled)."""
    await eventually(
        lambda: path.read_text(errors="replace").count(text) >= count, timeout_s, poll_s=0.1
    )


async def test_engine_killed_with_callers_waiting_none_is_dropped(tmp_path: Path):
    config = EngineConfig(
        agents=tuple(AgentSpec(a, f"坐席{a}") for a in AGENTS),
        ring_timeout_s=6,
        acd=AcdConfig(wrapup_s=0.5, engine_grace_s=8.0, heartbeat_s=2.0, announce_every_s=4.0),
        kpi=KpiConfig(print_every_s=1.0),
    )
    private = PrivateStack(config)
    info = await private.start()
    engine: asyncio.subprocess.Process | None = None
    robots: list[RobotAgent] = []
    citizens = SippCitizens(asterisk_sip=info.sip, work_dir=tmp_path / "sipp")
    watch = AmiWatch.session(info.ami)
    log_path = tmp_path / "engine.log"
    try:
        # Yesterday's engine logged these agents in; today's restores them.
        await migrate(info.database_dsn)
        pool = await asyncpg.create_pool(info.database_dsn, min_size=0, max_size=2)
        try:
            seed = EventLogWriter(pool=pool, engine_id="seed")
            await seed.start()
            for n, agent in enumerate(AGENTS):
                seed.append(E.LogEvent(at=1_000.0 + n, kind=E.AGENT_LOGIN, agent=agent))
            await seed.wait_flushed()
            await seed.close()
        finally:
            await pool.close()

        config_path = tmp_path / "hotline.toml"
        config_path.write_text(_toml(info, config), encoding="utf-8")
        await watch.link.start()
        await watch.link.wait_connected(10)
        robots = [
            RobotAgent(
                extension=s.extension,
                password=s.password,
                asterisk_sip=info.sip,
                behaviour=AgentBehaviour(talk_s=5.0),
            )
            for s in info.agents
        ]
        await asyncio.gather(*(r.start() for r in robots))
        engine = await _start_engine(config_path, info.ami.secret, log_path)
        await _wait_log(log_path, "AMI resync done", 1, 30)
        assert "restored 3 agent states" in log_path.read_text()

        calls = [
            asyncio.create_task(
                citizens.call(CitizenCall("12345", f"1391234{n:04d}", f"等待{n}", hold_s=90))
            )
            for n in range(7)
        ]
        await watch.wait(user_event("HotlineEnqueue"), 7, 30)
        await watch.wait(
            lambda e: (
                e.get("Event") == "BridgeEnter" and str(e.get("Channel", "")).startswith("PJSIP/10")
            ),
            3,
            30,
        )

        engine.send_signal(signal.SIGKILL)
        await engine.wait()
        engine = None
        # With the engine gone its leases run out: the dialplan hands the
        # waiting callers to app_queue, which rings the same agents.
        await watch.wait(user_event("HotlineFallback"), 1, 30)
        answered_before_restart = sum(r.answered for r in robots)
        # Two more citizens call while no engine runs: they wait in the engine's
        # hold on the dialplan's first lease, for the restarted engine to adopt.
        calls += [
            asyncio.create_task(
                citizens.call(CitizenCall("96181", f"1397654{n:04d}", f"后来{n}", hold_s=90))
            )
            for n in range(2)
        ]
        await watch.wait(user_event("HotlineEnqueue"), 9, 30)

        engine = await _start_engine(config_path, info.ami.secret, log_path)
        await _wait_log(log_path, "AMI resync done", 2, 30)

        results = await asyncio.wait_for(asyncio.gather(*calls), 150)
        assert [r.exit_code for r in results] == [0] * 9
        assert sum(r.answered for r in robots) == 9, "every caller reached an agent"
        assert answered_before_restart >= 3
        text = log_path.read_text()
        assert text.count("restored 3 agent states") == 2
        # The 4 who were waiting at the kill: left with app_queue if the fallback
        # had them, else adopted; the 2 who called meanwhile: adopted from hold.
        adopted = text.count("adopted, waiting since")
        left_to_app_queue = text.count("found in app_queue")
        assert adopted >= 2 and left_to_app_queue >= 1
        assert adopted + left_to_app_queue == 6
        assert (
            watch.count(user_event("HotlineFallbackResult")) == 0
        )  # nobody fell through app_queue
    finally:
        if engine is not None and engine.returncode is None:
            engine.send_signal(signal.SIGTERM)
            await asyncio.wait_for(engine.wait(), 20)
        await citizens.close()
        await asyncio.gather(*(r.stop() for r in robots), return_exceptions=True)
        await watch.link.close()
        await private.stop()
