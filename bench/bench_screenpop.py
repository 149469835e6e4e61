"""Screen-pop delay: from the AMI ring event to the frame at the agent's desktop.

A private stack (Asterisk, PostgreSQL, Redis), the engine in this process with
the HTTP API served as ``hotline serve`` serves it (``cti.runtime``), one
logged-in desktop WebSocket per agent (aiohttp clients, as a browser would
hold them), pyVoIP robot agents and sipp citizens. Each screen-pop frame
carries ``rung_at``, the ``Timestamp`` Asterisk put on the ring event; the
client takes the time it received the frame. Both clocks are this machine's.
The delay therefore covers AMI delivery, the engine's processing, the
caller-history query in PostgreSQL, JSON and the WebSocket. A benchmark, not
a test. Run from the repository root::

    .venv/bin/python bench/bench_screenpop.py

Results go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from a checkout

import aiohttp  # noqa: E402

from bench.provenance import code_version, cpu_model  # noqa: E402
from cti.api.accounts import AccountStore  # noqa: E402
from cti.api.roles import Role  # noqa: E402
from cti.config import AcdConfig, AgentSpec, ApiConfig, EngineConfig  # noqa: E402
from cti.runtime import build_runtime  # noqa: E402
from cti.stack.private import PrivateStack, engine_config_for  # noqa: E402
from softphone_bridge.robot_agent import AgentBehaviour, RobotAgent  # noqa: E402
from softphone_bridge.sipp_citizen import CitizenCall, SippCitizens  # noqa: E402

TARGET_P95_MS = 200.0
PASSWORD = "bench-password-1"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def _desktop(http: aiohttp.ClientSession, url: str, agent: str, delays: list[float]) -> None:
    async with http.post(
        f"{url}/api/v1/sessions", json={"username": f"a{agent}", "password": PASSWORD}
    ) as response:
        token = (await response.json())["token"]
    async with http.ws_connect(f"{url}/api/v1/ws") as socket:
        await socket.send_json({"type": "auth", "token": token})
        async for message in socket:
            received = time.time()
            frame = message.json()
            if frame.get("type") == "screen_pop":
                delays.append((received - frame["rung_at"]) * 1000.0)


async def run(args: argparse.Namespace) -> int:
    config = EngineConfig(
        agents=tuple(AgentSpec(str(1001 + n), f"坐席{n + 1:02d}") for n in range(args.agents)),
        ring_timeout_s=8,
        acd=AcdConfig(wrapup_s=0.5),
    )
    delays: list[float] = []
    async with PrivateStack(config) as info:
        assert info.sip is not None
        served = replace(engine_config_for(config, info), api=ApiConfig(port=0))
        robots = [
            RobotAgent(
                extension=seat.extension,
                password=seat.password,
                asterisk_sip=info.sip,
                behaviour=AgentBehaviour(talk_s=args.talk_s),
            )
            for seat in info.agents
        ]
        citizens = SippCitizens(asterisk_sip=info.sip)
        desktops: list[asyncio.Task[None]] = []
        try:
            # The runtime migrates the database and serves the API (api.port 0).
            async with build_runtime(served) as runtime, aiohttp.ClientSession() as http:
                await runtime.engine.wait_resynced()
                url = runtime.url
                assert url is not None, "the HTTP API did not start"
                accounts = AccountStore(runtime.pool)
                await asyncio.gather(*(r.start() for r in robots))
                for seat in info.agents:
                    runtime.acd.login(seat.extension)
                    await accounts.add(
                        f"a{seat.extension}", Role.AGENT, PASSWORD, agent=seat.extension
                    )
                desktops = [
                    asyncio.create_task(_desktop(http, url, seat.extension, delays))
                    for seat in info.agents
                ]
                await asyncio.sleep(0.5)  # the desktops log in (pacing, not synchronisation)
                calls = []
                for n in range(args.calls):
                    number = f"139{n:08d}"
                    calls.append(
                        asyncio.create_task(
                            citizens.call(CitizenCall("12345", number, "市民", hold_s=args.hold_s))
                        )
                    )
                    await asyncio.sleep(1.0 / args.rate)  # the offered load
                await asyncio.gather(*calls, return_exceptions=True)
                for task in desktops:
                    task.cancel()
                await asyncio.gather(*desktops, return_exceptions=True)
        finally:
            await citizens.close()
            await asyncio.gather(*(r.stop() for r in robots), return_exceptions=True)
    code = code_version()
    print("```")
    print(
        f"$ .venv/bin/python bench/bench_screenpop.py --calls={args.calls} --rate={args.rate} "
        f"--agents={args.agents} --hold-s={args.hold_s} --talk-s={args.talk_s}"
    )
    print(f"{cpu_model()}; code {code}")
    if not delays:
        print("no screen-pop received: FAIL")
        print("```")
        return 1
    p50, p95 = _percentile(delays, 0.50), _percentile(delays, 0.95)
    print(f"screen-pops received: {len(delays)} for {args.calls} calls (a RONA re-ring pops again)")
    print(
        f"AMI ring event -> WebSocket frame: p50 {p50:.1f} ms, p95 {p95:.1f} ms, "
        f"max {max(delays):.1f} ms, mean {statistics.fmean(delays):.1f} ms"
    )
    verdict = "PASS" if p95 <= TARGET_P95_MS else "FAIL"
    print(f"target p95 <= {TARGET_P95_MS:.0f} ms: {verdict}")
    print("```")
    return 0 if p95 <= TARGET_P95_MS else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=60)
    parser.add_argument("--rate", type=float, default=1.0, help="calls per second")
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--hold-s", type=float, default=4.0, help="citizen stays this long")
    parser.add_argument("--talk-s", type=float, default=None, help="robot hangs up after")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
