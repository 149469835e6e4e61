"""``hotline demo``: the whole path on a private stack.

Private Asterisk, PostgreSQL and Redis; the engine; robot agents (pyVoIP
softphones that register and answer); a stream of citizen calls (sipp) to
12345 and 96181. Prints each call's life and a running count; stops on Ctrl-C,
SIGTERM or after ``--duration``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import signal
import sys
import tempfile
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

from cti.api.accounts import AccountStore
from cti.api.roles import Role
from cti.call_printer import CallPrinter
from cti.calls import CallChange
from cti.config import AgentSpec, ApiConfig, EngineConfig
from cti.kpi_printer import kpi_line
from cti.runtime import Runtime, build_runtime, tune_gc
from cti.stack.private import PrivateStack, engine_config_for
from softphone_bridge.robot_agent import AgentBehaviour, RobotAgent
from softphone_bridge.sipp_citizen import CitizenCall, SippCitizens
from softphone_bridge.sipp_far_end import SippFarEnd

log = logging.getLogger(__name__)

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = [
    "伟",
    "芳",
    "娜",
    "敏",
    "静",
    "丽",
    "强",
    "磊",
    "军",
    "洋",
    "勇",
    "艳",
    "杰",
    "娟",
    "涛",
    "明",
]


@dataclass(frozen=True)
class DemoOptions:
    duration_s: float | None = None
    agents: int = 4
    calls_per_minute: float = 12.0
    abandon_share: float = 0.15
    seed: int | None = None


def citizen_stream(rng: random.Random, config: EngineConfig, options: DemoOptions):
    """Endless citizen calls: line, number, name, how long they stay."""
    while True:
        spec = rng.choice(config.lines)
        number = "1" + rng.choice("3456789") + "".join(rng.choice("0123456789") for _ in range(9))
        name = (
            rng.choice(SURNAMES)
            + rng.choice(GIVEN)
            + (rng.choice(GIVEN) if rng.random() < 0.5 else "")
        )
        if rng.random() < options.abandon_share:
            hold_s = rng.uniform(2.0, 6.0)  # hangs up while waiting (or soon after answer)
        else:
            hold_s = rng.uniform(20.0, 40.0)
        gap_s = rng.expovariate(options.calls_per_minute / 60.0)
        yield gap_s, CitizenCall(spec.did, number, name, hold_s)


async def run_demo(
    options: DemoOptions, *, base_config: EngineConfig | None = None, out: TextIO = sys.stdout
) -> CallPrinter:
    rng = random.Random(options.seed)
    base = base_config or EngineConfig()
    config = replace(
        base,
        agents=tuple(
            AgentSpec(str(1001 + n), f"坐席{n + 1:02d}", mobile=f"1390013{1001 + n:04d}")
            for n in range(options.agents)
        ),
        # Robots type no notes: a short wrap-up keeps the demo floor realistic.
        acd=replace(base.acd, wrapup_s=min(base.acd.wrapup_s, 5.0)),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    printer = CallPrinter(out)
    print("hotline demo: starting private Asterisk, PostgreSQL and Redis ...", file=out, flush=True)
    async with PrivateStack(config) as info, AsyncExitStack() as city_stack:
        engine_config = engine_config_for(config, info)
        city = None
        if "workorders" in engine_config.features:
            # The city 12345 platform, simulated, for the work orders' round trip.
            from workorder_sync.config import WorkOrderConfig
            from workorder_sync.demo import DemoCity

            city = await city_stack.enter_async_context(DemoCity())
            sections = dict(engine_config.sections)
            sections["workorders"] = city.section(
                engine_config.section("workorders", WorkOrderConfig)
            )
            engine_config = replace(engine_config, sections=sections)
        runtime = _runtime(engine_config)
        runtime.bus.subscribe(CallChange, printer, name="call printer")
        clerk = None
        async with runtime:
            await runtime.engine.wait_resynced()
            tune_gc()
            assert info.sip is not None
            robots = [
                RobotAgent(
                    extension=seat.extension,
                    password=seat.password,
                    asterisk_sip=info.sip,
                    behaviour=AgentBehaviour(talk_s=rng.uniform(6.0, 15.0)),
                )
                for seat in info.agents
            ]
            citizens = SippCitizens(asterisk_sip=info.sip)
            calls: set[asyncio.Task[Any]] = set()
            ticker: asyncio.Task[None] | None = None
            extras = AsyncExitStack()
            try:
                password = await _start_desktop(extras, config, info, runtime, out)
                if city is not None:
                    from workorder_sync.demo import RobotClerk

                    city.push_to(runtime.url)
                    clerk = RobotClerk(runtime, password, out, rng=rng)
                    print(
                        f"hotline demo: city 12345 simulator at {city.url}; robots file a work "
                        "order for every second answered call",
                        file=out,
                        flush=True,
                    )
                await asyncio.gather(*(r.start() for r in robots))
                for robot in robots:
                    runtime.acd.login(robot.extension)
                print(
                    f"hotline demo: AMI 127.0.0.1:{info.ami.port}, SIP 127.0.0.1:{info.sip[1]}, "
                    f"{len(robots)} robot agents registered and logged in; lines "
                    + ", ".join(s.did for s in config.lines)
                    + (
                        f"; running {options.duration_s:.0f} s"
                        if options.duration_s
                        else "; Ctrl-C to stop"
                    ),
                    file=out,
                    flush=True,
                )
                stream = citizen_stream(rng, config, options)
                ticker = asyncio.create_task(_print_counts(runtime, printer, out, stop))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(options.duration_s):
                        while not stop.is_set():
                            gap_s, call = next(stream)
                            with contextlib.suppress(TimeoutError):
                                await asyncio.wait_for(stop.wait(), gap_s)
                                break
                            task = asyncio.create_task(citizens.call(call))
                            calls.add(task)
                            task.add_done_callback(calls.discard)
                stop.set()
                await ticker
            finally:
                print("hotline demo: stopping ...", file=out, flush=True)
                stop.set()
                if ticker is not None:
                    await asyncio.gather(ticker, return_exceptions=True)
                # Cancelled, a call hangs up its sipp (killed after 2 s); one
                # created just before the stop has no sipp yet for close() to
                # stop and would otherwise run its whole call (up to 40 s).
                for task in calls:
                    task.cancel()
                await asyncio.gather(*calls, return_exceptions=True)
                await citizens.close()
                # Bounded: a robot whose pyVoIP phone is stuck is left behind.
                await asyncio.gather(*(r.stop() for r in robots), return_exceptions=True)
                if clerk is not None:
                    await clerk.close()
                    print(
                        f"hotline demo: {len(clerk.filed)} work order(s) filed by the robots",
                        file=out,
                        flush=True,
                    )
                await extras.aclose()
                print("hotline demo: " + kpi_line(runtime.acd, window="60m"), file=out, flush=True)
    print("hotline demo: " + printer.summary(), file=out, flush=True)
    return printer


DEMO_API_PORT = 8080


def _runtime(config: EngineConfig) -> Runtime:
    """The runtime with the web pages on port 8080, or any free port if taken."""
    return build_runtime(replace(config, api=ApiConfig(port=DEMO_API_PORT)), any_port_if_taken=True)


async def _start_desktop(
    stack: AsyncExitStack, config: EngineConfig, info: Any, runtime: Runtime, out: TextIO
) -> str:
    """Demo accounts with passwords made for this run (printed once, never a
    fixed default), and the far end of the trunk (the "mobile phones" and
    the city 12345 centre answer there)."""
    accounts = AccountStore(runtime.pool)
    password = secrets.token_urlsafe(9)
    await accounts.add("supervisor", Role.SUPERVISOR, password, display_name="值班长")
    for seat in config.agents:
        await accounts.add(
            f"agent{seat.extension}",
            Role.AGENT,
            password,
            agent=seat.extension,
            display_name=seat.name,
        )
    if info.trunk_peer is not None:
        far_dir = Path(tempfile.mkdtemp(prefix="hotline-far-end-"))
        await stack.enter_async_context(SippFarEnd(*info.trunk_peer, far_dir))
    url = runtime.url
    print(
        f"hotline demo: supervisor console {url}/console (user supervisor), agent desktop "
        f"{url}/desk (users "
        + ", ".join(f"agent{a.extension}" for a in config.agents)
        + f"); password for all of them this run: {password}",
        file=out,
        flush=True,
    )
    return password


async def _print_counts(
    runtime: Runtime, printer: CallPrinter, out: TextIO, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), runtime.config.kpi.print_every_s)
        print("          -- " + printer.summary(), file=out, flush=True)
        print("          -- " + kpi_line(runtime.acd), file=out, flush=True)
